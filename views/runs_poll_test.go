package views

import (
	"testing"
	"time"

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
	// A reload in flight may still see it running; after that the polling ends.
	require.Eventually(t, func() bool {
		n := calls()
		time.Sleep(30 * time.Millisecond)
		return calls() == n
	}, 5*time.Second, time.Millisecond)
	n := calls()
	require.Never(t, func() bool { return calls() > n }, 100*time.Millisecond, 10*time.Millisecond)
	u.wait()
	act(u, func() { runsPollInterval = 0 })
}
