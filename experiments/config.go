// Package experiments turns a run configuration into tasks, runs them through the
// MEM1 turn loop against an OpenAI-compatible endpoint and a retrieval environment,
// stores every turn as it completes, and aggregates the results.
package experiments

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/mem1lab/mem1lab/core"
)

// RunConfig is one experiment's settings. The same keys are CLI flags
// (`mem1lab run --objectives 4`), TOML keys (`objectives = 4`) and GUI form fields.
type RunConfig struct {
	Name string `toml:"name" json:"name"`

	// Endpoint.
	Endpoint       string  `toml:"endpoint" json:"endpoint"`               // base URL, e.g. http://127.0.0.1:8000/v1
	Model          string  `toml:"model" json:"model"`                     // model name sent in requests
	Mode           string  `toml:"mode" json:"mode"`                       // "completions" (raw Qwen prefix) or "chat"
	APIKeyEnv      string  `toml:"api_key_env" json:"api_key_env"`         // name of the env var holding the key; the key is never stored
	Temperature    float64 `toml:"temperature" json:"temperature"`         // 0.01 in MEM1
	TopP           float64 `toml:"top_p" json:"top_p"`                     // 0.95 in MEM1; 0 = not sent (MEM1's full-history client sends none)
	MaxTokens      int     `toml:"max_tokens" json:"max_tokens"`           // per turn, 1024 in MEM1; 0 = not sent
	TimeoutSeconds float64 `toml:"timeout_seconds" json:"timeout_seconds"` // per request

	// Tasks.
	Dataset    string `toml:"dataset" json:"dataset"`       // hotpotqa | nq | musique
	Objectives int    `toml:"objectives" json:"objectives"` // N questions per task
	Tasks      int    `toml:"tasks" json:"tasks"`           // tasks to run (0 = all the composition yields)
	Compose    string `toml:"compose" json:"compose"`       // "consecutive" (MEM1's rule), "random" or "mixed" (not MEM1's)
	Seed       int64  `toml:"seed" json:"seed"`

	// Agent.
	Policy   string `toml:"policy" json:"policy"`       // mem1 | full | full:messages | window:K
	MaxTurns int    `toml:"max_turns" json:"max_turns"` // 0 = 6 up to 4 objectives, 20 beyond
	TopK     int    `toml:"top_k" json:"top_k"`         // passages per search, 3 in MEM1
	Template string `toml:"template" json:"template"`   // prompt template file; "" = built-in
	Scheme   string `toml:"scheme" json:"scheme"`       // mem1 | squad

	// Execution.
	Concurrency int `toml:"concurrency" json:"concurrency"` // rollouts in flight

	// Grid and run control. Every key below is left out of the canonical form
	// while unset, so configs written before it keep their hash.

	// ObjectivesGrid, when set, replaces objectives: one setting per value
	// (e.g. [1, 2, 4, 8, 16]), each with its own tasks.
	ObjectivesGrid []int `toml:"objectives_grid,omitempty" json:"objectives_grid,omitempty"`
	// Policies, when set, replaces policy: one setting per memory policy.
	Policies []string `toml:"policies,omitempty" json:"policies,omitempty"`
	// Datasets are the sources of compose = "mixed" (e.g. ["hotpotqa", "nq"]):
	// each task's objectives come from them in turn (ComposeMixed). Set only
	// with compose = "mixed"; dataset is then not used to compose.
	Datasets []string `toml:"datasets,omitempty" json:"datasets,omitempty"`
	// Sample, when > 0, keeps a random sample of that many composed tasks as
	// MEM1's rollout script draws it (SampleTasks: pandas df.sample with
	// random_state = seed); the reference draws 1000.
	Sample int `toml:"sample,omitzero" json:"sample,omitempty"`
	// TemplateName picks a prompt template kept in the store (imported once
	// with `mem1lab template import`) instead of a file; not with template.
	TemplateName string `toml:"template_name,omitempty" json:"template_name,omitempty"`
	// TemplateSHA256 records the content hash of the named template
	// (storage.TemplateHash), so the config hash changes with its text. Filled
	// in by ResolveTemplate; a config that names a hash runs only that text.
	TemplateSHA256 string `toml:"template_sha256,omitempty" json:"template_sha256,omitempty"`
	// TemplateText is the named template's text, kept in the stored config so
	// a resumed run needs nothing else (not a TOML key; the hash above stands
	// for it in CanonicalTOML).
	TemplateText string `toml:"-" json:"template_text,omitempty"`
	// RequestsPerSecond caps requests to the endpoint (0 = no cap).
	RequestsPerSecond float64 `toml:"requests_per_second,omitempty" json:"requests_per_second,omitempty"`
	// Retries is how many times a failed model call is retried (0 = 4, negative = none).
	Retries int `toml:"retries,omitempty" json:"retries,omitempty"`
	// RetryBaseSeconds is the first backoff (0 = 0.25 s); each retry doubles it, up to 30 s, with jitter.
	RetryBaseSeconds float64 `toml:"retry_base_seconds,omitempty" json:"retry_base_seconds,omitempty"`
	// BreakerFailures failed calls in a row pause an endpoint (0 = 8).
	BreakerFailures int `toml:"breaker_failures,omitempty" json:"breaker_failures,omitempty"`
	// BreakerCooldownSeconds is how long the breaker pauses it (0 = 5 s).
	BreakerCooldownSeconds float64 `toml:"breaker_cooldown_seconds,omitempty" json:"breaker_cooldown_seconds,omitempty"`
	// BreakerPatience is how many breaker pauses in a row, with no call
	// succeeding, declare an endpoint down (0 = 10, negative = never): the
	// experiment then stops as failed with the reason instead of retrying
	// every rollout.
	BreakerPatience int `toml:"breaker_patience,omitempty,omitzero" json:"breaker_patience,omitempty"`
	// MaxResponseBytes bounds a reply's body (0 = 8 MiB): a longer one is a
	// "response too large" failure, retried like a server error.
	MaxResponseBytes int64 `toml:"max_response_bytes,omitempty,omitzero" json:"max_response_bytes,omitempty"`
	// APIKeyKeyring names the OS keyring entry holding the endpoint's key, used
	// when api_key_env is unset or empty.
	APIKeyKeyring string `toml:"api_key_keyring,omitempty" json:"api_key_keyring,omitempty"`
	// Tags, when set, renames the protocol's tags (default think, search,
	// information, answer).
	Tags *TagNames `toml:"tags,omitempty" json:"tags,omitempty"`
	// Endpoints, when set, replaces endpoint, model, mode, api_key_env,
	// timeout_seconds, concurrency and requests_per_second: endpoints serving the
	// same model share that model's rollouts; each distinct model is a setting.
	Endpoints []EndpointProfile `toml:"endpoints,omitempty" json:"endpoints,omitempty"`
	// Retriever, when set, picks the search environment (RetrieverConfig): the
	// store's BM25 index (the default) or a MEM1 /retrieve server.
	Retriever *RetrieverConfig `toml:"retriever,omitempty" json:"retriever,omitempty"`
	// Memory, when set, is the memory policies' endpoints and knobs
	// (MemoryConfig, experiments/memory.go).
	Memory *MemoryConfig `toml:"memory,omitempty" json:"memory,omitempty"`
	// SessionHeader and SessionUser are the top-level endpoint's
	// EndpointProfile keys of the same names.
	SessionHeader string `toml:"session_header,omitempty" json:"session_header,omitempty"`
	SessionUser   bool   `toml:"session_user,omitempty" json:"session_user,omitempty"`
	// Cache answers a model call from the store's response cache when the
	// same endpoint and model were sent the very same request before (see
	// ResponseCache); a hit is recorded as a cached turn with latency 0.
	Cache bool `toml:"cache,omitempty" json:"cache,omitempty"`
	// Family is the task family (core.FamilyQA, the default, or
	// core.FamilyWebShop); "" means qa. A qa config hashes the same with
	// family = "qa", with "" and as written before the key existed.
	Family string `toml:"family,omitempty" json:"family,omitempty"`
	// WebShop is the webshop family's settings (WebShopSettings); set only
	// with family = "webshop".
	WebShop *WebShopSettings `toml:"webshop,omitempty" json:"webshop,omitempty"`
}

