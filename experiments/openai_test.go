package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	openai "github.com/sashabaranov/go-openai"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

// closedAddr returns a local address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

var sampleContext = core.Context{
	Prompt: "Questions: a?; b?",
	History: []core.Exchange{
		{Response: "<think>s0</think><search>q0</search>", Information: "\n\n<information>i0</information>\n\n"},
		{Response: "<think>s1</think><search>q1</search>", Information: "\n\n<information>i1</information>\n\n"},
	},
}

func TestRenderQwenPrefix(t *testing.T) {
	got := RenderQwenPrefix("", sampleContext)
	want := "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n" +
		"<|im_start|>user\nQuestions: a?; b?<|im_end|>\n<|im_start|>assistant\n" +
		"<think>s0</think><search>q0</search>\n\n<information>i0</information>\n\n" +
		"<think>s1</think><search>q1</search>\n\n<information>i1</information>\n\n"
	assert.Equal(t, want, got)
	assert.True(t, strings.HasPrefix(RenderQwenPrefix("Be brief.", core.Context{Prompt: "p"}), "<|im_start|>system\nBe brief.<|im_end|>"))
	assert.True(t, strings.HasSuffix(RenderQwenPrefix("x", core.Context{Prompt: "p"}), "<|im_start|>assistant\n"))
}

func TestChatMessages(t *testing.T) {
	c := sampleContext
	c.History = append(c.History, core.Exchange{Response: "<think>s2</think><answer>x</answer>"})
	msgs := ChatMessages("", c)
	roles := []string{}
	for _, m := range msgs {
		roles = append(roles, m.Role)
	}
	assert.Equal(t, []string{"user", "assistant", "user", "assistant", "user", "assistant"}, roles)
	assert.Equal(t, "\n\n<information>i1</information>\n\n", msgs[4].Content)
	withSys := ChatMessages("sys", c)
	assert.Equal(t, Message{Role: "system", Content: "sys"}, withSys[0])
	assert.Equal(t, "<|system|>\nsys\n<|user|>\nQuestions: a?; b?", RenderChatMessages(withSys[:2]))
}

func TestNewModelValidates(t *testing.T) {
	ok := Endpoint{BaseURL: "http://127.0.0.1:8000/v1", Model: "m", Mode: ModeCompletions}
	_, err := NewModel(ok)
	require.NoError(t, err)
	for name, mut := range map[string]func(*Endpoint){
		"mode":   func(e *Endpoint) { e.Mode = "stream" },
		"url":    func(e *Endpoint) { e.BaseURL = "127.0.0.1:8000" },
		"empty":  func(e *Endpoint) { e.BaseURL = "" },
		"model":  func(e *Endpoint) { e.Model = " " },
		"temp":   func(e *Endpoint) { e.Temperature = -1 },
		"top_p":  func(e *Endpoint) { e.TopP = 2 },
		"tokens": func(e *Endpoint) { e.MaxTokens = -1 },
	} {
		ep := ok
		mut(&ep)
		_, err := NewModel(ep)
		assert.Error(t, err, name)
	}
	u, err := normalizeBaseURL("http://h:1")
	require.NoError(t, err)
	assert.Equal(t, "http://h:1/v1", u)
	u, err = normalizeBaseURL("https://h/api/v1/")
	require.NoError(t, err)
	assert.Equal(t, "https://h/api/v1", u)
}

// recordingServer answers completions and chat requests with a fixed reply and
// keeps the last request body.
func recordingServer(t *testing.T, reply string) (*httptest.Server, *map[string]any) {
	var last map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last = nil
		require.NoError(t, json.NewDecoder(r.Body).Decode(&last))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(reply))
	}))
	t.Cleanup(srv.Close)
	return srv, &last
}

func TestCompleteCompletionsMode(t *testing.T) {
	srv, last := recordingServer(t, `{"id":"x","object":"text_completion","choices":[{"index":0,"text":"<think>s</think><search>q","finish_reason":"stop","stop_reason":"</search>"}],"usage":{"prompt_tokens":40,"completion_tokens":9,"total_tokens":49}}`)
	m, err := NewModel(Endpoint{BaseURL: srv.URL + "/v1", Model: "mem1", Mode: ModeCompletions, Temperature: 0, TopP: 0.95, MaxTokens: 64, Timeout: 5 * time.Second})
	require.NoError(t, err)
	defer m.(*OpenAIModel).Close()
	out, err := m.Complete(context.Background(), sampleContext, []string{"</search>", "</answer>"})
	require.NoError(t, err)
	assert.Equal(t, "<think>s</think><search>q", out.Text)
	assert.Equal(t, "stop", out.FinishReason)
	assert.Equal(t, "</search>", out.StopReason)
	assert.Equal(t, core.Usage{PromptTokens: 40, CompletionTokens: 9, Reported: true, Source: core.TokenSourceServerUsage}, out.Usage)
	assert.Equal(t, RenderQwenPrefix("", sampleContext), out.Sent)

	req := *last
	assert.Equal(t, out.Sent, req["prompt"])
	assert.Equal(t, "mem1", req["model"])
	assert.Equal(t, []any{"</search>", "</answer>"}, req["stop"])
	assert.Equal(t, 64.0, req["max_tokens"])
	temp, ok := req["temperature"].(float64)
	require.True(t, ok, "temperature 0 must still be sent")
	assert.Greater(t, temp, 0.0)
	assert.LessOrEqual(t, temp, 2*float64(math.SmallestNonzeroFloat32))
	assert.InDelta(t, 0.95, req["top_p"], 1e-6)
}

