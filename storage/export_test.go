package storage

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

// exportFixture stores two experiments: the first with a done rollout (2 turns),
// a failed one (1 turn) and a done one (3 turns); the second with one done
// rollout (1 turn).
func exportFixture(t *testing.T) (*Store, int64, int64, []int64) {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "x.db"))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	var exps []int64
	var rollouts []int64
	for e, plan := range [][]struct {
		status string
		turns  int
	}{{{StatusDone, 2}, {StatusFailed, 1}, {StatusDone, 3}}, {{StatusDone, 1}}} {
		exp, err := s.CreateExperiment(ctx, "exp", "{}", "h")
		require.NoError(t, err)
		exps = append(exps, exp)
		for i, r := range plan {
			task := core.Task{Key: "k" + string(rune('a'+i)), Dataset: "hotpotqa", Objectives: []core.Objective{{Question: "q?"}, {Question: "r?"}}}
			ids, err := s.AddTasks(ctx, exp, []core.Task{task})
			require.NoError(t, err)
			id, err := s.CreateRollout(ctx, exp, ids[task.Key], []string{"mem1", "full"}[e], "m")
			require.NoError(t, err)
			rollouts = append(rollouts, id)
			require.NoError(t, s.StartRollout(ctx, id))
			for ti := 0; ti < r.turns; ti++ {
				tu := core.Turn{Index: ti, Response: "resp", Action: core.ActionSearch, Query: "q",
					PromptTokens: 100*(ti+1) + i, CompletionTokens: 10,
					Passages: []core.Passage{{ID: "p1"}, {ID: "p2"}}}
				require.NoError(t, s.AppendTurn(ctx, id, tu))
			}
			require.NoError(t, s.FinishRollout(ctx, id, RolloutResult{Status: r.status, Answer: "a; b", HitMaxTurns: i == 2,
				Score: core.Score{Scheme: "mem1", EM: 1, CountMismatch: i == 0}, Turns: r.turns}))
		}
	}
	return s, exps[0], exps[1], rollouts
}

func TestEachRollout(t *testing.T) {
	s, e1, _, rs := exportFixture(t)
	var got []RolloutExport
	require.NoError(t, s.EachRollout(context.Background(), e1, func(r RolloutExport) error { got = append(got, r); return nil }))
	require.Len(t, got, 3)
	for i, r := range got {
		assert.Equal(t, rs[i], r.ID)
		assert.Equal(t, "a; b", r.Answer)
		assert.Equal(t, i == 2, r.HitMaxTurns)
		assert.Equal(t, i == 0, r.Score.CountMismatch)
		assert.Equal(t, "mem1", r.Score.Scheme)
		assert.NotEmpty(t, r.StartedAt)
		assert.NotEmpty(t, r.FinishedAt)
	}
	assert.Equal(t, StatusFailed, got[1].Status)
}

func TestEachTurnOrderAndStop(t *testing.T) {
	s, e1, _, rs := exportFixture(t)
	ctx := context.Background()
	type key struct {
		rollout int64
		idx     int
	}
	var got []key
	require.NoError(t, s.EachTurn(ctx, e1, func(te *TurnExport) error {
		got = append(got, key{te.RolloutID, te.Index})
		assert.Equal(t, []string{"p1", "p2"}, te.PassageIDs)
		assert.Equal(t, 2, te.Objectives)
		assert.Equal(t, "search", te.Action)
		return nil
	}))
	assert.Equal(t, []key{{rs[0], 0}, {rs[0], 1}, {rs[1], 0}, {rs[2], 0}, {rs[2], 1}, {rs[2], 2}}, got)

	stop := errors.New("stop")
	n := 0
	err := s.EachTurn(ctx, e1, func(*TurnExport) error { n++; return stop })
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 1, n)
}

func TestEachTurnTokensDoneOnly(t *testing.T) {
	s, e1, e2, rs := exportFixture(t)
	ctx := context.Background()
	var got []TurnTokens
	require.NoError(t, s.EachTurnTokens(ctx, []int64{e1, e2}, func(tt TurnTokens) error { got = append(got, tt); return nil }))
	require.Len(t, got, 2+3+1, "the failed rollout's turn is left out")
	assert.Equal(t, TurnTokens{Dataset: "hotpotqa", Model: "m", Policy: "mem1", Objectives: 2, RolloutID: rs[0], Index: 0, PromptTokens: 100, CompletionTokens: 10}, got[0])
	assert.Equal(t, rs[2], got[2].RolloutID)
	assert.Equal(t, 302, got[4].PromptTokens)
	assert.Equal(t, "full", got[5].Policy)
	require.NoError(t, s.EachTurnTokens(ctx, nil, func(TurnTokens) error { t.Fatal("called"); return nil }))
}

// TestStreamingQueriesNeedNoSort checks SQLite's plan: the turn walks follow
// the indexes, so no temporary B-tree collects every turn before the first row.
func TestStreamingQueriesNeedNoSort(t *testing.T) {
	s, _, _, _ := exportFixture(t)
	for name, q := range map[string]string{"turns": eachTurnQuery, "tokens": turnTokensQuery(2)} {
		args := []any{int64(1)}
		if name == "tokens" {
			args = append(args, int64(2))
		}
		rows, err := s.r.Query("EXPLAIN QUERY PLAN "+q, args...)
		require.NoError(t, err)
		var plan []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			require.NoError(t, rows.Scan(&id, &parent, &notused, &detail))
			plan = append(plan, detail)
		}
		require.NoError(t, rows.Close())
		for _, step := range plan {
			assert.NotContains(t, step, "TEMP B-TREE", "%s plan: %s", name, strings.Join(plan, " | "))
		}
	}
}
