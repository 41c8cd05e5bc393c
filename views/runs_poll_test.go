package views

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/storage"
)

// Polling for runs of other processes is off in the other tests: it would reload
// the Runs list under them.
func init() { runsPollInterval, storeWatchInterval = 0, 0 }

// TestRunsPollsExperimentsRunElsewhere: while an experiment that no run of this
// UI plays is listed as running (the CLI runs it on the same store), Runs reloads
// the list on its own; once nothing runs elsewhere, it stops.
func TestRunsPollsExperimentsRunElsewhere(t *testing.T) {
	st := newFakeStore()
	calls := func() int {
		st.mu.Lock()
		defer st.mu.Unlock()
		return st.expCalls
	}
	u, _ := newTestUI(t, st, nil) // polling is off while the window is built
	act(u, func() {
		runsPollInterval = 5 * time.Millisecond
		u.runs.reload()
	})
	start := calls()
	require.Eventually(t, func() bool { return calls() >= start+3 }, 5*time.Second, 5*time.Millisecond,
		"Runs reloads while experiment 1 runs elsewhere")

	st.mu.Lock()
	for i := range st.exps {
		st.exps[i].Status = storage.StatusDone
	}
	st.mu.Unlock()
	// A reload in flight may still see it running and arm one more poll; once a
	// reload has seen it done, no poll is armed and none is armed again (checked
	// on the panel's state, not by watching the clock).
	armed := func() bool {
		var a bool
		act(u, func() { a = u.runs.pollArmed })
		return a
	}
	require.Eventually(t, func() bool {
		if armed() {
			return false
		}
		u.wait() // the reload that disarmed it has applied its result
		return !armed()
	}, 10*time.Second, time.Millisecond)
	n := calls()
	u.wait()
	assert.False(t, armed(), "no poll is scheduled once nothing runs elsewhere")
	assert.Equal(t, n, calls(), "and no reload runs")
	act(u, func() { runsPollInterval = 0 })
}
