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
				ok, err := tw.claimLater(id, "ep", "")()
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

// submit hands a write to the group commit without waiting: its callback
// gets the outcome once the batch is committed, and the time is not counted
// as a worker's wait for the store.
func TestGroupCommitSubmitCallsBackAfterCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &batchRecorder{}
		tw := newTurnWriter(rec)
		got := make(chan storage.WriteOutcome, 1)
		tw.submit(storage.Write{RolloutID: 3, Claim: &storage.Claim{Endpoint: "e"}}, func(o storage.WriteOutcome) { got <- o })
		o := <-got
		assert.True(t, o.Claimed, "the outcome of the committed write")
		tw.close()
		assert.Equal(t, []int{1}, rec.sizes())
		assert.Zero(t, tw.storeWait())
	})
}

// With a group commit, the paper lane stores each finished rollout's figures
// as a Paper write in the run's batches (no transaction of its own), and
// counts the paper peak into its setting only once that batch is committed.
func TestPaperLaneWritesThroughGroupCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &batchRecorder{}
		tw := newTurnWriter(rec)
		tr := newTracker(1, nil, nil, nil, nil)
		lane := newPaperLane(nil, tw, tr) // no paperSetter: every figure must go through tw
		task := core.Task{Key: "k", Objectives: []core.Objective{{Question: "q?", Gold: []string{"Paris"}}}}
		turns := []core.Turn{{Index: 0, Response: "<think>\nit is Paris\n</think>\n<answer>Paris</answer>", InternalState: "it is Paris",
			Action: core.ActionAnswer, Answer: "Paris"}}
		for id := int64(1); id <= 3; id++ {
			lane.add(paperJob{j: storage.PendingRollout{ID: id, Task: task, Policy: "mem1", Model: "m"}, status: storage.StatusDone,
				turns: turns, tags: core.DefaultTags(), requestPeak: 100 + int(id), source: core.TokenSourceEstimate})
		}
		lane.close()
		tw.close()
		rec.mu.Lock()
		defer rec.mu.Unlock()
		seen := map[int64]*storage.PaperFigures{}
		for _, b := range rec.batches {
			for _, w := range b {
				require.NotNil(t, w.Paper, "only paper writes were handed in")
				seen[w.RolloutID] = w.Paper
			}
		}
		require.Len(t, seen, 3)
		for id, p := range seen {
			assert.Equal(t, 100+int(id), p.RequestPeak)
			assert.Equal(t, core.TokenSourceEstimate, p.Source)
			want := core.RolloutPaperMetrics(task, turns, core.DefaultTags(), "mem1")
			assert.Equal(t, want, p.Metrics)
		}
		tr.mu.Lock()
		defer tr.mu.Unlock()
		s := tr.settings[settingKey{"m", "mem1", 1}]
		require.NotNil(t, s)
		assert.Equal(t, 3, s.PaperPeakN, "each committed figure counted once")
	})
}
