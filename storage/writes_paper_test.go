package storage

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

// A rollout's paper figures ride in a group commit (Write.Paper) and are
// stored as SetPaperMetrics stores them; a figure for a rollout that does not
// exist fails alone (ErrNotFound) and the rest of its batch is still stored.
func TestApplyWritesPaperFigures(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "s.db"))
	require.NoError(t, err)
	defer s.Close()
	ctx := ctxT(t)
	exp, err := s.CreateExperiment(ctx, "e", "{}", "h")
	require.NoError(t, err)
	tids, err := s.AddTasks(ctx, exp, []core.Task{browseTask("k", "q?", "r?")})
	require.NoError(t, err)
	a, err := s.CreateRollout(ctx, exp, tids["k"], "mem1", "m")
	require.NoError(t, err)
	b, err := s.CreateRollout(ctx, exp, tids["k"], "full", "m")
	require.NoError(t, err)
	for _, id := range []int64{a, b} {
		require.NoError(t, s.FinishRollout(ctx, id, RolloutResult{Status: StatusDone, Turns: 1}))
	}
	peak, dep, ratio := 321, 9000, 0.5
	outs := s.ApplyWrites(ctx, []Write{
		{RolloutID: a, Paper: &PaperFigures{Metrics: core.PaperMetrics{PeakTokens: &peak, Dependency: &dep, CompressionRatio: &ratio, ExactMatchLenient: 1},
			RequestPeak: 400, Source: core.TokenSourceServerUsage}},
		{RolloutID: a + b + 100, Paper: &PaperFigures{Metrics: core.PaperMetrics{PeakTokens: &peak}}},
		{RolloutID: b, Paper: &PaperFigures{Metrics: core.PaperMetrics{}, RequestPeak: 7, Source: core.TokenSourceEstimate}},
	})
	require.Len(t, outs, 3)
	assert.NoError(t, outs[0].Err)
	assert.ErrorIs(t, outs[1].Err, ErrNotFound)
	assert.NoError(t, outs[2].Err)

	rows, err := s.Rollouts(ctx, exp)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	ra, rb := rows[0], rows[1]
	require.NotNil(t, ra.Paper)
	require.NotNil(t, ra.Paper.PeakTokens)
	assert.Equal(t, 321, *ra.Paper.PeakTokens)
	require.NotNil(t, ra.Paper.Dependency)
	assert.Equal(t, 9000, *ra.Paper.Dependency)
	require.NotNil(t, ra.Paper.CompressionRatio)
	assert.InDelta(t, 0.5, *ra.Paper.CompressionRatio, 1e-12)
	assert.Equal(t, 1, ra.Paper.ExactMatchLenient)
	assert.Equal(t, 400, ra.RequestPeakTokens)
	assert.Equal(t, core.TokenSourceServerUsage, ra.TokenSource)
	require.NotNil(t, rb.Paper, "figures stored, each of them eval.py's None")
	assert.Nil(t, rb.Paper.PeakTokens)
	assert.Equal(t, 7, rb.RequestPeakTokens)

	backfills, err := s.PaperBackfills(ctx)
	require.NoError(t, err)
	assert.Empty(t, backfills, "no rollout is left for the backfill")
}

