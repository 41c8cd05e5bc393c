package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRankCosine(t *testing.T) {
	vecs := [][]float64{{1, 0}, {0, 1}, {1, 1}, {0, 0}, {-1, 0}}
	got, err := RankCosine([]float64{2, 0}, vecs, 3)
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, []int{0, 2, 1}, []int{got[0].Index, got[1].Index, got[2].Index})
	assert.InDelta(t, 1, got[0].Score, 1e-12)
	assert.InDelta(t, 1/1.4142135623730951, got[1].Score, 1e-12)
	all, err := RankCosine([]float64{2, 0}, vecs, 0)
	require.NoError(t, err)
	assert.Equal(t, 4, all[len(all)-1].Index, "opposite vector last")
	assert.Equal(t, 0.0, all[3].Score, "zero vector scores 0")
	_, err = RankCosine([]float64{1, 0, 0}, vecs, 1)
	assert.ErrorContains(t, err, "vector 0 has length 2, the query 3")
	c, err := Cosine([]float64{1, 2}, []float64{2, 4})
	require.NoError(t, err)
	assert.InDelta(t, 1, c, 1e-12)
}

func TestTruncateTokensAndJSONReplies(t *testing.T) {
	s := strings.Repeat("word ", 100)
	cut, ok := TruncateTokens(s, 10)
	assert.True(t, ok)
	assert.LessOrEqual(t, EstimateTokens(cut), 10)
	assert.Greater(t, EstimateTokens(cut+" word"), 10, "the longest prefix that fits")
	same, ok := TruncateTokens("short", 10)
	assert.False(t, ok)
	assert.Equal(t, "short", same)

	var v struct{ Facts []string }
	require.NoError(t, decodeJSONReply("```json\n{\"facts\": [\"a\"]}\n```", &v))
	assert.Equal(t, []string{"a"}, v.Facts)
	assert.ErrorContains(t, decodeJSONReply("Once upon a time", &v), "malformed JSON reply: no JSON object")
	assert.ErrorContains(t, decodeJSONReply(`{"facts": [1}`, &v), "malformed JSON reply")
}

func TestPolicyWithNames(t *testing.T) {
	for _, name := range []string{"closed-book", "summary:0", "summary:3", "resum", "memagent", "mem0", "mem0:add-only", "amem"} {
		p, err := PolicyByName(name)
		require.NoError(t, err, name)
		assert.Equal(t, name, p.Name())
	}
	_, err := PolicyByName("summary:x")
	assert.ErrorContains(t, err, "K must be a whole number")
	_, err = PolicyByName("amnesia")
	assert.ErrorContains(t, err, "amem")
	p, err := PolicyWith("mem1", MemoryOptions{K: 5})
	require.NoError(t, err)
	assert.Equal(t, "mem1", p.Name())
}

// fakeSub answers generation sub-calls from a script and embeds by a table.
type fakeSub struct {
	replies []string
	vecs    map[string][]float64
	calls   []SubCall
	flags   []string
	fail    error
}

func (f *fakeSub) Generate(_ context.Context, c SubCall, prompt string) (SubCall, error) {
	if f.fail != nil {
		return c, f.fail
	}
	c.Request, c.Response = prompt, f.replies[0]
	f.replies = f.replies[1:]
	f.calls = append(f.calls, c)
	return c, nil
}

func (f *fakeSub) Embed(_ context.Context, c SubCall, texts []string) (SubCall, [][]float64, error) {
	out := make([][]float64, len(texts))
	for i, t := range texts {
		for k, v := range f.vecs {
			if strings.HasPrefix(t, k) {
				out[i] = v
			}
		}
		if out[i] == nil {
			out[i] = []float64{0, 0, 1}
		}
	}
	b, _ := json.Marshal(texts)
	c.Request = string(b)
	f.calls = append(f.calls, c)
	return c, out, nil
}

func (f *fakeSub) Flag(_ context.Context, c SubCall, msg string) error {
	f.flags = append(f.flags, fmt.Sprintf("%d:%s", c.Seq, msg))
	return nil
}

