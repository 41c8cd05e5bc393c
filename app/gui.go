package app

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	fyneapp "fyne.io/fyne/v2/app"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/driver/desktop"

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
	Screen  string // screen shown first (one of views.Screens)
	Rollout int64  // rollout opened in Trace at start (0 = none)
	Chart   string // chart opened in Charts at start ("" = none; see views.ChartsOptions)
	Overlay bool   // with Chart: draw MEM1 Table 1 as reference series
	// Experiments limits Charts to these experiment ids (nil = all).
	Experiments []int64
	Width       float32
	Height      float32
	// ReadOnly opens the store read-only (--read-only); a store that cannot be
	// opened for writing is opened read-only anyway. Either way a banner says so.
	ReadOnly bool
	// SizeGiven is true when --width or --height was on the command line (they
	// then win over the size the window had when it last closed).
	SizeGiven bool
}

func (c *CLI) runGUI(args []string) int {
	fs := c.flags("")
	opts := GUIOptions{}
	fs.StringVar(&opts.DB, "db", DefaultDBPath(), "SQLite store")
	fs.StringVar(&opts.Bundle, "bundle", "", "QA bundle imported on first start (default: ../shared/data/qa-bundle)")
	fs.StringVar(&opts.Screen, "screen", "", "screen to open first: "+strings.Join(views.Screens, ", "))
	fs.Int64Var(&opts.Rollout, "rollout", 0, "rollout id to open in Trace (with --screen Compare: in Compare)")
	fs.StringVar(&opts.Chart, "chart", "", "chart to open in Charts: accuracy, peak, context, frontier, time, turns or pair")
	fs.BoolVar(&opts.Overlay, "overlay", false, "with --chart: overlay the MEM1 paper's Table 1")
	fs.BoolVar(&opts.ReadOnly, "read-only", false, "open the store read-only: browse, search, chart and export, but run nothing")
	exps := fs.String("experiments", "", "with --chart: comma-separated experiment ids to include (default: all)")
	w := fs.Float64("width", 1280, "window width")
	h := fs.Float64("height", 820, "window height")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	opts.Width, opts.Height = float32(*w), float32(*h)
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "width" || f.Name == "height" {
			opts.SizeGiven = true
		}
	})
	for _, part := range strings.Split(*exps, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		id, err := strconv.ParseInt(part, 10, 64)
		if err != nil {
			fmt.Fprintf(c.Stderr, "mem1lab: --experiments: %q is not an experiment id\n", part)
			return 2
		}
		opts.Experiments = append(opts.Experiments, id)
	}
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
// in the background on first start. Paper figures missing from a store
// written before they existed are computed in the background too
// (experiments.BackfillPaperMetrics); screens show them once loaded again.
func RunGUI(opts GUIOptions) error {
	var watchdog *time.Timer // set once the window has closed; stopped when every clean-up below is done
	defer func() {
		if watchdog != nil {
			watchdog.Stop()
		}
	}()
	st, readOnly, err := openGUIStore(opts.DB, opts.ReadOnly)
	if err != nil {
		return err
	}
	defer st.Close()
	backfillCtx, stopBackfill := context.WithCancel(context.Background())
	backfillDone := make(chan struct{})
	go func() {
		defer close(backfillDone)
		_, _ = experiments.BackfillPaperMetrics(backfillCtx, st) // retried on the next open if cut short
	}()
	defer func() { stopBackfill(); <-backfillDone }()

	a := fyneapp.NewWithID(AppID)
	a.SetIcon(fyne.NewStaticResource(assets.IconName, assets.IconPNG))
	win := a.NewWindow("mem1lab")
	runner := newLabRunner(st, nil) // qa and webshop experiments
	defer runner.Close()
	ui := views.NewUI(views.Deps{
		Store:      st,
		Runner:     runner,
		Window:     win,
		DefaultRun: experiments.DefaultRunConfig(),
		ReadOnly:   readOnly,
	})
	win.SetContent(ui.Content())
	// Quitting during a run asks first, then stops the runs cleanly so they are
	// recorded as cancelled (resumable) rather than left "running" for ever.
	keep := func() { ui.SavePrefs(win.Canvas().Size()) } // splits, window size
	quit := fyne.NewMenuItem("Quit", func() { ui.ConfirmQuit(func() { keep(); a.Quit() }) })
	quit.IsQuit = true
	quit.Shortcut = &desktop.CustomShortcut{KeyName: fyne.KeyQ, Modifier: fyne.KeyModifierShortcutDefault}
	// The Go menu carries Ctrl+1..8, Ctrl+F and Ctrl+E: menu shortcuts work
	// window-wide, even while a text field has focus.
	win.SetMainMenu(fyne.NewMainMenu(
		fyne.NewMenu("File", trajectoriesMenuItem(win, st, ui), fyne.NewMenuItemSeparator(), quit),
		ui.GoMenu()))
	win.SetCloseIntercept(func() { ui.ConfirmQuit(func() { keep(); win.Close() }) })
	win.SetMaster()
	if last, ok := ui.LastWindowSize(); ok && !opts.SizeGiven {
		win.Resize(last)
	} else if opts.Width > 0 && opts.Height > 0 {
		win.Resize(fyne.NewSize(opts.Width, opts.Height))
	}
	win.SetTitle("mem1lab — " + opts.DB)

	bundle := opts.Bundle
	if bundle == "" {
		bundle = DefaultBundleDir()
	}
	if st.ReadOnly() {
		bundle = "" // nothing can be imported
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
			if opts.Chart != "" {
				if err := ui.OpenCharts(views.ChartsOptions{Experiments: opts.Experiments, Chart: opts.Chart, Overlay: opts.Overlay}); err != nil {
					log.Printf("mem1lab: %v", err)
				}
			} else if opts.Rollout > 0 && opts.Screen == views.ScreenCompare {
				ui.OpenCompare(opts.Rollout, 0) // beside another rollout on its task
			} else if opts.Rollout > 0 {
				ui.OpenRollout(opts.Rollout)
			} else if opts.Screen != "" {
				if err := ui.Show(opts.Screen); err != nil {
					log.Printf("mem1lab: %v", err)
				}
			} else {
				ui.ShowLastScreen()
			}
		})
	}()
	win.ShowAndRun()
	// The window is gone and the runs were stopped before it closed; what is
	// left (stopping a local server, the store's last checkpoint) must not keep
	// the process alive for good. SQLite replays its log on the next open, so
	// leaving early loses nothing committed.
	watchdog = time.AfterFunc(shutdownPatience, func() {
		log.Printf("mem1lab: shutting down took over %s; exiting now (the store is intact: its log is replayed on the next open)", shutdownPatience)
		os.Exit(0)
	})
	ui.Shutdown() // stops a local inference server the Endpoints screen started
	return nil
}

