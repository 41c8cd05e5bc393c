package views

import (
	"context"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments"
)

func cunit(id int64, task, policy string, em ...float64) experiments.CompareUnit {
	u := experiments.CompareUnit{RolloutID: id, TaskKey: task, Objectives: len(em), ObjectiveEM: em, ObjectiveF1: em,
		Factors: map[string]string{"policy": policy, "model": "m", "template": "default", "retriever": "default", "endpoint": "e"}}
	for _, x := range em {
		u.EM += x
	}
	u.F1 = u.EM
	return u
}

// TestCompareSummaryRows: by hand, tasks t1..t3 with EM per objective
// mem1 1, 1, 0.5 vs full 0, 1, 0.5 → Δ = 1/3 over 3 pairs, wins 1, ties 2;
// the pair (1, 2) is t1 with its own Δ 1, listed first among the largest.
func TestCompareSummaryRows(t *testing.T) {
	us := []experiments.CompareUnit{cunit(1, "t1", "mem1", 1, 1), cunit(2, "t1", "full", 0, 0),
		cunit(3, "t2", "mem1", 1, 1), cunit(4, "t2", "full", 1, 1),
		cunit(5, "t3", "mem1", 1, 0), cunit(6, "t3", "full", 0, 1)}
	r, err := compareSummary(us, 1, 2, 2)
	require.NoError(t, err)
	assert.Equal(t, experiments.CompareSetting{"policy": "mem1"}, r.a)
	require.Len(t, r.rows, 2*len(experiments.CompareMetrics), "this objectives count and pooled, per metric")
	em := r.rows[0]
	assert.Equal(t, "em", em[0])
	assert.Equal(t, "2", em[1])
	assert.Equal(t, "3", em[2])
	assert.Equal(t, fmtStat(1.0/3), em[5])
	assert.Equal(t, "1/2/0", em[8])
	assert.Equal(t, "paired t", em[9])
	assert.Equal(t, "1 ◀", em[10], "the pair's own delta is marked")
	assert.Equal(t, "all", r.rows[1][1])
	require.Len(t, r.largest, 1, "only t1 differs")
	assert.Equal(t, [2]int64{1, 2}, r.ids[0])
	_, err = compareSummary(us, 1, 3, 2)
	assert.ErrorIs(t, err, experiments.ErrNotOneFactor)
}

// TestCompareSummaryOnStoredOracleRollouts: opening a pair in Compare shows
// the summary of mem1 vs full across the two experiments.
func TestCompareSummaryOnStoredOracleRollouts(t *testing.T) {
	st, expA, _ := oracleStore(t)
	ra, err := st.Rollouts(context.Background(), expA)
	require.NoError(t, err)
	u, _ := newTestUI(t, st, nil)
	act(u, func() { u.OpenCompare(ra[0].ID, 0) })
	u.wait()
	cp := u.compare
	require.True(t, cp.loaded, cp.status.Text)
	require.Len(t, cp.summary.rows, 2*len(experiments.CompareMetrics), cp.sumStatus.Text)
	assert.Contains(t, cp.sumStatus.Text, "A = policy=mem1, B = policy=full")
	for _, row := range cp.summary.rows {
		assert.Equal(t, "2", row[2], "two tasks in both experiments")
		assert.Equal(t, "paired t", row[9])
	}
	peak := cp.summary.rows[4]
	assert.Equal(t, "peak", peak[0])
	d, err := strconv.ParseFloat(peak[5], 64)
	require.NoError(t, err)
	assert.Less(t, d, 0.0, "mem1's peak is below full's")
	assert.Contains(t, peak[10], "◀")
}

// TestChartsMemoryAndSignificance: on oracle runs of mem1 and full, the
// accuracy chart marks the objective count where the two policies do not
// differ significantly (the oracle answers alike: p = 1), and the memory
// charts draw the stored rollouts' diagnostics.
func TestChartsMemoryAndSignificance(t *testing.T) {
	st, expA, expB := oracleStore(t)
	u, _ := newTestUI(t, st, nil)
	act(u, func() { require.NoError(t, u.Show(ScreenCharts)) })
	p := u.charts
	act(u, func() { p.selectExperiments(expA, expB) })
	u.wait()
	require.Len(t, p.figs, 1, p.status.Text)
	assert.Contains(t, p.figs[0].Caption, "n.s.", "Holm-adjusted p ≥ 0.05 at 2 objectives")

	act(u, func() { p.choice.SetSelected(chartRetention) })
	u.wait()
	require.Len(t, p.figs, 1)
	assert.Contains(t, p.figs[0].Plot.Title.Text, "Fact retention")
	assert.Len(t, p.figs[0].Labels, 2, "mem1 and full")

	act(u, func() { p.choice.SetSelected(chartComposition) })
	u.wait()
	assert.Contains(t, p.figs[0].Plot.Title.Text, "Context composition per turn")
	assert.Contains(t, p.figs[0].Labels, "information")

	act(u, func() { p.choice.SetSelected(chartPositions) })
	u.wait()
	assert.Equal(t, 4, p.figs[0].Points, "2 series × 2 positions")
}

// TestTraceComposition: Trace draws the opened rollout's context composition
// (o200k tokens per part, per turn).
func TestTraceComposition(t *testing.T) {
	st, expA, _ := oracleStore(t)
	ra, err := st.Rollouts(context.Background(), expA)
	require.NoError(t, err)
	u, _ := newTestUI(t, st, nil)
	act(u, func() { u.OpenRollout(ra[0].ID) })
	u.wait()
	f := u.trace.composition.figure()
	require.NotNil(t, f)
	assert.Contains(t, f.Plot.Title.Text, "rollout #"+strconv.FormatInt(ra[0].ID, 10))
	assert.Contains(t, f.Labels, "prompt")
	assert.Contains(t, f.Labels, "information")
	assert.Equal(t, ra[0].Turns, f.Points, "one point per turn")
}