// TestAMemSearchFollowsLinks: the top-k notes by cosine, then their linked
// notes until k are picked (A-MEM search_agentic).
func TestAMemSearchFollowsLinks(t *testing.T) {
	m := &amemMemory{p: amemPolicy{o: MemoryOptions{K: 2}}}
	m.st.Notes = []Note{
		{ID: 0, Content: "near", Vec: []float64{1, 0, 0}, Links: []int{2}},
		{ID: 1, Content: "mid", Vec: []float64{0.5, 1, 0}},
		{ID: 2, Content: "far but linked", Vec: []float64{0, 0, 1}},
	}
	got, err := m.search([]float64{1, 0, 0}, 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "near", got[0].Content)
	got, err = m.search([]float64{1, 0, 0}, 2)
	require.NoError(t, err)
	assert.Equal(t, []string{"near", "mid"}, []string{got[0].Content, got[1].Content}, "cosine first")
	m.st.Notes[1].Vec = []float64{-1, 0, 0}
	got, err = m.search([]float64{1, 0, 0}, 3)
	require.NoError(t, err)
	assert.Equal(t, []string{"near", "far but linked", "mid"}, []string{got[0].Content, got[1].Content, got[2].Content})
}

// TestAgentMemoryPolicyRun drives Agent.Run with a memory policy and a fake
// sub-caller: sub-calls are stored on the turn, count in latency-free totals,
// a failing sub-call ends the rollout with a "memory" TurnError, and a
// resumed rollout restores the memory from the last stored turn.
func TestAgentMemoryPolicyRun(t *testing.T) {
	task := Task{Key: "k", Objectives: []Objective{{Question: "Q one?", Gold: []string{"a"}}, {Question: "Q two?", Gold: []string{"b"}}}}
	script := []string{"<think>s1</think>\n<search>x</search>", "<think>s2</think>\n<search>y</search>", "<think>s3</think>\n<answer>a; b</answer>"}
	model := &scriptModel{texts: append([]string(nil), script...)}
	env := envFunc(func(q string) []Passage { return []Passage{{ID: q, Title: "T", Text: "doc " + q}} })
	pol, err := PolicyWith("memagent", MemoryOptions{MemoryTokens: 4})
	require.NoError(t, err)
	sub := &fakeSub{replies: []string{"m1", "m2 is a much longer memory than four tokens allow"}}
	a := &Agent{Model: model, Env: env, Config: AgentConfig{Policy: pol}, Sub: sub}
	out, err := a.Run(context.Background(), task, nil, nil)
	require.NoError(t, err)
	require.Len(t, out.Turns, 3)
	assert.Empty(t, out.Turns[0].SubCalls)
	assert.Equal(t, "m1", out.Turns[1].Memory)
	assert.Equal(t, RoleUpdater, out.Turns[1].SubCalls[0].Role)
	assert.Contains(t, out.Turns[1].SubCalls[0].Request, "doc x")
	assert.Equal(t, "m2 is a much", out.Turns[2].Memory, "bounded memory")
	assert.Equal(t, []string{"0:memory longer than 4 tokens: cut"}, sub.flags)
	assert.Contains(t, model.prompts[2], "Your memory of what you found so far:\nm2 is a much")
	assert.NotContains(t, model.prompts[2], "doc y", "memagent's actor sees prompt + memory only")

	// Resume from the first two turns: the memory comes back from turn 1's state.
	model2 := &scriptModel{texts: []string{"<think>s3</think>\n<answer>a; b</answer>"}}
	sub2 := &fakeSub{replies: []string{"m2"}}
	a2 := &Agent{Model: model2, Env: env, Config: AgentConfig{Policy: pol}, Sub: sub2}
	out2, err := a2.Run(context.Background(), task, out.Turns[:2], nil)
	require.NoError(t, err)
	require.Len(t, out2.Turns, 3)
	assert.Contains(t, sub2.calls[0].Request, "Your memory so far:\nm1\n", "restored memory")

	// A failing sub-call ends the rollout as a memory error.
	sub3 := &fakeSub{fail: errors.New("boom")}
	a3 := &Agent{Model: &scriptModel{texts: script}, Env: env, Config: AgentConfig{Policy: pol}, Sub: sub3}
	_, err = a3.Run(context.Background(), task, nil, nil)
	var te *TurnError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, "memory", te.Op)
	assert.Equal(t, 1, te.Turn)
}

