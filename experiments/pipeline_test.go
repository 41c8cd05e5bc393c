package experiments

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/storage"
)

// gatedTurns is the store with its group commit held on the first turn of
// each rollout until release is closed, and failing the turns fail names.
type gatedTurns struct {
	*storage.Store
	release chan struct{}
	fail    map[int]bool // turn indices whose write fails
	onFail  func()       // called when a write is failed (may be nil)
	mu      sync.Mutex
	held    bool
}

func (g *gatedTurns) ApplyWrites(ctx context.Context, ws []storage.Write) []storage.WriteOutcome {
	for _, w := range ws {
		if w.Turn != nil && w.Turn.Index == 0 && g.release != nil {
			g.mu.Lock()
			first := !g.held
			g.held = true
			g.mu.Unlock()
			if first {
				<-g.release
			}
		}
	}
	out := make([]storage.WriteOutcome, len(ws))
	var keep []storage.Write
	var at []int
	for i, w := range ws {
		if w.Turn != nil && g.fail[w.Turn.Index] {
			if g.onFail != nil {
				g.onFail()
			}
			out[i].Err = errors.New("disk full (injected)")
			continue
		}
		keep = append(keep, w)
		at = append(at, i)
	}
	for k, o := range g.Store.ApplyWrites(ctx, keep) {
		out[at[k]] = o
	}
	return out
}

// countingStub is stubServer that reports each request on calls.
func countingStub(t *testing.T, calls chan<- int) *httptest.Server {
	inner := stubServer(0)
	t.Cleanup(inner.Close)
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		select {
		case calls <- k:
		default:
		}
		inner.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A rollout's next model call goes out while its last turn is still being
// committed (the commit is off the rollout's path), the turn counts in the
// progress only once stored, and every turn is stored in the end.
func TestTurnCommitOverlapsNextCall(t *testing.T) {
	st := bundleStore(t)
	calls := make(chan int, 16)
	srv := countingStub(t, calls)
	gs := &gatedTurns{Store: st, release: make(chan struct{})}
	cfg := DefaultRunConfig()
	cfg.Name = "overlap"
	cfg.Endpoint, cfg.Model, cfg.Objectives, cfg.Tasks, cfg.Concurrency, cfg.MaxTurns = srv.URL+"/v1", "stub", 1, 1, 1, 3
	var mu sync.Mutex
	var seen []int
	done := make(chan error, 1)
	var sum Summary
	go func() {
		var err error
		sum, err = (&Runner{Store: gs, Env: fixedEnv{}}).Run(context.Background(), cfg, func(p Progress) {
			mu.Lock()
			seen = append(seen, p.Turns)
			mu.Unlock()
		})
		done <- err
	}()
	for want := 1; want <= 2; want++ {
		select {
		case k := <-calls:
			require.Equal(t, want, k)
		case err := <-done:
			t.Fatalf("run ended before its second call: %v", err)
		case <-time.After(time.Minute): // a hang guard, not a timing assertion
			t.Fatal("the second model call waited for the first turn's commit")
		}
	}
	mu.Lock()
	for _, n := range seen {
		assert.Zero(t, n, "no turn counted before it is stored")
	}
	mu.Unlock()
	close(gs.release)
	require.NoError(t, <-done)
	rows, err := st.Rollouts(context.Background(), sum.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, storage.StatusDone, rows[0].Status)
	d, err := st.Rollout(context.Background(), rows[0].ID)
	require.NoError(t, err)
	require.Len(t, d.Turns, 3)
	mu.Lock()
	assert.Equal(t, 3, seen[len(seen)-1])
	mu.Unlock()
}

// runFailingTurn plays one task of maxTurns turns against the stub with the
// write of turn fail failing (onFail, when not nil, called as it fails), and
// returns the rollout as stored and the run's error.
func runFailingTurn(t *testing.T, ctx context.Context, name string, fail, maxTurns int, onFail func()) (storage.RolloutDetail, error) {
	t.Helper()
	st := bundleStore(t)
	srv := countingStub(t, make(chan int))
	gs := &gatedTurns{Store: st, fail: map[int]bool{fail: true}, onFail: onFail}
	cfg := DefaultRunConfig()
	cfg.Name = name
	cfg.Endpoint, cfg.Model, cfg.Objectives, cfg.Tasks, cfg.Concurrency, cfg.MaxTurns = srv.URL+"/v1", "stub", 1, 1, 1, maxTurns
	r := &Runner{Store: gs, Env: fixedEnv{}}
	expID, err := r.Create(context.Background(), cfg)
	require.NoError(t, err)
	_, runErr := r.Resume(ctx, expID, nil)
	rows, err := st.Rollouts(context.Background(), expID)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	d, err := st.Rollout(context.Background(), rows[0].ID)
	require.NoError(t, err)
	return d, runErr
}

// A turn the store cannot commit stops its rollout as failed, naming the
// turn, with the turns before it stored and none after it.
func TestTurnCommitFailureStopsRollout(t *testing.T) {
	d, err := runFailingTurn(t, context.Background(), "commit failure", 1, 4, nil)
	require.NoError(t, err)
	assert.Equal(t, storage.StatusFailed, d.Status)
	assert.Contains(t, d.Error, "turn 1 not stored")
	assert.Contains(t, d.Error, "disk full (injected)")
	require.Len(t, d.Turns, 1, "turn 0 stored, turn 1 failed, nothing after it")
	assert.Equal(t, 0, d.Turns[0].Index)
}

// The last turn's failed commit fails the rollout too.
func TestLastTurnCommitFailureFailsRollout(t *testing.T) {
	d, err := runFailingTurn(t, context.Background(), "last commit failure", 2, 3, nil)
	require.NoError(t, err)
	assert.Equal(t, storage.StatusFailed, d.Status)
	assert.Contains(t, d.Error, "turn 2")
	assert.Contains(t, d.Error, "disk full (injected)")
	assert.Len(t, d.Turns, 2)
}

// When the run is cancelled while its last turn and result fail to store, the
// rollout is stored cancelled (resumable: the last turn is played again), not
// failed.
func TestLastTurnCommitFailureWhileCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d, err := runFailingTurn(t, ctx, "last commit failure, cancelled", 2, 3, cancel)
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, storage.StatusCancelled, d.Status)
	assert.Contains(t, d.Error, "turn 2")
	assert.Len(t, d.Turns, 2)
}

