package views

import (
	"testing"

	"github.com/stretchr/testify/assert"

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
