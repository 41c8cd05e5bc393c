package views

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a screen starts must end once its work is applied. bleve's
// analysis workers are started once by its package initialisation (linked in
// through the retrievers), not by a screen.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/blevesearch/bleve_index_api.AnalysisWorker"))
}
