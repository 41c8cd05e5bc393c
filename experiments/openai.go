package experiments

//lint:file-ignore SA1019 vLLM and llama.cpp servers read max_tokens; MaxCompletionTokens (max_completion_tokens) is OpenAI's newer name they may ignore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/mem1lab/mem1lab/core"
)

// Endpoint modes.
const (
	// ModeCompletions sends a hand-built Qwen chat prefix to /v1/completions, as
	// MEM1's released checkpoint is served (the carried state continues an open
	// assistant turn).
	ModeCompletions = "completions"
	// ModeChat sends messages to /v1/chat/completions; the server applies its own
	// chat template.
	ModeChat = "chat"
)

// QwenDefaultSystem is Qwen2.5's default system line, used by RenderQwenPrefix
// when no system prompt is given.
const QwenDefaultSystem = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."

// Endpoint is one OpenAI-compatible inference server plus the sampling settings
// used for every turn.
type Endpoint struct {
	// BaseURL is the API root, e.g. "http://127.0.0.1:8000/v1". A URL with an
	// empty path gets "/v1" appended.
	BaseURL string
	Model   string // model name sent in requests
	Mode    string // ModeCompletions or ModeChat
	// APIKey is sent as a bearer token when not empty. It is never stored.
	APIKey string
	// SystemPrompt is the system message. In completions mode "" means
	// QwenDefaultSystem; in chat mode "" sends no system message.
	SystemPrompt string
	Temperature  float64 // 0 = greedy (sent as the smallest float32 above 0)
	TopP         float64 // 0 = server default
	MaxTokens    int     // tokens generated per turn; 0 = server default
	// Timeout bounds one request (connection, generation and reply); 0 = none.
	Timeout time.Duration
	// MaxResponseBytes bounds a successful reply's body; a longer one fails the
	// call with ErrResponseTooLarge (retried). 0 = DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Concurrency is how many requests the caller keeps in flight; the
	// connection pool keeps that many idle connections to the host (0 = 2).
	Concurrency int
	// SessionHeader names the header that carries the session key of a call
	// whose context has one (WithSessionKey): "" = DefaultSessionHeader, "-" =
	// none. SessionUser also sends the key as the OpenAI "user" field.
	SessionHeader string
	SessionUser   bool
}

// Validate reports the first bad field of the endpoint.
func (ep Endpoint) Validate() error {
	if ep.Mode != ModeCompletions && ep.Mode != ModeChat {
		return fmt.Errorf("endpoint mode %q: want %q or %q", ep.Mode, ModeCompletions, ModeChat)
	}
	if _, err := normalizeBaseURL(ep.BaseURL); err != nil {
		return err
	}
	if strings.TrimSpace(ep.Model) == "" {
		return errors.New("endpoint model: empty (the model name the server serves)")
	}
	if ep.Temperature < 0 || ep.Temperature > 2 || math.IsNaN(ep.Temperature) {
		return fmt.Errorf("endpoint temperature %g: want 0..2", ep.Temperature)
	}
	if ep.TopP < 0 || ep.TopP > 1 || math.IsNaN(ep.TopP) {
		return fmt.Errorf("endpoint top_p %g: want 0..1", ep.TopP)
	}
	if ep.MaxTokens < 0 {
		return fmt.Errorf("endpoint max_tokens %d: want ≥ 0", ep.MaxTokens)
	}
	if ep.Timeout < 0 {
		return fmt.Errorf("endpoint timeout %s: want ≥ 0", ep.Timeout)
	}
	if ep.MaxResponseBytes < 0 {
		return fmt.Errorf("endpoint max_response_bytes %d: want ≥ 0 (0 = %d)", ep.MaxResponseBytes, DefaultMaxResponseBytes)
	}
	return nil
}

