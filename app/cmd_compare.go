package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"text/tabwriter"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/figures"
	"github.com/mem1lab/mem1lab/experiments/stats"
	"github.com/mem1lab/mem1lab/storage"
)

// experimentList is a repeatable --experiment flag; each value may itself be
// a comma-separated list of ids.
type experimentList struct{ ids []int64 }

func (l *experimentList) String() string { return fmt.Sprint(l.ids) }

func (l *experimentList) Set(s string) error {
	ids, err := parseExperimentIDs(s)
	if err != nil {
		return err
	}
	l.ids = append(l.ids, ids...)
	return nil
}

// parseSides reads --a and --b.
func parseSides(a, b string) (experiments.CompareSetting, experiments.CompareSetting, error) {
	if a == "" || b == "" {
		return nil, nil, errors.New("--a and --b are required, e.g. --a policy=mem1 --b policy=full")
	}
	sa, err := experiments.ParseCompareSetting(a)
	if err != nil {
		return nil, nil, fmt.Errorf("--a: %w", err)
	}
	sb, err := experiments.ParseCompareSetting(b)
	if err != nil {
		return nil, nil, fmt.Errorf("--b: %w", err)
	}
	return sa, sb, nil
}

// cmdCompare compares two settings of stored experiments on the same tasks
// (experiments.Compare) and prints one row per objectives count plus the pool.
func (c *CLI) cmdCompare(ctx context.Context, args []string) error {
	fs := c.flags("compare")
	db := fs.String("db", DefaultDBPath(), "SQLite store")
	var exps experimentList
	fs.Var(&exps, "experiment", "experiment id (repeat, or comma-separate, to pair tasks across experiments)")
	a := fs.String("a", "", "setting a, FACTOR=VALUE[,FACTOR=VALUE] (factors: "+strings.Join(experiments.CompareFactors, ", ")+")")
	b := fs.String("b", "", "setting b, differing from a in one factor")
	metric := fs.String("metric", "em", "em | f1 (per objective) | peak (tokens) | time (seconds)")
	asJSON := fs.Bool("json", false, "print one JSON object per objectives count, then the pooled one (objectives null)")
	resamples := fs.Int("resamples", stats.DefaultResamples, "bootstrap and sign-flip resamples")
	seed := fs.Uint64("seed", 1, "seed of the bootstrap and sign-flip resampling")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	if len(exps.ids) == 0 {
		return errors.New("--experiment ID is required (see `mem1lab ls`)")
	}
	sa, sb, err := parseSides(*a, *b)
	if err != nil {
		return err
	}
	st, err := openExperiments(ctx, openExisting, *db, exps.ids)
	if err != nil {
		return err
	}
	defer st.Close()
	cmps, err := experiments.ExperimentComparisons(ctx, st, sa, sb, []string{*metric},
		experiments.CompareOptions{Resamples: *resamples, Seed: *seed}, exps.ids...)
	if err != nil {
		return err
	}
	cmp := cmps[0]
	if *asJSON {
		enc := json.NewEncoder(c.Stdout)
		for _, j := range cmp.JSON() {
			if err := enc.Encode(j); err != nil {
				return err
			}
		}
		return nil
	}
	metricName := cmp.Metric
	if (cmp.Metric == "em" || cmp.Metric == "f1") && allWebShop(ctx, st, exps.ids) {
		metricName = "final reward (WebShop, 0..1)" // stored in the EM and F1 columns
	}
	fmt.Fprintf(c.Stdout, "%s: a = %s, b = %s (%s differs); delta = a − b, 95%% intervals\n",
		metricName, cmp.A, cmp.B, cmp.Factor)
	tw := tabwriter.NewWriter(c.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "objectives\tn\tmean a\tmean b\tdelta\tt CI\tbootstrap CI\tp\tp (Holm)\tw/t/l\ttest")
	for _, r := range cmp.Rows {
		obj := "all"
		if !r.Pooled {
			obj = fmt.Sprint(r.Objectives)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t[%s, %s]\t[%s, %s]\t%s\t%s\t%d/%d/%d\t%s\n", obj, r.N,
			g4(r.MeanA), g4(r.MeanB), g4(r.Delta), g4(r.CILow), g4(r.CIHigh), g4(r.BootLow), g4(r.BootHigh),
			g4(r.P), g4(r.PHolm), r.Wins, r.Ties, r.Losses, r.Test)
	}
	tw.Flush()
	return nil
}

func g4(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return fmt.Sprintf("%.4g", x)
}

// allWebShop reports whether every experiment of ids is a WebShop one.
func allWebShop(ctx context.Context, st *storage.Store, ids []int64) bool {
	for _, id := range ids {
		e, err := st.Experiment(ctx, id)
		if err != nil {
			return false
		}
		if ws, _ := figures.WebShopConfig(e.ConfigJSON); !ws {
			return false
		}
	}
	return len(ids) > 0
}
