package views

import (
	"sync/atomic"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"
	"github.com/stretchr/testify/assert"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// A rollout stopped by Cancel or a clean quit reads as resumable, not as a
// failure; any other error keeps its first line.
func TestErrorCellCancelledIsResumable(t *testing.T) {
	stopped := "turn 2: model: completions http://127.0.0.1:4000/v1: Post \"http://127.0.0.1:4000/v1/completions\": context canceled"
	assert.Equal(t, "stopped in turn 3 (resumable)", errorCell(storage.StatusCancelled, stopped), "Trace's turn 3")
	assert.Equal(t, "stopped in turn 1 (resumable)", errorCell(storage.StatusCancelled, "turn 0: model: context canceled"))
	assert.Equal(t, "stopped (resumable)", errorCell(storage.StatusCancelled, "context canceled"))
	assert.Equal(t, "turn 2: model: 500 …", errorCell(storage.StatusFailed, "turn 2: model: 500\nbody"))
	assert.Equal(t, firstLine(stopped), errorCell(storage.StatusFailed, stopped), "a failed rollout keeps its error")
	assert.Equal(t, "", errorCell(storage.StatusDone, ""))
}

// Runs names the per-setting score by the selected experiment's family.
func TestRunsSettingsHeaderFollowsFamily(t *testing.T) {
	u, _ := newTestUI(t, newFakeStore(), nil)
	act(u, func() {
		u.runs.showSelected(storage.ExperimentRow{ID: 1, ConfigJSON: `{"family":"webshop","goals":[0]}`})
		assert.Equal(t, "Mean reward", u.runs.settings.headers[7])
		assert.GreaterOrEqual(t, u.runs.settings.widths[7], headerWidth("Mean reward"))
		u.runs.showSelected(storage.ExperimentRow{ID: 1, ConfigJSON: `{"objectives":2}`})
		assert.Equal(t, "Mean EM", u.runs.settings.headers[7])
	})
	u.wait()
}

// Quitting never hangs on a run that does not stop: after stopPatience the
// quit goes ahead (the run keeps what it stored).
func TestStopRunsGivesUpOnARunThatDoesNotStop(t *testing.T) {
	old := stopPatience
	stopPatience = 20 * time.Millisecond
	defer func() { stopPatience = old }()
	r := newCtlRunner([]experiments.Progress{{Experiment: 1, Total: 1, Running: 1}})
	u, _ := newTestUI(t, newCtlStore(), r)
	act(u, func() { test.Tap(u.run.runBt) })
	<-r.started
	<-r.stepped // the run now waits on proceed, whatever its context says
	var quits atomic.Int32
	act(u, func() { u.StopRuns(func() { quits.Add(1) }) })
	eventually(t, u, func() bool { return quits.Load() == 1 })
	assert.Equal(t, 1, u.RunsInFlight(), "the run had not returned when the quit went ahead")
	r.proceed <- struct{}{} // let it end, so the test leaves nothing running
	u.wait()
}
