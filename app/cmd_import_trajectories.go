package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/mem1lab/mem1lab/experiments"
)

// cmdImportTrajectories loads a MEM1 reference-pipeline JSONL file into the
// store as one experiment (experiments.ImportTrajectories): all lines or none.
func (c *CLI) cmdImportTrajectories(ctx context.Context, args []string) error {
	fs := c.flags("import-trajectories")
	db := fs.String("db", DefaultDBPath(), "SQLite store")
	var opt experiments.ImportOptions
	fs.StringVar(&opt.Name, "name", "", `experiment name (default "import FILE")`)
	fs.StringVar(&opt.Policy, "policy", "mem1", "policy the trajectories were made under")
	fs.StringVar(&opt.Model, "model", "imported", "model that made them")
	fs.StringVar(&opt.Dataset, "dataset", "imported", "dataset name given to their tasks")
	fs.StringVar(&opt.Scheme, "scheme", "mem1", "scoring scheme: mem1 or squad")
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: mem1lab import-trajectories FILE.jsonl [--name NAME] [--policy P] [--model M] [--dataset D] [--scheme mem1|squad]")
	}
	st, err := openLab(*db)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := experiments.ImportTrajectories(ctx, st, fs.Arg(0), opt)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.Stdout, "imported %d trajectories (%d turns) as experiment #%d · mean EM %.3f · mean F1 %.3f\n",
		res.Rollouts, res.Turns, res.Experiment, res.MeanEM, res.MeanF1)
	return nil
}
