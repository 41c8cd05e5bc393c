package experiments

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

// Progress carries the calls in flight per endpoint and in all, and the
// share of the workers' time spent waiting for commits.
func TestProgressInFlightAndStoreWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := newEndpointState(EndpointProfile{Name: "a", Concurrency: 3}, nil, DefaultRunConfig().retryPolicy())
		b := newEndpointState(EndpointProfile{Name: "b", Concurrency: 1}, nil, DefaultRunConfig().retryPolicy())
		a.inFlight.Store(2)
		b.inFlight.Store(1)
		var got []Progress
		tr := newTracker(7, nil, []*endpointState{a, b}, nil, func(p Progress) { got = append(got, p) })
		tw := newTurnWriter(&batchRecorder{})
		defer tw.close()
		tr.writer = tw
		time.Sleep(10 * time.Second)
		tw.waitNS.Store(int64(8 * time.Second)) // 8 s of commit waits over 4 workers × 10 s
		tr.changed()
		require.Len(t, got, 1)
		p := got[0]
		assert.Equal(t, 3, p.InFlight)
		require.Len(t, p.Endpoints, 2)
		assert.Equal(t, 2, p.Endpoints[0].InFlight)
		assert.Equal(t, 1, p.Endpoints[1].InFlight)
		assert.InDelta(t, 0.2, p.StoreWaitShare, 1e-9)
	})
}

// A slow progress callback holds up no worker: while one goroutine is in
// the callback, other turns are counted and return at once, and the
// callback is then called again, once, with the latest figures. Calls never
// overlap.
func TestProgressSlowCallbackDoesNotBlockTurns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		var got []int
		inside := 0
		tr := newTracker(1, nil, nil, nil, func(p Progress) {
			inside++
			assert.Equal(t, 1, inside, "progress called concurrently")
			if len(got) == 0 {
				<-release // the first call is slow
			}
			got = append(got, p.Turns)
			inside--
		})
		first := make(chan struct{})
		go func() {
			defer close(first)
			tr.turn(core.Turn{})
		}()
		synctest.Wait() // the first turn's goroutine is inside the callback
		for range 5 {
			done := make(chan struct{})
			go func() {
				defer close(done)
				tr.turn(core.Turn{})
			}()
			synctest.Wait()
			select {
			case <-done:
			default:
				t.Fatal("a turn waited for the progress callback")
			}
		}
		close(release)
		<-first
		assert.Equal(t, []int{1, 6}, got, "the turns counted during the slow call are delivered in one call")
		tr.turn(core.Turn{})
		assert.Equal(t, []int{1, 6, 7}, got)
	})
}

// A callback slower than the changes arriving does not keep its caller for
// good: after maxEmitPasses deliveries the caller returns (the change left
// over goes out with the next emit or with flush at the run's end).
func TestProgressEmitIsBounded(t *testing.T) {
	var tr *tracker
	calls := 0
	tr = newTracker(1, nil, nil, nil, func(p Progress) {
		calls++
		// Another change lands while every call is under way.
		tr.mu.Lock()
		tr.p.Turns++
		tr.emit() // sees emitting: only marks the change
		tr.mu.Unlock()
	})
	tr.changed()
	assert.Equal(t, maxEmitPasses, calls, "the caller left after a bounded number of calls")
	tr.mu.Lock()
	assert.True(t, tr.dirty, "the last change is still to be delivered")
	tr.mu.Unlock()
	tr.flush()
	assert.Greater(t, calls, maxEmitPasses, "flush delivers it")
}
