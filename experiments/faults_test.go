package experiments

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

const okCompletion = `{"id":"x","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":"<think>t</think><answer>a</answer>","finish_reason":"stop"}]}`

// TestErrorBodiesAreBounded: a 5 MB error page (with and without a length)
// gives an error whose text is a bounded summary naming what was dropped,
// never the page itself.
func TestErrorBodiesAreBounded(t *testing.T) {
	page := strings.Repeat("<p>internal error</p>", 5<<20/21)
	for _, chunked := range []bool{false, true} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			if chunked {
				w.WriteHeader(http.StatusInternalServerError)
				for i := 0; i < len(page); i += 64 << 10 {
					_, _ = w.Write([]byte(page[i:min(i+64<<10, len(page))]))
					w.(http.Flusher).Flush()
				}
				return
			}
			http.Error(w, page, http.StatusInternalServerError)
		}))
		m, err := NewModel(Endpoint{BaseURL: srv.URL + "/v1", Model: "m", Mode: ModeCompletions})
		require.NoError(t, err)
		_, err = m.Complete(context.Background(), sampleContext, nil)
		srv.Close()
		require.Error(t, err)
		var ce *CallError
		require.True(t, errors.As(err, &ce))
		assert.Equal(t, 500, ce.Status)
		assert.Equal(t, KindHTTP5xx, ErrorKind(err))
		assert.True(t, Retryable(err))
		assert.LessOrEqual(t, len(err.Error()), maxSummary+200, "chunked=%v: the summary is bounded", chunked)
		assert.Contains(t, err.Error(), "internal error")
		assert.Contains(t, err.Error(), "dropped unread", "chunked=%v: says the body was cut", chunked)
	}
}

// TestResponseSizeIsBounded: a 2xx reply over max_response_bytes fails the
// call with a clear, retryable "response too large"; one within it decodes.
func TestResponseSizeIsBounded(t *testing.T) {
	big := `{"id":"x","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":"` +
		strings.Repeat("a", 200<<10) + `","finish_reason":"length"}]}`
	for _, withLength := range []bool{true, false} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if !withLength {
				w.WriteHeader(200)
				for i := 0; i < len(big); i += 32 << 10 {
					_, _ = w.Write([]byte(big[i:min(i+32<<10, len(big))]))
					w.(http.Flusher).Flush()
				}
				return
			}
			_, _ = w.Write([]byte(big))
		}))
		m, err := NewModel(Endpoint{BaseURL: srv.URL + "/v1", Model: "m", Mode: ModeCompletions, MaxResponseBytes: 64 << 10})
		require.NoError(t, err)
		_, err = m.Complete(context.Background(), sampleContext, nil)
		require.Error(t, err)
		assert.ErrorIs(t, err, ErrResponseTooLarge)
		assert.Contains(t, err.Error(), "response too large")
		assert.Contains(t, err.Error(), "64.0 KiB")
		assert.Equal(t, KindTooLarge, ErrorKind(err))
		assert.True(t, Retryable(err))

		m2, err := NewModel(Endpoint{BaseURL: srv.URL + "/v1", Model: "m", Mode: ModeCompletions, MaxResponseBytes: 1 << 20})
		require.NoError(t, err)
		out, err := m2.Complete(context.Background(), sampleContext, nil)
		require.NoError(t, err)
		assert.Len(t, out.Text, 200<<10)
		srv.Close()
	}
	bad := DefaultRunConfig()
	bad.MaxResponseBytes = -1
	assert.ErrorContains(t, bad.Validate(), "max_response_bytes")
}

// TestMalformedAndEmptyRepliesAreTransient: a 2xx reply that is not JSON, and
// one with no choices, are retryable failures of their own kind.
func TestMalformedAndEmptyRepliesAreTransient(t *testing.T) {
	for _, tc := range []struct{ body, kind string }{
		{`{"id":"x","choices":[{"text":"<think>`, KindMalformed},
		{`<html>gateway</html>`, KindMalformed},
		{`{"id":"x","object":"text_completion","choices":[]}`, KindEmptyChoices},
	} {
		for _, mode := range []string{ModeCompletions, ModeChat} {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(tc.body))
			}))
			m, err := NewModel(Endpoint{BaseURL: srv.URL + "/v1", Model: "m", Mode: mode})
			require.NoError(t, err)
			_, err = m.Complete(context.Background(), sampleContext, nil)
			srv.Close()
			require.Error(t, err, tc.body)
			assert.True(t, Retryable(err), "%s %s: %v", mode, tc.body, err)
			assert.Equal(t, tc.kind, ErrorKind(err), "%s %s: %v", mode, tc.body, err)
		}
	}
}

