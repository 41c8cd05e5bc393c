// Package figures draws mem1lab's charts with gonum/plot: accuracy, peak tokens,
// time and turns against the number of objectives, the per-turn context size and
// the accuracy–memory frontier, with MEM1's Table 1 as an optional dashed
// overlay. One code path serves the app (Render into an image of the window's
// size) and the exports (Write as PNG at a DPI, SVG or PDF at a size preset).
package figures

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgpdf"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/mem1lab/mem1lab/experiments"
)

// Kind names a chart.
type Kind string

// The charts.
const (
	Accuracy Kind = "accuracy" // EM or F1 vs objectives, error bars, log2 x
	Peak     Kind = "peak"     // peak tokens vs objectives
	Context  Kind = "context"  // mean context+generation tokens at turn t, with a 95% CI (or ±SE) band
	Frontier Kind = "frontier" // EM (or F1) against peak tokens, one point per group
	Time     Kind = "time"     // seconds per rollout vs objectives
	Turns    Kind = "turns"    // turns used vs objectives
	// Dependency is eval.py's dependency vs objectives (WebShop: the paper's
	// Table 2 column).
	Dependency Kind = "dependency"
	// RewardTurns is each finished rollout's score against the turns it took
	// (WebShop: final reward ×100; QA: EM), with the mean per turn count.
	RewardTurns Kind = "reward-turns"
)

// Kinds lists every chart, in menu order.
var Kinds = []Kind{Accuracy, Peak, Context, Frontier, Time, Turns, Dependency, RewardTurns}

// ParseKind accepts a Kind's name.
func ParseKind(s string) (Kind, error) {
	all := append(append([]Kind(nil), Kinds...), DiagnosticKinds...)
	for _, k := range all {
		if string(k) == s {
			return k, nil
		}
	}
	names := make([]string, len(all))
	for i, k := range all {
		names[i] = string(k)
	}
	return "", fmt.Errorf("unknown chart %q (want %s)", s, strings.Join(names, ", "))
}

// Options choose what a chart shows.
type Options struct {
	Kind Kind
	// Metric is "em" or "f1" (Accuracy and Frontier); "" = em.
	Metric string
	// PerObjective divides EM/F1 by the number of objectives (0..1) instead of
	// the summed score (0..N) MEM1 reports.
	PerObjective bool
	// Overlay draws MEM1's Table 1 as dashed reference series (Accuracy, Peak,
	// Frontier, Time), collapsed entries marked with a cross, with Citation.
	Overlay bool
	// Title replaces the default title ("" = default).
	Title string
	// Foreground colours axes and text (nil = black); Background fills the
	// figure (nil = white; color.Transparent in the app).
	Foreground, Background color.Color
	// FontSize is the base text size in points (0 = 9).
	FontSize vg.Length
	// PeakCount chooses the peak-token figure of Peak and Frontier charts:
	// PeakPaper ("" too) or PeakRequest. The axis label names it; the paper
	// overlay is drawn against PeakPaper only, the paper's own definition.
	PeakCount string
	// Bars chooses what error bars and bands show: BarsCI95 (the default, "")
	// or BarsSE. The caption says which.
	Bars string
	// Series picks the series a one-series chart (Composition) draws, by
	// label; "" = the first.
	Series string
	// NotSignificant, for the charts against objectives, marks these objective
	// counts "n.s." along the top: a comparison of two settings found no
	// significant difference there (Holm-adjusted p ≥ 0.05).
	NotSignificant []int
	// FakeReward notes in the caption (FakeRewardNote) that the charted
	// WebShop experiments ran on mem1lab's fake server, whose reward lacks
	// WebShop's product-type term.
	FakeReward bool
	// Dodge shifts each series of the charts against the objective count a
	// little along x (a few percent on the log axis, series centred on the true
	// value), so series with equal values do not hide each other on screen.
	Dodge bool

	// reward is set by Build for WebShop data: scores are final reward ×100.
	reward bool
}

// Error-bar kinds of Options.Bars.
const (
	// BarsCI95: the 95% t confidence interval of the mean over tasks,
	// mean ± t_{.975, N−1}·SE (experiments.Stat.CI); no bar for N < 2.
	BarsCI95 = "ci95"
	// BarsSE: ±1 standard error of the mean over tasks.
	BarsSE = "se"
)

// BarsCaption is the caption text naming what the error bars of o show.
func BarsCaption(o Options) string {
	if o.Bars == BarsSE {
		return "Error bars: ±1 standard error over tasks"
	}
	return "Error bars: 95% CI of the mean over tasks (t)"
}

// half is the half-width of st's error bar under o.Bars (0 when undefined).
func half(st experiments.Stat, o Options) float64 {
	if o.Bars == BarsSE {
		return st.StdErr
	}
	_, hi := st.CI(0.95)
	if math.IsNaN(hi) {
		return 0
	}
	return hi - st.Mean
}

// Peak-token counts a chart can draw.
const (
	// PeakPaper is MEM1 eval.py's peak tokens (o200k counts over the
	// trajectory text, the prompt not counted), averaged over the rollouts
	// whose lenient Exact_match is not 0, as eval.py averages it
	// (experiments.Aggregate.PaperPeakTokens).
	PeakPaper = "paper"
	// PeakRequest is the largest request as served: prompt + generation from
	// the server's usage, its tokenizer or an estimate
	// (experiments.Aggregate.PeakTokens).
	PeakRequest = "request"
)

// Axis labels of the two peak counts.
const (
	PeakPaperLabel   = "paper peak tokens (eval.py, o200k, prompt not counted)"
	PeakRequestLabel = "request peak tokens as served (prompt + generation)"
)

