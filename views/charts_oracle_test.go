package views

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/oracle"
)

// TestChartsPresetWithOracleRuns plays the Table 1 preset (two tasks per
// setting) against the retrieval-oracle endpoint over the real store and the
// shared bundle, and checks the charts it opens.
func TestChartsPresetWithOracleRuns(t *testing.T) {
	st, url := bundleOracle(t)
	u, _ := newTestUI(t, st, &experiments.Runner{Store: st, Env: st})
	base := experiments.DefaultRunConfig()
	base.Endpoint, base.Model, base.Concurrency = url, oracle.ModelName, 2
	act(u, func() { u.charts.startPreset(base, 2) })
	u.wait()
	p := u.charts
	assert.Regexp(t, `^Preset done: experiment #\d+, 10 groups$`, p.presetStatus.Text)
	assert.Len(t, p.expCheck.Selected, 1, "one experiment holds the whole grid")
	require.Len(t, p.figs, 2, p.status.Text)
	for _, f := range p.figs {
		assert.Equal(t, 10, f.Points, "mem1 and full at 1, 2, 4, 8, 16 objectives")
		assert.Contains(t, f.Labels, "mem1 · "+oracle.ModelName)
		assert.Contains(t, f.Labels, "full · "+oracle.ModelName)
		assert.Contains(t, f.Labels, "MEM1-QA (paper)")
	}
	assert.Contains(t, p.status.Text, "1 experiment · 10 groups with finished rollouts · 20 points")
}
