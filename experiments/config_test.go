package experiments

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDefaultRunConfig(t *testing.T) {
	c := DefaultRunConfig()
	require.NoError(t, c.Validate())
	assert.Equal(t, "completions", c.Mode)
	assert.Equal(t, 0.01, c.Temperature)
	assert.Equal(t, 0.95, c.TopP)
	assert.Equal(t, 1024, c.MaxTokens)
	assert.Equal(t, 3, c.TopK)
	assert.Equal(t, "mem1", c.Policy)
	assert.Equal(t, "mem1", c.Scheme)
	assert.Equal(t, "consecutive", c.Compose)
	assert.Equal(t, "hotpotqa", c.Dataset)
	assert.Equal(t, 2, c.Objectives)
	assert.Equal(t, 10, c.Tasks)
	assert.Equal(t, 4, c.Concurrency)
	assert.Equal(t, 120.0, c.TimeoutSeconds)
	assert.Equal(t, 6, c.MaxTurnsFor(4))
	assert.Equal(t, 20, c.MaxTurnsFor(5))
	c.MaxTurns = 3
	assert.Equal(t, 3, c.MaxTurnsFor(16))
}

func TestValidateNamesEveryBadField(t *testing.T) {
	c := DefaultRunConfig()
	c.Endpoint = "ftp://x"
	c.Mode = "stream"
	c.TopP = -0.5 // 0 is allowed now: not sent, as MEM1's full-history client sends none
	c.Objectives = 0
	c.Policy = "forget"
	c.Scheme = "bleu"
	c.Concurrency = 0
	c.APIKeyEnv = "sk-123 secret"
	err := c.Validate()
	require.Error(t, err)
	for _, key := range []string{"endpoint:", "mode:", "top_p:", "objectives:", "policy:", "scheme:", "concurrency:", "api_key_env:"} {
		assert.Contains(t, err.Error(), key)
	}
	assert.NotContains(t, err.Error(), "temperature:")
}

func TestValidateBoundsMaxTurns(t *testing.T) {
	c := DefaultRunConfig()
	c.MaxTurns = MaxTurnsLimit
	require.NoError(t, c.Validate())
	c.MaxTurns = MaxTurnsLimit + 1
	err := c.Validate()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "max_turns: 1001: want 0..1000")
	c.MaxTurns = 70000
	require.Error(t, c.Validate())
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "run.toml")
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	return p
}

func TestLoadRunConfig(t *testing.T) {
	c, err := LoadRunConfig(writeFile(t, "objectives = 4\npolicy = \"full\"\nmode = \"chat\"\n"))
	require.NoError(t, err)
	want := DefaultRunConfig()
	want.Objectives, want.Policy, want.Mode = 4, "full", "chat"
	assert.Equal(t, want, c)

	p := writeFile(t, "objective = 4\n[extra]\nx = 1\n")
	_, err = LoadRunConfig(p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), p+": unknown keys:")
	assert.Contains(t, err.Error(), "objective")
	assert.Contains(t, err.Error(), "extra.x")

	p = writeFile(t, "objectives = 4\ntop_k = \"three\"\n")
	_, err = LoadRunConfig(p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), p)

	p = writeFile(t, "objectives = 4\nmode = \n")
	_, err = LoadRunConfig(p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), p+":2:")

	p = writeFile(t, "objectives = -1\n")
	_, err = LoadRunConfig(p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "objectives: -1")
}

func TestCanonicalTOMLAndHash(t *testing.T) {
	c := DefaultRunConfig()
	a, err := c.CanonicalTOML()
	require.NoError(t, err)
	b, err := c.CanonicalTOML()
	require.NoError(t, err)
	assert.Equal(t, a, b)
	assert.True(t, strings.Contains(string(a), "temperature = 0.01"), string(a))
	assert.Len(t, c.Hash(), 64)
	assert.Equal(t, c.Hash(), DefaultRunConfig().Hash())
	d := c
	d.Objectives = 3
	assert.NotEqual(t, c.Hash(), d.Hash())

	// The canonical form loads back to the same config and the same bytes.
	back, err := LoadRunConfig(writeFile(t, string(a)))
	require.NoError(t, err)
	assert.Equal(t, c, back)
	again, err := back.CanonicalTOML()
	require.NoError(t, err)
	assert.Equal(t, a, again)
}

func TestEndpointConfigReadsKeyFromEnv(t *testing.T) {
	t.Setenv("MEM1LAB_TEST_KEY", "sk-test")
	c := DefaultRunConfig()
	c.APIKeyEnv = "MEM1LAB_TEST_KEY"
	ep := c.EndpointConfig()
	assert.Equal(t, "sk-test", ep.APIKey)
	assert.Equal(t, 120*time.Second, ep.Timeout)
	b, err := c.CanonicalTOML()
	require.NoError(t, err)
	assert.NotContains(t, string(b), "sk-test")
}

