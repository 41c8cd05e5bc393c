// Package oracle serves an OpenAI-compatible endpoint that plays a retrieval-oracle
// MEM1 agent: no model, just the protocol played well. It searches each objective
// once (the question as the query), "reads" a result by checking whether one of
// the objective's gold aliases occurs in the information it was given, keeps what
// it learned in its <think> internal state, and answers from that state alone.
//
// Its EM is therefore the ceiling that the retriever allows under the turn budget
// when every question is searched verbatim, and its trajectories are well-formed
// MEM1 turns. Researchers use it to check a pipeline end to end without a GPU
// (`mem1lab oracle`); the tests use it for behaviour that needs real MEM1 turns.
package oracle

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// ModelName is the model id the oracle reports on /v1/models.
const ModelName = "mem1lab-oracle"

// Agent is the oracle's http.Handler: /v1/completions, /v1/chat/completions,
// /v1/models and /health. It is safe for concurrent use.
type Agent struct {
	gold      map[string][]string // question as JoinQuestions renders it → aliases
	questions []string            // keys of gold, longest first

	mu       sync.Mutex
	requests map[string]int // path → count
}

// New builds an oracle that knows qs (their questions and gold aliases).
func New(qs []storage.Question) *Agent {
	a := &Agent{gold: map[string][]string{}, requests: map[string]int{}}
	for _, q := range qs {
		k := core.JoinQuestions([]string{q.Question})
		if k == "" {
			continue
		}
		if _, dup := a.gold[k]; !dup {
			a.questions = append(a.questions, k)
		}
		a.gold[k] = append(a.gold[k], q.Golden...)
	}
	sort.Slice(a.questions, func(i, j int) bool { return len(a.questions[i]) > len(a.questions[j]) })
	return a
}

// Requests returns how many requests reached path.
func (a *Agent) Requests(path string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.requests[path]
}

var (
	thinkRE  = regexp.MustCompile(`(?s)<think>(.*?)</think>`)
	infoRE   = regexp.MustCompile(`(?s)<information>(.*?)</information>`)
	factRE   = regexp.MustCompile(`(?m)^fact (\d+): (.*)$`)
	searchRE = regexp.MustCompile(`(?m)^searching: (\d+)$`)
	turnsRE  = regexp.MustCompile(`You have (\d+) turns? left`)
)

type request struct {
	Model    string   `json:"model"`
	Prompt   any      `json:"prompt"`
	Stop     []string `json:"stop"`
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"message": msg, "type": "invalid_request_error", "param": nil, "code": nil}})
}

// ServeHTTP answers one OpenAI-compatible request.
func (a *Agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.requests[r.URL.Path]++
	a.mu.Unlock()
	switch r.URL.Path {
	case "/health":
		w.WriteHeader(http.StatusOK)
		return
	case "/v1/models":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": []any{
			map[string]any{"id": ModelName, "object": "model", "owned_by": "mem1lab"}}})
		return
	case "/v1/completions", "/v1/chat/completions":
	default:
		writeError(w, http.StatusNotFound, fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path))
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	var req request
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "bad JSON: "+err.Error())
		return
	}
	var prompt, carried string
	var sent int
	if r.URL.Path == "/v1/completions" {
		p, ok := req.Prompt.(string)
		if !ok {
			writeError(w, http.StatusBadRequest, "prompt must be a string")
			return
		}
		// Raw Qwen chat prefix: the user turn holds the task, the open assistant
		// turn the carried exchanges.
		_, rest, _ := strings.Cut(p, "<|im_start|>user\n")
		prompt, carried, _ = strings.Cut(rest, "<|im_end|>\n<|im_start|>assistant\n")
		prompt = strings.TrimSuffix(prompt, "<|im_end|>\n<|im_start|>assistant\n")
		sent = len(p)
	} else {
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
	}
	if carried == "" {
		// The "full" policy sends prompt and carried text as one user turn;
		// the agent's own replies open with "<think>\n", which the prompts
		// never contain.
		if i := strings.Index(prompt, "<think>\n"); i >= 0 {
			prompt, carried = prompt[:i], prompt[i:]
		}
	}
	text := a.Act(prompt, carried, req.Stop)
	stopReason := any(nil)
	for _, s := range req.Stop {
		if i := strings.Index(text, s); i >= 0 {
			text, stopReason = text[:i], s
			break
		}
	}
	// Usage: about four characters a token, as a tokenizer-free stand-in.
	usage := map[string]int{"prompt_tokens": sent / 4, "completion_tokens": len(text)/4 + 1}
	usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
	choice := map[string]any{"index": 0, "finish_reason": "stop", "stop_reason": stopReason}
	object := "text_completion"
	if r.URL.Path == "/v1/completions" {
		choice["text"] = text
	} else {
		object = "chat.completion"
		choice["message"] = map[string]any{"role": "assistant", "content": text}
	}
	model := req.Model
	if model == "" {
		model = ModelName
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"id": "oracle", "object": object, "model": model,
		"choices": []any{choice}, "usage": usage})
}

// Questions returns the known questions found in prompt, in prompt order.
func (a *Agent) Questions(prompt string) []string {
	type hit struct {
		at int
		q  string
	}
	var hits []hit
	taken := make([]bool, len(prompt))
	for _, q := range a.questions { // longest first, so a question inside another loses
		from := 0
		for {
			i := strings.Index(prompt[from:], q)
			if i < 0 {
				break
			}
			i += from
			if !taken[i] {
				hits = append(hits, hit{i, q})
				for j := i; j < i+len(q); j++ {
					taken[j] = true
				}
			}
			from = i + len(q)
		}
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].at < hits[j].at })
	out := make([]string, len(hits))
	for i, h := range hits {
		out[i] = h.q
	}
	return out
}

// Act writes one response for the task prompt and the carried context (the
// assistant-side text the policy kept). stops are the request's stop strings: the
// last turn offers only the answer's.
func (a *Agent) Act(prompt, carried string, stops []string) string {
	questions := a.Questions(prompt)
	if len(questions) == 0 {
		return "<think>\nI do not know these questions.\n</think>\n<answer>unknown</answer>"
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
		infos := infoRE.FindAllStringSubmatch(carried[last[1]:], -1)
		if searching > 0 && searching <= len(questions) && len(infos) > 0 {
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

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}