// TestMalformedRepliesAreRetriedInARun: a server whose first replies are
// malformed JSON and an empty choices list still finishes every rollout done,
// with those failed calls recorded by kind.
func TestMalformedRepliesAreRetriedInARun(t *testing.T) {
	st := bundleStore(t)
	ctx := context.Background()
	qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	ag := oracle.New(qs)
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "completions") {
			switch n.Add(1) {
			case 1:
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"choices":[{"text":`))
				return
			case 2:
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"choices":[]}`))
				return
			}
		}
		ag.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cfg := DefaultRunConfig()
	cfg.Endpoint, cfg.Model, cfg.Tasks, cfg.Objectives, cfg.Concurrency = srv.URL+"/v1", oracle.ModelName, 1, 1, 1
	cfg.RetryBaseSeconds = 0.001
	sum, err := (&Runner{Store: st, Env: st}).Run(ctx, cfg, nil)
	require.NoError(t, err)
	rows := assertSettled(t, st, sum.Experiment, 1)
	assert.Equal(t, storage.StatusDone, rows[0].Status, rows[0].Error)
	_, attempts := retriesOf(t, st, sum.Experiment)
	require.Len(t, attempts, 2)
	assert.True(t, strings.HasPrefix(attempts[0].Error, KindMalformed+": "), attempts[0].Error)
	assert.True(t, strings.HasPrefix(attempts[1].Error, KindEmptyChoices+": "), attempts[1].Error)
}

// TestAttemptRecordsAreBounded: a server answering every call with a 2 MB
// error page stores a bounded summary per attempt and per failed rollout.
func TestAttemptRecordsAreBounded(t *testing.T) {
	st := bundleStore(t)
	page := strings.Repeat("x", 2<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, page, http.StatusBadGateway)
	}))
	defer srv.Close()
	cfg := DefaultRunConfig()
	cfg.Endpoint, cfg.Model, cfg.Tasks, cfg.Concurrency = srv.URL+"/v1", "m", 2, 1
	cfg.Retries, cfg.RetryBaseSeconds, cfg.BreakerFailures, cfg.BreakerCooldownSeconds = 2, 0.001, 100, 0.001
	sum, err := (&Runner{Store: st, Env: st}).Run(context.Background(), cfg, nil)
	require.NoError(t, err)
	rows := assertSettled(t, st, sum.Experiment, 2)
	for _, r := range rows {
		assert.Equal(t, storage.StatusFailed, r.Status)
		assert.LessOrEqual(t, len(r.Error), 2*maxSummary+64)
		assert.Equal(t, KindHTTP5xx, FailureKind(r.Error), r.Error)
	}
	_, attempts := retriesOf(t, st, sum.Experiment)
	require.Len(t, attempts, 6)
	for _, a := range attempts {
		assert.LessOrEqual(t, len(a.Error), maxSummary+64)
		assert.Contains(t, a.Error, "dropped unread")
	}
}

// TestConnectionPoolFitsConcurrency: 16 requests in flight, round after
// round, reuse their keep-alive connections instead of dialling anew (the
// default pool keeps 2 idle connections per host).
func TestConnectionPoolFitsConcurrency(t *testing.T) {
	var dials atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(okCompletion))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	const conc, rounds = 16, 10
	m, err := NewOpenAIModel(Endpoint{BaseURL: srv.URL + "/v1", Model: "m", Mode: ModeCompletions, Concurrency: conc})
	require.NoError(t, err)
	defer m.Close()
	assert.GreaterOrEqual(t, m.transport.MaxIdleConnsPerHost, conc)
	for round := 0; round < rounds; round++ {
		var wg sync.WaitGroup
		for i := 0; i < conc; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := m.Complete(context.Background(), sampleContext, nil)
				assert.NoError(t, err)
			}()
		}
		wg.Wait()
	}
	assert.LessOrEqual(t, dials.Load(), int64(2*conc), "connections are reused across rounds (%d dialled for %d requests)", dials.Load(), conc*rounds)
}