func TestRetrieverConfig(t *testing.T) {
	def := DefaultRunConfig()
	canon, err := def.CanonicalTOML()
	require.NoError(t, err)
	assert.NotContains(t, string(canon), "retriever", "configs without a retriever hash as before the key existed")
	bm25 := def
	bm25.Retriever = &RetrieverConfig{Kind: RetrieverBM25}
	assert.Equal(t, def.Hash(), bm25.Hash(), "naming the default bm25 changes no hash")
	httpCfg := def
	httpCfg.Retriever = &RetrieverConfig{Kind: RetrieverHTTP, URL: "http://127.0.0.1:8013/retrieve"}
	assert.NotEqual(t, def.Hash(), httpCfg.Hash())
	other := httpCfg
	other.Retriever = &RetrieverConfig{Kind: RetrieverHTTP, URL: "http://127.0.0.1:8013/retrieve", TopK: 5}
	assert.NotEqual(t, httpCfg.Hash(), other.Hash())
	assert.Equal(t, 3, httpCfg.SearchTopK())
	assert.Equal(t, 5, other.SearchTopK(), "retriever.topk replaces top_k")
	other.Endpoints = []EndpointProfile{{Name: "a", URL: "http://a:8000/v1", Model: "m", Mode: ModeCompletions, Concurrency: 1}}
	canon, err = other.CanonicalTOML()
	require.NoError(t, err)
	back, err := LoadRunConfig(writeFile(t, string(canon)))
	require.NoError(t, err, string(canon))
	assert.Equal(t, other.Hash(), back.Hash(), "the canonical TOML reads back to the same config")

	p := writeFile(t, `retriever = {kind = "http", url = "http://10.0.0.2:8013/retrieve", topk = 3, timeout = 12.5}`+"\n")
	cfg, err := LoadRunConfig(p)
	require.NoError(t, err)
	assert.Equal(t, &RetrieverConfig{Kind: RetrieverHTTP, URL: "http://10.0.0.2:8013/retrieve", TopK: 3, Timeout: 12.5}, cfg.Retriever)
	env, err := NewRetriever(cfg, nil)
	require.NoError(t, err)
	hr, ok := env.(*HTTPRetriever)
	require.True(t, ok, "%T", env)
	assert.Equal(t, "http://10.0.0.2:8013/retrieve", hr.URL)
	assert.Equal(t, 12500*time.Millisecond, hr.Timeout)
	assert.NotNil(t, hr.Client, "its own connection pool (retrieverClient)")

	_, err = LoadRunConfig(writeFile(t, `retriever = {kind = "http", uri = "http://x"}`+"\n"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "retriever.uri")
	bad := def
	bad.Retriever = &RetrieverConfig{Kind: "dense", TopK: -1, Timeout: -2}
	err = bad.Validate()
	require.Error(t, err)
	for _, key := range []string{"retriever.kind:", "retriever.topk:", "retriever.timeout:"} {
		assert.Contains(t, err.Error(), key)
	}
	bad.Retriever = &RetrieverConfig{Kind: RetrieverHTTP, URL: "ftp://x"}
	assert.ErrorContains(t, bad.Validate(), "retriever.url:")
	bad.Retriever = &RetrieverConfig{Kind: RetrieverBM25, URL: "http://x"}
	assert.ErrorContains(t, bad.Validate(), "retriever.url:")

	_, err = NewRetriever(def, nil)
	assert.Error(t, err, "bm25 needs the store")
}

func TestParseRetriever(t *testing.T) {
	for _, s := range []string{"", "bm25", " BM25 "} {
		rc, err := ParseRetriever(s)
		require.NoError(t, err)
		assert.Nil(t, rc, s)
	}
	rc, err := ParseRetriever("http://127.0.0.1:8013")
	require.NoError(t, err)
	assert.Equal(t, &RetrieverConfig{Kind: RetrieverHTTP, URL: "http://127.0.0.1:8013/retrieve"}, rc)
	assert.Equal(t, "http://127.0.0.1:8013/retrieve", rc.String())
	assert.Equal(t, "bm25", (*RetrieverConfig)(nil).String())
	rc, err = ParseRetriever("https://search.example/api/retrieve")
	require.NoError(t, err)
	assert.Equal(t, "https://search.example/api/retrieve", rc.URL)
	for _, s := range []string{"dense", "ftp://x/retrieve", "http://"} {
		_, err := ParseRetriever(s)
		assert.Error(t, err, s)
	}
}
