package experiments

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

// noUsageServer answers completions and chat completions without usage, and
// /tokenize (when withTokenize) with the number of space-separated words of
// the prompt or of the messages' contents, recording each /tokenize body.
func noUsageServer(t *testing.T, withTokenize bool) (*httptest.Server, *[]map[string]any, *atomic.Int32) {
	var mu sync.Mutex
	var bodies []map[string]any
	var tokenizeCalls atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/completions", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"id":"c","object":"text_completion","choices":[{"index":0,"text":"<think>a b</think><search>c d e","finish_reason":"stop","stop_reason":"</search>"}]}`)
	})
	mux.HandleFunc("/v1/chat/completions", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, `{"id":"c","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"one two three"},"finish_reason":"stop"}]}`)
	})
	mux.HandleFunc("/tokenize", func(w http.ResponseWriter, r *http.Request) {
		tokenizeCalls.Add(1)
		if !withTokenize {
			http.NotFound(w, r)
			return
		}
		var body map[string]any
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		mu.Lock()
		bodies = append(bodies, body)
		mu.Unlock()
		text := ""
		if p, ok := body["prompt"].(string); ok {
			text = p
		}
		if ms, ok := body["messages"].([]any); ok {
			for _, m := range ms {
				text += " " + m.(map[string]any)["content"].(string)
			}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"count": len(strings.Fields(text)), "max_model_len": 4096, "tokens": []int{}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &bodies, &tokenizeCalls
}

func TestTokenizeFallbackWhenUsageMissing(t *testing.T) {
	srv, bodies, _ := noUsageServer(t, true)
	ctx := context.Background()
	c := core.Context{Prompt: "alpha beta gamma"}

	m, err := NewModel(Endpoint{BaseURL: srv.URL + "/v1", Model: "m", Mode: ModeCompletions, APIKey: "k"})
	require.NoError(t, err)
	comp, err := m.Complete(ctx, c, []string{"</search>"})
	require.NoError(t, err)
	assert.False(t, comp.Usage.Reported)
	assert.Equal(t, core.TokenSourceServerTokenize, comp.Usage.Source)
	assert.Equal(t, len(strings.Fields(comp.Sent)), comp.Usage.PromptTokens, "the raw prompt as sent")
	assert.Equal(t, 4, comp.Usage.CompletionTokens, `"<think>a b</think><search>c d e" has 4 words`)
	require.Len(t, *bodies, 2)
	assert.Equal(t, comp.Sent, (*bodies)[0]["prompt"])
	assert.Equal(t, "m", (*bodies)[0]["model"])
	assert.Equal(t, false, (*bodies)[1]["add_special_tokens"], "the generation is counted without BOS")

	m, err = NewModel(Endpoint{BaseURL: srv.URL + "/v1", Model: "m", Mode: ModeChat, SystemPrompt: "be brief"})
	require.NoError(t, err)
	comp, err = m.Complete(ctx, c, nil)
	require.NoError(t, err)
	assert.Equal(t, core.TokenSourceServerTokenize, comp.Usage.Source)
	assert.Equal(t, 5, comp.Usage.PromptTokens, "system and user message contents")
	assert.Equal(t, 3, comp.Usage.CompletionTokens)
	require.Len(t, *bodies, 4)
	msgs := (*bodies)[2]["messages"].([]any)
	require.Len(t, msgs, 2)
	assert.Equal(t, map[string]any{"role": "system", "content": "be brief"}, msgs[0])

	// Through the turn loop: the turn records the source.
	agent := &core.Agent{Model: m, Env: noPassages{}, Config: core.AgentConfig{MaxTurns: 1}}
	out, err := agent.Run(ctx, core.Task{Objectives: []core.Objective{{Question: "q", Gold: []string{"x"}}}}, nil, nil)
	require.NoError(t, err)
	require.Len(t, out.Turns, 1)
	assert.Equal(t, core.TokenSourceServerTokenize, out.Turns[0].TokenSource)
	assert.False(t, out.Turns[0].UsageReported)
}

type noPassages struct{}

func (noPassages) Search(context.Context, string, int) ([]core.Passage, error) { return nil, nil }

func TestTokenizeMissingFallsBackToEstimateOnce(t *testing.T) {
	srv, _, calls := noUsageServer(t, false)
	m, err := NewModel(Endpoint{BaseURL: srv.URL + "/v1", Model: "m", Mode: ModeCompletions})
	require.NoError(t, err)
	for range 3 {
		comp, err := m.Complete(context.Background(), core.Context{Prompt: "p"}, nil)
		require.NoError(t, err)
		assert.Equal(t, core.TokenSourceEstimate, comp.Usage.Source)
		assert.Equal(t, core.EstimateTokens(comp.Sent), comp.Usage.PromptTokens)
	}
	assert.Equal(t, int32(1), calls.Load(), "a server without /tokenize is asked once")
}

// TestTokenizeAgainstTinyServer puts a proxy before the real tiny model server
// that drops "usage" from completions, so the adapter counts with the
// server's own POST /tokenize: the prompt count equals the usage the server
// reported for the same request (both count the BOS).
func TestTokenizeAgainstTinyServer(t *testing.T) {
	base, stop := startTinyServer(t, "512")
	defer stop()
	model := servedModel(t, base)
	target, err := url.Parse(base)
	require.NoError(t, err)
	var mu sync.Mutex
	var served []int
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.URL.Path != "/v1/completions" {
			return nil
		}
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return err
		}
		resp.Body.Close()
		if u, ok := body["usage"].(map[string]any); ok {
			mu.Lock()
			served = append(served, int(u["prompt_tokens"].(float64)))
			mu.Unlock()
		}
		delete(body, "usage")
		b, _ := json.Marshal(body)
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
		resp.ContentLength = int64(len(b))
		resp.Header.Del("Content-Length")
		return nil
	}
	px := httptest.NewServer(proxy)
	defer px.Close()

	m, err := NewModel(Endpoint{BaseURL: px.URL + "/v1", Model: model, Mode: ModeCompletions, MaxTokens: 8, Timeout: 60 * time.Second})
	require.NoError(t, err)
	comp, err := m.Complete(context.Background(), core.Context{Prompt: "Once upon a time"}, nil)
	require.NoError(t, err)
	assert.Equal(t, core.TokenSourceServerTokenize, comp.Usage.Source)
	require.Len(t, served, 1)
	assert.Equal(t, served[0], comp.Usage.PromptTokens, "/tokenize counts the prompt as usage did")
	assert.Positive(t, comp.Usage.CompletionTokens)
}
