package figures

import (
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"sort"
	"strings"

	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgpdf"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/memdiag"
	"github.com/mem1lab/mem1lab/storage"
)

// RetentionSeries is one retention curve: the share of retrieved gold facts
// still in the internal state k turns after retrieval (memdiag.RetentionCurve).
type RetentionSeries struct {
	Label  string
	Points []memdiag.CurvePoint
}

// BuildRetention draws retention curves, one line per series, share (0..1)
// against k turns after retrieval.
func BuildRetention(series []RetentionSeries, o Options) (*Figure, error) {
	f, err := newFigure(o)
	if err != nil {
		return nil, err
	}
	p := f.Plot
	p.Title.Text = "Fact retention in the internal state"
	p.X.Label.Text = "turns after retrieval"
	p.Y.Label.Text = "share of retrieved gold facts kept"
	f.Caption = ""
	f.Legend.Top = false
	for i, s := range series {
		if len(s.Points) == 0 {
			continue
		}
		xys := make(plotter.XYs, len(s.Points))
		for j, pt := range s.Points {
			xys[j] = plotter.XY{X: float64(pt.K), Y: pt.Share}
		}
		if err := f.addLine(xys, plotutil.Color(i), plotutil.Shape(i), nil, s.Label); err != nil {
			return nil, err
		}
		f.Points += len(xys)
	}
	p.Y.Min, p.Y.Max = 0, 1.05
	if f.Points == 0 {
		p.Title.Text += " — no retrieved facts"
	}
	return f, nil
}

// PaperSize is a layout of the paper figure: its page size, base font size
// and panel grid.
type PaperSize struct {
	Name          string
	Width, Height vg.Length
	FontSize      vg.Length
	Rows, Cols    int
}

// Paper figure layouts: a single column (3.5 in, panels 2×2) and a double
// column (7 in, panels 2×2 in a wider page).
var (
	PaperSingle = PaperSize{Name: "single", Width: 3.5 * vg.Inch, Height: 4.6 * vg.Inch, FontSize: 5.5, Rows: 2, Cols: 2}
	PaperDouble = PaperSize{Name: "double", Width: 7 * vg.Inch, Height: 4.8 * vg.Inch, FontSize: 7, Rows: 2, Cols: 2}
)

// ParsePaperSize accepts "single" or "double".
func ParsePaperSize(s string) (PaperSize, error) {
	switch s {
	case "single", "":
		return PaperSingle, nil
	case "double":
		return PaperDouble, nil
	}
	return PaperSize{}, fmt.Errorf("unknown size %q (want single or double)", s)
}

// PaperData is what the paper figure draws: the aggregates (EM and peak tokens
// against objectives, the frontier), the retention curves, and the objective
// counts a comparison found not significantly different.
type PaperData struct {
	Data
	Retention      []RetentionSeries
	NotSignificant []int
}

// PaperFigure is the multi-panel figure: (a) EM vs objectives with error bars
// (95% CIs by default), n.s. marks from a comparison, (b) peak tokens vs
// objectives, (c) the accuracy–memory frontier, (d) retention curves.
type PaperFigure struct {
	Panels []*Figure
	Size   PaperSize
}

// paperTitles are the panels' short titles (the caption file says the rest).
var paperTitles = []string{"Accuracy", "Peak tokens", "Accuracy vs memory", "Fact retention"}

// webShopPaperTitles are the panels' titles for WebShop data.
var webShopPaperTitles = []string{"Final reward ×100", "Peak tokens", "Reward vs memory", "Fact retention"}

// BuildPaper builds the four panels with o's metric, per-objective choice and
// error bars; titles get panel letters and the per-panel captions are left to
// the caption file (PaperCaption).
func BuildPaper(d PaperData, o Options, size PaperSize) (*PaperFigure, error) {
	o.FontSize = size.FontSize
	o.Overlay, o.Title = false, ""
	pf := &PaperFigure{Size: size}
	for i, k := range []Kind{Accuracy, Peak, Frontier} {
		ko := o
		ko.Kind = k
		if k != Accuracy {
			ko.NotSignificant = nil
		} else {
			ko.NotSignificant = d.NotSignificant
		}
		f, err := Build(d.Data, ko)
		if err != nil {
			return nil, err
		}
		titles := paperTitles
		if d.Data.WebShop {
			titles = webShopPaperTitles
		}
		f.Plot.Title.Text = fmt.Sprintf("(%c) %s", 'a'+i, titles[i])
		pf.Panels = append(pf.Panels, f)
	}
	r, err := BuildRetention(d.Retention, o)
	if err != nil {
		return nil, err
	}
	r.Plot.Title.Text = "(d) " + paperTitles[3]
	pf.Panels = append(pf.Panels, r)
	for _, f := range pf.Panels {
		f.Caption = ""
		f.Legend.ThumbnailWidth = 0.15 * vg.Inch
	}
	return pf, nil
}