// peakStat returns the chosen peak figure of an aggregate and its axis label.
func peakStat(o Options) (func(experiments.Aggregate) experiments.Stat, string) {
	if o.PeakCount == PeakRequest {
		return func(a experiments.Aggregate) experiments.Stat { return a.PeakTokens }, PeakRequestLabel
	}
	return func(a experiments.Aggregate) experiments.Stat { return a.PaperPeakTokens }, PeakPaperLabel
}

// Data is what charts are drawn from.
type Data struct {
	Aggregates []experiments.Aggregate
	Curves     []experiments.ContextCurve
	// Runs are the finished rollouts one by one (the RewardTurns chart).
	Runs []RunPoint
	// WebShop is set when every rollout is a WebShop episode (dataset
	// core.FamilyWebShop): the charts then draw final reward ×100 where QA
	// charts draw EM, and the overlay is the paper's Table 2.
	WebShop bool
	// LeftOutWebShop is how many WebShop rollouts Load left out of a
	// selection that also holds QA ones: a chart draws one task family
	// (rewards are not EM), the QA one; the webshop dataset filter charts them.
	LeftOutWebShop int
}

// RunPoint is one finished rollout: its series (Model "" when models are
// pooled), the turns it took and its score (EM summed over objectives; for
// WebShop the final reward in [0, 1], stored as EM).
type RunPoint struct {
	Model, Policy string
	Turns         int
	Score         float64
}

// Figure is a built chart: the plot and its legend, drawn beside it.
type Figure struct {
	Plot   *plot.Plot
	Legend plot.Legend
	// Labels are the legend texts in order (series first, then the overlay).
	Labels []string
	// Caption is drawn small under the chart: what the error bars show
	// (BarsCaption), then the citation when the paper overlay is shown.
	Caption string
	// Points is how many data points the chart draws.
	Points int
	// Scatter holds, for RewardTurns, the points drawn per series label: one
	// (turns, score) per rollout.
	Scatter map[string]plotter.XYs
	// Categories are, for WebShop's per-setting charts, the x axis's
	// categories left to right (series, then the paper's systems); nil when
	// x is a number.
	Categories []string

	pointLabels []*plotter.Labels
}

// ErrUnknownKind is returned by Build for a Kind not in Kinds.
var ErrUnknownKind = errors.New("figures: unknown chart kind")

// series colours: gonum's default palette for our runs, a muted one for the paper.
var paperPalette = []color.Color{
	color.NRGBA{0x7f, 0x7f, 0x7f, 0xff}, color.NRGBA{0xa6, 0x76, 0x1d, 0xff}, color.NRGBA{0x66, 0xa6, 0x1e, 0xff},
	color.NRGBA{0xe7, 0x29, 0x8a, 0xff}, color.NRGBA{0x75, 0x70, 0xb3, 0xff}, color.NRGBA{0xd9, 0x5f, 0x02, 0xff},
	color.NRGBA{0x1b, 0x9e, 0x77, 0xff},
}

// seriesLabel names a (model, policy) series: "policy" alone when the model is
// pooled, else "policy · model" with the model's last path element.
func seriesLabel(k experiments.GroupKey) string {
	if k.Model == "" {
		return k.Policy
	}
	m := k.Model
	if i := strings.LastIndex(m, "/"); i >= 0 && i < len(m)-1 {
		m = m[i+1:]
	}
	return k.Policy + " · " + m
}

type seriesKey struct{ model, policy string }

// groupSeries splits aggregates into (model, policy) series, objectives ascending.
func groupSeries(aggs []experiments.Aggregate) ([]seriesKey, map[seriesKey][]experiments.Aggregate) {
	by := map[seriesKey][]experiments.Aggregate{}
	var keys []seriesKey
	for _, a := range aggs {
		if a.EM.N == 0 {
			continue // no done rollout yet
		}
		k := seriesKey{a.Model, a.Policy}
		if _, ok := by[k]; !ok {
			keys = append(keys, k)
		}
		by[k] = append(by[k], a)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].model != keys[j].model {
			return keys[i].model < keys[j].model
		}
		return keys[i].policy < keys[j].policy
	})
	for _, k := range keys {
		s := by[k]
		sort.Slice(s, func(i, j int) bool { return s[i].Objectives < s[j].Objectives })
	}
	return keys, by
}

// errXY is points with vertical and horizontal error bars.
type errXY struct {
	plotter.XYs
	plotter.YErrors
	plotter.XErrors
}

