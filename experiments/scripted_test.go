package experiments

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// scriptedAgent is an OpenAI-compatible server that plays a competent MEM1
// agent without a model. Each request it:
//   - reads the questions from the task prompt ("Questions: q1?; q2?; …");
//   - reads its own internal state from the last <think> block in the carried
//     context ("fact K: answer" lines and "searching: K");
//   - reads the last <information> block, and if the objective it searched has a
//     gold alias occurring (whole words, any case) in it, "learns" that alias,
//     else records "unknown" (recognising the answer in a passage is its only
//     use of gold: it never answers a question it did not search and read);
//   - searches the next objective without a fact (query = the question), or,
//     when all are known, on the last turn (no "</search>" stop) or when the
//     budget hint says one turn is left, answers "<answer>a1; a2; …</answer>"
//     from its state alone.
//
// It honours stop strings (cuts before the first one, reports vLLM's
// stop_reason) and reports usage as characters/4.
type scriptedAgent struct {
	gold map[string][]string // question (trimmed, "?" appended as JoinQuestions does) → aliases

	mu       sync.Mutex
	requests map[string]int // path → count
}

func newScriptedAgent(qs []storage.Question) *scriptedAgent {
	a := &scriptedAgent{gold: map[string][]string{}, requests: map[string]int{}}
	for _, q := range qs {
		a.gold[core.JoinQuestions([]string{q.Question})] = q.Golden
	}
	return a
}

var (
	thinkRE   = regexp.MustCompile(`(?s)<think>(.*?)</think>`)
	infoRE    = regexp.MustCompile(`(?s)<information>(.*?)</information>`)
	factRE    = regexp.MustCompile(`(?m)^fact (\d+): (.*)$`)
	searchRE  = regexp.MustCompile(`(?m)^searching: (\d+)$`)
	turnsRE   = regexp.MustCompile(`You have (\d+) turns? left`)
	qPromptRE = regexp.MustCompile(`(?m)^Questions: (.*)$`)
)

type scriptedRequest struct {
	Model    string   `json:"model"`
	Prompt   string   `json:"prompt"`
	Stop     []string `json:"stop"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
}

func (a *scriptedAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests[r.URL.Path]++
	a.mu.Unlock()
	var req scriptedRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad json","type":"invalid_request_error"}}`, http.StatusBadRequest)
		return
	}
	var prompt, carried string
	var sent int
	switch r.URL.Path {
	case "/v1/completions":
		_, rest, _ := strings.Cut(req.Prompt, "<|im_start|>user\n")
		prompt, carried, _ = strings.Cut(rest, "<|im_end|>\n<|im_start|>assistant\n")
		sent = len(req.Prompt)
	case "/v1/chat/completions":
		seenUser := false
		for _, m := range req.Messages {
			sent += len(m.Content)
			switch {
			case m.Role == "system":
			case m.Role == "user" && !seenUser:
				prompt, seenUser = m.Content, true
			default:
				carried += m.Content
			}
		}
	default:
		http.NotFound(w, r)
		return
	}
	text := a.act(prompt, carried, req.Stop)
	finish, stopReason := "stop", any(nil)
	for _, s := range req.Stop {
		if i := strings.Index(text, s); i >= 0 {
			text, stopReason = text[:i], s
			break
		}
	}
	usage := map[string]int{"prompt_tokens": sent / 4, "completion_tokens": len(text)/4 + 1}
	usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
	choice := map[string]any{"index": 0, "finish_reason": finish, "stop_reason": stopReason}
	obj := "text_completion"
	if r.URL.Path == "/v1/completions" {
		choice["text"] = text
	} else {
		obj = "chat.completion"
		choice["message"] = map[string]any{"role": "assistant", "content": text}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"id": "scripted", "object": obj, "model": req.Model,
		"choices": []any{choice}, "usage": usage})
}

