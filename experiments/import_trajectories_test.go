package experiments

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

const refLine1 = `{"index": 7, "q": "<|im_start|>user\nAnswer them.\nQuestions: capital of France?; who wrote Dune?<|im_end|>\n<|im_start|>assistant\n",` +
	` "t0": "<think>I need France first.</think>", "r0": "\n<search>capital of France</search>",` +
	` "i0": "<information>[HINT] You have 4 turns left.\nDoc 1(Title: \"Paris\") Paris is the capital of France.\nDoc 2(Title: \"Lyon\") Lyon is a city.</information>",` +
	` "t1": "<think>France: Paris. Dune next.</think>", "r1": "<answer>Paris; Frank Herbert</answer>",` +
	` "Golden_answer": [["Paris"], ["Frank Herbert", "Herbert"]]}`

const refLine2 = `{"q": "Question: who painted the Mona Lisa?", "r0": "<think>Leonardo.</think><answer>Michelangelo</answer>", "Golden_answer": ["Leonardo da Vinci"]}`

func writeLines(t *testing.T, lines ...string) string {
	p := filepath.Join(t.TempDir(), "traj.jsonl")
	require.NoError(t, os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	return p
}

func tempStore(t *testing.T) *storage.Store {
	st, err := storage.Open(filepath.Join(t.TempDir(), "lab.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

func TestImportTrajectories(t *testing.T) {
	st := tempStore(t)
	ctx := context.Background()
	p := writeLines(t, refLine1, "", refLine2)
	res, err := ImportTrajectories(ctx, st, p, ImportOptions{})
	require.NoError(t, err)
	assert.Equal(t, 2, res.Rollouts)
	assert.Equal(t, 3, res.Turns)
	// Line 1: both objectives exact (2, 2); line 3: wrong (0, 0). Means over lines.
	assert.InDelta(t, 1.0, res.MeanEM, 1e-9)

	e, err := st.Experiment(ctx, res.Experiment)
	require.NoError(t, err)
	assert.Equal(t, "import traj.jsonl", e.Name)
	assert.Equal(t, 2, e.Done)

	rows, err := st.Rollouts(ctx, res.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Equal(t, "import/7", rows[0].TaskKey)
	assert.Equal(t, "import/line-3", rows[1].TaskKey)
	d, err := st.Rollout(ctx, rows[0].ID)
	require.NoError(t, err)
	require.Len(t, d.Task.Objectives, 2)
	assert.Equal(t, "capital of France?", d.Task.Objectives[0].Question)
	assert.Equal(t, "who wrote Dune?", d.Task.Objectives[1].Question)
	assert.Equal(t, []string{"Frank Herbert", "Herbert"}, d.Task.Objectives[1].Gold)
	require.Len(t, d.Turns, 2)
	t0, t1 := d.Turns[0], d.Turns[1]
	assert.Equal(t, "I need France first.", t0.InternalState)
	assert.Equal(t, core.ActionSearch, t0.Action)
	assert.Equal(t, "capital of France", t0.Query)
	assert.True(t, strings.HasPrefix(t0.Information, "[HINT] You have 4 turns left."))
	require.Len(t, t0.Passages, 2)
	assert.Equal(t, core.Passage{Title: "Lyon", Text: "Lyon is a city.", Rank: 2}, t0.Passages[1])
	assert.Equal(t, core.ActionAnswer, t1.Action)
	assert.Equal(t, "Paris; Frank Herbert", t1.Answer)
	assert.Equal(t, "France: Paris. Dune next.", t1.InternalState)
	// Rebuilt MEM1 context: q + previous response + its information block.
	assert.Equal(t, d.Task.Objectives[0].Question, "capital of France?")
	assert.True(t, strings.HasSuffix(t1.Context, "<search>capital of France</search><information>\n"+t0.Information+"\n</information>"))
	assert.False(t, t1.UsageReported)
	assert.Equal(t, core.EstimateTokens(t1.Context), t1.PromptTokens)
	assert.Equal(t, 2.0, d.Score.EM)
	assert.Equal(t, max(t0.Tokens(), t1.Tokens()), d.PeakTokens)

	d2, err := st.Rollout(ctx, rows[1].ID)
	require.NoError(t, err)
	assert.Equal(t, "who painted the Mona Lisa?", d2.Task.Objectives[0].Question)
	assert.Equal(t, 0.0, d2.Score.EM)

	// The browser's text search finds imported internal states.
	page, err := st.BrowseRollouts(ctx, storage.RolloutQuery{Text: "Leonardo"})
	require.NoError(t, err)
	require.Equal(t, 1, page.Total)
	assert.Equal(t, rows[1].ID, page.Rows[0].ID)
}

func TestImportTrajectoriesAllOrNothing(t *testing.T) {
	st := tempStore(t)
	ctx := context.Background()
	for _, c := range []struct {
		name  string
		lines []string
		want  string
	}{
		{"bad json on line 3", []string{refLine1, refLine2, `{"q": 1}`}, ":3: field q"},
		{"no gold on line 2", []string{refLine1, `{"q": "x", "r0": "<answer>a</answer>"}`}, ":2: no Golden_answer"},
		{"repeated index", []string{refLine1, refLine1}, `:2: index "7" already used on line 1`},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := writeLines(t, c.lines...)
			_, err := ImportTrajectories(ctx, st, p, ImportOptions{})
			require.Error(t, err)
			assert.Contains(t, err.Error(), p+c.want)
			es, err := st.Experiments(ctx)
			require.NoError(t, err)
			assert.Empty(t, es, "nothing is half-imported")
		})
	}
	_, err := ImportTrajectories(ctx, st, writeLines(t, ""), ImportOptions{})
	assert.ErrorContains(t, err, "no trajectories")
}