// normalizeBaseURL checks that raw is an absolute http(s) URL and appends "/v1"
// when its path is empty.
func normalizeBaseURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errors.New("endpoint URL: empty (want e.g. http://127.0.0.1:8000/v1)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the URL; keep any user:password@ out of the message.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("endpoint URL %q: %w", userinfoRE.ReplaceAllString(raw, "${1}"), err)
	}
	shown := StripUserinfo(raw)
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("endpoint URL %q: scheme must be http or https", shown)
	}
	if u.Host == "" {
		return "", fmt.Errorf("endpoint URL %q: no host", shown)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1"
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// OpenAIModel is the go-openai adapter behind NewModel. It is safe for
// concurrent use by several rollouts.
type OpenAIModel struct {
	ep        Endpoint // BaseURL without userinfo
	client    *openai.Client
	transport *http.Transport
	root      string // the server root (BaseURL without "/v1"), where vLLM serves /tokenize
	auth      string // the Authorization value from the URL's userinfo ("" when none)
	// noTokenize is set once the server answered /tokenize with an error, so
	// later turns go straight to the estimate.
	noTokenize atomic.Bool
}

// NewModel returns a core.Model that calls the endpoint's /completions or
// /chat/completions. Errors: an invalid mode, URL, model name or sampling value.
// The returned model also implements io.Closer (it drops idle connections).
func NewModel(ep Endpoint) (core.Model, error) {
	return NewOpenAIModel(ep)
}

// NewOpenAIModel is NewModel with the concrete type.
func NewOpenAIModel(ep Endpoint) (*OpenAIModel, error) {
	if err := ep.Validate(); err != nil {
		return nil, err
	}
	norm, _ := normalizeBaseURL(ep.BaseURL)
	// A key in the URL (http://user:KEY@host/v1) travels as a Basic
	// Authorization header; the URL kept, sent and shown in errors has none.
	base, auth := splitUserinfo(norm)
	ep.BaseURL = base
	cfg := openai.DefaultConfig(ep.APIKey)
	cfg.BaseURL = base
	tr := newPoolTransport(ep.Concurrency)
	cfg.HTTPClient = &http.Client{Transport: &captureTransport{base: tr, limit: ep.MaxResponseBytes, auth: auth}}
	return &OpenAIModel{ep: ep, client: openai.NewClientWithConfig(cfg), transport: tr, auth: auth,
		root: strings.TrimSuffix(base, "/v1")}, nil
}

// newPoolTransport is http.DefaultTransport sized for concurrency requests in
// flight to one host: that many idle keep-alive connections per host (the
// default 2 makes most requests dial anew), and at least 100 in all.
func newPoolTransport(concurrency int) *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = max(concurrency, 2)
	tr.MaxIdleConns = max(tr.MaxIdleConns, concurrency)
	return tr
}

// Endpoint returns the endpoint the model was built from.
func (m *OpenAIModel) Endpoint() Endpoint { return m.ep }

// Close drops idle keep-alive connections. The model stays usable.
func (m *OpenAIModel) Close() error {
	m.transport.CloseIdleConnections()
	return nil
}

// Complete sends one turn. Errors carry the server's message and HTTP status
// (go-openai's *openai.APIError is wrapped, so errors.As finds it) or the
// transport failure; a timeout says so.
func (m *OpenAIModel) Complete(ctx context.Context, c core.Context, stops []string) (core.Completion, error) {
	if m.ep.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.ep.Timeout)
		defer cancel()
	}
	slot := &captureSlot{}
	session := SessionKey(ctx)
	if session != "" {
		slot.sessionHeader, slot.sessionKey = sessionHeaderName(m.ep.SessionHeader), session
	}
	user := ""
	if m.ep.SessionUser {
		user = session
	}
	if c := responseCacheFrom(ctx); c != nil {
		slot.cache, slot.cacheURL, slot.cacheModel = c, m.ep.BaseURL, m.ep.Model
	}
	ctx = context.WithValue(ctx, captureKey{}, slot)

	temp := float32(m.ep.Temperature)
	if temp <= 0 {
		temp = math.SmallestNonzeroFloat32 // go-openai omits a zero temperature
	}
	var (
		out core.Completion
		err error
	)
	system := m.ep.SystemPrompt
	if c.System != "" { // a memory policy's system prompt (core.Context.System)
		system = c.System
	}
	switch m.ep.Mode {
	case ModeCompletions:
		prompt := RenderQwenPrefix(system, c)
		out.Sent = prompt
		var resp openai.CompletionResponse
		resp, err = m.client.CreateCompletion(ctx, openai.CompletionRequest{
			Model:       m.ep.Model,
			Prompt:      prompt,
			MaxTokens:   m.ep.MaxTokens,
			Temperature: temp,
			TopP:        float32(m.ep.TopP),
			Stop:        stops,
			User:        user,
		})
		if err == nil {
			if len(resp.Choices) == 0 {
				return out, &CallError{Status: slot.status, Kind: KindEmptyChoices, Transient: true,
					Err: fmt.Errorf("%s/completions: reply has no choices", m.ep.BaseURL)}
			}
			out.Text = resp.Choices[0].Text
			out.FinishReason = resp.Choices[0].FinishReason
		}
	default:
		msgs := ChatMessages(system, c)
		out.Sent = RenderChatMessages(msgs)
		req := openai.ChatCompletionRequest{
			Model:       m.ep.Model,
			MaxTokens:   m.ep.MaxTokens,
			Temperature: temp,
			TopP:        float32(m.ep.TopP),
			Stop:        stops,
			User:        user,
		}
		for _, msg := range msgs {
			req.Messages = append(req.Messages, openai.ChatCompletionMessage{Role: msg.Role, Content: msg.Content})
		}
		var resp openai.ChatCompletionResponse
		resp, err = m.client.CreateChatCompletion(ctx, req)
		if err == nil {
			if len(resp.Choices) == 0 {
				return out, &CallError{Status: slot.status, Kind: KindEmptyChoices, Transient: true,
					Err: fmt.Errorf("%s/chat/completions: reply has no choices", m.ep.BaseURL)}
			}
			out.Text = resp.Choices[0].Message.Content
			out.FinishReason = string(resp.Choices[0].FinishReason)
		}
	}
	if err != nil {
		return out, m.callError(ctx, err, slot)
	}
	extra := decodeVLLMExtras(slot.body)
	out.StopReason = extra.stopReason
	out.Cached = slot.cached
	switch {
	case extra.usage != nil:
		out.Usage = core.Usage{PromptTokens: extra.usage.PromptTokens, CompletionTokens: extra.usage.CompletionTokens,
			Reported: true, Source: core.TokenSourceServerUsage}
	default:
		if u, ok := m.tokenizeUsage(ctx, c, out); ok {
			out.Usage = u
		} else {
			out.Usage = core.Usage{PromptTokens: core.EstimateTokens(out.Sent), CompletionTokens: core.EstimateTokens(out.Text),
				Source: core.TokenSourceEstimate}
		}
	}
	return out, nil
}

