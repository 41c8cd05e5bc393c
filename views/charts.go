package views

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"gonum.org/v1/plot/vg"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/figures"
	"github.com/mem1lab/mem1lab/storage"
)

// Chart choices offered by the Charts screen, in menu order. "Accuracy + peak
// tokens" shows the two charts side by side (what the Table 1 preset opens).
const (
	chartAccuracy = "Accuracy vs objectives"
	chartPeak     = "Peak tokens vs objectives"
	chartContext  = "Context size per turn"
	chartFrontier = "Accuracy–memory frontier"
	chartTime     = "Time per trajectory"
	chartTurns    = "Turns used"
	// chartDependency is eval.py's dependency; chartRewardTurns each
	// rollout's score (WebShop: final reward ×100) against its turns.
	chartDependency  = "Dependency vs objectives"
	chartRewardTurns = "Reward vs turns"
	chartPair        = "Accuracy + peak tokens"
	// Memory diagnostics (figures.DiagnosticKinds).
	chartComposition = "Context composition (memory)"
	chartRetention   = "Fact retention (memory)"
	chartPositions   = "Accuracy by objective position"
)

var chartChoices = []string{chartAccuracy, chartPeak, chartContext, chartFrontier, chartTime, chartTurns,
	chartDependency, chartRewardTurns, chartPair, chartComposition, chartRetention, chartPositions}

// chartKinds maps a choice to the charts it shows.
var chartKinds = map[string][]figures.Kind{
	chartAccuracy: {figures.Accuracy},
	chartPeak:     {figures.Peak},
	chartContext:  {figures.Context},
	chartFrontier: {figures.Frontier},
	chartTime:     {figures.Time},
	chartTurns:    {figures.Turns},

	chartDependency:  {figures.Dependency},
	chartRewardTurns: {figures.RewardTurns},
	chartPair:        {figures.Accuracy, figures.Peak},

	chartComposition: {figures.Composition},
	chartRetention:   {figures.Retention},
	chartPositions:   {figures.Positions},
}

// overlayLabel is the paper-overlay toggle: Table 1 on QA charts, Table 2 on
// WebShop ones.
const overlayLabel = "MEM1 paper overlay (Table 1; WebShop: Table 2)"

// allDatasets is the dataset filter's "no filter" choice.
const allDatasets = "all datasets"

const (
	groupModelPolicy = "model + policy"
	groupPolicy      = "policy (models pooled)"
)

// Peak-count choices of the Charts screen (figures.PeakPaper, PeakRequest).
const (
	peakPaper   = "paper (eval.py, o200k)"
	peakRequest = "request (as served)"
)

// Export choices of the Charts screen.
const (
	exportRollouts     = "rollouts CSV"
	exportTurns        = "turns CSV"
	exportAggregates   = "aggregates CSV"
	exportTrajectories = "trajectories JSONL (MEM1)"
)

// chartSettings is a snapshot of the controls, taken on the UI thread.
type chartSettings struct {
	ids          []int64
	dataset      string // "" = every dataset
	choice       string
	metric       string
	perObjective bool
	byModel      bool
	overlay      bool
	peakCount    string // figures.PeakPaper or figures.PeakRequest
	bars         string // figures.BarsCI95 or figures.BarsSE
	// fakeReward: a selected experiment ran on mem1lab's fake WebShop.
	fakeReward bool
	fg         color.Color
	fontSize   vg.Length // points; the theme's text size on screen
}

func (s chartSettings) options(k figures.Kind) figures.Options {
	return figures.Options{Kind: k, Metric: s.metric, PerObjective: s.perObjective, Overlay: s.overlay, Foreground: s.fg,
		FontSize: s.fontSize, PeakCount: s.peakCount, Bars: s.bars, FakeReward: s.fakeReward,
		Dodge: s.fg != nil} // on screen (fg set) coinciding series are shifted apart
}

// chartsPanel is the Charts screen: pick experiments, a chart, the metric and
// grouping, toggle the MEM1 Table 1 overlay, export figures and tables, and run
// the "Reproduce MEM1 Table 1" preset. Data is loaded and figures are built and
// rendered in goroutines; results come back through fyne.Do.
type chartsPanel struct {
	u       *UI
	st      chartsStore
	content fyne.CanvasObject

	exps     []storage.ExperimentRow
	selected map[int64]bool
	// autoSelect picks the newest experiment while nothing was chosen yet.
	autoSelect bool
	expCheck   *widget.CheckGroup
	labelID    map[string]int64
	syncing    bool

	choice   *widget.Select
	metric   *widget.RadioGroup
	perObj   *widget.Check
	grouping *widget.Select
	dataset  *widget.Select
	overlay  *widget.Check
	peak     *widget.Select // which peak-token count Peak and Frontier draw
	seBars   *widget.Check  // ±1 SE error bars instead of 95% CIs
	size     *widget.Select
	dpi      *widget.Entry
	status   *widget.Label
	// presetStatus reports the Table 1 preset's progress.
	presetStatus *widget.Label
	presetBt     *widget.Button
	cancelBt     *widget.Button
	grid         *fyne.Container
	views        []*chartView

	seq        int
	figs       []*figures.Figure // last built, one per view
	presetStop context.CancelFunc
	presetForm *presetForm // the preset dialog's fields while it is open
	lastLive   time.Time
	drawnSig   string // signature() when reload last redrew
	dest       string // the path of the file being saved
}

