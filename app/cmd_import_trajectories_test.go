package app

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/storage"
)

func TestImportTrajectoriesCommand(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "lab.db")
	good := filepath.Join(dir, "runs.jsonl")
	require.NoError(t, os.WriteFile(good, []byte(
		`{"index":1,"q":"Questions: capital of France?","t0":"<think>Paris.</think>","r0":"<answer>Paris</answer>","Golden_answer":[["Paris"]]}`+"\n"+
			`{"index":2,"q":"Questions: capital of Italy?","r0":"<think>Milan?</think><answer>Milan</answer>","Golden_answer":[["Rome"]]}`+"\n"), 0o644))
	code, out, errOut := run(t, "import-trajectories", "--db", db, good, "--policy", "full")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "imported 2 trajectories (2 turns) as experiment #1 · mean EM 0.500")

	bad := filepath.Join(dir, "bad.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte(`{"index":1,"q":"x","r0":"<answer>a</answer>","Golden_answer":[["a"]]}`+"\n{oops\n"), 0o644))
	code, _, errOut = run(t, "import-trajectories", "--db", db, bad)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, bad+":2:")

	st, err := storage.Open(db)
	require.NoError(t, err)
	defer st.Close()
	es, err := st.Experiments(context.Background())
	require.NoError(t, err)
	require.Len(t, es, 1, "the failed import stored nothing")
	rows, err := st.Rollouts(context.Background(), es[0].ID)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Equal(t, "full", rows[0].Policy)
}