// tokenizeRequest is vLLM's POST /tokenize body: a text prompt or chat
// messages (rendered with the served chat template).
type tokenizeRequest struct {
	Model            string        `json:"model"`
	Prompt           string        `json:"prompt,omitempty"`
	Messages         []wireMessage `json:"messages,omitempty"`
	AddSpecialTokens *bool         `json:"add_special_tokens,omitempty"`
}

type wireMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// tokenizeUsage counts a reply's tokens with the served model's tokenizer
// when the reply had no usage: vLLM's POST {root}/tokenize of the request
// (the completions prompt, or the chat messages) and of the generated text
// (without special tokens). It reports false, and stops trying for this
// model, when the server has no working /tokenize (an HTTP error or a reply
// without "count"); a cancelled ctx reports false without giving up.
func (m *OpenAIModel) tokenizeUsage(ctx context.Context, c core.Context, out core.Completion) (core.Usage, bool) {
	if m.noTokenize.Load() {
		return core.Usage{}, false
	}
	req := tokenizeRequest{Model: m.ep.Model}
	if m.ep.Mode == ModeCompletions {
		req.Prompt = out.Sent
	} else {
		for _, msg := range ChatMessages(m.ep.SystemPrompt, c) {
			req.Messages = append(req.Messages, wireMessage(msg))
		}
	}
	prompt, err := m.tokenize(ctx, req)
	if err == nil {
		no := false
		var gen int
		if gen, err = m.tokenize(ctx, tokenizeRequest{Model: m.ep.Model, Prompt: out.Text, AddSpecialTokens: &no}); err == nil {
			return core.Usage{PromptTokens: prompt, CompletionTokens: gen, Source: core.TokenSourceServerTokenize}, true
		}
	}
	if ctx.Err() == nil {
		m.noTokenize.Store(true)
	}
	return core.Usage{}, false
}

