package app

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tiktoken-go/tokenizer"

	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/internal/fixture"
	"github.com/mem1lab/mem1lab/storage"
)

var rawDir = filepath.Join("..", "..", "shared", "data", "qa-bundle", "raw")

// run invokes the CLI and returns its exit status, stdout and stderr.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	c := &CLI{Stdout: &out, Stderr: &errb}
	code := c.Run(args)
	return code, out.String(), errb.String()
}

func needRaw(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(rawDir, name)
	if _, err := os.Stat(p); err != nil {
		fixture.Missing(t, "shared QA bundle not found: %v", err)
	}
	return p
}

func TestHelpListsEveryCommand(t *testing.T) {
	code, out, _ := run(t, "help")
	require.Equal(t, 0, code)
	for _, cmd := range commands() {
		assert.Contains(t, out, "mem1lab "+cmd.name)
	}
	assert.Contains(t, out, "--db PATH")

	code, _, errOut := run(t, "frobnicate")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, `unknown command "frobnicate"`)
}

func TestGUIWithoutDriverSaysSo(t *testing.T) {
	code, _, errOut := run(t, "--db", filepath.Join(t.TempDir(), "x.db"))
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "no GUI")
}

// TestScoreJSONMatchesHandComputedCases rescores the committed tricky cases
// through the CLI; the expected values are computed by hand in
// experiments/trajectories_test.go (TestScoreCasesFile).
func TestScoreJSONMatchesHandComputedCases(t *testing.T) {
	code, out, errOut := run(t, "score", filepath.Join("..", "experiments", "testdata", "score_cases.jsonl"), "--json")
	require.Equal(t, 0, code, errOut)
	type row struct {
		Line   *int     `json:"line"`
		EM     *float64 `json:"em"`
		F1     *float64 `json:"f1"`
		MeanEM *float64 `json:"mean_em"`
		MeanF1 *float64 `json:"mean_f1"`
	}
	var rows []row
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var r row
		require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
		rows = append(rows, r)
	}
	want := map[int][2]float64{ // line → EM, F1
		1: {2, 2},         // both answers equal an alias
		2: {0, 0},         // one answer for two objectives
		3: {1, 1 + 2.0/3}, // "beatles" vs "the beatles": articles kept
		4: {0, 0.4},       // "washington d c" vs "washington dc"
		6: {1, 1 + 2.0/3}, // "u s" equals "U.S."; "lennon" vs "john lennon"
		7: {0, 0},         // unbalanced answer tags
		8: {1, 1},         // flat alias list for one objective
		9: {0, 0},         // turn 1 missing: eval.py stops reading there
	}
	require.Len(t, rows, len(want)+1, "one object per line, then the means")
	var sumEM, sumF1 float64
	for _, r := range rows[:len(want)] {
		require.NotNil(t, r.Line)
		w, ok := want[*r.Line]
		require.True(t, ok, "unexpected line %d", *r.Line)
		assert.InDelta(t, w[0], *r.EM, 1e-9, "EM of line %d", *r.Line)
		assert.InDelta(t, w[1], *r.F1, 1e-9, "F1 of line %d", *r.Line)
		sumEM += w[0]
		sumF1 += w[1]
	}
	last := rows[len(want)]
	require.NotNil(t, last.MeanEM)
	assert.InDelta(t, sumEM/float64(len(want)), *last.MeanEM, 1e-9)
	assert.InDelta(t, sumF1/float64(len(want)), *last.MeanF1, 1e-9)

	// The table form names structural zeros.
	code, out, _ = run(t, "score", "--scheme", "squad", filepath.Join("..", "experiments", "testdata", "score_cases.jsonl"))
	require.Equal(t, 0, code)
	assert.Contains(t, out, "unbalanced answer tags")
	assert.Contains(t, out, "mean")
}

func TestScoreReportsFileAndLine(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.jsonl")
	require.NoError(t, os.WriteFile(p, []byte(`{"q":"q","r0":"<answer>x</answer>","Golden_answer":[["x"]]}`+"\n{not json\n"), 0o644))
	code, _, errOut := run(t, "score", p)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, p+":2:")
}