// WebShopSettings are a WebShop run's environment and goals (family =
// "webshop"). The endpoint keys, policy (any but closed-book) and max_turns (0 =
// core.DefaultWebShopMaxTurns, MEM1's 10) are the run's top-level keys;
// endpoint = "scripted" plays the built-in scripted shopper instead of a
// model.
type WebShopSettings struct {
	// Env is the WebShop server's root URL (AgentGym's agentenv-webshop), or
	// "demo": mem1lab's fake WebShop started in-process, whose reward has no
	// product-type term. "" = demo.
	Env string `toml:"env" json:"env"`
	// Goals are the goal indices, e.g. "0-9" or "3,7,12" (ParseGoalList);
	// indices below 500 are WebShop's test split. "" = "0-9".
	Goals string `toml:"goals" json:"goals"`
	// Retries of a failed WebShop request (0 = 2, negative = none).
	Retries int `toml:"retries,omitempty" json:"retries,omitempty"`
	// TimeoutSeconds per WebShop request (0 = 30 s).
	TimeoutSeconds float64 `toml:"timeout_seconds,omitempty" json:"timeout_seconds,omitempty"`
}

// WebShop family defaults.
const (
	// WebShopDemo as the environment URL starts the fake WebShop in-process.
	WebShopDemo = "demo"
	// WebShopScripted as the endpoint plays the scripted shopper.
	WebShopScripted = "scripted"
	// DefaultWebShopGoals are the goals run when none are given.
	DefaultWebShopGoals = "0-9"
)