func TestCompleteChatModeWithoutUsage(t *testing.T) {
	srv, last := recordingServer(t, `{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"<think>s</think><answer>a"},"finish_reason":"stop","stop_reason":null}]}`)
	m, err := NewModel(Endpoint{BaseURL: srv.URL + "/v1", Model: "m", Mode: ModeChat, SystemPrompt: "sys", Temperature: 0.01})
	require.NoError(t, err)
	out, err := m.Complete(context.Background(), sampleContext, []string{"</answer>"})
	require.NoError(t, err)
	assert.Equal(t, "<think>s</think><answer>a", out.Text)
	assert.Equal(t, "", out.StopReason)
	assert.False(t, out.Usage.Reported)
	assert.Equal(t, core.EstimateTokens(out.Sent), out.Usage.PromptTokens)
	assert.True(t, strings.HasPrefix(out.Sent, "<|system|>\nsys\n<|user|>\nQuestions"))
	msgs := (*last)["messages"].([]any)
	require.Len(t, msgs, 6)
	assert.Equal(t, "assistant", msgs[2].(map[string]any)["role"])
	assert.Equal(t, "<think>s0</think><search>q0</search>", msgs[2].(map[string]any)["content"])
}

func TestCompleteErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":{"message":"This model's maximum context length is 32 tokens","type":"invalid_request_error","param":"prompt","code":"context_length_exceeded"}}`))
	}))
	defer srv.Close()
	m, err := NewModel(Endpoint{BaseURL: srv.URL + "/v1", Model: "m", Mode: ModeCompletions})
	require.NoError(t, err)
	_, err = m.Complete(context.Background(), sampleContext, nil)
	require.Error(t, err)
	var apiErr *openai.APIError
	require.True(t, errors.As(err, &apiErr))
	assert.Equal(t, 400, apiErr.HTTPStatusCode)
	assert.Contains(t, err.Error(), "maximum context length is 32 tokens")
	assert.Contains(t, err.Error(), "400")

	// Timeout.
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client going away
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	m, err = NewModel(Endpoint{BaseURL: slow.URL + "/v1", Model: "m", Mode: ModeChat, Timeout: 100 * time.Millisecond})
	require.NoError(t, err)
	_, err = m.Complete(context.Background(), sampleContext, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "timed out")

	// Closed port.
	m, err = NewModel(Endpoint{BaseURL: "http://" + closedAddr(t) + "/v1", Model: "m", Mode: ModeChat})
	require.NoError(t, err)
	_, err = m.Complete(context.Background(), sampleContext, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "connection refused")
}

func TestDecodeVLLMExtras(t *testing.T) {
	assert.Equal(t, "", decodeVLLMExtras([]byte(`{"choices":[{"stop_reason":151643}]}`)).stopReason)
	assert.Equal(t, "</answer>", decodeVLLMExtras([]byte(`{"choices":[{"stop_reason":"</answer>"}]}`)).stopReason)
	assert.Nil(t, decodeVLLMExtras([]byte(`{"choices":[],"usage":null}`)).usage)
	assert.Equal(t, vllmExtras{}, decodeVLLMExtras([]byte(`not json`)))
}

// readSized reads whole bodies whether their announced size is right, too
// small, too large or unknown, and passes read errors on as io.ReadAll does,
// a body cut short included.
func TestReadSized(t *testing.T) {
	body := strings.Repeat("x", 1000)
	for _, n := range []int64{-1, 0, 1, 999, 1000, 1001, 5000} {
		got, err := readSized(strings.NewReader(body), n)
		require.NoError(t, err, "announced %d", n)
		assert.Equal(t, body, string(got), "announced %d", n)
	}
	_, err := readSized(io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(errors.New("reset"))), 10)
	assert.ErrorContains(t, err, "reset")
	// A body cut short of its announced size fails as io.ReadAll fails on it.
	cut := func() io.Reader {
		return io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(io.ErrUnexpectedEOF))
	}
	got, err := readSized(cut(), 500)
	assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
	want, werr := io.ReadAll(cut())
	assert.ErrorIs(t, werr, io.ErrUnexpectedEOF)
	assert.Equal(t, want, got)
	got, err = readSized(iotest.OneByteReader(strings.NewReader(body)), 1000)
	require.NoError(t, err)
	assert.Equal(t, body, string(got), "read a byte at a time")
}
