package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeModel answers from a script keyed by the turn index (first call = start).
type fakeModel struct {
	mu       sync.Mutex
	next     int
	script   func(turn int, c Context) (Completion, error)
	contexts []Context
	stops    [][]string
	noSent   bool
}

func (m *fakeModel) Complete(ctx context.Context, c Context, stops []string) (Completion, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return Completion{}, err
	}
	m.contexts = append(m.contexts, c)
	m.stops = append(m.stops, slices.Clone(stops))
	comp, err := m.script(m.next, c)
	m.next++
	if !m.noSent && comp.Sent == "" {
		comp.Sent = "<prompt>" + c.Prompt + "</prompt>" + c.Carried()
	}
	return comp, err
}

// fakeEnv returns k passages derived from the query.
type fakeEnv struct {
	mu      sync.Mutex
	queries []string
	ks      []int
	err     error
	errAt   int // fail on this call (0-based) when err is set
}

func (e *fakeEnv) Search(ctx context.Context, query string, k int) ([]Passage, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	call := len(e.queries)
	e.queries = append(e.queries, query)
	e.ks = append(e.ks, k)
	if e.err != nil && call == e.errAt {
		return nil, e.err
	}
	out := make([]Passage, k)
	for i := range out {
		out[i] = Passage{ID: fmt.Sprintf("%s#%d", query, i), Title: "T-" + query, Text: fmt.Sprintf("text %d for %s", i, query), Rank: i + 1}
	}
	return out, nil
}

// stepClock advances one second per call.
func stepClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

func searchText(i int) string {
	return fmt.Sprintf("<think>state %d</think>\n<search>query %d", i, i)
}

// searchThenAnswer searches on turns before answerAt and answers there.
func searchThenAnswer(answerAt int, answer string) func(int, Context) (Completion, error) {
	return func(turn int, c Context) (Completion, error) {
		if turn < answerAt {
			return Completion{Text: searchText(turn), FinishReason: "stop", StopReason: "</search>",
				Usage: Usage{PromptTokens: 100 * (turn + 1), CompletionTokens: 7, Reported: true}}, nil
		}
		return Completion{Text: "<think>final</think>\n<answer>" + answer, FinishReason: "stop", StopReason: "</answer>",
			Usage: Usage{PromptTokens: 100 * (turn + 1), CompletionTokens: 7, Reported: true}}, nil
	}
}

// wantExchange is the exchange of a searching turn, written out by hand.
func wantExchange(turn, maxTurns, k int) Exchange {
	left := maxTurns - turn - 1
	hint := fmt.Sprintf("[HINT]You have %d turns left.[/HINT]", left)
	if left == 1 {
		hint = "[HINT]You have 1 turn left. You must answer the question now.[/HINT]"
	}
	docs := ""
	for d := 0; d < k; d++ {
		docs += fmt.Sprintf("Doc %d(Title: \"T-query %d\") text %d for query %d\n", d+1, turn, d, turn)
	}
	return Exchange{
		Response:    searchText(turn) + "</search>",
		Information: "<information>\n" + hint + "\n" + docs + "\n</information>",
	}
}

func twoObjectiveTask() Task {
	return Task{Key: "t/n2/0", Dataset: "t", Objectives: []Objective{
		{QuestionID: "a", Question: "capital of France", Gold: []string{"Paris"}},
		{QuestionID: "b", Question: "year the tower opened?", Gold: []string{"1889"}},
	}}
}

func newAgent(policy string, m Model, e Environment) *Agent {
	p, err := PolicyByName(policy)
	if err != nil {
		panic(err)
	}
	return &Agent{Model: m, Env: e, Clock: stepClock(), Config: AgentConfig{Policy: p, MaxTurns: 6}}
}