// Build draws the chart o.Kind from d. It fails only for an unknown kind or a
// malformed embedded paper table; empty data gives an empty, labelled chart.
func Build(d Data, o Options) (*Figure, error) {
	if o.Metric == "" {
		o.Metric = "em"
	}
	if o.Metric != "em" && o.Metric != "f1" {
		return nil, fmt.Errorf("figures: metric %q: want em or f1", o.Metric)
	}
	o.reward = d.WebShop
	f, err := newFigure(o)
	if err != nil {
		return nil, err
	}
	p := f.Plot

	metricName := strings.ToUpper(o.Metric)
	yAcc := metricName + " (sum over objectives)"
	if o.PerObjective {
		yAcc = metricName + " per objective"
	}
	if o.reward {
		metricName, yAcc = "Final reward ×100", RewardLabel
	}
	// ov picks the overlay: Table 1 (QA) or Table 2 (WebShop); nil t1/t2: none.
	ov := func(t1 func(PaperRow) float64, t2 func(WebShopPaperRow) float64) func(*Figure) (float64, float64, error) {
		if o.reward {
			if t2 == nil {
				return nil
			}
			return func(f *Figure) (float64, float64, error) {
				// each system its own category, after the series (byCategory)
				return f.overlay2(func(i int, r WebShopPaperRow) plotter.XY {
					return plotter.XY{X: float64(len(f.Categories) + i + 1), Y: t2(r)}
				})
			}
		}
		if t1 == nil {
			return nil
		}
		return func(f *Figure) (float64, float64, error) {
			return f.overlay(func(r PaperRow) plotter.XY { return plotter.XY{X: float64(r.Objectives), Y: t1(r)} })
		}
	}
	switch o.Kind {
	case Accuracy:
		p.Title.Text = metricName + " vs number of objectives"
		p.Y.Label.Text = yAcc
		err = f.vsObjectives(d.Aggregates, func(a experiments.Aggregate) experiments.Stat { return accuracy(a, o) },
			ov(func(r PaperRow) float64 { return paperAccuracy(r, o) }, func(r WebShopPaperRow) float64 { return r.Reward }), o)
		p.Y.Min = 0
	case Peak:
		p.Title.Text = "Peak tokens vs number of objectives"
		stat, label := peakStat(o)
		p.Y.Label.Text = label
		o.Overlay = o.Overlay && o.PeakCount != PeakRequest // the paper's numbers are its own count
		err = f.vsObjectives(d.Aggregates, stat, ov(func(r PaperRow) float64 { return r.PeakTokens },
			func(r WebShopPaperRow) float64 { return r.PeakTokens }), o)
		p.Y.Min = 0
	case Time:
		p.Title.Text = "Inference time vs number of objectives"
		p.Y.Label.Text = "seconds per trajectory"
		err = f.vsObjectives(d.Aggregates, func(a experiments.Aggregate) experiments.Stat { return a.Seconds },
			ov(func(r PaperRow) float64 { return r.TimeS }, func(r WebShopPaperRow) float64 { return r.TimeS }), o)
		p.Y.Min = 0
	case Turns:
		p.Title.Text = "Turns used vs number of objectives"
		p.Y.Label.Text = "turns per trajectory"
		o.Overlay = false // the paper reports no turn counts
		err = f.vsObjectives(d.Aggregates, func(a experiments.Aggregate) experiments.Stat { return a.Turns }, nil, o)
		p.Y.Min = 0
	case Dependency:
		p.Title.Text = "Dependency vs number of objectives"
		p.Y.Label.Text = "dependency (eval.py, o200k)"
		// Table 1 has no dependency column; Table 2 (WebShop) has.
		err = f.vsObjectives(d.Aggregates, func(a experiments.Aggregate) experiments.Stat { return a.Dependency },
			ov(nil, func(r WebShopPaperRow) float64 { return r.Dependency }), o)
		p.Y.Min = 0
	case RewardTurns:
		p.Title.Text = metricName + " vs turns used"
		if !o.reward {
			p.Title.Text = "EM vs turns used"
			yAcc = "EM (sum over objectives)"
		}
		p.X.Label.Text = "turns used"
		p.Y.Label.Text = yAcc
		o.Overlay = false // the paper reports no per-turn-count results
		f.Caption = "Points: one per finished rollout · line: mean per turn count"
		err = f.rewardTurns(d.Runs, o)
		p.Y.Min = 0
	case Frontier:
		if o.reward {
			p.Title.Text = "Reward–memory frontier"
		} else {
			p.Title.Text = "Accuracy–memory frontier"
		}
		_, label := peakStat(o)
		p.X.Label.Text = label
		p.Y.Label.Text = yAcc
		o.Overlay = o.Overlay && o.PeakCount != PeakRequest
		err = f.frontier(d.Aggregates, o)
	case Context:
		p.Title.Text = "Context size per turn"
		p.X.Label.Text = "turn"
		p.Y.Label.Text = "tokens (context + generation)"
		err = f.context(d.Curves, o)
		p.Y.Min = 0
	default:
		return nil, fmt.Errorf("%w %q", ErrUnknownKind, o.Kind)
	}
	if err != nil {
		return nil, err
	}
	if p.Y.Min == 0 && p.Y.Max <= 0 {
		p.Y.Max = 1 // all values 0: a 0..1 axis, not gonum's padding to -1..1
	}
	if o.Title != "" {
		p.Title.Text = o.Title
	}
	if f.Points == 0 {
		p.Title.Text += " — no finished rollouts"
	}
	if f.Categories != nil {
		p.Title.Text = strings.Replace(p.Title.Text, " vs number of objectives", " by setting", 1)
	}
	if o.FakeReward && d.WebShop {
		f.Caption += " · " + FakeRewardNote
	}
	return f, nil
}

// RewardLabel is the score axis of WebShop charts.
const RewardLabel = "final reward ×100 (WebShop)"

// newFigure is an empty figure styled by o: colours, ticks, legend and font
// sizes, with the error-bar caption. An unknown o.Bars is an error.
func newFigure(o Options) (*Figure, error) {
	fg := o.Foreground
	if fg == nil {
		fg = color.Black
	}
	size := o.FontSize
	if size == 0 {
		size = 9
	}
	p := plot.New()
	p.BackgroundColor = color.Transparent
	p.Title.TextStyle.Color = fg
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Color = fg
		a.Label.TextStyle.Color = fg
		a.Tick.Label.Color = fg
		a.Tick.Color = fg
		a.Tick.Marker = plainTicks{}
	}
	if o.Bars != "" && o.Bars != BarsCI95 && o.Bars != BarsSE {
		return nil, fmt.Errorf("figures: error bars %q: want %s or %s", o.Bars, BarsCI95, BarsSE)
	}
	f := &Figure{Plot: p, Legend: plot.NewLegend(), Caption: BarsCaption(o)}
	f.Legend.TextStyle.Color = fg
	f.Legend.Left = true
	f.Legend.Top = true
	f.Legend.ThumbnailWidth = 0.3 * vg.Inch
	f.SetFontSize(size)

	return f, nil
}

