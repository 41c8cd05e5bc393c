package app

import (
	"context"
	"errors"
	"fmt"

	"github.com/mem1lab/mem1lab/experiments"
)

// cmdImportTrajectories loads a MEM1 reference-pipeline JSONL file into the
// store as one experiment (experiments.ImportTrajectories): all lines or none;
// the reference's error lines become failed rollouts. What the file does not
// record (policy, model) is warned about on stderr.
func (c *CLI) cmdImportTrajectories(ctx context.Context, args []string) error {
	fs := c.flags("import-trajectories")
	db := fs.String("db", DefaultDBPath(), "SQLite store")
	var opt experiments.ImportOptions
	fs.StringVar(&opt.Name, "name", "", `experiment name (default "import FILE")`)
	fs.StringVar(&opt.Policy, "policy", "", "policy the trajectories were made under (default: each line's mem1lab_policy, else mem1)")
	fs.StringVar(&opt.Model, "model", "", "model that made them (default: each line's mem1lab_model, else imported)")
	fs.StringVar(&opt.Dataset, "dataset", "", "dataset name given to their tasks (default: the file's, else imported)")
	fs.StringVar(&opt.Scheme, "scheme", "", "scoring scheme: mem1 or squad (default: the file's, else mem1)")
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
	failed := ""
	if res.Failed > 0 {
		failed = fmt.Sprintf(", %d failed", res.Failed)
	}
	fmt.Fprintf(c.Stdout, "imported %d trajectories (%d turns%s) as experiment #%d · mean EM %.3f · mean F1 %.3f\n",
		res.Rollouts, res.Turns, failed, res.Experiment, res.MeanEM, res.MeanF1)
	for _, w := range res.Warnings {
		fmt.Fprintf(c.Stderr, "warning: %s\n", w)
	}
	return nil
}
