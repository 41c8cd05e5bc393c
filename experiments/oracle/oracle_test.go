package oracle

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

var qs = []storage.Question{
	{ID: "a", Question: "Who wrote Hamlet", Golden: []string{"William Shakespeare", "Shakespeare"}},
	{ID: "b", Question: "What is the capital of France?", Golden: []string{"Paris"}},
	{ID: "c", Question: "Who wrote Hamlet and Macbeth?", Golden: []string{"Shakespeare"}},
}

func TestQuestionsFollowPromptOrderWhateverTheTemplate(t *testing.T) {
	a := New(qs)
	prompt := "Answer these.\n" + core.JoinQuestions([]string{qs[1].Question, qs[0].Question}) + "\nThanks."
	assert.Equal(t, []string{"What is the capital of France?", "Who wrote Hamlet?"}, a.Questions(prompt))
	// A question inside a longer known question is not matched twice.
	assert.Equal(t, []string{"Who wrote Hamlet and Macbeth?"}, a.Questions("Q: Who wrote Hamlet and Macbeth?"))
	assert.Empty(t, a.Questions("nothing known here"))
}

func TestActSearchesReadsAndAnswersFromState(t *testing.T) {
	a := New(qs)
	prompt := core.JoinQuestions([]string{qs[0].Question, qs[1].Question})
	stops := []string{"</search>", "</answer>"}

	first := a.Act(prompt, "", stops)
	p := core.DefaultTags().Parse(first)
	require.Equal(t, core.ActionSearch, p.Action)
	assert.Equal(t, "Who wrote Hamlet?", p.Query)

	// The information names the author: the oracle learns it and searches on.
	carried := first + "<information>\n[HINT]You have 4 turns left.[/HINT]\nDoc 1(Title: \"Hamlet\") A play by William Shakespeare.\n</information>"
	second := a.Act(prompt, carried, stops)
	p = core.DefaultTags().Parse(second)
	require.Equal(t, core.ActionSearch, p.Action)
	assert.Equal(t, "What is the capital of France?", p.Query)
	assert.Contains(t, p.InternalState, "fact 1: William Shakespeare")

	// Under mem1 only the last exchange is carried: the fact survives through <think>.
	carried = second + "<information>\n[HINT]You have 3 turns left.[/HINT]\nDoc 1(Title: \"Lyon\") A city in France.\n</information>"
	third := a.Act(prompt, carried, stops)
	p = core.DefaultTags().Parse(third)
	require.Equal(t, core.ActionAnswer, p.Action)
	assert.Equal(t, "William Shakespeare; unknown", p.Answer)
}

func TestActAnswersOnTheLastTurn(t *testing.T) {
	a := New(qs)
	prompt := core.JoinQuestions([]string{qs[0].Question, qs[1].Question})
	p := core.DefaultTags().Parse(a.Act(prompt, "", []string{"</answer>"}))
	require.Equal(t, core.ActionAnswer, p.Action)
	assert.Equal(t, "unknown; unknown", p.Answer)
}
