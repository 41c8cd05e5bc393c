package app

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// rolloutFigures are the per-rollout numbers the trajectories round trip must
// keep: what the store shows, what `mem1lab score --json` computes from the
// export, and what the re-imported rollout shows. Add a field (and fill it in
// the three functions below) to hold another figure to the same rule.
type rolloutFigures struct {
	EM, F1 float64
	// PaperPeak is eval.py's peak tokens, -1 where it gives None.
	PaperPeak int
}

func storedFigures(r storage.RolloutRow) rolloutFigures {
	peak, ok := r.PaperPeak()
	if !ok {
		peak = -1
	}
	return rolloutFigures{EM: r.EM, F1: r.F1, PaperPeak: peak}
}

func scoredFigures(t *testing.T, line map[string]any) rolloutFigures {
	t.Helper()
	em, ok1 := line["em"].(float64)
	f1, ok2 := line["f1"].(float64)
	require.True(t, ok1 && ok2, "score --json line %v", line)
	peak := -1
	if v, ok := line["peak_tokens"].(float64); ok {
		peak = int(v)
	} else {
		require.Nil(t, line["peak_tokens"], "score --json line %v", line)
	}
	return rolloutFigures{EM: em, F1: f1, PaperPeak: peak}
}

// readJSONLines decodes one JSON object per line.
func readJSONLines(t *testing.T, text string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var m map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &m), sc.Text())
		out = append(out, m)
	}
	require.NoError(t, sc.Err())
	return out
}

// TestTrajectoriesRoundTrip: the trajectories export of real runs (the
// retrieval-oracle agent, mem1 and full) goes back through `mem1lab score` and
// `mem1lab import-trajectories` with the same figures per rollout, the same
// policy, model, task and prompt, and turns that export again to the same
// q/t/r/i text.
func TestTrajectoriesRoundTrip(t *testing.T) {
	db := oracleStore(t)
	dir := t.TempDir()
	traj := filepath.Join(dir, "traj.jsonl")
	code, _, errOut := run(t, "export", "--db", db, "--experiment", "1,2", "--what", "trajectories", "--out", traj)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, "6 finished rollouts")
	assert.NotContains(t, errOut, "re-rendered", "every rollout kept the prompt it sent")

	st, err := storage.Open(db)
	require.NoError(t, err)
	ctx := context.Background()
	var orig []storage.RolloutRow
	for _, id := range []int64{1, 2} {
		rows, err := st.Rollouts(ctx, id)
		require.NoError(t, err)
		orig = append(orig, rows...)
	}
	require.Len(t, orig, 6)
	require.NoError(t, st.Close())

	// score --json: one line per trajectory, then the means.
	code, out, errOut := run(t, "score", traj, "--json")
	require.Equal(t, 0, code, errOut)
	scored := readJSONLines(t, out)
	require.Len(t, scored, len(orig)+1)
	// eval.py's full-history rule for the full-history policy's peak.
	code, outFull, errOut := run(t, "score", traj, "--json", "--full")
	require.Equal(t, 0, code, errOut)
	scoredFull := readJSONLines(t, outFull)
	require.Len(t, scoredFull, len(orig)+1)
	var sumEM float64
	withPeak := 0
	for i, r := range orig {
		if storedFigures(r).PaperPeak > 0 {
			withPeak++
		}
		line := scored[i]
		if core.PaperRuleFull(r.Policy) {
			line = scoredFull[i]
		}
		assert.Equal(t, storedFigures(r), scoredFigures(t, line), "rollout %d (%s)", r.ID, r.Policy)
		sumEM += r.EM
	}
	assert.Positive(t, withPeak, "the paper peak is compared on rollouts that have one")
	assert.InDelta(t, sumEM/6, scored[6]["mean_em"], 1e-12)

	// import-trajectories: the policy, model and settings come back; no warning.
	code, out, errOut = run(t, "import-trajectories", "--db", db, traj)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "imported 6 trajectories")
	assert.Contains(t, out, "as experiment #3")
	assert.NotContains(t, errOut, "warning")

	st, err = storage.Open(db)
	require.NoError(t, err)
	back, err := st.Rollouts(ctx, 3)
	require.NoError(t, err)
	require.Len(t, back, len(orig))
	for i, r := range orig {
		b := back[i]
		assert.Equal(t, storedFigures(r), storedFigures(b), "rollout %d (%s)", r.ID, r.Policy)
		assert.Equal(t, r.Policy, b.Policy)
		assert.Equal(t, r.Model, b.Model)
		assert.Equal(t, r.TaskKey, b.TaskKey)
		assert.Equal(t, r.Dataset, b.Dataset)
		do, err := st.Rollout(ctx, r.ID)
		require.NoError(t, err)
		dn, err := st.Rollout(ctx, b.ID)
		require.NoError(t, err)
		assert.NotEmpty(t, do.Prompt)
		assert.Equal(t, do.Prompt, dn.Prompt)
		require.Len(t, dn.Turns, len(do.Turns))
		for k := range do.Turns {
			o, n := do.Turns[k], dn.Turns[k]
			assert.Equal(t, o.Response, n.Response)
			assert.Equal(t, o.Information, n.Information)
			assert.Equal(t, o.InternalState, n.InternalState)
			assert.Equal(t, o.Action, n.Action)
			// The rebuilt context is the policy's: the original request ends with it,
			// or, where the policy sends one growing user message (full), holds
			// prompt and carried text as that message.
			carried := strings.TrimPrefix(n.Context, dn.Prompt)
			pol, err := core.PolicyByName(r.Policy)
			require.NoError(t, err)
			if core.OneMessage(pol) {
				assert.Contains(t, o.Context, dn.Prompt+carried+"<|im_end|>", "turn %d of rollout %d (%s)", k, r.ID, r.Policy)
			} else {
				assert.True(t, strings.HasSuffix(o.Context, carried), "turn %d of rollout %d (%s)", k, r.ID, r.Policy)
			}
			if r.Policy == "full" && k == 2 {
				assert.Contains(t, carried, do.Turns[0].Response, "full keeps every exchange")
			}
			if r.Policy == "mem1" && k == 2 {
				assert.NotContains(t, carried, do.Turns[0].Response, "mem1 keeps the last one")
			}
		}
	}
	e3, err := st.Experiment(ctx, 3)
	require.NoError(t, err)
	assert.Contains(t, e3.ConfigJSON, `"policies":["mem1","full"]`)
	require.NoError(t, st.Close())

	// Exported again, the imported experiment writes the same trajectories.
	again := filepath.Join(dir, "again.jsonl")
	code, _, errOut = run(t, "export", "--db", db, "--experiment", "3", "--what", "trajectories", "--out", again)
	require.Equal(t, 0, code, errOut)
	first, err := os.ReadFile(traj)
	require.NoError(t, err)
	second, err := os.ReadFile(again)
	require.NoError(t, err)
	a, b := readJSONLines(t, string(first)), readJSONLines(t, string(second))
	require.Len(t, b, len(a))
	for i := range a {
		for k, v := range a[i] {
			switch k {
			case "index", "mem1lab_settings":
				continue // the rollout id and the experiment differ
			}
			assert.Equal(t, v, b[i][k], "line %d key %s", i+1, k)
		}
		assert.Len(t, b[i], len(a[i]))
	}
}

