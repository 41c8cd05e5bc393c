package figures

import (
	"context"
	"fmt"
	"image/color"
	"math"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/memdiag"
)

// The memory-diagnostics charts (BuildDiagnostic). They are not in Kinds:
// they draw DiagnosticData, not aggregates.
const (
	Retention   Kind = "retention"   // share of retrieved gold facts kept k turns later, per (model,) policy
	Positions   Kind = "positions"   // EM by objective position, per series and objectives count, 95% CIs
	Composition Kind = "composition" // mean context per turn split into its parts, stacked, peak marked
)

// DiagnosticKinds lists the memory-diagnostics charts, in menu order.
var DiagnosticKinds = []Kind{Composition, Retention, Positions}

// IsDiagnostic reports whether k is one of DiagnosticKinds.
func IsDiagnostic(k Kind) bool {
	for _, d := range DiagnosticKinds {
		if d == k {
			return true
		}
	}
	return false
}

// PositionSeries is the accuracy by objective position of one (model,)
// policy and objectives count.
type PositionSeries struct {
	Label  string
	Points []memdiag.PositionAccuracy
}

// CompositionTurn is the mean of one turn's context parts (tokens) over the
// N rollouts of a group that reached the turn.
type CompositionTurn struct {
	Turn  int
	N     int
	Parts map[string]float64
	Total float64
}

// CompositionSeries is the mean composition per turn of one group.
type CompositionSeries struct {
	Label string
	Key   experiments.GroupKey
	Turns []CompositionTurn
}

// DiagnosticData is what the memory-diagnostics charts draw.
type DiagnosticData struct {
	Retention   []RetentionSeries
	Positions   []PositionSeries
	Composition []CompositionSeries
}

// LoadDiagnostics computes the memory diagnostics of the done rollouts of
// the experiments ids (experiments.EachRolloutDiagnostics: o200k counts,
// cached in the store) and groups them by (model, policy) — by policy when
// byModel is false — and, for positions and composition, objectives count.
func LoadDiagnostics(ctx context.Context, st experiments.ExportStore, ids []int64, byModel bool) (DiagnosticData, error) {
	facts := map[experiments.GroupKey][]memdiag.FactRetention{}
	marks := map[experiments.GroupKey][][]float64{}
	type acc struct {
		n     []int
		parts []map[string]float64
		total []float64
	}
	comp := map[experiments.GroupKey]*acc{}
	err := experiments.EachRolloutDiagnostics(ctx, st, experiments.DiagnosticsOptions{}, func(d experiments.RolloutDiagnostics) error {
		k := experiments.GroupKey{Policy: d.Policy}
		if byModel {
			k.Model = d.Model
		}
		facts[k] = append(facts[k], d.Retention...)
		k.Objectives = d.Objectives
		if len(d.ObjectiveEM) > 0 {
			marks[k] = append(marks[k], d.ObjectiveEM)
		}
		a := comp[k]
		if a == nil {
			a = &acc{}
			comp[k] = a
		}
		for i, c := range d.Composition {
			for len(a.n) <= i {
				a.n, a.parts, a.total = append(a.n, 0), append(a.parts, map[string]float64{}), append(a.total, 0)
			}
			a.n[i]++
			a.total[i] += float64(c.Tokens)
			for p, v := range c.Parts {
				a.parts[i][p] += float64(v)
			}
		}
		return nil
	}, ids...)
	if err != nil {
		return DiagnosticData{}, err
	}
	var dd DiagnosticData
	for k, fs := range facts {
		dd.Retention = append(dd.Retention, RetentionSeries{Label: seriesLabel(k), Points: memdiag.RetentionCurve(fs)})
	}
	sort.Slice(dd.Retention, func(i, j int) bool { return dd.Retention[i].Label < dd.Retention[j].Label })
	var keys []experiments.GroupKey
	for k := range marks {
		keys = append(keys, k)
	}
	sortKeys(keys)
	for _, k := range keys {
		dd.Positions = append(dd.Positions, PositionSeries{Label: seriesLabel(k) + ", n=" + strconv.Itoa(k.Objectives),
			Points: memdiag.AccuracyByPosition(marks[k])})
	}
	keys = keys[:0]
	for k := range comp {
		keys = append(keys, k)
	}
	sortKeys(keys)
	for _, k := range keys {
		a := comp[k]
		s := CompositionSeries{Label: seriesLabel(k) + ", n=" + strconv.Itoa(k.Objectives), Key: k}
		for i, n := range a.n {
			if n == 0 {
				continue
			}
			t := CompositionTurn{Turn: i + 1, N: n, Parts: map[string]float64{}, Total: a.total[i] / float64(n)}
			for p, v := range a.parts[i] {
				t.Parts[p] = v / float64(n)
			}
			s.Turns = append(s.Turns, t)
		}
		if len(s.Turns) > 0 {
			dd.Composition = append(dd.Composition, s)
		}
	}
	return dd, nil
}

