package experiments

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

// faultyServer wraps a handler and injects, by request number on the generation
// paths: a hang past the client's timeout, a dropped connection, a 429 with
// Retry-After, and a 503.
type faultyServer struct {
	next    http.Handler
	latency time.Duration
	n       atomic.Int64
	faults  map[string]*atomic.Int64
}

func newFaultyServer(next http.Handler, latency time.Duration) *faultyServer {
	f := &faultyServer{next: next, latency: latency, faults: map[string]*atomic.Int64{}}
	for _, k := range []string{"hang", "drop", "429", "503"} {
		f.faults[k] = &atomic.Int64{}
	}
	return f
}

func (f *faultyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "completions") {
		f.next.ServeHTTP(w, r)
		return
	}
	i := f.n.Add(1)
	time.Sleep(f.latency)
	switch {
	case i%13 == 0:
		f.faults["hang"].Add(1)
		// Reading the body lets the server notice the client hanging up.
		_, _ = io.Copy(io.Discard, r.Body)
		select { // longer than the client's timeout
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
		return
	case i%11 == 0:
		f.faults["drop"].Add(1)
		hj, ok := w.(http.Hijacker)
		if ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case i%7 == 0:
		f.faults["429"].Add(1)
		w.Header().Set("Retry-After", "0.05")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"message":"slow down","type":"rate_limit","param":null,"code":null}}`))
		return
	case i%17 == 0:
		f.faults["503"].Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}`))
		return
	}
	f.next.ServeHTTP(w, r)
}

func fastRetries(cfg *RunConfig) {
	cfg.Retries, cfg.RetryBaseSeconds = 6, 0.01
	cfg.BreakerFailures, cfg.BreakerCooldownSeconds = 8, 0.1
}

// assertSettled checks that every rollout of the experiment ended done or
// failed with a reason, that done ones have contiguous turns ending the
// rollout, and returns the rows.
func assertSettled(t *testing.T, st *storage.Store, expID int64, want int) []storage.RolloutRow {
	t.Helper()
	ctx := context.Background()
	rows, err := st.Rollouts(ctx, expID)
	require.NoError(t, err)
	require.Len(t, rows, want, "no rollout lost")
	for _, row := range rows {
		switch row.Status {
		case storage.StatusDone:
			turns, err := st.Turns(ctx, row.ID)
			require.NoError(t, err)
			require.NotEmpty(t, turns)
			assert.Equal(t, row.Turns, len(turns), "rollout %d", row.ID)
			for i, tu := range turns {
				assert.Equal(t, i, tu.Index, "rollout %d", row.ID)
			}
		case storage.StatusFailed:
			assert.NotEmpty(t, row.Error, "failed rollout %d has its reason", row.ID)
		default:
			t.Errorf("rollout %d ended %q", row.ID, row.Status)
		}
	}
	return rows
}

func retriesOf(t *testing.T, st *storage.Store, expID int64) (int, []storage.Attempt) {
	t.Helper()
	runs, err := st.RolloutRuns(context.Background(), expID)
	require.NoError(t, err)
	total := 0
	var all []storage.Attempt
	for _, r := range runs {
		total += r.Retries
		as, err := st.Attempts(context.Background(), r.ID)
		require.NoError(t, err)
		assert.Len(t, as, r.Retries, "every failed call of rollout %d is recorded", r.ID)
		all = append(all, as...)
	}
	return total, all
}