// batchLog is the store, recording the writes of each group commit.
type batchLog struct {
	*storage.Store
	mu      sync.Mutex
	batches [][]storage.Write
}

func (b *batchLog) ApplyWrites(ctx context.Context, ws []storage.Write) []storage.WriteOutcome {
	b.mu.Lock()
	b.batches = append(b.batches, append([]storage.Write(nil), ws...))
	b.mu.Unlock()
	return b.Store.ApplyWrites(ctx, ws)
}

// A worker hands in a rollout's result and claims its next rollout without
// waiting in between, so the two share a commit; every result is stored and
// counted by the end of the run.
func TestFinishSharesCommitWithNextClaim(t *testing.T) {
	st := bundleStore(t)
	srv := countingStub(t, make(chan int))
	bl := &batchLog{Store: st}
	cfg := DefaultRunConfig()
	cfg.Name = "finish with claim"
	cfg.Endpoint, cfg.Model, cfg.Objectives, cfg.Tasks, cfg.Concurrency, cfg.MaxTurns = srv.URL+"/v1", "stub", 1, 3, 1, 1
	var last Progress
	// A wide window: the claim joins its predecessor's result however slow
	// the machine (the window closes as soon as the claim is in).
	sum, err := (&Runner{Store: bl, Env: fixedEnv{}, groupWait: time.Minute}).Run(context.Background(), cfg, func(p Progress) { last = p })
	require.NoError(t, err)
	assert.Equal(t, 3, last.Done)
	assert.Equal(t, 0, last.Running)
	rows, err := st.Rollouts(context.Background(), sum.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 3)
	for _, r := range rows {
		assert.Equal(t, storage.StatusDone, r.Status)
	}
	bl.mu.Lock()
	defer bl.mu.Unlock()
	shared := 0
	for _, b := range bl.batches {
		var fin, claim int64
		for _, w := range b {
			if w.Finish != nil {
				fin = w.RolloutID
			}
			if w.Claim != nil {
				claim = w.RolloutID
			}
		}
		if fin != 0 && claim != 0 {
			assert.Less(t, fin, claim, "the result of the earlier rollout with the claim of the next")
			shared++
		}
	}
	assert.Equal(t, 2, shared, "each of the two later claims carries its predecessor's result")
}