func TestRunMem1FlatFullGrows(t *testing.T) {
	const maxTurns = 6
	runs := map[string]*fakeModel{}
	outs := map[string]Outcome{}
	for _, policy := range []string{"mem1", "full"} {
		m := &fakeModel{script: searchThenAnswer(maxTurns-1, "Paris; 1889")}
		env := &fakeEnv{}
		out, err := newAgent(policy, m, env).Run(context.Background(), twoObjectiveTask(), nil, nil)
		require.NoError(t, err, policy)
		runs[policy], outs[policy] = m, out
		require.Len(t, m.contexts, maxTurns)
		assert.Equal(t, []int{3, 3, 3, 3, 3}, env.ks, "TopK defaults to 3")
	}

	want := make([]Exchange, maxTurns-1)
	for i := range want {
		want[i] = wantExchange(i, maxTurns, 3)
	}
	prompt := DefaultTemplate().Render(twoObjectiveTask())
	for i := 0; i < maxTurns; i++ {
		mem1, full := runs["mem1"].contexts[i], runs["full"].contexts[i]
		assert.Equal(t, prompt, mem1.Prompt)
		assert.Equal(t, prompt, full.Prompt)
		assert.Len(t, full.History, i, "full keeps everything")
		if i > 0 {
			assert.Equal(t, want[:i], full.History, "turn %d", i)
			assert.Equal(t, want[i-1:i], mem1.History, "turn %d", i)
		} else {
			assert.Empty(t, mem1.History)
		}
	}

	// Sizes of what was actually sent: flat for mem1, growing for full.
	var mem1Sizes, fullSizes []int
	for i := 0; i < maxTurns; i++ {
		mem1Sizes = append(mem1Sizes, len(outs["mem1"].Turns[i].Context))
		fullSizes = append(fullSizes, len(outs["full"].Turns[i].Context))
	}
	exchange := len(want[0].Response) + len(want[0].Information)
	for i := 1; i < maxTurns; i++ {
		assert.Greater(t, fullSizes[i], fullSizes[i-1], "full context grows at turn %d", i)
		assert.InDelta(t, mem1Sizes[1], mem1Sizes[i], float64(exchange)/2, "mem1 context stays flat at turn %d", i)
	}

	for _, policy := range []string{"mem1", "full"} {
		out := outs[policy]
		assert.Equal(t, "Paris; 1889", out.Answer)
		assert.InDelta(t, 2.0, out.Score.EM, 1e-12)
		assert.InDelta(t, 2.0, out.Score.F1, 1e-12)
		assert.False(t, out.HitMaxTurns)
		// Reported usage: prompt 100·(i+1), completion 7.
		assert.Equal(t, 607, out.PeakTokens)
		assert.Equal(t, 2100+42, out.TotalTokens)
		assert.Equal(t, ActionAnswer, out.Turns[5].Action)
		assert.Equal(t, "Paris; 1889", out.Turns[5].Answer)
		assert.Equal(t, "state 2", out.Turns[2].InternalState)
		assert.Equal(t, "query 2", out.Turns[2].Query)
		assert.Len(t, out.Turns[2].Passages, 3)
		assert.Equal(t, strings.TrimSuffix(strings.TrimPrefix(want[2].Information, "<information>\n"), "\n</information>"), out.Turns[2].Information)
		for i, tu := range out.Turns {
			assert.Equal(t, i, tu.Index)
			assert.True(t, tu.UsageReported)
			if tu.Action == ActionSearch {
				// The step clock ticks at the model call's start, the search's start and end, and the turn's end.
				assert.Equal(t, time.Second, tu.RetrievalLatency, "turn %d", i)
				assert.Equal(t, 3*time.Second, tu.Latency, "turn %d", i)
			} else {
				assert.Zero(t, tu.RetrievalLatency)
				assert.Equal(t, time.Second, tu.Latency)
			}
			assert.Equal(t, "stop", tu.FinishReason)
		}
		assert.GreaterOrEqual(t, out.Elapsed, 6*time.Second)
	}
}

func TestRunStopsAndLastTurn(t *testing.T) {
	m := &fakeModel{script: func(turn int, c Context) (Completion, error) {
		if turn == 3 {
			// "</search>" is no stop on the last turn, so generation runs past it.
			return Completion{Text: searchText(3) + "</search> and then some", FinishReason: "stop"}, nil
		}
		return searchThenAnswer(100, "")(turn, c)
	}}
	env := &fakeEnv{}
	a := newAgent("mem1", m, env)
	a.Config.MaxTurns = 4
	out, err := a.Run(context.Background(), twoObjectiveTask(), nil, nil)
	require.NoError(t, err)

	both, answerOnly := []string{"</search>", "</answer>"}, []string{"</answer>"}
	assert.Equal(t, [][]string{both, both, both, answerOnly}, m.stops)
	assert.Equal(t, []string{"query 0", "query 1", "query 2"}, env.queries, "no retrieval on the last turn")
	require.Len(t, out.Turns, 4)
	last := out.Turns[3]
	assert.Equal(t, ActionSearch, last.Action)
	assert.Equal(t, "query 3", last.Query)
	assert.Empty(t, last.Information)
	assert.Nil(t, last.Passages)
	assert.True(t, out.HitMaxTurns)
	assert.True(t, out.Score.NoAnswer)
	assert.Empty(t, out.Answer)
	// The hint before the last turn demands the answer.
	assert.Contains(t, m.contexts[3].History[0].Information, "You have 1 turn left. You must answer the question now.")
}

