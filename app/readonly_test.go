package app

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// makeReadOnly takes write permission from the store file and its folder (and,
// for root, whom permissions do not stop, sets the immutable attribute).
func makeReadOnly(t *testing.T, path string) {
	t.Helper()
	dir := filepath.Dir(path)
	for _, p := range []string{path + "-wal", path + "-shm"} {
		_ = os.Remove(p)
	}
	require.NoError(t, os.Chmod(path, 0o444))
	require.NoError(t, os.Chmod(dir, 0o555))
	t.Cleanup(func() {
		if os.Geteuid() == 0 {
			_ = exec.Command("chattr", "-i", path, dir).Run()
		}
		_ = os.Chmod(dir, 0o755)
		_ = os.Chmod(path, 0o644)
	})
	if os.Geteuid() == 0 {
		out, err := exec.Command("chattr", "+i", path, dir).CombinedOutput()
		require.NoError(t, err, "chattr +i (root ignores permissions): %s", out)
	}
}

// ls, show, export and plot read a store nobody may write; a command that
// writes (cancel) fails with a clear error and the file is unchanged.
func TestReadOnlyStoreCommands(t *testing.T) {
	db := oracleStore(t)
	before, err := os.ReadFile(db)
	require.NoError(t, err)
	makeReadOnly(t, db)
	out := t.TempDir()

	code, stdout, errOut := run(t, "ls", "--db", db)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, stdout, "done")
	code, _, errOut = run(t, "show", "1", "--db", db)
	require.Equal(t, 0, code, errOut)
	code, _, errOut = run(t, "export", "--db", db, "--experiment", "1,2", "--what", "turns", "--out", filepath.Join(out, "t.csv"))
	require.Equal(t, 0, code, errOut)
	code, _, errOut = run(t, "export", "--db", db, "--experiment", "1", "--what", "trajectories", "--out", filepath.Join(out, "t.jsonl"))
	require.Equal(t, 0, code, errOut)
	code, _, errOut = run(t, "plot", "--db", db, "--experiment", "1,2", "--out", filepath.Join(out, "p.png"))
	require.Equal(t, 0, code, errOut)

	code, _, errOut = run(t, "cancel", "1", "--db", db)
	assert.NotEqual(t, 0, code)
	assert.NotEmpty(t, errOut)
	after, err := os.ReadFile(db)
	require.NoError(t, err)
	assert.Equal(t, before, after)
}

// The desktop app opens a store it cannot write read-only, with a banner that
// says why; --read-only does the same on a writable store.
func TestGUIStoreReadOnly(t *testing.T) {
	db := filepath.Join(t.TempDir(), "gui", "lab.db")
	st, banner, err := openGUIStore(db, false)
	require.NoError(t, err)
	assert.Empty(t, banner)
	assert.False(t, st.ReadOnly())
	require.NoError(t, st.Close())

	st, banner, err = openGUIStore(db, true)
	require.NoError(t, err)
	assert.True(t, st.ReadOnly())
	assert.Contains(t, banner, "--read-only")
	require.NoError(t, st.Close())

	makeReadOnly(t, db)
	st, banner, err = openGUIStore(db, false)
	require.NoError(t, err)
	defer st.Close()
	assert.True(t, st.ReadOnly())
	assert.Contains(t, banner, "cannot be opened for writing")
	assert.Contains(t, banner, db)
	ok, err := st.BundleImported(t.Context())
	require.NoError(t, err)
	assert.False(t, ok)
}

// `mem1lab import` fails (exit 1, file named) on an empty file and on a raw
// HotpotQA file with a repeated question id, instead of "imported 0 questions".
func TestImportRefusesEmptyAndDuplicateFiles(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "lab.db")
	empty := filepath.Join(dir, "empty.jsonl")
	require.NoError(t, os.WriteFile(empty, []byte("\n\n"), 0o644))
	code, out, errOut := run(t, "import", "--db", db, "--nq", empty)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, errOut, empty)
	assert.Contains(t, errOut, "no records")

	row := `{"id": "dup", "question": "q?", "answer": "a", "supporting_facts": {"title": ["A"], "sent_id": [0]}, "context": {"title": ["A"], "sentences": [["a fact."]]}}`
	hp := filepath.Join(dir, "hp.jsonl")
	require.NoError(t, os.WriteFile(hp, []byte(row+"\n"+row+"\n"), 0o644))
	code, out, errOut = run(t, "import", "--db", db, "--hotpot", hp)
	assert.Equal(t, 1, code, out)
	assert.Contains(t, errOut, hp+`:2: duplicate question id "hotpotqa:dup": first on line 1`)
}
