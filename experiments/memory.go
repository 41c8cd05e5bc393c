package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// MemoryConfig is the [memory] table of a run config: where a memory policy's
// sub-calls go and the policies' knobs (core.MemoryOptions). Every key is
// optional; a config without the table keeps its hash.
type MemoryConfig struct {
	// URL, Model, Mode and APIKeyEnv name the endpoint of the generation
	// sub-calls (summariser, extractor, updater); URL "" = the agent's own
	// endpoint (with its rate limit and breaker). Mode "" = chat.
	URL       string `toml:"url,omitempty" json:"url,omitempty"`
	Model     string `toml:"model,omitempty" json:"model,omitempty"`
	Mode      string `toml:"mode,omitempty" json:"mode,omitempty"`
	APIKeyEnv string `toml:"api_key_env,omitempty" json:"api_key_env,omitempty"`
	// RequestsPerSecond caps the memory endpoint when URL is set (0 = no cap).
	RequestsPerSecond float64 `toml:"requests_per_second,omitempty" json:"requests_per_second,omitempty"`
	// EmbeddingsURL, EmbeddingsModel and EmbeddingsAPIKeyEnv name the
	// POST /v1/embeddings endpoint; "" = the memory endpoint when URL is set,
	// else the agent's own (its URL and model name).
	EmbeddingsURL       string `toml:"embeddings_url,omitempty" json:"embeddings_url,omitempty"`
	EmbeddingsModel     string `toml:"embeddings_model,omitempty" json:"embeddings_model,omitempty"`
	EmbeddingsAPIKeyEnv string `toml:"embeddings_api_key_env,omitempty" json:"embeddings_api_key_env,omitempty"`

	// Knobs (core.MemoryOptions): K memories in context (amem, mem0; 0 = 3),
	// Evolve (amem's memory evolution; unset = on), Similar stored facts per
	// mem0 update (0 = 5), SummaryTokens (summary:K, resum budget; 0 = fold at
	// once), SummaryEvery (fold every M turns instead; 0 = off), MemoryTokens
	// (memagent's bound; 0 = 1024).
	K             int   `toml:"k,omitempty" json:"k,omitempty"`
	Evolve        *bool `toml:"evolve,omitempty" json:"evolve,omitempty"`
	Similar       int   `toml:"similar,omitempty" json:"similar,omitempty"`
	SummaryTokens int   `toml:"summary_tokens,omitempty" json:"summary_tokens,omitempty"`
	SummaryEvery  int   `toml:"summary_every,omitempty" json:"summary_every,omitempty"`
	MemoryTokens  int   `toml:"memory_tokens,omitempty" json:"memory_tokens,omitempty"`
}

// Options is the knobs as core.MemoryOptions (a nil config: the defaults).
func (m *MemoryConfig) Options() core.MemoryOptions {
	if m == nil {
		return core.MemoryOptions{}
	}
	return core.MemoryOptions{K: m.K, NoEvolve: m.Evolve != nil && !*m.Evolve, Similar: m.Similar,
		SummaryTokens: m.SummaryTokens, SummaryEvery: m.SummaryEvery, MemoryTokens: m.MemoryTokens}
}

// Knobs is m with its knobs only (no endpoint keys); nil for nil m.
func (m *MemoryConfig) Knobs() *MemoryConfig {
	if m == nil {
		return nil
	}
	return &MemoryConfig{K: m.K, Evolve: m.Evolve, Similar: m.Similar, SummaryTokens: m.SummaryTokens,
		SummaryEvery: m.SummaryEvery, MemoryTokens: m.MemoryTokens}
}

// HasEndpoint reports whether m names anything of a sub-call endpoint (its
// URL, model, mode, key, rate, or the embeddings endpoint's), not only knobs.
func (m *MemoryConfig) HasEndpoint() bool {
	return m != nil && (m.URL != "" || m.Model != "" || m.Mode != "" || m.APIKeyEnv != "" || m.RequestsPerSecond != 0 ||
		m.EmbeddingsURL != "" || m.EmbeddingsModel != "" || m.EmbeddingsAPIKeyEnv != "")
}

