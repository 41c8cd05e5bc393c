package storage

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

func sampleTasks() []core.Task {
	return []core.Task{
		{Key: "hotpotqa/n2/0000", Dataset: "hotpotqa", Objectives: []core.Objective{
			{QuestionID: "hotpotqa:a", Question: "Who?", Gold: []string{"Ann", "Anne"}, GoldPassageIDs: []string{"hp-1"}},
			{QuestionID: "hotpotqa:b", Question: "When?", Gold: []string{"1990"}},
		}},
		{Key: "nq/n1/0000", Dataset: "nq", Objectives: []core.Objective{
			{QuestionID: "nq:dev-0", Question: "where", Gold: []string{"here"}},
		}},
	}
}

func sampleTurn(i int) core.Turn {
	return core.Turn{
		Index:         i,
		Context:       fmt.Sprintf("<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nturn %d", i),
		Response:      "<think>state</think>\n<search>who is ann</search>",
		RawResponse:   "\n <think>state</think>\n<search>who is ann ",
		InternalState: "state",
		Action:        core.ActionSearch,
		Query:         "who is ann",
		Information:   "Doc 1(Title: \"Ann\") Ann is…",
		Passages: []core.Passage{
			{ID: "hp-1", Title: "Ann", Text: "Ann is…", Score: 7.25, Rank: 1},
			{ID: "hp-2", Title: "Bob", Text: "Bob…", Score: 3.5, Rank: 2, TitleLine: "Bob"},
		},
		PromptTokens:     100 + i,
		CompletionTokens: 20,
		UsageReported:    i%2 == 0,
		Latency:          1234567891 * time.Nanosecond,
		FinishReason:     "stop",
		RetrievalLatency: 234567891 * time.Nanosecond,
	}
}