// waitIdle calls idle only when the gate is paused, before it blocks.
func TestGateWaitIdle(t *testing.T) {
	g := newGate()
	calls := 0
	require.NoError(t, g.waitIdle(context.Background(), func() { calls++ }))
	assert.Zero(t, calls, "an open gate does not wait")
	g.set(true)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, g.waitIdle(ctx, func() { calls++ }), context.Canceled)
	assert.Equal(t, 1, calls)
}

// claimGate is the store recording each group commit's writes, with the
// commit of the first claim held until release is closed (when release is
// not nil), and the rollout steal taken by another owner just before its
// claim is applied (so that claim does not hold).
type claimGate struct {
	batchLog
	release chan struct{}
	steal   int64
	mu      sync.Mutex
	held    bool
}

func (g *claimGate) ApplyWrites(ctx context.Context, ws []storage.Write) []storage.WriteOutcome {
	for _, w := range ws {
		if w.Claim == nil {
			continue
		}
		if w.RolloutID == g.steal {
			_, _ = g.Store.ClaimRollout(ctx, w.RolloutID, "another owner")
		}
		g.mu.Lock()
		first := !g.held && g.release != nil
		g.held = true
		g.mu.Unlock()
		if first {
			<-g.release
		}
	}
	return g.batchLog.ApplyWrites(ctx, ws)
}

// A rollout's first model call goes out while its claim is being committed;
// its first turn is handed in only after the claim's commit, and its last
// turn rides in the write of its result.
func TestFirstCallOverlapsClaim(t *testing.T) {
	st := bundleStore(t)
	calls := make(chan int, 16)
	srv := countingStub(t, calls)
	g := &claimGate{batchLog: batchLog{Store: st}, release: make(chan struct{})}
	cfg := DefaultRunConfig()
	cfg.Name = "claim overlap"
	cfg.Endpoint, cfg.Model, cfg.Objectives, cfg.Tasks, cfg.Concurrency, cfg.MaxTurns = srv.URL+"/v1", "stub", 1, 1, 1, 2
	done := make(chan error, 1)
	var sum Summary
	go func() {
		var err error
		sum, err = (&Runner{Store: g, Env: fixedEnv{}}).Run(context.Background(), cfg, nil)
		done <- err
	}()
	select {
	case k := <-calls:
		require.Equal(t, 1, k)
	case err := <-done:
		t.Fatalf("run ended before its first call: %v", err)
	case <-time.After(time.Minute): // a hang guard, not a timing assertion
		t.Fatal("the first model call waited for the claim's commit")
	}
	close(g.release)
	require.NoError(t, <-done)
	rows, err := st.Rollouts(context.Background(), sum.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, storage.StatusDone, rows[0].Status)
	d, err := st.Rollout(context.Background(), rows[0].ID)
	require.NoError(t, err)
	require.Len(t, d.Turns, 2)

	g.mu.Lock()
	defer g.mu.Unlock()
	claimAt, firstTurnAt, lastWith := -1, -1, false
	for i, b := range g.batches {
		for _, w := range b {
			switch {
			case w.Claim != nil:
				claimAt = i
			case w.Turn != nil && w.Turn.Index == 0:
				firstTurnAt = i
			case w.Turn != nil && w.Turn.Index == 1:
				lastWith = w.Finish != nil && w.Finish.Status == storage.StatusDone
			}
		}
	}
	require.GreaterOrEqual(t, claimAt, 0)
	assert.Greater(t, firstTurnAt, claimAt, "the first turn is handed in after the claim's commit")
	assert.True(t, lastWith, "the last turn rides in its result's write")
}

