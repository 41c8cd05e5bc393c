package core

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tiktoken-go/tokenizer"
)

// libCount counts with the tokenizer library directly, so the expected values
// below do not go through O200kTokens or the formulas under test.
func libCount(t *testing.T) func(string) int {
	t.Helper()
	c, err := tokenizer.Get(tokenizer.O200kBase)
	require.NoError(t, err)
	return func(s string) int {
		n, err := c.Count(s)
		require.NoError(t, err)
		return n
	}
}

func TestO200kTokensKnownCounts(t *testing.T) {
	// Counts of tiktoken's o200k_base (ids listed in the library's own tests).
	assert.Equal(t, 0, O200kTokens(""))
	assert.Equal(t, 2, O200kTokens("hello world"))
	assert.Equal(t, 3, O200kTokens("hello  world"))
	assert.Equal(t, 14, O200kTokens("We know what we are, but know not what we may be."))
}

// A three-turn consolidating trajectory as run_llm_loop records it: two
// searches, then an answer.
func refFixture() []RefTurn {
	t0 := "<think>I need the capital of France first.</think>"
	r0 := "<think>I need the capital of France first.</think>\n<search>capital of France</search>"
	i0 := "<information>\n[HINT]You have 5 turns left.[/HINT]\nDoc 1(Title: \"Paris\") Paris is the capital of France.\n\n</information>"
	t1 := "<think>Paris is the capital. Now the river.</think>"
	r1 := "<think>Paris is the capital. Now the river.</think>\n<search>river through Paris</search>"
	i1 := "<information>\n[HINT]You have 4 turns left.[/HINT]\nDoc 1(Title: \"Seine\") The Seine flows through Paris.\n\n</information>"
	t2 := "<think>Paris; Seine.</think>"
	r2 := "<think>Paris; Seine.</think>\n<answer>Paris; Seine</answer>"
	return []RefTurn{
		{T: t0, R: r0, I: i0, HasT: true, HasR: true, HasI: true},
		{T: t1, R: r1, I: i1, HasT: true, HasR: true, HasI: true},
		{T: t2, R: r2, HasT: true, HasR: true},
	}
}

func TestPaperMetricsGolden(t *testing.T) {
	n := libCount(t)
	f := refFixture()
	t0, r0, i0 := f[0].T, f[0].R, f[0].I
	t1, r1, i1 := f[1].T, f[1].R, f[1].I
	t2, r2 := f[2].T, f[2].R

	// Consolidating peak: max over i of n(t{i-1}+r{i-1}+i{i-1}+t{i}+r{i}); index 3
	// (past the end) counts t2+r2 alone.
	wantPeak := max(n(t0+r0), n(t0+r0+i0+t1+r1), n(t1+r1+i1+t2+r2), n(t2+r2))
	got, ok := PeakTokensConsolidating(f, 2, nil, O200kTokens)
	require.True(t, ok)
	assert.Equal(t, wantPeak, got)
	// The peak is a carried context here, not a first turn.
	assert.Greater(t, wantPeak, n(t0+r0))

	// A-MEM: the largest memory is added.
	got, ok = PeakTokensConsolidating(f, 2, []string{"short", "a much longer memory note"}, O200kTokens)
	require.True(t, ok)
	assert.Equal(t, wantPeak+n("a much longer memory note"), got)

	// Exact_match 0: None.
	_, ok = PeakTokensConsolidating(f, 0, nil, O200kTokens)
	assert.False(t, ok)
	_, ok = PeakTokensFullHistory(f, 0, nil, O200kTokens)
	assert.False(t, ok)

	// Full-history peak: the whole text once.
	got, ok = PeakTokensFullHistory(f, 1, nil, O200kTokens)
	require.True(t, ok)
	assert.Equal(t, n(t0+r0+i0+t1+r1+i1+t2+r2), got)

	// Consolidating dependency: segments t0, r0, t1, r1, t2, r2; the context of
	// a turn's segments is the previous turn's t+r+i (plus t{i} for r{i}).
	lt0, lr0, lt1, lr1, lt2, lr2 := n(t0), n(r0), n(t1), n(r1), n(t2), n(r2)
	wantDep := (0+lt0/2)*lt0 +
		(n(t0)+lr0/2)*lr0 +
		(n(t0+r0+i0)+lt1/2)*lt1 +
		(n(t0+r0+i0+t1)+lr1/2)*lr1 +
		(n(t1+r1+i1)+lt2/2)*lt2 +
		(n(t1+r1+i1+t2)+lr2/2)*lr2
	dep, ok := DependencyConsolidating(f, O200kTokens)
	require.True(t, ok)
	assert.Equal(t, wantDep, dep)

	// Full-history dependency: each context is everything before the segment.
	wantDepFull := (0+lt0/2)*lt0 +
		(n(t0)+lr0/2)*lr0 +
		(n(t0+r0+i0)+lt1/2)*lt1 +
		(n(t0+r0+i0+t1)+lr1/2)*lr1 +
		(n(t0+r0+i0+t1+r1+i1)+lt2/2)*lt2 +
		(n(t0+r0+i0+t1+r1+i1+t2)+lr2/2)*lr2
	dep, ok = DependencyFullHistory(f, O200kTokens)
	require.True(t, ok)
	assert.Equal(t, wantDepFull, dep)
	assert.Greater(t, wantDepFull, wantDep)

	// Compression ratio: the last turn's context t1+r1+i1+t2+r2 over the sum of
	// every field's count (i2 absent).
	wantRatio := float64(n(t1+r1+i1+t2+r2)) / float64(lt0+lr0+n(i0)+lt1+lr1+n(i1)+lt2+lr2)
	ratio, ok := CompressionRatio(f, O200kTokens)
	require.True(t, ok)
	assert.InDelta(t, wantRatio, ratio, 1e-12)
}

