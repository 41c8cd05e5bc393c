package app

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

// TestTemplateImportOnceAndRunByName imports MEM1's training prompt once, runs
// by name, and finds the template's content hash in the experiment's config.
func TestTemplateImportOnceAndRunByName(t *testing.T) {
	prompt := filepath.Join("..", "..", "shared", "reference", "mem1-prompt.txt")
	if _, err := os.Stat(prompt); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("fixture missing: %v", err)
		}
		t.Skip(err)
	}
	db, url := oracleEndpoint(t)
	code, out, errOut := run(t, "template", "import", prompt, "--db", db, "--name", "mem1-train")
	require.Equal(t, 0, code, errOut)
	text, err := os.ReadFile(prompt)
	require.NoError(t, err)
	sha := storage.TemplateHash(string(text))
	assert.Contains(t, out, sha)

	// Again: a no-op. Another text under that name: refused, nothing changed.
	code, _, errOut = run(t, "template", "import", prompt, "--db", db, "--name", "mem1-train")
	require.Equal(t, 0, code, errOut)
	other := filepath.Join(t.TempDir(), "other.txt")
	require.NoError(t, os.WriteFile(other, []byte("Other {questions}\n"), 0o600))
	code, _, errOut = run(t, "template", "import", other, "--db", db, "--name", "mem1-train")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "duplicate")
	latin := filepath.Join(t.TempDir(), "latin.txt")
	require.NoError(t, os.WriteFile(latin, []byte("Qu\xe9 {questions}\n"), 0o600))
	code, _, errOut = run(t, "template", "import", latin, "--db", db)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "UTF-8")

	code, out, errOut = run(t, "template", "list", "--db", db)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "mem1-train")
	assert.Equal(t, 2, strings.Count(strings.TrimSpace(out), "\n")+1, "header and one template:\n%s", out)

	code, _, errOut = run(t, "run", "--db", db, "--endpoint", url, "--model", oracle.ModelName, "--dataset", "hotpotqa",
		"--objectives", "2", "--tasks", "1", "--policy", "mem1", "--template-name", "mem1-train", "--quiet")
	require.Equal(t, 0, code, errOut)
	code, _, errOut = run(t, "run", "--db", db, "--endpoint", url, "--model", oracle.ModelName, "--dataset", "hotpotqa",
		"--objectives", "2", "--tasks", "1", "--template-name", "nope", "--quiet")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "template import")

	st, err := storage.Open(db)
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	exps, err := st.Experiments(ctx)
	require.NoError(t, err)
	require.Len(t, exps, 1)
	e, err := st.Experiment(ctx, exps[0].ID)
	require.NoError(t, err)
	var cfg experiments.RunConfig
	require.NoError(t, json.Unmarshal([]byte(e.ConfigJSON), &cfg))
	assert.Equal(t, sha, cfg.TemplateSHA256)
	assert.Equal(t, string(text), cfg.TemplateText)
	assert.Equal(t, cfg.Hash(), e.ConfigHash)
	rows, err := st.Rollouts(ctx, e.ID)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	d, err := st.Rollout(ctx, rows[0].ID)
	require.NoError(t, err)
	head, _, _ := strings.Cut(string(text), "{questions}")
	assert.Contains(t, d.Turns[0].Context, "<|im_start|>user\n"+head)

	// The hash changes with the template text.
	plain := cfg
	plain.TemplateSHA256 = storage.TemplateHash("x")
	assert.NotEqual(t, cfg.Hash(), plain.Hash())
}
