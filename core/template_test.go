package core

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func taskOf(questions ...string) Task {
	t := Task{Key: "test/n" + string(rune('0'+len(questions))), Dataset: "test"}
	for _, q := range questions {
		t.Objectives = append(t.Objectives, Objective{Question: q})
	}
	return t
}

func TestJoinQuestions(t *testing.T) {
	cases := []struct {
		name string
		in   []string
		want string
	}{
		{"none", nil, ""},
		{"one without mark", []string{"who wrote hamlet"}, "who wrote hamlet?"},
		{"one with mark", []string{"who wrote hamlet?"}, "who wrote hamlet?"},
		// The reference does not strip: whitespace stays and "?" goes after it.
		{"keeps spaces", []string{"  who wrote hamlet \t", "\nwhere is paris  "}, "  who wrote hamlet \t?; \nwhere is paris  ?"},
		{"space after mark", []string{"who wrote hamlet? "}, "who wrote hamlet? ?"},
		{"mixed marks", []string{"a?", "b", "c?"}, "a?; b?; c?"},
		{"blank kept", []string{"a", "  ", "b"}, "a?;   ?; b?"},
		{"empty becomes mark", []string{"a", ""}, "a?; ?"},
		{"unicode kept", []string{"où est Zürich"}, "où est Zürich?"},
		{"inner question mark kept", []string{"is it a? or b"}, "is it a? or b?"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, JoinQuestions(c.in))
		})
	}
}

func TestParseTemplate(t *testing.T) {
	tpl, err := ParseTemplate("mine", "Q: {questions}\n")
	require.NoError(t, err)
	assert.Equal(t, Template{Name: "mine", Text: "Q: {questions}\n"}, tpl)

	_, err = ParseTemplate("broken", "Q: {question}\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "broken")
	assert.Contains(t, err.Error(), QuestionsSlot)
}

func TestLoadTemplateRendersByteForByte(t *testing.T) {
	dir := t.TempDir()
	prefix := "\ufeffHead\r\n\t  spaced   \r\n🙂 Ünïcödé — ok\r\nQuestions:\t"
	suffix := "\r\n\r\n  trailing \t \r\n"
	path := filepath.Join(dir, "odd.prompt.txt")
	require.NoError(t, os.WriteFile(path, []byte(prefix+QuestionsSlot+suffix), 0o600))

	tpl, err := LoadTemplate(path)
	require.NoError(t, err)
	assert.Equal(t, "odd.prompt", tpl.Name)

	got := tpl.Render(taskOf("first one", "second one?"))
	assert.Equal(t, prefix+"first one?; second one?"+suffix, got)
}

func TestLoadTemplateErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadTemplate(filepath.Join(dir, "missing.txt"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing.txt")

	path := filepath.Join(dir, "noslot.txt")
	require.NoError(t, os.WriteFile(path, []byte("no slot here"), 0o600))
	_, err = LoadTemplate(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)

	// A file that is not UTF-8 text is refused, naming the line of the bad byte.
	bad := filepath.Join(dir, "latin1.txt")
	require.NoError(t, os.WriteFile(bad, []byte("line one\nline two\nQ: {questions} caf\xe9\n"), 0o600))
	_, err = LoadTemplate(bad)
	require.ErrorContains(t, err, bad+":3:")
	assert.ErrorContains(t, err, "UTF-8")
}

func TestRenderSlotsAreSinglePass(t *testing.T) {
	tpl, err := ParseTemplate("t", "<{answer}>{questions}</{answer}> {questions}")
	require.NoError(t, err)
	got := tpl.RenderWith(taskOf("what is {answer}", "and {questions}"), Tags{Think: "t", Search: "s", Information: "i", Answer: "ans"})
	q := "what is {answer}?; and {questions}?"
	assert.Equal(t, "<ans>"+q+"</ans> "+q, got)
}

func TestDefaultTemplate(t *testing.T) {
	d := DefaultTemplate()
	_, err := ParseTemplate(d.Name, d.Text)
	require.NoError(t, err, "the default template must carry the questions slot")

	got := d.Render(taskOf("who founded rome", "when did it fall"))
	for _, want := range []string{"<think>", "</think>", "<search>", "</search>", "<information>", "</answer>", "who founded rome?; when did it fall?"} {
		assert.Contains(t, got, want)
	}
	for _, slot := range []string{QuestionsSlot, ThinkSlot, SearchSlot, InformationSlot, AnswerSlot} {
		assert.NotContains(t, got, slot)
	}
	assert.Contains(t, got, "semicolon", "the answer separator must be explained")
	assert.Contains(t, got, "only thing you carry", "think must be described as the only memory")

	custom := Tags{Think: "state", Search: "query", Information: "docs", Answer: "final"}
	got = d.RenderWith(taskOf("q"), custom)
	for _, want := range []string{"<state>", "</state>", "<query>", "</query>", "<docs>", "<final>", "</final>"} {
		assert.Contains(t, got, want)
	}
	for _, gone := range []string{"<think>", "<search>", "<information>", "<answer>"} {
		assert.NotContains(t, got, gone)
	}
	assert.True(t, strings.HasSuffix(got, "Questions: q?\n"))
}