func TestExperimentRolloutTurnRoundTrip(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)

	e1, err := s.CreateExperiment(ctx, "first", `{"a":1}`, "h1")
	require.NoError(t, err)
	e2, err := s.CreateExperiment(ctx, "second", `{"a":2}`, "h2")
	require.NoError(t, err)

	tasks := sampleTasks()
	ids, err := s.AddTasks(ctx, e1, tasks)
	require.NoError(t, err)
	require.Len(t, ids, 2)
	again, err := s.AddTasks(ctx, e1, tasks)
	require.NoError(t, err)
	assert.Equal(t, ids, again, "re-adding identical tasks keeps their ids")
	changed := sampleTasks()
	changed[0].Objectives[0].Gold = []string{"Zed"}
	_, err = s.AddTasks(ctx, e1, changed[:1])
	require.ErrorIs(t, err, ErrDuplicate)
	_, err = s.AddTasks(ctx, 999, tasks)
	require.ErrorIs(t, err, ErrNotFound)

	r1, err := s.CreateRollout(ctx, e1, ids["hotpotqa/n2/0000"], "mem1", "qwen")
	require.NoError(t, err)
	r2, err := s.CreateRollout(ctx, e1, ids["nq/n1/0000"], "full", "qwen")
	require.NoError(t, err)
	r3, err := s.CreateRollout(ctx, e1, ids["nq/n1/0000"], "mem1", "qwen")
	require.NoError(t, err)
	_, err = s.CreateRollout(ctx, e2, ids["nq/n1/0000"], "mem1", "qwen")
	require.ErrorIs(t, err, ErrNotFound, "the task belongs to another experiment")

	require.NoError(t, s.StartRollout(ctx, r1))
	for i := range 3 {
		require.NoError(t, s.AppendTurn(ctx, r1, sampleTurn(i)))
	}
	last := core.Turn{Index: 3, Response: "<think>done</think>\n<answer>Ann; 1990</answer>", InternalState: "done",
		Action: core.ActionAnswer, Answer: "Ann; 1990", PromptTokens: 300, CompletionTokens: 12, FinishReason: "stop"}
	require.NoError(t, s.AppendTurn(ctx, r1, last))
	err = s.AppendTurn(ctx, r1, sampleTurn(1))
	require.ErrorIs(t, err, ErrDuplicate)
	require.ErrorIs(t, s.AppendTurn(ctx, 12345, sampleTurn(0)), ErrNotFound)
	require.Error(t, s.AppendTurn(ctx, r1, core.Turn{Index: -1}))

	score := core.Score{Scheme: "mem1", EM: 1, F1: 1.5, Answers: []string{"Ann", "1990"},
		PerObjective: []core.ObjectiveScore{{Answer: "Ann", EM: 1, F1: 1}, {Answer: "1990", EM: 0, F1: 0.5}}}
	require.NoError(t, s.FinishRollout(ctx, r1, RolloutResult{Status: StatusDone, Score: score, Answer: "Ann; 1990",
		PeakTokens: 312, TotalTokens: 700, Turns: 4, Seconds: 3.5}))
	require.NoError(t, s.StartRollout(ctx, r2))
	require.NoError(t, s.FinishRollout(ctx, r2, RolloutResult{Status: StatusDone, Score: core.Score{Scheme: "mem1", EM: 0, F1: 0.5},
		Turns: 6, HitMaxTurns: true}))
	require.NoError(t, s.StartRollout(ctx, r3))
	require.Error(t, s.FinishRollout(ctx, r3, RolloutResult{Status: "bogus"}))
	require.ErrorIs(t, s.FinishRollout(ctx, 999, RolloutResult{Status: StatusDone}), ErrNotFound)

	d, err := s.Rollout(ctx, r1)
	require.NoError(t, err)
	assert.Equal(t, tasks[0], d.Task)
	assert.Equal(t, score, d.Score)
	assert.Equal(t, RolloutRow{ID: r1, ExperimentID: e1, TaskKey: "hotpotqa/n2/0000", Dataset: "hotpotqa",
		Policy: "mem1", Model: "qwen", Objectives: 2, Status: StatusDone, EM: 1, F1: 1.5, PeakTokens: 312,
		TotalTokens: 700, Turns: 4, Seconds: 3.5}, d.RolloutRow)
	want := []core.Turn{sampleTurn(0), sampleTurn(1), sampleTurn(2), last}
	assert.Equal(t, want, d.Turns)
	turns, err := s.Turns(ctx, r1)
	require.NoError(t, err)
	assert.Equal(t, want, turns)

	d3, err := s.Rollout(ctx, r3)
	require.NoError(t, err)
	assert.Equal(t, StatusRunning, d3.Status)
	assert.Equal(t, core.Score{}, d3.Score)
	assert.Empty(t, d3.Turns)
	_, err = s.Rollout(ctx, 999)
	require.ErrorIs(t, err, ErrNotFound)

	rows, err := s.Rollouts(ctx, e1)
	require.NoError(t, err)
	require.Len(t, rows, 3)
	assert.Equal(t, []int64{r1, r2, r3}, []int64{rows[0].ID, rows[1].ID, rows[2].ID})
	all, err := s.Rollouts(ctx, 0)
	require.NoError(t, err)
	assert.Equal(t, rows, all)
	none, err := s.Rollouts(ctx, e2)
	require.NoError(t, err)
	assert.Empty(t, none)

	require.NoError(t, s.SetExperimentStatus(ctx, e1, StatusRunning))
	require.ErrorIs(t, s.SetExperimentStatus(ctx, 999, StatusDone), ErrNotFound)
	exps, err := s.Experiments(ctx)
	require.NoError(t, err)
	require.Len(t, exps, 2)
	assert.Equal(t, e2, exps[0].ID, "newest first")
	assert.Equal(t, StatusQueued, exps[0].Status)
	assert.Zero(t, exps[0].Rollouts)
	e := exps[1]
	assert.Equal(t, "first", e.Name)
	assert.Equal(t, `{"a":1}`, e.ConfigJSON)
	assert.Equal(t, "h1", e.ConfigHash)
	assert.Equal(t, StatusRunning, e.Status)
	assert.Equal(t, 3, e.Rollouts)
	assert.Equal(t, 2, e.Done)
	assert.Equal(t, 1, e.Running)
	assert.Equal(t, 0, e.Failed)
	assert.InDelta(t, 0.5, e.MeanEM, 1e-12)
	assert.InDelta(t, 1.0, e.MeanF1, 1e-12)
	assert.WithinDuration(t, time.Now(), e.CreatedAt, time.Minute)
	one, err := s.Experiment(ctx, e1)
	require.NoError(t, err)
	assert.Equal(t, e, one)
	_, err = s.Experiment(ctx, 999)
	require.ErrorIs(t, err, ErrNotFound)

	// Reset puts a rollout back in the queue without its turns.
	require.NoError(t, s.ResetRollout(ctx, r1))
	d, err = s.Rollout(ctx, r1)
	require.NoError(t, err)
	assert.Equal(t, StatusQueued, d.Status)
	assert.Empty(t, d.Turns)
	assert.Zero(t, d.EM)
	require.ErrorIs(t, s.ResetRollout(ctx, 999), ErrNotFound)
	require.NoError(t, s.IntegrityCheck(ctx))
}

