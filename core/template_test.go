package core

import (
	"math/rand/v2"
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

func TestParseTemplateRefusesInvalidUTF8(t *testing.T) {
	_, err := ParseTemplate("odd", "line one\nQuestions: {questions}\n\xff raw byte\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `template "odd": line 3 is not valid UTF-8`)
	line, bad := InvalidUTF8Line("ok\nok \xc3")
	assert.True(t, bad)
	assert.Equal(t, 2, line)
	_, bad = InvalidUTF8Line("\ufeff🙂 Ünïcödé\r\n")
	assert.False(t, bad)
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

// fillSlots renders exactly as strings.NewReplacer with the same slots, for
// texts made of slot names, their fragments, braces and ordinary text.
func TestFillSlotsIsTheReplacer(t *testing.T) {
	slots := [][2]string{{QuestionsSlot, "Q1?; Q2?"}, {ThinkSlot, "think"}, {SearchSlot, "{search}"},
		{InformationSlot, "info{"}, {AnswerSlot, ""}}
	var pairs []string
	for _, sl := range slots {
		pairs = append(pairs, sl[0], sl[1])
	}
	want := strings.NewReplacer(pairs...)
	bits := []string{QuestionsSlot, ThinkSlot, SearchSlot, InformationSlot, AnswerSlot, "{", "}", "{quest", "ions}",
		"{{", "think}", "a", " ", "\n", "é", "{answer", "}{"}
	r := rand.New(rand.NewPCG(3, 4))
	for k := 0; k < 20000; k++ {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteString(bits[r.IntN(len(bits))])
		}
		text := b.String()
		require.Equal(t, want.Replace(text), fillSlots(text, slots), "text %q", text)
	}
}