// scriptModel answers turns from a script and keeps each context's
// rendering (prompt + carried text).
type scriptModel struct {
	texts   []string
	prompts []string
}

func (m *scriptModel) Complete(_ context.Context, c Context, _ []string) (Completion, error) {
	m.prompts = append(m.prompts, c.System+c.Prompt+c.Carried())
	text := m.texts[0]
	m.texts = m.texts[1:]
	return Completion{Text: text, FinishReason: "stop"}, nil
}

type envFunc func(q string) []Passage

func (f envFunc) Search(_ context.Context, q string, _ int) ([]Passage, error) { return f(q), nil }

// TestSummaryBudget: with SummaryTokens set, summary:K folds only once the
// context passes the budget, and resum then restarts from prompt + summary.
func TestSummaryBudget(t *testing.T) {
	task := Task{Key: "k", Objectives: []Objective{{Question: "Q?", Gold: []string{"a"}}}}
	long := strings.Repeat("word ", 200) // about 250 tokens a response
	exs := []Exchange{{Response: "r0 " + long, Information: "i0"}, {Response: "r1 " + long, Information: "i1"}, {Response: "r2 " + long, Information: "i2"}}
	prompt := "prompt"
	for _, tc := range []struct {
		policy    string
		budget    int
		foldAt    int // number of exchanges seen when the first fold happens
		keptAfter int
	}{
		{"summary:1", 400, 2, 1}, // 2 exchanges ≈ 500 tokens > 400: fold 1, keep 1
		{"summary:1", 600, 3, 1},
		{"resum", 400, 2, 0},
		{"summary:1", 0, 2, 1}, // no budget: fold as soon as one leaves the window
		{"resum", 0, 1, 0},
	} {
		p, err := PolicyWith(tc.policy, MemoryOptions{SummaryTokens: tc.budget})
		require.NoError(t, err)
		m := p.(MemoryPolicy).NewMemory()
		sub := &fakeSub{replies: []string{"S1", "S2", "S3"}}
		for seen := 1; seen <= len(exs); seen++ {
			calls := NewSubCalls(sub, seen)
			c, payload, err := m.Prepare(context.Background(), calls, MemoryStep{Turn: seen, Task: task, Prompt: prompt, Exchanges: exs[:seen]})
			require.NoError(t, err)
			if seen < tc.foldAt {
				assert.Empty(t, calls.Calls, "%s/%d: no fold with %d exchanges", tc.policy, tc.budget, seen)
				assert.Len(t, c.History, seen)
				assert.Equal(t, prompt, c.Prompt)
				continue
			}
			if seen == tc.foldAt {
				require.Len(t, calls.Calls, 1, "%s/%d: fold at %d", tc.policy, tc.budget, seen)
				assert.Equal(t, RoleSummariser, calls.Calls[0].Role)
				assert.Len(t, c.History, tc.keptAfter)
				assert.Equal(t, "S1", payload)
				assert.Equal(t, prompt+"\n\nSummary of your earlier turns:\nS1", c.Prompt)
			}
		}
	}
}

// TestSummaryEvery: with SummaryEvery set, resum folds at every M-th turn only.
func TestSummaryEvery(t *testing.T) {
	p, err := PolicyWith("resum", MemoryOptions{SummaryEvery: 2, SummaryTokens: 1})
	require.NoError(t, err)
	m := p.(MemoryPolicy).NewMemory()
	sub := &fakeSub{replies: []string{"S1", "S2"}}
	var exs []Exchange
	folds := []int{}
	for turn := 1; turn <= 5; turn++ {
		exs = append(exs, Exchange{Response: fmt.Sprintf("r%d", turn), Information: "i"})
		calls := NewSubCalls(sub, turn)
		c, _, err := m.Prepare(context.Background(), calls, MemoryStep{Turn: turn, Prompt: "p", Exchanges: exs})
		require.NoError(t, err)
		if len(calls.Calls) > 0 {
			folds = append(folds, turn)
			assert.Empty(t, c.History, "resum restarts from prompt + summary")
		}
	}
	assert.Equal(t, []int{2, 4}, folds)
	assert.Contains(t, sub.calls[1].Request, "r3", "the second fold takes the exchanges since the first")
	assert.NotContains(t, sub.calls[1].Request, "r2")
}