func TestRunDefaults(t *testing.T) {
	for _, c := range []struct {
		objectives, turns int
	}{{2, 6}, {4, 6}, {5, 20}} {
		task := Task{Key: "k"}
		for i := 0; i < c.objectives; i++ {
			task.Objectives = append(task.Objectives, Objective{Question: fmt.Sprintf("q%d", i), Gold: []string{"x"}})
		}
		m := &fakeModel{script: searchThenAnswer(1000, "")}
		env := &fakeEnv{}
		out, err := (&Agent{Model: m, Env: env}).Run(context.Background(), task, nil, nil)
		require.NoError(t, err)
		assert.Len(t, out.Turns, c.turns, "%d objectives", c.objectives)
		assert.True(t, out.HitMaxTurns)
		for _, k := range env.ks {
			assert.Equal(t, DefaultTopK, k)
		}
		// Default policy is mem1.
		assert.Len(t, m.contexts[len(m.contexts)-1].History, 1)
	}
}

func TestRunResumeMatchesUninterrupted(t *testing.T) {
	for _, policy := range []string{"mem1", "full", "window:2"} {
		ref := &fakeModel{script: searchThenAnswer(5, "Paris; 1889")}
		full, err := newAgent(policy, ref, &fakeEnv{}).Run(context.Background(), twoObjectiveTask(), nil, nil)
		require.NoError(t, err)
		require.Len(t, full.Turns, 6)

		for k := 1; k < 6; k++ {
			t.Run(fmt.Sprintf("%s/k=%d", policy, k), func(t *testing.T) {
				m := &fakeModel{next: k, script: searchThenAnswer(5, "Paris; 1889")}
				var stored []int
				prior := slices.Clone(full.Turns[:k])
				out, err := newAgent(policy, m, &fakeEnv{}).Run(context.Background(), twoObjectiveTask(), prior, func(tu Turn) error {
					stored = append(stored, tu.Index)
					return nil
				})
				require.NoError(t, err)
				assert.Equal(t, ref.contexts[k:], m.contexts)
				assert.Equal(t, full.Turns, out.Turns)
				assert.Equal(t, full.Score, out.Score)
				assert.Equal(t, full.PeakTokens, out.PeakTokens)
				assert.Len(t, stored, 6-k)
				assert.Equal(t, k, stored[0])
				var lat time.Duration
				for _, tu := range out.Turns {
					lat += tu.Latency
				}
				assert.GreaterOrEqual(t, out.Elapsed, lat)
			})
		}
	}
}

func TestRunPriorAlreadyFinished(t *testing.T) {
	ref := &fakeModel{script: searchThenAnswer(2, "Paris; 1889")}
	done, err := newAgent("mem1", ref, &fakeEnv{}).Run(context.Background(), twoObjectiveTask(), nil, nil)
	require.NoError(t, err)
	require.Len(t, done.Turns, 3)

	m := &fakeModel{script: func(int, Context) (Completion, error) {
		return Completion{}, errors.New("must not be called")
	}}
	out, err := newAgent("mem1", m, &fakeEnv{}).Run(context.Background(), twoObjectiveTask(), done.Turns, nil)
	require.NoError(t, err)
	assert.Empty(t, m.contexts)
	assert.Equal(t, done.Score, out.Score)
	assert.Equal(t, "Paris; 1889", out.Answer)
}