// TestFaultInjectionTinyServer: the real tiny model server failing 20% of its
// generations; a 100-rollout experiment finishes with every rollout done or
// failed with a reason, and the retries recorded.
func TestFaultInjectionTinyServer(t *testing.T) {
	st := bundleStore(t)
	base, stop := startTinyServer(t, "512", "FAIL_RATE=0.2")
	defer stop()
	tmpl := filepath.Join(t.TempDir(), "short.txt")
	require.NoError(t, os.WriteFile(tmpl, []byte("Answer with <{think}>, then <{search}> or <{answer}>. Questions: {questions}\n"), 0o644))
	cfg := DefaultRunConfig()
	cfg.Endpoint, cfg.Model, cfg.Mode = base+"/v1", servedModel(t, base), ModeCompletions
	cfg.Objectives, cfg.Tasks, cfg.MaxTokens, cfg.Concurrency, cfg.Temperature = 1, 100, 8, 4, 0
	cfg.Template, cfg.TimeoutSeconds = tmpl, 60
	fastRetries(&cfg)
	sum, err := (&Runner{Store: st, Env: st}).Run(context.Background(), cfg, nil)
	require.NoError(t, err)
	rows := assertSettled(t, st, sum.Experiment, 100)
	done := 0
	for _, r := range rows {
		if r.Status == storage.StatusDone {
			done++
		}
	}
	retries, attempts := retriesOf(t, st, sum.Experiment)
	t.Logf("100 rollouts: %d done, %d failed, %d failed calls retried or given up", done, 100-done, retries)
	assert.Positive(t, retries, "a 20%% failure rate shows up as recorded attempts")
	for _, a := range attempts {
		assert.Equal(t, 500, a.Status)
		assert.Contains(t, a.Error, "injected")
	}
	assert.Greater(t, done, 90, "six retries recover nearly every rollout")
}

