package experiments

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestScoreCasesFile(t *testing.T) {
	ts, err := ReadTrajectoriesJSONL(filepath.Join("testdata", "score_cases.jsonl"))
	require.NoError(t, err)
	require.Len(t, ts, 8, "blank line 5 is skipped")

	// Hand computations under scheme mem1 (MEM1 eval.py: lower-case, every ASCII
	// punctuation mark → space, whitespace collapsed, articles kept; F1 over token
	// sets; sums over objectives; answer count ≠ objectives → 0).
	want := []struct {
		line   int
		index  string
		turns  int
		em, f1 float64
	}{
		// t0 r0 i0 t1 r1 → last answer "Paris; the Beatles": both equal an alias → 2, 2.
		{1, "7", 2, 2, 2},
		// one answer for two objectives: count mismatch → 0, 0.
		{2, "a-2", 1, 0, 0},
		// "beatles" vs "the beatles": not equal (articles kept) → EM 0;
		// F1: P = 1/1, R = 1/2 → 2·(1·½)/(1½) = 2/3. "the rolling stones" equal → 1, 1.
		// Sums: EM 1, F1 1 + 2/3.
		{3, "", 1, 1, 1 + 2.0/3},
		// "washington, d.c." → "washington d c" vs "washington dc": EM 0;
		// tokens {washington,d,c} vs {washington,dc}: common 1, P = 1/3, R = 1/2,
		// F1 = 2·(1/6)/(5/6) = 0.4.
		{4, "", 1, 0, 0.4},
		// "u.s." → "u s" equals alias "U.S." → 1, 1. "lennon" vs "john lennon" or
		// "lennon, john" ("lennon john"): EM 0, F1 = 2·(1·½)/(1½) = 2/3.
		// Sums: EM 1, F1 1 + 2/3.
		{6, "", 1, 1, 1 + 2.0/3},
		// two <answer> but one </answer>: unbalanced → 0, 0.
		{7, "", 1, 0, 0},
		// flat Golden_answer list = one objective's aliases; "december 1972" equals
		// the second alias → 1, 1.
		{8, "3", 1, 1, 1},
		// t1/r1/i1 absent: eval.py stops at turn 1, so r2's answer is never read → 0, 0.
		{9, "", 1, 0, 0},
	}
	scores, meanEM, meanF1, err := ScoreTrajectories(ts, "mem1")
	require.NoError(t, err)
	require.Len(t, scores, len(want))
	sumEM, sumF1 := 0.0, 0.0
	for i, w := range want {
		assert.Equal(t, w.line, ts[i].Line, "case %d", i)
		assert.Equal(t, w.index, ts[i].Index, "line %d", w.line)
		assert.Equal(t, w.turns, ts[i].Turns, "line %d", w.line)
		assert.Equal(t, w.line, scores[i].Line)
		assert.InDelta(t, w.em, scores[i].Score.EM, 1e-9, "EM line %d", w.line)
		assert.InDelta(t, w.f1, scores[i].Score.F1, 1e-9, "F1 line %d", w.line)
		sumEM += w.em
		sumF1 += w.f1
	}
	assert.InDelta(t, sumEM/8, meanEM, 1e-9)
	assert.InDelta(t, sumF1/8, meanF1, 1e-9)
	assert.True(t, scores[1].Score.CountMismatch)
	assert.Equal(t, [][]string{{"14 December 1972 UTC", "December 1972"}}, ts[6].Gold)
	// Text is t{i} r{i} i{i} in order.
	assert.Equal(t, "<think>x</think><think>x</think><answer>Paris</answer>", ts[1].Text)

	_, _, _, err = ScoreTrajectories(ts, "nope")
	assert.Error(t, err)
}

func TestReadTrajectoriesErrors(t *testing.T) {
	cases := []struct{ name, body, want string }{
		{"not json", "{\"q\":1}\n{oops\n", ":1: field q"},
		{"bad json line 2", `{"q":"a","Golden_answer":["x"]}` + "\n{oops\n", ":2: not a JSON object"},
		{"no gold", `{"q":"a","r0":"x"}`, ":1: no Golden_answer"},
		{"empty gold", `{"q":"a","Golden_answer":[]}`, ":1: field Golden_answer: empty"},
		{"mixed gold", `{"q":"a","Golden_answer":[["x"],"y"]}`, ":1: field Golden_answer: item 1"},
		{"number turn", `{"q":"a","r0":5,"Golden_answer":["x"]}`, ":1: field r0: not a string"},
		{"latin-1", `{"q":"a","Golden_answer":["x"]}` + "\n" + `{"q":"caf` + "\xe9" + `","Golden_answer":["x"]}`, ":2: not valid UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x.jsonl")
			require.NoError(t, os.WriteFile(p, []byte(c.body), 0o644))
			_, err := ReadTrajectoriesJSONL(p)
			require.Error(t, err)
			assert.Contains(t, err.Error(), p+c.want)
		})
	}
	_, err := ReadTrajectoriesJSONL(filepath.Join(t.TempDir(), "missing.jsonl"))
	assert.Error(t, err)
}
