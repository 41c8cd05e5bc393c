package experiments

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
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

// A turn the store cannot commit stops its rollout as failed, naming the
// turn, with the turns before it stored and none after it.
func TestTurnCommitFailureStopsRollout(t *testing.T) {
	st := bundleStore(t)
	srv := countingStub(t, make(chan int))
	gs := &gatedTurns{Store: st, fail: map[int]bool{1: true}}
	cfg := DefaultRunConfig()
	cfg.Name = "commit failure"
	cfg.Endpoint, cfg.Model, cfg.Objectives, cfg.Tasks, cfg.Concurrency, cfg.MaxTurns = srv.URL+"/v1", "stub", 1, 1, 1, 4
	sum, err := (&Runner{Store: gs, Env: fixedEnv{}}).Run(context.Background(), cfg, nil)
	require.NoError(t, err)
	rows, err := st.Rollouts(context.Background(), sum.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, storage.StatusFailed, rows[0].Status)
	assert.Contains(t, rows[0].Error, "turn 1 not stored")
	assert.Contains(t, rows[0].Error, "disk full (injected)")
	d, err := st.Rollout(context.Background(), rows[0].ID)
	require.NoError(t, err)
	require.Len(t, d.Turns, 1, "turn 0 stored, turn 1 failed, nothing after it")
	assert.Equal(t, 0, d.Turns[0].Index)
}

// The last turn's failed commit fails the rollout too.
func TestLastTurnCommitFailureFailsRollout(t *testing.T) {
	st := bundleStore(t)
	srv := countingStub(t, make(chan int))
	gs := &gatedTurns{Store: st, fail: map[int]bool{2: true}}
	cfg := DefaultRunConfig()
	cfg.Name = "last commit failure"
	cfg.Endpoint, cfg.Model, cfg.Objectives, cfg.Tasks, cfg.Concurrency, cfg.MaxTurns = srv.URL+"/v1", "stub", 1, 1, 1, 3
	sum, err := (&Runner{Store: gs, Env: fixedEnv{}}).Run(context.Background(), cfg, nil)
	require.NoError(t, err)
	rows, err := st.Rollouts(context.Background(), sum.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, storage.StatusFailed, rows[0].Status)
	assert.Contains(t, rows[0].Error, "turn 2")
	assert.Contains(t, rows[0].Error, "disk full (injected)")
	d, err := st.Rollout(context.Background(), rows[0].ID)
	require.NoError(t, err)
	assert.Len(t, d.Turns, 2)
}
