package views

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments"
)

// TestComposerMemoryPolicies: memory policies and their knobs in New
// experiment: summary:K takes K from its entry, the [memory] table is built
// only when a field is set, bad knobs are refused, and the TOML round trip
// keeps policies, endpoints and knobs.
func TestComposerMemoryPolicies(t *testing.T) {
	u, _ := newTestUI(t, newCtlStore(), newCtlRunner(nil))
	p := u.run
	act(u, func() { p.policies.SetSelected([]string{"mem1", "amem"}) })
	cfg, err := p.config()
	require.NoError(t, err)
	assert.Equal(t, []string{"mem1", "amem"}, cfg.Policies)
	assert.Nil(t, cfg.Memory, "no table while every knob is at its default")

	act(u, func() {
		p.policies.SetSelected([]string{"mem1", summaryChoice, "mem0:add-only", "closed-book"})
		p.memory.window.SetText("3")
		p.memory.url.SetText("http://127.0.0.1:8001/v1")
		p.memory.model.SetText("small")
		p.memory.embURL.SetText("http://127.0.0.1:11434/v1")
		p.memory.embModel.SetText("nomic-embed-text")
		p.memory.k.SetText("5")
		p.memory.evolve.SetChecked(false)
	})
	cfg, err = p.config()
	require.NoError(t, err)
	assert.Equal(t, []string{"mem1", "summary:3", "mem0:add-only", "closed-book"}, cfg.Policies)
	off := false
	assert.Equal(t, &experiments.MemoryConfig{URL: "http://127.0.0.1:8001/v1", Model: "small", EmbeddingsURL: "http://127.0.0.1:11434/v1",
		EmbeddingsModel: "nomic-embed-text", K: 5, Evolve: &off}, cfg.Memory)

	var buf bytes.Buffer
	require.NoError(t, p.exportTOML(&buf))
	path := filepath.Join(t.TempDir(), "mem.toml")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	act(u, func() {
		p.policies.SetSelected([]string{"full"})
		p.memory.k.SetText("")
		p.memory.window.SetText("9")
	})
	act(u, func() { require.NoError(t, p.importTOML(path)) })
	back, err := p.config()
	require.NoError(t, err)
	assert.Equal(t, cfg.Hash(), back.Hash())
	assert.Equal(t, "3", p.memory.window.Text)
	assert.Equal(t, []string{"mem1", summaryChoice, "mem0:add-only", "closed-book"}, p.policies.Selected)

	act(u, func() { p.memory.k.SetText("-2"); p.memory.window.SetText("x") })
	_, err = p.config()
	require.Error(t, err)
	assert.Contains(t, err.Error(), `Memory policies: k "-2" is not a whole number ≥ 0`)
	assert.Contains(t, err.Error(), `Memory policies: summary K "x" is not a whole number ≥ 0`)
}
