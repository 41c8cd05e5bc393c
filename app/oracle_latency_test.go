package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
)

// mem1lab oracle --latency: each reply waits the delay (on synctest's fake
// clock), and a request whose client leaves while it waits is never answered.
func TestOracleLatencyDelaysEachReply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		calls := 0
		inner := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { calls++; w.WriteHeader(http.StatusNoContent) })
		h := delayed(inner, 2*time.Second)

		start := time.Now()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/completions", nil))
		assert.Equal(t, 2*time.Second, time.Since(start))
		assert.Equal(t, 1, calls)
		assert.Equal(t, http.StatusNoContent, rec.Code)

		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(500*time.Millisecond, cancel)
		start = time.Now()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/v1/completions", nil).WithContext(ctx))
		assert.Equal(t, 500*time.Millisecond, time.Since(start), "a gone client stops the wait")
		assert.Equal(t, 1, calls, "and is not answered")
	})
}

func TestOracleRejectsNegativeLatency(t *testing.T) {
	code, _, errOut := run(t, "oracle", "--db", t.TempDir()+"/x.db", "--latency", "-1s")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errOut, "must not be negative")
}
