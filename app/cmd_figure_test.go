package app

import (
	"context"
	"html"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/storage"
)

// TestPaperFigure: the multi-panel figure of oracle runs (mem1 vs full) as
// SVG and PDF, single and double column, with a caption file giving n, the
// tests and the experiments' config hashes.
func TestPaperFigure(t *testing.T) {
	db := oracleStore(t)
	dir := t.TempDir()
	svg := filepath.Join(dir, "fig.svg")
	code, _, errOut := run(t, "paper-figure", "--db", db, "--experiment", "1,2", "--out", svg, "--a", "policy=mem1", "--b", "policy=full")
	require.Equal(t, 0, code, errOut)
	b, err := os.ReadFile(svg)
	require.NoError(t, err)
	text := html.UnescapeString(string(b))
	for _, want := range []string{"(a) Accuracy", "(b) Peak tokens", "(c) Accuracy vs memory",
		"(d) Fact retention", "mem1 · mem1lab-oracle", "full · mem1lab-oracle", "objectives (log₂)", "turns after retrieval"} {
		assert.Contains(t, text, want)
	}
	// The oracle answers alike under both policies: EM does not differ, so
	// the 2-objective count is marked n.s.
	assert.Contains(t, text, "n.s.")

	capText, err := os.ReadFile(filepath.Join(dir, "fig.caption.txt"))
	require.NoError(t, err)
	caption := string(capText)
	st, err := storage.Open(db)
	require.NoError(t, err)
	defer st.Close()
	for _, id := range []int64{1, 2} {
		e, err := st.Experiment(context.Background(), id)
		require.NoError(t, err)
		assert.Contains(t, caption, "config hash "+e.ConfigHash)
	}
	for _, want := range []string{"95% CI", "n = 3", "paired-t", "Holm", "policy=mem1", "objectives 2, tasks 3"} {
		assert.Contains(t, caption, want)
	}

	// PDF with fonts embedded, both sizes.
	for _, size := range []string{"single", "double"} {
		pdf := filepath.Join(dir, size+".pdf")
		code, _, errOut = run(t, "paper-figure", "--db", db, "--experiment", "1,2", "--out", pdf, "--size", size)
		require.Equal(t, 0, code, errOut)
		b, err := os.ReadFile(pdf)
		require.NoError(t, err)
		assert.True(t, strings.HasPrefix(string(b), "%PDF"))
		assert.Contains(t, string(b), "/FontFile", "fonts embedded")
		_, err = os.Stat(filepath.Join(dir, size+".caption.txt"))
		assert.NoError(t, err)
	}
	code, _, errOut = run(t, "paper-figure", "--db", db, "--experiment", "1", "--out", filepath.Join(dir, "x.png"))
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "vector only")
}

// TestPlotDiagnosticCharts: `mem1lab plot` draws the memory-diagnostics
// charts of oracle runs.
func TestPlotDiagnosticCharts(t *testing.T) {
	db := oracleStore(t)
	dir := t.TempDir()
	for chart, want := range map[string][]string{
		"composition": {"Context composition per turn — full · mem1lab-oracle, n=2", "prompt", "information", "state", "peak "},
		"retention":   {"Fact retention in the internal state", "turns after retrieval", "mem1 · mem1lab-oracle"},
		"positions":   {"Accuracy by objective position", "full · mem1lab-oracle, n=2"},
	} {
		out := filepath.Join(dir, chart+".svg")
		code, _, errOut := run(t, "plot", "--db", db, "--experiment", "1,2", "--chart", chart, "--out", out)
		require.Equal(t, 0, code, errOut)
		b, err := os.ReadFile(out)
		require.NoError(t, err)
		text := html.UnescapeString(string(b))
		for _, w := range want {
			assert.Contains(t, text, w, chart)
		}
	}
	out := filepath.Join(dir, "full.svg")
	code, _, errOut := run(t, "plot", "--db", db, "--experiment", "1,2", "--chart", "composition", "--series", "mem1 · mem1lab-oracle, n=2", "--out", out)
	require.Equal(t, 0, code, errOut)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Contains(t, html.UnescapeString(string(b)), "— mem1 · mem1lab-oracle, n=2")
}
