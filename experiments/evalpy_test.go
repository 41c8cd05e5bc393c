package experiments

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

// This file transcribes into Go what MEM1's Mem1/inference/eval.py (MIT-MI/MEM1
// @ 6f22061) does with each line of a trajectories file: its main loop and the
// functions that loop calls, key by key, so that a missing key or a value of
// the wrong type fails here as it fails there (KeyError, TypeError). Token
// counts go through an injected encode (eval.py uses tiktoken's gpt-4o-mini
// encoding, o200k_base); the tests below pass a stand-in and compare with the
// same stand-in over the stored turns.

// pyError is a Python exception raised by the transcription.
type pyError struct{ msg string }

func (e pyError) Error() string { return e.msg }

// pyDict is one json.loads'ed line.
type pyDict map[string]any

func (d pyDict) has(k string) bool { _, ok := d[k]; return ok }

// get is data[k]: a missing key raises KeyError.
func (d pyDict) get(k string) any {
	v, ok := d[k]
	if !ok {
		panic(pyError{fmt.Sprintf("KeyError: '%s'", k)})
	}
	return v
}

// str is data[k] used in string concatenation: anything but a str raises TypeError.
func (d pyDict) str(k string) string {
	s, ok := d.get(k).(string)
	if !ok {
		panic(pyError{fmt.Sprintf("TypeError: can only concatenate str (not %T) to str (key %s)", d[k], k)})
	}
	return s
}

// pyEqZero is Python's `v == 0` for a JSON value (False == 0 is True).
func pyEqZero(v any) bool {
	switch x := v.(type) {
	case float64:
		return x == 0
	case bool:
		return !x
	}
	return false
}

// pyNum is a value summed by sum(...): bool counts as 0/1.
func pyNum(v any) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case bool:
		if x {
			return 1
		}
		return 0
	}
	panic(pyError{fmt.Sprintf("TypeError: unsupported operand type(s) for +: 'int' and '%T'", v)})
}

const pyPunctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

func evalPreprocess(text string) string {
	text = strings.ToLower(text)
	for _, p := range pyPunctuation {
		text = strings.ReplaceAll(text, string(p), " ")
	}
	return strings.Join(strings.Fields(text), " ")
}

func evalTagsBalance(s string) bool {
	start, end := "<answer>", "</answer>"
	if strings.Count(s, start) != strings.Count(s, end) {
		return false
	}
	last := -1
	for {
		sp := indexAt(s, start, last+1)
		if sp == -1 {
			break
		}
		ep := indexAt(s, end, sp)
		if ep == -1 {
			return false
		}
		last = ep
	}
	return true
}

func indexAt(s, sub string, from int) int {
	if from > len(s) {
		return -1
	}
	i := strings.Index(s[from:], sub)
	if i < 0 {
		return -1
	}
	return from + i
}

var evalAnswerRE = regexp.MustCompile(`(?s)<answer>(.*?)</answer>`)

// evalComputeScore is eval.py's compute_score(question, solution_str,
// ground_truths, val_type) for "f1" and "em".
func evalComputeScore(solution string, gts [][]string, valType string) float64 {
	solution = strings.ToLower(solution)
	parts := strings.Split(solution, "<|im_start|>assistant")
	solution = parts[len(parts)-1]
	if !evalTagsBalance(solution) {
		return 0
	}
	m := evalAnswerRE.FindAllStringSubmatch(solution, -1)
	if len(m) == 0 {
		return 0
	}
	answers := strings.Split(strings.TrimSpace(m[len(m)-1][1]), ";")
	for i := range answers {
		answers[i] = evalPreprocess(answers[i])
	}
	if len(answers) != len(gts) {
		return 0
	}
	score := 0.0
	for idx, answer := range answers {
		cur := 0.0
		for _, gt := range gts[idx] {
			gt = evalPreprocess(gt)
			if valType == "em" {
				if answer == gt {
					cur = 1
				}
				continue
			}
			pred, gold := set(strings.Fields(answer)), set(strings.Fields(gt))
			if len(gold) == 0 || len(pred) == 0 {
				continue
			}
			common := 0
			for w := range pred {
				if gold[w] {
					common++
				}
			}
			p, r := float64(common)/float64(len(pred)), float64(common)/float64(len(gold))
			if p+r > 0 {
				cur = max(cur, 2*p*r/(p+r))
			}
		}
		score += cur
	}
	return score
}

func set(ws []string) map[string]bool {
	m := map[string]bool{}
	for _, w := range ws {
		m[w] = true
	}
	return m
}

// evalLine is what eval.py computes for one line (nil pointers for None).
type evalLine struct {
	F1, EM, MBE                               float64
	CompressionRatio                          *float64
	PeakCompression, PeakNonCompression       *int
	DependencyCompression, DependencyNonCompr *int
}