func (m *MemoryConfig) validate() []error {
	if m == nil {
		return nil
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("memory.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if m.URL != "" {
		if _, err := normalizeBaseURL(m.URL); err != nil {
			bad("url", "%v", err)
		}
		if strings.TrimSpace(m.Model) == "" {
			bad("model", "empty: the memory endpoint needs the model name it serves")
		}
	}
	if m.Mode != "" && m.Mode != ModeCompletions && m.Mode != ModeChat {
		bad("mode", "%q: want %q or %q", m.Mode, ModeCompletions, ModeChat)
	}
	for key, v := range map[string]string{"api_key_env": m.APIKeyEnv, "embeddings_api_key_env": m.EmbeddingsAPIKeyEnv} {
		if v != "" && !envNameRE.MatchString(v) {
			bad(key, "%q is not an environment variable name (the name, never the key)", v)
		}
	}
	if m.EmbeddingsURL != "" {
		if _, err := normalizeBaseURL(m.EmbeddingsURL); err != nil {
			bad("embeddings_url", "%v", err)
		}
	}
	for key, v := range map[string]int{"k": m.K, "similar": m.Similar, "summary_tokens": m.SummaryTokens, "summary_every": m.SummaryEvery, "memory_tokens": m.MemoryTokens} {
		if v < 0 {
			bad(key, "%d: want ≥ 0 (0 = the default)", v)
		}
	}
	if math.IsNaN(m.RequestsPerSecond) || m.RequestsPerSecond < 0 {
		bad("requests_per_second", "%g: want ≥ 0 (0 = no cap)", m.RequestsPerSecond)
	}
	return errs
}

// Embedder embeds texts (POST /v1/embeddings): one vector per text, in order.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float64, core.Usage, error)
}

// Embed calls the endpoint's /embeddings with texts as the input array and
// the endpoint's model. Errors are *CallError like Complete's (status, server
// message), or a reply whose vectors do not match the inputs.
func (m *OpenAIModel) Embed(ctx context.Context, texts []string) ([][]float64, core.Usage, error) {
	if m.ep.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.ep.Timeout)
		defer cancel()
	}
	slot := &captureSlot{}
	ctx = context.WithValue(ctx, captureKey{}, slot)
	resp, err := m.client.CreateEmbeddings(ctx, openai.EmbeddingRequestStrings{Input: texts, Model: openai.EmbeddingModel(m.ep.Model)})
	if err != nil {
		ce := &CallError{Status: slot.status, RetryAfter: parseRetryAfter(slot.retryAfter, time.Now())}
		var apiErr *openai.APIError
		switch {
		case errors.Is(err, context.DeadlineExceeded) && m.ep.Timeout > 0 && ctx.Err() != nil:
			ce.Timeout = true
			ce.Err = fmt.Errorf("embeddings %s: request timed out after %s: %w", m.ep.BaseURL, m.ep.Timeout, err)
		default:
			ce.Err = fmt.Errorf("embeddings %s: %w", m.ep.BaseURL, err)
		}
		if ce.Status == 0 && errors.As(err, &apiErr) {
			ce.Status = apiErr.HTTPStatusCode
		}
		return nil, core.Usage{}, ce
	}
	if len(resp.Data) != len(texts) {
		return nil, core.Usage{}, fmt.Errorf("embeddings %s: %d vectors for %d inputs", m.ep.BaseURL, len(resp.Data), len(texts))
	}
	out := make([][]float64, len(texts))
	for _, d := range resp.Data {
		if d.Index < 0 || d.Index >= len(texts) || out[d.Index] != nil {
			return nil, core.Usage{}, fmt.Errorf("embeddings %s: bad or repeated index %d", m.ep.BaseURL, d.Index)
		}
		v := make([]float64, len(d.Embedding))
		for i, x := range d.Embedding {
			v[i] = float64(x)
		}
		out[d.Index] = v
	}
	u := core.Usage{PromptTokens: resp.Usage.PromptTokens, Reported: resp.Usage.PromptTokens > 0}
	if !u.Reported {
		for _, t := range texts {
			u.PromptTokens += core.EstimateTokens(t)
		}
	}
	return out, u, nil
}

// SubCallStore is what sub-calls need from the store (*storage.Store has it).
type SubCallStore interface {
	AppendSubCall(ctx context.Context, rolloutID int64, c core.SubCall) error
	FlagSubCall(ctx context.Context, rolloutID int64, turn, seq int, msg string) error
	SubCalls(ctx context.Context, rolloutID int64) ([]core.SubCall, error)
	DropSubCalls(ctx context.Context, rolloutID int64, turn, seq int) error
}

