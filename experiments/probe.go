package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/mem1lab/mem1lab/core"
)

// EndpointPreset is a common OpenAI-compatible server with its usual base URL.
type EndpointPreset struct {
	Name string
	URL  string
	Mode string
	// Note is shown when the preset is picked ("" = none).
	Note string
	// Model fills the model field too when the server has one fixed name ("" = leave it).
	Model string
}

// ReleasedCheckpointTemplateNote tells the user of MEM1's released checkpoint
// to run it on its training prompt (make_prefix of
// Mem1/gen_data/data_process/qa_search_test_merge_multi.py) rather than the
// built-in template, which it was not trained on.
const ReleasedCheckpointTemplateNote = "The released checkpoint was trained on the prompt of MEM1's make_prefix " +
	"(qa_search_test_merge_multi.py). Import that prompt once, e.g. " +
	"`mem1lab template import mem1-prompt.txt --name mem1-train` (the file from your MEM1 checkout, or " +
	"../shared/reference/mem1-prompt.txt), then pick \"mem1-train\" as the stored template in New experiment."

// EndpointPresets are the servers the Endpoints screen offers to fill in.
var EndpointPresets = []EndpointPreset{
	{Name: "vLLM", URL: "http://127.0.0.1:8000/v1", Mode: ModeCompletions},
	{Name: "SGLang", URL: "http://127.0.0.1:30000/v1", Mode: ModeCompletions},
	{Name: "Ollama", URL: "http://127.0.0.1:11434/v1", Mode: ModeChat},
	{Name: "llama.cpp", URL: "http://127.0.0.1:8080/v1", Mode: ModeCompletions},
	{Name: "MEM1 reference", URL: "http://127.0.0.1:8014/v1", Mode: ModeCompletions, Note: ReleasedCheckpointTemplateNote},
	// `mem1lab oracle`'s default address; the retrieval-oracle agent answers as
	// model "mem1lab-oracle" (experiments/oracle.ModelName).
	{Name: "mem1lab oracle agent", URL: "http://127.0.0.1:8015/v1", Mode: ModeCompletions, Model: "mem1lab-oracle"},
	{Name: "Remote", URL: "https://", Mode: ModeChat},
}

// KeyFunc resolves a profile's API key at call time ("" = none). The key is
// only ever held in memory for the request.
type KeyFunc func(EndpointProfile) (string, error)

// EnvKey resolves the profile's key: its environment variable, else its OS
// keyring entry (ResolveKey).
func EnvKey(p EndpointProfile) (string, error) {
	return ResolveKey(p.APIKeyEnv, p.APIKeyKeyring)
}

// FetchModels lists the model ids the endpoint serves (GET {url}/models),
// sorted. Errors carry the HTTP status and the server's message.
func FetchModels(ctx context.Context, p EndpointProfile, key KeyFunc) ([]string, error) {
	norm, err := normalizeBaseURL(p.URL)
	if err != nil {
		return nil, err
	}
	base, auth := splitUserinfo(norm) // errors never show the URL's key
	if key == nil {
		key = EnvKey
	}
	k, err := key(p)
	if err != nil {
		return nil, fmt.Errorf("API key: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout(p))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/models", nil)
	if err != nil {
		return nil, err
	}
	if k != "" {
		req.Header.Set("Authorization", "Bearer "+k)
	} else if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s/models: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _, _ := boundedBody(resp)
		return nil, &CallError{Status: resp.StatusCode, Err: fmt.Errorf("GET %s/models: HTTP %d: %s", base, resp.StatusCode, boundText(serverMessage(body), 500))}
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, fmt.Errorf("GET %s/models: not a model list: %w", base, err)
	}
	out := make([]string, 0, len(list.Data))
	for _, m := range list.Data {
		if m.ID != "" {
			out = append(out, m.ID)
		}
	}
	sort.Strings(out)
	return out, nil
}

// ConnectionReport is the result of TestConnection.
type ConnectionReport struct {
	Latency time.Duration
	Text    string // what the model generated
	Usage   core.Usage
}

// TestConnection sends a one-token request in the profile's mode and reports
// the round-trip latency, or the server's error text.
func TestConnection(ctx context.Context, p EndpointProfile, key KeyFunc) (ConnectionReport, error) {
	if err := p.Validate(); err != nil {
		return ConnectionReport{}, err
	}
	if key == nil {
		key = EnvKey
	}
	k, err := key(p)
	if err != nil {
		return ConnectionReport{}, fmt.Errorf("API key: %w", err)
	}
	m, err := NewOpenAIModel(Endpoint{BaseURL: p.URL, Model: p.Model, Mode: p.Mode, APIKey: k, MaxTokens: 1, Timeout: probeTimeout(p)})
	if err != nil {
		return ConnectionReport{}, err
	}
	defer m.Close()
	began := time.Now()
	c, err := m.Complete(ctx, core.Context{Prompt: "Say OK."}, nil)
	if err != nil {
		return ConnectionReport{}, err
	}
	return ConnectionReport{Latency: time.Since(began), Text: c.Text, Usage: c.Usage}, nil
}

func probeTimeout(p EndpointProfile) time.Duration {
	if p.TimeoutSeconds > 0 && p.TimeoutSeconds < 30 {
		return time.Duration(p.TimeoutSeconds * float64(time.Second))
	}
	return 30 * time.Second
}

// serverMessage extracts error.message from an OpenAI-style error body, else
// the body's first 300 bytes.
func serverMessage(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	if s == "" {
		return "(empty reply)"
	}
	return s
}

// Preflight checks every endpoint of cfg before a run queues anything, as
// Test connection does: GET /models must answer (a 404 is accepted: not every
// server lists its models) and a one-token request in the endpoint's mode
// must succeed. A reply worth retrying (429, 5xx, malformed) is tried up to 3
// times; an unreachable endpoint, a refused request or a timeout fails at
// once. Errors name the endpoint and give the reason (never its key).
func Preflight(ctx context.Context, cfg RunConfig, key KeyFunc) error {
	var errs []error
	for _, p := range cfg.EndpointList() {
		if err := preflightOne(ctx, p, key); err != nil {
			errs = append(errs, fmt.Errorf("endpoint %s (%s): %w", p.Name, StripUserinfo(p.URL), err))
		}
	}
	return errors.Join(errs...)
}

func preflightOne(ctx context.Context, p EndpointProfile, key KeyFunc) error {
	if _, err := FetchModels(ctx, p, key); err != nil {
		var ce *CallError
		if !errors.As(err, &ce) || ce.Status != http.StatusNotFound {
			return err
		}
	}
	var err error
	for try := 1; try <= 3; try++ {
		if _, err = TestConnection(ctx, p, key); err == nil {
			return nil
		}
		var ce *CallError
		if !errors.As(err, &ce) || ce.Status == 0 || !Retryable(err) || ctx.Err() != nil {
			return err
		}
		if serr := sleepCtx(ctx, time.Duration(try)*200*time.Millisecond); serr != nil {
			return err
		}
	}
	return err
}