// tokenize posts one /tokenize request and returns its "count". An empty
// text counts 0 without a request.
func (m *OpenAIModel) tokenize(ctx context.Context, req tokenizeRequest) (int, error) {
	if req.Prompt == "" && len(req.Messages) == 0 {
		return 0, nil
	}
	body, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, m.root+"/tokenize", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	hr.Header.Set("Content-Type", "application/json")
	if m.ep.APIKey != "" {
		hr.Header.Set("Authorization", "Bearer "+m.ep.APIKey)
	} else if m.auth != "" {
		hr.Header.Set("Authorization", m.auth)
	}
	resp, err := (&http.Client{Transport: m.transport}).Do(hr)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return 0, fmt.Errorf("POST %s/tokenize: HTTP %d", m.root, resp.StatusCode)
	}
	var wire struct {
		Count *int `json:"count"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, DefaultMaxResponseBytes)).Decode(&wire); err != nil {
		return 0, fmt.Errorf("POST %s/tokenize: %w", m.root, err)
	}
	if wire.Count == nil {
		return 0, fmt.Errorf("POST %s/tokenize: reply has no count", m.root)
	}
	return *wire.Count, nil
}

// callError turns a failed call into a *CallError with a bounded message: the
// server's message cut to maxSummary (never the whole error body) and the size
// of the body dropped unread, or the transport failure. Malformed JSON in a 2xx
// reply and a reply over MaxResponseBytes are transient.
func (m *OpenAIModel) callError(ctx context.Context, err error, slot *captureSlot) *CallError {
	ce := &CallError{Status: slot.status, RetryAfter: parseRetryAfter(slot.retryAfter, time.Now())}
	where := m.ep.Mode + " " + m.ep.BaseURL
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	var synErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.Is(err, context.DeadlineExceeded) && m.ep.Timeout > 0 && ctx.Err() != nil:
		ce.Timeout, ce.Kind = true, KindTimeout
		ce.Err = &summaryError{fmt.Sprintf("%s: request timed out after %s", where, m.ep.Timeout), err}
	case errors.Is(err, ErrResponseTooLarge):
		ce.Kind, ce.Transient = KindTooLarge, true
		ce.Err = &summaryError{fmt.Sprintf("%s: %s", where, tooLargeText(err)), err}
	case slot.status >= 200 && slot.status < 300 && (errors.As(err, &synErr) || errors.As(err, &typeErr) ||
		errors.Is(err, io.ErrUnexpectedEOF) && len(slot.body) > 0):
		ce.Kind, ce.Transient = KindMalformed, true
		ce.Err = &summaryError{fmt.Sprintf("%s: malformed JSON reply (%s): %s", where, byteSize(int64(len(slot.body))), boundText(err.Error(), 300)), err}
	case errors.As(err, &apiErr) || errors.As(err, &reqErr):
		if ce.Status == 0 {
			if apiErr != nil {
				ce.Status = apiErr.HTTPStatusCode
			} else {
				ce.Status = reqErr.HTTPStatusCode
			}
		}
		msg := serverMessage(slot.errBody)
		if apiErr != nil && apiErr.Message != "" {
			msg = apiErr.Message
		}
		text := fmt.Sprintf("%s: HTTP %d: %s", where, ce.Status, boundText(msg, maxSummary-200))
		if apiErr != nil && apiErr.Code != nil && fmt.Sprint(apiErr.Code) != "" {
			text += fmt.Sprintf(" (code %v)", apiErr.Code)
		}
		if slot.errDropped > 0 {
			more := ""
			if slot.errAtLeast {
				more = "more than "
			}
			text += fmt.Sprintf(" [error body cut at %s; %s%s dropped unread]", byteSize(maxErrorBody), more, byteSize(slot.errDropped))
		}
		ce.Err = &summaryError{text, err}
	default:
		ce.Err = &summaryError{boundText(fmt.Sprintf("%s: %v", where, err), maxSummary), err}
	}
	if ce.Kind == "" {
		ce.Kind = ErrorKind(ce)
	}
	return ce
}

// tooLargeText is the text of the error in err's chain that wraps
// ErrResponseTooLarge (without the request line net/http puts before it).
func tooLargeText(err error) string {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if errors.Unwrap(e) == ErrResponseTooLarge {
			return e.Error()
		}
	}
	return ErrResponseTooLarge.Error()
}

// RenderQwenPrefix builds the raw completions prompt MEM1 sends to its Qwen2.5
// checkpoint: a system turn, the task prompt as the user turn, and an open
// assistant turn continued by the kept exchanges (each response followed by its
// information block), concatenated without separators:
//
//	<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n{r0}{i0}{r1}{i1}…
//
// An empty system uses QwenDefaultSystem. With c.OneMessage (the "full"
// policy) the kept exchanges go into the user turn instead, after the prompt,
// and the assistant turn opens empty:
//
//	…<|im_start|>user\n{prompt}{r0}{i0}{r1}{i1}…<|im_end|>\n<|im_start|>assistant\n
//
// which is what Qwen2.5's chat template renders from the one user message of
// MEM1's full-history request (Mem1/inference/models.py, generate_response).
func RenderQwenPrefix(system string, c core.Context) string {
	if system == "" {
		system = QwenDefaultSystem
	}
	carried := c.Carried()
	const frame = "<|im_start|>system\n" + "<|im_end|>\n<|im_start|>user\n" + "<|im_end|>\n<|im_start|>assistant\n"
	var b strings.Builder
	b.Grow(len(frame) + len(system) + len(c.Prompt) + len(carried))
	b.WriteString("<|im_start|>system\n")
	b.WriteString(system)
	b.WriteString("<|im_end|>\n<|im_start|>user\n")
	b.WriteString(c.Prompt)
	if c.OneMessage {
		b.WriteString(carried)
		b.WriteString("<|im_end|>\n<|im_start|>assistant\n")
		return b.String()
	}
	b.WriteString("<|im_end|>\n<|im_start|>assistant\n")
	b.WriteString(carried)
	return b.String()
}

// Message is one chat message.
type Message struct {
	Role    string
	Content string
}

// ChatMessages lays a context out as chat messages: the system message (only
// when system is not empty), the task prompt as a user message, then for each
// kept exchange an assistant message (the response) and, when the turn searched,
// a user message (the information block). With c.OneMessage (the "full"
// policy) the prompt and every kept exchange are ONE user message,
// prompt + r0 + i0 + r1 + i1 + …, as MEM1's full-history pipeline sends them
// (Mem1/inference/data_pipelines.py cur_obs; models.py generate_response).
func ChatMessages(system string, c core.Context) []Message {
	var msgs []Message
	if system != "" {
		msgs = append(msgs, Message{Role: openai.ChatMessageRoleSystem, Content: system})
	}
	if c.OneMessage {
		return append(msgs, Message{Role: openai.ChatMessageRoleUser, Content: c.Prompt + c.Carried()})
	}
	msgs = append(msgs, Message{Role: openai.ChatMessageRoleUser, Content: c.Prompt})
	for _, ex := range c.History {
		msgs = append(msgs, Message{Role: openai.ChatMessageRoleAssistant, Content: ex.Response})
		if ex.Information != "" {
			msgs = append(msgs, Message{Role: openai.ChatMessageRoleUser, Content: ex.Information})
		}
	}
	return msgs
}

// RenderChatMessages renders messages readably for Completion.Sent: one
// "<|role|>\ncontent" block per message, blocks separated by a newline.
func RenderChatMessages(msgs []Message) string {
	var b strings.Builder
	for i, m := range msgs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("<|" + m.Role + "|>\n")
		b.WriteString(m.Content)
	}
	return b.String()
}

// captureKey marks a request context that wants its response body kept.
type captureKey struct{}

// captureSlot receives the raw body of a successful response, and the status
// and Retry-After header of any response.
type captureSlot struct {
	body       []byte
	status     int
	retryAfter string
	errBody    []byte // the kept prefix of an error reply's body
	errDropped int64  // bytes of it dropped unread
	errAtLeast bool   // errDropped is a lower bound

	sessionHeader, sessionKey string // a header to set on the request ("" = none)

	// the response cache (cache.go): nil = none; cached is set on a hit
	cache                          ResponseCache
	cacheURL, cacheModel, cacheKey string
	cached                         bool
}

// dropStreamFalse removes the `"stream":false` member go-openai always encodes
// from a JSON request body, so requests carry only the fields MEM1's reference
// sends (false is the API's default, so the server sees the same request). A
// raw `"stream":false` can only be a member: quotes inside JSON strings are
// escaped.
func dropStreamFalse(req *http.Request) error {
	if req.Body == nil || req.Method != http.MethodPost {
		return nil
	}
	body, err := readSized(req.Body, req.ContentLength)
	_ = req.Body.Close()
	if err != nil {
		return fmt.Errorf("reading request: %w", err)
	}
	for _, member := range []string{`,"stream":false`, `"stream":false,`} {
		if i := bytes.Index(body, []byte(member)); i >= 0 {
			body = body[:i+copy(body[i:], body[i+len(member):])]
			break
		}
	}
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return nil
}

type vllmExtras struct {
	stopReason string
	usage      *wireUsage
}

type wireUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// decodeVLLMExtras reads choices[0].stop_reason (a string, null, or a token id
// number, which gives "") and usage from a reply body; anything undecodable
// gives zero values.
func decodeVLLMExtras(body []byte) vllmExtras {
	var wire struct {
		Choices []struct {
			StopReason json.RawMessage `json:"stop_reason"`
		} `json:"choices"`
		Usage *wireUsage `json:"usage"`
	}
	if len(body) == 0 || json.Unmarshal(body, &wire) != nil {
		return vllmExtras{}
	}
	var ex vllmExtras
	if len(wire.Choices) > 0 && len(wire.Choices[0].StopReason) > 0 {
		var s string
		if json.Unmarshal(wire.Choices[0].StopReason, &s) == nil {
			ex.stopReason = s
		}
	}
	if wire.Usage != nil && (wire.Usage.PromptTokens > 0 || wire.Usage.CompletionTokens > 0) {
		ex.usage = wire.Usage
	}
	return ex
}
