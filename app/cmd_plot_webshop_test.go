package app

import (
	"html"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments/figures"
)

// TestPlotWebShopCharts: `plot` draws a WebShop experiment (the scripted
// shopper on the in-process fake WebShop) as reward, with the Table 2
// overlay and the fake server's caveat, and lists the reward-vs-turns chart;
// `paper-figure` titles its panels by reward and its caption says the same.
func TestPlotWebShopCharts(t *testing.T) {
	db := filepath.Join(t.TempDir(), "lab.db")
	code, _, errs := run(t, "webshop-run", "--db", db, "--goals", "0-3")
	require.Equal(t, 0, code, errs)
	dir := t.TempDir()

	_, _, errs = run(t, "plot", "--help")
	assert.Contains(t, errs, "reward-turns")
	assert.Contains(t, errs, "dependency")

	for chart, want := range map[string][]string{
		"accuracy":     {"Final reward ×100 by setting", figures.RewardLabel, "MEM1-WebShop (paper, Table 2)", "AgentLM-13B (paper, Table 2)", ">mem1</text>", ">AgentLM-7B (paper)</text>"},
		"dependency":   {"Dependency by setting", "AgentLM-7B (paper, Table 2)", "setting (WebShop: one goal per task)"},
		"reward-turns": {"Final reward ×100 vs turns used", "turns used", "mean per turn count"},
	} {
		out := filepath.Join(dir, chart+".svg")
		code, _, errs = run(t, "plot", "--db", db, "--experiment", "1", "--chart", chart, "--overlay", "--out", out)
		require.Equal(t, 0, code, errs)
		assert.Contains(t, errs, figures.FakeRewardNote, chart)
		b, err := os.ReadFile(out)
		require.NoError(t, err)
		svg := html.UnescapeString(string(b))
		for _, w := range want {
			assert.Contains(t, svg, w, chart)
		}
		assert.Contains(t, svg, figures.FakeRewardNote, chart)
		assert.NotContains(t, svg, "MEM1-QA (paper)", chart)
	}

	out := filepath.Join(dir, "paper.svg")
	code, _, errs = run(t, "paper-figure", "--db", db, "--experiment", "1", "--out", out)
	require.Equal(t, 0, code, errs)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Contains(t, html.UnescapeString(string(b)), "(a) Final reward ×100")
	caption, err := os.ReadFile(filepath.Join(dir, "paper.caption.txt"))
	require.NoError(t, err)
	assert.Contains(t, string(caption), "WebShop (one goal per task). (a) final reward ×100")
	assert.Contains(t, string(caption), "no product-type term")
}