func TestRunRestoresClosingTag(t *testing.T) {
	cases := []struct {
		name           string
		finish, reason string
		wantResponse   string
		wantAction     Action
	}{
		{"stop reason", "stop", "</search>", "<think>s</think><search>q</search>", ActionSearch},
		{"no stop reason", "stop", "", "<think>s</think><search>q</search>", ActionSearch},
		{"length", "length", "", "<think>s</think><search>q", ActionNone},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := &fakeModel{script: func(turn int, _ Context) (Completion, error) {
				if turn == 0 {
					return Completion{Text: "<think>s</think><search>q", FinishReason: c.finish, StopReason: c.reason}, nil
				}
				return Completion{Text: "<answer>Paris; 1889", FinishReason: "stop", StopReason: "</answer>"}, nil
			}}
			out, err := newAgent("mem1", m, &fakeEnv{}).Run(context.Background(), twoObjectiveTask(), nil, nil)
			require.NoError(t, err)
			assert.Equal(t, c.wantResponse, out.Turns[0].Response)
			assert.Equal(t, c.wantAction, out.Turns[0].Action)
			if c.wantAction == ActionSearch {
				require.Len(t, m.contexts, 2)
				assert.Equal(t, c.wantResponse, m.contexts[1].History[0].Response)
				assert.InDelta(t, 2.0, out.Score.EM, 1e-12)
			} else {
				assert.Len(t, m.contexts, 1, "an invalid action ends the rollout")
			}
		})
	}
}

func TestRunInvalidAction(t *testing.T) {
	script := func(turn int, _ Context) (Completion, error) {
		if turn == 0 {
			return Completion{Text: "<think>hmm</think> not sure what to do", FinishReason: "stop"}, nil
		}
		return Completion{Text: "<think>ok</think><answer>Paris; 1889", FinishReason: "stop", StopReason: "</answer>"}, nil
	}

	t.Run("ends like MEM1", func(t *testing.T) {
		m, env := &fakeModel{script: script}, &fakeEnv{}
		out, err := newAgent("mem1", m, env).Run(context.Background(), twoObjectiveTask(), nil, nil)
		require.NoError(t, err)
		require.Len(t, out.Turns, 1)
		assert.Equal(t, ActionNone, out.Turns[0].Action)
		assert.Equal(t, "hmm", out.Turns[0].InternalState)
		assert.Empty(t, out.Turns[0].Information)
		assert.Empty(t, env.queries)
		assert.Empty(t, out.Answer)
		assert.True(t, out.Score.NoAnswer)
		assert.False(t, out.HitMaxTurns)
	})

	t.Run("note keeps going", func(t *testing.T) {
		m := &fakeModel{script: script}
		a := newAgent("mem1", m, &fakeEnv{})
		a.Config.InvalidNote = "NOTE: act properly."
		out, err := a.Run(context.Background(), twoObjectiveTask(), nil, nil)
		require.NoError(t, err)
		require.Len(t, out.Turns, 2)
		assert.Equal(t, "[HINT]You have 5 turns left.[/HINT]\nNOTE: act properly.\n", out.Turns[0].Information)
		assert.Equal(t, Exchange{
			Response:    "<think>hmm</think> not sure what to do",
			Information: "<information>\n[HINT]You have 5 turns left.[/HINT]\nNOTE: act properly.\n\n</information>",
		}, m.contexts[1].History[0])
		assert.InDelta(t, 2.0, out.Score.EM, 1e-12)
	})
}

func TestRunErrors(t *testing.T) {
	boom := errors.New("boom")

	t.Run("model", func(t *testing.T) {
		m := &fakeModel{script: func(turn int, c Context) (Completion, error) {
			if turn == 2 {
				return Completion{}, boom
			}
			return searchThenAnswer(9, "")(turn, c)
		}}
		var stored int
		out, err := newAgent("mem1", m, &fakeEnv{}).Run(context.Background(), twoObjectiveTask(), nil, func(Turn) error { stored++; return nil })
		require.ErrorIs(t, err, boom)
		var te *TurnError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, 2, te.Turn)
		assert.Equal(t, "model", te.Op)
		assert.Contains(t, err.Error(), "turn 2")
		assert.Len(t, out.Turns, 2)
		assert.Equal(t, 2, stored)
		assert.Equal(t, 200+7, out.PeakTokens)
	})

	t.Run("environment", func(t *testing.T) {
		env := &fakeEnv{err: boom, errAt: 1}
		out, err := newAgent("mem1", &fakeModel{script: searchThenAnswer(9, "")}, env).Run(context.Background(), twoObjectiveTask(), nil, nil)
		require.ErrorIs(t, err, boom)
		var te *TurnError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, 1, te.Turn)
		assert.Equal(t, "search", te.Op)
		assert.Len(t, out.Turns, 1)
	})

	t.Run("onTurn", func(t *testing.T) {
		m := &fakeModel{script: searchThenAnswer(9, "")}
		out, err := newAgent("mem1", m, &fakeEnv{}).Run(context.Background(), twoObjectiveTask(), nil, func(Turn) error { return boom })
		require.ErrorIs(t, err, boom)
		var te *TurnError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, "store", te.Op)
		assert.Len(t, out.Turns, 1)
		assert.Len(t, m.contexts, 1, "no further model calls")
	})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		m := &fakeModel{script: searchThenAnswer(9, "")}
		out, err := newAgent("mem1", m, &fakeEnv{}).Run(ctx, twoObjectiveTask(), nil, func(Turn) error { cancel(); return nil })
		require.ErrorIs(t, err, context.Canceled)
		assert.Len(t, out.Turns, 1)
		assert.Len(t, m.contexts, 1)
	})
}