// act writes one response from the prompt and the carried context.
func (a *scriptedAgent) act(prompt, carried string, stops []string) string {
	m := qPromptRE.FindStringSubmatch(prompt)
	if m == nil {
		return "I cannot find the questions."
	}
	questions := strings.Split(m[1], "?; ")
	for i := 0; i < len(questions)-1; i++ {
		questions[i] += "?" // the separator took it
	}
	facts := map[int]string{}
	searching := 0
	if ts := thinkRE.FindAllStringSubmatchIndex(carried, -1); len(ts) > 0 {
		last := ts[len(ts)-1]
		state := carried[last[2]:last[3]]
		for _, f := range factRE.FindAllStringSubmatch(state, -1) {
			k, _ := strconv.Atoi(f[1])
			facts[k] = f[2]
		}
		if s := searchRE.FindStringSubmatch(state); s != nil {
			searching, _ = strconv.Atoi(s[1])
		}
		// The information that answered that search follows the last think.
		if infos := infoRE.FindAllStringSubmatch(carried[last[1]:], -1); searching > 0 && len(infos) > 0 {
			info := infos[len(infos)-1][1]
			facts[searching] = "unknown"
			for _, alias := range a.gold[questions[searching-1]] {
				if containsWords(info, alias) {
					facts[searching] = alias
					break
				}
			}
		}
	}
	turnsLeft := -1
	if ms := turnsRE.FindAllStringSubmatch(carried, -1); len(ms) > 0 {
		turnsLeft, _ = strconv.Atoi(ms[len(ms)-1][1])
	}
	// The last turn offers only the "</answer>" stop; the hint counts down too.
	canSearch := turnsLeft != 1 && contains(stops, "</search>")
	next := 0
	for k := 1; k <= len(questions); k++ {
		if _, ok := facts[k]; !ok {
			next = k
			break
		}
	}
	var st strings.Builder
	keys := make([]int, 0, len(facts))
	for k := range facts {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	for _, k := range keys {
		fmt.Fprintf(&st, "fact %d: %s\n", k, facts[k])
	}
	if next > 0 && canSearch {
		fmt.Fprintf(&st, "searching: %d\n", next)
		return "<think>\n" + st.String() + "</think>\n<search>" + questions[next-1] + "</search>"
	}
	answers := make([]string, len(questions))
	for k := range questions {
		answers[k] = facts[k+1]
		if answers[k] == "" {
			answers[k] = "unknown"
		}
	}
	return "<think>\n" + st.String() + "</think>\n<answer>" + strings.Join(answers, "; ") + "</answer>"
}

// containsWords reports whether phrase occurs in text as whole words, ignoring case.
func containsWords(text, phrase string) bool {
	phrase = strings.TrimSpace(phrase)
	if phrase == "" {
		return false
	}
	re, err := regexp.Compile(`(?i)(^|\W)` + regexp.QuoteMeta(phrase) + `($|\W)`)
	return err == nil && re.MatchString(text)
}

func TestScriptedAgentEndToEnd(t *testing.T) {
	st := bundleStore(t)
	ctx := context.Background()
	qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	agent := newScriptedAgent(qs)
	srv := httptest.NewServer(agent)
	defer srv.Close()

	const tasks = 3
	type key struct {
		mode, policy string
		n            int
	}
	results := map[key][]storage.RolloutDetail{}
	totalEM := 0.0
	for _, mode := range []string{ModeCompletions, ModeChat} {
		for _, n := range []int{2, 4} {
			for _, policy := range []string{"mem1", "full"} {
				cfg := DefaultRunConfig()
				cfg.Endpoint, cfg.Model, cfg.Mode = srv.URL+"/v1", "scripted", mode
				cfg.Objectives, cfg.Tasks, cfg.Policy, cfg.Concurrency = n, tasks, policy, 2
				var mu sync.Mutex
				inCallback, calls, last := 0, 0, Progress{}
				sum, err := (&Runner{Store: st, Env: st}).Run(ctx, cfg, func(p Progress) {
					mu.Lock()
					inCallback++
					concurrent := inCallback > 1
					mu.Unlock()
					assert.False(t, concurrent, "progress called concurrently")
					mu.Lock()
					calls++
					last = p
					inCallback--
					mu.Unlock()
				})
				require.NoError(t, err, "%s n%d %s", mode, n, policy)
				require.Len(t, sum.Groups, 1)
				g := sum.Groups[0]
				assert.Equal(t, Group{Policy: policy, Objectives: n, Rollouts: tasks}, Group{Policy: g.Policy, Objectives: g.Objectives, Rollouts: g.Rollouts, Failed: g.Failed})
				assert.Equal(t, tasks, last.Done)
				assert.Equal(t, 0, last.Running)

				rows, err := st.Rollouts(ctx, sum.Experiment)
				require.NoError(t, err)
				require.Len(t, rows, tasks)
				turnsSeen := 0
				for _, row := range rows {
					d, err := st.Rollout(ctx, row.ID)
					require.NoError(t, err)
					assert.Equal(t, storage.StatusDone, d.Status, d.Error)
					// n searches then the answer.
					require.Len(t, d.Turns, n+1, "%s n%d %s %s", mode, n, policy, row.TaskKey)
					assert.Equal(t, row.Turns, len(d.Turns))
					for i, tu := range d.Turns {
						assert.Equal(t, i, tu.Index)
						assert.True(t, tu.UsageReported)
						assert.Positive(t, tu.PromptTokens)
						if i < n {
							assert.Equal(t, core.ActionSearch, tu.Action)
							assert.Equal(t, core.JoinQuestions([]string{d.Task.Objectives[i].Question}), tu.Query, "query is the question")
							assert.NotEmpty(t, tu.Passages)
							assert.Contains(t, tu.Information, "Doc 1(Title: ")
						}
						// Information blocks open with the budget hint (the prompt also names the tag).
						infos := strings.Count(tu.Context, "<information>\n[HINT]")
						if policy == "mem1" {
							assert.LessOrEqual(t, infos, 1, "mem1 carries one exchange")
						} else {
							assert.Equal(t, i, infos, "full carries every exchange")
						}
						if mode == ModeCompletions {
							assert.True(t, strings.HasPrefix(tu.Context, "<|im_start|>system\n"))
						} else {
							assert.True(t, strings.HasPrefix(tu.Context, "<|user|>\n"))
						}
					}
					assert.Equal(t, core.ActionAnswer, d.Turns[n].Action)
					assert.Equal(t, n, strings.Count(d.Turns[n].Answer, ";")+1)
					assert.Equal(t, row.EM, d.Score.EM)
					totalEM += row.EM
					turnsSeen += len(d.Turns)
				}
				assert.Equal(t, turnsSeen, last.Turns)
				assert.Equal(t, turnsSeen+tasks, calls, "one call per turn and per rollout")
				sort.Slice(rows, func(i, j int) bool { return rows[i].TaskKey < rows[j].TaskKey })
				for _, row := range rows {
					d, _ := st.Rollout(ctx, row.ID)
					results[key{mode, policy, n}] = append(results[key{mode, policy, n}], d)
				}
			}
		}
	}
	t.Logf("scripted agent: summed EM %.0f over %d rollouts", totalEM, 8*tasks)
	assert.Positive(t, totalEM, "the scripted agent finds some answers")
	agent.mu.Lock()
	assert.Positive(t, agent.requests["/v1/completions"])
	assert.Positive(t, agent.requests["/v1/chat/completions"])
	agent.mu.Unlock()

	for _, mode := range []string{ModeCompletions, ModeChat} {
		for _, n := range []int{2, 4} {
			mem1, full := results[key{mode, "mem1", n}], results[key{mode, "full", n}]
			require.Len(t, mem1, tasks)
			require.Len(t, full, tasks)
			for i := range mem1 {
				require.Equal(t, mem1[i].TaskKey, full[i].TaskKey)
				// The facts survive consolidation through <think>: same answers.
				assert.Equal(t, full[i].Turns[n].Answer, mem1[i].Turns[n].Answer, "%s n%d %s", mode, n, mem1[i].TaskKey)
				// Context size: full grows every turn; mem1 stays flat.
				ft, mt := full[i].Turns, mem1[i].Turns
				for j := 1; j < len(ft); j++ {
					assert.Greater(t, ft[j].PromptTokens, ft[j-1].PromptTokens, "full grows")
				}
				lo, hi := mt[1].PromptTokens, mt[1].PromptTokens
				for _, tu := range mt[1:] {
					lo, hi = min(lo, tu.PromptTokens), max(hi, tu.PromptTokens)
				}
				growth := ft[len(ft)-1].PromptTokens - ft[0].PromptTokens
				assert.Less(t, hi-lo, growth, "mem1 spread vs full growth")
				if n == 4 {
					assert.Less(t, mt[n].PromptTokens, ft[n].PromptTokens)
					assert.Less(t, float64(hi-lo), 0.5*float64(growth), "%s: mem1 per-turn context is flat", mem1[i].TaskKey)
				}
			}
		}
	}
}
