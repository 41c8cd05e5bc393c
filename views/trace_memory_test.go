package views

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

func TestMemoryChanges(t *testing.T) {
	prev := `{"facts":[{"id":0,"text":"Paris is in France"},{"id":1,"text":"old"},{"id":2,"text":"kept"}],"next_id":3}`
	cur := `{"facts":[{"id":0,"text":"Paris is the capital of France"},{"id":2,"text":"kept"},{"id":3,"text":"new fact"}],"next_id":4}`
	assert.Equal(t, []string{"~ fact 0: Paris is the capital of France", "+ fact 3: new fact", "- fact 1: old"}, memoryChanges(prev, cur))
	assert.Equal(t, []string{"+ note 0: obs"}, memoryChanges("", `{"notes":[{"id":0,"content":"obs"}]}`))
	assert.Equal(t, []string{"~ note 0: obs"}, memoryChanges(`{"notes":[{"id":0,"content":"obs"}]}`, `{"notes":[{"id":0,"content":"obs","links":[1]}]}`), "a new link is an update")
	assert.Equal(t, []string{"~ summary rewritten"}, memoryChanges(`{"summary":"a"}`, `{"summary":"b"}`))
	assert.Empty(t, memoryChanges(`{"memory":"m"}`, `{"memory":"m"}`))
	assert.Equal(t, []string{"(memory state unreadable)"}, memoryChanges("", "{"))
}

// TestTraceShowsMemory: a memory policy's turn shows its payload, what changed
// and one collapsible item per sub-call; a turn without memory hides it.
func TestTraceShowsMemory(t *testing.T) {
	st := newFakeStore()
	d := st.details[11]
	turns := append([]core.Turn(nil), d.Turns...)
	turns[0].MemoryState = `{"facts":[],"next_id":0}`
	turns[1].Memory = "- Paris is in France\n"
	turns[1].MemoryState = `{"facts":[{"id":0,"text":"Paris is in France"}],"next_id":1}`
	turns[1].SubCalls = []core.SubCall{
		{Turn: 1, Seq: 0, Role: core.RoleExtractor, Endpoint: "memory", Request: "list facts", Response: `{"facts": ["Paris is in France"]}`,
			Usage: core.Usage{PromptTokens: 30, CompletionTokens: 10}, Latency: 500 * time.Millisecond},
		{Turn: 1, Seq: 1, Role: core.RoleEmbedder, Endpoint: "emb", Request: `["Paris is in France"]`, Response: "[[1,0]]",
			Usage: core.Usage{PromptTokens: 5}, Latency: 250 * time.Millisecond, Error: "malformed JSON reply: test"},
	}
	d.Turns = turns
	st.details[11] = d
	u, _ := newTestUI(t, st, nil)
	act(u, func() { u.OpenRollout(11) })
	u.wait()
	m := u.trace.memory
	assert.True(t, m.box.Visible(), "turn 1 has a memory state")
	assert.Equal(t, "0 sub-calls · 0 tokens · 0.00 s", m.summary.Text)
	act(u, func() { u.trace.slider.SetValue(2) })
	assert.Equal(t, "2 sub-calls · 45 tokens · 0.75 s", m.summary.Text)
	assert.Equal(t, "- Paris is in France\n", m.payload.String())
	assert.Equal(t, "+ fact 0: Paris is in France", m.changes.String())
	require.Len(t, m.subcalls.Items, 2)
	assert.Equal(t, "1 · extractor · memory · 40 tokens · 0.50 s", m.subcalls.Items[0].Title)
	assert.Equal(t, "2 · embedder · emb · 5 tokens · 0.25 s · ⚠ malformed JSON reply: test", m.subcalls.Items[1].Title)
	act(u, func() { u.trace.slider.SetValue(3) })
	assert.False(t, m.box.Visible(), "no memory on turn 3")
}
