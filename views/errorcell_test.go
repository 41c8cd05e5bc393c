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
	assert.Equal(t, "stopped in turn 2 (resumable)", errorCell(storage.StatusCancelled, stopped))
	assert.Equal(t, "stopped (resumable)", errorCell(storage.StatusCancelled, "context canceled"))
	assert.Equal(t, "turn 2: model: 500 …", errorCell(storage.StatusFailed, "turn 2: model: 500\nbody"))
	assert.Equal(t, firstLine(stopped), errorCell(storage.StatusFailed, stopped), "a failed rollout keeps its error")
	assert.Equal(t, "", errorCell(storage.StatusDone, ""))
}
