package storage

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

// TestRolloutPrompt: a rollout keeps the prompt it sent (SetRolloutPrompt,
// ImportExperiment), reads back "" before one is set, and an unknown rollout
// is ErrNotFound.
func TestRolloutPrompt(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	exp, err := s.CreateExperiment(ctx, "e", "{}", "h")
	require.NoError(t, err)
	task := core.Task{Key: "k", Dataset: "d", Objectives: []core.Objective{{QuestionID: "q", Question: "a?", Gold: []string{"a"}}}}
	ids, err := s.AddTasks(ctx, exp, []core.Task{task})
	require.NoError(t, err)
	rid, err := s.CreateRollout(ctx, exp, ids["k"], "mem1", "m")
	require.NoError(t, err)
	d, err := s.Rollout(ctx, rid)
	require.NoError(t, err)
	assert.Equal(t, "", d.Prompt)
	prompt := "Questions: a?\n — naïve \x00 bytes kept"
	require.NoError(t, s.SetRolloutPrompt(ctx, rid, prompt))
	d, err = s.Rollout(ctx, rid)
	require.NoError(t, err)
	assert.Equal(t, prompt, d.Prompt)
	assert.ErrorIs(t, s.SetRolloutPrompt(ctx, rid+100, "x"), ErrNotFound)

	imp, err := s.ImportExperiment(ctx, ExperimentImport{Name: "imp", ConfigJSON: "{}", ConfigHash: "h2", Tasks: []core.Task{task}},
		func(add func(ImportedRollout) error) error {
			return add(ImportedRollout{TaskKey: "k", Policy: "full", Model: "m", Prompt: "P",
				Result: RolloutResult{Status: StatusDone}})
		})
	require.NoError(t, err)
	rows, err := s.Rollouts(ctx, imp)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	d, err = s.Rollout(ctx, rows[0].ID)
	require.NoError(t, err)
	assert.Equal(t, "P", d.Prompt)
}
