package app

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// TestPauseAndCancelCommands: pause and cancel record the request for the
// process running the experiment; cancelling one that nothing runs settles it.
func TestPauseAndCancelCommands(t *testing.T) {
	hotpot := needRaw(t, "hotpotqa_dev_distractor.rpt-dev.jsonl")
	db := filepath.Join(t.TempDir(), "lab.db")
	code, _, errOut := run(t, "import", "--db", db, "--hotpot", hotpot)
	require.Equal(t, 0, code, errOut)
	st, err := storage.Open(db)
	require.NoError(t, err)
	ctx := context.Background()
	cfg := experiments.DefaultRunConfig()
	cfg.Tasks = 3
	id, err := (&experiments.Runner{Store: st, Env: st}).Create(ctx, cfg)
	require.NoError(t, err)

	code, out, errOut := run(t, "pause", "--db", db, "1")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "experiment 1: pause requested")
	l, err := st.ExperimentLease(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "pause", l.Control)
	code, _, errOut = run(t, "pause", "1", "--resume", "--db", db)
	require.Equal(t, 0, code, errOut)
	l, _ = st.ExperimentLease(ctx, id)
	assert.Equal(t, "", l.Control)

	code, _, errOut = run(t, "cancel", "--db", db, "1")
	require.Equal(t, 0, code, errOut)
	e, err := st.Experiment(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, storage.StatusCancelled, e.Status)
	rows, err := st.Rollouts(ctx, id)
	require.NoError(t, err)
	for _, r := range rows {
		assert.Equal(t, storage.StatusCancelled, r.Status)
	}

	code, _, errOut = run(t, "cancel", "--db", db, "42")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "no experiment 42")
	code, _, errOut = run(t, "cancel", "--db", db)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "usage: mem1lab cancel ID")
	require.NoError(t, st.Close())
}
