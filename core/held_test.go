package core

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// heldModel answers from a script; its second call moves the clock 100 s on,
// all of it held by a pause (held grows by as much).
type heldModel struct {
	scriptModel
	now  *time.Time
	held *time.Duration
	n    int
}

func (m *heldModel) Complete(ctx context.Context, c Context, stops []string) (Completion, error) {
	m.n++
	if m.n == 2 {
		*m.now = m.now.Add(100 * time.Second)
		*m.held += 100 * time.Second
	}
	*m.now = m.now.Add(time.Second) // the call itself
	return m.scriptModel.Complete(ctx, c, stops)
}

// TestAgentLeavesHeldTimeOut: what Agent.Held grows by during a turn is not
// that turn's latency, nor the rollout's Elapsed.
func TestAgentLeavesHeldTimeOut(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	var held time.Duration
	m := &heldModel{scriptModel: scriptModel{texts: []string{"<think>a</think>\n<search>x</search>", "<think>b</think>\n<answer>y</answer>"}}, now: &now, held: &held}
	env := envFunc(func(q string) []Passage { return []Passage{{ID: q, Title: "T", Text: "doc"}} })
	a := &Agent{Model: m, Env: env, Clock: func() time.Time { return now }, Held: func() time.Duration { return held }}
	out, err := a.Run(context.Background(), Task{Key: "k", Objectives: []Objective{{Question: "Q?", Gold: []string{"y"}}}}, nil, nil)
	require.NoError(t, err)
	require.Len(t, out.Turns, 2)
	assert.Equal(t, time.Second, out.Turns[0].Latency)
	assert.Equal(t, time.Second, out.Turns[1].Latency, "the 100 s held are not the turn's")
	assert.Equal(t, 2*time.Second, out.Elapsed, "nor the rollout's")
}
