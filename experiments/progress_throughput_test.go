package experiments

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