// FamilyName is the config's task family: Family, or core.FamilyQA when empty.
func (c RunConfig) FamilyName() string {
	if c.Family == "" {
		return core.FamilyQA
	}
	return c.Family
}

// IsWebShop reports whether the config runs the webshop family.
func (c RunConfig) IsWebShop() bool { return c.Family == core.FamilyWebShop }

// WebShopResolved is the config's WebShop settings with their defaults filled
// in (env demo, goals 0-9, 2 retries, 30 s per request).
func (c RunConfig) WebShopResolved() WebShopSettings {
	var w WebShopSettings
	if c.WebShop != nil {
		w = *c.WebShop
	}
	if strings.TrimSpace(w.Env) == "" {
		w.Env = WebShopDemo
	}
	if strings.TrimSpace(w.Goals) == "" {
		w.Goals = DefaultWebShopGoals
	}
	switch {
	case w.Retries == 0:
		w.Retries = 2
	case w.Retries < 0:
		w.Retries = 0
	}
	if w.TimeoutSeconds == 0 {
		w.TimeoutSeconds = 30
	}
	return w
}

// ParseGoalList reads WebShop goal indices: "0-9", "3,7,12" or a mix
// ("0-4,10"). Errors: anything else, a reversed or huge range, none at all.
func ParseGoalList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		var a, b int
		if n, _ := fmt.Sscanf(part, "%d-%d", &a, &b); n == 2 && !strings.HasPrefix(part, "-") && fmt.Sprintf("%d-%d", a, b) == part {
			if b < a || b-a > 10000 {
				return nil, fmt.Errorf("goals %q: bad range", part)
			}
			for g := a; g <= b; g++ {
				out = append(out, g)
			}
			continue
		}
		if _, err := fmt.Sscanf(part, "%d", &a); err != nil || fmt.Sprint(a) != part || a < 0 {
			return nil, fmt.Errorf("goals %q: want N, N-M or a comma-separated list", part)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, errors.New("goals: none given")
	}
	return out, nil
}

// validateRequest reports, through bad, the request settings both families
// share: the key's variable name, temperature, top_p, max_tokens, timeout.
func (c RunConfig) validateRequest(bad func(key, format string, args ...any)) {
	if c.APIKeyEnv != "" && !envNameRE.MatchString(c.APIKeyEnv) {
		bad("api_key_env", "%q is not an environment variable name (the name, never the key)", c.APIKeyEnv)
	}
	if math.IsNaN(c.Temperature) || c.Temperature < 0 || c.Temperature > 2 {
		bad("temperature", "%g: want 0..2", c.Temperature)
	}
	if math.IsNaN(c.TopP) || c.TopP < 0 || c.TopP > 1 {
		bad("top_p", "%g: want a value in (0, 1], or 0 to send none (the server's default)", c.TopP)
	}
	if c.MaxTokens < 0 {
		bad("max_tokens", "%d: want ≥ 1, or 0 to send none (the server's default)", c.MaxTokens)
	}
	if math.IsNaN(c.TimeoutSeconds) || c.TimeoutSeconds <= 0 {
		bad("timeout_seconds", "%g: want > 0", c.TimeoutSeconds)
	}
}