// Write draws the panels in the size's grid as "svg" or "pdf" (fonts
// embedded) on a white background ("png" at 200 dpi for previews).
func (pf *PaperFigure) Write(w io.Writer, format string) error {
	var c interface {
		vg.CanvasSizer
		io.WriterTo
	}
	s := pf.Size
	switch format {
	case "svg":
		c = vgsvg.New(s.Width, s.Height)
	case "pdf":
		pc := vgpdf.New(s.Width, s.Height)
		pc.EmbedFonts(true)
		c = pc
	case "png": // previews only; papers take the vector formats
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(s.Width, s.Height), vgimg.UseDPI(200))}
	default:
		return fmt.Errorf("figures: paper figure format %q: want svg or pdf", format)
	}
	dc := draw.New(c)
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	tiles := draw.Tiles{Rows: s.Rows, Cols: s.Cols, PadX: vg.Points(6), PadY: vg.Points(6),
		PadTop: vg.Points(2), PadBottom: vg.Points(2), PadLeft: vg.Points(2), PadRight: vg.Points(2)}
	for i, f := range pf.Panels {
		if i >= s.Rows*s.Cols {
			break
		}
		f.Draw(tiles.At(dc, i%s.Cols, i/s.Cols), nil)
	}
	_, err := c.WriteTo(w)
	return err
}

// PaperCaption is the caption text of the paper figure, ready to paste under
// a LaTeX figure: what each panel shows, n (done rollouts, i.e. tasks) per
// setting, the error bars and tests, the comparison's per-objectives results
// when cmp is not nil, and the exact settings of each experiment (name,
// config hash and the run's key settings).
func PaperCaption(exps []storage.ExperimentRow, aggs []experiments.Aggregate, cmp *experiments.Comparison, o Options) string {
	var b strings.Builder
	metric := strings.ToUpper(o.Metric)
	if metric == "" {
		metric = "EM"
	}
	scale := "summed over objectives"
	if o.PerObjective {
		scale = "per objective"
	}
	ws, fake := len(exps) > 0, false
	for _, e := range exps {
		w, f := WebShopConfig(e.ConfigJSON)
		ws, fake = ws && w, fake || f
	}
	if ws {
		b.WriteString("WebShop (one goal per task). (a) final reward ×100 per setting (policy and model); (b) peak tokens per setting; " +
			"(c) final reward ×100 against peak tokens; (d) share of retrieved gold facts still in the internal state k turns after retrieval. ")
		if fake {
			b.WriteString("Rewards are from mem1lab's fake WebShop server, whose reward has no product-type term: not comparable with the paper's Table 2. ")
		}
	} else {
		fmt.Fprintf(&b, "(a) %s (%s) against the number of objectives; (b) peak tokens (context + generation) against the number of objectives; "+
			"(c) %s against peak tokens; (d) share of retrieved gold facts still in the internal state k turns after retrieval. ", metric, scale, metric)
	}
	fmt.Fprintf(&b, "%s", BarsCaption(o))
	if o.Bars != BarsSE {
		b.WriteString(": mean ± t(0.975, n−1)·SE, n tasks")
	}
	b.WriteString(".\n\n")
	b.WriteString("n (finished rollouts = tasks) per setting:\n")
	for _, a := range aggs {
		label := a.Policy
		if a.Model != "" {
			label += " · " + a.Model
		}
		fmt.Fprintf(&b, "  %s, %d objectives: n = %d (%d failed)\n", label, a.Objectives, a.EM.N, a.Failed)
	}
	if cmp != nil {
		fmt.Fprintf(&b, "\nComparison %s, a = %s vs b = %s (%s differs), paired by task; delta = a − b; "+
			"95%% paired-t interval; p from the paired t test, Holm-adjusted across objective counts; n.s. in (a) marks p_holm ≥ 0.05:\n",
			cmp.Metric, cmp.A, cmp.B, cmp.Factor)
		rows := append([]experiments.ComparisonRow(nil), cmp.Rows...)
		sort.SliceStable(rows, func(i, j int) bool { return !rows[i].Pooled && rows[j].Pooled })
		for _, r := range rows {
			obj := "pooled"
			if !r.Pooled {
				obj = fmt.Sprintf("%d objectives", r.Objectives)
			}
			fmt.Fprintf(&b, "  %s: n = %d, delta = %.4g [%.4g, %.4g], p = %.3g, p_holm = %.3g, wins/ties/losses %d/%d/%d (%s)\n",
				obj, r.N, r.Delta, r.CILow, r.CIHigh, r.P, r.PHolm, r.Wins, r.Ties, r.Losses, r.Test)
		}
	}
	b.WriteString("\nSettings:\n")
	for _, e := range exps {
		fmt.Fprintf(&b, "  experiment %d %q, config hash %s: %s\n", e.ID, e.Name, e.ConfigHash, settingsLine(e.ConfigJSON))
	}
	return b.String()
}

