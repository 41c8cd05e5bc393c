// Package views holds mem1lab's Fyne screens: Data, Endpoints, New experiment, Runs, Rollouts and
// Trace, shown one at a time beside a left navigation list.
//
// Views depend only on the types of core, storage and experiments and on the small
// interfaces declared here (Store, Runner), so every screen can be exercised
// headless with fakes (fyne.io/fyne/v2/test). Slow work (store queries, runs) is
// done in goroutines and its results are applied on the UI thread with fyne.Do.
package views

import (
	"context"
	"fmt"
	"sync"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/widget"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// Store is what the screens read from the experiment database: the union of
// the narrow interfaces each screen declares in its own file (dataStore,
// newExperimentStore, runsStore, rolloutsStore, traceStore, compareStore,
// chartsStore), so a screen's fake only needs the methods that screen calls.
// Every method may be slow and is only called from background goroutines;
// implementations must be safe for concurrent use.
type Store interface {
	dataStore
	newExperimentStore
	runsStore
	rolloutsStore
	traceStore
	compareStore
	chartsStore
}

// Runner runs one experiment to the end or until ctx is cancelled, calling progress
// (from any goroutine) as rollouts start and finish. A cancelled run returns an
// error wrapping ctx.Err() and may return a partial Summary.
type Runner interface {
	Run(ctx context.Context, cfg experiments.RunConfig, progress func(experiments.Progress)) (experiments.Summary, error)
}

// Deps is what NewUI needs. Store is required; Runner may be nil (the Run button
// then reports that runs are unavailable). Window, when set, receives the
// keyboard shortcuts (Ctrl+1..8 for the screens, ←/→/Home/End and ↑/↓ in Trace).
// DefaultRun fills the New experiment form.
type Deps struct {
	Store      Store
	Runner     Runner
	Window     fyne.Window
	DefaultRun experiments.RunConfig
	// ReadOnly, when not empty, says why the store is open read-only: it is shown
	// in a banner above every screen, and New experiment refuses to launch or
	// resume (browsing, search, charts and exports work as usual).
	ReadOnly string
}

// Screen names, in navigation order; Show accepts them.
const (
	ScreenData   = "Data"
	ScreenNewRun = "New experiment"
	// ScreenEndpoints holds the endpoint profiles and the local server launcher.
	ScreenEndpoints = "Endpoints"
	ScreenRuns      = "Runs"
	ScreenRollouts  = "Rollouts"
	ScreenTrace     = "Trace"
	ScreenCompare   = "Compare"
	ScreenCharts    = "Charts"
)

// Screens lists the screen names in navigation order (Ctrl+1 is the first).
var Screens = []string{ScreenData, ScreenEndpoints, ScreenNewRun, ScreenRuns, ScreenRollouts, ScreenTrace, ScreenCompare, ScreenCharts}

// UI is the main window's content: the navigation list and the current screen.
// Its methods must be called on the Fyne UI thread (or inside fyne.Do).
type UI struct {
	deps   Deps
	ctx    context.Context
	stop   context.CancelFunc
	events Events
	prefs  fyne.Preferences // nil without an app (choices are then not remembered)

	// jobs counts background goroutines still to apply their results; tests wait on it.
	jobs sync.WaitGroup
	// loops counts the long-lived pollers (store watch) that end with ctx.
	loops sync.WaitGroup
	// runWG and inflight count the runs this UI plays (see ConfirmQuit).
	runWG    sync.WaitGroup
	runMu    sync.Mutex
	inflight int
	// quitDialog is the open "Quit while running?" dialog (nil when none);
	// Return and Escape answer it (quitKey).
	quitDialog *dialog.ConfirmDialog
	// applying serialises results applied from goroutines. fyne.Do already runs them
	// one at a time on the UI thread; the test driver runs them inline on the
	// calling goroutine, where this lock keeps them from overlapping each other and
	// the test's own actions (tests hold it while they tap and type).
	applying sync.Mutex

	nav     *widget.List
	banner  *widget.Label // the read-only banner (nil unless Deps.ReadOnly)
	stack   *fyne.Container
	content fyne.CanvasObject
	screens map[string]fyne.CanvasObject
	current string
	quiet   bool // Show does not emit ScreenShown
	// savePath is the path field of the save dialog shown last (tests).
	savePath *widget.Entry
	// splits are the dividers whose positions SavePrefs keeps.
	splits map[string]*container.Split
	// reloaders are the screens' reloads, in screen order; Refresh runs them all.
	reloaders []func()

	data      *dataPanel
	run       *runPanel
	endpoints *endpointsPanel
	runs      *runsPanel
	rollouts  *rolloutsPanel
	trace     *tracePanel
	compare   *comparePanel
	charts    *chartsPanel
}

// NewUI builds every screen, registers the shortcuts on d.Window's canvas (when
// set; this replaces the canvas's OnTypedKey handler) and starts loading the store's
// datasets and experiments in the background. The Data screen is shown first.
func NewUI(d Deps) *UI {
	u := &UI{deps: d, screens: map[string]fyne.CanvasObject{}}
	u.ctx, u.stop = context.WithCancel(context.Background())
	if a := fyne.CurrentApp(); a != nil {
		u.prefs = a.Preferences()
	}
	u.data = newDataPanel(u)
	u.run = newRunPanel(u)
	u.endpoints = newEndpointsPanel(u)
	u.runs = newRunsPanel(u)
	u.rollouts = newRolloutsPanel(u)
	u.trace = newTracePanel(u)
	u.compare = newComparePanel(u)
	u.charts = newChartsPanel(u)
	u.screens[ScreenData] = u.data.content
	u.screens[ScreenNewRun] = u.run.content
	u.screens[ScreenEndpoints] = u.endpoints.content
	u.screens[ScreenRuns] = u.runs.content
	u.screens[ScreenRollouts] = u.rollouts.content
	u.screens[ScreenTrace] = u.trace.content
	u.screens[ScreenCompare] = u.compare.content
	u.screens[ScreenCharts] = u.charts.content

	u.nav = widget.NewList(
		func() int { return len(Screens) },
		func() fyne.CanvasObject { return widget.NewLabel("New experiment") },
		func(id widget.ListItemID, o fyne.CanvasObject) {
			o.(*widget.Label).SetText(Screens[id])
		},
	)
	u.nav.OnSelected = func(id widget.ListItemID) {
		if id >= 0 && id < len(Screens) && Screens[id] != u.current {
			_ = u.Show(Screens[id])
		}
	}
	u.stack = container.NewStack()
	split := container.NewHSplit(u.nav, u.stack)
	split.Offset = 0.13
	u.rememberSplit("ui.split", split)
	u.content = split
	if d.ReadOnly != "" {
		u.banner = widget.NewLabel(d.ReadOnly)
		u.banner.Wrapping = fyne.TextWrapWord
		u.banner.Importance = widget.WarningImportance
		u.banner.TextStyle = fyne.TextStyle{Bold: true}
		u.content = container.NewBorder(u.banner, nil, nil, nil, split)
	}

	if d.Window != nil {
		u.installShortcuts(d.Window.Canvas())
	}
	u.showQuietly(ScreenData) // Refresh below loads every screen once
	u.events.ScreenShown.Subscribe(func(name string) {
		if u.prefs != nil {
			u.prefs.SetString(prefScreen, name)
		}
	})
	u.Refresh()
	if w, ok := d.Store.(ChangeWatcher); ok {
		u.watchStore(w)
	}
	return u
}

// follow makes a list screen reflect the store: reload runs whenever the
// screen is shown, and when another process changed the store while it is shown.
func (u *UI) follow(screen string, reload func()) {
	u.events.ScreenShown.Subscribe(func(s string) {
		if s == screen {
			reload()
		}
	})
	u.events.StoreChanged.Subscribe(func(struct{}) {
		if u.current == screen {
			reload()
		}
	})
	u.reloaders = append(u.reloaders, reload)
}

// Events is the UI's event bus (screens subscribe to it; the app may too).
func (u *UI) Events() *Events { return &u.events }

// Content is the object to put in the window (Window.SetContent).
func (u *UI) Content() fyne.CanvasObject { return u.content }

// Current is the name of the screen shown.
func (u *UI) Current() string { return u.current }

// Show switches to the named screen (one of Screens). An unknown name is an error
// and changes nothing.
func (u *UI) Show(name string) error {
	obj, ok := u.screens[name]
	if !ok {
		return fmt.Errorf("views: no screen %q (want one of %v)", name, Screens)
	}
	if name == u.current {
		return nil
	}
	u.current = name
	// Keys typed later must reach the canvas handler, not a widget on the old screen.
	if d := u.deps.Window; d != nil {
		d.Canvas().Unfocus()
	}
	u.stack.Objects = []fyne.CanvasObject{obj}
	u.stack.Refresh()
	for i, s := range Screens {
		if s == name {
			u.nav.Select(i)
		}
	}
	if !u.quiet {
		u.events.ScreenShown.Emit(name)
	}
	return nil
}

// showQuietly shows screen name without telling the subscribers.
func (u *UI) showQuietly(name string) {
	u.quiet = true
	defer func() { u.quiet = false }()
	_ = u.Show(name)
}

// openTrace shows rollout id in Trace; siblings (when given) are the rollouts
// ↑/↓ walk. Screens reach it through their navigator.
func (u *UI) openTrace(id int64, siblings []int64) {
	_ = u.Show(ScreenTrace) // before open: showing refreshes the rollout shown so far
	u.trace.open(id, siblings)
}

// openTraceInQuery shows rollout id, at position pos of the browser query q
// (total rollouts), in Trace.
func (u *UI) openTraceInQuery(id int64, q storage.RolloutQuery, pos, total int) {
	_ = u.Show(ScreenTrace)
	u.trace.openInQuery(id, q, pos, total)
}

// OpenRollout loads rollout id from the store and shows it in Trace at its first turn.
func (u *UI) OpenRollout(id int64) {
	u.openTrace(id, nil)
}

// Refresh reloads from the store what the screens list: dataset counts, the
// datasets offered by New run, the experiments and the rollouts shown.
func (u *UI) Refresh() {
	for _, r := range u.reloaders {
		r()
	}
}

// OpenCompare shows rollouts a and b side by side in Compare; b = 0 picks
// another rollout on a's task.
func (u *UI) OpenCompare(a, b int64) {
	_ = u.Show(ScreenCompare)
	u.compare.open(a, b)
}

// screenKeys are the keys of Ctrl+1..8, in Screens order.
var screenKeys = []fyne.KeyName{fyne.Key1, fyne.Key2, fyne.Key3, fyne.Key4, fyne.Key5, fyne.Key6, fyne.Key7, fyne.Key8}

// jump is what Ctrl+1..8 and the Go menu do: show screen name, carrying the
// rollout on screen along where that is what the user means (Trace → Compare
// compares the rollout Trace shows).
func (u *UI) jump(name string) {
	if name == ScreenCompare && u.current == ScreenTrace && u.trace.loaded {
		u.OpenCompare(u.trace.detail.ID, 0)
		return
	}
	_ = u.Show(name)
}

// searchRollouts is Ctrl+F: the rollout browser's text search, focused.
func (u *UI) searchRollouts() {
	_ = u.Show(ScreenRollouts)
	if w := u.deps.Window; w != nil {
		w.Canvas().Focus(u.rollouts.filter)
	}
}

// GoMenu is the main menu's Go menu: one item per screen (Ctrl+1..8), the
// rollout search (Ctrl+F) and the chart export (Ctrl+E). Shortcuts of main
// menu items reach the app even while a text field has focus, which canvas
// shortcuts do not, so the app should install it.
func (u *UI) GoMenu() *fyne.Menu {
	var items []*fyne.MenuItem
	for i, name := range Screens {
		item := fyne.NewMenuItem(name, func() { u.jump(name) })
		if i < len(screenKeys) {
			item.Shortcut = &desktop.CustomShortcut{KeyName: screenKeys[i], Modifier: fyne.KeyModifierShortcutDefault}
		}
		items = append(items, item)
	}
	search := fyne.NewMenuItem("Search rollouts", u.searchRollouts)
	search.Shortcut = &desktop.CustomShortcut{KeyName: fyne.KeyF, Modifier: fyne.KeyModifierShortcutDefault}
	export := fyne.NewMenuItem("Export chart as PDF…", u.charts.exportShortcut)
	export.Shortcut = &desktop.CustomShortcut{KeyName: fyne.KeyE, Modifier: fyne.KeyModifierShortcutDefault}
	start := fyne.NewMenuItem("Run the experiment in New experiment", func() {
		_ = u.Show(ScreenNewRun)
		u.run.start()
	})
	start.Shortcut = &desktop.CustomShortcut{KeyName: fyne.KeyR, Modifier: fyne.KeyModifierShortcutDefault}
	items = append(items, fyne.NewMenuItemSeparator(), start, search, export)
	return fyne.NewMenu("Go", items...)
}

// installShortcuts registers Ctrl+1..8 (Cmd on macOS) for the screens, Ctrl+E,
// Ctrl+F and the Trace keys on the canvas (for when no widget has focus; the
// Go menu covers the rest).
func (u *UI) installShortcuts(c fyne.Canvas) {
	for i, name := range Screens {
		if i >= len(screenKeys) {
			break // screens past the eighth are reached from the navigation list
		}
		c.AddShortcut(&desktop.CustomShortcut{KeyName: screenKeys[i], Modifier: fyne.KeyModifierShortcutDefault},
			func(fyne.Shortcut) { u.jump(name) })
	}
	c.SetOnTypedKey(u.typedKey)
	// Ctrl+E: export the current chart (Charts).
	c.AddShortcut(&desktop.CustomShortcut{KeyName: fyne.KeyE, Modifier: fyne.KeyModifierShortcutDefault},
		func(fyne.Shortcut) { u.charts.exportShortcut() })
	// Ctrl+F: the rollout browser's text search.
	c.AddShortcut(&desktop.CustomShortcut{KeyName: fyne.KeyF, Modifier: fyne.KeyModifierShortcutDefault},
		func(fyne.Shortcut) { u.searchRollouts() })
}

// typedKey handles keys typed while no widget has focus.
func (u *UI) typedKey(ev *fyne.KeyEvent) {
	if u.quitKey(ev) {
		return
	}
	if u.current == ScreenTrace {
		u.trace.typedKey(ev)
	}
}

// background runs work in a goroutine and hands its result to apply on the UI thread.
func background[T any](u *UI, work func(ctx context.Context) (T, error), apply func(T, error)) {
	u.jobs.Add(1)
	go func() {
		defer u.jobs.Done()
		v, err := work(u.ctx)
		u.do(func() { apply(v, err) })
	}()
}

// do applies f on the UI thread (fyne.Do), one at a time.
func (u *UI) do(f func()) {
	fyne.Do(func() {
		u.applying.Lock()
		defer u.applying.Unlock()
		f()
	})
}

// wait blocks until every background job started so far (and those they started)
// has applied its result. Tests only.
func (u *UI) wait() { u.jobs.Wait() }