// validateWebShop is Validate for family = "webshop": the endpoint keys as
// for qa (endpoint may be "scripted"), policies that core.WebShopPolicy
// takes (any but closed-book), the [memory] table's knobs only (sub-calls go
// to the one endpoint), max_turns 0..100, and the [webshop] table's env and
// goals.
func (c RunConfig) validateWebShop() error {
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	scripted := strings.TrimSpace(c.Endpoint) == WebShopScripted
	if !scripted {
		if _, err := normalizeBaseURL(c.Endpoint); err != nil {
			bad("endpoint", "%v (or %q for the scripted shopper)", err, WebShopScripted)
		}
		if strings.TrimSpace(c.Model) == "" {
			bad("model", "empty (the model name the server serves)")
		}
		if c.Mode != ModeCompletions && c.Mode != ModeChat {
			bad("mode", "%q: want %q or %q", c.Mode, ModeCompletions, ModeChat)
		}
	}
	c.validateRequest(bad)
	key := "policy"
	if len(c.Policies) > 0 {
		key = "policies"
	}
	for i, p := range c.PolicyList() {
		if _, err := core.WebShopPolicy(p, c.Memory.Options()); err != nil {
			bad(key, "%v", strings.TrimPrefix(err.Error(), "webshop: "))
		}
		if contains(c.PolicyList()[:i], p) {
			bad(key, "%q is listed twice", p)
		}
	}
	if m := c.Memory; m != nil {
		if m.HasEndpoint() {
			bad("memory", "url, model, mode, api_key_env, requests_per_second and the embeddings_ keys are for QA runs: a WebShop run sends its sub-calls to its one endpoint (only the knobs apply)")
		}
		errs = append(errs, m.validate()...)
	}
	if c.MaxTurns < 0 || c.MaxTurns > 100 {
		bad("max_turns", "%d: want 0..100 for WebShop (0 = %d)", c.MaxTurns, core.DefaultWebShopMaxTurns)
	}
	if len(c.Endpoints) > 0 {
		bad("endpoints", "WebShop runs take one endpoint (endpoint, model, mode)")
	}
	w := c.WebShopResolved()
	if w.Env != WebShopDemo {
		if _, err := normalizeBaseURL(w.Env); err != nil {
			bad("webshop.env", "%v (or %q for the fake WebShop in-process)", err, WebShopDemo)
		} else if StripUserinfo(w.Env) != w.Env {
			bad("webshop.env", "no user name or password in the WebShop server's URL: the URL is stored with the experiment")
		}
	}
	if _, err := ParseGoalList(w.Goals); err != nil {
		bad("webshop.goals", "%v", err)
	}
	if math.IsNaN(w.TimeoutSeconds) || w.TimeoutSeconds < 0 {
		bad("webshop.timeout_seconds", "%g: want ≥ 0 (0 = 30 s)", w.TimeoutSeconds)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid run config: %w", errors.Join(errs...))
}

// SearchTopK is the passages per search: retriever.topk when set, else top_k.
func (c RunConfig) SearchTopK() int {
	if c.Retriever != nil && c.Retriever.TopK > 0 {
		return c.Retriever.TopK
	}
	return c.TopK
}

// TagNames are the protocol's tag names (core.Tags) as config keys.
type TagNames struct {
	Think       string `toml:"think" json:"think"`
	Search      string `toml:"search" json:"search"`
	Information string `toml:"information" json:"information"`
	Answer      string `toml:"answer" json:"answer"`
}

// CoreTags is the core.Tags of the config: its Tags, or MEM1's defaults.
func (c RunConfig) CoreTags() core.Tags {
	if c.Tags == nil {
		return core.DefaultTags()
	}
	return core.Tags{Think: c.Tags.Think, Search: c.Tags.Search, Information: c.Tags.Information, Answer: c.Tags.Answer}
}

// EndpointProfile is one inference server in a run: where it is, what it
// serves, how to find its API key and how hard it may be driven. The key itself
// is never part of a profile.
type EndpointProfile struct {
	Name      string `toml:"name" json:"name"`
	URL       string `toml:"url" json:"url"`
	Model     string `toml:"model" json:"model"`
	Mode      string `toml:"mode" json:"mode"`
	APIKeyEnv string `toml:"api_key_env,omitempty" json:"api_key_env,omitempty"`
	// APIKeyKeyring names the OS keyring entry holding the key (used when the
	// environment variable is unset or empty).
	APIKeyKeyring     string  `toml:"api_key_keyring,omitempty" json:"api_key_keyring,omitempty"`
	TimeoutSeconds    float64 `toml:"timeout_seconds,omitempty" json:"timeout_seconds,omitempty"`
	Concurrency       int     `toml:"concurrency" json:"concurrency"`
	RequestsPerSecond float64 `toml:"requests_per_second,omitempty" json:"requests_per_second,omitempty"`
	// SessionHeader names the HTTP header that carries the rollout's session
	// key on every request ("" = DefaultSessionHeader, "-" = none), for a
	// sticky or prefix-aware router in front of several replicas.
	SessionHeader string `toml:"session_header,omitempty" json:"session_header,omitempty"`
	// SessionUser also sends the session key as the request's OpenAI "user" field.
	SessionUser bool `toml:"session_user,omitempty" json:"session_user,omitempty"`
}

// Validate reports every bad field of the profile, each named by its key.
func (p EndpointProfile) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if strings.TrimSpace(p.Name) == "" {
		bad("name", "empty")
	}
	if _, err := normalizeBaseURL(p.URL); err != nil {
		bad("url", "%v", err)
	}
	if strings.TrimSpace(p.Model) == "" {
		bad("model", "empty (the model name the server serves)")
	}
	if p.Mode != ModeCompletions && p.Mode != ModeChat {
		bad("mode", "%q: want %q or %q", p.Mode, ModeCompletions, ModeChat)
	}
	if p.APIKeyEnv != "" && !envNameRE.MatchString(p.APIKeyEnv) {
		bad("api_key_env", "%q is not an environment variable name (the name, never the key)", p.APIKeyEnv)
	}
	if math.IsNaN(p.TimeoutSeconds) || p.TimeoutSeconds < 0 {
		bad("timeout_seconds", "%g: want ≥ 0 (0 = the run's)", p.TimeoutSeconds)
	}
	if p.Concurrency < 1 || p.Concurrency > 256 {
		bad("concurrency", "%d: want 1..256", p.Concurrency)
	}
	if math.IsNaN(p.RequestsPerSecond) || p.RequestsPerSecond < 0 {
		bad("requests_per_second", "%g: want ≥ 0 (0 = no cap)", p.RequestsPerSecond)
	}
	return errors.Join(errs...)
}

