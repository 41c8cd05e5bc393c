package core

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The reference (Mem1/inference/models.py) strips every generation before it
// appends the stop string that ended it; the raw text is kept beside it.
func TestRunStripsGenerationLikeReference(t *testing.T) {
	raw := []string{
		"\n  <think>s0</think>\n<search> q0 \t",    // cut at </search>
		"\u00a0<think>s1</think><answer>a; b \n\n", // NBSP is whitespace for str.strip()
	}
	m := &fakeModel{script: func(turn int, c Context) (Completion, error) {
		stop := "</search>"
		if turn == 1 {
			stop = "</answer>"
		}
		return Completion{Text: raw[turn], FinishReason: "stop", StopReason: stop}, nil
	}}
	a := newAgent("mem1", m, &fakeEnv{})
	out, err := a.Run(context.Background(), twoObjectiveTask(), nil, nil)
	require.NoError(t, err)
	require.Len(t, out.Turns, 2)
	assert.Equal(t, "<think>s0</think>\n<search> q0</search>", out.Turns[0].Response)
	assert.Equal(t, raw[0], out.Turns[0].RawResponse)
	assert.Equal(t, "<think>s1</think><answer>a; b</answer>", out.Turns[1].Response)
	assert.Equal(t, raw[1], out.Turns[1].RawResponse)
	// The stripped text is what the next turn carries.
	require.Len(t, m.contexts[1].History, 1)
	assert.True(t, strings.HasPrefix(m.contexts[1].History[0].Response, "<think>s0"))
	assert.True(t, strings.HasPrefix(m.contexts[1].History[0].Information, "<information>\n"))
	assert.Equal(t, "<think>s0</think>\n<search> q0</search><information>\n", m.contexts[1].Carried()[:len("<think>s0</think>\n<search> q0</search><information>\n")])
}

// "full" is the reference's "normal" pipeline: one message, both stops on every
// turn; "full:messages" keeps mem1lab's earlier layout.
func TestFullPoliciesLayoutAndStops(t *testing.T) {
	both, answerOnly := []string{"</search>", "</answer>"}, []string{"</answer>"}
	for _, c := range []struct {
		policy   string
		one      bool
		lastStop []string
	}{
		{PolicyFull, true, both},
		{PolicyFullMessages, false, answerOnly},
		{PolicyMEM1, false, answerOnly},
		{"window:2", false, answerOnly},
	} {
		t.Run(c.policy, func(t *testing.T) {
			m := &fakeModel{script: searchThenAnswer(100, "")}
			a := newAgent(c.policy, m, &fakeEnv{})
			a.Config.MaxTurns = 3
			_, err := a.Run(context.Background(), twoObjectiveTask(), nil, nil)
			require.NoError(t, err)
			assert.Equal(t, [][]string{both, both, c.lastStop}, m.stops)
			for _, ctx := range m.contexts {
				assert.Equal(t, c.one, ctx.OneMessage)
			}
		})
	}
	p, err := PolicyByName(PolicyFullMessages)
	require.NoError(t, err)
	assert.Equal(t, PolicyFullMessages, p.Name())
	assert.Contains(t, PolicyNames(), PolicyFullMessages)
}

func TestRunRefusesEmptyQuestion(t *testing.T) {
	m := &fakeModel{script: searchThenAnswer(0, "x")}
	task := twoObjectiveTask()
	task.Objectives[1].Question = ""
	_, err := newAgent("mem1", m, &fakeEnv{}).Run(context.Background(), task, nil, nil)
	require.ErrorContains(t, err, "empty question")
	assert.Empty(t, m.contexts, "no model call")
}

// eval.py reads t{i}+r{i}+i{i} for i < 10 only: an answer on turn 11 of a
// 20-turn run scores there but not in eval.py.
func TestEvalPyScoreBesideFullTrajectory(t *testing.T) {
	m := &fakeModel{script: searchThenAnswer(11, "Paris; 1889")}
	a := newAgent("mem1", m, &fakeEnv{})
	a.Config.MaxTurns = 20
	out, err := a.Run(context.Background(), twoObjectiveTask(), nil, nil)
	require.NoError(t, err)
	require.Len(t, out.Turns, 12)
	assert.Equal(t, 2.0, out.Score.EM)
	require.NotNil(t, out.Score.EvalPy)
	assert.Equal(t, EvalPyScore{EM: 0, F1: 0, Answer: ""}, *out.Score.EvalPy)

	// Answered within ten turns: the scores agree and nothing extra is kept.
	m = &fakeModel{script: searchThenAnswer(9, "Paris; 1889")}
	a = newAgent("mem1", m, &fakeEnv{})
	a.Config.MaxTurns = 20
	out, err = a.Run(context.Background(), twoObjectiveTask(), nil, nil)
	require.NoError(t, err)
	assert.Equal(t, 2.0, out.Score.EM)
	assert.Nil(t, out.Score.EvalPy)

	// EvalPyText: "<think>"+stripped state+"</think>", the response, the block.
	turns := []Turn{
		{Response: "<think>  s </think><search>q</search>", Information: "inner"},
		{Response: "no think<answer>x</answer>"},
	}
	assert.Equal(t, "<think>s</think><think>  s </think><search>q</search><information>\ninner\n</information>no think<answer>x</answer>",
		EvalPyText(turns, DefaultTags()))
}