// TestFaultInjectionScriptedServer: hangs past the timeout, dropped
// connections, 429 with Retry-After and 503s; every rollout ends with the same
// result as on a healthy server, and every kind of failure is recorded. It
// runs in a synctest bubble: the timeout, the hangs and the waits are fake
// time, so a busy machine cannot turn a served reply into a timeout.
func TestFaultInjectionScriptedServer(t *testing.T) {
	path := bubbleStoreFile(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	synctest.Test(t, func(t *testing.T) {
		st := openBubbleStore(t, path)
		defer st.Close()
		ctx := context.Background()
		qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
		require.NoError(t, err)
		ag := oracle.New(qs)
		healthy, stopHealthy := serveMem(ag)
		defer stopHealthy()
		faulty := newFaultyServer(ag, 2*time.Millisecond)
		flaky, stopFlaky := serveMem(faulty)
		defer stopFlaky()

		cfg := DefaultRunConfig()
		cfg.Model, cfg.Objectives, cfg.Tasks, cfg.Concurrency, cfg.Policy = oracle.ModelName, 2, 60, 8, "mem1"
		cfg.TimeoutSeconds = 0.5
		cfg.Endpoint = memURL
		fastRetries(&cfg)
		// About 3 calls in 10 fail; which ones depends on how the 8 workers'
		// requests interleave, so with 6 retries a call failed all 7 times in
		// about one run in twenty. With 12 retries that is about 3 in 10^7 per
		// call: every rollout recovers, as the test means to show.
		cfg.Retries = 12
		cfg.Name = "healthy"
		ref, err := (&Runner{Store: st, Env: st, NewModel: healthy}).Run(ctx, cfg, nil)
		require.NoError(t, err)
		cfg.Name = "flaky"
		got, err := (&Runner{Store: st, Env: st, NewModel: flaky}).Run(ctx, cfg, nil)
		require.NoError(t, err)

		refRows := assertSettled(t, st, ref.Experiment, 60)
		rows := assertSettled(t, st, got.Experiment, 60)
		for i := range rows {
			assert.Equal(t, storage.StatusDone, rows[i].Status, rows[i].Error)
			assert.Equal(t, refRows[i].TaskKey, rows[i].TaskKey)
			assert.Equal(t, refRows[i].EM, rows[i].EM, "retries are invisible in the result of %s", rows[i].TaskKey)
			assert.Equal(t, refRows[i].Turns, rows[i].Turns)
		}
		retries, attempts := retriesOf(t, st, got.Experiment)
		kinds := map[string]int{}
		for _, a := range attempts {
			switch {
			case a.Status == 429:
				kinds["429"]++
			case a.Status == 503:
				kinds["503"]++
			case strings.Contains(a.Error, "timed out"):
				kinds["hang"]++
			default:
				kinds["drop"]++
			}
		}
		t.Logf("failed calls: %d %v; injected %d hangs, %d drops, %d 429s, %d 503s", retries, kinds,
			faulty.faults["hang"].Load(), faulty.faults["drop"].Load(), faulty.faults["429"].Load(), faulty.faults["503"].Load())
		for _, k := range []string{"hang", "drop", "429", "503"} {
			assert.Positive(t, kinds[k], "a %s is recorded", k)
			assert.EqualValues(t, faulty.faults[k].Load(), kinds[k], "every injected %s is one recorded attempt", k)
		}
	})
}

// TestExhaustedRetriesFailTheRolloutOnly: a server that always answers 503
// fails each rollout after its retries with the error, and the breaker pauses
// the endpoint after the configured failures in a row (measured in the
// bubble's fake time).
func TestExhaustedRetriesFailTheRolloutOnly(t *testing.T) {
	path := bubbleStoreFile(t)
	synctest.Test(t, func(t *testing.T) {
		st := openBubbleStore(t, path)
		defer st.Close()
		var calls atomic.Int64
		var mu sync.Mutex
		var times []time.Time
		newModel, stop := serveMem(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			mu.Lock()
			times = append(times, time.Now())
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"message":"down for maintenance","type":"server_error","param":null,"code":null}}`))
		}))
		defer stop()
		cfg := DefaultRunConfig()
		cfg.Endpoint, cfg.Model, cfg.Tasks, cfg.Concurrency = memURL, "m", 2, 1
		cfg.Retries, cfg.RetryBaseSeconds, cfg.BreakerFailures, cfg.BreakerCooldownSeconds = 3, 0.001, 3, 0.3
		sum, err := (&Runner{Store: st, Env: st, NewModel: newModel}).Run(context.Background(), cfg, nil)
		require.NoError(t, err)
		rows := assertSettled(t, st, sum.Experiment, 2)
		for _, r := range rows {
			assert.Equal(t, storage.StatusFailed, r.Status)
			assert.Contains(t, r.Error, "down for maintenance")
			assert.Contains(t, r.Error, "gave up after 4 attempts")
		}
		assert.EqualValues(t, 8, calls.Load(), "1 call and 3 retries per rollout")
		// The breaker opened after the 3rd failure in a row: a pause of the cooldown follows it.
		mu.Lock()
		defer mu.Unlock()
		assert.GreaterOrEqual(t, times[3].Sub(times[2]), 300*time.Millisecond, "breaker pause")
		assert.Less(t, times[2].Sub(times[1]), 300*time.Millisecond, "no pause before the breaker opens")
	})
}

// TestRetryAfterIsHonoured: a 429 with Retry-After: 1 delays the retry by a
// second of the bubble's fake time.
func TestRetryAfterIsHonoured(t *testing.T) {
	path := bubbleStoreFile(t)
	synctest.Test(t, func(t *testing.T) {
		st := openBubbleStore(t, path)
		defer st.Close()
		ctx := context.Background()
		qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
		require.NoError(t, err)
		ag := oracle.New(qs)
		var mu sync.Mutex
		var times []time.Time
		newModel, stop := serveMem(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			times = append(times, time.Now())
			first := len(times) == 1
			mu.Unlock()
			if first {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = w.Write([]byte(`{"error":{"message":"quota","type":"rate_limit","param":null,"code":null}}`))
				return
			}
			ag.ServeHTTP(w, r)
		}))
		defer stop()
		cfg := DefaultRunConfig()
		cfg.Endpoint, cfg.Model, cfg.Tasks, cfg.Objectives, cfg.Concurrency = memURL, "m", 1, 1, 1
		cfg.RetryBaseSeconds = 0.001
		sum, err := (&Runner{Store: st, Env: st, NewModel: newModel}).Run(ctx, cfg, nil)
		require.NoError(t, err)
		rows := assertSettled(t, st, sum.Experiment, 1)
		assert.Equal(t, storage.StatusDone, rows[0].Status)
		mu.Lock()
		defer mu.Unlock()
		require.GreaterOrEqual(t, len(times), 2)
		assert.GreaterOrEqual(t, times[1].Sub(times[0]), time.Second, "the retry waited for Retry-After")
		assert.Less(t, times[1].Sub(times[0]), 1100*time.Millisecond, "and not much longer")
	})
}

func TestRetryableClassification(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{&CallError{Status: 429, Err: fmt.Errorf("x")}, true},
		{&CallError{Status: 500, Err: fmt.Errorf("x")}, true},
		{&CallError{Status: 408, Err: fmt.Errorf("x")}, true},
		{&CallError{Status: 400, Err: fmt.Errorf("context_length_exceeded")}, false},
		{&CallError{Status: 404, Err: fmt.Errorf("model not found")}, false},
		{&CallError{Timeout: true, Err: fmt.Errorf("x")}, true},
		{fmt.Errorf("read: connection reset by peer"), true},
		{context.Canceled, false},
		{fmt.Errorf("prompt too long"), false},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, Retryable(c.err), "%v", c.err)
	}
	rp := retryPolicy{base: 100 * time.Millisecond, max: time.Second}
	for attempt := 1; attempt < 8; attempt++ {
		d := rp.backoff(attempt, 0)
		ceil := min(rp.base<<(attempt-1), rp.max)
		assert.GreaterOrEqual(t, d, ceil/2)
		assert.LessOrEqual(t, d, ceil)
	}
	assert.Equal(t, 3*time.Second, rp.backoff(1, 3*time.Second), "Retry-After wins over a shorter backoff")
	assert.Equal(t, 2*time.Second, parseRetryAfter("2", time.Now()))
	assert.Zero(t, parseRetryAfter("soon", time.Now()))
}

// countingServer counts generation requests and notes their times.
type countingServer struct {
	next    http.Handler
	latency time.Duration
	mu      sync.Mutex
	times   []time.Time
}

func (c *countingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "completions") {
		c.mu.Lock()
		c.times = append(c.times, time.Now())
		c.mu.Unlock()
		time.Sleep(c.latency)
	}
	c.next.ServeHTTP(w, r)
}

func (c *countingServer) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.times)
}

// TestTwoEndpointsShareLoad: two endpoints serving one model with
// concurrency 1 and 3 take a quarter and three quarters of the rollouts. In a
// synctest bubble both answer in exactly 25 ms of fake time, so the share
// does not depend on how the machine schedules the test.
func TestTwoEndpointsShareLoad(t *testing.T) {
	path := bubbleStoreFile(t)
	synctest.Test(t, func(t *testing.T) {
		st := openBubbleStore(t, path)
		defer st.Close()
		ctx := context.Background()
		qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
		require.NoError(t, err)
		ag := oracle.New(qs)
		a := &countingServer{next: ag, latency: 25 * time.Millisecond}
		b := &countingServer{next: ag, latency: 25 * time.Millisecond}
		modelA, stopA := serveMem(a)
		defer stopA()
		modelB, stopB := serveMem(b)
		defer stopB()
		cfg := DefaultRunConfig()
		cfg.Objectives, cfg.Tasks = 1, 120
		cfg.Endpoints = []EndpointProfile{
			{Name: "gpu-a", URL: "http://a.mem.test/v1", Model: oracle.ModelName, Mode: ModeCompletions, Concurrency: 1},
			{Name: "gpu-b", URL: "http://b.mem.test/v1", Model: oracle.ModelName, Mode: ModeCompletions, Concurrency: 3},
		}
		newModel := func(c RunConfig) (core.Model, error) {
			if strings.Contains(c.Endpoint, "//a.") {
				return modelA(c)
			}
			return modelB(c)
		}
		var last Progress
		sum, err := (&Runner{Store: st, Env: st, NewModel: newModel}).Run(ctx, cfg, func(p Progress) { last = p })
		require.NoError(t, err)
		rows := assertSettled(t, st, sum.Experiment, 120)
		runs, err := st.RolloutRuns(ctx, sum.Experiment)
		require.NoError(t, err)
		per := map[string]int{}
		for _, r := range runs {
			per[r.Endpoint]++
		}
		for _, r := range rows {
			assert.Equal(t, storage.StatusDone, r.Status)
		}
		shareB := float64(b.count()) / float64(a.count()+b.count())
		t.Logf("requests: a %d, b %d (share of b %.3f, want 0.75); rollouts %v", a.count(), b.count(), shareB, per)
		assert.InDelta(t, 0.75, shareB, 0.075, "within 10%% of the concurrency share")
		assert.Equal(t, 120, per["gpu-a"]+per["gpu-b"])
		require.Len(t, last.Endpoints, 2)
		assert.Equal(t, a.count(), last.Endpoints[0].Requests)
		assert.Equal(t, b.count(), last.Endpoints[1].Requests)
	})
}

// TestRateLimitHolds: an endpoint capped at 40 requests per second with
// plenty of concurrency is sent requests at that rate, and no window of them is
// faster. It runs in a synctest bubble (fake time), so the rate is exact
// however busy the machine is.
func TestRateLimitHolds(t *testing.T) {
	path := bubbleStoreFile(t)
	synctest.Test(t, func(t *testing.T) {
		st := openBubbleStore(t, path)
		defer st.Close()
		ctx := context.Background()
		qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
		require.NoError(t, err)
		c := &countingServer{next: oracle.New(qs)}
		newModel, stop := serveMem(c)
		defer stop()
		cfg := DefaultRunConfig()
		cfg.Endpoint, cfg.Model, cfg.Objectives, cfg.Tasks, cfg.Concurrency = memURL, oracle.ModelName, 1, 40, 8
		cfg.RequestsPerSecond = 40
		sum, err := (&Runner{Store: st, Env: st, NewModel: newModel}).Run(ctx, cfg, nil)
		require.NoError(t, err)
		assertSettled(t, st, sum.Experiment, 40)
		c.mu.Lock()
		defer c.mu.Unlock()
		n := len(c.times)
		require.Equal(t, 80, n, "a search and an answer per rollout")
		rate := float64(n-1) / c.times[n-1].Sub(c.times[0]).Seconds()
		t.Logf("%d requests at %.3f/s of fake time (cap 40/s)", n, rate)
		assert.InEpsilon(t, 40, rate, 0.01)
		// No two requests closer than the cap allows (burst 1: evenly spaced).
		for i := 1; i < n; i++ {
			assert.GreaterOrEqual(t, c.times[i].Sub(c.times[i-1]), 25*time.Millisecond-time.Microsecond, "requests %d, %d", i-1, i)
		}
	})
}

// bubbleOracleRun is, inside a synctest bubble, the retrieval oracle
// served in memory (5 ms a reply, calls counted) and a Runner on st with an
// experiment of tasks 2-objective tasks at concurrency conc created for it;
// stop closes the server.
type bubbleOracleRun struct {
	r        *Runner
	c        *countingServer
	newModel func(RunConfig) (core.Model, error)
	expID    int64
	stop     func()
}

func newBubbleOracleRun(t *testing.T, st *storage.Store, tasks, conc int) bubbleOracleRun {
	t.Helper()
	ctx := context.Background()
	qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	c := &countingServer{next: oracle.New(qs), latency: 5 * time.Millisecond}
	newModel, stop := serveMem(c)
	cfg := DefaultRunConfig()
	cfg.Endpoint, cfg.Model, cfg.Objectives, cfg.Tasks, cfg.Concurrency = memURL, oracle.ModelName, 2, tasks, conc
	r := &Runner{Store: st, Env: st, Heartbeat: 20 * time.Millisecond, NewModel: newModel}
	expID, err := r.Create(ctx, cfg)
	if err != nil {
		stop()
		require.NoError(t, err)
	}
	return bubbleOracleRun{r: r, c: c, newModel: newModel, expID: expID, stop: stop}
}

// TestPauseResumeCancelAndResumeFromStore: pause stops new calls, resume lets
// them go on, cancel ends the run, and Resume finishes it with every rollout
// done once and its turns contiguous. It runs in a synctest bubble: "nothing
// starts while paused" is checked over fake seconds after the bubble settles,
// not by sleeping.
func TestPauseResumeCancelAndResumeFromStore(t *testing.T) {
	path := bubbleStoreFile(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	synctest.Test(t, func(t *testing.T) {
		st := openBubbleStore(t, path)
		defer st.Close()
		ctx := context.Background()
		o := newBubbleOracleRun(t, st, 30, 3)
		defer o.stop()
		r, c, newModel, expID := o.r, o.c, o.newModel, o.expID

		turns := make(chan Progress, 1000)
		errc := make(chan error, 1)
		go func() {
			_, err := r.Resume(ctx, expID, func(p Progress) { turns <- p })
			errc <- err
		}()
		for p := range turns {
			if p.Turns >= 10 {
				break
			}
		}
		require.NoError(t, r.Control(ctx, expID, "pause"))
		running, paused := r.Active(expID)
		assert.True(t, running)
		assert.True(t, paused)
		// Calls already past the gate finish within a fake second; then nothing new starts.
		time.Sleep(time.Second)
		synctest.Wait()
		before := c.count()
		time.Sleep(10 * time.Second)
		synctest.Wait()
		assert.Equal(t, before, c.count(), "no call starts while paused")
		e, err := st.Experiment(ctx, expID)
		require.NoError(t, err)
		assert.Equal(t, StatusPaused, e.Status)

		require.NoError(t, r.Control(ctx, expID, "resume"))
		for p := range turns {
			if p.Turns >= 30 {
				break
			}
		}
		assert.Greater(t, c.count(), before, "calls go on after resume")
		// Cancel through the store, as `mem1lab cancel` does from another process.
		require.NoError(t, st.SetExperimentControl(ctx, expID, "cancel"))
		go func() {
			for range turns {
			}
		}()
		err = <-errc
		require.ErrorIs(t, err, context.Canceled)
		e, err = st.Experiment(ctx, expID)
		require.NoError(t, err)
		assert.Equal(t, storage.StatusCancelled, e.Status)
		assert.Less(t, e.Done, 30)

		sum, err := (&Runner{Store: st, Env: st, NewModel: newModel}).Resume(ctx, expID, nil)
		require.NoError(t, err)
		rows := assertSettled(t, st, sum.Experiment, 30)
		for _, row := range rows {
			assert.Equal(t, storage.StatusDone, row.Status)
			assert.Equal(t, 3, row.Turns, "two searches and the answer, none twice")
		}
		close(turns)
	})
}

// TestPauseIsNoPartOfRolloutTime: the time a run is paused (100 fake
// seconds in a synctest bubble) is left out of the seconds and turn
// latencies of the rollouts it held mid-way, so a paused run's time figures
// equal an unpaused one's.
func TestPauseIsNoPartOfRolloutTime(t *testing.T) {
	path := bubbleStoreFile(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	synctest.Test(t, func(t *testing.T) {
		st := openBubbleStore(t, path)
		defer st.Close()
		ctx := context.Background()
		o := newBubbleOracleRun(t, st, 4, 2)
		defer o.stop()
		r, expID := o.r, o.expID
		progress := make(chan Progress, 1000)
		errc := make(chan error, 1)
		began := time.Now()
		go func() {
			_, err := r.Resume(ctx, expID, func(p Progress) { progress <- p })
			errc <- err
		}()
		for p := range progress {
			if p.Turns >= 1 {
				break
			}
		}
		require.NoError(t, r.Control(ctx, expID, "pause"))
		time.Sleep(100 * time.Second)
		synctest.Wait()
		require.NoError(t, r.Control(ctx, expID, "resume"))
		go func() {
			for range progress {
			}
		}()
		require.NoError(t, <-errc)
		require.Greater(t, time.Since(began), 100*time.Second, "the run itself took the pause")
		rows := assertSettled(t, st, expID, 4)
		for _, row := range rows {
			assert.Less(t, row.Seconds, 10.0, "rollout %d: its seconds leave the pause out", row.ID)
			turns, err := st.Turns(ctx, row.ID)
			require.NoError(t, err)
			for _, tu := range turns {
				assert.Less(t, tu.Latency, 10*time.Second, "rollout %d turn %d", row.ID, tu.Index)
				assert.GreaterOrEqual(t, tu.Latency, time.Duration(0))
			}
		}
		close(progress)
	})
}

// TestResumeRefusesALiveOwner: a lease refreshed by a live process is not taken.
func TestResumeRefusesALiveOwner(t *testing.T) {
	st := bundleStore(t)
	ctx := context.Background()
	cfg := DefaultRunConfig()
	cfg.Tasks = 1
	r := &Runner{Store: st, Env: st}
	id, err := r.Create(ctx, cfg)
	require.NoError(t, err)
	ok, err := st.ClaimExperiment(ctx, id, fmt.Sprintf("elsewhere|%d|x", 1), "")
	require.NoError(t, err)
	require.True(t, ok)
	_, err = r.Resume(ctx, id, nil)
	require.ErrorIs(t, err, ErrBusy, "another host's fresh lease")
	// A lease of a process gone from this host is taken at once.
	host, _ := os.Hostname()
	ok, err = st.ClaimExperiment(ctx, id, fmt.Sprintf("%s|%d|x", host, math.MaxInt32), fmt.Sprintf("elsewhere|%d|x", 1))
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, r.Control(ctx, id, "cancel"))
	e, err := st.Experiment(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, storage.StatusCancelled, e.Status, "cancel with no live owner settles the experiment")
}

// TestGridPlan: objectives × policies × models expand into settings and rollouts.
func TestGridPlan(t *testing.T) {
	st := bundleStore(t)
	qs, err := st.Questions(context.Background(), "hotpotqa", 0, 0)
	require.NoError(t, err)
	cfg := DefaultRunConfig()
	cfg.ObjectivesGrid, cfg.Policies, cfg.Tasks = []int{1, 2, 4}, []string{"mem1", "full"}, 5
	cfg.Endpoints = []EndpointProfile{
		{Name: "a", URL: "http://a:8000/v1", Model: "m1", Mode: ModeCompletions, Concurrency: 2},
		{Name: "b", URL: "http://b:8000/v1", Model: "m1", Mode: ModeCompletions, Concurrency: 2},
		{Name: "c", URL: "http://c:8000/v1", Model: "m2", Mode: ModeChat, Concurrency: 1},
	}
	require.NoError(t, cfg.Validate())
	plan, err := PlanGrid(cfg, qs)
	require.NoError(t, err)
	assert.Len(t, plan.Settings, 3*2*2)
	assert.Equal(t, 3*2*2*5, plan.Rollouts)
	assert.Len(t, plan.Tasks, 15)

	cfg.ObjectivesGrid = []int{2, 0, 2}
	cfg.Policies = []string{"mem1", "nope"}
	cfg.Endpoints[1].Name = "a"
	cfg.Endpoints[2].Concurrency = 0
	err = cfg.Validate()
	require.Error(t, err)
	for _, want := range []string{"objectives_grid: entry 2 is 0", "objectives_grid: 2 is listed twice",
		"policies: entry 2", `endpoints[2]: name "a" is used twice`, "endpoints[3]: concurrency: 0"} {
		assert.Contains(t, err.Error(), want)
	}
}

var _ core.Model = (*callModel)(nil)

// TestOrphanedExperiment: an experiment left "running" by a process that is gone
// is orphaned; one a live process holds, or a finished one, is not.
func TestOrphanedExperiment(t *testing.T) {
	st := bundleStore(t)
	ctx := context.Background()
	cfg := DefaultRunConfig()
	cfg.Tasks = 1
	r := &Runner{Store: st, Env: st}
	id, err := r.Create(ctx, cfg)
	require.NoError(t, err)
	require.NoError(t, st.SetExperimentStatus(ctx, id, storage.StatusRunning))

	ok, err := st.ClaimExperiment(ctx, id, fmt.Sprintf("elsewhere|%d|x", 1), "")
	require.NoError(t, err)
	require.True(t, ok)
	gone, err := r.Orphaned(ctx, id)
	require.NoError(t, err)
	assert.False(t, gone, "another host's fresh lease: its owner may be running it")

	host, _ := os.Hostname()
	ok, err = st.ClaimExperiment(ctx, id, fmt.Sprintf("%s|%d|x", host, math.MaxInt32), fmt.Sprintf("elsewhere|%d|x", 1))
	require.NoError(t, err)
	require.True(t, ok)
	gone, err = r.Orphaned(ctx, id)
	require.NoError(t, err)
	assert.True(t, gone, "its owner's process is gone from this host")

	require.NoError(t, st.SetExperimentStatus(ctx, id, storage.StatusCancelled))
	gone, err = r.Orphaned(ctx, id)
	require.NoError(t, err)
	assert.False(t, gone, "a settled experiment is not orphaned")
}