func accuracy(a experiments.Aggregate, o Options) experiments.Stat {
	if o.reward {
		return a.EM.Scaled(0.01) // the reward in [0, 1] is stored as EM
	}
	s := a.EM
	if o.Metric == "f1" {
		s = a.F1
	}
	if o.PerObjective {
		s = s.Scaled(float64(a.Objectives))
	}
	return s
}

func paperAccuracy(r PaperRow, o Options) float64 {
	v := r.EM
	if o.Metric == "f1" {
		v = r.F1
	}
	if o.PerObjective && r.Objectives > 0 {
		v /= float64(r.Objectives)
	}
	return v
}

// plainTicks are gonum's default tick positions labelled in the shortest
// form ("2500", not "2500.00").
type plainTicks struct{}

func (plainTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'g', 6, 64)
		}
	}
	return ts
}

// log2Axis puts x on a log scale with ticks at the powers of two in [lo, hi].
func log2Axis(a *plot.Axis, lo, hi float64) {
	if lo <= 0 || hi <= 0 || math.IsInf(lo, 0) {
		lo, hi = 1, 16
	}
	a.Scale = plot.LogScale{}
	var ticks plot.ConstantTicks
	for v := 1.0; v <= hi*1.01; v *= 2 {
		if v >= lo*0.99 {
			ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
		}
	}
	a.Tick.Marker = ticks
	a.Min, a.Max = lo/1.25, hi*1.25
	a.Label.Text = "objectives (log₂)"
}

// DodgeShift is the factor Options.Dodge multiplies series i of n's objective
// counts by: 2^(0.06·(i − (n−1)/2)), about ±4 % per step, so the series sit
// side by side around the true count on the log₂ axis (their geometric mean
// is the count itself). 1 for a single series.
func DodgeShift(i, n int) float64 {
	if n <= 1 {
		return 1
	}
	return math.Pow(2, 0.06*(float64(i)-float64(n-1)/2))
}

// vsObjectives draws one line with error bars per (model, policy) series and,
// when o.Overlay and paper is set, the paper's systems dashed. WebShop
// figures (o.reward) have one goal per task, so there the x axis is a
// category per series instead (byCategory).
func (f *Figure) vsObjectives(aggs []experiments.Aggregate, stat func(experiments.Aggregate) experiments.Stat,
	paper func(*Figure) (float64, float64, error), o Options) error {
	if o.reward {
		return f.byCategory(aggs, stat, paper, o)
	}
	keys, by := groupSeries(aggs)
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, k := range keys {
		s := by[k]
		shift := 1.0
		if o.Dodge {
			shift = DodgeShift(i, len(keys))
		}
		pts := errXY{XYs: make(plotter.XYs, len(s)), YErrors: make(plotter.YErrors, len(s)), XErrors: make(plotter.XErrors, len(s))}
		pts.XYs, pts.YErrors = pts.XYs[:0], pts.YErrors[:0]
		for _, a := range s {
			st := stat(a)
			if st.N == 0 {
				continue // no value (e.g. no paper peak: every rollout had Exact_match 0)
			}
			pts.XYs = append(pts.XYs, plotter.XY{X: float64(a.Objectives) * shift, Y: st.Mean})
			h := half(st, o)
			pts.YErrors = append(pts.YErrors, struct{ Low, High float64 }{Low: h, High: h})
			lo, hi = math.Min(lo, float64(a.Objectives)), math.Max(hi, float64(a.Objectives))
		}
		pts.XErrors = pts.XErrors[:len(pts.XYs)]
		if len(pts.XYs) == 0 {
			continue
		}
		if err := f.addErrorLine(pts, i, seriesLabel(experiments.GroupKey{Model: k.model, Policy: k.policy})); err != nil {
			return err
		}
	}
	if len(o.NotSignificant) > 0 && f.Points > 0 {
		top := math.Inf(-1)
		for _, a := range aggs {
			st := stat(a)
			top = math.Max(top, st.Mean+half(st, o))
		}
		var xys plotter.XYs
		var texts []string
		for _, n := range o.NotSignificant {
			xys = append(xys, plotter.XY{X: float64(n), Y: top * 1.08})
			texts = append(texts, "n.s.")
		}
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: texts})
		if err != nil {
			return err
		}
		for i := range lb.TextStyle {
			lb.TextStyle[i].Color = f.Legend.TextStyle.Color
			lb.TextStyle[i].XAlign = draw.XCenter
			lb.TextStyle[i].Font.Size = f.Legend.TextStyle.Font.Size * 0.8 / 0.9
		}
		f.pointLabels = append(f.pointLabels, lb)
		f.Plot.Add(lb)
		f.Caption += " · n.s.: no significant difference (Holm-adjusted p ≥ 0.05)"
	}
	if o.Overlay && paper != nil {
		plo, phi, err := paper(f)
		if err != nil {
			return err
		}
		lo, hi = math.Min(lo, plo), math.Max(hi, phi)
	}
	log2Axis(&f.Plot.X, lo, hi)
	return nil
}