var _ SubCallStore = (*storage.Store)(nil)

// memoryEndpoints are a run's sub-call endpoints.
type memoryEndpoints struct {
	gen      *endpointState            // nil: the rollout's own endpoint
	emb      *embedEndpoint            // nil: per agent endpoint, in byAgent
	byAgent  map[string]*embedEndpoint // agent endpoint name → its embedder
	closeAll func()
}

type embedEndpoint struct {
	name  string
	state *endpointState // rate limit and breaker
	model Embedder
}

// memoryEndpoints builds the sub-call endpoints of cfg (none when no policy
// of cfg keeps memory by sub-calls).
func (r *Runner) memoryEndpoints(cfg RunConfig, eps []*endpointState) (*memoryEndpoints, error) {
	me := &memoryEndpoints{byAgent: map[string]*embedEndpoint{}, closeAll: func() {}}
	needed := false
	for _, p := range cfg.PolicyList() {
		pol, err := core.PolicyWith(p, cfg.Memory.Options())
		if err != nil {
			return nil, err
		}
		if _, ok := pol.(core.MemoryPolicy); ok {
			needed = true
		}
	}
	if !needed {
		return me, nil
	}
	var closers []io.Closer
	me.closeAll = func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}
	mc := cfg.Memory
	if mc == nil {
		mc = &MemoryConfig{}
	}
	rp := cfg.retryPolicy()
	newEmbedder := func(name, url, model, keyEnv string, share *endpointState) (*embedEndpoint, error) {
		key, _ := ResolveKey(keyEnv, "")
		m, err := NewOpenAIModel(Endpoint{BaseURL: url, Model: model, Mode: ModeChat, APIKey: key,
			Timeout: time.Duration(cfg.TimeoutSeconds * float64(time.Second))})
		if err != nil {
			return nil, fmt.Errorf("runner: embeddings endpoint %s: %w", url, err)
		}
		closers = append(closers, m)
		st := share
		if st == nil {
			st = newEndpointState(EndpointProfile{Name: name, URL: url, Model: model, Concurrency: 1, RequestsPerSecond: mc.RequestsPerSecond}, nil, rp)
		}
		return &embedEndpoint{name: name, state: st, model: m}, nil
	}
	if mc.URL != "" {
		mode := mc.Mode
		if mode == "" {
			mode = ModeChat
		}
		prof := EndpointProfile{Name: "memory", URL: mc.URL, Model: mc.Model, Mode: mode, APIKeyEnv: mc.APIKeyEnv,
			TimeoutSeconds: cfg.TimeoutSeconds, Concurrency: 1, RequestsPerSecond: mc.RequestsPerSecond}
		var m core.Model
		var err error
		if r.NewModel != nil {
			m, err = r.NewModel(cfg.ForEndpoint(prof))
		} else {
			m, err = NewModel(cfg.EndpointFor(prof))
		}
		if err != nil {
			me.closeAll()
			return nil, fmt.Errorf("runner: memory endpoint %s: %w", mc.URL, err)
		}
		if c, ok := m.(io.Closer); ok {
			closers = append(closers, c)
		}
		me.gen = newEndpointState(prof, m, rp)
	}
	switch {
	case mc.EmbeddingsURL != "":
		model := mc.EmbeddingsModel
		if model == "" {
			model = mc.Model
		}
		e, err := newEmbedder("embeddings", mc.EmbeddingsURL, model, mc.EmbeddingsAPIKeyEnv, nil)
		if err != nil {
			me.closeAll()
			return nil, err
		}
		me.emb = e
	case me.gen != nil:
		model := mc.EmbeddingsModel
		if model == "" {
			model = mc.Model
		}
		e, err := newEmbedder("memory", mc.URL, model, mc.APIKeyEnv, me.gen)
		if err != nil {
			me.closeAll()
			return nil, err
		}
		me.emb = e
	default:
		for _, ep := range eps {
			model := mc.EmbeddingsModel
			if model == "" {
				model = ep.profile.Model
			}
			e, err := newEmbedder(ep.profile.Name, ep.profile.URL, model, ep.profile.APIKeyEnv, ep)
			if err != nil {
				me.closeAll()
				return nil, err
			}
			me.byAgent[ep.profile.Name] = e
		}
	}
	return me, nil
}

