package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// exportKinds are the tables `mem1lab export --what` writes.
var exportKinds = append([]string{"rollouts", "turns", "aggregates", "trajectories", "comparisons"}, experiments.DiagnosticKinds...)

// parseExperimentIDs reads "3" or "3,4,7" (ids of stored experiments).
func parseExperimentIDs(s string) ([]int64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("--experiment ID is required (see `mem1lab ls`; several: 3,4,7)")
	}
	var ids []int64
	for _, part := range strings.Split(s, ",") {
		id, err := strconv.ParseInt(strings.TrimSpace(part), 10, 64)
		if err != nil || id <= 0 {
			return nil, fmt.Errorf("--experiment: %q is not an experiment id", part)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// checkExperiments fails with a clear message for an id the store does not hold.
func checkExperiments(ctx context.Context, st *storage.Store, ids []int64) error {
	for _, id := range ids {
		if _, err := st.Experiment(ctx, id); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("no experiment %d in %s (see `mem1lab ls`)", id, st.Path())
			}
			return err
		}
	}
	return nil
}

// openExperiments opens the store at path with open (openExisting,
// openReading or openCaching) and checks with checkExperiments that it holds
// every id; on any error the store is closed again.
func openExperiments(ctx context.Context, open func(string) (*storage.Store, error), path string, ids []int64) (*storage.Store, error) {
	st, err := open(path)
	if err != nil {
		return nil, err
	}
	if err := checkExperiments(ctx, st, ids); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// writeAtomically writes through fn into a temporary file beside path and
// renames it over path only when fn succeeds, so a failed export never leaves a
// truncated file or clobbers an earlier one. path "-" writes to stdout.
func writeAtomically(stdout io.Writer, path string, fn func(io.Writer) error) error {
	if path == "-" {
		return fn(stdout)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := fn(tmp); err != nil {
		tmp.Close()
		return err
	}
	// CreateTemp makes the file 0600; an export is a document like any other
	// (the GUI's save dialogs write 0644).
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// cmdExport writes one experiment's (or several's) rollouts, turns, aggregates
// or trajectories to a file (column orders: experiments.RolloutColumns,
// TurnColumns, AggregateColumns).
func (c *CLI) cmdExport(ctx context.Context, args []string) error {
	fs := c.flags("export")
	db := fs.String("db", DefaultDBPath(), "SQLite store")
	exp := fs.String("experiment", "", "experiment id, or several comma-separated")
	what := fs.String("what", "", "rollouts | turns | aggregates | comparisons | composition | retention | retention-curves | positions | state-growth (CSV) | trajectories (MEM1 JSONL)")
	out := fs.String("out", "", "output file (- = stdout)")
	pooled := fs.Bool("pool-models", false, "aggregates: group by (policy, objectives) across models")
	withErrors := fs.Bool("errors", false, "trajectories: add failed and cancelled rollouts as the reference's error lines (eval.py cannot read those)")
	sideA := fs.String("a", "", "comparisons: setting a, e.g. policy=mem1")
	sideB := fs.String("b", "", "comparisons: setting b, differing from a in one factor, e.g. policy=full")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	ids, err := parseExperimentIDs(*exp)
	if err != nil {
		return err
	}
	valid := false
	for _, k := range exportKinds {
		valid = valid || *what == k
	}
	if !valid {
		return fmt.Errorf("--what %q: want one of %s", *what, strings.Join(exportKinds, ", "))
	}
	if *out == "" {
		return errors.New("--out FILE is required (- for stdout)")
	}
	var sa, sb experiments.CompareSetting
	if *what == "comparisons" {
		if sa, sb, err = parseSides(*sideA, *sideB); err != nil {
			return err
		}
	}
	open := openReading
	if slices.Contains(experiments.DiagnosticKinds, *what) {
		open = openCaching // the diagnostics are cached where the store can be written
	}
	st, err := openExperiments(ctx, open, *db, ids)
	if err != nil {
		return err
	}
	defer st.Close()
	lines := 0
	var counts experiments.TrajectoryExportCounts
	err = writeAtomically(c.Stdout, *out, func(w io.Writer) error {
		switch *what {
		case "rollouts":
			return experiments.WriteRolloutsCSV(ctx, w, st, ids...)
		case "turns":
			return experiments.WriteTurnsCSV(ctx, w, st, ids...)
		case "aggregates":
			aggs, err := experiments.ExperimentAggregates(ctx, st, !*pooled, ids...)
			if err != nil {
				return err
			}
			lines = len(aggs)
			return experiments.WriteAggregatesCSV(w, aggs)
		case "comparisons":
			cmps, err := experiments.ExperimentComparisons(ctx, st, sa, sb, nil, experiments.CompareOptions{Seed: 1}, ids...)
			if err != nil {
				return err
			}
			for _, c := range cmps {
				lines += len(c.Rows)
			}
			return experiments.WriteComparisonsCSV(w, cmps)
		case "composition", "retention", "retention-curves", "positions", "state-growth":
			return experiments.WriteDiagnosticsCSV(ctx, w, st, *what, nil, ids...)
		default:
			var err error
			counts, err = experiments.WriteTrajectories(ctx, w, st, experiments.TrajectoryExportOptions{Errors: *withErrors}, ids...)
			lines = counts.Lines
			return err
		}
	})
	if err != nil {
		return err
	}
	if *what == "trajectories" && counts.ReRendered > 0 {
		fmt.Fprintf(c.Stderr, "note: %d rollouts were stored before mem1lab kept the prompt sent: their q is the template rendered again (mem1lab_settings.prompt_source = re-rendered)\n", counts.ReRendered)
	}
	if *out != "-" {
		note := ""
		switch *what {
		case "aggregates":
			note = fmt.Sprintf(" (%d groups)", lines)
		case "comparisons":
			note = fmt.Sprintf(" (%d rows)", lines)
		case "trajectories":
			note = fmt.Sprintf(" (%d finished rollouts", counts.Done)
			if counts.Errors > 0 {
				note += fmt.Sprintf(", %d error lines", counts.Errors)
			}
			if counts.LeftOut > 0 {
				note += fmt.Sprintf("; %d unfinished or failed rollouts left out", counts.LeftOut)
			}
			note += ")"
		}
		fmt.Fprintf(c.Stderr, "wrote %s of experiment %s to %s%s\n", *what, *exp, *out, note)
	}
	return nil
}
