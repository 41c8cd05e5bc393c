package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mem1lab/mem1lab/experiments/figures"
)

// cmdPlot draws one chart of stored experiments into a PNG, SVG or PDF file.
func (c *CLI) cmdPlot(ctx context.Context, args []string) error {
	fs := c.flags("plot")
	db := fs.String("db", DefaultDBPath(), "SQLite store")
	exp := fs.String("experiment", "", "experiment id, or several comma-separated")
	var names []string
	for _, k := range append(append([]figures.Kind(nil), figures.Kinds...), figures.DiagnosticKinds...) {
		names = append(names, string(k))
	}
	chart := fs.String("chart", "accuracy", strings.Join(names, " | "))
	out := fs.String("out", "", "output file: .pdf, .svg or .png")
	metric := fs.String("metric", "em", "accuracy metric: em or f1")
	perObj := fs.Bool("per-objective", false, "EM/F1 divided by the number of objectives instead of summed")
	overlay := fs.Bool("overlay", false, "draw the MEM1 paper's results (arXiv:2506.15841) as reference series: Table 1 on QA charts, Table 2 on WebShop charts")
	size := fs.String("size", "single", "single (3.5 in) or double (7 in) column")
	dpi := fs.Int("dpi", 300, "PNG resolution")
	title := fs.String("title", "", "figure title (default: the chart's)")
	pooled := fs.Bool("pool-models", false, "one series per policy across models")
	peak := fs.String("peak", figures.PeakPaper, "peak-token count of the peak and frontier charts: paper (MEM1 eval.py, o200k; the overlay's definition) or request (as served; no overlay)")
	dataset := fs.String("dataset", "", "only rollouts of this dataset (default: all)")
	series := fs.String("series", "", "composition: the series to draw, e.g. \"mem1 · model, n=4\" (default: the first)")
	bars := fs.String("bars", figures.BarsCI95, "error bars: ci95 (95% t interval over tasks) or se (±1 standard error)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	ids, err := parseExperimentIDs(*exp)
	if err != nil {
		return err
	}
	kind, err := figures.ParseKind(*chart)
	if err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out FILE (.pdf, .svg or .png) is required")
	}
	format, err := figures.FormatOf(*out)
	if err != nil {
		return err
	}
	sz, err := figures.ParseSize(*size)
	if err != nil {
		return err
	}
	if *dpi < 10 || *dpi > 2400 {
		return fmt.Errorf("--dpi %d: want 10..2400", *dpi)
	}
	open := openReading
	if figures.IsDiagnostic(kind) {
		open = openCaching // the diagnostics are cached where the store can be written
	}
	st, err := openExperiments(ctx, open, *db, ids)
	if err != nil {
		return err
	}
	defer st.Close()
	if *peak != figures.PeakPaper && *peak != figures.PeakRequest {
		return fmt.Errorf("--peak %q: want paper or request", *peak)
	}
	opt := figures.Options{Kind: kind, Metric: *metric, PerObjective: *perObj,
		Overlay: *overlay, Title: *title, FontSize: sz.FontSize, PeakCount: *peak, Bars: *bars, Series: *series}
	for _, id := range ids { // a WebShop experiment on the fake server: say its reward is not the paper's
		e, err := st.Experiment(ctx, id)
		if err != nil {
			return err
		}
		if _, fake := figures.WebShopConfig(e.ConfigJSON); fake {
			opt.FakeReward = true
		}
	}
	var fig *figures.Figure
	if figures.IsDiagnostic(kind) {
		if *dataset != "" {
			return fmt.Errorf("--dataset does not apply to the %s chart", kind)
		}
		dd, err := figures.LoadDiagnostics(ctx, st, ids, !*pooled)
		if err != nil {
			return err
		}
		if fig, err = figures.BuildDiagnostic(dd, opt); err != nil {
			return err
		}
	} else {
		data, _, err := figures.Load(ctx, st, ids, figures.LoadOptions{Dataset: *dataset, ByModel: !*pooled, Curves: kind == figures.Context})
		if err != nil {
			return err
		}
		if fig, err = figures.Build(data, opt); err != nil {
			return err
		}
		if n := data.LeftOutWebShop; n > 0 {
			fmt.Fprintf(c.Stderr, "%d WebShop rollouts left out: a chart shows one task family (--dataset webshop charts them)\n", n)
		}
	}
	if err := writeAtomically(c.Stdout, *out, func(w io.Writer) error { return fig.Write(w, format, sz, *dpi, nil) }); err != nil {
		return err
	}
	fmt.Fprintf(c.Stderr, "wrote %s chart (%d points) of experiment %s to %s\n", kind, fig.Points, *exp, *out)
	if opt.FakeReward {
		fmt.Fprintln(c.Stderr, "("+figures.FakeRewardNote+")")
	}
	return nil
}