// shutdownPatience bounds the desktop app's clean-up after its window closed.
const shutdownPatience = 30 * time.Second

// openGUIStore opens the desktop app's store: read-write, unless readOnly is
// set or the store exists but cannot be opened for writing (a file or folder
// the user may not write, a read-only disk), when it is opened read-only.
// banner is "" for a read-write store, else the text of the read-only banner.
func openGUIStore(path string, readOnly bool) (st *storage.Store, banner string, err error) {
	if readOnly {
		if st, err = openReading(path); err != nil {
			return nil, "", err
		}
		if !st.ReadOnly() { // migrated first: reopen read-only
			st.Close()
			if st, err = storage.OpenReadOnly(path); err != nil {
				return nil, "", err
			}
		}
		return st, fmt.Sprintf("Read-only (--read-only): %s. Browse, search, chart and export; running and editing are off.", path), nil
	}
	st, err = storage.Open(path)
	if err == nil {
		return st, "", nil
	}
	if _, statErr := os.Stat(path); statErr != nil {
		return nil, "", err // nothing to read either
	}
	ro, roErr := storage.OpenReadOnly(path)
	if roErr != nil {
		return nil, "", fmt.Errorf("%w (read-only: %v)", err, roErr)
	}
	return ro, fmt.Sprintf("Read-only: %s cannot be opened for writing (%v). Browse, search, chart and export; running and editing are off.",
		path, err), nil
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