// byCategory is vsObjectives for WebShop: one category on the x axis per
// (model, policy) series, named on the axis (by its policy alone when every
// series has the same model), holding its mean with error
// bars (its aggregate over the most rollouts, should a series have several
// objective counts); then, when o.Overlay and paper is set, the Table 2
// systems, each its own category (overlay2 draws them at x = 1, 2, 3, …,
// shifted here past the series).
func (f *Figure) byCategory(aggs []experiments.Aggregate, stat func(experiments.Aggregate) experiments.Stat,
	paper func(*Figure) (float64, float64, error), o Options) error {
	keys, by := groupSeries(aggs)
	oneModel := true // then a category is named by its policy alone (the legend names the model)
	for _, k := range keys {
		oneModel = oneModel && k.model == keys[0].model
	}
	var ticks plot.ConstantTicks
	for i, k := range keys {
		var best experiments.Stat
		for _, a := range by[k] {
			if st := stat(a); st.N > best.N {
				best = st
			}
		}
		x := float64(len(ticks) + 1)
		label := seriesLabel(experiments.GroupKey{Model: k.model, Policy: k.policy})
		tick := label
		if oneModel {
			tick = k.policy
		}
		ticks = append(ticks, plot.Tick{Value: x, Label: tick})
		if best.N == 0 {
			continue // no value (e.g. no paper peak)
		}
		pts := errXY{XYs: plotter.XYs{{X: x, Y: best.Mean}}, YErrors: plotter.YErrors{{Low: half(best, o), High: half(best, o)}}, XErrors: make(plotter.XErrors, 1)}
		if err := f.addErrorLine(pts, i, label); err != nil {
			return err
		}
	}
	f.Categories = []string{}
	for _, t := range ticks {
		f.Categories = append(f.Categories, t.Label)
	}
	if o.Overlay && paper != nil {
		// paper draws Table 2's system j at x = len(f.Categories)+j+1 (ov in Build).
		if _, _, err := paper(f); err != nil {
			return err
		}
		rows, err := PaperTable2()
		if err != nil {
			return err
		}
		for _, r := range rows {
			ticks = append(ticks, plot.Tick{Value: float64(len(ticks) + 1), Label: r.System + " (paper)"})
			f.Categories = append(f.Categories, r.System+" (paper)")
		}
	}
	f.Plot.X.Tick.Marker = ticks
	f.Plot.X.Min, f.Plot.X.Max = 0.5, float64(max(len(ticks), 1))+0.5
	// Setting names are long: slanted, ending at their tick, they do not run
	// into each other.
	f.Plot.X.Tick.Label.Rotation = math.Pi / 6
	f.Plot.X.Tick.Label.XAlign, f.Plot.X.Tick.Label.YAlign = draw.XRight, draw.YTop
	f.Plot.X.Label.Text = "setting (WebShop: one goal per task)"
	return nil
}

// addErrorLine draws series i's points (a line with glyphs) and their
// vertical error bars in its colour, with its legend label, and counts the
// points.
func (f *Figure) addErrorLine(pts errXY, i int, label string) error {
	if err := f.addLine(pts.XYs, plotutil.Color(i), plotutil.Shape(i), nil, label); err != nil {
		return err
	}
	eb, err := plotter.NewYErrorBars(pts)
	if err != nil {
		return err
	}
	eb.LineStyle.Color = plotutil.Color(i)
	f.Plot.Add(eb)
	f.Points += len(pts.XYs)
	return nil
}

// denseSeries is the length above which a series is drawn as a bare line: point
// glyphs would cover each other and cost most of the drawing time.
const denseSeries = 40

// addLine adds a line with point glyphs (a bare line for long series) and its
// legend entry.
func (f *Figure) addLine(xys plotter.XYs, c color.Color, shape draw.GlyphDrawer, dashes []vg.Length, label string) error {
	if len(xys) > denseSeries {
		l, err := plotter.NewLine(xys)
		if err != nil {
			return err
		}
		l.LineStyle.Color = c
		l.LineStyle.Width = vg.Points(1.2)
		l.LineStyle.Dashes = dashes
		f.Plot.Add(l)
		f.Legend.Add(label, l)
		f.Labels = append(f.Labels, label)
		return nil
	}
	l, sc, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	l.LineStyle.Color = c
	l.LineStyle.Width = vg.Points(1.2)
	l.LineStyle.Dashes = dashes
	sc.GlyphStyle.Color = c
	sc.GlyphStyle.Shape = shape
	sc.GlyphStyle.Radius = vg.Points(2.5)
	f.Plot.Add(l, sc)
	f.Legend.Add(label, l, sc)
	f.Labels = append(f.Labels, label)
	return nil
}

// overlay draws each paper system as a dashed line of xy(row), collapsed
// entries crossed, and adds the citation to the legend. It returns the x range.
func (f *Figure) overlay(xy func(PaperRow) plotter.XY) (lo, hi float64, err error) {
	rows, err := PaperTable1()
	if err != nil {
		return 0, 0, err
	}
	lo, hi = math.Inf(1), math.Inf(-1)
	names, by := paperSystems(rows)
	var collapsed plotter.XYs
	for i, name := range names {
		rs := by[name]
		sort.Slice(rs, func(a, b int) bool { return rs[a].Objectives < rs[b].Objectives })
		pts := make(plotter.XYs, len(rs))
		for j, r := range rs {
			pts[j] = xy(r)
			lo, hi = math.Min(lo, pts[j].X), math.Max(hi, pts[j].X)
			if r.Collapsed {
				collapsed = append(collapsed, pts[j])
			}
		}
		c := paperPalette[i%len(paperPalette)]
		if err := f.addLine(pts, c, draw.CircleGlyph{}, []vg.Length{vg.Points(4), vg.Points(2)}, name+" (paper)"); err != nil {
			return 0, 0, err
		}
	}
	if len(collapsed) > 0 {
		sc, err := plotter.NewScatter(collapsed)
		if err != nil {
			return 0, 0, err
		}
		sc.GlyphStyle.Shape = draw.CrossGlyph{}
		sc.GlyphStyle.Radius = vg.Points(5)
		sc.GlyphStyle.Color = color.NRGBA{0xc0, 0x00, 0x00, 0xff}
		f.Plot.Add(sc)
		f.Legend.Add("collapsed (paper)", sc)
		f.Labels = append(f.Labels, "collapsed (paper)")
	}
	f.Caption += " · " + Citation
	return lo, hi, nil
}

