package experiments

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

func TestMemoryConfig(t *testing.T) {
	def := DefaultRunConfig()
	canon, err := def.CanonicalTOML()
	require.NoError(t, err)
	assert.NotContains(t, string(canon), "memory", "configs without [memory] hash as before the table existed")

	p := writeFile(t, `policies = ["mem1", "amem", "mem0:add-only", "summary:2", "closed-book"]
[memory]
url = "http://10.0.0.3:8000/v1"
model = "small-instruct"
embeddings_url = "http://10.0.0.4:11434/v1"
embeddings_model = "nomic-embed-text"
k = 5
evolve = false
summary_tokens = 2048
`)
	cfg, err := LoadRunConfig(p)
	require.NoError(t, err)
	off := false
	assert.Equal(t, &MemoryConfig{URL: "http://10.0.0.3:8000/v1", Model: "small-instruct", EmbeddingsURL: "http://10.0.0.4:11434/v1",
		EmbeddingsModel: "nomic-embed-text", K: 5, Evolve: &off, SummaryTokens: 2048}, cfg.Memory)
	assert.Equal(t, core.MemoryOptions{K: 5, NoEvolve: true, SummaryTokens: 2048}, cfg.Memory.Options())
	assert.NotEqual(t, def.Hash(), cfg.Hash())
	other := cfg
	m := *cfg.Memory
	m.K = 4
	other.Memory = &m
	assert.NotEqual(t, cfg.Hash(), other.Hash(), "a knob is part of the hash")
	canon, err = cfg.CanonicalTOML()
	require.NoError(t, err)
	back, err := LoadRunConfig(writeFile(t, string(canon)))
	require.NoError(t, err, string(canon))
	assert.Equal(t, cfg.Hash(), back.Hash())
	acfg, err := agentConfig(func() RunConfig { c := cfg; c.Policy = "amem"; return c }())
	require.NoError(t, err)
	assert.Equal(t, "amem", acfg.Policy.Name())
	_, isMem := acfg.Policy.(core.MemoryPolicy)
	assert.True(t, isMem)

	bad := def
	bad.Memory = &MemoryConfig{URL: "ftp://x", Mode: "raw", K: -1, APIKeyEnv: "sk-123 secret", EmbeddingsURL: "nope"}
	err = bad.Validate()
	require.Error(t, err)
	for _, key := range []string{"memory.url:", "memory.model:", "memory.mode:", "memory.k:", "memory.api_key_env:", "memory.embeddings_url:"} {
		assert.Contains(t, err.Error(), key)
	}
	bad = def
	bad.Policy = "summary:x"
	assert.ErrorContains(t, bad.Validate(), "K must be a whole number")
}
