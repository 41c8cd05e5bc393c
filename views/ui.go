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
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/widget"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// Store is what the screens read from the experiment database. Every method may be
// slow and is only called from background goroutines; implementations must be safe
// for concurrent use.
type Store interface {
	// Datasets lists the imported datasets with their question and passage counts.
	Datasets(ctx context.Context) ([]storage.DatasetInfo, error)
	// Questions returns up to limit questions of dataset in import order, skipping offset.
	Questions(ctx context.Context, dataset string, offset, limit int) ([]storage.Question, error)
	// Search runs a BM25 query over the corpus and returns the best k passages, best first.
	Search(ctx context.Context, query string, k int) ([]core.Passage, error)
	// Experiments lists experiments, newest first, with rollout counts and means.
	Experiments(ctx context.Context) ([]storage.ExperimentRow, error)
	// Rollouts lists one experiment's rollouts.
	Rollouts(ctx context.Context, expID int64) ([]storage.RolloutRow, error)
	// Rollout returns one rollout with its task, turns and score.
	Rollout(ctx context.Context, id int64) (storage.RolloutDetail, error)
	// Experiment returns one experiment (its config JSON feeds Trace's raw view).
	Experiment(ctx context.Context, id int64) (storage.ExperimentRow, error)
	// BrowseRollouts returns one page of the rollouts a browser query selects.
	BrowseRollouts(ctx context.Context, q storage.RolloutQuery) (storage.RolloutPage, error)
	// Facets lists the policies, models, datasets and statuses the browser filters offer.
	Facets(ctx context.Context) (storage.RolloutFacets, error)
	// SameTaskRollouts lists the rollouts on the same task as rollout id (it included).
	SameTaskRollouts(ctx context.Context, id int64) ([]storage.RolloutRow, error)
	// PairRollouts pairs the rollouts of two experiments on the same tasks.
	PairRollouts(ctx context.Context, a, b int64) ([]storage.RolloutPair, error)
	// EachTurnTokens streams the token counts of the done rollouts' turns (Charts).
	EachTurnTokens(ctx context.Context, expIDs []int64, fn func(storage.TurnTokens) error) error
	// EachRollout streams one experiment's rollouts with their export fields (Charts' CSV export).
	EachRollout(ctx context.Context, expID int64, fn func(storage.RolloutExport) error) error
	// EachTurn streams one experiment's turns (Charts' CSV export); fn must copy what it keeps.
	EachTurn(ctx context.Context, expID int64, fn func(*storage.TurnExport) error) error
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
	deps Deps
	ctx  context.Context

	// jobs counts background goroutines still to apply their results; tests wait on it.
	jobs sync.WaitGroup
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
	u := &UI{deps: d, ctx: context.Background(), screens: map[string]fyne.CanvasObject{}}
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
	_ = u.Show(ScreenData)
	u.Refresh()
	return u
}

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
	return nil
}

// OpenRollout loads rollout id from the store and shows it in Trace at its first turn.
func (u *UI) OpenRollout(id int64) {
	u.trace.open(id, nil)
	_ = u.Show(ScreenTrace)
}

// Refresh reloads from the store what the screens list: dataset counts, the
// datasets offered by New run, the experiments and the rollouts shown.
func (u *UI) Refresh() {
	u.data.reload()
	u.run.reloadDatasets()
	u.endpoints.reload()
	u.runs.reload()
	u.rollouts.reload()
	u.trace.refresh()
	u.compare.reloadExperiments()
	u.charts.reload()
}

// OpenCompare shows rollouts a and b side by side in Compare; b = 0 picks
// another rollout on a's task.
func (u *UI) OpenCompare(a, b int64) {
	u.compare.open(a, b)
	_ = u.Show(ScreenCompare)
}

// installShortcuts registers Ctrl+1..8 (Cmd on macOS) for the screens, Ctrl+E,
// Ctrl+F and the Trace keys.
func (u *UI) installShortcuts(c fyne.Canvas) {
	keys := []fyne.KeyName{fyne.Key1, fyne.Key2, fyne.Key3, fyne.Key4, fyne.Key5, fyne.Key6, fyne.Key7, fyne.Key8}
	for i, name := range Screens {
		if i >= len(keys) {
			break // screens past the eighth are reached from the navigation list
		}
		c.AddShortcut(&desktop.CustomShortcut{KeyName: keys[i], Modifier: fyne.KeyModifierShortcutDefault},
			func(fyne.Shortcut) { _ = u.Show(name) })
	}
	c.SetOnTypedKey(u.typedKey)
	// Ctrl+E: export the current chart (Charts).
	c.AddShortcut(&desktop.CustomShortcut{KeyName: fyne.KeyE, Modifier: fyne.KeyModifierShortcutDefault},
		func(fyne.Shortcut) { u.charts.exportShortcut() })
	// Ctrl+F: the rollout browser's text search.
	c.AddShortcut(&desktop.CustomShortcut{KeyName: fyne.KeyF, Modifier: fyne.KeyModifierShortcutDefault},
		func(fyne.Shortcut) {
			_ = u.Show(ScreenRollouts)
			c.Focus(u.rollouts.filter)
		})
}

// typedKey handles keys typed while no widget has focus.
func (u *UI) typedKey(ev *fyne.KeyEvent) {
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
