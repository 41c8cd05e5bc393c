package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/figures"
	"github.com/mem1lab/mem1lab/storage"
)

// captionPath is the caption file written beside a figure: fig.pdf →
// fig.caption.txt.
func captionPath(out string) string {
	if i := strings.LastIndex(out, "."); i > strings.LastIndex(out, "/") {
		out = out[:i]
	}
	return out + ".caption.txt"
}

// cmdPaperFigure writes the multi-panel paper figure (figures.BuildPaper) of
// stored experiments and its caption text file.
func (c *CLI) cmdPaperFigure(ctx context.Context, args []string) error {
	fs := c.flags("paper-figure")
	db := fs.String("db", DefaultDBPath(), "SQLite store")
	exp := fs.String("experiment", "", "experiment id, or several comma-separated")
	out := fs.String("out", "", "output file: .pdf (fonts embedded) or .svg; the caption goes to FILE.caption.txt")
	size := fs.String("size", "single", "single (3.5 in) or double (7 in) column")
	metric := fs.String("metric", "em", "accuracy metric: em or f1")
	perObj := fs.Bool("per-objective", false, "EM/F1 divided by the number of objectives instead of summed")
	bars := fs.String("bars", figures.BarsCI95, "error bars: ci95 or se")
	pooled := fs.Bool("pool-models", false, "one series per policy across models")
	sideA := fs.String("a", "", "optional comparison: setting a (e.g. policy=mem1); marks n.s. objective counts in panel (a)")
	sideB := fs.String("b", "", "optional comparison: setting b (e.g. policy=full)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	ids, err := parseExperimentIDs(*exp)
	if err != nil {
		return err
	}
	psize, err := figures.ParsePaperSize(*size)
	if err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out FILE (.pdf or .svg) is required")
	}
	format, err := figures.FormatOf(*out)
	if err != nil {
		return err
	}
	if format == "png" {
		return errors.New("--out: the paper figure is vector only (.pdf or .svg)")
	}
	var sa, sb experiments.CompareSetting
	if *sideA != "" || *sideB != "" {
		if sa, sb, err = parseSides(*sideA, *sideB); err != nil {
			return err
		}
	}
	st, err := openExperiments(ctx, openExisting, *db, ids)
	if err != nil {
		return err
	}
	defer st.Close()
	data, _, err := figures.Load(ctx, st, ids, figures.LoadOptions{ByModel: !*pooled})
	if err != nil {
		return err
	}
	pd := figures.PaperData{Data: data}
	if pd.Retention, err = figures.LoadRetention(ctx, st, ids, !*pooled); err != nil {
		return err
	}
	var cmp *experiments.Comparison
	if sa != nil {
		cmps, err := experiments.ExperimentComparisons(ctx, st, sa, sb, []string{*metric}, experiments.CompareOptions{Seed: 1}, ids...)
		if err != nil {
			return err
		}
		cmp = &cmps[0]
		for _, r := range cmp.Rows {
			if !r.Pooled && !math.IsNaN(r.PHolm) && r.PHolm >= 0.05 {
				pd.NotSignificant = append(pd.NotSignificant, r.Objectives)
			}
		}
	}
	opt := figures.Options{Metric: *metric, PerObjective: *perObj, Bars: *bars}
	pf, err := figures.BuildPaper(pd, opt, psize)
	if err != nil {
		return err
	}
	var exps []storage.ExperimentRow
	for _, id := range ids {
		e, err := st.Experiment(ctx, id)
		if err != nil {
			return err
		}
		exps = append(exps, e)
	}
	caption := figures.PaperCaption(exps, data.Aggregates, cmp, opt)
	if err := writeAtomically(c.Stdout, *out, func(w io.Writer) error { return pf.Write(w, format) }); err != nil {
		return err
	}
	cp := captionPath(*out)
	if err := writeAtomically(c.Stdout, cp, func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader([]byte(caption)))
		return err
	}); err != nil {
		return err
	}
	fmt.Fprintf(c.Stderr, "wrote the paper figure (%s column) to %s and its caption to %s\n", psize.Name, *out, cp)
	return nil
}