func TestReaderSeesWriterCommits(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	exp, err := s.CreateExperiment(ctx, "x", "{}", "h")
	require.NoError(t, err)
	ids, err := s.AddTasks(ctx, exp, sampleTasks())
	require.NoError(t, err)
	r, err := s.CreateRollout(ctx, exp, ids["nq/n1/0000"], "mem1", "m")
	require.NoError(t, err)
	for i := range 5 {
		require.NoError(t, s.AppendTurn(ctx, r, sampleTurn(i)))
		turns, err := s.Turns(ctx, r) // read pool, right after the writer's commit
		require.NoError(t, err)
		require.Len(t, turns, i+1)
	}
	// Open a second Store on the same file, as another process would.
	other, err := Open(s.Path())
	require.NoError(t, err)
	defer other.Close()
	require.NoError(t, s.FinishRollout(ctx, r, RolloutResult{Status: StatusFailed, Error: "boom"}))
	rows, err := other.Rollouts(ctx, exp)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, StatusFailed, rows[0].Status)
	assert.Equal(t, "boom", rows[0].Error)
}

func TestConcurrentAppendTurn(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	exp, err := s.CreateExperiment(ctx, "x", "{}", "h")
	require.NoError(t, err)
	ids, err := s.AddTasks(ctx, exp, sampleTasks())
	require.NoError(t, err)
	const workers, turns = 6, 15
	rollouts := make([]int64, workers)
	for i := range rollouts {
		rollouts[i], err = s.CreateRollout(ctx, exp, ids["hotpotqa/n2/0000"], "mem1", "m")
		require.NoError(t, err)
		require.NoError(t, s.StartRollout(ctx, rollouts[i]))
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*turns*2)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range turns {
				if err := s.AppendTurn(ctx, rollouts[w], sampleTurn(i)); err != nil {
					errs <- err
				}
				if _, err := s.Rollouts(ctx, exp); err != nil { // readers alongside writers
					errs <- err
				}
			}
		}()
	}
	// Two goroutines race to write the same turn of one more rollout: exactly one wins.
	race, err := s.CreateRollout(ctx, exp, ids["nq/n1/0000"], "mem1", "m")
	require.NoError(t, err)
	var dupErrs [2]error
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dupErrs[i] = s.AppendTurn(ctx, race, sampleTurn(0))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, r := range rollouts {
		ts, err := s.Turns(ctx, r)
		require.NoError(t, err)
		require.Len(t, ts, turns)
		for i, tt := range ts {
			assert.Equal(t, i, tt.Index)
		}
	}
	nErr := 0
	for _, err := range dupErrs {
		if err != nil {
			nErr++
			assert.True(t, errors.Is(err, ErrDuplicate), err)
		}
	}
	assert.Equal(t, 1, nErr)
}