// TestImportTrajectoriesWarnsWithoutPolicy: a file of the reference pipeline
// (no mem1lab keys) imports with a warning that says what was assumed.
func TestImportTrajectoriesWarnsWithoutPolicy(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "lab.db")
	p := filepath.Join(dir, "ref.jsonl")
	require.NoError(t, os.WriteFile(p, []byte(
		`{"q": "Answer the following questions: capital of France?", "t0": "<think>Paris.</think>", "r0": "<think>Paris.</think><answer>Paris</answer>", "index": 3, "hash": "x", "Golden_answer": [["Paris"]], "Exact_match": 1, "Model_estimated_match": 1}`+"\n"+
			`{"index": 4, "hash": "y", "error": "timeout", "question": "Unknown", "Golden_answer": "Unknown", "Exact_match": false, "Model_estimated_match": false}`+"\n"), 0o644))
	code, out, errOut := run(t, "import-trajectories", "--db", db, p)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "imported 2 trajectories (1 turns, 1 failed)")
	assert.Contains(t, out, "mean EM 1.000")
	assert.Contains(t, errOut, "warning: ref.jsonl records no mem1lab_policy")

	// With the policy given, nothing is assumed and nothing is warned.
	code, _, errOut = run(t, "import-trajectories", "--db", db, p, "--policy", "full", "--model", "qwen")
	require.Equal(t, 0, code, errOut)
	assert.NotContains(t, errOut, "warning")

	// score reports the error line and keeps it out of the means.
	code, out, errOut = run(t, "score", p)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "error line")
}

// TestImportSummaryShowsWarnings: the GUI's import dialog text names the
// failed rollouts and every warning the import returned.
func TestImportSummaryShowsWarnings(t *testing.T) {
	res := experiments.ImportResult{Experiment: 4, Rollouts: 3, Failed: 1, Turns: 5, MeanEM: 1.5, MeanF1: 1.75,
		Warnings: []string{"ref.jsonl records no mem1lab_policy", "second"}}
	msg := importSummary("/tmp/ref.jsonl", res)
	assert.Contains(t, msg, "3 trajectories (5 turns, 1 failed) from /tmp/ref.jsonl are experiment #4.")
	assert.Contains(t, msg, "Mean EM 1.500 · mean F1 1.750.")
	assert.Contains(t, msg, "Warning: ref.jsonl records no mem1lab_policy")
	assert.Contains(t, msg, "Warning: second")
	assert.NotContains(t, importSummary("f", experiments.ImportResult{}), "Warning")
}
