package storage

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

func pendingTurns(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	require.NoError(t, s.r.QueryRowContext(ctxT(t), `SELECT count(*) FROM turns_fts_pending`).Scan(&n))
	return n
}

func traceIntegrity(t *testing.T, s *Store) {
	t.Helper()
	_, err := s.w.ExecContext(ctxT(t), `INSERT INTO turns_fts(turns_fts) VALUES('integrity-check')`)
	require.NoError(t, err)
}

// A committed turn waits in the index queue, not in turns_fts; a trace search
// indexes the queue first, so it still finds every committed turn.
func TestTraceIndexOffCommitPath(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "s.db"))
	require.NoError(t, err)
	defer s.Close()
	ctx := ctxT(t)
	exp, err := s.CreateExperiment(ctx, "e", "{}", "h")
	require.NoError(t, err)
	tids, err := s.AddTasks(ctx, exp, []core.Task{browseTask("k", "q?", "r?")})
	require.NoError(t, err)
	rid, err := s.CreateRollout(ctx, exp, tids["k"], "mem1", "m")
	require.NoError(t, err)
	s.bg.indexMu.Lock() // hold the indexer off so the queue is observable
	outs := s.ApplyWrites(ctx, []Write{
		{RolloutID: rid, Claim: &Claim{Endpoint: "ep", Prompt: "the prompt"}},
		{RolloutID: rid, Turn: &core.Turn{Index: 0, InternalState: "aardvark notes", Query: "numbat"}},
		{RolloutID: rid, Turn: &core.Turn{Index: 1, InternalState: "quokka"}},
	})
	for _, o := range outs {
		require.NoError(t, o.Err)
	}
	assert.True(t, outs[0].Claimed)
	assert.Equal(t, 2, pendingTurns(t, s), "turns are queued for the index, not indexed in their commit")
	var inFTS int
	require.NoError(t, s.r.QueryRowContext(ctx, `SELECT count(*) FROM turns_fts WHERE turns_fts MATCH 'aardvark'`).Scan(&inFTS))
	assert.Zero(t, inFTS)
	s.bg.indexMu.Unlock()

	p, err := s.BrowseRollouts(ctx, RolloutQuery{Text: "aardvark"})
	require.NoError(t, err)
	assert.Equal(t, []int64{rid}, ids(p))
	assert.Zero(t, pendingTurns(t, s))
	d, err := s.Rollout(ctx, rid)
	require.NoError(t, err)
	assert.Equal(t, "the prompt", d.Prompt)
	assert.Equal(t, StatusRunning, d.Status)

	// A turn deleted before it was indexed leaves the index consistent.
	require.NoError(t, s.FinishRollout(ctx, rid, RolloutResult{Status: StatusDone}))
	s.bg.indexMu.Lock()
	rid2, err := s.CreateRollout(ctx, exp, tids["k"], "mem1", "m")
	require.NoError(t, err)
	require.NoError(t, s.AppendTurn(ctx, rid2, core.Turn{Index: 0, InternalState: "pangolin"}))
	require.Equal(t, 1, pendingTurns(t, s))
	s.bg.indexMu.Unlock()
	require.NoError(t, s.ResetRollout(ctx, rid2))
	assert.Zero(t, pendingTurns(t, s))
	require.NoError(t, s.ResetRollout(ctx, rid), "an indexed turn leaves turns_fts on delete")
	p, err = s.BrowseRollouts(ctx, RolloutQuery{Text: "aardvark"})
	require.NoError(t, err)
	assert.Empty(t, ids(p))
	traceIntegrity(t, s)
}

// Turns left queued by a process that never indexed them are indexed when the
// store is next opened.
func TestTraceIndexCaughtUpOnOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := Open(path)
	require.NoError(t, err)
	defer s.Close()
	ctx := ctxT(t)
	exp, err := s.CreateExperiment(ctx, "e", "{}", "h")
	require.NoError(t, err)
	tids, err := s.AddTasks(ctx, exp, []core.Task{browseTask("k", "q?", "r?")})
	require.NoError(t, err)
	rid, err := s.CreateRollout(ctx, exp, tids["k"], "mem1", "m")
	require.NoError(t, err)
	s.bg.indexMu.Lock()
	require.NoError(t, s.AppendTurn(ctx, rid, core.Turn{Index: 0, InternalState: "axolotl"}))
	require.Equal(t, 1, pendingTurns(t, s))
	s.bg.indexMu.Unlock()
	s2, err := Open(path)
	require.NoError(t, err)
	defer s2.Close()
	assert.Zero(t, pendingTurns(t, s2))
	var n int
	require.NoError(t, s2.r.QueryRowContext(ctx, `SELECT count(*) FROM turns_fts WHERE turns_fts MATCH 'axolotl'`).Scan(&n))
	assert.Equal(t, 1, n)
	traceIntegrity(t, s2)
}

// The writer never checkpoints on its own; the checkpoint connection does.
func TestWriterAutocheckpointOff(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "s.db"))
	require.NoError(t, err)
	defer s.Close()
	var n int
	require.NoError(t, s.w.QueryRowContext(ctxT(t), `PRAGMA wal_autocheckpoint`).Scan(&n))
	assert.Zero(t, n)
	var busy, logFrames, ckpt int
	require.NoError(t, s.bg.ck.QueryRowContext(ctxT(t), `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logFrames, &ckpt))
	assert.Zero(t, busy)
}
