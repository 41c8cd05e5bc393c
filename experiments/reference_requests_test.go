package experiments

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

// scriptedServer answers the i-th request with gens[i] (text, vLLM
// stop_reason) and keeps every request body.
type scriptedServer struct {
	mu     sync.Mutex
	gens   [][2]string
	bodies []map[string]any
	paths  []string
}

func (s *scriptedServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	i := len(s.bodies)
	s.bodies = append(s.bodies, m)
	s.paths = append(s.paths, r.URL.Path)
	s.mu.Unlock()
	if i >= len(s.gens) {
		http.Error(w, "script exhausted", http.StatusBadRequest)
		return
	}
	text, stop := s.gens[i][0], s.gens[i][1]
	choice := map[string]any{"index": 0, "finish_reason": "stop", "stop_reason": stop}
	if r.URL.Path == "/v1/completions" {
		choice["text"] = text
	} else {
		choice["message"] = map[string]any{"role": "assistant", "content": text}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"id": "x", "object": "o", "model": m["model"], "choices": []any{choice},
		"usage": map[string]int{"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
}

// refCorpus is what the reference's /retrieve returns per query: wiki-18
// "contents" strings ("\"Title\"\ntext", text may hold newlines).
var refCorpus = map[string][]string{
	"q one": {"\"Alpha\"\nalpha text", "\"Beta\"\nbeta line one\nbeta line two", "\"Gamma\"\ngamma"},
	"q two": {"\"Delta\"\ndelta", "\"Eps\"\neps", "\"Zeta\"\nzeta"},
}

// corpusEnv serves refCorpus as core passages, splitting title and text as
// the bundle's corpus stores them (title without quotes).
type corpusEnv struct{}

func (corpusEnv) Search(_ context.Context, q string, k int) ([]core.Passage, error) {
	var out []core.Passage
	for i, c := range refCorpus[q] {
		if i == k {
			break
		}
		title, text, _ := strings.Cut(c, "\n")
		out = append(out, core.Passage{ID: fmt.Sprint(i), Title: strings.Trim(title, "\""), Text: text, Rank: i + 1})
	}
	return out, nil
}

// refPassages2String transcribes passages2string of Mem1/inference/data_pipelines.py.
func refPassages2String(contents []string) string {
	var b strings.Builder
	for i, c := range contents {
		lines := strings.Split(c, "\n")
		fmt.Fprintf(&b, "Doc %d(Title: %s) %s\n", i+1, lines[0], strings.Join(lines[1:], "\n"))
	}
	return b.String()
}

// refPipeline transcribes Mem1Pipeline.run_llm_loop (data_pipelines.py) with
// the vLLM clients of models.py, given the same generations: it returns the
// request bodies the reference sends. mem1 = make_completion on
// /v1/completions with the Qwen prefix (prompt as the user turn, cur_obs
// continuing the open assistant turn; stops lose "</search>" on the last
// turn; temperature 0.01, top_p 0.95, max_tokens 1024); normal =
// generate_response on /v1/chat/completions with cur_obs (prompt + every
// response + every information block) as the one user message, both stops
// always, temperature 0.01 and nothing else.
func refPipeline(prompt, model string, mem1 bool, maxIter int, gens [][2]string) []map[string]any {
	var reqs []map[string]any
	curObs := prompt
	if mem1 {
		curObs = ""
	}
	for it := 0; it < maxIter; it++ {
		if mem1 {
			stops := []any{"</search>", "</answer>"}
			if it == maxIter-1 {
				stops = []any{"</answer>"}
			}
			reqs = append(reqs, map[string]any{"model": model, "temperature": 0.01, "top_p": 0.95, "max_tokens": 1024.0,
				"stop": stops,
				"prompt": "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
					"<|im_start|>user\n" + prompt + "<|im_end|>\n<|im_start|>assistant\n" + curObs})
		} else {
			reqs = append(reqs, map[string]any{"model": model, "temperature": 0.01,
				"messages": []any{map[string]any{"role": "user", "content": curObs}},
				"stop":     []any{"</search>", "</answer>"}})
		}
		// content.strip(), then the stop_reason appended.
		resp := strings.TrimSpace(gens[it][0]) + gens[it][1]
		if mem1 {
			curObs = ""
		}
		left := maxIter - it - 1
		hint := fmt.Sprintf("[HINT]You have %d turns left.[/HINT]", left)
		if left <= 1 {
			hint = fmt.Sprintf("[HINT]You have %d turn left. You must answer the question now.[/HINT]", left)
		}
		if strings.Contains(resp, "<search>") && strings.Contains(resp, "</search>") {
			q := strings.TrimSpace(resp[strings.Index(resp, "<search>")+len("<search>") : strings.Index(resp, "</search>")])
			info := "<information>\n" + hint + "\n" + refPassages2String(refCorpus[q]) + "\n</information>"
			curObs = curObs + resp + info
		} else {
			break
		}
	}
	return reqs
}

// roundFloats makes JSON numbers comparable: go-openai sends float32 values,
// which decode to float64s like 0.009999999776482582; the reference's
// Python floats are 0.01. Both are rounded to 6 significant digits.
func roundFloats(v any) any {
	switch x := v.(type) {
	case float64:
		var f float64
		fmt.Sscanf(fmt.Sprintf("%.6g", x), "%g", &f)
		return f
	case []any:
		for i := range x {
			x[i] = roundFloats(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = roundFloats(x[k])
		}
	}
	return v
}

// Acceptance: every request of a scripted mem1 rollout (completions) and full
// rollout (chat) equals what the reference pipeline sends after the same
// generations — prefix, carried text, information block, stops and sampling.
func TestRequestsEqualReferencePipeline(t *testing.T) {
	requireShared(t, referencePromptPath)
	tmpl, err := LoadTemplate(referencePromptPath)
	require.NoError(t, err)
	task := core.Task{Key: "hotpotqa/n2/0000", Dataset: "hotpotqa", Objectives: []core.Objective{
		{Question: " who is alpha ? ", Gold: []string{"a"}}, {Question: "when was delta", Gold: []string{"d"}}}}
	raw, err := os.ReadFile(referencePromptPath)
	require.NoError(t, err)
	prompt := refMakePrefix(strings.TrimSuffix(string(raw), "{questions}\n"), refProcessBatchJoin([]string{" who is alpha ? ", "when was delta"}))

	gens := [][2]string{
		{"\n  <think>need alpha</think>\n<search> q one ", "</search>"},
		{"<think>alpha known</think><search>q two\n", "</search>"},
		{" <think>both</think>\n<answer>a; d  ", "</answer>"},
	}
	// The defaults are MEM1's sampling; the reference's normal pipeline sends
	// no top_p and no max_tokens, which top_p = 0 and max_tokens = 0 give.
	mem1Cfg := DefaultRunConfig()
	fullCfg := DefaultRunConfig()
	fullCfg.TopP, fullCfg.MaxTokens = 0, 0
	for _, c := range []struct {
		policy, mode string
		cfg          RunConfig
		mem1         bool
	}{
		{core.PolicyMEM1, ModeCompletions, mem1Cfg, true},
		{core.PolicyFull, ModeChat, fullCfg, false},
	} {
		t.Run(c.policy, func(t *testing.T) {
			srv := &scriptedServer{gens: gens}
			hs := httptest.NewServer(srv)
			defer hs.Close()
			rc := c.cfg
			rc.Endpoint, rc.Model, rc.Mode, rc.Policy = hs.URL+"/v1", "Mem-Lab/Qwen2.5-7B-RL-RAG-Q2-EM-Release", c.mode, c.policy
			require.NoError(t, rc.Validate())
			ep := rc.EndpointConfig()
			model, err := NewModel(ep)
			require.NoError(t, err)
			pol, err := core.PolicyByName(c.policy)
			require.NoError(t, err)
			a := &core.Agent{Model: model, Env: corpusEnv{}, Config: core.AgentConfig{Template: tmpl, Policy: pol, MaxTurns: 3}}
			out, err := a.Run(context.Background(), task, nil, nil)
			require.NoError(t, err)
			require.Len(t, out.Turns, 3)
			assert.Equal(t, 2.0, out.Score.EM)

			want := refPipeline(prompt, ep.Model, c.mem1, 3, gens)
			require.Len(t, srv.bodies, len(want))
			for i := range want {
				got := roundFloats(srv.bodies[i])
				assert.Equal(t, roundFloats(want[i]), got, "request %d", i)
			}
			wantPath := "/v1/completions"
			if !c.mem1 {
				wantPath = "/v1/chat/completions"
			}
			for _, p := range srv.paths {
				assert.Equal(t, wantPath, p)
			}
		})
	}
}

// In completions mode "full" renders the reference's one user message as
// Qwen2.5's chat template does (default system line, empty assistant turn);
// "full:messages" keeps the carried text in the open assistant turn.
func TestQwenPrefixOneMessage(t *testing.T) {
	c := core.Context{Prompt: "P\n", History: []core.Exchange{{Response: "<think>a</think><search>q</search>", Information: "<information>\nI\n</information>"}}}
	sys := "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
	assert.Equal(t, sys+"<|im_start|>user\nP\n<|im_end|>\n<|im_start|>assistant\n<think>a</think><search>q</search><information>\nI\n</information>",
		RenderQwenPrefix("", c))
	c.OneMessage = true
	assert.Equal(t, sys+"<|im_start|>user\nP\n<think>a</think><search>q</search><information>\nI\n</information><|im_end|>\n<|im_start|>assistant\n",
		RenderQwenPrefix("", c))
	assert.Equal(t, []Message{{Role: "user", Content: "P\n<think>a</think><search>q</search><information>\nI\n</information>"}}, ChatMessages("", c))
}