func sortKeys(keys []experiments.GroupKey) {
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Model != b.Model {
			return a.Model < b.Model
		}
		if a.Policy != b.Policy {
			return a.Policy < b.Policy
		}
		return a.Objectives < b.Objectives
	})
}

// BuildDiagnostic draws the memory-diagnostics chart o.Kind (one of
// DiagnosticKinds) from d. Composition draws the series o.Series names (its
// Label), or the first when Series is "" or unknown.
func BuildDiagnostic(d DiagnosticData, o Options) (*Figure, error) {
	switch o.Kind {
	case Retention:
		f, err := BuildRetention(d.Retention, o)
		if err != nil {
			return nil, err
		}
		if o.Title != "" {
			f.Plot.Title.Text = o.Title
		}
		return f, nil
	case Positions:
		return buildPositions(d.Positions, o)
	case Composition:
		return buildComposition(d.Composition, o)
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownKind, o.Kind)
}

// buildPositions draws EM per objective position, one line per series, with
// error bars of o.Bars.
func buildPositions(series []PositionSeries, o Options) (*Figure, error) {
	f, err := newFigure(o)
	if err != nil {
		return nil, err
	}
	p := f.Plot
	p.Title.Text = "Accuracy by objective position"
	p.X.Label.Text = "objective position in the task"
	p.Y.Label.Text = "EM of the objective"
	maxPos := 1
	for i, s := range series {
		if len(s.Points) == 0 {
			continue
		}
		pts := errXY{XYs: make(plotter.XYs, len(s.Points)), YErrors: make(plotter.YErrors, len(s.Points))}
		for j, pt := range s.Points {
			h := half(experiments.Stat{N: pt.N, Mean: pt.EM, StdErr: pt.StdErr}, o)
			pts.XYs[j] = plotter.XY{X: float64(pt.Position), Y: pt.EM}
			pts.YErrors[j] = struct{ Low, High float64 }{Low: h, High: h}
			maxPos = max(maxPos, pt.Position)
		}
		if err := f.addLine(pts.XYs, plotutil.Color(i), plotutil.Shape(i), nil, s.Label); err != nil {
			return nil, err
		}
		eb, err := plotter.NewYErrorBars(pts)
		if err != nil {
			return nil, err
		}
		eb.LineStyle.Color = plotutil.Color(i)
		p.Add(eb)
		f.Points += len(s.Points)
	}
	var ticks plot.ConstantTicks
	for t := 1; t <= maxPos; t++ {
		ticks = append(ticks, plot.Tick{Value: float64(t), Label: strconv.Itoa(t)})
	}
	p.X.Tick.Marker = ticks
	p.X.Min, p.X.Max = 0.5, float64(maxPos)+0.5
	p.Y.Min, p.Y.Max = 0, 1.1
	if o.Title != "" {
		p.Title.Text = o.Title
	}
	if f.Points == 0 {
		p.Title.Text += " — no scored objectives"
	}
	return f, nil
}

// partColors colour the context parts of the composition chart.
var partColors = map[string]color.Color{
	memdiag.PartPrompt:      color.NRGBA{0x99, 0x99, 0x99, 0xff},
	memdiag.PartState:       color.NRGBA{0x1b, 0x9e, 0x77, 0xff},
	memdiag.PartResponses:   color.NRGBA{0x75, 0x70, 0xb3, 0xff},
	memdiag.PartInformation: color.NRGBA{0xd9, 0x5f, 0x02, 0xff},
	memdiag.PartMemory:      color.NRGBA{0xe7, 0x29, 0x8a, 0xff},
}

