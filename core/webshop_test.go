package core

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseWebShopAction(t *testing.T) {
	for in, want := range map[string][2]string{
		"search[red running shoes]": {"search", "red running shoes"},
		" Click[ Buy Now ] ":        {"click", "Buy Now"},
		"click[b07x [new]]":         {"click", "b07x [new]"},
	} {
		k, a, err := ParseWebShopAction(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, [2]string{k, a}, in)
	}
	for _, bad := range []string{"", "buy", "search[]", "click[  ]", "scroll[down]", "search red"} {
		_, _, err := ParseWebShopAction(bad)
		assert.Error(t, err, bad)
	}
}

func TestWebShopTagsParseAndPrune(t *testing.T) {
	tags := DefaultWebShopTags()
	r := "<think>look for shoes</think>\n<summary> want red shoes under $40 </summary>\n<answer>search[red shoes]</answer>"
	p := tags.Parse(r)
	assert.Equal(t, "want red shoes under $40", p.Memory)
	assert.Equal(t, "search[red shoes]", p.Action)
	assert.Equal(t, [2]string{"search", "red shoes"}, [2]string{p.Kind, p.Arg})
	assert.Equal(t, "<summary> want red shoes under $40 </summary>\n<answer>search[red shoes]</answer>", tags.Prune(r))
	assert.Equal(t, "a <think>unclosed", tags.Prune("a <think>unclosed"))
	assert.Equal(t, []string{"</answer>"}, tags.Stops())

	p = tags.Parse("<summary>s</summary><answer>buy it</answer>")
	assert.Equal(t, "buy it", p.Action)
	assert.Empty(t, p.Kind, "not a well-formed action")

	custom := WebShopTags{Memory: "mem", Think: "reason", Action: "act", Information: "obs"}
	require.NoError(t, custom.Validate())
	p = custom.Parse("<reason>x</reason><mem>m</mem><act>click[b01]</act>")
	assert.Equal(t, "m", p.Memory)
	assert.Equal(t, "click", p.Kind)
	assert.Error(t, WebShopTags{Memory: "a", Think: "a", Action: "b", Information: "c"}.Validate())
}

// shopEnv is a three-page store: search → results (click[p1]) → item
// (click[buy now] ends with reward 0.75). failAt makes the n-th Step fail.
type shopEnv struct {
	page   string
	steps  int
	resets int
	failAt int
	log    []string
}

func (e *shopEnv) obs() Observation {
	switch e.page {
	case "results":
		return Observation{Text: "Results: p1 Red Shoe $30", Instruction: "red shoes", Actions: AvailableActions{Clickables: []string{"back to search", "p1"}}}
	case "item":
		return Observation{Text: "Red Shoe $30", Instruction: "red shoes", Actions: AvailableActions{Clickables: []string{"buy now"}}}
	}
	return Observation{Text: "Search page", Instruction: "red shoes", Actions: AvailableActions{HasSearchBar: true}}
}

func (e *shopEnv) Reset(context.Context) (Observation, error) {
	e.resets++
	e.page = "search"
	return e.obs(), nil
}

func (e *shopEnv) Step(_ context.Context, a string) (StepResult, error) {
	e.steps++
	if e.steps == e.failAt {
		return StepResult{}, errors.New("env index expired")
	}
	e.log = append(e.log, a)
	switch {
	case strings.HasPrefix(a, "search[") && e.page == "search":
		e.page = "results"
	case a == "click[p1]" && e.page == "results":
		e.page = "item"
	case a == "click[buy now]" && e.page == "item":
		return StepResult{Observation: Observation{Text: "Thank you for shopping"}, Reward: 0.75, Done: true}, nil
	}
	return StepResult{Observation: e.obs()}, nil
}

// shopModel answers with its responses in order and keeps each context.
type shopModel struct {
	responses []string
	got       []Context
}

func (m *shopModel) Complete(_ context.Context, c Context, stops []string) (Completion, error) {
	i := len(m.got)
	m.got = append(m.got, c)
	if i >= len(m.responses) {
		return Completion{}, fmt.Errorf("no response %d", i)
	}
	return Completion{Text: strings.TrimSuffix(m.responses[i], "</answer>"), FinishReason: "stop", StopReason: "</answer>"}, nil
}

var shopScript = []string{
	"<think>t0</think><summary>need red shoes</summary><answer>search[red shoes]</answer>",
	"<think>t1</think><summary>searched; p1 fits</summary><answer>click[p1]</answer>",
	"<think>t2</think><summary>on p1</summary><answer>click[buy now]</answer>",
}

