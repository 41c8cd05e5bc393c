package experiments

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// batchRecorder is a batchWriteStore that records each batch and when it came.
type batchRecorder struct {
	mu      sync.Mutex
	batches [][]storage.Write
	at      []time.Time
}

func (r *batchRecorder) ApplyWrites(_ context.Context, ws []storage.Write) []storage.WriteOutcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.batches = append(r.batches, ws)
	r.at = append(r.at, time.Now())
	out := make([]storage.WriteOutcome, len(ws))
	for i, w := range ws {
		out[i].Claimed = w.Claim != nil
	}
	return out
}

func (r *batchRecorder) sizes() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n []int
	for _, b := range r.batches {
		n = append(n, len(b))
	}
	return n
}

// With no turn on its way, a write commits at once: no waiting.
func TestGroupCommitAloneCommitsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &batchRecorder{}
		tw := newTurnWriter(rec)
		defer tw.close()
		began := time.Now()
		require.NoError(t, tw.append(1, core.Turn{Index: 0}))
		assert.Equal(t, []int{1}, rec.sizes())
		assert.Equal(t, began, rec.at[0], "committed without waiting")
	})
}

// While other rollouts have replies on their way, the batch waits for them
// and commits them together as soon as the last one arrives.
func TestGroupCommitGathersTurnsOnTheirWay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &batchRecorder{}
		tw := newTurnWriter(rec)
		defer tw.close()
		began := time.Now()
		tw.soon.Store(2) // two more rollouts got their replies
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); _ = tw.append(1, core.Turn{Index: 0}) }()
		synctest.Wait()
		assert.Empty(t, rec.sizes(), "the first write waits for the turns on their way")
		for _, id := range []int64{2, 3} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tw.soon.Add(-1) // handed in
				ok, err := tw.claim(id, "ep", "")
				assert.NoError(t, err)
				assert.True(t, ok)
			}()
			time.Sleep(100 * time.Microsecond)
		}
		wg.Wait()
		assert.Equal(t, []int{3}, rec.sizes(), "one transaction for the three")
		assert.Less(t, rec.at[0].Sub(began), groupCommitWait)
	})
}

// A turn that is on its way but never arrives holds a batch for
// groupCommitWait at most.
func TestGroupCommitWaitsAtMostTheWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &batchRecorder{}
		tw := newTurnWriter(rec)
		defer tw.close()
		tw.soon.Store(1)
		began := time.Now()
		require.NoError(t, tw.finish(1, storage.RolloutResult{Status: storage.StatusDone}))
		assert.Equal(t, []int{1}, rec.sizes())
		assert.Equal(t, groupCommitWait, rec.at[0].Sub(began))
	})
}
