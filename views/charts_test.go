package views

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"sync"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/figures"
)

const sampleSeries = "mem1 · Qwen2.5-7B-RL-RAG-Q2-EM-Release"

type bufCloser struct {
	bytes.Buffer
	closed bool
}

func (b *bufCloser) Close() error { b.closed = true; return nil }

// chartsUI opens Charts on the fake store with experiment 1 (one finished mem1
// rollout) selected.
func chartsUI(t *testing.T) (*UI, *chartsPanel) {
	t.Helper()
	st := newFakeStore()
	u, _ := newTestUI(t, st, nil)
	act(u, func() { require.NoError(t, u.Show(ScreenCharts)) })
	p := u.charts
	act(u, func() { p.selectExperiments(1) })
	u.wait()
	return u, p
}

func TestChartsScreenListsExperimentsAndDraws(t *testing.T) {
	u, p := chartsUI(t)
	assert.Equal(t, ScreenCharts, u.Current())
	assert.Contains(t, Screens, ScreenCharts)
	assert.Equal(t, []string{"#2 full n2", "#1 mem1 n2 smoke"}, p.expCheck.Options)
	assert.Equal(t, []string{"#1 mem1 n2 smoke"}, p.expCheck.Selected)
	require.Len(t, p.figs, 1, p.status.Text)
	f := p.figs[0]
	assert.Equal(t, []string{sampleSeries}, f.Labels)
	assert.Equal(t, 1, f.Points, "one group: mem1 at 2 objectives")
	assert.Contains(t, p.status.Text, "1 experiment · 1 group with finished rollouts · 1 point")

	// Error bars are 95% CIs by default, ±1 SE on request; caption and status say which.
	assert.Contains(t, f.Caption, "95% CI")
	assert.Contains(t, p.status.Text, "95% CI")
	act(u, func() { p.seBars.SetChecked(true) })
	u.wait()
	assert.Contains(t, p.figs[0].Caption, "standard error")
	assert.Contains(t, p.status.Text, "standard error")
	act(u, func() { p.seBars.SetChecked(false) })
	u.wait()

	// The overlay adds the paper's series and the citation.
	act(u, func() { p.overlay.SetChecked(true) })
	u.wait()
	assert.Contains(t, p.figs[0].Labels, "MEM1-QA (paper)")
	assert.Contains(t, p.figs[0].Caption, figures.Citation)
	assert.Contains(t, p.status.Text, figures.Citation)

	// The context chart draws the finished rollout's three turns.
	act(u, func() { p.choice.SetSelected(chartContext) })
	u.wait()
	require.Len(t, p.figs, 1)
	assert.Equal(t, 3, p.figs[0].Points)
	assert.Equal(t, []string{sampleSeries + ", n=2"}, p.figs[0].Labels)

	// The pair shows accuracy and peak tokens side by side.
	act(u, func() { p.choice.SetSelected(chartPair) })
	u.wait()
	require.Len(t, p.figs, 2)
	assert.Len(t, p.grid.Objects, 2)
	assert.Contains(t, p.figs[0].Plot.Title.Text, "EM vs number of objectives")
	assert.Contains(t, p.figs[1].Plot.Title.Text, "Peak tokens")
	// The peak chart's axis says which count it draws; the overlay is for the
	// paper's count only.
	assert.Equal(t, figures.PeakPaperLabel, p.figs[1].Plot.Y.Label.Text)
	assert.Contains(t, p.figs[1].Labels, "MEM1-QA (paper)")
	act(u, func() { p.peak.SetSelected(peakRequest) })
	u.wait()
	require.Len(t, p.figs, 2)
	assert.Equal(t, figures.PeakRequestLabel, p.figs[1].Plot.Y.Label.Text)
	assert.NotContains(t, p.figs[1].Labels, "MEM1-QA (paper)")
	assert.Contains(t, p.figs[0].Labels, "MEM1-QA (paper)", "accuracy keeps its overlay")
	assert.Contains(t, p.status.Text, "not on peak charts")
	act(u, func() { p.peak.SetSelected(peakPaper) })
	u.wait()

	// F1 per objective.
	act(u, func() {
		p.choice.SetSelected(chartAccuracy)
		p.metric.SetSelected("F1")
		p.perObj.SetChecked(true)
	})
	u.wait()
	assert.Equal(t, "F1 per objective", p.figs[0].Plot.Y.Label.Text)

	// Unticking every experiment leaves an empty, labelled chart.
	act(u, func() { p.expCheck.SetSelected(nil) })
	u.wait()
	assert.Contains(t, p.figs[0].Plot.Title.Text, "no finished rollouts")
}

