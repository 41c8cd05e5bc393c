package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

func browseTask(key, q1, q2 string) core.Task {
	return core.Task{Key: key, Dataset: "hotpotqa", Objectives: []core.Objective{
		{QuestionID: key + "-1", Question: q1, Gold: []string{"Paris"}},
		{QuestionID: key + "-2", Question: q2, Gold: []string{"Rome"}},
	}}
}

func browseRollout(key, policy, state, answer string, em float64, mismatch, hitMax bool, status string) ImportedRollout {
	turns := []core.Turn{
		{Index: 0, Context: "ctx0", Response: "<think>" + state + "</think><search>capital city</search>",
			InternalState: state, Action: core.ActionSearch, Query: "capital city", PromptTokens: 100, CompletionTokens: 10},
		{Index: 1, Context: "ctx1", Response: "<think>done</think><answer>" + answer + "</answer>",
			InternalState: "done", Action: core.ActionAnswer, Answer: answer, PromptTokens: 150, CompletionTokens: 12},
	}
	return ImportedRollout{TaskKey: key, Policy: policy, Model: "m", Turns: turns, Result: RolloutResult{
		Status: status, Score: core.Score{Scheme: "mem1", EM: em, F1: em, CountMismatch: mismatch,
			PerObjective: []core.ObjectiveScore{{EM: min(em, 1)}, {EM: max(em-1, 0)}}},
		Answer: answer, PeakTokens: 162, TotalTokens: 272, Turns: 2, Seconds: 1.5, HitMaxTurns: hitMax}}
}

