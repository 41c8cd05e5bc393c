package storage

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

// TestSubCallsAndTurnMemory: sub-calls are committed one by one (also for a
// turn not stored yet), flagged, read back with their turn, replaced under
// the same (turn, seq), and dropped with the memory rows by ResetRollout.
func TestSubCallsAndTurnMemory(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	v, err := s.SchemaVersion(ctx)
	require.NoError(t, err)
	assert.Equal(t, LatestSchemaVersion(), v)
	e, err := s.CreateExperiment(ctx, "m", `{}`, "h")
	require.NoError(t, err)
	ids, err := s.AddTasks(ctx, e, sampleTasks())
	require.NoError(t, err)
	r, err := s.CreateRollout(ctx, e, ids["nq/n1/0000"], "amem", "qwen")
	require.NoError(t, err)

	c0 := core.SubCall{Turn: 1, Seq: 0, Role: core.RoleExtractor, Endpoint: "memory", Request: "note this", Response: "{}",
		Usage: core.Usage{PromptTokens: 5, CompletionTokens: 2, Reported: true}, Latency: 1500 * time.Microsecond}
	c1 := core.SubCall{Turn: 1, Seq: 1, Role: core.RoleEmbedder, Endpoint: "emb", Request: `["x"]`, Response: `[[1,2]]`, Usage: core.Usage{PromptTokens: 1}}
	c2 := core.SubCall{Turn: 2, Seq: 0, Role: core.RoleEmbedder, Request: `["y"]`, Response: `[[3,4]]`}
	for _, c := range []core.SubCall{c0, c1, c2} {
		require.NoError(t, s.AppendSubCall(ctx, r, c))
	}
	require.ErrorIs(t, s.AppendSubCall(ctx, 999, c0), ErrNotFound)
	require.NoError(t, s.FlagSubCall(ctx, r, 1, 0, "malformed JSON reply"))
	require.ErrorIs(t, s.FlagSubCall(ctx, r, 7, 0, "x"), ErrNotFound)

	require.NoError(t, s.AppendTurn(ctx, r, core.Turn{Index: 0, Response: "r0"}))
	require.NoError(t, s.AppendTurn(ctx, r, core.Turn{Index: 1, Response: "r1", Memory: "- note", MemoryState: `{"notes":[]}`}))
	turns, err := s.Turns(ctx, r)
	require.NoError(t, err)
	require.Len(t, turns, 2)
	assert.Empty(t, turns[0].SubCalls)
	assert.Empty(t, turns[0].MemoryState)
	assert.Equal(t, "- note", turns[1].Memory)
	assert.Equal(t, `{"notes":[]}`, turns[1].MemoryState)
	c0.Error = "malformed JSON reply"
	assert.Equal(t, []core.SubCall{c0, c1}, turns[1].SubCalls, "turn 2's call waits for its turn")
	all, err := s.SubCalls(ctx, r)
	require.NoError(t, err)
	assert.Equal(t, []core.SubCall{c0, c1, c2}, all)

	c2.Response = `[[5,6]]`
	require.NoError(t, s.AppendSubCall(ctx, r, c2), "the same (turn, seq) again replaces it")
	all, err = s.SubCalls(ctx, r)
	require.NoError(t, err)
	require.Len(t, all, 3)
	assert.Equal(t, `[[5,6]]`, all[2].Response)

	r2, err := s.CreateRollout(ctx, e, ids["nq/n1/0000"], "mem1", "qwen")
	require.NoError(t, err)
	page, err := s.BrowseRollouts(ctx, RolloutQuery{ExperimentID: e, Sort: SortSubCallTokens, Desc: true})
	require.NoError(t, err)
	require.Len(t, page.Rows, 2)
	assert.Equal(t, r, page.Rows[0].ID, "most sub-call tokens first")
	assert.Equal(t, 7+1+0, page.Rows[0].SubCallTokens)
	assert.InDelta(t, 0.0015, page.Rows[0].SubCallSeconds, 1e-9)
	assert.Equal(t, r2, page.Rows[1].ID)
	assert.Zero(t, page.Rows[1].SubCallTokens)
	costs, err := s.SubCallCosts(ctx, e)
	require.NoError(t, err)
	assert.Equal(t, map[int64][]RoleCost{r: {{Role: core.RoleEmbedder, Calls: 2, Tokens: 1}, {Role: core.RoleExtractor, Calls: 1, Tokens: 7, Seconds: 0.0015}}}, costs)

	require.NoError(t, s.ResetRollout(ctx, r))
	all, err = s.SubCalls(ctx, r)
	require.NoError(t, err)
	assert.Empty(t, all)
	require.NoError(t, s.AppendTurn(ctx, r, core.Turn{Index: 1, Response: "again", Memory: "m"}), "memory rows went with the reset")
}
