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
	"os"
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
	TopP           float64 `toml:"top_p" json:"top_p"`                     // 0.95 in MEM1
	MaxTokens      int     `toml:"max_tokens" json:"max_tokens"`           // per turn, 1024 in MEM1
	TimeoutSeconds float64 `toml:"timeout_seconds" json:"timeout_seconds"` // per request

	// Tasks.
	Dataset    string `toml:"dataset" json:"dataset"`       // hotpotqa | nq | musique
	Objectives int    `toml:"objectives" json:"objectives"` // N questions per task
	Tasks      int    `toml:"tasks" json:"tasks"`           // tasks to run (0 = all the composition yields)
	Compose    string `toml:"compose" json:"compose"`       // "consecutive" (MEM1's rule) or "random"
	Seed       int64  `toml:"seed" json:"seed"`

	// Agent.
	Policy   string `toml:"policy" json:"policy"`       // mem1 | full
	MaxTurns int    `toml:"max_turns" json:"max_turns"` // 0 = 6 up to 4 objectives, 20 beyond
	TopK     int    `toml:"top_k" json:"top_k"`         // passages per search, 3 in MEM1
	Template string `toml:"template" json:"template"`   // prompt template file; "" = built-in
	Scheme   string `toml:"scheme" json:"scheme"`       // mem1 | squad

	// Execution.
	Concurrency int `toml:"concurrency" json:"concurrency"` // rollouts in flight
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
	if c.APIKeyEnv != "" && !envNameRE.MatchString(c.APIKeyEnv) {
		bad("api_key_env", "%q is not an environment variable name (the name, never the key)", c.APIKeyEnv)
	}
	if math.IsNaN(c.Temperature) || c.Temperature < 0 || c.Temperature > 2 {
		bad("temperature", "%g: want 0..2", c.Temperature)
	}
	if math.IsNaN(c.TopP) || c.TopP <= 0 || c.TopP > 1 {
		bad("top_p", "%g: want a value in (0, 1]", c.TopP)
	}
	if c.MaxTokens < 1 {
		bad("max_tokens", "%d: want ≥ 1", c.MaxTokens)
	}
	if math.IsNaN(c.TimeoutSeconds) || c.TimeoutSeconds <= 0 {
		bad("timeout_seconds", "%g: want > 0", c.TimeoutSeconds)
	}
	if strings.TrimSpace(c.Dataset) == "" {
		bad("dataset", "empty (want hotpotqa, nq, musique or another imported dataset)")
	}
	if c.Objectives < 1 {
		bad("objectives", "%d: want ≥ 1", c.Objectives)
	}
	if c.Tasks < 0 {
		bad("tasks", "%d: want ≥ 0 (0 = all the composition yields)", c.Tasks)
	}
	if c.Compose != ComposeRuleConsecutive && c.Compose != ComposeRuleRandom {
		bad("compose", "%q: want %q or %q", c.Compose, ComposeRuleConsecutive, ComposeRuleRandom)
	}
	if _, err := core.PolicyByName(c.Policy); err != nil {
		bad("policy", "%v", err)
	}
	if c.MaxTurns < 0 {
		bad("max_turns", "%d: want ≥ 0 (0 = 6 up to 4 objectives, 20 beyond)", c.MaxTurns)
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
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid run config: %w", errors.Join(errs...))
}

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

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
// encoder's fixed formatting: the same config always gives the same bytes.
func (c RunConfig) CanonicalTOML() ([]byte, error) {
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(c); err != nil {
		return nil, fmt.Errorf("encoding run config: %w", err)
	}
	return buf.Bytes(), nil
}

// Hash is the lowercase hex SHA-256 of CanonicalTOML (64 characters).
func (c RunConfig) Hash() string {
	b, err := c.CanonicalTOML()
	if err != nil { // a plain struct of scalars always encodes; keep a stable fallback
		b = []byte(fmt.Sprintf("%#v", c))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

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
	key := ""
	if c.APIKeyEnv != "" {
		key = os.Getenv(c.APIKeyEnv)
	}
	return Endpoint{
		BaseURL:     c.Endpoint,
		Model:       c.Model,
		Mode:        c.Mode,
		APIKey:      key,
		Temperature: c.Temperature,
		TopP:        c.TopP,
		MaxTokens:   c.MaxTokens,
		Timeout:     time.Duration(c.TimeoutSeconds * float64(time.Second)),
	}
}
