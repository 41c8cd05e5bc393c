package app

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// cmdCancel asks the process running an experiment to cancel it (or, when none
// runs it, marks its queued rollouts cancelled).
func (c *CLI) cmdCancel(ctx context.Context, args []string) error {
	return c.control(ctx, "cancel", args, false)
}

// cmdPause pauses a running experiment, or resumes it with --resume.
func (c *CLI) cmdPause(ctx context.Context, args []string) error {
	return c.control(ctx, "pause", args, true)
}

func (c *CLI) control(ctx context.Context, name string, args []string, canResume bool) error {
	fs := c.flags(name)
	db := fs.String("db", DefaultDBPath(), "SQLite store")
	var resume *bool
	if canResume {
		resume = fs.Bool("resume", false, "let a paused experiment go on")
	}
	if err := fs.Parse(reorder(fs, args)); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: mem1lab %s ID (an experiment id, see `mem1lab ls`)", name)
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil {
		return fmt.Errorf("experiment id %q is not a number", fs.Arg(0))
	}
	st, err := openExisting(*db)
	if err != nil {
		return err
	}
	defer st.Close()
	action := name
	if resume != nil && *resume {
		action = "resume"
	}
	r := &experiments.Runner{Store: st}
	if err := r.Control(ctx, id, action); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("no experiment %d in %s", id, *db)
		}
		return err
	}
	fmt.Fprintf(c.Stdout, "experiment %d: %s requested\n", id, action)
	return nil
}
