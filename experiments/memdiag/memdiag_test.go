package memdiag

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

// words is a stand-in encoder: one piece per run of non-space bytes together
// with the spaces after it (pieces concatenate to the text).
func words(text string) ([]string, error) {
	var out []string
	start := 0
	for i := 1; i <= len(text); i++ {
		if i == len(text) || (text[i] != ' ' && text[i-1] == ' ') {
			if i > start {
				out = append(out, text[start:i])
			}
			start = i
		}
	}
	return out, nil
}

func turn(i int, think, action, info string) core.Turn {
	resp := "<think>" + think + "</think>" + action
	return core.Turn{Index: i, Response: resp, InternalState: think, Information: info}
}

var task = core.Task{Key: "hotpotqa/n2/0000", Objectives: []core.Objective{
	{Question: "Who wrote Dune?", Gold: []string{"Frank Herbert"}},
	{Question: "Capital of France?", Gold: []string{"Paris"}},
}}

// TestRetentionHandBuilt: the fact "Frank Herbert" is retrieved at turn 1
// (its information block), kept in the state at turn 2, dropped at turn 3:
// one forgetting event, at turn 3. "Paris" is never retrieved.
func TestRetentionHandBuilt(t *testing.T) {
	turns := []core.Turn{
		turn(0, "look up dune", "<search>Dune author</search>", "Doc 1(Title: \"Dune\") Dune is a novel by Frank Herbert."),
		turn(1, "Dune: by frank herbert. next: France", "<search>France capital</search>", "Doc 1(Title: \"France\") A country."),
		turn(2, "still need the capital", "<answer>Frank Herbert; Lyon</answer>", ""),
	}
	got := Retention(task, turns, []string{"Frank Herbert", "Lyon"})
	require.Len(t, got, 2)
	assert.Equal(t, FactRetention{Objective: 1, Retrieved: 1, InState: []bool{true, false}, Forgetting: []int{3}, Answered: true}, got[0])
	assert.Equal(t, FactRetention{Objective: 2, InState: []bool{}, Forgetting: []int{}}, got[1])

	// Dropped right after the retrieval, then recalled, then dropped again:
	// two events.
	turns2 := []core.Turn{
		turn(0, "", "<search>x</search>", "Frank Herbert wrote it."),
		turn(1, "nothing", "<search>y</search>", "other"),
		turn(2, "Frank Herbert", "<search>z</search>", "other"),
		turn(3, "gone", "<answer>?</answer>", ""),
	}
	r := Retention(task, turns2, nil)[0]
	assert.Equal(t, []int{2, 4}, r.Forgetting)
	assert.False(t, r.Answered)

	// The curve: fact 1 of the first rollout is kept 1 turn later, not 2;
	// fact 1 of the second: no, yes, no.
	curve := RetentionCurve(append(got, r))
	assert.Equal(t, []CurvePoint{{K: 1, N: 2, Share: 0.5}, {K: 2, N: 2, Share: 0.5}, {K: 3, N: 1, Share: 0}}, curve)
}

// TestComposition: each turn's parts sum to the context's tokens, and the
// parts are what the policy carried: mem1 carries the last exchange only,
// full every exchange.
func TestComposition(t *testing.T) {
	turns := []core.Turn{
		turn(0, "a b", " <search>q1</search>", "\nDoc one two\n"),
		turn(1, "c d e", " <search>q2</search>", "\nDoc three\n"),
		turn(2, "f", " <answer>x</answer>", ""),
	}
	tags := core.DefaultTags()
	mem1, _ := core.PolicyByName("mem1")
	full, _ := core.PolicyByName("full")
	prompt := "Answer the questions please "
	for _, enc := range []Encoder{words, O200K} {
		for _, pol := range []core.Policy{mem1, full} {
			segs := ContextSegments(prompt, turns, pol, tags)
			comp, err := Compose(segs, enc)
			require.NoError(t, err)
			require.Len(t, comp, 3)
			for i, c := range comp {
				var text strings.Builder
				for _, s := range segs[i] {
					text.WriteString(s.Text)
				}
				// The context rebuilt equals what the turn loop sends.
				kept := pol.Keep(tags.Exchanges(turns[:i]))
				assert.Equal(t, prompt+core.Context{Prompt: prompt, History: kept}.Carried(), text.String())
				whole, _ := enc(text.String())
				sum := 0
				for _, p := range Parts {
					sum += c.Parts[p]
				}
				assert.Equal(t, len(whole), c.Tokens, "turn %d", i+1)
				assert.Equal(t, c.Tokens, sum, "parts sum to the context tokens, turn %d", i+1)
				assert.Zero(t, c.Parts[PartMemory])
			}
			assert.Equal(t, comp[0].Tokens, comp[0].Parts[PartPrompt], "turn 1 is the prompt only")
		}
	}
	// With the word encoder the parts are countable by hand. Turn 3 under
	// mem1 is "Answer the questions please " + "<think>c d e</think>" +
	// " <search>q2</search>" + "<information>\nDoc three\n</information>",
	// whose pieces are "Answer ", "the ", "questions ", "please " (prompt: 4),
	// "<think>c ", "d ", "e</think> " (state: 3; the space belongs to the piece
	// before it), "<search>q2</search><information>\nDoc " (starts in the
	// responses: 1) and "three\n</information>" (information: 1).
	segs := ContextSegments(prompt, turns, mem1, tags)
	comp, err := Compose(segs, words)
	require.NoError(t, err)
	assert.Equal(t, 4, comp[2].Parts[PartPrompt])
	assert.Equal(t, 3, comp[2].Parts[PartState])
	assert.Equal(t, 1, comp[2].Parts[PartResponses])
	assert.Equal(t, 1, comp[2].Parts[PartInformation])
	fullComp, err := Compose(ContextSegments(prompt, turns, full, tags), words)
	require.NoError(t, err)
	assert.Greater(t, fullComp[2].Parts[PartState], comp[2].Parts[PartState], "full carries both states")
}

func TestAccuracyByPosition(t *testing.T) {
	got := AccuracyByPosition([][]float64{{1, 0}, {1, 1}, {0, 0}, {1}})
	require.Len(t, got, 3)
	assert.Equal(t, PositionAccuracy{Objectives: 1, Position: 1, N: 1, EM: 1}, got[0])
	assert.Equal(t, 2, got[1].Objectives)
	assert.InDelta(t, 2.0/3, got[1].EM, 1e-12)
	// sd of {1,1,0} = √(1/3); SE = √(1/3)/√3 = 1/3.
	assert.InDelta(t, 1.0/3, got[1].StdErr, 1e-12)
	assert.InDelta(t, 1.0/3, got[2].EM, 1e-12, "late objectives lost more")
}

func TestGrowth(t *testing.T) {
	// States of 1, 3 and 5 words: slope 2 words a turn.
	turns := []core.Turn{turn(0, "a", "", ""), turn(1, "a b c", "", ""), turn(2, "a b c d e", "", "")}
	g, err := Growth(turns, words)
	require.NoError(t, err)
	assert.Equal(t, []int{1, 3, 5}, g.Tokens)
	assert.InDelta(t, 2, g.Slope, 1e-12)
	g, err = Growth(turns[:1], words)
	require.NoError(t, err)
	assert.Zero(t, g.Slope)
}