// ObjectivesList is the objectives of every setting: ObjectivesGrid, or [Objectives].
func (c RunConfig) ObjectivesList() []int {
	if len(c.ObjectivesGrid) > 0 {
		return c.ObjectivesGrid
	}
	return []int{c.Objectives}
}

// PolicyList is the policies of every setting: Policies, or [Policy].
func (c RunConfig) PolicyList() []string {
	if len(c.Policies) > 0 {
		return c.Policies
	}
	return []string{c.Policy}
}

// SourceDatasets is the datasets whose questions the tasks are composed from:
// Datasets when compose is "mixed", else [Dataset].
func (c RunConfig) SourceDatasets() []string {
	if c.Compose == ComposeRuleMixed && len(c.Datasets) > 0 {
		return c.Datasets
	}
	return []string{c.Dataset}
}

// TaskDataset is the Task.Dataset the composition gives: Dataset, or
// MixedDatasetName(Datasets) when compose is "mixed".
func (c RunConfig) TaskDataset() string {
	if c.Compose == ComposeRuleMixed {
		return MixedDatasetName(c.Datasets)
	}
	return c.Dataset
}

// EndpointList is the run's endpoints: Endpoints (a zero timeout taking
// timeout_seconds), or one profile named "default" built from the top-level
// endpoint keys.
func (c RunConfig) EndpointList() []EndpointProfile {
	if len(c.Endpoints) == 0 {
		return []EndpointProfile{{Name: "default", URL: c.Endpoint, Model: c.Model, Mode: c.Mode, APIKeyEnv: c.APIKeyEnv, APIKeyKeyring: c.APIKeyKeyring,
			TimeoutSeconds: c.TimeoutSeconds, Concurrency: c.Concurrency, RequestsPerSecond: c.RequestsPerSecond,
			SessionHeader: c.SessionHeader, SessionUser: c.SessionUser}}
	}
	out := make([]EndpointProfile, len(c.Endpoints))
	for i, p := range c.Endpoints {
		if p.TimeoutSeconds == 0 {
			p.TimeoutSeconds = c.TimeoutSeconds
		}
		out[i] = p
	}
	return out
}

// Models lists the distinct models of EndpointList in first-seen order.
func (c RunConfig) Models() []string {
	var out []string
	for _, p := range c.EndpointList() {
		if !contains(out, p.Model) {
			out = append(out, p.Model)
		}
	}
	return out
}

// EndpointFor is p's endpoint with this config's sampling settings; the API key
// is read from the environment variable p.APIKeyEnv names ("" when unset).
func (c RunConfig) EndpointFor(p EndpointProfile) Endpoint {
	key, _ := ResolveKey(p.APIKeyEnv, p.APIKeyKeyring)
	return Endpoint{
		BaseURL:     p.URL,
		Model:       p.Model,
		Mode:        p.Mode,
		APIKey:      key,
		Temperature: c.Temperature,
		TopP:        c.TopP,
		MaxTokens:   c.MaxTokens,
		Timeout:     time.Duration(p.TimeoutSeconds * float64(time.Second)),

		MaxResponseBytes: c.MaxResponseBytes,
		Concurrency:      p.Concurrency,
		SessionHeader:    p.SessionHeader,
		SessionUser:      p.SessionUser,
	}
}

// ForEndpoint is c with its top-level endpoint keys set from p (what
// Runner.NewModel receives for each endpoint).
func (c RunConfig) ForEndpoint(p EndpointProfile) RunConfig {
	c.Endpoint, c.Model, c.Mode, c.APIKeyEnv, c.APIKeyKeyring = p.URL, p.Model, p.Mode, p.APIKeyEnv, p.APIKeyKeyring
	c.TimeoutSeconds, c.Concurrency, c.RequestsPerSecond = p.TimeoutSeconds, p.Concurrency, p.RequestsPerSecond
	c.SessionHeader, c.SessionUser = p.SessionHeader, p.SessionUser
	c.Endpoints = nil
	return c
}

