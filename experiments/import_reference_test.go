package experiments

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// referencePrompt renders ../shared/reference/mem1-prompt.txt (the released
// checkpoint's training prompt) for questions as the reference joins them
// ("?" appended when missing, no stripping, "; " between).
func referencePrompt(t *testing.T, questions ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "shared", "reference", "mem1-prompt.txt"))
	require.NoError(t, err, "reference prompt fixture")
	qs := make([]string, len(questions))
	for i, q := range questions {
		if !strings.HasSuffix(q, "?") {
			q += "?"
		}
		qs[i] = q
	}
	return strings.Replace(string(b), "{questions}", strings.Join(qs, "; "), 1)
}

func jsonString(t *testing.T, s string) string {
	b, err := json.Marshal(s)
	require.NoError(t, err)
	return string(b)
}

// TestImportReferenceFile: a file as generate_rollout.py writes it (its r{i}
// hold the whole generation, think block included, and a row that raised is
// an error line) imports whole: questions split from the reference prompt,
// the error line a failed rollout, means over the done ones, and a warning
// that the file records no policy or model.
func TestImportReferenceFile(t *testing.T) {
	st := tempStore(t)
	ctx := context.Background()
	q := referencePrompt(t, "Who wrote Dune", "what is the capital of France?")
	r0 := "<think>Need Dune's author.</think>\n<search>Dune author</search>"
	i0 := "<information>\n[HINT]You have 5 turns left.[/HINT]\nDoc 1(Title: \"Dune\") Dune is by Frank Herbert.\n\n</information>"
	r1 := "<think>Dune: Frank Herbert. France: Paris.</think>\n<answer>Frank Herbert; Paris</answer>"
	good := `{"q": ` + jsonString(t, q) + `, "t0": "<think>Need Dune's author.</think>", "r0": ` + jsonString(t, r0) +
		`, "i0": ` + jsonString(t, i0) + `, "t1": "<think>Dune: Frank Herbert. France: Paris.</think>", "r1": ` + jsonString(t, r1) +
		`, "index": 12, "hash": "9f2c", "Golden_answer": [["Frank Herbert"], ["Paris"]], "Exact_match": 2, "Model_estimated_match": 1}`
	bad := `{"index": 40, "hash": "77aa", "error": "Connection refused", "question": "Unknown", "Golden_answer": "Unknown", "Exact_match": false, "Model_estimated_match": false}`
	p := writeLines(t, good, bad)

	res, err := ImportTrajectories(ctx, st, p, ImportOptions{})
	require.NoError(t, err)
	assert.Equal(t, 2, res.Rollouts)
	assert.Equal(t, 1, res.Failed)
	assert.Equal(t, 2, res.Turns)
	assert.Equal(t, 2.0, res.MeanEM, "the failed line is left out of the mean")
	require.Len(t, res.Warnings, 1)
	assert.Contains(t, res.Warnings[0], "records no mem1lab_policy")
	assert.Contains(t, res.Warnings[0], "policy mem1, model imported")

	rows, err := st.Rollouts(ctx, res.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Equal(t, storage.StatusDone, rows[0].Status)
	assert.Equal(t, storage.StatusFailed, rows[1].Status)
	assert.Equal(t, "Connection refused", rows[1].Error)
	assert.Equal(t, "import/40", rows[1].TaskKey)
	e, err := st.Experiment(ctx, res.Experiment)
	require.NoError(t, err)
	assert.Equal(t, 1, e.Done)
	assert.Equal(t, 1, e.Failed)
	assert.Equal(t, 2.0, e.MeanEM)

	d, err := st.Rollout(ctx, rows[0].ID)
	require.NoError(t, err)
	require.Len(t, d.Task.Objectives, 2)
	assert.Equal(t, "Who wrote Dune?", d.Task.Objectives[0].Question)
	assert.Equal(t, "what is the capital of France?", d.Task.Objectives[1].Question)
	assert.Equal(t, q, d.Prompt, "q is kept as the rollout's prompt")
	require.Len(t, d.Turns, 2)
	assert.Equal(t, r0, d.Turns[0].Response, "r0 already holds the think block: not doubled")
	assert.Equal(t, "Need Dune's author.", d.Turns[0].InternalState)
	assert.Equal(t, "Dune author", d.Turns[0].Query)
	assert.Equal(t, "Frank Herbert; Paris", d.Turns[1].Answer)
	assert.Equal(t, q+r0+i0, d.Turns[1].Context, "mem1 context: prompt, last response, last information")
	assert.Equal(t, 2.0, d.Score.EM)

	f, err := st.Rollout(ctx, rows[1].ID)
	require.NoError(t, err)
	assert.Empty(t, f.Turns)
	require.Len(t, f.Task.Objectives, 1)
	assert.Equal(t, "Unknown", f.Task.Objectives[0].Question)

	// score reads the same file: the error line is reported, not fatal.
	ts, err := ReadTrajectoriesJSONL(p)
	require.NoError(t, err)
	scores, meanEM, _, err := ScoreTrajectories(ts, "mem1")
	require.NoError(t, err)
	assert.Equal(t, 2.0, meanEM)
	assert.Equal(t, "Connection refused", scores[1].Error)
	assert.Equal(t, "9f2c", ts[0].Hash)
}

// TestImportRestoresPolicyModelSettings: mem1lab's extra keys give each
// rollout its policy and model back (a full-policy rollout's contexts are
// rebuilt with the whole history), lines of one task share it, and the
// experiment config records the shared settings. No warning.
func TestImportRestoresPolicyModelSettings(t *testing.T) {
	st := tempStore(t)
	ctx := context.Background()
	q := "Questions: a?; b?\n"
	set := `{"experiment": "src", "config_hash": "h1", "task_key": "hotpotqa/0-1", "dataset": "hotpotqa", "objectives": 2, "mode": "chat", "max_turns": 6, "top_k": 3, "temperature": 0.01, "top_p": 0.95, "max_tokens": 1024, "scheme": "mem1", "compose": "consecutive", "seed": 42, "prompt_source": "stored"}`
	turns := `"t0": "", "r0": "<think>s0</think><search>a</search>", "i0": "<information>\nA\n</information>", ` +
		`"t1": "", "r1": "<think>s1</think><search>b</search>", "i1": "<information>\nB\n</information>", ` +
		`"t2": "", "r2": "<think>s2</think><answer>x; y</answer>"`
	line := func(idx int, policy, model string) string {
		return `{"q": ` + jsonString(t, q) + `, ` + turns + `, "index": ` + string(rune('0'+idx)) +
			`, "hash": "h", "Golden_answer": [["x"], ["y"]], "Exact_match": 2, "Model_estimated_match": 1, "mem1lab_policy": "` +
			policy + `", "mem1lab_model": "` + model + `", "mem1lab_settings": ` + set + `}`
	}
	p := writeLines(t, line(1, "mem1", "m-a"), line(2, "full", "m-b"))
	res, err := ImportTrajectories(ctx, st, p, ImportOptions{})
	require.NoError(t, err)
	assert.Empty(t, res.Warnings)
	rows, err := st.Rollouts(ctx, res.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Equal(t, []string{"mem1", "full"}, []string{rows[0].Policy, rows[1].Policy})
	assert.Equal(t, []string{"m-a", "m-b"}, []string{rows[0].Model, rows[1].Model})
	assert.Equal(t, "hotpotqa/0-1", rows[0].TaskKey)
	assert.Equal(t, rows[0].TaskKey, rows[1].TaskKey, "one task, two policies")
	assert.Equal(t, "hotpotqa", rows[0].Dataset)

	mem1, err := st.Rollout(ctx, rows[0].ID)
	require.NoError(t, err)
	full, err := st.Rollout(ctx, rows[1].ID)
	require.NoError(t, err)
	r0 := "<think>s0</think><search>a</search><information>\nA\n</information>"
	r1 := "<think>s1</think><search>b</search><information>\nB\n</information>"
	assert.Equal(t, q+r1, mem1.Turns[2].Context)
	assert.Equal(t, q+r0+r1, full.Turns[2].Context)
	assert.Greater(t, full.PeakTokens, mem1.PeakTokens, "the full policy's peak is not the mem1 one")

	e, err := st.Experiment(ctx, res.Experiment)
	require.NoError(t, err)
	cfg := experimentConfig(e)
	assert.Equal(t, []string{"mem1", "full"}, cfg.Policies)
	assert.Equal(t, "chat", cfg.Mode)
	assert.Equal(t, 6, cfg.MaxTurns)
	assert.Equal(t, 0.95, cfg.TopP)
	assert.Equal(t, int64(42), cfg.Seed)
	assert.Contains(t, e.ConfigJSON, `"source_config_hash":"h1"`)

	// An explicit policy overrides the file's.
	res2, err := ImportTrajectories(ctx, st, p, ImportOptions{Policy: "window:2"})
	require.NoError(t, err)
	rows2, err := st.Rollouts(ctx, res2.Experiment)
	require.NoError(t, err)
	assert.Equal(t, "window:2", rows2[1].Policy)
	assert.Equal(t, "m-b", rows2[1].Model)
}

func TestSplitQuestions(t *testing.T) {
	ref := referencePrompt(t, " Who wrote Dune", "Capital of France? ")
	// The reference does not strip: " Who wrote Dune?" keeps its space, "…? " gets "?".
	assert.Equal(t, []string{"Who wrote Dune?", "Capital of France? ?"}, SplitQuestions(ref, 2))
	assert.Equal(t, []string{"a?", "b?"}, SplitQuestions("Answer the following QUESTIONS: a?; b?", 2))
	assert.Equal(t, []string{"a?", "b?"}, SplitQuestions("intro\nQuestions: a?;b?\nmore text", 2))
	assert.Equal(t, []string{"x?"}, SplitQuestions("question: x?<|im_end|>\n", 1))
	// A count that does not fit gives the whole list to every objective.
	assert.Equal(t, []string{"a?; b?", "a?; b?", "a?; b?"}, SplitQuestions("Questions: a?; b?", 3))
	assert.Equal(t, []string{"no marker"}, SplitQuestions("  no marker ", 1))
	// The last marker counts (a question may itself say "questions:").
	assert.Equal(t, []string{"x?", "y?"}, SplitQuestions("Some questions: ignore\nquestions: x?; y?", 2))
}

func TestReferenceExactMatch(t *testing.T) {
	s := func(x string) *string { return &x }
	gold := [][]string{{"Frank Herbert", "Herbert"}, {"Paris"}}
	cases := []struct {
		answer *string
		want   int
	}{
		{s("Frank Herbert; Paris"), 2},
		{s(" frank herbert ;PARIS "), 2},
		{s("Herbert; Paris, France"), 2}, // containment either way
		{s("Herbert; Lyon"), 1},
		{s("Frank Herbert"), 0},   // fewer answers: IndexError, the count is reset to 0
		{nil, 0},                  // no answer: "None"
		{s("Frank; Paris; x"), 2}, // extra answers are ignored
		{s("; Paris"), 2},         // "" is contained in every alias
	}
	for _, c := range cases {
		assert.Equal(t, c.want, ReferenceExactMatch(c.answer, gold), "%v", c.answer)
	}
	assert.Equal(t, 0, ReferenceExactMatch(nil, [][]string{{"Paris"}}))
	assert.Equal(t, 1, ReferenceExactMatch(s("none"), [][]string{{"None of them"}}))
	_ = core.SchemeMEM1
}

// TestErrorLinesRoundTrip: with Errors, failed rollouts are written as the
// reference's error lines and come back from import as failed rollouts of the
// same task, policy and error.
func TestErrorLinesRoundTrip(t *testing.T) {
	st, exp := syntheticStore(t)
	ctx := context.Background()
	rows, err := st.Rollouts(ctx, exp)
	require.NoError(t, err)
	var failed []storage.RolloutRow
	for _, r := range rows {
		if r.Status == storage.StatusFailed {
			failed = append(failed, r)
		}
	}
	require.NotEmpty(t, failed)

	var plain strings.Builder
	c0, err := WriteTrajectories(ctx, &plain, st, TrajectoryExportOptions{}, exp)
	require.NoError(t, err)
	assert.Equal(t, len(failed), c0.LeftOut)
	assert.NotContains(t, plain.String(), `"error"`)

	path := filepath.Join(t.TempDir(), "with-errors.jsonl")
	f, err := os.Create(path)
	require.NoError(t, err)
	c, err := WriteTrajectories(ctx, f, st, TrajectoryExportOptions{Errors: true}, exp)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	assert.Equal(t, len(failed), c.Errors)
	assert.Equal(t, c0.Done, c.Done)
	assert.Equal(t, c0.Lines+len(failed), c.Lines)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var errLines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.Contains(l, `"error": `) {
			errLines = append(errLines, l)
		}
	}
	require.Len(t, errLines, len(failed))
	assert.Equal(t, []string{"index", "hash", "error", "question", "Golden_answer", "Exact_match", "Model_estimated_match",
		KeyPolicy, KeyModel, KeySettings}, jsonKeys(t, errLines[0]))
	assert.Contains(t, errLines[0], `"Exact_match": false, "Model_estimated_match": false`)

	res, err := ImportTrajectories(ctx, st, path, ImportOptions{})
	require.NoError(t, err)
	assert.Equal(t, len(failed), res.Failed)
	back, err := st.Rollouts(ctx, res.Experiment)
	require.NoError(t, err)
	require.Len(t, back, len(rows))
	for i, r := range rows {
		assert.Equal(t, r.Status, back[i].Status, "rollout %d", r.ID)
		assert.Equal(t, r.Policy, back[i].Policy)
		assert.Equal(t, r.TaskKey, back[i].TaskKey)
		if r.Status == storage.StatusFailed {
			assert.Equal(t, r.Error, back[i].Error)
			d, err := st.Rollout(ctx, r.ID)
			require.NoError(t, err)
			bd, err := st.Rollout(ctx, back[i].ID)
			require.NoError(t, err)
			require.Len(t, bd.Task.Objectives, len(d.Task.Objectives))
			for k, o := range d.Task.Objectives {
				assert.Equal(t, o.Question, bd.Task.Objectives[k].Question)
				assert.Equal(t, o.Gold, bd.Task.Objectives[k].Gold)
			}
		}
	}
}

func TestReadErrorField(t *testing.T) {
	p := writeLines(t,
		`{"q": "Questions: a?", "r0": "<answer>a</answer>", "Golden_answer": [["a"]], "error": null}`,
		`{"index": 2, "error": {"type": "Timeout"}}`,
		`{"index": 3, "error": ""}`)
	ts, err := ReadTrajectoriesJSONL(p)
	require.NoError(t, err)
	require.Len(t, ts, 3)
	assert.False(t, ts[0].Failed(), "a null error is no error")
	assert.Equal(t, `{"type": "Timeout"}`, ts[1].Error)
	assert.Nil(t, ts[1].Gold)
	assert.True(t, ts[2].Failed(), "an empty message still marks an error line")
}