// WebShopConfig reads an experiment's stored config JSON: whether it is a
// WebShop experiment ("family": "webshop") and whether it ran on mem1lab's
// fake WebShop server ("fake_reward": true, a reward without the
// product-type term). Unreadable JSON is neither.
func WebShopConfig(configJSON string) (webShop, fakeReward bool) {
	var c struct {
		Family     string `json:"family"`
		FakeReward bool   `json:"fake_reward"`
	}
	if json.Unmarshal([]byte(configJSON), &c) != nil || c.Family != core.FamilyWebShop {
		return false, false
	}
	return true, c.FakeReward
}

// settingsLine lists the key run settings of a stored config.
func settingsLine(configJSON string) string {
	cfg, err := experiments.ParseStoredConfig(configJSON)
	if err != nil {
		return "settings not readable: " + err.Error()
	}
	pol := cfg.Policy
	if len(cfg.Policies) > 0 {
		pol = strings.Join(cfg.Policies, ",")
	}
	objs := fmt.Sprint(cfg.Objectives)
	if len(cfg.ObjectivesGrid) > 0 {
		objs = strings.Trim(strings.Join(strings.Fields(fmt.Sprint(cfg.ObjectivesGrid)), ","), "[]")
	}
	return fmt.Sprintf("model %s, mode %s, policy %s, dataset %s, objectives %s, tasks %d, compose %s, seed %d, top_k %d, "+
		"temperature %g, top_p %g, max_tokens %d, max_turns %d, scheme %s", cfg.Model, cfg.Mode, pol, cfg.Dataset, objs,
		cfg.Tasks, cfg.Compose, cfg.Seed, cfg.TopK, cfg.Temperature, cfg.TopP, cfg.MaxTokens, cfg.MaxTurns, cfg.Scheme)
}

// LoadRetention computes the retention curves of the done rollouts of the
// experiments ids (experiments.EachRolloutDiagnostics), one series per
// (model, policy) — per policy when byModel is false — pooled over objective
// counts, sorted by label.
func LoadRetention(ctx context.Context, st experiments.ExportStore, ids []int64, byModel bool) ([]RetentionSeries, error) {
	facts := map[experiments.GroupKey][]memdiag.FactRetention{}
	err := experiments.EachRolloutDiagnostics(ctx, st, experiments.DiagnosticsOptions{NoTokens: true}, func(d experiments.RolloutDiagnostics) error {
		k := experiments.GroupKey{Policy: d.Policy}
		if byModel {
			k.Model = d.Model
		}
		facts[k] = append(facts[k], d.Retention...)
		return nil
	}, ids...)
	if err != nil {
		return nil, err
	}
	out := make([]RetentionSeries, 0, len(facts))
	for k, fs := range facts {
		out = append(out, RetentionSeries{Label: seriesLabel(k), Points: memdiag.RetentionCurve(fs)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Label < out[j].Label })
	return out, nil
}