func TestPaperMetricsEdgeCases(t *testing.T) {
	n := libCount(t)
	// No turns: None everywhere except the full-history peak (0).
	_, ok := PeakTokensConsolidating(nil, 1, nil, O200kTokens)
	assert.False(t, ok, "peak 0 is None")
	p, ok := PeakTokensFullHistory(nil, 1, nil, O200kTokens)
	assert.True(t, ok)
	assert.Equal(t, 0, p)
	_, ok = DependencyConsolidating(nil, O200kTokens)
	assert.False(t, ok)
	_, ok = CompressionRatio(nil, O200kTokens)
	assert.False(t, ok)

	// A turn with no action: t present, r absent. The ratio keeps the length
	// measured at the last turn that has r.
	f := refFixture()[:2]
	f = append(f, RefTurn{T: "<think>stuck</think>", HasT: true})
	want := float64(n(f[0].T+f[0].R+f[0].I+f[1].T+f[1].R)) /
		float64(n(f[0].T)+n(f[0].R)+n(f[0].I)+n(f[1].T)+n(f[1].R)+n(f[1].I)+n(f[2].T))
	ratio, ok := CompressionRatio(f, O200kTokens)
	require.True(t, ok)
	assert.InDelta(t, want, ratio, 1e-12)

	// eval.py reads turn indices 0..9 only.
	var long []RefTurn
	for i := 0; i < 12; i++ {
		long = append(long, RefTurn{T: "<think>x</think>", R: "<think>x</think><search>q</search>", HasT: true, HasR: true, HasI: true})
	}
	long[11].R = "<think>x</think><search>a very long query that would dominate the peak if it were read at all by the script</search>"
	full, _ := PeakTokensFullHistory(long, 1, nil, O200kTokens)
	short, _ := PeakTokensFullHistory(long[:10], 1, nil, O200kTokens)
	assert.Equal(t, short, full)
	// Ten identical turns: the last one read by eval.py is index 9.
	assert.Equal(t, n(strings.Repeat("<think>x</think><think>x</think><search>q</search>", 10)), full)
}