// A rollout's last turn may carry its result (Turn and Finish in one Write):
// both are stored, in one batch with other writes; when the turn cannot be
// stored (a duplicate index here) neither is, the rollout stays as it was and
// the rest of the batch is still stored.
func TestApplyWritesLastTurnWithResult(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	a, b := newRollout(t, s, "mem1"), newRollout(t, s, "full")
	for _, id := range []int64{a, b} {
		ok, err := s.ClaimRollout(ctx, id, "ep")
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, s.AppendTurn(ctx, id, core.Turn{Index: 0, Context: "c0", Response: "r0", Action: core.ActionSearch}))
	}
	last := core.Turn{Index: 1, Context: "c1", Response: "<answer>x</answer>", Action: core.ActionAnswer, Answer: "x"}
	dup := core.Turn{Index: 0, Context: "c0", Response: "again", Action: core.ActionAnswer}
	outs := s.ApplyWrites(ctx, []Write{
		{RolloutID: a, Turn: &last, Finish: &RolloutResult{Status: StatusDone, Answer: "x", Turns: 2}},
		{RolloutID: b, Turn: &dup, Finish: &RolloutResult{Status: StatusDone, Answer: "again", Turns: 1}},
	})
	require.Len(t, outs, 2)
	assert.NoError(t, outs[0].Err)
	assert.ErrorIs(t, outs[1].Err, ErrDuplicate)

	da, err := s.Rollout(ctx, a)
	require.NoError(t, err)
	require.Len(t, da.Turns, 2)
	assert.Equal(t, "<answer>x</answer>", da.Turns[1].Response)
	assert.Equal(t, StatusDone, da.Status)
	assert.Equal(t, 2, da.RolloutRow.Turns)
	db, err := s.Rollout(ctx, b)
	require.NoError(t, err)
	require.Len(t, db.Turns, 1)
	assert.Equal(t, "r0", db.Turns[0].Response, "the failed write changed nothing")
	assert.Equal(t, StatusRunning, db.Status, "no result without its turn")

	bad := s.ApplyWrites(ctx, []Write{{RolloutID: b, Turn: &last, Claim: &Claim{Endpoint: "ep"}}})
	assert.Error(t, bad[0].Err)
}

// The context a store appended last for a rollout is the base of the next
// turn's stored context without reading it back, until the rollout is claimed
// again: another process may have replayed it meanwhile (here: reset, then
// two different turns), and the next turn this store appends must still
// decode to its own context.
func TestAppendAfterAnotherProcessReplayedTheRollout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	a, err := Open(path)
	require.NoError(t, err)
	defer a.Close()
	ctx := ctxT(t)
	exp, err := a.CreateExperiment(ctx, "e", "{}", "h")
	require.NoError(t, err)
	tids, err := a.AddTasks(ctx, exp, []core.Task{browseTask("k", "q?", "r?")})
	require.NoError(t, err)
	r, err := a.CreateRollout(ctx, exp, tids["k"], "full", "m")
	require.NoError(t, err)
	prompt := strings.Repeat("the task prompt. ", 20)
	claim := func(s *Store) {
		ok, err := s.ClaimRollout(ctx, r, "ep")
		require.NoError(t, err)
		require.True(t, ok)
	}
	claim(a)
	require.NoError(t, a.AppendTurn(ctx, r, core.Turn{Index: 0, Context: prompt + "a0", Response: "a0"}))
	// What a stale base would get wrong: it shares all of turn 2's context.
	require.NoError(t, a.AppendTurn(ctx, r, core.Turn{Index: 1, Context: prompt + "b0b1a2 and more", Response: "a1"}))

	b, err := Open(path)
	require.NoError(t, err)
	require.NoError(t, b.ResetRollout(ctx, r))
	claim(b)
	require.NoError(t, b.AppendTurn(ctx, r, core.Turn{Index: 0, Context: prompt + "b0", Response: "b0"}))
	require.NoError(t, b.AppendTurn(ctx, r, core.Turn{Index: 1, Context: prompt + "b0b1", Response: "b1"}))
	_, err = b.RequeueInterrupted(ctx, exp)
	require.NoError(t, err)
	require.NoError(t, b.Close())

	claim(a)
	require.NoError(t, a.AppendTurn(ctx, r, core.Turn{Index: 2, Context: prompt + "b0b1a2", Response: "a2"}))
	c, err := Open(path)
	require.NoError(t, err)
	defer c.Close()
	turns, err := c.Turns(ctx, r)
	require.NoError(t, err)
	require.Len(t, turns, 3)
	assert.Equal(t, prompt+"b0b1", turns[1].Context)
	assert.Equal(t, prompt+"b0b1a2", turns[2].Context)
}
