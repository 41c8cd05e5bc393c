package storage

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

func TestPaperMetricsRoundTripAndReset(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	exp, err := s.CreateExperiment(ctx, "e", "{}", "h")
	require.NoError(t, err)
	ids, err := s.AddTasks(ctx, exp, sampleTasks())
	require.NoError(t, err)
	r1, err := s.CreateRollout(ctx, exp, ids["hotpotqa/n2/0000"], "mem1", "m")
	require.NoError(t, err)
	r2, err := s.CreateRollout(ctx, exp, ids["nq/n1/0000"], "full", "m")
	require.NoError(t, err)

	peak, dep, ratio := 1234, 98765, 0.25
	require.NoError(t, s.FinishRollout(ctx, r1, RolloutResult{Status: StatusDone, PeakTokens: 2000,
		Paper:             &core.PaperMetrics{ExactMatchLenient: 2, PeakTokens: &peak, Dependency: &dep, CompressionRatio: &ratio},
		RequestPeakTokens: 2000, TokenSource: core.TokenSourceServerTokenize}))
	// eval.py's None (Exact_match 0): the peak is NULL, the rest is kept.
	require.NoError(t, s.FinishRollout(ctx, r2, RolloutResult{Status: StatusDone, PeakTokens: 50,
		Paper: &core.PaperMetrics{ExactMatchLenient: 0, Dependency: &dep}, RequestPeakTokens: 50, TokenSource: core.TokenSourceEstimate}))

	rows, err := s.Rollouts(ctx, exp)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	require.NotNil(t, rows[0].Paper)
	got, ok := rows[0].PaperPeak()
	assert.True(t, ok)
	assert.Equal(t, 1234, got)
	assert.Equal(t, 98765, *rows[0].Paper.Dependency)
	assert.Equal(t, 0.25, *rows[0].Paper.CompressionRatio)
	assert.Equal(t, 2, rows[0].Paper.ExactMatchLenient)
	assert.False(t, rows[0].Paper.Full)
	assert.Equal(t, 2000, rows[0].RequestPeakTokens)
	assert.Equal(t, core.TokenSourceServerTokenize, rows[0].TokenSource)
	_, ok = rows[1].PaperPeak()
	assert.False(t, ok)
	require.NotNil(t, rows[1].Paper)
	assert.Nil(t, rows[1].Paper.CompressionRatio)
	assert.True(t, rows[1].Paper.Full, "policy full reads eval.py's full-history rule")

	d, err := s.Rollout(ctx, r1)
	require.NoError(t, err)
	assert.Equal(t, rows[0].Paper, d.Paper)

	bf, err := s.PaperBackfills(ctx)
	require.NoError(t, err)
	assert.Empty(t, bf, "both rollouts have figures")

	require.NoError(t, s.ResetRollout(ctx, r1))
	rows, err = s.Rollouts(ctx, exp)
	require.NoError(t, err)
	assert.Nil(t, rows[0].Paper)
	assert.Equal(t, "", rows[0].TokenSource)

	// Finished without figures (as before this schema): listed for backfill,
	// then SetPaperMetrics fills them.
	require.NoError(t, s.FinishRollout(ctx, r1, RolloutResult{Status: StatusFailed, PeakTokens: 7}))
	bf, err = s.PaperBackfills(ctx)
	require.NoError(t, err)
	require.Len(t, bf, 1)
	assert.Equal(t, r1, bf[0].ID)
	assert.Equal(t, "mem1", bf[0].Policy)
	assert.Equal(t, "{}", bf[0].ConfigJSON)
	assert.Equal(t, "hotpotqa/n2/0000", bf[0].Task.Key)
	require.NoError(t, s.SetPaperMetrics(ctx, r1, core.PaperMetrics{ExactMatchLenient: 1, PeakTokens: &peak}, 7, core.TokenSourceEstimate))
	bf, err = s.PaperBackfills(ctx)
	require.NoError(t, err)
	assert.Empty(t, bf)
	assert.ErrorIs(t, s.SetPaperMetrics(ctx, 999, core.PaperMetrics{}, 0, ""), ErrNotFound)
}

// A store at the schema before the paper figures keeps its rollouts; they
// come back without figures, with the stored peak as the request peak, and
// are listed for the backfill. Turn token sources read as "" (derived later
// from usage_reported by core.TurnTokenSource).
func TestPaperMetricsMigrationOfOldStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite3", path)
	require.NoError(t, err)
	prev := LatestSchemaVersion() - 1
	for i := 0; i < prev; i++ {
		_, err = db.Exec(migrations[i])
		require.NoError(t, err, "migration %d", i+1)
	}
	_, err = db.Exec(fmt.Sprintf(`PRAGMA user_version = %d;
		INSERT INTO experiments(id, name, created_at, config_json, config_hash, status) VALUES (1, 'old', '', '{}', '', 'done');
		INSERT INTO tasks(id, experiment_id, key, dataset, objectives, task_json)
			VALUES (1, 1, 'k', 'd', 1, '{"key":"k","dataset":"d","objectives":[{"question":"Who painted Guernica?","gold":["Picasso"]}]}');
		INSERT INTO rollouts(id, experiment_id, task_id, policy, model, status, peak_tokens) VALUES (1, 1, 1, 'mem1', 'm', 'done', 321);
		INSERT INTO rollouts(id, experiment_id, task_id, policy, model, status) VALUES (2, 1, 1, 'mem1', 'm', 'queued');
		INSERT INTO turns(rollout_id, idx, context, response, internal_state, action, query, answer, information,
			prompt_tokens, completion_tokens, usage_reported, latency_ms, finish_reason, created_at)
			VALUES (1, 0, '', '<answer>Picasso</answer>', '', 'answer', '', 'Picasso', '', 300, 21, 1, 0, '', '')`, prev))
	require.NoError(t, err)
	require.NoError(t, db.Close())
	s, err := Open(path)
	require.NoError(t, err)
	defer s.Close()
	ctx := ctxT(t)
	v, err := s.SchemaVersion(ctx)
	require.NoError(t, err)
	assert.Equal(t, LatestSchemaVersion(), v)
	rows, err := s.Rollouts(ctx, 1)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Nil(t, rows[0].Paper)
	assert.Equal(t, 321, rows[0].RequestPeakTokens)
	bf, err := s.PaperBackfills(ctx)
	require.NoError(t, err)
	require.Len(t, bf, 1, "only the finished rollout")
	assert.Equal(t, int64(1), bf[0].ID)
	turns, err := s.Turns(ctx, 1)
	require.NoError(t, err)
	require.Len(t, turns, 1)
	assert.Equal(t, core.TokenSourceServerUsage, core.TurnTokenSource(turns[0]))
}
