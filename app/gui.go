package app

import (
	"context"
	"flag"
	"fmt"
	"log"
	"strings"

	"fyne.io/fyne/v2"
	fyneapp "fyne.io/fyne/v2/app"
	"fyne.io/fyne/v2/dialog"

	"github.com/mem1lab/mem1lab/assets"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
	"github.com/mem1lab/mem1lab/views"
)

// AppID is the Fyne application id (also in FyneApp.toml).
const AppID = "io.github.mem1lab.mem1lab"

// GUIOptions are the flags of the desktop app.
type GUIOptions struct {
	DB      string // store path
	Bundle  string // QA bundle imported on first start ("" = look beside the checkout)
	Screen  string // screen shown first (Data, New run, Runs, Rollouts, Trace)
	Rollout int64  // rollout opened in Trace at start (0 = none)
	Width   float32
	Height  float32
}

func (c *CLI) runGUI(args []string) int {
	fs := c.flags("")
	opts := GUIOptions{}
	fs.StringVar(&opts.DB, "db", DefaultDBPath(), "SQLite store")
	fs.StringVar(&opts.Bundle, "bundle", "", "QA bundle imported on first start (default: ../shared/data/qa-bundle)")
	fs.StringVar(&opts.Screen, "screen", "", "screen to open first: "+strings.Join(views.Screens, ", "))
	fs.Int64Var(&opts.Rollout, "rollout", 0, "rollout id to open in Trace")
	w := fs.Float64("width", 1280, "window width")
	h := fs.Float64("height", 820, "window height")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	opts.Width, opts.Height = float32(*w), float32(*h)
	if c.GUI == nil {
		fmt.Fprintln(c.Stderr, "mem1lab: this build has no GUI; see `mem1lab help`")
		return 2
	}
	if err := c.GUI(opts); err != nil {
		fmt.Fprintf(c.Stderr, "mem1lab: %v\n", err)
		return 1
	}
	return 0
}

// RunGUI opens the desktop app on the store and blocks until its window closes.
// When the store holds no questions and a bundle is found, the bundle is imported
// in the background on first start.
func RunGUI(opts GUIOptions) error {
	st, err := storage.Open(opts.DB)
	if err != nil {
		return err
	}
	defer st.Close()

	a := fyneapp.NewWithID(AppID)
	a.SetIcon(assets.Icon)
	win := a.NewWindow("mem1lab")
	ui := views.NewUI(views.Deps{
		Store:      st,
		Runner:     &experiments.Runner{Store: st, Env: st},
		Window:     win,
		DefaultRun: experiments.DefaultRunConfig(),
	})
	win.SetContent(ui.Content())
	win.SetMaster()
	if opts.Width > 0 && opts.Height > 0 {
		win.Resize(fyne.NewSize(opts.Width, opts.Height))
	}
	win.SetTitle("mem1lab — " + opts.DB)

	bundle := opts.Bundle
	if bundle == "" {
		bundle = DefaultBundleDir()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		if err := importOnFirstStart(ctx, st, bundle); err != nil {
			log.Printf("mem1lab: %v", err)
			fyne.Do(func() { dialog.ShowError(err, win) })
		}
		fyne.Do(func() {
			ui.Refresh()
			if opts.Rollout > 0 {
				ui.OpenRollout(opts.Rollout)
			} else if opts.Screen != "" {
				if err := ui.Show(opts.Screen); err != nil {
					log.Printf("mem1lab: %v", err)
				}
			}
		})
	}()
	win.ShowAndRun()
	return nil
}

func importOnFirstStart(ctx context.Context, st *storage.Store, bundle string) error {
	if bundle == "" {
		return nil
	}
	done, err := st.BundleImported(ctx)
	if err != nil || done {
		return err
	}
	stats, err := st.ImportBundle(ctx, bundle)
	if err != nil {
		return fmt.Errorf("importing the QA bundle from %s: %w", bundle, err)
	}
	log.Printf("mem1lab: imported %d questions and %d passages from %s in %s",
		stats.Questions, stats.Passages, bundle, stats.Elapsed)
	return nil
}