func TestImportErrorKeepsTheStore(t *testing.T) {
	nq := needRaw(t, "NQ-open.dev.jsonl")
	db := filepath.Join(t.TempDir(), "lab.db")
	code, out, errOut := run(t, "import", "--db", db, "--nq", nq)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "imported 3610 questions")

	bad := filepath.Join(t.TempDir(), "nq-bad.jsonl")
	require.NoError(t, os.WriteFile(bad, []byte(`{"question":"who am i","answer":["me"]}`+"\n"+`{"question":"x","answer":"not a list"}`+"\n"), 0o644))
	code, _, errOut = run(t, "import", "--db", db, "--nq", bad)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, bad+":2:")

	st, err := storage.Open(db)
	require.NoError(t, err)
	defer st.Close()
	n, err := st.CountQuestions(context.Background(), "nq")
	require.NoError(t, err)
	assert.Equal(t, 3610, n, "the failed import added nothing")
}

// TestRunJSONShowAndLs runs a small experiment against the retrieval-oracle agent
// through the CLI and reads it back with show and ls.
func TestRunJSONShowAndLs(t *testing.T) {
	db, url := oracleEndpoint(t)
	code, out, errOut := run(t, "run", "--db", db, "--endpoint", url, "--model", oracle.ModelName,
		"--dataset", "hotpotqa", "--objectives", "2", "--tasks", "3", "--policy", "mem1", "--json", "--quiet")
	require.Equal(t, 0, code, errOut)
	var summary map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &summary), out)
	require.ElementsMatch(t, []string{"experiment", "groups"}, keys(summary))
	groups := summary["groups"].([]any)
	require.Len(t, groups, 1)
	g := groups[0].(map[string]any)
	assert.ElementsMatch(t, []string{"policy", "objectives", "rollouts", "failed", "mean_em", "mean_f1",
		"mean_peak_tokens", "mean_seconds", "mean_paper_peak_tokens", "paper_peak_n"}, keys(g))
	assert.Equal(t, "mem1", g["policy"])
	// The paper's count leaves out the prompt the server counts.
	if n, ok := g["paper_peak_n"].(float64); ok && n > 0 {
		assert.Less(t, g["mean_paper_peak_tokens"], g["mean_peak_tokens"])
	}
	assert.EqualValues(t, 2, g["objectives"])
	assert.EqualValues(t, 3, g["rollouts"])
	assert.EqualValues(t, 0, g["failed"])
	assert.Positive(t, g["mean_peak_tokens"])

	// The table form with a config file; the flag given overrides the file.
	cfg := filepath.Join(t.TempDir(), "exp.toml")
	require.NoError(t, os.WriteFile(cfg, []byte("endpoint = \""+url+"\"\nmodel = \"m\"\ndataset = \"hotpotqa\"\nobjectives = 2\ntasks = 2\npolicy = \"full\"\n"), 0o644))
	code, out, errOut = run(t, "run", "--db", db, "--config", cfg, "--tasks", "1")
	require.Equal(t, 0, code, errOut)
	assert.Regexp(t, `full\s+2\s+1\s+0\s`, out, "one full-policy rollout: --tasks overrides the file")
	assert.Contains(t, errOut, "1/1 rollouts", "progress line")

	code, out, errOut = run(t, "show", "1", "--db", db)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "objective 1:")
	assert.Contains(t, out, "── turn 1 ── search")
	assert.Contains(t, out, "internal state:")
	assert.Contains(t, out, "Doc 1(Title: ")
	assert.Contains(t, out, "request peak ")
	assert.Contains(t, out, "(server-usage)")
	assert.Contains(t, out, "(eval.py consolidating rule, o200k)")

	code, out, _ = run(t, "ls", "--db", db)
	require.Equal(t, 0, code)
	assert.Equal(t, 3, strings.Count(strings.TrimSpace(out), "\n")+1, "header and two experiments:\n%s", out)

	code, _, errOut = run(t, "show", "999", "--db", db)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "999")
}