// subCaller is the core.SubCaller of one rollout: generation sub-calls go to
// the memory endpoint (or the rollout's own), embeddings to the embeddings
// endpoint, each through the pause gate, the endpoint's breaker and rate
// limit, with the actor's retries (failed attempts are stored like the
// actor's); each completed call is committed at once. Calls committed for a
// turn that was never stored (a crash or cancel in the middle of the turn)
// are replayed from the store, not sent again, when the resumed turn makes
// the same call (same turn, seq, role and request).
type subCaller struct {
	store     RunStore
	calls     SubCallStore
	rolloutID int64
	gen       *endpointState
	emb       *embedEndpoint
	gate      *gate
	rp        retryPolicy
	tr        *tracker
	red       *redactor // keeps the run's credentials out of what is stored
	journal   *SubCallJournal
}

// SubCallJournal is a rollout's committed sub-calls of the turns it has not
// stored yet (a crash or cancel in the middle of a turn), for a resumed turn
// to take back instead of sending them again. Every sub-caller of a memory
// policy (the Runner's, the WebShop runner's) replays through one.
type SubCallJournal struct {
	calls     SubCallStore
	rolloutID int64
	red       *Redactor // the committed requests are redacted: compare like with like
	byKey     map[[2]int]core.SubCall
}

// NewSubCallJournal loads rollout rolloutID's committed sub-calls of turns ≥
// next (the index of the turn the rollout continues at); red is the
// redactor their requests were stored through (nil: none). Errors: the
// store's.
func NewSubCallJournal(ctx context.Context, calls SubCallStore, rolloutID int64, next int, red *Redactor) (*SubCallJournal, error) {
	j := &SubCallJournal{calls: calls, rolloutID: rolloutID, red: red, byKey: map[[2]int]core.SubCall{}}
	stored, err := calls.SubCalls(ctx, rolloutID)
	if err != nil {
		return nil, err
	}
	for _, c := range stored {
		if c.Turn >= next {
			j.byKey[[2]int{c.Turn, c.Seq}] = c
		}
	}
	return j, nil
}

// Replay returns the committed call matching call's (turn, seq), its role
// and request, marked Replayed, and true. When the committed call differs the
// turn went another way: the committed calls of the turn from this seq on
// are dropped, from the journal and the store, and call comes back with
// false. Errors: the store's.
func (j *SubCallJournal) Replay(ctx context.Context, call core.SubCall, request string) (core.SubCall, bool, error) {
	k := [2]int{call.Turn, call.Seq}
	c, ok := j.byKey[k]
	if !ok {
		return call, false, nil
	}
	delete(j.byKey, k)
	if c.Role == call.Role && c.Request == j.red.Values(request) {
		c.Replayed = true
		return c, true, nil
	}
	for key := range j.byKey {
		if key[0] == call.Turn && key[1] > call.Seq {
			delete(j.byKey, key)
		}
	}
	return call, false, j.calls.DropSubCalls(context.WithoutCancel(ctx), j.rolloutID, call.Turn, call.Seq)
}

// EmbedRequest is an embeddings sub-call's stored request: the texts as a
// JSON array.
func EmbedRequest(texts []string) (string, error) {
	b, err := json.Marshal(texts)
	return string(b), err
}

// ReplayEmbed is Replay for an embeddings call of texts: on a match it also
// decodes the committed vectors (its Response). It returns the request
// (EmbedRequest) to store when the call must be sent.
func (j *SubCallJournal) ReplayEmbed(ctx context.Context, call core.SubCall, texts []string) (request string, got core.SubCall, vecs [][]float64, ok bool, err error) {
	if request, err = EmbedRequest(texts); err != nil {
		return "", call, nil, false, err
	}
	if got, ok, err = j.Replay(ctx, call, request); err != nil || !ok {
		return request, got, nil, false, err
	}
	if err := json.Unmarshal([]byte(got.Response), &vecs); err != nil {
		return request, call, nil, false, fmt.Errorf("stored embeddings of sub-call %d/%d: %w", got.Turn, got.Seq, err)
	}
	return request, got, vecs, true, nil
}

