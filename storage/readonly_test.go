package storage

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// MakeReadOnly-style helper: the file and its directory lose write permission
// (and, for root, whom permissions do not stop, get the immutable attribute).
func makeReadOnly(t *testing.T, path string) {
	t.Helper()
	dir := filepath.Dir(path)
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

// A store nobody may write opens read-only, reads everything, refuses writes
// and leaves the file as it was; Open (read-write) fails on it.
func TestOpenReadOnly(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ro")
	path := filepath.Join(dir, "lab.db")
	s, err := Open(path)
	require.NoError(t, err)
	ctx := ctxT(t)
	_, err = s.ImportBundle(ctx, smallBundle(t))
	require.NoError(t, err)
	r := newRollout(t, s, "full")
	for i, c := range fullPolicyContexts(3, 300) {
		tu := sampleTurn(i)
		tu.Context = c
		require.NoError(t, s.AppendTurn(ctx, r, tu))
	}
	want, err := s.Turns(ctx, r)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	before, err := os.ReadFile(path)
	require.NoError(t, err)
	makeReadOnly(t, path)

	_, err = Open(path)
	require.Error(t, err, "a read-write open of a read-only store fails")

	ro, err := OpenReadOnly(path)
	require.NoError(t, err)
	defer ro.Close()
	assert.True(t, ro.ReadOnly())
	n, err := ro.CountQuestions(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	exps, err := ro.Experiments(ctx)
	require.NoError(t, err)
	assert.Len(t, exps, 1)
	got, err := ro.Turns(ctx, r)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	p, err := ro.BrowseRollouts(ctx, RolloutQuery{Text: "state"})
	require.NoError(t, err)
	assert.Len(t, p.Rows, 1)

	err = ro.AppendTurn(ctx, r, sampleTurn(9))
	require.ErrorIs(t, err, ErrReadOnly)
	_, err = ro.CreateExperiment(ctx, "x", "{}", "h")
	require.Error(t, err)
	require.NoError(t, ro.Close())
	after, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, before, after, "nothing written")
}

func TestOpenReadOnlyErrors(t *testing.T) {
	_, err := OpenReadOnly(filepath.Join(t.TempDir(), "missing.db"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing.db")
	_, err = os.Stat(filepath.Join(t.TempDir(), "missing.db"))
	assert.True(t, os.IsNotExist(err), "nothing created")

	junk := filepath.Join(t.TempDir(), "junk.db")
	require.NoError(t, os.WriteFile(junk, []byte("not sqlite at all, not sqlite at all, not sqlite at all, not sqlite at all, not sqlite at all, not sqlite at all"), 0o644))
	_, err = OpenReadOnly(junk)
	require.Error(t, err)
}