func ip(n int) *int { return &n }

func evalPeakCompression(d pyDict, enc func(string) int) *int {
	if pyEqZero(d.get("Exact_match")) {
		return nil
	}
	peak, sol := 0, ""
	for i := 0; i < 10; i++ {
		t, r, in := "t"+strconv.Itoa(i), "r"+strconv.Itoa(i), "i"+strconv.Itoa(i)
		next := ""
		if d.has(t) {
			sol += d.str(t)
			next += d.str(t)
		}
		if d.has(r) {
			sol += d.str(r)
			next += d.str(r)
		}
		peak = max(peak, enc(sol))
		sol = next
		if d.has(in) {
			sol += d.str(in)
		}
	}
	if peak == 0 {
		return nil
	}
	if d.has("memories") {
		peak += evalMaxMemory(d, enc)
	}
	return ip(peak)
}

func evalMaxMemory(d pyDict, enc func(string) int) int {
	mems, ok := d.get("memories").([]any)
	if !ok || len(mems) == 0 {
		panic(pyError{"ValueError: max() arg is an empty sequence"})
	}
	m := 0
	for _, x := range mems {
		s, ok := x.(string)
		if !ok {
			panic(pyError{"TypeError: memories"})
		}
		m = max(m, enc(s))
	}
	return m
}

func evalPeakNonCompression(d pyDict, enc func(string) int) *int {
	if pyEqZero(d.get("Exact_match")) {
		return nil
	}
	sol := evalSolution(d)
	res := enc(sol)
	if d.has("memories") {
		res += evalMaxMemory(d, enc)
	}
	return ip(res)
}

func evalDependency(d pyDict, enc func(string) int, compress bool) *int {
	dep, total, sol := 0, 0, ""
	for i := 0; i < 10; i++ {
		t, r, in := "t"+strconv.Itoa(i), "r"+strconv.Itoa(i), "i"+strconv.Itoa(i)
		next := ""
		for _, k := range []string{t, r} {
			if d.has(k) {
				l := enc(d.str(k))
				dep += (enc(sol) + l/2) * l
				total += l
				sol += d.str(k)
				next += d.str(k)
			}
		}
		if compress {
			sol = next
		}
		if d.has(in) {
			sol += d.str(in)
		}
		if !d.has(t) && !d.has(r) && !d.has(in) {
			break
		}
	}
	if total == 0 {
		return nil
	}
	return ip(dep)
}

func evalCompressionRatio(d pyDict, enc func(string) int) *float64 {
	total, length, sol := 0, 0, ""
	for i := 0; i < 10; i++ {
		t, r, in := "t"+strconv.Itoa(i), "r"+strconv.Itoa(i), "i"+strconv.Itoa(i)
		cur := ""
		if d.has(t) {
			total += enc(d.str(t))
			cur += d.str(t)
			sol += d.str(t)
		}
		if d.has(r) {
			total += enc(d.str(r))
			cur += d.str(r)
			sol += d.str(r)
			length = enc(sol)
		}
		sol = cur
		if d.has(in) {
			total += enc(d.str(in))
			cur += d.str(in)
			sol += d.str(in)
		}
		if !d.has(t) && !d.has(r) && !d.has(in) {
			break
		}
	}
	if total == 0 {
		return nil
	}
	x := float64(length) / float64(total)
	return &x
}

// evalSolution is the main loop's solution_str: t/r/i of turns 0–9 until the
// first index with none of them.
func evalSolution(d pyDict) string {
	var b strings.Builder
	for i := 0; i < 10; i++ {
		t, r, in := "t"+strconv.Itoa(i), "r"+strconv.Itoa(i), "i"+strconv.Itoa(i)
		if d.has(t) {
			b.WriteString(d.str(t))
		}
		if d.has(r) {
			b.WriteString(d.str(r))
		}
		if d.has(in) {
			b.WriteString(d.str(in))
		}
		if !d.has(t) && !d.has(r) && !d.has(in) {
			break
		}
	}
	return b.String()
}

