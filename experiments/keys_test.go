package experiments

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/zalando/go-keyring"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments/oracle"
)

// TestKeyringKeySource: a profile whose key lives in the OS keyring (a mock
// keyring here) sends it, and the store never holds it; a missing entry is a
// clear error before anything runs.
func TestKeyringKeySource(t *testing.T) {
	keyring.MockInit()
	st := bundleStore(t)
	ctx := context.Background()
	qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	ag := oracle.New(qs)
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, r.Header.Get("Authorization"))
		ag.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cfg := DefaultRunConfig()
	cfg.Tasks, cfg.Objectives, cfg.Concurrency = 1, 1, 1
	cfg.Endpoints = []EndpointProfile{{Name: "remote", URL: srv.URL + "/v1", Model: oracle.ModelName, Mode: ModeChat,
		Concurrency: 1, APIKeyKeyring: "lab-remote"}}

	_, err = (&Runner{Store: st, Env: st}).Run(ctx, cfg, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `no API key in the OS keyring under "lab-remote"`)

	require.NoError(t, SaveKeyringKey("lab-remote", "sk-keyring-777"))
	sum, err := (&Runner{Store: st, Env: st}).Run(ctx, cfg, nil)
	require.NoError(t, err)
	require.NotEmpty(t, auth)
	for _, a := range auth {
		assert.Equal(t, "Bearer sk-keyring-777", a)
	}
	e, err := st.Experiment(ctx, sum.Experiment)
	require.NoError(t, err)
	assert.Contains(t, e.ConfigJSON, "lab-remote")
	assert.NotContains(t, e.ConfigJSON, "sk-keyring-777")
	rep, err := TestConnection(ctx, cfg.Endpoints[0], nil)
	require.NoError(t, err)
	assert.Positive(t, rep.Latency)

	// The environment variable wins when set.
	t.Setenv("LAB_KEY", "sk-env")
	k, err := ResolveKey("LAB_KEY", "lab-remote")
	require.NoError(t, err)
	assert.Equal(t, "sk-env", k)
}

// TestTagNamesSetting: renamed tags reach the prompt and survive TOML.
func TestTagNamesSetting(t *testing.T) {
	cfg := DefaultRunConfig()
	cfg.Tags = &TagNames{Think: "reason", Search: "lookup", Information: "evidence", Answer: "final"}
	require.NoError(t, cfg.Validate())
	prompt, err := PreviewPrompt(cfg, core.Task{Objectives: []core.Objective{{Question: "Who?"}}})
	require.NoError(t, err)
	assert.Contains(t, prompt, "<reason>")
	assert.Contains(t, prompt, "<lookup>")
	assert.NotContains(t, prompt, "<think>")

	b, err := cfg.CanonicalTOML()
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), "c.toml")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	back, err := LoadRunConfig(path)
	require.NoError(t, err)
	assert.Equal(t, cfg.Hash(), back.Hash())

	cfg.Tags.Answer = "reason"
	err = cfg.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "tags:")
	assert.Equal(t, DefaultRunConfig().Hash(), func() string { c := DefaultRunConfig(); c.Tags = nil; return c.Hash() }(),
		"unset tags leave the hash alone")
}