// chartsStore is what the Charts screen reads: the experiments to offer and
// the rollouts and turns the figures and CSV exports are made of.
type chartsStore interface {
	figures.Source
	experiments.ExportStore
	// Datasets lists the imported datasets (the preset's dataset picker).
	Datasets(ctx context.Context) ([]storage.DatasetInfo, error)
	// Experiments lists experiments, newest first, with rollout counts and means.
	Experiments(ctx context.Context) ([]storage.ExperimentRow, error)
}

func newChartsPanel(u *UI) *chartsPanel {
	p := &chartsPanel{u: u, st: u.deps.Store, selected: map[int64]bool{}, labelID: map[string]int64{}, autoSelect: true}
	p.expCheck = widget.NewCheckGroup(nil, func(labels []string) {
		if p.syncing {
			return
		}
		p.autoSelect = false
		p.selected = map[int64]bool{}
		for _, l := range labels {
			p.selected[p.labelID[l]] = true
		}
		p.redraw()
	})
	p.choice = widget.NewSelect(chartChoices, func(string) { p.enableMetric(); p.redraw() })
	p.metric = widget.NewRadioGroup([]string{"EM", "F1"}, func(string) { p.redraw() })
	p.metric.Horizontal = true
	p.metric.Required = true
	p.perObj = widget.NewCheck("per objective", func(bool) { p.redraw() })
	p.grouping = widget.NewSelect([]string{groupModelPolicy, groupPolicy}, func(string) { p.redraw() })
	p.dataset = widget.NewSelect([]string{allDatasets}, func(string) { p.redraw() })
	p.overlay = widget.NewCheck(overlayLabel, func(bool) { p.redraw() })
	p.peak = widget.NewSelect([]string{peakPaper, peakRequest}, func(string) { p.redraw() })
	p.seBars = widget.NewCheck("±1 SE bars (default: 95% CI)", func(bool) { p.redraw() })
	p.size = widget.NewSelect([]string{figures.SingleColumn.Name, figures.DoubleColumn.Name}, nil)
	p.dpi = widget.NewEntry()
	p.dpi.SetText("300")
	p.status = widget.NewLabel("")
	p.status.Wrapping = fyne.TextWrapWord
	p.presetStatus = widget.NewLabel("")
	p.presetStatus.Wrapping = fyne.TextWrapWord

	p.syncing = true
	p.choice.SetSelected(chartAccuracy)
	p.metric.SetSelected("EM")
	p.grouping.SetSelected(groupModelPolicy)
	p.dataset.SetSelected(allDatasets)
	p.peak.SetSelected(peakPaper)
	p.size.SetSelected(figures.SingleColumn.Name)
	p.syncing = false
	p.enableMetric()

	exportFig := func(format string) *widget.Button {
		return widget.NewButton(strings.ToUpper(format), func() { p.saveDialog("figure."+format, func(w io.WriteCloser) { p.exportFigure(w, format) }) })
	}
	exportTable := widget.NewSelect([]string{exportRollouts, exportTurns, exportAggregates, exportTrajectories}, nil)
	exportTable.PlaceHolder = "Export table…"
	exportTable.OnChanged = func(what string) {
		if what == "" {
			return
		}
		name := map[string]string{exportRollouts: "rollouts.csv", exportTurns: "turns.csv", exportAggregates: "aggregates.csv",
			exportTrajectories: "trajectories.jsonl"}[what]
		p.saveDialog(name, func(w io.WriteCloser) { p.exportTable(w, what) })
		exportTable.ClearSelected()
	}
	p.presetBt = widget.NewButton(experiments.Table1PresetName+"…", p.presetDialog)
	p.cancelBt = widget.NewButton("Stop preset", p.stopPreset)
	p.cancelBt.Disable()

	p.views = []*chartView{newChartView(u), newChartView(u)}
	p.grid = container.NewGridWithColumns(1, p.views[0].raster)

	bold := func(s string) *widget.Label {
		return widget.NewLabelWithStyle(s, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	}
	controls := container.NewVBox(
		bold("Chart"), p.choice,
		bold("Metric"), p.metric, p.perObj,
		bold("Grouping"), p.grouping,
		bold("Dataset"), p.dataset,
		bold("Peak tokens"), p.peak,
		p.overlay, p.seBars,
		widget.NewSeparator(),
		bold("Export figure"), container.NewGridWithColumns(2, widget.NewLabel("size"), p.size, widget.NewLabel("PNG dpi"), p.dpi),
		container.NewGridWithColumns(3, exportFig("png"), exportFig("svg"), exportFig("pdf")),
		exportTable,
		widget.NewSeparator(),
		p.presetBt, p.cancelBt, p.presetStatus,
	)
	expBox := container.NewBorder(
		container.NewBorder(nil, nil, bold("Experiments"), widget.NewButton("Refresh", p.reload)),
		nil, nil, nil, container.NewVScroll(p.expCheck))
	left := container.NewVSplit(expBox, container.NewVScroll(controls))
	left.Offset = 0.35
	u.rememberSplit("charts.left", left)
	main := container.NewBorder(nil, p.status, nil, nil, p.grid)
	split := container.NewHSplit(left, main)
	split.Offset = 0.25
	u.rememberSplit("charts.split", split)
	p.content = split

	ev := &u.events
	ev.RunProgress.Subscribe(p.live) // charts of a running experiment follow it (at most every 2 s)
	ev.ExperimentCreated.Subscribe(func(int64) { p.reload() })
	ev.ExperimentFinished.Subscribe(func(RunEnded) { p.reload() })
	u.follow(ScreenCharts, p.reload)
	return p
}

// usesMetric reports whether a chart choice plots EM or F1.
func usesMetric(choice string) bool {
	for _, k := range chartKinds[choice] {
		if k == figures.Accuracy || k == figures.Frontier {
			return true
		}
	}
	return false
}

// enableMetric offers the EM/F1 and per-objective toggles only for charts
// that plot accuracy.
func (p *chartsPanel) enableMetric() {
	if usesMetric(p.choice.Selected) {
		p.metric.Enable()
		p.perObj.Enable()
	} else {
		p.metric.Disable()
		p.perObj.Disable()
	}
}

// screenFontSize is the base text size in points for a chart h Fyne units
// tall: the theme's text size, growing with the chart so a large canvas
// reads as well as the exported figure.
func screenFontSize(h float32) vg.Length {
	return vg.Length(max(theme.TextSize(), h/36))
}

// reload lists the experiments again, keeping the selection; with nothing
// selected yet it selects the newest experiment. The charts are redrawn when
// the list or a charted experiment's counts changed (another process's
// heartbeats alone redraw nothing).
func (p *chartsPanel) reload() {
	background(p.u, func(ctx context.Context) ([]storage.ExperimentRow, error) {
		return p.st.Experiments(ctx)
	}, func(es []storage.ExperimentRow, err error) {
		if err != nil {
			p.status.SetText("Could not list experiments: " + err.Error())
			return
		}
		p.setExperiments(es)
		sig := p.signature()
		if sig == p.drawnSig && p.figs != nil {
			return
		}
		p.drawnSig = sig
		p.redraw()
	})
}

// signature sums up what the charts are drawn from: the listed experiments and
// the selected ones' statuses and counts.
func (p *chartsPanel) signature() string {
	var b strings.Builder
	for _, e := range p.exps {
		fmt.Fprintf(&b, "%d,", e.ID)
		if p.selected[e.ID] {
			fmt.Fprintf(&b, "%s/%d/%d/%d;", e.Status, e.Done, e.Failed, e.Rollouts)
		}
	}
	return b.String()
}

func (p *chartsPanel) setExperiments(es []storage.ExperimentRow) {
	p.exps = es
	p.labelID = map[string]int64{}
	labels := make([]string, len(es))
	known := map[int64]bool{}
	for i, e := range es {
		labels[i] = experimentLabel(e)
		p.labelID[labels[i]] = e.ID
		known[e.ID] = true
	}
	for id := range p.selected {
		if !known[id] {
			delete(p.selected, id)
		}
	}
	if p.autoSelect && len(p.selected) == 0 && len(es) > 0 {
		p.selected[es[0].ID] = true
	}
	var sel []string
	for i, e := range es {
		if p.selected[e.ID] {
			sel = append(sel, labels[i])
		}
	}
	p.syncing = true
	p.expCheck.Options = labels
	p.expCheck.SetSelected(sel)
	p.expCheck.Refresh()
	p.syncing = false
}

// selectExperiments replaces the selection (ids of listed experiments) and redraws.
func (p *chartsPanel) selectExperiments(ids ...int64) {
	p.autoSelect = false
	p.selected = map[int64]bool{}
	for _, id := range ids {
		p.selected[id] = true
	}
	p.setExperiments(p.exps)
	p.redraw()
}

// settings snapshots the controls (UI thread).
func (p *chartsPanel) settings() chartSettings {
	s := chartSettings{choice: p.choice.Selected, metric: strings.ToLower(p.metric.Selected),
		perObjective: p.perObj.Checked, byModel: p.grouping.Selected != groupPolicy, overlay: p.overlay.Checked,
		peakCount: figures.PeakPaper, bars: figures.BarsCI95,
		fg: theme.Color(theme.ColorNameForeground), fontSize: vg.Length(theme.TextSize())}
	if p.seBars.Checked {
		s.bars = figures.BarsSE
	}
	if d := p.dataset.Selected; d != allDatasets {
		s.dataset = d
	}
	if p.peak.Selected == peakRequest {
		s.peakCount = figures.PeakRequest
	}
	if _, ok := chartKinds[s.choice]; !ok {
		s.choice = chartAccuracy
	}
	for id, on := range p.selected {
		if on {
			s.ids = append(s.ids, id)
		}
	}
	for _, e := range p.exps {
		if p.selected[e.ID] && fakeWebShop(e.ConfigJSON) {
			s.fakeReward = true
		}
	}
	sort.Slice(s.ids, func(i, j int) bool { return s.ids[i] < s.ids[j] })
	return s
}

// notSignificant compares the two series of aggs when there are exactly two
// (model, policy) series differing in one of them (experiments.Compare on
// metric, paired by task) and returns the objective counts where the
// Holm-adjusted p is at least 0.05; nil otherwise or on any error (the chart
// then shows no marks).
func notSignificant(ctx context.Context, st Store, ids []int64, aggs []experiments.Aggregate, metric string) []int {
	type series struct{ model, policy string }
	seen := map[series]bool{}
	var ss []series
	for _, a := range aggs {
		k := series{a.Model, a.Policy}
		if !seen[k] {
			seen[k] = true
			ss = append(ss, k)
		}
	}
	if len(ss) != 2 {
		return nil
	}
	var a, b experiments.CompareSetting
	switch {
	case ss[0].policy != ss[1].policy && ss[0].model == ss[1].model:
		a, b = experiments.CompareSetting{"policy": ss[0].policy}, experiments.CompareSetting{"policy": ss[1].policy}
	case ss[0].model != ss[1].model && ss[0].policy == ss[1].policy && ss[0].model != "":
		a, b = experiments.CompareSetting{"model": ss[0].model}, experiments.CompareSetting{"model": ss[1].model}
	default:
		return nil
	}
	if metric == "" {
		metric = "em"
	}
	cmps, err := experiments.ExperimentComparisons(ctx, st, a, b, []string{metric}, experiments.CompareOptions{Seed: 1}, ids...)
	if err != nil {
		return nil
	}
	var out []int
	for _, r := range cmps[0].Rows {
		if !r.Pooled && r.PHolm >= 0.05 {
			out = append(out, r.Objectives)
		}
	}
	return out
}

// loadChartData is figures.Load with the panel's settings.
func loadChartData(ctx context.Context, st figures.Source, ids []int64, dataset string, byModel, curves bool) (figures.Data, []string, error) {
	return figures.Load(ctx, st, ids, figures.LoadOptions{Dataset: dataset, ByModel: byModel, Curves: curves})
}

type builtCharts struct {
	data     figures.Data
	datasets []string
	figs     []*figures.Figure
}

// redraw loads the data for the current settings and rebuilds the figures in
// the background; only the latest request's result is applied.
func (p *chartsPanel) redraw() {
	if p.syncing {
		return
	}
	p.seq++
	seq := p.seq
	s := p.settings()
	kinds := chartKinds[s.choice]
	needCurves := false
	for _, k := range kinds {
		needCurves = needCurves || k == figures.Context
	}
	p.setColumns(len(kinds))
	background(p.u, func(ctx context.Context) (builtCharts, error) {
		d, datasets, err := loadChartData(ctx, p.st, s.ids, s.dataset, s.byModel, needCurves)
		if err != nil {
			return builtCharts{}, err
		}
		out := builtCharts{data: d, datasets: datasets}
		for _, k := range kinds {
			o := s.options(k)
			var f *figures.Figure
			if figures.IsDiagnostic(k) {
				dd, err := figures.LoadDiagnostics(ctx, p.u.deps.Store, s.ids, s.byModel)
				if err != nil {
					return builtCharts{}, err
				}
				f, err = figures.BuildDiagnostic(dd, o)
				if err != nil {
					return builtCharts{}, err
				}
			} else {
				if k == figures.Accuracy {
					o.NotSignificant = notSignificant(ctx, p.u.deps.Store, s.ids, d.Aggregates, s.metric)
				}
				if f, err = figures.Build(d, o); err != nil {
					return builtCharts{}, err
				}
			}
			out.figs = append(out.figs, f)
		}
		return out, nil
	}, func(b builtCharts, err error) {
		if seq != p.seq {
			return
		}
		if err != nil {
			p.status.SetText("Could not draw the chart: " + err.Error())
			return
		}
		p.figs = b.figs
		p.syncing = true
		p.dataset.Options = append([]string{allDatasets}, b.datasets...)
		p.dataset.Refresh()
		p.syncing = false
		points := 0
		for i, f := range b.figs {
			p.views[i].setFigure(f)
			points += f.Points
		}
		groups := 0
		for _, a := range b.data.Aggregates {
			if a.EM.N > 0 {
				groups++
			}
		}
		if b.data.WebShop { // reward charts: EM/F1 and per objective do not apply
			p.metric.Disable()
			p.perObj.Disable()
		} else {
			p.enableMetric()
		}
		msg := fmt.Sprintf("%s · %s with finished rollouts · %s", plural(len(s.ids), "experiment", "experiments"),
			plural(groups, "group", "groups"), plural(points, "point", "points"))
		if s.dataset != "" {
			msg += " · dataset " + s.dataset
		}
		if n := b.data.LeftOutWebShop; n > 0 {
			msg += fmt.Sprintf(" · %s left out: a chart shows one task family (pick the webshop dataset to chart them)", plural(n, "WebShop rollout", "WebShop rollouts"))
		}
		msg += " · " + figures.BarsCaption(s.options(""))
		if b.data.WebShop {
			msg += " · WebShop: final reward ×100"
			if s.fakeReward {
				msg += " · " + figures.FakeRewardNote
			}
		}
		if s.overlay {
			if b.data.WebShop {
				msg += " · " + figures.Citation2
			} else {
				msg += " · " + figures.Citation
			}
			if s.peakCount == figures.PeakRequest {
				msg += " (not on peak charts: the paper's peak is its own count; choose the paper count)"
			}
		}
		p.status.SetText(msg)
	})
}

// setColumns shows n chart views side by side.
func (p *chartsPanel) setColumns(n int) {
	objs := make([]fyne.CanvasObject, 0, n)
	for i := 0; i < n && i < len(p.views); i++ {
		objs = append(objs, p.views[i].raster)
	}
	if len(p.grid.Objects) == len(objs) {
		return
	}
	p.grid.Layout = container.NewGridWithColumns(max(1, len(objs))).Layout
	p.grid.Objects = objs
	p.grid.Refresh()
}

// saveDialog asks for a file and hands its writer to write; without a window it
// reports that saving needs one.
func (p *chartsPanel) saveDialog(name string, write func(io.WriteCloser)) {
	p.u.askSavePath(name, func(wc fyne.URIWriteCloser) {
		p.dest = wc.URI().Path()
		write(wc)
	}, p.status.SetText)
}

// exportFigure builds the current chart afresh at the chosen size preset and
// writes it to w in format (png, svg or pdf), in the background; w is closed.
// With two charts shown, the first is exported.
func (p *chartsPanel) exportFigure(w io.WriteCloser, format string) {
	s := p.settings()
	s.fg = nil // black on white for print
	size, err := figures.ParseSize(p.size.Selected)
	if err != nil {
		size = figures.SingleColumn
	}
	dpi, err := strconv.Atoi(strings.TrimSpace(p.dpi.Text))
	if err != nil || dpi < 10 || dpi > 2400 {
		_ = w.Close()
		p.status.SetText(fmt.Sprintf("PNG dpi %q: want a number 10..2400", p.dpi.Text))
		return
	}
	kind := chartKinds[s.choice][0]
	dest := p.dest
	background(p.u, func(ctx context.Context) (string, error) {
		defer w.Close()
		d, _, err := loadChartData(ctx, p.st, s.ids, s.dataset, s.byModel, kind == figures.Context)
		if err != nil {
			return "", err
		}
		o := s.options(kind)
		o.FontSize = size.FontSize
		f, err := figures.Build(d, o)
		if err != nil {
			return "", err
		}
		if err := f.Write(w, format, size, dpi, nil); err != nil {
			return "", err
		}
		return fmt.Sprintf("Saved %s chart as %s (%s column) to %s", kind, strings.ToUpper(format), size.Name, dest), nil
	}, func(msg string, err error) {
		if err != nil {
			p.status.SetText("Export failed: " + err.Error())
			return
		}
		p.status.SetText(msg)
	})
}

// exportTable writes the selected experiments' rollouts, turns or trajectories
// (whole experiments), or the aggregates the charts show (dataset filter
// applied), to w in the background; w is closed.
func (p *chartsPanel) exportTable(w io.WriteCloser, what string) {
	s := p.settings()
	dest := p.dest
	background(p.u, func(ctx context.Context) (string, error) {
		defer w.Close()
		if len(s.ids) == 0 {
			return "", errors.New("no experiment selected")
		}
		st := p.st
		switch what {
		case exportRollouts:
			return what, experiments.WriteRolloutsCSV(ctx, w, st, s.ids...)
		case exportTurns:
			return what, experiments.WriteTurnsCSV(ctx, w, st, s.ids...)
		case exportAggregates: // what the charts show: the dataset filter applies
			d, _, err := loadChartData(ctx, st, s.ids, s.dataset, s.byModel, false)
			if err != nil {
				return "", err
			}
			return what, experiments.WriteAggregatesCSV(w, d.Aggregates)
		case exportTrajectories:
			n, err := experiments.WriteTrajectoriesJSONL(ctx, w, st, s.ids...)
			return fmt.Sprintf("%s (%d finished rollouts)", what, n), err
		}
		return "", fmt.Errorf("unknown export %q", what)
	}, func(msg string, err error) {
		if err != nil {
			p.status.SetText("Export failed: " + err.Error())
			return
		}
		p.status.SetText("Saved " + msg + " to " + dest)
	})
}

// presetDialog asks for the endpoint (a saved profile fills it in), the
// dataset (the store's, as a picker) and tasks per setting, then starts the
// Table 1 preset.
func (p *chartsPanel) presetDialog() {
	w := p.u.deps.Window
	if w == nil {
		p.presetStatus.SetText("The preset needs the app window")
		return
	}
	base := p.u.deps.DefaultRun
	endpoint := widget.NewEntry()
	endpoint.SetText(base.Endpoint)
	model := widget.NewEntry()
	model.SetText(base.Model)
	mode := widget.NewSelect([]string{experiments.ModeCompletions, experiments.ModeChat}, nil)
	mode.SetSelected(base.Mode)
	dataset := widget.NewSelect([]string{base.Dataset}, nil)
	dataset.SetSelected(base.Dataset)
	tasks := widget.NewEntry()
	tasks.SetText(strconv.Itoa(experiments.DefaultPresetTasks))
	var profiles map[string]experiments.EndpointProfile
	profile := widget.NewSelect(nil, func(name string) {
		if pr, ok := profiles[name]; ok {
			endpoint.SetText(pr.URL)
			model.SetText(pr.Model)
			mode.SetSelected(pr.Mode)
		}
	})
	profile.PlaceHolder = "(type the endpoint below)"
	p.presetForm = &presetForm{profile: profile, endpoint: endpoint, model: model, mode: mode, dataset: dataset, tasks: tasks}
	type choices struct {
		profiles map[string]experiments.EndpointProfile
		datasets []storage.DatasetInfo
	}
	background(p.u, func(ctx context.Context) (choices, error) {
		ps, err := loadProfiles(ctx, p.u.deps.Store)
		if err != nil {
			return choices{}, err
		}
		ds, err := p.st.Datasets(ctx)
		return choices{ps, ds}, err
	}, func(c choices, err error) {
		if err != nil {
			p.presetStatus.SetText("Preset: " + err.Error())
			return
		}
		profiles = c.profiles
		names := make([]string, 0, len(c.profiles))
		for n := range c.profiles {
			names = append(names, n)
		}
		sort.Strings(names)
		profile.SetOptions(names)
		var ds []string
		for _, d := range c.datasets {
			ds = append(ds, d.Name)
		}
		if len(ds) > 0 {
			cur := dataset.Selected
			dataset.SetOptions(ds)
			if !contains(ds, cur) {
				dataset.SetSelected(ds[0])
			}
		}
	})
	items := []*widget.FormItem{
		widget.NewFormItem("Saved endpoint", profile),
		widget.NewFormItem("Endpoint", endpoint), widget.NewFormItem("Model", model), widget.NewFormItem("Mode", mode),
		widget.NewFormItem("Dataset", dataset), widget.NewFormItem("Tasks per setting", tasks),
	}
	d := dialog.NewForm(experiments.Table1PresetName, "Run", "Cancel", items, func(ok bool) {
		if ok {
			p.submitPreset()
		}
	}, w)
	d.Resize(fyne.NewSize(560, 420))
	d.Show()
}

// presetForm holds the preset dialog's fields.
type presetForm struct {
	profile, mode, dataset *widget.Select
	endpoint, model, tasks *widget.Entry
}

// submitPreset starts the preset with the dialog's fields.
func (p *chartsPanel) submitPreset() {
	f := p.presetForm
	n, err := strconv.Atoi(strings.TrimSpace(f.tasks.Text))
	if err != nil || n < 1 {
		p.presetStatus.SetText(fmt.Sprintf("Tasks per setting %q: want a whole number ≥ 1", f.tasks.Text))
		return
	}
	cfg := p.u.deps.DefaultRun
	cfg.Endpoint, cfg.Model, cfg.Mode, cfg.Dataset = strings.TrimSpace(f.endpoint.Text), strings.TrimSpace(f.model.Text), f.mode.Selected, f.dataset.Selected
	p.startPreset(cfg, n)
}

// startPreset runs the Table 1 grid (experiments.Table1Grid of base, tasks per
// setting) as one experiment with the UI's Runner and shows the accuracy and
// peak-token charts with the paper overlay, redrawing as rollouts finish (at
// most every 2 s). Runs follows it like any run started here.
func (p *chartsPanel) startPreset(base experiments.RunConfig, tasks int) {
	r := p.u.deps.Runner
	if r == nil {
		p.presetStatus.SetText("Runs are unavailable in this build")
		return
	}
	if p.presetStop != nil {
		p.presetStatus.SetText("The preset is already running")
		return
	}
	cfg := experiments.Table1Grid(base, tasks)
	if err := cfg.Validate(); err != nil {
		p.presetStatus.SetText("Preset: " + err.Error())
		return
	}
	ctx, cancel := context.WithCancel(p.u.ctx)
	p.presetStop = cancel
	p.presetBt.Disable()
	p.cancelBt.Enable()
	p.syncing = true
	p.choice.SetSelected(chartPair)
	p.overlay.SetChecked(true)
	p.syncing = false
	p.enableMetric()
	p.selectExperiments()
	_ = p.u.Show(ScreenCharts)
	settings := len(cfg.ObjectivesList()) * len(cfg.PolicyList())
	p.presetStatus.SetText(fmt.Sprintf("Preset: one experiment, %s × %s on %s", plural(settings, "setting", "settings"),
		plural(tasks, "task", "tasks"), base.Model))

	p.u.jobs.Add(1)
	p.u.runStarted()
	go func() {
		defer p.u.jobs.Done()
		defer p.u.runEnded()
		announced := false
		sum, err := r.Run(ctx, cfg, func(pr experiments.Progress) {
			line := fmt.Sprintf("Preset: experiment #%d · %d/%d rollouts", pr.Experiment, pr.Done+pr.Failed, pr.Total)
			p.u.do(func() {
				p.presetStatus.SetText(line)
				if pr.Experiment != 0 && !announced {
					announced = true
					p.selectExperiments(pr.Experiment)
					p.u.events.ExperimentCreated.Emit(pr.Experiment)
				}
				p.u.events.RunProgress.Emit(pr)
				if time.Since(p.lastLive) > 2*time.Second {
					p.lastLive = time.Now()
					p.liveRefresh([]int64{pr.Experiment})
				}
			})
		})
		p.u.do(func() {
			p.presetStop = nil
			cancel()
			p.presetBt.Enable()
			p.cancelBt.Disable()
			if sum.Experiment != 0 {
				p.liveRefresh([]int64{sum.Experiment})
			}
			p.u.events.ExperimentFinished.Emit(RunEnded{Experiment: sum.Experiment, Summary: sum, Err: err, Cancelled: ctx.Err() != nil})
			if err != nil {
				p.presetStatus.SetText(fmt.Sprintf("Preset ended (experiment #%d): %v", sum.Experiment, err))
				return
			}
			p.presetStatus.SetText(fmt.Sprintf("Preset done: experiment #%d, %s", sum.Experiment, plural(len(sum.Groups), "group", "groups")))
		})
	}()
}

// liveRefresh selects ids and reloads the experiment list and the charts.
func (p *chartsPanel) liveRefresh(ids []int64) {
	p.autoSelect = false
	p.selected = map[int64]bool{}
	for _, id := range ids {
		p.selected[id] = true
	}
	p.reload()
}

func (p *chartsPanel) stopPreset() {
	if p.presetStop != nil {
		p.presetStop()
	}
}

// chartView shows one figure in a canvas.Raster that follows its size. The
// raster's generator never draws on the UI thread: it returns the last image and,
// when the size or the figure changed, renders a new one in a goroutine and
// refreshes the raster when done.
type chartView struct {
	u      *UI
	raster *canvas.Raster

	mu           sync.Mutex
	fig          *figures.Figure
	gen          int
	img          image.Image
	imgW, imgH   int
	imgGen       int
	busy         bool
	renderedOnce chan struct{} // closed after the first image is ready (tests)
}

func newChartView(u *UI) *chartView {
	v := &chartView{u: u, renderedOnce: make(chan struct{})}
	v.raster = canvas.NewRaster(v.generate)
	v.raster.SetMinSize(fyne.NewSize(320, 240))
	return v
}

func (v *chartView) setFigure(f *figures.Figure) {
	v.mu.Lock()
	v.fig = f
	v.gen++
	v.mu.Unlock()
	v.raster.Refresh()
}

func (v *chartView) figure() *figures.Figure {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.fig
}

func (v *chartView) generate(w, h int) image.Image {
	scale := 1.0
	if sw := v.raster.Size().Width; sw > 0 && w > 0 {
		scale = float64(w) / float64(sw)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.img != nil && v.imgW == w && v.imgH == h && v.imgGen == v.gen {
		return v.img
	}
	if v.fig != nil && !v.busy && w > 0 && h > 0 {
		v.busy = true
		fig, gen := v.fig, v.gen
		v.u.jobs.Add(1)
		go func() {
			defer v.u.jobs.Done()
			fig.SetFontSize(screenFontSize(float32(float64(h) / scale))) // text grows with the canvas
			img := fig.Render(w, h, scale, nil)
			v.mu.Lock()
			v.img, v.imgW, v.imgH, v.imgGen, v.busy = img, w, h, gen, false
			select {
			case <-v.renderedOnce:
			default:
				close(v.renderedOnce)
			}
			v.mu.Unlock()
			fyne.Do(v.raster.Refresh)
		}()
	}
	if v.img == nil {
		return image.NewNRGBA(image.Rect(0, 0, 1, 1))
	}
	return v.img
}

// ChartsOptions choose what OpenCharts shows.
type ChartsOptions struct {
	// Experiments to include; nil = every experiment in the store.
	Experiments []int64
	// Chart is a figures.Kind name (accuracy, peak, context, frontier, time,
	// turns, dependency, reward-turns, or the memory charts composition,
	// retention, positions) or
	// "pair" for accuracy and peak tokens side by side; "" keeps the current
	// chart.
	Chart string
	// Overlay shows the paper's results as reference series: Table 1 on QA
	// charts, Table 2 on WebShop ones.
	Overlay bool
}

// OpenCharts shows the Charts screen with o's experiments, chart and overlay
// (for the app's command line and screenshots). An unknown chart name is an
// error and changes nothing.
func (u *UI) OpenCharts(o ChartsOptions) error {
	p := u.charts
	choice := p.choice.Selected
	if o.Chart != "" {
		choice = ""
		if o.Chart == "pair" {
			choice = chartPair
		}
		for c, ks := range chartKinds {
			if len(ks) == 1 && string(ks[0]) == o.Chart {
				choice = c
			}
		}
		if choice == "" {
			return fmt.Errorf("views: unknown chart %q (want accuracy, peak, context, frontier, time, turns, dependency, reward-turns, pair, composition, retention or positions)", o.Chart)
		}
	}
	p.syncing = true
	p.choice.SetSelected(choice)
	p.overlay.SetChecked(o.Overlay)
	p.syncing = false
	_ = u.Show(ScreenCharts)
	ids := o.Experiments
	background(u, func(ctx context.Context) ([]storage.ExperimentRow, error) {
		return p.st.Experiments(ctx)
	}, func(es []storage.ExperimentRow, err error) {
		if err != nil {
			p.status.SetText("Could not list experiments: " + err.Error())
			return
		}
		p.exps = es
		if ids == nil {
			for _, e := range es {
				ids = append(ids, e.ID)
			}
		}
		p.selectExperiments(ids...)
	})
	return nil
}

// live is told of a progress snapshot of a run this UI plays (one line in the
// runs panel's live handler wires it): when a rollout of an experiment shown
// here finished, the charts are redrawn, at most every 2 s.
func (p *chartsPanel) live(pr experiments.Progress) {
	if !p.selected[pr.Experiment] || time.Since(p.lastLive) < 2*time.Second {
		return
	}
	p.lastLive = time.Now()
	p.redraw()
}

// exportShortcut (Ctrl+E) shows Charts and asks where to save the current
// chart as PDF.
func (p *chartsPanel) exportShortcut() {
	_ = p.u.Show(ScreenCharts)
	p.saveDialog("figure.pdf", func(w io.WriteCloser) { p.exportFigure(w, "pdf") })
}