// newSubCaller builds rollout j's sub-caller on agent endpoint ep; next is the
// index of the turn the rollout continues at: committed sub-calls of turns ≥
// next are kept for replay.
func (r *Runner) newSubCaller(ctx context.Context, rolloutID int64, next int, ep *endpointState, me *memoryEndpoints, g *gate, rp retryPolicy, tr *tracker, red *redactor) (*subCaller, error) {
	cs, ok := r.Store.(SubCallStore)
	if !ok {
		return nil, errors.New("runner: the store cannot keep sub-calls (memory policies need it)")
	}
	j, err := NewSubCallJournal(ctx, cs, rolloutID, next, &Redactor{r: red})
	if err != nil {
		return nil, err
	}
	sc := &subCaller{store: r.Store, calls: cs, rolloutID: rolloutID, gen: me.gen, emb: me.emb, gate: g, rp: rp, tr: tr, red: red, journal: j}
	if sc.gen == nil {
		sc.gen = ep
	}
	if sc.emb == nil {
		sc.emb = me.byAgent[ep.profile.Name]
	}
	return sc, nil
}

// send runs fn on st with the gate, breaker, rate limit and retries
// (retriedCall.do); failed attempts are stored as "ENDPOINT (ROLE)".
func (s *subCaller) send(ctx context.Context, st *endpointState, call core.SubCall, fn func(context.Context) error) error {
	return retriedCall{gate: s.gate, ep: st, rp: s.rp, store: s.store, tr: s.tr, red: s.red, rolloutID: s.rolloutID,
		turn: call.Turn, endpoint: st.profile.Name + " (" + call.Role + ")"}.do(ctx, fn)
}

func (s *subCaller) commit(ctx context.Context, call core.SubCall) error {
	call.Request, call.Response, call.Error = s.red.values(call.Request), s.red.values(call.Response), s.red.text(call.Error)
	if err := s.calls.AppendSubCall(context.WithoutCancel(ctx), s.rolloutID, call); err != nil {
		return fmt.Errorf("storing sub-call: %w", err)
	}
	return nil
}

// Generate implements core.SubCaller.
func (s *subCaller) Generate(ctx context.Context, call core.SubCall, prompt string) (core.SubCall, error) {
	if j, ok, err := s.journal.Replay(ctx, call, prompt); err != nil || ok {
		return j, err
	}
	call.Request, call.Endpoint = prompt, s.gen.profile.Name
	start, held := time.Now(), heldSoFar(ctx)
	err := s.send(ctx, s.gen, call, func(ctx context.Context) error {
		comp, err := s.gen.model.Complete(ctx, core.Context{Prompt: prompt}, nil)
		if err != nil {
			return err
		}
		call.Response, call.Usage = comp.Text, comp.Usage
		if !comp.Usage.Reported {
			call.Usage = core.Usage{PromptTokens: core.EstimateTokens(prompt), CompletionTokens: core.EstimateTokens(comp.Text)}
		}
		return nil
	})
	if err != nil {
		return call, err
	}
	call.Latency = time.Since(start) - (heldSoFar(ctx) - held) // a pause is no part of it
	return call, s.commit(ctx, call)
}

// Embed implements core.SubCaller.
func (s *subCaller) Embed(ctx context.Context, call core.SubCall, texts []string) (core.SubCall, [][]float64, error) {
	if s.emb == nil {
		return call, nil, errors.New("no embeddings endpoint")
	}
	req, j, stored, ok, err := s.journal.ReplayEmbed(ctx, call, texts)
	if err != nil || ok {
		return j, stored, err
	}
	call.Request, call.Endpoint = req, s.emb.name
	var vecs [][]float64
	start, held := time.Now(), heldSoFar(ctx)
	err = s.send(ctx, s.emb.state, call, func(ctx context.Context) error {
		v, u, err := s.emb.model.Embed(ctx, texts)
		if err != nil {
			return err
		}
		vecs, call.Usage = v, u
		return nil
	})
	if err != nil {
		return call, nil, err
	}
	call.Latency = time.Since(start) - (heldSoFar(ctx) - held) // a pause is no part of it
	resp, err := json.Marshal(vecs)
	if err != nil {
		return call, nil, err
	}
	call.Response = string(resp)
	return call, vecs, s.commit(ctx, call)
}

// Flag implements core.SubCaller.
func (s *subCaller) Flag(ctx context.Context, call core.SubCall, msg string) error {
	return s.calls.FlagSubCall(context.WithoutCancel(ctx), s.rolloutID, call.Turn, call.Seq, s.red.text(msg))
}