// overlay2 draws each Table 2 (WebShop) system as one point xy(i, row), a
// hollow square in the paper palette labelled "<system> (paper, Table 2)",
// and adds Citation2 to the caption. It returns the x range.
func (f *Figure) overlay2(xy func(int, WebShopPaperRow) plotter.XY) (lo, hi float64, err error) {
	rows, err := PaperTable2()
	if err != nil {
		return 0, 0, err
	}
	lo, hi = math.Inf(1), math.Inf(-1)
	for i, r := range rows {
		pt := xy(i, r)
		lo, hi = math.Min(lo, pt.X), math.Max(hi, pt.X)
		sc, err := plotter.NewScatter(plotter.XYs{pt})
		if err != nil {
			return 0, 0, err
		}
		sc.GlyphStyle.Shape = draw.BoxGlyph{}
		sc.GlyphStyle.Radius = vg.Points(3.5)
		sc.GlyphStyle.Color = paperPalette[i%len(paperPalette)]
		label := r.System + " (paper, Table 2)"
		f.Plot.Add(sc)
		f.Legend.Add(label, sc)
		f.Labels = append(f.Labels, label)
	}
	f.Caption += " · " + Citation2
	return lo, hi, nil
}

// rewardTurns draws, per (model, policy) series, each finished rollout's
// score (final reward ×100 for WebShop, else EM) against its turns as
// points, and the mean score per turn count as a line.
func (f *Figure) rewardTurns(runs []RunPoint, o Options) error {
	type key struct{ model, policy string }
	by := map[key][]RunPoint{}
	var keys []key
	for _, r := range runs {
		k := key{r.Model, r.Policy}
		if _, ok := by[k]; !ok {
			keys = append(keys, k)
		}
		by[k] = append(by[k], r)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].model != keys[j].model {
			return keys[i].model < keys[j].model
		}
		return keys[i].policy < keys[j].policy
	})
	f.Scatter = map[string]plotter.XYs{}
	maxTurn := 1
	for i, k := range keys {
		rs := by[k]
		sort.SliceStable(rs, func(a, b int) bool { return rs[a].Turns < rs[b].Turns })
		c := plotutil.Color(i)
		pts := make(plotter.XYs, len(rs))
		sums, counts := map[int]float64{}, map[int]int{}
		var turns []int
		for j, r := range rs {
			y := r.Score
			if o.reward {
				y *= 100
			}
			pts[j] = plotter.XY{X: float64(r.Turns), Y: y}
			if counts[r.Turns] == 0 {
				turns = append(turns, r.Turns)
			}
			sums[r.Turns] += y
			counts[r.Turns]++
			maxTurn = max(maxTurn, r.Turns)
		}
		label := seriesLabel(experiments.GroupKey{Model: k.model, Policy: k.policy})
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		sc.GlyphStyle.Color = c
		sc.GlyphStyle.Shape = plotutil.Shape(i)
		sc.GlyphStyle.Radius = vg.Points(2.5)
		f.Plot.Add(sc)
		f.Legend.Add(label, sc)
		f.Labels = append(f.Labels, label)
		f.Scatter[label] = pts
		means := make(plotter.XYs, len(turns))
		for j, t := range turns {
			means[j] = plotter.XY{X: float64(t), Y: sums[t] / float64(counts[t])}
		}
		l, err := plotter.NewLine(means)
		if err != nil {
			return err
		}
		l.LineStyle.Color = c
		l.LineStyle.Width = vg.Points(1.2)
		f.Plot.Add(l)
		ml := label + " · mean per turn count"
		f.Legend.Add(ml, l)
		f.Labels = append(f.Labels, ml)
		f.Points += len(pts)
	}
	var ticks plot.ConstantTicks
	step := max(1, maxTurn/10)
	for t := 1; t <= maxTurn; t += step {
		ticks = append(ticks, plot.Tick{Value: float64(t), Label: strconv.Itoa(t)})
	}
	f.Plot.X.Tick.Marker = ticks
	f.Plot.X.Min, f.Plot.X.Max = 0.5, float64(maxTurn)+0.5
	if o.reward {
		f.Plot.Y.Max = 100
	}
	return nil
}