func TestRunBadInput(t *testing.T) {
	ok := &fakeModel{script: searchThenAnswer(1, "x")}
	cases := []struct {
		name  string
		agent func() *Agent
		prior []Turn
		msg   string
	}{
		{"bad tags", func() *Agent {
			a := newAgent("mem1", ok, &fakeEnv{})
			a.Config.Tags = Tags{Think: "t", Search: "t", Information: "i", Answer: "a"}
			return a
		}, nil, "both named"},
		{"negative turns", func() *Agent { a := newAgent("mem1", ok, &fakeEnv{}); a.Config.MaxTurns = -1; return a }, nil, "MaxTurns"},
		{"negative topk", func() *Agent { a := newAgent("mem1", ok, &fakeEnv{}); a.Config.TopK = -2; return a }, nil, "TopK"},
		{"scheme", func() *Agent { a := newAgent("mem1", ok, &fakeEnv{}); a.Config.Scheme = "bleu"; return a }, nil, "bleu"},
		{"template", func() *Agent {
			a := newAgent("mem1", ok, &fakeEnv{})
			a.Config.Template = Template{Name: "x", Text: "no slot"}
			return a
		}, nil, QuestionsSlot},
		{"no model", func() *Agent { return &Agent{Env: &fakeEnv{}} }, nil, "no model"},
		{"no env", func() *Agent { return &Agent{Model: ok} }, nil, "no environment"},
		{"prior index", func() *Agent { return newAgent("mem1", ok, &fakeEnv{}) }, []Turn{{Index: 1}}, "index 1"},
		{"prior too long", func() *Agent { return newAgent("mem1", ok, &fakeEnv{}) },
			[]Turn{{Index: 0}, {Index: 1}, {Index: 2}, {Index: 3}, {Index: 4}, {Index: 5}, {Index: 6}}, "exceed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.agent().Run(context.Background(), twoObjectiveTask(), c.prior, nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.msg)
		})
	}
	assert.Empty(t, ok.contexts, "invalid input must not reach the model")
}

func TestRunEstimatesTokensAndFallbackContext(t *testing.T) {
	m := &fakeModel{noSent: true, script: func(turn int, _ Context) (Completion, error) {
		if turn == 0 {
			return Completion{Text: "<think>abc</think><search>q", FinishReason: "stop", StopReason: "</search>"}, nil
		}
		return Completion{Text: "<answer>Paris; 1889", FinishReason: "stop", StopReason: "</answer>"}, nil
	}}
	out, err := newAgent("mem1", m, &fakeEnv{}).Run(context.Background(), twoObjectiveTask(), nil, nil)
	require.NoError(t, err)
	require.Len(t, out.Turns, 2)
	prompt := DefaultTemplate().Render(twoObjectiveTask())
	assert.Equal(t, prompt, out.Turns[0].Context)
	assert.Equal(t, prompt+m.contexts[1].Carried(), out.Turns[1].Context)
	for i, tu := range out.Turns {
		assert.False(t, tu.UsageReported)
		assert.Equal(t, EstimateTokens(tu.Context), tu.PromptTokens, "turn %d", i)
		assert.Positive(t, tu.CompletionTokens)
	}
	assert.Equal(t, EstimateTokens("<think>abc</think><search>q"), out.Turns[0].CompletionTokens)
	assert.Equal(t, max(out.Turns[0].Tokens(), out.Turns[1].Tokens()), out.PeakTokens)
	assert.Equal(t, out.Turns[0].Tokens()+out.Turns[1].Tokens(), out.TotalTokens)
}

