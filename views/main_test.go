package views

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a screen starts must end once its work is applied.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