// A rollout whose claim does not hold (another owner took it meanwhile) is
// left to that owner: none of its turns and no result are stored, though its
// first model call went out; the other rollouts play as usual.
func TestClaimThatDoesNotHoldStoresNothing(t *testing.T) {
	st := bundleStore(t)
	inner := stubServer(0)
	t.Cleanup(inner.Close)
	var stolen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The stolen rollout's calls fail as retryable, so a failed attempt
		// would be recorded for it if the runner did not check its claim.
		if strings.HasSuffix(r.Header.Get("X-Session-ID"), fmt.Sprintf("-r%d", stolen.Load())) {
			http.Error(w, "overloaded", http.StatusServiceUnavailable)
			return
		}
		inner.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cfg := DefaultRunConfig()
	cfg.Name = "stolen claim"
	cfg.Endpoint, cfg.Model, cfg.Objectives, cfg.Tasks, cfg.Concurrency, cfg.MaxTurns = srv.URL+"/v1", "stub", 1, 3, 1, 2
	r := &Runner{Env: fixedEnv{}}
	g := &claimGate{batchLog: batchLog{Store: st}}
	r.Store = g
	expID, err := r.Create(context.Background(), cfg)
	require.NoError(t, err)
	queued, err := st.QueuedRollouts(context.Background(), expID)
	require.NoError(t, err)
	require.Len(t, queued, 3)
	g.steal = queued[1].ID
	stolen.Store(g.steal)
	var last Progress
	_, err = r.Resume(context.Background(), expID, func(p Progress) { last = p })
	require.NoError(t, err)
	rows, err := st.Rollouts(context.Background(), expID)
	require.NoError(t, err)
	require.Len(t, rows, 3)
	for _, row := range rows {
		d, err := st.Rollout(context.Background(), row.ID)
		require.NoError(t, err)
		if row.ID == g.steal {
			assert.Equal(t, storage.StatusRunning, row.Status, "still the other owner's")
			assert.Empty(t, d.Turns)
			as, err := st.Attempts(context.Background(), row.ID)
			require.NoError(t, err)
			assert.Empty(t, as, "no failed attempt is recorded for a rollout this run does not own")
			continue
		}
		assert.Equal(t, storage.StatusDone, row.Status)
		assert.Len(t, d.Turns, 2)
	}
	assert.Equal(t, 2, last.Done)
	assert.Equal(t, 0, last.Running)
}

// A finished rollout counts as done once its result commits, even while the
// worker's next rollout waits on a slow first model call.
func TestResultCountsWhileNextCallIsSlow(t *testing.T) {
	st := bundleStore(t)
	inner := stubServer(0)
	t.Cleanup(inner.Close)
	release := make(chan struct{})
	var mu sync.Mutex
	n := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n++
		k := n
		mu.Unlock()
		if k == 2 {
			<-release // the second rollout's first call
		}
		inner.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	cfg := DefaultRunConfig()
	cfg.Name = "slow next call"
	cfg.Endpoint, cfg.Model, cfg.Objectives, cfg.Tasks, cfg.Concurrency, cfg.MaxTurns = srv.URL+"/v1", "stub", 1, 2, 1, 1
	doneOne := make(chan struct{})
	var once sync.Once
	finished := make(chan error, 1)
	go func() {
		_, err := (&Runner{Store: st, Env: fixedEnv{}}).Run(context.Background(), cfg, func(p Progress) {
			if p.Done == 1 {
				once.Do(func() { close(doneOne) })
			}
		})
		finished <- err
	}()
	select {
	case <-doneOne:
	case err := <-finished:
		t.Fatalf("run ended first: %v", err)
	case <-time.After(time.Minute): // a hang guard, not a timing assertion
		close(release)
		<-finished
		t.Fatal("the first rollout was not counted done while the next one's call was held")
	}
	close(release)
	require.NoError(t, <-finished)
}