// browseStore holds two experiments (mem1, full) over the same three tasks.
func browseStore(t *testing.T) (*Store, int64, int64) {
	s := newStore(t)
	ctx := ctxT(t)
	tasks := []core.Task{
		browseTask("hq/n2/0", "capital of France?", "capital of Italy?"),
		browseTask("hq/n2/1", "Which magazine was started first?", "Where is the Oberoi head office?"),
		browseTask("hq/n2/2", "Who directed Jaws?", "Who wrote Dune?"),
	}
	a, err := s.ImportExperiment(ctx, ExperimentImport{Name: "A mem1", ConfigJSON: "{}", Tasks: tasks}, func(add func(ImportedRollout) error) error {
		for _, r := range []ImportedRollout{
			browseRollout("hq/n2/0", "mem1", "France capital is Paris", "Paris; Rome", 2, false, false, StatusDone),
			browseRollout("hq/n2/1", "mem1", "magazines founded 1844", "Arthur", 0, true, false, StatusDone),
			browseRollout("hq/n2/2", "mem1", "Spielberg directed", "Spielberg; Herbert", 1, false, true, StatusDone),
		} {
			if err := add(r); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	b, err := s.ImportExperiment(ctx, ExperimentImport{Name: "B full", ConfigJSON: "{}", Tasks: tasks}, func(add func(ImportedRollout) error) error {
		for _, r := range []ImportedRollout{
			browseRollout("hq/n2/0", "full", "Paris and Rome", "Paris; Milan", 1, false, false, StatusDone),
			browseRollout("hq/n2/1", "full", "Oberoi Delhi", "Arthur; Delhi", 2, false, false, StatusDone),
			browseRollout("hq/n2/2", "full", "", "", 0, false, false, StatusFailed),
		} {
			if err := add(r); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	return s, a, b
}

func ids(p RolloutPage) []int64 {
	out := []int64{}
	for _, r := range p.Rows {
		out = append(out, r.ID)
	}
	return out
}

func TestBrowseFiltersSortAndPages(t *testing.T) {
	s, a, b := browseStore(t)
	ctx := ctxT(t)
	all, err := s.BrowseRollouts(ctx, RolloutQuery{})
	require.NoError(t, err)
	require.Equal(t, 6, all.Total)
	require.Len(t, all.Rows, 6)
	assert.Equal(t, "A mem1", all.Rows[0].Experiment)
	assert.Equal(t, "hq/n2/0", all.Rows[0].TaskKey)
	assert.Equal(t, 2, all.Rows[0].Correct())
	assert.True(t, all.Rows[1].CountMismatch)
	assert.True(t, all.Rows[2].HitMaxTurns)
	r := all.Rows // by id: A0 A1 A2 B0 B1 B2

	cases := []struct {
		name string
		q    RolloutQuery
		want []int64
	}{
		{"experiment", RolloutQuery{ExperimentID: b}, []int64{r[3].ID, r[4].ID, r[5].ID}},
		{"policy", RolloutQuery{Policy: "mem1"}, []int64{r[0].ID, r[1].ID, r[2].ID}},
		{"wrong only", RolloutQuery{WrongOnly: true}, []int64{r[1].ID, r[2].ID, r[3].ID}},
		{"count mismatch", RolloutQuery{CountMismatch: true}, []int64{r[1].ID}},
		{"hit max turns", RolloutQuery{HitMaxTurns: true}, []int64{r[2].ID}},
		{"failed", RolloutQuery{Failed: true}, []int64{r[5].ID}},
		{"status", RolloutQuery{Status: StatusFailed, ExperimentID: a}, []int64{}},
		// Text: internal state words (stemmed: "directed" finds "directs"/"directed"), answers, questions.
		{"text state", RolloutQuery{Text: "spielberg"}, []int64{r[2].ID}},
		{"text prefix", RolloutQuery{Text: "magaz"}, []int64{r[1].ID, r[4].ID}},
		{"text answer", RolloutQuery{Text: "Milan"}, []int64{r[3].ID}},
		{"text question and state both words", RolloutQuery{Text: "Oberoi Delhi"}, []int64{r[4].ID}},
		{"text all words required", RolloutQuery{Text: "France Jaws"}, []int64{}},
		{"text and filter", RolloutQuery{Text: "capital", Policy: "full"}, []int64{r[3].ID, r[4].ID, r[5].ID}},
		{"no words", RolloutQuery{Text: `"*:(`}, ids(all)},
		{"sort em desc", RolloutQuery{Sort: SortEM, Desc: true}, []int64{r[4].ID, r[0].ID, r[3].ID, r[2].ID, r[5].ID, r[1].ID}},
		{"sort experiment then id", RolloutQuery{Sort: SortExperiment, Desc: true, Limit: 2}, []int64{r[5].ID, r[4].ID}},
		{"page", RolloutQuery{Limit: 2, Offset: 2}, []int64{r[2].ID, r[3].ID}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := s.BrowseRollouts(ctx, c.q)
			require.NoError(t, err)
			assert.Equal(t, c.want, ids(p))
			if c.q.Limit == 0 {
				assert.Equal(t, len(c.want), p.Total)
			}
		})
	}
	p, err := s.BrowseRollouts(ctx, RolloutQuery{Limit: 2, Offset: 2})
	require.NoError(t, err)
	assert.Equal(t, 6, p.Total, "total counts every selected rollout, not the page")

	_, err = s.BrowseRollouts(ctx, RolloutQuery{Sort: "nope"})
	assert.ErrorContains(t, err, `unknown sort key "nope"`)

	f, err := s.Facets(ctx)
	require.NoError(t, err)
	assert.Equal(t, RolloutFacets{Policies: []string{"full", "mem1"}, Models: []string{"m"}, Datasets: []string{"hotpotqa"},
		Statuses: []string{"done", "failed"}}, f)
}

func TestTraceSearchFollowsRunnerWrites(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	exp, err := s.CreateExperiment(ctx, "live", "{}", "h")
	require.NoError(t, err)
	tids, err := s.AddTasks(ctx, exp, []core.Task{browseTask("k", "capital of France?", "capital of Italy?")})
	require.NoError(t, err)
	rid, err := s.CreateRollout(ctx, exp, tids["k"], "mem1", "m")
	require.NoError(t, err)
	require.NoError(t, s.AppendTurn(ctx, rid, core.Turn{Index: 0, InternalState: "zebra facts", Query: "okapi"}))
	find := func(text string) []int64 {
		p, err := s.BrowseRollouts(ctx, RolloutQuery{Text: text})
		require.NoError(t, err)
		return ids(p)
	}
	assert.Equal(t, []int64{rid}, find("zebra"))
	assert.Equal(t, []int64{rid}, find("okapi"))
	assert.Equal(t, []int64{rid}, find("France"), "task questions are searched")
	require.NoError(t, s.ResetRollout(ctx, rid))
	assert.Empty(t, find("zebra"), "deleted turns leave the index")
	_, err = s.w.ExecContext(ctx, `INSERT INTO turns_fts(turns_fts) VALUES('integrity-check')`)
	require.NoError(t, err)
}

func TestSameTaskAndPairs(t *testing.T) {
	s, a, b := browseStore(t)
	ctx := ctxT(t)
	all, err := s.BrowseRollouts(ctx, RolloutQuery{})
	require.NoError(t, err)
	same, err := s.SameTaskRollouts(ctx, all.Rows[1].ID)
	require.NoError(t, err)
	require.Len(t, same, 2)
	assert.Equal(t, []int64{all.Rows[1].ID, all.Rows[4].ID}, []int64{same[0].ID, same[1].ID})
	_, err = s.SameTaskRollouts(ctx, 999)
	assert.ErrorIs(t, err, ErrNotFound)

	pairs, err := s.PairRollouts(ctx, a, b)
	require.NoError(t, err)
	require.Len(t, pairs, 3)
	for i, p := range pairs {
		assert.Equal(t, fmt.Sprintf("hq/n2/%d", i), p.TaskKey)
		assert.Equal(t, all.Rows[i].ID, p.A.ID)
		assert.Equal(t, all.Rows[i+3].ID, p.B.ID)
		assert.Len(t, p.Task.Objectives, 2)
	}
	assert.Equal(t, 2.0, pairs[0].ScoreA.EM)
	assert.Equal(t, 1.0, pairs[0].ScoreB.EM)
	assert.True(t, pairs[1].ScoreA.CountMismatch)
}

func TestImportExperimentIsAllOrNothing(t *testing.T) {
	s, _, _ := browseStore(t)
	ctx := ctxT(t)
	before, err := s.BrowseRollouts(ctx, RolloutQuery{})
	require.NoError(t, err)
	exps, err := s.Experiments(ctx)
	require.NoError(t, err)
	boom := errors.New("line 3: bad")
	tasks := []core.Task{browseTask("x", "q1?", "q2?")}
	_, err = s.ImportExperiment(ctx, ExperimentImport{Name: "half", Tasks: tasks}, func(add func(ImportedRollout) error) error {
		if err := add(browseRollout("x", "mem1", "zanzibar", "a; b", 0, false, false, StatusDone)); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)
	_, err = s.ImportExperiment(ctx, ExperimentImport{Name: "bad task", Tasks: tasks}, func(add func(ImportedRollout) error) error {
		return add(browseRollout("y", "mem1", "zanzibar", "a; b", 0, false, false, StatusDone))
	})
	require.ErrorIs(t, err, ErrNotFound)
	bad := browseRollout("x", "mem1", "zanzibar", "a; b", 0, false, false, StatusDone)
	bad.Turns[1].Index = 5
	_, err = s.ImportExperiment(ctx, ExperimentImport{Name: "bad turn", Tasks: tasks}, func(add func(ImportedRollout) error) error {
		return add(bad)
	})
	require.ErrorContains(t, err, "turn 1 has index 5")

	after, err := s.BrowseRollouts(ctx, RolloutQuery{})
	require.NoError(t, err)
	assert.Equal(t, ids(before), ids(after))
	exps2, err := s.Experiments(ctx)
	require.NoError(t, err)
	assert.Len(t, exps2, len(exps))
	p, err := s.BrowseRollouts(ctx, RolloutQuery{Text: "zanzibar"})
	require.NoError(t, err)
	assert.Zero(t, p.Total)
	require.NoError(t, s.IntegrityCheck(context.Background()))
}

// A store written before the trace index existed gets its turns and tasks indexed
// when it is opened.
func TestTraceIndexBackfillsOldStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite3", path)
	require.NoError(t, err)
	_, err = db.Exec(migrations[0])
	require.NoError(t, err)
	_, err = db.Exec(`PRAGMA user_version = 1;
		INSERT INTO experiments(id, name, created_at, config_json, config_hash, status) VALUES (1, 'old', '', '{}', '', 'done');
		INSERT INTO tasks(id, experiment_id, key, dataset, objectives, task_json)
			VALUES (1, 1, 'k', 'd', 1, '{"key":"k","dataset":"d","objectives":[{"question":"Who painted Guernica?","gold":["Picasso"]}]}');
		INSERT INTO rollouts(id, experiment_id, task_id, policy, model, status) VALUES (1, 1, 1, 'mem1', 'm', 'done');
		INSERT INTO turns(rollout_id, idx, context, response, internal_state, action, query, answer, information,
			prompt_tokens, completion_tokens, usage_reported, latency_ms, finish_reason, created_at)
			VALUES (1, 0, '', '', 'remember cubism', 'answer', '', 'Picasso', '', 0, 0, 0, 0, '', '')`)
	require.NoError(t, err)
	require.NoError(t, db.Close())
	s, err := Open(path)
	require.NoError(t, err)
	defer s.Close()
	ctx := ctxT(t)
	for _, w := range []string{"cubism", "Guernica", "picasso"} {
		p, err := s.BrowseRollouts(ctx, RolloutQuery{Text: w})
		require.NoError(t, err)
		assert.Equal(t, []int64{1}, ids(p), w)
	}
}

// A search hit at turn 65,536 or later is credited to its own rollout (the old
// rowid rollout_id << 16 | idx named the next rollout).
func TestTraceSearchPastTurn65535(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	exp, err := s.CreateExperiment(ctx, "big", "{}", "h")
	require.NoError(t, err)
	tids, err := s.AddTasks(ctx, exp, []core.Task{browseTask("k", "capital of France?", "capital of Italy?")})
	require.NoError(t, err)
	r1, err := s.CreateRollout(ctx, exp, tids["k"], "mem1", "m")
	require.NoError(t, err)
	r2, err := s.CreateRollout(ctx, exp, tids["k"], "mem1", "m")
	require.NoError(t, err)
	require.NoError(t, s.AppendTurn(ctx, r1, core.Turn{Index: 65536, InternalState: "pangolin scales"}))
	require.NoError(t, s.AppendTurn(ctx, r2, core.Turn{Index: 0, InternalState: "armadillo"}))
	p, err := s.BrowseRollouts(ctx, RolloutQuery{Text: "pangolin"})
	require.NoError(t, err)
	assert.Equal(t, []int64{r1}, ids(p))
	p, err = s.BrowseRollouts(ctx, RolloutQuery{Text: "armadillo"})
	require.NoError(t, err)
	assert.Equal(t, []int64{r2}, ids(p))
}

// A store made before turns_fts was keyed by turns.id gets its index rebuilt
// by the migration: turns stored before it are found afterwards.
func TestTurnsFTSMigrationRebuildsIndex(t *testing.T) {
	k := -1
	for i, m := range migrations {
		if strings.Contains(m, "DROP TABLE turns_fts") {
			k = i
		}
	}
	require.GreaterOrEqual(t, k, 0)
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite3", path)
	require.NoError(t, err)
	for _, m := range migrations[:k] {
		_, err := db.Exec(m)
		require.NoError(t, err)
	}
	_, err = db.Exec(fmt.Sprintf("PRAGMA user_version = %d", k))
	require.NoError(t, err)
	for _, q := range []string{
		`INSERT INTO experiments(id, name, created_at, config_json, config_hash, status) VALUES (1, 'old', '', '{}', 'h', 'done')`,
		`INSERT INTO tasks(id, experiment_id, key, dataset, objectives, task_json) VALUES (1, 1, 'k', 'hotpotqa', 1, '{"objectives":[]}')`,
		`INSERT INTO rollouts(id, experiment_id, task_id, policy, model, status) VALUES (1, 1, 1, 'mem1', 'm', 'done')`,
		`INSERT INTO rollouts(id, experiment_id, task_id, policy, model, status) VALUES (2, 1, 1, 'mem1', 'm', 'done')`,
		`INSERT INTO turns(rollout_id, idx, context, response, internal_state, action, query, answer, information,
			prompt_tokens, completion_tokens, usage_reported, latency_ms, finish_reason, created_at)
			VALUES (1, 65536, 'c', 'r', 'wombat burrow', 'none', '', '', '', 0, 0, 0, 0, 'stop', '')`,
	} {
		_, err := db.Exec(q)
		require.NoError(t, err)
	}
	require.NoError(t, db.Close())

	s, err := Open(path)
	require.NoError(t, err)
	defer s.Close()
	v, err := s.SchemaVersion(ctxT(t))
	require.NoError(t, err)
	assert.Equal(t, LatestSchemaVersion(), v)
	p, err := s.BrowseRollouts(ctxT(t), RolloutQuery{Text: "wombat"})
	require.NoError(t, err)
	assert.Equal(t, []int64{1}, ids(p))
	_, err = s.w.ExecContext(ctxT(t), `INSERT INTO turns_fts(turns_fts) VALUES('integrity-check')`)
	require.NoError(t, err)
}
