package experiments

import (
	"context"
	"encoding/json"
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
	// Model fills the model field too when the server has one fixed name ("" = leave it).
	Model string
}

// EndpointPresets are the servers the Endpoints screen offers to fill in.
var EndpointPresets = []EndpointPreset{
	{Name: "vLLM", URL: "http://127.0.0.1:8000/v1", Mode: ModeCompletions},
	{Name: "SGLang", URL: "http://127.0.0.1:30000/v1", Mode: ModeCompletions},
	{Name: "Ollama", URL: "http://127.0.0.1:11434/v1", Mode: ModeChat},
	{Name: "llama.cpp", URL: "http://127.0.0.1:8080/v1", Mode: ModeCompletions},
	{Name: "MEM1 reference", URL: "http://127.0.0.1:8014/v1", Mode: ModeCompletions},
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
	base, err := normalizeBaseURL(p.URL)
	if err != nil {
		return nil, err
	}
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
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s/models: %w", base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/models: HTTP %d: %s", base, resp.StatusCode, serverMessage(body))
	}
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
