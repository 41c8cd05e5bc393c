package experiments

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mem1lab/mem1lab/storage"
)

func TestSummarize(t *testing.T) {
	rows := []storage.RolloutRow{
		{Policy: "mem1", Objectives: 2, Status: "done", EM: 2, F1: 2, PeakTokens: 100, Seconds: 1},
		{Policy: "mem1", Objectives: 2, Status: "done", EM: 0, F1: 0.5, PeakTokens: 300, Seconds: 3},
		{Policy: "mem1", Objectives: 2, Status: "failed", EM: 9, PeakTokens: 9000},
		{Policy: "full", Objectives: 4, Status: "failed"},
		{Policy: "mem1", Objectives: 4, Status: "cancelled"},
	}
	got := Summarize(rows)
	assert.Equal(t, []Group{
		{Policy: "full", Objectives: 4, Rollouts: 1, Failed: 1},
		{Policy: "mem1", Objectives: 2, Rollouts: 3, Failed: 1, MeanEM: 1, MeanF1: 1.25, MeanPeakTokens: 200, MeanSeconds: 2},
		{Policy: "mem1", Objectives: 4, Rollouts: 1},
	}, got)
	assert.Empty(t, Summarize(nil))
}