func TestRunCustomTags(t *testing.T) {
	tags := Tags{Think: "memo", Search: "lookup", Information: "docs", Answer: "final"}
	m := &fakeModel{script: func(turn int, c Context) (Completion, error) {
		if turn == 0 {
			return Completion{Text: "<memo>m</memo><lookup>eiffel", FinishReason: "stop", StopReason: "</lookup>"}, nil
		}
		return Completion{Text: "<memo>done</memo><final>Paris; 1889", FinishReason: "stop", StopReason: "</final>"}, nil
	}}
	env := &fakeEnv{}
	a := newAgent("mem1", m, env)
	a.Config.Tags = tags
	a.Config.TopK = 1
	out, err := a.Run(context.Background(), twoObjectiveTask(), nil, nil)
	require.NoError(t, err)
	assert.Contains(t, m.contexts[0].Prompt, "<lookup>")
	assert.NotContains(t, m.contexts[0].Prompt, "<search>")
	assert.Equal(t, []string{"</lookup>", "</final>"}, m.stops[0])
	assert.Equal(t, []string{"eiffel"}, env.queries)
	assert.Equal(t, "<docs>\n[HINT]You have 5 turns left.[/HINT]\nDoc 1(Title: \"T-eiffel\") text 0 for eiffel\n\n</docs>", m.contexts[1].History[0].Information)
	assert.Equal(t, "m", out.Turns[0].InternalState)
	assert.Equal(t, "Paris; 1889", out.Answer)
	assert.InDelta(t, 2.0, out.Score.EM, 1e-12)
}

func TestBudgetHint(t *testing.T) {
	assert.Equal(t, "[HINT]You have 5 turns left.[/HINT]", BudgetHint(5))
	assert.Equal(t, "[HINT]You have 2 turns left.[/HINT]", BudgetHint(2))
	assert.Equal(t, "[HINT]You have 1 turn left. You must answer the question now.[/HINT]", BudgetHint(1))
	assert.Contains(t, BudgetHint(0), "must answer the question now")
}

func TestDefaultMaxTurns(t *testing.T) {
	for n, want := range map[int]int{0: 6, 1: 6, 4: 6, 5: 20, 16: 20} {
		assert.Equal(t, want, DefaultMaxTurns(n), "%d objectives", n)
	}
}

func TestRenderPassages(t *testing.T) {
	assert.Equal(t, "", RenderPassages(nil))
	got := RenderPassages([]Passage{{Title: "A", Text: "x", Rank: 7}, {Title: `B "q"`, Text: ""}})
	assert.Equal(t, "Doc 1(Title: \"A\") x\nDoc 2(Title: \"B \"q\"\") \n", got)
	// A title line kept from a /retrieve server's contents is shown as it came.
	got = RenderPassages([]Passage{{Title: "No quotes", TitleLine: "No quotes", Text: "y"}})
	assert.Equal(t, "Doc 1(Title: No quotes) y\n", got)
}

func TestContextCarried(t *testing.T) {
	c := Context{Prompt: "p", History: []Exchange{{Response: "r1", Information: "i1"}, {Response: "r2"}}}
	assert.Equal(t, "r1i1r2", c.Carried())
	assert.Equal(t, "", Context{Prompt: "p"}.Carried())
}

// EndsRollout is the turn loop's own stop rule: the last turn of the budget,
// an answer, or no action when there is no invalid-action note.
func TestEndsRollout(t *testing.T) {
	c, err := AgentConfig{MaxTurns: 3}.Normalized(1)
	require.NoError(t, err)
	assert.False(t, c.EndsRollout(Turn{Index: 0, Action: ActionSearch}))
	assert.True(t, c.EndsRollout(Turn{Index: 1, Action: ActionAnswer}))
	assert.True(t, c.EndsRollout(Turn{Index: 2, Action: ActionSearch}), "the last of the budget")
	assert.True(t, c.EndsRollout(Turn{Index: 0, Action: ActionNone}))
	c.InvalidNote = "invalid action, try again"
	assert.False(t, c.EndsRollout(Turn{Index: 0, Action: ActionNone}), "the note lets the rollout go on")
}