// retryPolicy resolves the retry and breaker keys' defaults.
func (c RunConfig) retryPolicy() retryPolicy {
	rp := retryPolicy{retries: 4, base: 250 * time.Millisecond, max: 30 * time.Second, breakerFailures: 8, cooldown: 5 * time.Second,
		patience: 10}
	switch {
	case c.BreakerPatience > 0:
		rp.patience = c.BreakerPatience
	case c.BreakerPatience < 0:
		rp.patience = 0
	}
	switch {
	case c.Retries > 0:
		rp.retries = c.Retries
	case c.Retries < 0:
		rp.retries = 0
	}
	if c.RetryBaseSeconds > 0 {
		rp.base = time.Duration(c.RetryBaseSeconds * float64(time.Second))
	}
	if c.BreakerFailures > 0 {
		rp.breakerFailures = c.BreakerFailures
	}
	if c.BreakerCooldownSeconds > 0 {
		rp.cooldown = time.Duration(c.BreakerCooldownSeconds * float64(time.Second))
	}
	return rp
}

// Group is one (policy, objectives) setting's aggregate, the shape of
// `mem1lab run --json` groups.
type Group struct {
	Policy         string  `json:"policy"`
	Objectives     int     `json:"objectives"`
	Rollouts       int     `json:"rollouts"`
	Failed         int     `json:"failed"`
	MeanEM         float64 `json:"mean_em"`
	MeanF1         float64 `json:"mean_f1"`
	MeanPeakTokens float64 `json:"mean_peak_tokens"`
	MeanSeconds    float64 `json:"mean_seconds"`
	// MeanPaperPeakTokens is MEM1 eval.py's mean peak (o200k), over the done
	// rollouts with a paper peak (lenient Exact_match not 0), PaperPeakN of them;
	// MeanPeakTokens is the request peak as served.
	MeanPaperPeakTokens float64 `json:"mean_paper_peak_tokens"`
	PaperPeakN          int     `json:"paper_peak_n"`
}

// Summary is what a finished run reports: `{"experiment": id, "groups": [...]}`.
type Summary struct {
	Experiment int64   `json:"experiment"`
	Groups     []Group `json:"groups"`
}

// Progress is a snapshot sent while a run goes on.
type Progress struct {
	Experiment int64
	Total      int
	Done       int
	Failed     int
	Running    int
	Turns      int
	// Cancelled counts rollouts that ended because the run was cancelled.
	Cancelled int
	// Queued counts rollouts not started yet.
	Queued int
	// Retries counts failed model calls in this run.
	Retries int
	// Paused is true while a pause is in effect.
	Paused bool
	// Elapsed is this run's wall time so far.
	Elapsed time.Duration
	// TurnsPerSecond and TokensPerSecond (context plus generation) are this
	// run's rates so far.
	TurnsPerSecond  float64
	TokensPerSecond float64
	// ETA estimates the time left from this run's rollout finishing rate (0
	// until a rollout finished).
	ETA time.Duration
	// Settings is the progress of each grid setting, in grid order.
	Settings []SettingProgress
	// Endpoints is each endpoint's share of the calls so far.
	Endpoints []EndpointStats
	// InFlight is the number of model calls under way over all endpoints.
	InFlight int
	// StoreWaitShare is the share (0..1) of the workers' time spent waiting
	// for their writes to commit: total commit wait / (Elapsed × workers).
	StoreWaitShare float64
}

// SettingProgress is one grid setting's progress: counts, and running means
// over its done rollouts.
type SettingProgress struct {
	Model          string
	Policy         string
	Objectives     int
	Total          int
	Done           int
	Failed         int
	Running        int
	MeanEM         float64
	MeanF1         float64
	MeanPeakTokens float64
	// MeanPaperPeakTokens is eval.py's mean peak (o200k) over the done
	// rollouts that have one, PaperPeakN of them (Exact_match 0 left out).
	MeanPaperPeakTokens float64
	PaperPeakN          int
}

// DefaultRunConfig returns MEM1's evaluation settings (arXiv 2506.15841 and the
// MIT-MI/MEM1 inference code): raw completions with a Qwen prefix, temperature
// 0.01, top_p 0.95, 1024 tokens a turn, top-3 passages, the mem1 policy and
// scheme, consecutive composition; plus small-run defaults (HotpotQA, 2
// objectives, 10 tasks, 4 rollouts in flight, 120 s per request).
func DefaultRunConfig() RunConfig {
	return RunConfig{
		Endpoint:       "http://127.0.0.1:8000/v1",
		Model:          "Mem-Lab/Qwen2.5-7B-RL-RAG-Q2-EM-Release",
		Mode:           ModeCompletions,
		Temperature:    0.01,
		TopP:           0.95,
		MaxTokens:      1024,
		TimeoutSeconds: 120,
		Dataset:        "hotpotqa",
		Objectives:     2,
		Tasks:          10,
		Compose:        ComposeRuleConsecutive,
		Seed:           42,
		Policy:         "mem1",
		TopK:           3,
		Scheme:         "mem1",
		Concurrency:    4,
	}
}