// evalPy runs eval.py's main loop over path: every line json.loads'ed, then
// scored in order. The first Python exception stops it, as it stops eval.py.
func evalPy(path string, enc func(string) int) (lines []evalLine, err error) {
	defer func() {
		if r := recover(); r != nil {
			pe, ok := r.(pyError)
			if !ok {
				panic(r)
			}
			err = pe
		}
	}()
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var all []pyDict
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		var d pyDict
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			return nil, fmt.Errorf("json.decoder.JSONDecodeError: %w", err)
		}
		all = append(all, d)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, d := range all {
		_ = d.get("q")
		sol := evalSolution(d)
		raw, ok := d.get("Golden_answer").([]any)
		if !ok || len(raw) == 0 {
			panic(pyError{"TypeError/IndexError: Golden_answer[0]"})
		}
		var gts [][]string
		if _, flat := raw[0].(string); flat {
			var g []string
			for _, x := range raw {
				g = append(g, x.(string))
			}
			gts = [][]string{g}
		} else {
			for _, x := range raw {
				var g []string
				for _, y := range x.([]any) {
					g = append(g, y.(string))
				}
				gts = append(gts, g)
			}
		}
		l := evalLine{F1: evalComputeScore(sol, gts, "f1"), EM: evalComputeScore(sol, gts, "em"),
			MBE: pyNum(d.get("Model_estimated_match"))}
		l.CompressionRatio = evalCompressionRatio(d, enc)
		l.PeakCompression = evalPeakCompression(d, enc)
		l.DependencyCompression = evalDependency(d, enc, true)
		l.PeakNonCompression = evalPeakNonCompression(d, enc)
		l.DependencyNonCompr = evalDependency(d, enc, false)
		lines = append(lines, l)
	}
	return lines, nil
}

// runeCount stands in for tiktoken's encoder in these tests.
func runeCount(s string) int { return len([]rune(s)) }

// oracleRun plays 3 tasks of 2 objectives under mem1 and full through the
// retrieval-oracle endpoint over the real bundle and returns the experiment.
func oracleRun(t *testing.T, st *storage.Store) int64 {
	t.Helper()
	ctx := context.Background()
	qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	srv := httptest.NewServer(oracle.New(qs))
	t.Cleanup(srv.Close)
	cfg := DefaultRunConfig()
	cfg.Name = "eval.py export check"
	cfg.Endpoint, cfg.Model, cfg.Concurrency = srv.URL+"/v1", oracle.ModelName, 2
	cfg.Tasks, cfg.Policies = 3, []string{"mem1", "full"}
	sum, err := (&Runner{Store: st, Env: st}).Run(ctx, cfg, nil)
	require.NoError(t, err)
	return sum.Experiment
}

// TestEvalPyReadsTrajectoriesExport: the export of a real run is read by the
// transcription of eval.py without a missing key, and eval.py's EM and F1 are
// the stored ones; its t/r/i fields are the stored turns (the consolidating
// peak rule over them equals the same rule over the stored turns).
func TestEvalPyReadsTrajectoriesExport(t *testing.T) {
	st := bundleStore(t)
	ctx := context.Background()
	exp := oracleRun(t, st)
	path := filepath.Join(t.TempDir(), "traj.jsonl")
	f, err := os.Create(path)
	require.NoError(t, err)
	n, err := WriteTrajectoriesJSONL(ctx, f, st, exp)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.Equal(t, 6, n)

	lines, err := evalPy(path, runeCount)
	require.NoError(t, err, "eval.py's loop reads the export")
	require.Len(t, lines, n)
	rows, err := st.Rollouts(ctx, exp)
	require.NoError(t, err)
	require.Len(t, rows, n)
	tags := core.DefaultTags()
	var sumEM, meanEM float64
	for i, row := range rows {
		l := lines[i]
		assert.Equal(t, row.EM, l.EM, "rollout %d EM", row.ID)
		assert.InDelta(t, row.F1, l.F1, 1e-12, "rollout %d F1", row.ID)
		assert.Equal(t, 1.0, l.MBE)
		d, err := st.Rollout(ctx, row.ID)
		require.NoError(t, err)
		// The consolidating peak over the stored turns with the same counter.
		var lenient *string
		want, prev := 0, ""
		for _, tu := range d.Turns {
			cur := ""
			if tu.InternalState != "" {
				cur = "<think>" + tu.InternalState + "</think>"
			}
			if tu.Action != core.ActionNone {
				cur += tu.Response
			}
			want = max(want, runeCount(prev+cur))
			prev = cur
			if tu.Action == core.ActionSearch && tu.Information != "" {
				prev += tags.InformationBlock(tu.Information)
			}
			if tu.Action == core.ActionAnswer {
				a := tu.Answer
				lenient = &a
			}
		}
		if ReferenceExactMatch(lenient, goldLists(d.Task)) == 0 {
			assert.Nil(t, l.PeakCompression, "eval.py leaves Exact_match 0 out")
		} else {
			require.NotNil(t, l.PeakCompression)
			assert.Equal(t, want, *l.PeakCompression, "rollout %d (%s)", row.ID, row.Policy)
		}
		assert.NotNil(t, l.DependencyCompression)
		assert.NotNil(t, l.CompressionRatio)
		sumEM += l.EM
		meanEM += row.EM
	}
	assert.Positive(t, sumEM, "the oracle answers some questions")
	assert.Equal(t, meanEM, sumEM)

	// The transcription does fail where eval.py fails: mem1lab's earlier export
	// had no Model_estimated_match.
	old := filepath.Join(t.TempDir(), "old.jsonl")
	require.NoError(t, os.WriteFile(old, []byte(`{"q": "Questions: a?", "t0": "", "r0": "<answer>a</answer>", "index": 1, "Golden_answer": [["a"]], "policy": "mem1"}`+"\n"), 0o644))
	_, err = evalPy(old, runeCount)
	require.EqualError(t, err, "KeyError: 'Model_estimated_match'")
	// So do the reference's own error lines (no "q").
	errLine := filepath.Join(t.TempDir(), "err.jsonl")
	require.NoError(t, os.WriteFile(errLine, []byte(`{"index": 3, "hash": "ab", "error": "boom", "question": "Unknown", "Golden_answer": "Unknown", "Exact_match": false, "Model_estimated_match": false}`+"\n"), 0o644))
	_, err = evalPy(errLine, runeCount)
	require.EqualError(t, err, "KeyError: 'q'")
}