// frontier draws metric against peak tokens, one point per group, joined in
// objective order per series and labelled with the objective count.
func (f *Figure) frontier(aggs []experiments.Aggregate, o Options) error {
	keys, by := groupSeries(aggs)
	for i, k := range keys {
		s := by[k]
		pts := errXY{XYs: make(plotter.XYs, len(s)), YErrors: make(plotter.YErrors, len(s)), XErrors: make(plotter.XErrors, len(s))}
		peak, _ := peakStat(o)
		pts.XYs, pts.YErrors, pts.XErrors = pts.XYs[:0], pts.YErrors[:0], pts.XErrors[:0]
		var labels []string
		for _, a := range s {
			st, ps := accuracy(a, o), peak(a)
			if ps.N == 0 {
				continue
			}
			pts.XYs = append(pts.XYs, plotter.XY{X: ps.Mean, Y: st.Mean})
			h, hx := half(st, o), half(ps, o)
			pts.YErrors = append(pts.YErrors, struct{ Low, High float64 }{Low: h, High: h})
			pts.XErrors = append(pts.XErrors, struct{ Low, High float64 }{Low: hx, High: hx})
			if o.reward {
				labels = append(labels, "") // one goal per task: nothing to tell apart
			} else {
				labels = append(labels, "n="+strconv.Itoa(a.Objectives))
			}
		}
		if len(pts.XYs) == 0 {
			continue
		}
		c := plotutil.Color(i)
		if err := f.addLine(pts.XYs, c, plotutil.Shape(i), nil, seriesLabel(experiments.GroupKey{Model: k.model, Policy: k.policy})); err != nil {
			return err
		}
		ye, err := plotter.NewYErrorBars(pts)
		if err != nil {
			return err
		}
		ye.LineStyle.Color = c
		xe, err := plotter.NewXErrorBars(pts)
		if err != nil {
			return err
		}
		xe.LineStyle.Color = c
		lb, err := plotter.NewLabels(plotter.XYLabels{XYs: pts.XYs, Labels: labels})
		if err != nil {
			return err
		}
		for i := range lb.TextStyle {
			lb.TextStyle[i].Color = c
			lb.TextStyle[i].Font.Size = f.Legend.TextStyle.Font.Size * 0.8 / 0.9
		}
		lb.Offset = vg.Point{X: vg.Points(4), Y: vg.Points(2)}
		f.pointLabels = append(f.pointLabels, lb)
		f.Plot.Add(ye, xe, lb)
		f.Points += len(pts.XYs)
	}
	if o.Overlay && o.reward {
		if _, _, err := f.overlay2(func(_ int, r WebShopPaperRow) plotter.XY { return plotter.XY{X: r.PeakTokens, Y: r.Reward} }); err != nil {
			return err
		}
	} else if o.Overlay {
		if _, _, err := f.overlay(func(r PaperRow) plotter.XY { return plotter.XY{X: r.PeakTokens, Y: paperAccuracy(r, o)} }); err != nil {
			return err
		}
	}
	f.Plot.X.Min, f.Plot.Y.Min = 0, 0
	return nil
}

// context draws each group's mean tokens per turn with a band of o.Bars.
func (f *Figure) context(curves []experiments.ContextCurve, o Options) error {
	sorted := append([]experiments.ContextCurve(nil), curves...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if a.Model != b.Model {
			return a.Model < b.Model
		}
		if a.Policy != b.Policy {
			return a.Policy < b.Policy
		}
		return a.Objectives < b.Objectives
	})
	maxTurn := 1
	for i, c := range sorted {
		if len(c.Points) == 0 {
			continue
		}
		col := plotutil.Color(i)
		line := make(plotter.XYs, len(c.Points))
		band := make(plotter.XYs, 0, 2*len(c.Points))
		for j, pt := range c.Points {
			line[j] = plotter.XY{X: float64(pt.Turn), Y: pt.Tokens.Mean}
			band = append(band, plotter.XY{X: float64(pt.Turn), Y: pt.Tokens.Mean + half(pt.Tokens, o)})
			maxTurn = max(maxTurn, pt.Turn)
		}
		for j := len(c.Points) - 1; j >= 0; j-- {
			pt := c.Points[j]
			band = append(band, plotter.XY{X: float64(pt.Turn), Y: pt.Tokens.Mean - half(pt.Tokens, o)})
		}
		if len(c.Points) > 1 {
			poly, err := plotter.NewPolygon(band)
			if err != nil {
				return err
			}
			r, g, b, _ := col.RGBA()
			poly.Color = color.NRGBA{uint8(r >> 8), uint8(g >> 8), uint8(b >> 8), 0x40}
			poly.LineStyle.Width = 0
			f.Plot.Add(poly)
		}
		label := seriesLabel(c.GroupKey) + ", n=" + strconv.Itoa(c.Objectives)
		if err := f.addLine(line, col, plotutil.Shape(i), nil, label); err != nil {
			return err
		}
		f.Points += len(c.Points)
	}
	var ticks plot.ConstantTicks
	step := max(1, maxTurn/10)
	for t := 1; t <= maxTurn; t += step {
		ticks = append(ticks, plot.Tick{Value: float64(t), Label: strconv.Itoa(t)})
	}
	f.Plot.X.Tick.Marker = ticks
	f.Plot.X.Min, f.Plot.X.Max = 0.5, float64(maxTurn)+0.5
	return nil
}

// SetFontSize sets the base text size in points: axis labels at size, the
// title 1.2×, ticks, legend and point labels 0.9×, the caption 0.75×.
func (f *Figure) SetFontSize(size vg.Length) {
	p := f.Plot
	p.Title.TextStyle.Font.Size = size * 1.2
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font.Size = size
		a.Tick.Label.Font.Size = size * 0.9
	}
	f.Legend.TextStyle.Font.Size = size * 0.9
	f.Legend.Padding = size * 0.25 // between entries: two-line names never touch
	for _, lb := range f.pointLabels {
		for i := range lb.TextStyle {
			lb.TextStyle[i].Font.Size = size * 0.8
		}
	}
}