// buildComposition stacks the mean tokens of each context part per turn for
// one series and marks the turn of the peak mean context.
func buildComposition(series []CompositionSeries, o Options) (*Figure, error) {
	f, err := newFigure(o)
	if err != nil {
		return nil, err
	}
	f.Caption = "Mean o200k tokens of the context rebuilt per turn"
	p := f.Plot
	p.Title.Text = "Context composition per turn"
	p.X.Label.Text = "turn"
	p.Y.Label.Text = "tokens (o200k)"
	if len(series) == 0 {
		p.Title.Text += " — no finished rollouts"
		return f, nil
	}
	s := series[0]
	for _, c := range series {
		if c.Label == o.Series {
			s = c
		}
	}
	p.Title.Text += " — " + s.Label
	base := make([]float64, len(s.Turns))
	peakTurn, peak := 0, math.Inf(-1)
	for _, t := range s.Turns {
		if t.Total > peak {
			peakTurn, peak = t.Turn, t.Total
		}
	}
	for _, part := range memdiag.Parts {
		poly := make(plotter.XYs, 0, 2*len(s.Turns))
		any := false
		for i, t := range s.Turns {
			poly = append(poly, plotter.XY{X: float64(t.Turn), Y: base[i] + t.Parts[part]})
			any = any || t.Parts[part] > 0
		}
		if !any {
			continue
		}
		for i := len(s.Turns) - 1; i >= 0; i-- {
			poly = append(poly, plotter.XY{X: float64(s.Turns[i].Turn), Y: base[i]})
		}
		for i, t := range s.Turns {
			base[i] += t.Parts[part]
		}
		if len(s.Turns) == 1 { // a single turn: a thin band so it shows
			poly = append(poly[:1], plotter.XY{X: poly[0].X + 0.2, Y: poly[0].Y}, plotter.XY{X: poly[1].X + 0.2, Y: poly[1].Y}, poly[1])
		}
		pg, err := plotter.NewPolygon(poly)
		if err != nil {
			return nil, err
		}
		pg.Color = partColors[part]
		pg.LineStyle.Width = 0
		p.Add(pg)
		f.Legend.Add(part, pg)
		f.Labels = append(f.Labels, part)
	}
	f.Points = len(s.Turns)
	mark := plotter.XYs{{X: float64(peakTurn), Y: 0}, {X: float64(peakTurn), Y: peak}}
	l, err := plotter.NewLine(mark)
	if err != nil {
		return nil, err
	}
	l.LineStyle.Color = f.Legend.TextStyle.Color
	l.LineStyle.Dashes = []vg.Length{vg.Points(3), vg.Points(2)}
	p.Add(l)
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: float64(peakTurn), Y: peak}},
		Labels: []string{fmt.Sprintf("peak %.0f", peak)}})
	if err != nil {
		return nil, err
	}
	for i := range lb.TextStyle {
		lb.TextStyle[i].Color = f.Legend.TextStyle.Color
		lb.TextStyle[i].XAlign = draw.XCenter
		lb.TextStyle[i].Font.Size = f.Legend.TextStyle.Font.Size * 0.8 / 0.9
	}
	lb.Offset = vg.Point{Y: vg.Points(3)}
	f.pointLabels = append(f.pointLabels, lb)
	p.Add(lb)
	maxTurn := s.Turns[len(s.Turns)-1].Turn
	var ticks plot.ConstantTicks
	for t := 1; t <= maxTurn; t += max(1, maxTurn/10) {
		ticks = append(ticks, plot.Tick{Value: float64(t), Label: strconv.Itoa(t)})
	}
	p.X.Tick.Marker = ticks
	p.Y.Min, p.Y.Max = 0, peak*1.12
	if o.Title != "" {
		p.Title.Text = o.Title
	}
	return f, nil
}

// RolloutCompositionSeries turns one rollout's per-turn composition into a
// CompositionSeries (N = 1 per turn) for the Composition chart.
func RolloutCompositionSeries(label string, comp []memdiag.Composition) CompositionSeries {
	s := CompositionSeries{Label: label}
	for _, c := range comp {
		t := CompositionTurn{Turn: c.Turn, N: 1, Total: float64(c.Tokens), Parts: map[string]float64{}}
		for p, v := range c.Parts {
			t.Parts[p] = float64(v)
		}
		s.Turns = append(s.Turns, t)
	}
	return s
}