func TestLenientExactMatch(t *testing.T) {
	gold := [][]string{{"Paris", "City of Paris"}, {"Seine"}}
	assert.Equal(t, 2, LenientExactMatch("paris; the Seine river", true, gold), "gold inside answer")
	assert.Equal(t, 2, LenientExactMatch("Par; sein", true, gold), "answer inside gold")
	assert.Equal(t, 1, LenientExactMatch("City of Paris; Loire", true, gold), "only the first alias counts: 'city of paris' contains 'paris'")
	assert.Equal(t, 0, LenientExactMatch("Lyon; Loire", true, gold))
	assert.Equal(t, 0, LenientExactMatch("Paris", true, gold), "fewer parts than objectives")
	assert.Equal(t, 2, LenientExactMatch("; ", true, gold), "an empty part is inside every gold")
	assert.Equal(t, 0, LenientExactMatch("", false, gold), "no answer is the text None")
	assert.Equal(t, 1, LenientExactMatch("", false, [][]string{{"Nonesuch"}}), "'none' is inside 'nonesuch'")
	assert.Equal(t, 0, LenientExactMatch("x", true, [][]string{{}}), "no alias")
	assert.Equal(t, 1, LenientExactMatch("Paris; Seine; extra", true, [][]string{{"paris"}}), "extra parts ignored")
}

func TestReferenceTurns(t *testing.T) {
	tags := DefaultTags()
	turns := []Turn{
		{Index: 0, Response: "<think>  plan </think><search>q</search>", Action: ActionSearch, Information: "[HINT]h[/HINT]\nDoc 1(Title: \"T\") x\n"},
		{Index: 1, Response: "no think <search>q2</search>", Action: ActionSearch}, // last-turn search: no information
		{Index: 2, Response: "<think>a</think><answer>A</answer>", Action: ActionAnswer},
		{Index: 3, Response: "rambling", Action: ActionNone},
	}
	got := ReferenceTurns(turns, tags)
	require.Len(t, got, 4)
	assert.Equal(t, RefTurn{T: "<think>plan</think>", R: turns[0].Response, I: "<information>\n[HINT]h[/HINT]\nDoc 1(Title: \"T\") x\n\n</information>", HasT: true, HasR: true, HasI: true}, got[0])
	assert.Equal(t, RefTurn{T: "", R: turns[1].Response, HasT: true, HasR: true, HasI: true}, got[1])
	assert.Equal(t, RefTurn{T: "<think>a</think>", R: turns[2].Response, HasT: true, HasR: true}, got[2])
	assert.Equal(t, RefTurn{HasT: true}, got[3])
}

func TestRolloutPaperMetrics(t *testing.T) {
	n := libCount(t)
	task := Task{Objectives: []Objective{{Gold: []string{"Paris"}}}}
	turns := []Turn{
		{Index: 0, Response: "<think>p</think><search>q</search>", Action: ActionSearch, Information: "[HINT]x[/HINT]\n"},
		{Index: 1, Response: "<think>k</think><answer>paris</answer>", Action: ActionAnswer, Answer: "paris"},
	}
	m := RolloutPaperMetrics(task, turns, DefaultTags(), PolicyMEM1)
	assert.Equal(t, 1, m.ExactMatchLenient)
	require.NotNil(t, m.PeakTokens)
	r0, i0 := turns[0].Response, "<information>\n[HINT]x[/HINT]\n\n</information>"
	want := max(n("<think>p</think>"+r0), n("<think>p</think>"+r0+i0+"<think>k</think>"+turns[1].Response), n("<think>k</think>"+turns[1].Response))
	assert.Equal(t, want, *m.PeakTokens)
	assert.False(t, m.Full)

	full := RolloutPaperMetrics(task, turns, DefaultTags(), PolicyFull)
	require.NotNil(t, full.PeakTokens)
	assert.Equal(t, n("<think>p</think>"+r0+i0+"<think>k</think>"+turns[1].Response), *full.PeakTokens)

	// A wrong answer: no peak (eval.py leaves it out), dependency still there.
	turns[1].Answer = "Lyon"
	m = RolloutPaperMetrics(task, turns, DefaultTags(), PolicyMEM1)
	assert.Equal(t, 0, m.ExactMatchLenient)
	assert.Nil(t, m.PeakTokens)
	assert.NotNil(t, m.Dependency)
	assert.NotNil(t, m.CompressionRatio)
}