func TestChartViewRendersOffTheUIThreadAndFollowsSize(t *testing.T) {
	u, p := chartsUI(t)
	v := p.views[0]
	require.NotNil(t, v.figure())
	var first fyne.Size
	act(u, func() { first = v.raster.Size() })
	_ = first
	// The first call returns at once (a placeholder) and renders in the background.
	img := v.generate(640, 400)
	assert.LessOrEqual(t, img.Bounds().Dx(), 640)
	u.wait()
	<-v.renderedOnce
	img = v.generate(640, 400)
	assert.Equal(t, 640, img.Bounds().Dx())
	assert.Equal(t, 400, img.Bounds().Dy())
	// A new size renders again at that size.
	_ = v.generate(900, 500)
	u.wait()
	img = v.generate(900, 500)
	assert.Equal(t, 900, img.Bounds().Dx())
	assert.Equal(t, 500, img.Bounds().Dy())
}

func TestChartsExports(t *testing.T) {
	u, p := chartsUI(t)
	svg := &bufCloser{}
	act(u, func() { p.exportFigure(svg, "svg") })
	u.wait()
	assert.True(t, svg.closed)
	assert.Contains(t, svg.String(), "<svg")
	assert.Contains(t, svg.String(), "mem1 · Qwen2.5-7B-RL-RAG-Q2-EM-Release")
	assert.Contains(t, p.status.Text, "Saved accuracy chart as SVG (single column)")

	pdf := &bufCloser{}
	act(u, func() { p.size.SetSelected("double"); p.exportFigure(pdf, "pdf") })
	u.wait()
	assert.True(t, bytes.HasPrefix(pdf.Bytes(), []byte("%PDF-")))

	bad := &bufCloser{}
	act(u, func() { p.dpi.SetText("many"); p.exportFigure(bad, "png") })
	u.wait()
	assert.True(t, bad.closed)
	assert.Contains(t, p.status.Text, `PNG dpi "many"`)

	for what, header := range map[string][]string{exportRollouts: experiments.RolloutColumns, exportTurns: experiments.TurnColumns,
		exportAggregates: experiments.AggregateColumns} {
		b := &bufCloser{}
		act(u, func() { p.exportTable(b, what) })
		u.wait()
		require.True(t, b.closed)
		recs, err := csv.NewReader(bytes.NewReader(b.Bytes())).ReadAll()
		require.NoError(t, err, what)
		assert.Equal(t, header, recs[0], what)
		assert.Greater(t, len(recs), 1, what)
		assert.Contains(t, p.status.Text, "Saved "+what)
	}
	traj := &bufCloser{}
	act(u, func() { p.exportTable(traj, exportTrajectories) })
	u.wait()
	assert.Contains(t, traj.String(), `"Golden_answer"`)
	assert.Contains(t, p.status.Text, "1 finished rollouts")
}

// presetRunner records the configs it is given and reports one finished
// rollout each, as experiment 100+i.
type presetRunner struct {
	mu   sync.Mutex
	cfgs []experiments.RunConfig
}

func (r *presetRunner) Run(ctx context.Context, cfg experiments.RunConfig, progress func(experiments.Progress)) (experiments.Summary, error) {
	r.mu.Lock()
	id := int64(100 + len(r.cfgs))
	r.cfgs = append(r.cfgs, cfg)
	r.mu.Unlock()
	if cfg.Objectives == 16 && cfg.Policy == "full" {
		return experiments.Summary{}, fmt.Errorf("dataset yields no 16-objective task")
	}
	progress(experiments.Progress{Experiment: id, Total: cfg.Tasks, Done: cfg.Tasks})
	return experiments.Summary{Experiment: id}, nil
}

func TestTable1PresetRunsTheGridAndOpensTheCharts(t *testing.T) {
	st := newFakeStore()
	r := &presetRunner{}
	u, _ := newTestUI(t, st, r)
	p := u.charts
	base := defaultRun()
	base.Endpoint, base.Model = "http://gpu:8000/v1", "Mem-Lab/Qwen2.5-7B-RL-RAG-Q2-EM-Release"
	act(u, func() { p.startPreset(base, 5) })
	u.wait()
	assert.Equal(t, ScreenCharts, u.Current())
	r.mu.Lock()
	cfgs := append([]experiments.RunConfig(nil), r.cfgs...)
	r.mu.Unlock()
	require.Len(t, cfgs, 1, "one experiment with the whole grid, not ten")
	c := cfgs[0]
	assert.Equal(t, experiments.Table1Objectives, c.ObjectivesGrid)
	assert.Equal(t, experiments.Table1Policies, c.Policies)
	assert.Equal(t, 5, c.Tasks)
	assert.Equal(t, 0, c.MaxTurns, "each setting gets MEM1's turn limit for its count")
	assert.Equal(t, "http://gpu:8000/v1", c.Endpoint)
	assert.Equal(t, chartPair, p.choice.Selected)
	assert.True(t, p.overlay.Checked)
	require.Len(t, p.figs, 2)
	assert.Contains(t, p.figs[0].Labels, "MEM1-QA (paper)")
	assert.Equal(t, "Preset done: experiment #100, 0 groups", p.presetStatus.Text)
	assert.Equal(t, int64(100), u.runs.selectedID, "Runs follows the preset's experiment like any run")
	assert.Nil(t, p.presetStop)
	assert.False(t, p.presetBt.Disabled())

	// Without a runner the preset says so.
	u2, _ := newTestUI(t, newFakeStore(), nil)
	act(u2, func() { u2.charts.startPreset(base, 5) })
	assert.Equal(t, "Runs are unavailable in this build", u2.charts.presetStatus.Text)
}