// TestTrajectoriesExportShape: keys, order and types of each line are
// generate_rollout.py's, q is the prompt the rollout stored (re-rendered and
// marked for a rollout without one), and the extra keys carry policy, model
// and settings.
func TestTrajectoriesExportShape(t *testing.T) {
	st := bundleStore(t)
	ctx := context.Background()
	exp := oracleRun(t, st)
	rows, err := st.Rollouts(ctx, exp)
	require.NoError(t, err)
	// The first rollout lost its stored prompt (as rows written before the
	// column existed have none).
	require.NoError(t, st.SetRolloutPrompt(ctx, rows[0].ID, ""))

	var buf strings.Builder
	counts, err := WriteTrajectories(ctx, &buf, st, TrajectoryExportOptions{}, exp)
	require.NoError(t, err)
	assert.Equal(t, TrajectoryExportCounts{Lines: 6, Done: 6, ReRendered: 1}, counts)
	out := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	require.Len(t, out, 6)
	e, err := st.Experiment(ctx, exp)
	require.NoError(t, err)
	for i, line := range out {
		d, err := st.Rollout(ctx, rows[i].ID)
		require.NoError(t, err)
		keys := jsonKeys(t, line)
		var want []string
		want = append(want, "q")
		for _, tu := range d.Turns {
			k := strconv.Itoa(tu.Index)
			want = append(want, "t"+k)
			if tu.Action != core.ActionNone {
				want = append(want, "r"+k)
			}
			if tu.Action == core.ActionSearch {
				want = append(want, "i"+k)
			}
		}
		want = append(want, "index", "hash", "Golden_answer", "Exact_match", "Model_estimated_match",
			KeyPolicy, KeyModel, KeySettings)
		assert.Equal(t, want, keys, "line %d", i+1)
		assert.True(t, strings.HasPrefix(line, `{"q": "`), "Python's json.dump spacing")

		var obj map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &obj))
		assert.Equal(t, float64(d.ID), obj["index"])
		q := obj["q"].(string)
		assert.Equal(t, promptHash(q), obj["hash"])
		_, isInt := obj["Exact_match"].(float64)
		assert.True(t, isInt, "Exact_match is the multi-objective count")
		assert.Equal(t, float64(1), obj["Model_estimated_match"])
		assert.NotContains(t, obj, "memories")
		assert.Equal(t, d.Policy, obj[KeyPolicy])
		assert.Equal(t, d.Model, obj[KeyModel])
		set := obj[KeySettings].(map[string]any)
		assert.Equal(t, d.TaskKey, set["task_key"])
		assert.Equal(t, e.ConfigHash, set["config_hash"])
		assert.Equal(t, "completions", set["mode"])
		assert.Equal(t, float64(6), set["max_turns"])
		rendered := core.DefaultTemplate().RenderWith(d.Task, core.DefaultTags())
		if i == 0 {
			assert.Equal(t, "re-rendered", set["prompt_source"])
			assert.Equal(t, rendered, q)
		} else {
			assert.Equal(t, "stored", set["prompt_source"])
			assert.Equal(t, d.Prompt, q, "q is the prompt the rollout stored")
			assert.Equal(t, rendered, d.Prompt)
			// The stored prompt is what every model call carried.
			for _, tu := range d.Turns {
				assert.Contains(t, tu.Context, d.Prompt)
			}
		}
	}
}

// jsonKeys lists the top-level keys of a JSON object in file order.
func jsonKeys(t *testing.T, line string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	tok, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok)
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		require.NoError(t, err)
		keys = append(keys, k.(string))
		var skip json.RawMessage
		require.NoError(t, dec.Decode(&skip))
	}
	return keys
}