// oracleEndpoint imports the HotpotQA dev sample into a fresh store and serves
// the retrieval-oracle agent over its questions; it returns the store path and
// the endpoint's base URL (…/v1).
func oracleEndpoint(t *testing.T) (db, url string) {
	t.Helper()
	hotpot := needRaw(t, "hotpotqa_dev_distractor.rpt-dev.jsonl")
	db = filepath.Join(t.TempDir(), "lab.db")
	code, _, errOut := run(t, "import", "--db", db, "--hotpot", hotpot)
	require.Equal(t, 0, code, errOut)
	st, err := storage.Open(db)
	require.NoError(t, err)
	qs, err := st.Questions(context.Background(), "hotpotqa", 0, 0)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	srv := httptest.NewServer(oracle.New(qs))
	t.Cleanup(srv.Close)
	return db, srv.URL + "/v1"
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestRunGridFromFlags: comma lists in --objectives and --policy fan out into one
// setting per (policy, objectives), each reported as its own group.
func TestRunGridFromFlags(t *testing.T) {
	db, url := oracleEndpoint(t)
	code, out, errOut := run(t, "run", "--db", db, "--endpoint", url, "--model", oracle.ModelName,
		"--objectives", "1,3", "--policy", "mem1,full", "--tasks", "2", "--json", "--quiet")
	require.Equal(t, 0, code, errOut)
	var summary struct {
		Groups []struct {
			Policy     string `json:"policy"`
			Objectives int    `json:"objectives"`
			Rollouts   int    `json:"rollouts"`
		} `json:"groups"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &summary), out)
	got := map[string]int{}
	for _, g := range summary.Groups {
		got[fmt.Sprintf("%s/%d", g.Policy, g.Objectives)] = g.Rollouts
	}
	assert.Equal(t, map[string]int{"mem1/1": 2, "mem1/3": 2, "full/1": 2, "full/3": 2}, got)

	code, _, errOut = run(t, "run", "--db", db, "--endpoint", url, "--objectives", "2,x")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `"x" is not a whole number`)
}

// TestReadCommandsRefuseAMissingStore: a mistyped --db must not leave an empty
// store behind.
func TestReadCommandsRefuseAMissingStore(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "typo.db")
	for _, args := range [][]string{{"ls"}, {"show", "1"}, {"cancel", "1"}, {"export", "--experiment", "1", "--what", "rollouts", "--out", "-"}} {
		code, _, errOut := run(t, append(args, "--db", missing)...)
		assert.Equal(t, 1, code, "%v", args)
		assert.Contains(t, errOut, "store "+missing, "%v", args)
		assert.NoFileExists(t, missing, "%v created the store", args)
	}
}

// TestScoreJSONPaperMetrics checks the eval.py token metrics of `score --json`
// on two hand-built lines: the consolidating rule by default, the full-history
// rule with --full, null where eval.py gives None (Exact_match 0), and means
// that leave the None out. Expected values use the tokenizer library directly.
func TestScoreJSONPaperMetrics(t *testing.T) {
	codec, err := tokenizer.Get(tokenizer.O200kBase)
	require.NoError(t, err)
	n := func(s string) int { c, err := codec.Count(s); require.NoError(t, err); return c }
	t0, r0 := "<think>find it</think>", "<think>find it</think><search>capital of Peru</search>"
	i0 := "<information>\n[HINT]You have 5 turns left.[/HINT]\nDoc 1(Title: \"Lima\") Lima is the capital of Peru.\n\n</information>"
	t1, r1 := "<think>Lima</think>", "<think>Lima</think><answer>Lima</answer>"
	line := func(em int) map[string]any {
		return map[string]any{"q": "Q: capital of Peru?", "t0": t0, "r0": r0, "i0": i0, "t1": t1, "r1": r1,
			"Golden_answer": [][]string{{"Lima"}}, "Exact_match": em, "Model_estimated_match": 1}
	}
	var buf bytes.Buffer
	for _, em := range []int{1, 0} {
		b, err := json.Marshal(line(em))
		require.NoError(t, err)
		buf.Write(append(b, '\n'))
	}
	p := filepath.Join(t.TempDir(), "traj.jsonl")
	require.NoError(t, os.WriteFile(p, buf.Bytes(), 0o644))

	type row struct {
		Line       *int     `json:"line"`
		Peak       *int     `json:"peak_tokens"`
		Dependency *int     `json:"dependency"`
		Ratio      *float64 `json:"compression_ratio"`
		MeanPeak   *float64 `json:"mean_peak_tokens"`
		Source     string   `json:"token_source"`
	}
	parse := func(out string) []row {
		var rows []row
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var r row
			require.NoError(t, json.Unmarshal(sc.Bytes(), &r), sc.Text())
			rows = append(rows, r)
		}
		require.Len(t, rows, 3)
		return rows
	}
	code, out, errOut := run(t, "score", p, "--json")
	require.Equal(t, 0, code, errOut)
	rows := parse(out)
	wantPeak := max(n(t0+r0), n(t0+r0+i0+t1+r1), n(t1+r1))
	wantDep := (0+n(t0)/2)*n(t0) + (n(t0)+n(r0)/2)*n(r0) + (n(t0+r0+i0)+n(t1)/2)*n(t1) + (n(t0+r0+i0+t1)+n(r1)/2)*n(r1)
	wantRatio := float64(n(t0+r0+i0+t1+r1)) / float64(n(t0)+n(r0)+n(i0)+n(t1)+n(r1))
	require.NotNil(t, rows[0].Peak)
	assert.Equal(t, wantPeak, *rows[0].Peak)
	require.NotNil(t, rows[0].Dependency)
	assert.Equal(t, wantDep, *rows[0].Dependency)
	require.NotNil(t, rows[0].Ratio)
	assert.InDelta(t, wantRatio, *rows[0].Ratio, 1e-12)
	assert.Nil(t, rows[1].Peak, "Exact_match 0: eval.py's None")
	assert.Contains(t, out, `"peak_tokens":null`)
	require.NotNil(t, rows[1].Dependency, "dependency is not gated on Exact_match")
	assert.Equal(t, wantDep, *rows[1].Dependency)
	require.NotNil(t, rows[2].MeanPeak)
	assert.Equal(t, float64(wantPeak), *rows[2].MeanPeak, "the None line is left out of the mean")
	assert.Equal(t, "o200k", rows[2].Source)

	code, out, errOut = run(t, "score", p, "--json", "--full")
	require.Equal(t, 0, code, errOut)
	rows = parse(out)
	require.NotNil(t, rows[0].Peak)
	assert.Equal(t, n(t0+r0+i0+t1+r1), *rows[0].Peak)
	wantDepFull := wantDep // two turns: turn 1's context is all of turn 0 either way
	assert.Equal(t, wantDepFull, *rows[0].Dependency)
}

// `run --cache`: the first turn of mem1 and of full on a task is one request,
// so half of the first turns are answered from the store's cache (one at a
// time: two identical requests in flight together both go to the server).
func TestRunCacheFlag(t *testing.T) {
	db, url := oracleEndpoint(t)
	code, _, errOut := run(t, "run", "--db", db, "--endpoint", url, "--model", oracle.ModelName,
		"--objectives", "1", "--policy", "mem1,full", "--tasks", "2", "--concurrency", "1", "--cache", "--json", "--quiet")
	require.Equal(t, 0, code, errOut)
	st, err := storage.Open(db)
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	exps, err := st.Experiments(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, exps)
	e := exps[len(exps)-1]
	assert.Contains(t, e.ConfigJSON, `"cache":true`)
	rows, err := st.Rollouts(ctx, e.ID)
	require.NoError(t, err)
	require.Len(t, rows, 4)
	cachedFirst := 0
	for _, r := range rows {
		turns, err := st.Turns(ctx, r.ID)
		require.NoError(t, err)
		require.NotEmpty(t, turns)
		if turns[0].Cached {
			cachedFirst++
		}
	}
	assert.Equal(t, 2, cachedFirst, "one first turn per task came from the cache")
}