// Validate checks every field and reports all bad ones, each named by its TOML
// key with the reason, joined in one error (nil when the config is usable).
// Policy and scheme names are checked against core's registries.
func (c RunConfig) Validate() error {
	switch c.Family {
	case "", core.FamilyQA:
		if c.WebShop != nil {
			return fmt.Errorf("invalid run config: webshop: set only with family = %q (family is %q)", core.FamilyWebShop, c.FamilyName())
		}
	case core.FamilyWebShop:
		return c.validateWebShop()
	default:
		return fmt.Errorf("invalid run config: family: %q: want %q (retrieval QA, the default) or %q", c.Family, core.FamilyQA, core.FamilyWebShop)
	}
	var errs []error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if _, err := normalizeBaseURL(c.Endpoint); err != nil {
		bad("endpoint", "%v", err)
	}
	if strings.TrimSpace(c.Model) == "" {
		bad("model", "empty (the model name the server serves)")
	}
	if c.Mode != ModeCompletions && c.Mode != ModeChat {
		bad("mode", "%q: want %q or %q", c.Mode, ModeCompletions, ModeChat)
	}
	c.validateRequest(bad)
	if strings.TrimSpace(c.Dataset) == "" {
		bad("dataset", "empty (want hotpotqa, nq, musique or another imported dataset)")
	}
	if c.Objectives < 1 {
		bad("objectives", "%d: want ≥ 1", c.Objectives)
	}
	if c.Tasks < 0 {
		bad("tasks", "%d: want ≥ 0 (0 = all the composition yields)", c.Tasks)
	}
	if c.TemplateName != "" && c.Template != "" {
		bad("template_name", "%q: set template (a file) or template_name (a stored template), not both", c.TemplateName)
	}
	if c.Sample < 0 {
		bad("sample", "%d: want ≥ 0 (0 = no sampling)", c.Sample)
	} else if c.Sample > 0 && (c.Seed < 0 || c.Seed > 1<<32-1) {
		bad("seed", "%d: sampling wants 0..4294967295 (numpy's RandomState range)", c.Seed)
	}
	switch c.Compose {
	case ComposeRuleConsecutive, ComposeRuleRandom:
		if len(c.Datasets) > 0 {
			bad("datasets", "set only with compose = %q (compose is %q): list the sources to mix, or leave datasets out and use dataset",
				ComposeRuleMixed, c.Compose)
		}
	case ComposeRuleMixed:
		if len(c.Datasets) < 2 {
			bad("datasets", "compose = %q needs at least 2 datasets to mix (e.g. [\"hotpotqa\", \"nq\"]), got %d", ComposeRuleMixed, len(c.Datasets))
		}
		for i, d := range c.Datasets {
			if !datasetNameRE.MatchString(d) {
				bad("datasets", "entry %d is %q: want a dataset name such as hotpotqa or nq", i+1, d)
			} else if contains(c.Datasets[:i], d) {
				bad("datasets", "%q is listed twice", d)
			}
		}
	default:
		bad("compose", "%q: want %q, %q or %q", c.Compose, ComposeRuleConsecutive, ComposeRuleRandom, ComposeRuleMixed)
	}
	if _, err := core.PolicyByName(c.Policy); err != nil {
		bad("policy", "%v", err)
	}
	if c.MaxTurns < 0 || c.MaxTurns > MaxTurnsLimit {
		bad("max_turns", "%d: want 0..%d (0 = 6 up to 4 objectives, 20 beyond)", c.MaxTurns, MaxTurnsLimit)
	}
	if c.TopK < 1 || c.TopK > 100 {
		bad("top_k", "%d: want 1..100", c.TopK)
	}
	if !contains(core.Schemes(), c.Scheme) {
		bad("scheme", "%q: want one of %s", c.Scheme, strings.Join(core.Schemes(), ", "))
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		bad("concurrency", "%d: want 1..256", c.Concurrency)
	}
	for i, n := range c.ObjectivesGrid {
		if n < 1 {
			bad("objectives_grid", "entry %d is %d: want ≥ 1", i+1, n)
		}
		if slicesIndex(c.ObjectivesGrid, n) < i {
			bad("objectives_grid", "%d is listed twice", n)
		}
	}
	for i, p := range c.Policies {
		if _, err := core.PolicyByName(p); err != nil {
			bad("policies", "entry %d: %v", i+1, err)
		}
		if contains(c.Policies[:i], p) {
			bad("policies", "%q is listed twice", p)
		}
	}
	if math.IsNaN(c.RequestsPerSecond) || c.RequestsPerSecond < 0 {
		bad("requests_per_second", "%g: want ≥ 0 (0 = no cap)", c.RequestsPerSecond)
	}
	if math.IsNaN(c.RetryBaseSeconds) || c.RetryBaseSeconds < 0 {
		bad("retry_base_seconds", "%g: want ≥ 0", c.RetryBaseSeconds)
	}
	if c.BreakerFailures < 0 {
		bad("breaker_failures", "%d: want ≥ 0", c.BreakerFailures)
	}
	if math.IsNaN(c.BreakerCooldownSeconds) || c.BreakerCooldownSeconds < 0 {
		bad("breaker_cooldown_seconds", "%g: want ≥ 0", c.BreakerCooldownSeconds)
	}
	if c.MaxResponseBytes < 0 {
		bad("max_response_bytes", "%d: want ≥ 0 (0 = %d)", c.MaxResponseBytes, DefaultMaxResponseBytes)
	}
	if c.Tags != nil {
		if err := c.CoreTags().Validate(); err != nil {
			bad("tags", "%v", err)
		}
	}
	errs = append(errs, c.Retriever.validate()...)
	errs = append(errs, c.Memory.validate()...)
	names := map[string]bool{}
	for i, p := range c.Endpoints {
		if err := p.Validate(); err != nil {
			bad(fmt.Sprintf("endpoints[%d]", i+1), "%v", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		if names[p.Name] {
			bad(fmt.Sprintf("endpoints[%d]", i+1), "name %q is used twice", p.Name)
		}
		names[p.Name] = true
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid run config: %w", errors.Join(errs...))
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// datasetNameRE is what a dataset name looks like: letters, digits and
// "_", "-", "." (no "+", which joins names in a mixed task's dataset).
var datasetNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func slicesIndex(xs []int, x int) int {
	for i, y := range xs {
		if y == x {
			return i
		}
	}
	return -1
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// LoadRunConfig reads a TOML run config. Keys absent from the file keep
// DefaultRunConfig's values. Errors name the file: a syntax error with its line,
// unknown keys (all of them, e.g. a misspelt "objective"), or invalid values
// (see Validate).
func LoadRunConfig(path string) (RunConfig, error) {
	cfg := DefaultRunConfig()
	md, err := toml.DecodeFile(path, &cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return RunConfig{}, fmt.Errorf("%s:%d: %s", path, perr.Position.Line, perr.Message)
		}
		return RunConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return RunConfig{}, fmt.Errorf("%s: unknown keys: %s", path, strings.Join(keys, ", "))
	}
	if err := cfg.Validate(); err != nil {
		return RunConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// CanonicalTOML renders every field, in declaration order, with the TOML
// encoder's fixed formatting: the same config always gives the same bytes
// (a retriever table that only names the default bm25 is left out).
func (c RunConfig) CanonicalTOML() ([]byte, error) {
	c.Retriever = c.Retriever.canonical()
	if c.Family == core.FamilyQA {
		c.Family = "" // qa is the default: its hash is the one before family existed
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		return nil, fmt.Errorf("encoding run config: %w", err)
	}
	return buf.Bytes(), nil
}

// Hash is the lowercase hex SHA-256 of CanonicalTOML (64 characters).
func (c RunConfig) Hash() string {
	b, err := c.WithoutCredentials().CanonicalTOML()
	if err != nil { // a plain struct of scalars always encodes; keep a stable fallback
		b = []byte(fmt.Sprintf("%#v", c))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// MaxTurnsLimit is the largest max_turns (--max-turns) Validate accepts: far
// above MEM1's budgets (6 and 20 turns), and low enough that one rollout's
// trace stays readable in Trace.
const MaxTurnsLimit = 1000

// MaxTurnsFor is the turn limit for an n-objective task: MaxTurns when set, else
// MEM1's default (core.DefaultMaxTurns: 6 up to 4 objectives, 20 beyond).
func (c RunConfig) MaxTurnsFor(n int) int {
	if c.MaxTurns > 0 {
		return c.MaxTurns
	}
	return core.DefaultMaxTurns(n)
}

// EndpointConfig is the inference endpoint of this config; the API key is read from
// the environment variable named by APIKeyEnv ("" when unset).
func (c RunConfig) EndpointConfig() Endpoint {
	key, _ := ResolveKey(c.APIKeyEnv, c.APIKeyKeyring)
	return Endpoint{
		BaseURL:     c.Endpoint,
		Model:       c.Model,
		Mode:        c.Mode,
		APIKey:      key,
		Temperature: c.Temperature,
		TopP:        c.TopP,
		MaxTokens:   c.MaxTokens,
		Timeout:     time.Duration(c.TimeoutSeconds * float64(time.Second)),

		MaxResponseBytes: c.MaxResponseBytes,
		Concurrency:      c.Concurrency,
		SessionHeader:    c.SessionHeader,
		SessionUser:      c.SessionUser,
	}
}