func TestOpenCharts(t *testing.T) {
	st := newFakeStore()
	u, _ := newTestUI(t, st, nil)
	act(u, func() { require.NoError(t, u.OpenCharts(ChartsOptions{Chart: "pair", Overlay: true})) })
	u.wait()
	p := u.charts
	assert.Equal(t, ScreenCharts, u.Current())
	assert.ElementsMatch(t, []string{"#2 full n2", "#1 mem1 n2 smoke"}, p.expCheck.Selected, "nil = every experiment")
	require.Len(t, p.figs, 2)
	assert.Contains(t, p.figs[1].Labels, "MEM1-QA (paper)")
	act(u, func() { require.NoError(t, u.OpenCharts(ChartsOptions{Chart: "frontier", Experiments: []int64{1}})) })
	u.wait()
	assert.Equal(t, chartFrontier, p.choice.Selected)
	assert.Equal(t, []string{"#1 mem1 n2 smoke"}, p.expCheck.Selected)
	assert.NotContains(t, p.figs[0].Labels, "MEM1-QA (paper)")
	act(u, func() { assert.Error(t, u.OpenCharts(ChartsOptions{Chart: "pie"})) })
}

func TestChartsRedrawOnLiveProgress(t *testing.T) {
	u, p := chartsUI(t)
	before := p.seq
	act(u, func() { p.live(experiments.Progress{Experiment: 2, Done: 1}) })
	assert.Equal(t, before, p.seq, "an experiment not shown is ignored")
	act(u, func() { p.live(experiments.Progress{Experiment: 1, Done: 1}) })
	assert.Equal(t, before+1, p.seq)
	act(u, func() { p.live(experiments.Progress{Experiment: 1, Done: 2}) })
	assert.Equal(t, before+1, p.seq, "at most every 2 s")
	u.wait()
}

func TestChartsDatasetFilter(t *testing.T) {
	st := newFakeStore()
	nq := finishedRollout()
	nq.ID, nq.Dataset, nq.TaskKey, nq.Objectives, nq.EM = 13, "nq", "nq/n1/0000", 1, 0
	st.details[nq.ID] = nq
	st.rollouts[1] = append(st.rollouts[1], nq.RolloutRow)
	u, _ := newTestUI(t, st, nil)
	p := u.charts
	act(u, func() { p.selectExperiments(1) })
	u.wait()
	assert.Equal(t, []string{allDatasets, "hotpotqa", "nq"}, p.dataset.Options)
	assert.Equal(t, 2, p.figs[0].Points, "mem1 at 1 (nq) and 2 (hotpotqa) objectives")
	act(u, func() { p.dataset.SetSelected("nq") })
	u.wait()
	assert.Equal(t, 1, p.figs[0].Points)
	assert.Contains(t, p.status.Text, "dataset nq")
	b := &bufCloser{}
	act(u, func() { p.exportTable(b, exportAggregates) })
	u.wait()
	recs, err := csv.NewReader(bytes.NewReader(b.Bytes())).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 2, "only the nq group")
	assert.Equal(t, "1", recs[1][2])
}

func TestCtrlEExportsFromCharts(t *testing.T) {
	u, w := newTestUI(t, newFakeStore(), nil)
	act(u, func() {
		w.canvas.TypedShortcut(&desktop.CustomShortcut{KeyName: fyne.KeyE, Modifier: fyne.KeyModifierShortcutDefault})
	})
	u.wait()
	assert.Equal(t, ScreenCharts, u.Current())
}

// blockingRunner reports one step, then waits for its context to end.
type blockingRunner struct{ started chan struct{} }

func (r *blockingRunner) Run(ctx context.Context, cfg experiments.RunConfig, progress func(experiments.Progress)) (experiments.Summary, error) {
	progress(experiments.Progress{Experiment: 1, Total: cfg.Tasks})
	close(r.started)
	<-ctx.Done()
	return experiments.Summary{Experiment: 1}, fmt.Errorf("run: %w", ctx.Err())
}

func TestStopPreset(t *testing.T) {
	r := &blockingRunner{started: make(chan struct{})}
	u, _ := newTestUI(t, newFakeStore(), r)
	p := u.charts
	act(u, func() { p.startPreset(defaultRun(), 3) })
	<-r.started
	act(u, func() {
		assert.True(t, p.presetBt.Disabled())
		assert.False(t, p.cancelBt.Disabled())
		p.stopPreset()
	})
	u.wait()
	assert.Contains(t, p.presetStatus.Text, "Preset ended (experiment #1)")
	assert.Contains(t, p.presetStatus.Text, "context canceled")
	assert.False(t, p.presetBt.Disabled())
	assert.True(t, p.cancelBt.Disabled())
}