// Draw lays the figure out on c, filled with bg first when bg is not nil: the
// caption along the bottom, the legend on the right when it fits in 40% of the
// width, else below the plot.
func (f *Figure) Draw(c draw.Canvas, bg color.Color) {
	if bg != nil {
		c.SetColor(bg)
		c.Fill(c.Rectangle.Path())
	}
	pad := vg.Points(4)
	if f.Caption != "" {
		sty := f.Legend.TextStyle
		sty.Font.Size = sty.Font.Size * 0.75 / 0.9
		sty.XAlign, sty.YAlign = draw.XRight, draw.YBottom
		caption := wrapCaption(f.Caption, sty, c.Rectangle.Size().X-2*pad)
		ch := sty.Height(caption) + pad
		c.FillText(sty, vg.Point{X: c.Max.X - pad, Y: c.Min.Y + pad/2}, caption)
		c = draw.Crop(c, 0, 0, ch, 0)
	}
	if len(f.Labels) == 0 {
		f.Plot.Draw(c)
		return
	}
	lr := f.Legend.Rectangle(c)
	lw, lh := lr.Size().X+2*pad, lr.Size().Y+2*pad
	w, h := c.Rectangle.Size().X, c.Rectangle.Size().Y
	if lw <= 0.4*w {
		f.Plot.Draw(draw.Crop(c, 0, -lw, 0, 0))
		f.Legend.Draw(draw.Crop(c, w-lw+pad, -pad, 0, -pad))
		return
	}
	lh = min(lh, 0.5*h)
	f.Plot.Draw(draw.Crop(c, 0, 0, lh, 0))
	f.Legend.Draw(draw.Crop(c, pad, 0, pad, -(h - lh)))
}

// wrapCaption breaks a caption at its " · " separators into lines no wider
// than width where it can (a single part wider than width keeps its line).
func wrapCaption(caption string, sty draw.TextStyle, width vg.Length) string {
	parts := strings.Split(caption, " · ")
	var lines []string
	cur := parts[0]
	for _, part := range parts[1:] {
		if next := cur + " · " + part; sty.Width(next) <= width {
			cur = next
			continue
		}
		lines = append(lines, cur)
		cur = part
	}
	return strings.Join(append(lines, cur), "\n")
}

// Size is a figure size preset.
type Size struct {
	Name          string
	Width, Height vg.Length
	FontSize      vg.Length
}

// Size presets: a single column (3.5 in wide) and a double column (7 in) of a
// two-column paper.
var (
	SingleColumn = Size{Name: "single", Width: 3.5 * vg.Inch, Height: 3.2 * vg.Inch, FontSize: 7}
	DoubleColumn = Size{Name: "double", Width: 7 * vg.Inch, Height: 3.6 * vg.Inch, FontSize: 9}
)

// ParseSize accepts "single" or "double".
func ParseSize(s string) (Size, error) {
	switch s {
	case "single", "":
		return SingleColumn, nil
	case "double":
		return DoubleColumn, nil
	}
	return Size{}, fmt.Errorf("unknown size %q (want single or double)", s)
}

// Formats are the export formats Write accepts.
var Formats = []string{"png", "svg", "pdf"}

// FormatOf returns the format named by a file's extension ("fig.PDF" → "pdf").
func FormatOf(path string) (string, error) {
	i := strings.LastIndex(path, ".")
	if i >= 0 {
		ext := strings.ToLower(path[i+1:])
		for _, f := range Formats {
			if ext == f {
				return f, nil
			}
		}
	}
	return "", fmt.Errorf("%s: unknown figure format (want .png, .svg or .pdf)", path)
}

// Write draws f at size onto w in format ("png", "svg" or "pdf"); dpi is the
// PNG resolution (0 = 300) and is ignored by the vector formats. The background
// is bg (nil = white).
func (f *Figure) Write(w io.Writer, format string, size Size, dpi int, bg color.Color) error {
	if bg == nil {
		bg = color.White
	}
	if dpi <= 0 {
		dpi = 300
	}
	var c interface {
		vg.CanvasSizer
		io.WriterTo
	}
	switch format {
	case "png":
		ic := vgimg.NewWith(vgimg.UseWH(size.Width, size.Height), vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(bg))
		c = vgimg.PngCanvas{Canvas: ic}
	case "svg":
		c = vgsvg.New(size.Width, size.Height)
	case "pdf":
		pc := vgpdf.New(size.Width, size.Height)
		pc.EmbedFonts(true)
		c = pc
	default:
		return fmt.Errorf("figures: format %q: want png, svg or pdf", format)
	}
	if size.FontSize > 0 {
		old := f.Legend.TextStyle.Font.Size / 0.9
		f.SetFontSize(size.FontSize)
		defer f.SetFontSize(old)
	}
	f.Draw(draw.New(c), bg)
	_, err := c.WriteTo(w)
	return err
}

// Render draws f into a w×h pixel image; scale is pixels per point·72/inch
// (1 = 72 DPI: text keeps its point size on a 1× screen). Non-positive sizes give
// a 1×1 image.
func (f *Figure) Render(w, h int, scale float64, bg color.Color) image.Image {
	if w <= 0 || h <= 0 {
		return image.NewNRGBA(image.Rect(0, 0, 1, 1))
	}
	if scale <= 0 {
		scale = 1
	}
	if bg == nil {
		bg = color.Transparent
	}
	dpi := max(1, int(72*scale+0.5))
	in := func(px int) vg.Length { return vg.Length(float64(px)/float64(dpi)) * vg.Inch }
	c := vgimg.NewWith(vgimg.UseWH(in(w), in(h)), vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(bg))
	f.Draw(draw.New(c), nil)
	return c.Image()
}