func TestWebShopAgentEpisode(t *testing.T) {
	env := &shopEnv{}
	m := &shopModel{responses: shopScript}
	var stored []Turn
	out, err := (&WebShopAgent{Model: m, Env: env}).Run(context.Background(), nil, func(t Turn) error { stored = append(stored, t); return nil })
	require.NoError(t, err)
	assert.True(t, out.Done)
	assert.Equal(t, 0.75, out.Reward)
	assert.Equal(t, "red shoes", out.Instruction)
	require.Len(t, out.Turns, 3)
	assert.Equal(t, out.Turns, stored)
	assert.Equal(t, "search[red shoes]", out.Turns[0].Query)
	assert.Equal(t, ActionSearch, out.Turns[0].Action)
	assert.Equal(t, "need red shoes", out.Turns[0].InternalState)
	assert.Equal(t, "[HINT]You have 9 turns left.[/HINT]\nResults: p1 Red Shoe $30\nAvailable actions: click[back to search], click[p1]", out.Turns[0].Information)
	assert.Equal(t, ActionAnswer, out.Turns[2].Action)
	assert.Equal(t, "click[buy now]", out.Turns[2].Answer)
	assert.Contains(t, out.Prompt, "Customer request: red shoes")
	assert.Contains(t, out.Prompt, "Search page\nAvailable actions: search[<keywords>]")

	// mem1: turn 2 sees only turn 1, its think pruned, and turn 1's page.
	require.Len(t, m.got, 3)
	assert.Empty(t, m.got[0].History)
	require.Len(t, m.got[2].History, 1)
	assert.Equal(t, "<summary>searched; p1 fits</summary><answer>click[p1]</answer>", m.got[2].History[0].Response)
	assert.Equal(t, "<information>\n"+out.Turns[1].Information+"\n</information>", m.got[2].History[0].Information)
	assert.NotContains(t, out.Turns[2].Context, "t1")
	assert.NotContains(t, out.Turns[2].Context, "need red shoes")

	// full: every exchange, unpruned, as one message.
	m = &shopModel{responses: shopScript}
	_, err = (&WebShopAgent{Model: m, Env: &shopEnv{}, Config: WebShopConfig{Policy: PolicyFull}}).Run(context.Background(), nil, nil)
	require.NoError(t, err)
	require.Len(t, m.got[2].History, 2)
	assert.True(t, m.got[2].OneMessage)
	assert.Equal(t, shopScript[0], m.got[2].History[0].Response)

	refs := WebShopRefTurns(out.Turns, WebShopTags{})
	assert.Equal(t, "<summary>need red shoes</summary>", refs[0].T)
	dep, ok := DependencyConsolidating(refs, O200kTokens)
	assert.True(t, ok)
	assert.Positive(t, dep)
}

func TestWebShopAgentEndsAndBudget(t *testing.T) {
	// No well-formed action: the episode ends there with reward 0.
	out, err := (&WebShopAgent{Model: &shopModel{responses: []string{"<summary>s</summary><answer>buy the shoes</answer>"}}, Env: &shopEnv{}}).Run(context.Background(), nil, nil)
	require.NoError(t, err)
	require.Len(t, out.Turns, 1)
	assert.False(t, out.Done)
	assert.Zero(t, out.Reward)
	assert.Empty(t, out.Turns[0].Query)

	// The budget: two turns, never bought.
	out, err = (&WebShopAgent{Model: &shopModel{responses: shopScript}, Env: &shopEnv{}, Config: WebShopConfig{MaxTurns: 2}}).Run(context.Background(), nil, nil)
	require.NoError(t, err)
	assert.Len(t, out.Turns, 2)
	assert.True(t, out.HitMaxTurns)
	assert.Contains(t, out.Turns[1].Information, "[HINT]You have no turns left.")
}

// TestWebShopAgentResume: a step failure ends the run with a per-turn error;
// resuming from the stored turns on a fresh environment replays their actions
// and finishes with the contexts of an uninterrupted episode.
func TestWebShopAgentResume(t *testing.T) {
	whole := &shopModel{responses: shopScript}
	want, err := (&WebShopAgent{Model: whole, Env: &shopEnv{}}).Run(context.Background(), nil, nil)
	require.NoError(t, err)

	var stored []Turn
	_, err = (&WebShopAgent{Model: &shopModel{responses: shopScript}, Env: &shopEnv{failAt: 2}}).Run(context.Background(), nil, func(t Turn) error { stored = append(stored, t); return nil })
	var te *TurnError
	require.ErrorAs(t, err, &te)
	assert.Equal(t, 1, te.Turn)
	assert.Equal(t, "step", te.Op)
	assert.Contains(t, err.Error(), "turn 1: step: env index expired")
	require.Len(t, stored, 1)

	env := &shopEnv{}
	rest := &shopModel{responses: shopScript[1:]}
	got, err := (&WebShopAgent{Model: rest, Env: env}).Run(context.Background(), stored, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"search[red shoes]", "click[p1]", "click[buy now]"}, env.log, "the stored action is replayed first")
	assert.Equal(t, want.Reward, got.Reward)
	require.Len(t, got.Turns, 3)
	for i := range want.Turns {
		assert.Equal(t, want.Turns[i].Context, got.Turns[i].Context, "turn %d", i)
	}

	// A prior that already bought is only reported.
	env = &shopEnv{}
	got, err = (&WebShopAgent{Model: &shopModel{}, Env: env}).Run(context.Background(), want.Turns, nil)
	require.NoError(t, err)
	assert.True(t, got.Done)
	assert.Equal(t, 0.75, got.Reward)
}

func TestFamilies(t *testing.T) {
	f, err := FamilyByName("")
	require.NoError(t, err)
	assert.Equal(t, FamilyQA, f.Name)
	assert.Equal(t, "think", f.MemoryTag)
	f, err = FamilyByName(FamilyWebShop)
	require.NoError(t, err)
	assert.Equal(t, "summary", f.MemoryTag)
	assert.Equal(t, []string{"think"}, f.PrunedTags)
	assert.Equal(t, DefaultWebShopTags().Memory, f.MemoryTag)
	_, err = FamilyByName("alfworld")
	assert.Error(t, err)
	assert.Equal(t, "search[<keywords>], click[a], click[b]", AvailableActions{HasSearchBar: true, Clickables: []string{"a", "b"}}.String())
}