// TestDeadEndpointStopsTheExperiment: an endpoint that keeps failing past the
// breaker's patience stops the experiment as failed with the reason, instead
// of sending every rollout's retries; each rollout ends failed with a reason.
func TestDeadEndpointStopsTheExperiment(t *testing.T) {
	st := bundleStore(t)
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte(`{"error":{"message":"upstream gone","type":"server_error","param":null,"code":null}}`))
	}))
	defer srv.Close()
	cfg := DefaultRunConfig()
	cfg.Endpoint, cfg.Model, cfg.Tasks, cfg.Objectives, cfg.Concurrency = srv.URL+"/v1", "m", 10, 1, 1
	cfg.Retries, cfg.RetryBaseSeconds = 50, 0.001
	cfg.BreakerFailures, cfg.BreakerCooldownSeconds, cfg.BreakerPatience = 2, 0.001, 2
	sum, err := (&Runner{Store: st, Env: st}).Run(context.Background(), cfg, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "stopped as failed")
	assert.Contains(t, err.Error(), "upstream gone")
	// Trips at failures 2, 3 and 4: the third trip is past a patience of 2.
	assert.EqualValues(t, 4, calls.Load(), "the endpoint is given up on, not retried 51 times a rollout")
	e, err := st.Experiment(context.Background(), sum.Experiment)
	require.NoError(t, err)
	assert.Equal(t, storage.StatusFailed, e.Status)
	rows := assertSettled(t, st, sum.Experiment, 10)
	for _, r := range rows {
		assert.Equal(t, storage.StatusFailed, r.Status)
		assert.Equal(t, KindEndpointDown, FailureKind(r.Error), r.Error)
	}
}

// TestBreakerPatience: only a failure that opens a closed breaker is a trip;
// more than patience trips without a success declare the endpoint down, and
// a success in between starts the count again (fake time: testing/synctest).
func TestBreakerPatience(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		boom := &CallError{Status: 503, Err: errors.New("overloaded")}
		e := newEndpointState(EndpointProfile{Name: "gpu", URL: "http://u:sk-9z9z9z@h/v1"}, nil,
			retryPolicy{breakerFailures: 2, cooldown: time.Second, patience: 2})
		e.report(boom)
		assert.False(t, e.breakerOpen())
		e.report(boom) // trip 1
		assert.True(t, e.breakerOpen())
		e.report(boom) // while open (a call already in flight): no trip
		time.Sleep(time.Second)
		e.report(boom) // trip 2
		assert.NoError(t, e.downErr())
		time.Sleep(time.Second)
		e.report(nil) // a success forgives
		e.report(boom)
		e.report(boom) // trip 1 again
		time.Sleep(time.Second)
		e.report(boom) // trip 2
		time.Sleep(time.Second)
		require.NoError(t, e.downErr())
		e.report(boom) // trip 3 > patience 2
		down := e.downErr()
		require.Error(t, down)
		assert.Equal(t, KindEndpointDown, ErrorKind(down))
		assert.Contains(t, down.Error(), "overloaded")
		assert.NotContains(t, down.Error(), "sk-9z9z9z")
		assert.ErrorIs(t, e.acquire(context.Background()), errEndpointDown, "a down endpoint takes no more calls")

		never := newEndpointState(EndpointProfile{Name: "gpu"}, nil, retryPolicy{breakerFailures: 1, cooldown: time.Second})
		for i := 0; i < 50; i++ {
			never.report(boom)
			time.Sleep(time.Second)
		}
		assert.NoError(t, never.downErr(), "patience 0 never gives up")
	})
}

// breakerOpen reports whether the endpoint is paused by its breaker now.
func (e *endpointState) breakerOpen() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return time.Now().Before(e.openUntil)
}
