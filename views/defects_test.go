package views

import (
	"context"
	"fmt"
	"image/color"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/figures"
	"github.com/mem1lab/mem1lab/storage"
)

// tableOffset is how far t's cells are scrolled (the Offset of the scroller
// inside the table's renderer).
func tableOffset(t *testing.T, tb *widget.Table) fyne.Position {
	t.Helper()
	var found *fyne.Position
	var walk func(o fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		if found != nil || o == nil {
			return
		}
		v := reflect.ValueOf(o)
		if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
			if f := v.Elem().FieldByName("Offset"); f.IsValid() && f.Type() == reflect.TypeOf(fyne.Position{}) {
				p := f.Interface().(fyne.Position)
				found = &p
				return
			}
		}
		switch x := o.(type) {
		case *fyne.Container:
			for _, ch := range x.Objects {
				walk(ch)
			}
		case fyne.Widget:
			for _, ch := range test.WidgetRenderer(x).Objects() {
				walk(ch)
			}
		}
	}
	walk(tb)
	require.NotNil(t, found, "the table has a scroller")
	return *found
}

// Defect 1: the experiment just launched is the selected row at the top of
// Runs, not scrolled under the header (selecting in a table that was not laid
// out yet used to scroll it by a row and a header).
func TestDefect1RunsShowsLaunchedExperimentAtTop(t *testing.T) {
	steps := []experiments.Progress{{Experiment: 3, Total: 2, Running: 2}}
	st := newCtlStore()
	r := newCtlRunner(steps)
	u, w := newTestUI(t, st, r)
	act(u, func() { require.NoError(t, u.Show(ScreenNewRun)) })
	// The runner creates experiment #3 (the store lists it first) before its first progress report.
	st.fakeStore.mu.Lock()
	st.exps = append([]storage.ExperimentRow{{ID: 3, Name: "just launched", Status: storage.StatusRunning, Rollouts: 2}}, st.exps...)
	st.fakeStore.mu.Unlock()
	act(u, func() { test.Tap(u.run.runBt) })
	<-r.started
	<-r.stepped
	eventually(t, u, func() bool { return len(u.runs.experiments) == len(st.exps) })
	act(u, func() { require.NoError(t, u.Show(ScreenRuns)) })
	eventually(t, u, func() bool { return u.runs.table.selected == 0 })
	act(u, func() {
		rp := u.runs
		assert.Equal(t, int64(3), rp.selectedID, "the launched experiment is selected")
		assert.Equal(t, float32(0), tableOffset(t, &rp.table.table.Table).Y, "its row is not scrolled under the header")
		assert.True(t, hasText(w.Canvas(), "#3 just launched"), "its row is drawn")
		assert.False(t, rp.pauseBt.Disabled(), "Pause is reachable")
		assert.False(t, rp.cancelBt.Disabled(), "Cancel is reachable")
	})
	act(u, func() { test.Tap(u.runs.cancelBt) })
	r.proceed <- struct{}{}
	u.wait()
}

// findButton is the visible button labelled text under o (nil when none).
func findButton(o fyne.CanvasObject, text string) *widget.Button {
	var found *widget.Button
	var walk func(fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		if found != nil || o == nil || !o.Visible() {
			return
		}
		if b, ok := o.(*widget.Button); ok && b.Text == text {
			found = b
			return
		}
		switch x := o.(type) {
		case *fyne.Container:
			for _, ch := range x.Objects {
				walk(ch)
			}
		case fyne.Widget:
			for _, ch := range test.WidgetRenderer(x).Objects() {
				walk(ch)
			}
		}
	}
	walk(o)
	return found
}

// Defect 2: quitting during a run asks first; agreeing stops the run cleanly
// (it returns, recorded as cancelled) before the app quits.
func TestDefect2QuitDuringRunAsksAndStopsCleanly(t *testing.T) {
	st := newCtlStore()
	r := newCtlRunner([]experiments.Progress{{Experiment: 1, Total: 2, Running: 2}})
	u, w := newTestUI(t, st, r)
	var quits atomic.Int32 // the quit callback runs on StopRuns's goroutine (fyne.Do)
	act(u, func() { u.ConfirmQuit(func() { quits.Add(1) }) })
	assert.Equal(t, int32(1), quits.Load(), "nothing runs: quit at once")

	act(u, func() { test.Tap(u.run.runBt) })
	<-r.started
	<-r.stepped
	quits.Store(0)
	act(u, func() { u.ConfirmQuit(func() { quits.Add(1) }) })
	var stop *widget.Button
	act(u, func() {
		top := w.Canvas().Overlays().Top()
		require.NotNil(t, top, "a confirmation is shown")
		stop = findButton(top, "Stop and quit")
		require.NotNil(t, stop)
		assert.NotNil(t, findButton(top, "Keep running"))
	})
	assert.Equal(t, int32(0), quits.Load(), "not before the user agrees")
	act(u, func() { test.Tap(stop) })
	r.proceed <- struct{}{} // the run sees its context cancelled and returns
	eventually(t, u, func() bool { return quits.Load() == 1 })
	u.wait()
	assert.Equal(t, 0, u.RunsInFlight())
	assert.Contains(t, u.run.status.Text, "cancelled", "the run recorded how it ended")
}

// Defect 2: an experiment left "running" by a process that is gone offers
// Resume run, not Pause/Cancel that nobody would read.
func TestDefect2OrphanedExperimentOffersResume(t *testing.T) {
	st := newCtlStore()
	r := newCtlRunner(nil)
	r.orphans = map[int64]bool{1: true}
	u, _ := newTestUI(t, st, r)
	act(u, func() { require.NoError(t, u.Show(ScreenRuns)) })
	u.wait()
	rp := u.runs
	row := -1
	for i, e := range rp.experiments {
		if e.ID == 1 {
			row = i
		}
	}
	require.GreaterOrEqual(t, row, 0)
	require.Equal(t, storage.StatusRunning, rp.experiments[row].Status, "the store still says running")
	act(u, func() { rp.table.selectRow(row) })
	u.wait()
	act(u, func() {
		assert.True(t, rp.pauseBt.Disabled(), "nobody would read a pause")
		assert.True(t, rp.cancelBt.Disabled())
		assert.False(t, rp.continueBt.Disabled(), "Resume run is offered")
		assert.Contains(t, rp.title.Text, "process is gone")
		assert.Contains(t, rp.table.rows[row][2], "process is gone")
	})
}

// Defect 4: a run whose endpoint is down says why, in New experiment and Runs;
// its failed rollouts score "n/a", never EM 0.00, and the bar does not read 100%.
func TestDefect4DeadEndpointRunExplainsFailures(t *testing.T) {
	st, _ := bundleOracle(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL + "/v1"
	dead.Close() // nothing listens there now: every call is refused

	cfg := experiments.DefaultRunConfig()
	cfg.Endpoint, cfg.Model, cfg.Objectives, cfg.Tasks, cfg.Concurrency = deadURL, "any-model", 1, 2, 1
	cfg.Retries = -1 // no retries: fail at once
	test.NewTempApp(t)
	w := test.NewTempWindow(t, nil)
	u := NewUI(Deps{Store: st, Runner: &experiments.Runner{Store: st, Env: st}, Window: w, DefaultRun: cfg})
	t.Cleanup(u.wait)
	u.wait()
	w.SetContent(u.Content())
	w.Resize(fyne.NewSize(1280, 800))
	act(u, func() { require.NoError(t, u.Show(ScreenNewRun)) })
	u.wait()
	act(u, func() { test.Tap(u.run.runBt) })
	eventually(t, u, func() bool { return !u.run.running && u.run.errors.Text != "" })
	u.wait()
	p := u.run
	act(u, func() {
		assert.Contains(t, p.errors.Text, "2 of 2 rollouts failed: endpoint unreachable ×2")
		assert.Contains(t, p.errors.Text, "First: ")
		assert.NotContains(t, p.status.Text, "Run finished:", "not a plain success")
		assert.Equal(t, "0 done · 2 failed of 2", p.bar.TextFormatter())
		require.NoError(t, u.Show(ScreenRuns))
	})
	u.wait()
	rp := u.runs
	act(u, func() {
		assert.True(t, rp.failures.Visible())
		assert.Contains(t, rp.failures.Text, "endpoint unreachable ×2")
		require.NotEmpty(t, rp.table.rows)
		assert.Equal(t, "n/a", rp.table.rows[0][4], "mean EM of an experiment with no done rollout")
		require.Len(t, rp.rollouts.table.rows, 2)
		for _, row := range rp.rollouts.table.rows {
			assert.Equal(t, "n/a", row[4], "EM of a failed rollout")
			assert.Equal(t, "failed", row[8])
		}
	})
}

// Defect 4: Trace opening a failed rollout after another one shows its error
// and nothing of the previous rollout.
func TestDefect4TraceClearsAndShowsFailure(t *testing.T) {
	st := newFakeStore()
	failed := storage.RolloutDetail{RolloutRow: storage.RolloutRow{ID: 13, ExperimentID: 1, TaskKey: "hotpotqa/n2/0002",
		Policy: "mem1", Objectives: 2, Status: storage.StatusFailed, Error: "model call: dial tcp 127.0.0.1:9: connect: connection refused"},
		Task: sampleTask}
	st.mu.Lock()
	st.details[failed.ID] = failed
	st.mu.Unlock()
	u, w := newTestUI(t, st, nil)
	act(u, func() { u.OpenRollout(11) })
	u.wait()
	act(u, func() {
		require.Equal(t, "turn 1 of 3", u.trace.turnLabel.Text)
		require.NotEmpty(t, u.trace.turnInfo.Text)
		u.OpenRollout(13)
	})
	u.wait()
	tp := u.trace
	act(u, func() {
		assert.Equal(t, "no turns stored", tp.turnLabel.Text)
		assert.Empty(t, tp.turnInfo.Text, "no token counts of the previous rollout")
		assert.Equal(t, "Exact context sent", tp.accordion.Items[0].Title)
		assert.Contains(t, tp.header.Text, "EM n/a")
		assert.True(t, tp.failure.Visible())
		assert.Contains(t, tp.failure.Text, "connection refused")
		assert.True(t, hasText(w.Canvas(), "connection refused"), "the error is drawn")
	})
}

// Defect 5: lists follow the store. An experiment another process (a second
// Store on the same file, as `mem1lab run` would be) creates shows up in the
// screen on view without Refresh, and in Charts, Rollouts and Compare when
// they are shown next.
func TestDefect5ListsFollowAnotherProcess(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lab.db")
	st, err := storage.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	cli, err := storage.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { cli.Close() })

	storeWatchInterval = 5 * time.Millisecond
	t.Cleanup(func() { storeWatchInterval = 0 })
	test.NewTempApp(t)
	w := test.NewTempWindow(t, nil)
	u := NewUI(Deps{Store: st, Window: w, DefaultRun: experiments.DefaultRunConfig()})
	t.Cleanup(func() {
		u.Shutdown()
		u.loops.Wait()
		u.wait()
	})
	act(u, func() {
		w.SetContent(u.Content())
		w.Resize(fyne.NewSize(1280, 800))
	})
	act(u, func() { require.NoError(t, u.Show(ScreenCharts)) })
	u.wait()
	act(u, func() { assert.Empty(t, u.charts.expCheck.Options) })

	id, err := cli.CreateExperiment(ctx, "made by the CLI", `{}`, "h1")
	require.NoError(t, err)
	label := fmt.Sprintf("#%d made by the CLI", id)
	eventually(t, u, func() bool { return slices.Contains(u.charts.expCheck.Options, label) })

	// Screens not shown catch up when shown.
	for _, screen := range []string{ScreenRuns, ScreenRollouts, ScreenCompare} {
		act(u, func() { require.NoError(t, u.Show(screen)) })
		u.wait()
	}
	act(u, func() {
		require.NotEmpty(t, u.runs.experiments)
		assert.Equal(t, id, u.runs.experiments[0].ID)
		assert.Contains(t, u.rollouts.pick.Options, label)
		assert.Contains(t, u.compare.expA.Options, label)
	})
}

// desktopShortcut delivers s the way the desktop driver does: a main menu
// item with that shortcut first, else the focused widget when it takes
// shortcuts (an Entry swallows those it does not know), else the canvas.
func desktopShortcut(menu *fyne.MainMenu, c fyne.Canvas, s fyne.Shortcut) {
	for _, m := range menu.Items {
		for _, it := range m.Items {
			if it.Shortcut != nil && it.Shortcut.ShortcutName() == s.ShortcutName() && it.Action != nil {
				it.Action()
				return
			}
		}
	}
	if f, ok := c.Focused().(fyne.Shortcutable); ok {
		f.TypedShortcut(s)
		return
	}
	c.(fyne.Shortcutable).TypedShortcut(s)
}

// Defect 6: Ctrl+1..8 switch screens while a text field has focus, and Ctrl+7
// from Trace compares the rollout on screen.
func TestDefect6ShortcutsAreWindowWide(t *testing.T) {
	u, w := newTestUI(t, newFakeStore(), nil)
	menu := fyne.NewMainMenu(u.GoMenu())
	ctrl := func(k fyne.KeyName) fyne.Shortcut {
		return &desktop.CustomShortcut{KeyName: k, Modifier: fyne.KeyModifierShortcutDefault}
	}
	act(u, func() {
		require.NoError(t, u.Show(ScreenNewRun))
		w.Canvas().Focus(u.run.name)
		require.Equal(t, u.run.name, w.Canvas().Focused())
		desktopShortcut(menu, w.Canvas(), ctrl(fyne.Key4))
	})
	u.wait()
	assert.Equal(t, ScreenRuns, u.Current(), "Ctrl+4 from a focused text field")

	act(u, func() { u.OpenRollout(11) })
	u.wait()
	act(u, func() { desktopShortcut(menu, w.Canvas(), ctrl(fyne.Key7)) })
	u.wait()
	assert.Equal(t, ScreenCompare, u.Current())
	assert.Equal(t, int64(11), u.compare.a.ID, "Compare opens on the rollout Trace showed")

	// Ctrl+R runs New experiment's form from anywhere (without a runner it says so).
	act(u, func() { desktopShortcut(menu, w.Canvas(), ctrl(fyne.KeyR)) })
	u.wait()
	assert.Equal(t, ScreenNewRun, u.Current())
	assert.Contains(t, u.run.errors.Text, "no runner")
}

// Defect 3: no text a screen shows may widen the window. Every status,
// progress and error line gets a long message (an error with a URL in it) and
// the window's content must still fit 1280 px.
func TestDefect3LongTextsDoNotWidenTheWindow(t *testing.T) {
	u, w := newTestUI(t, newCtlStore(), newCtlRunner(nil))
	long := "Could not reach the endpoint: Post \"http://gpu-node-17.cluster.internal:8000/v1/completions?model=Mem-Lab/Qwen2.5-7B-RL-RAG-Q2-EM-Release\": " +
		strings.Repeat("dial tcp 10.0.0.17:8000: connect: connection refused; ", 8)
	screens := map[string][]*widget.Label{
		ScreenNewRun:    {u.run.progress, u.run.status, u.run.errors, u.run.plan},
		ScreenRuns:      {u.runs.status, u.runs.title, u.runs.progress, u.runs.failures, u.runs.rollouts.status},
		ScreenRollouts:  {u.rollouts.list.status},
		ScreenTrace:     {u.trace.header, u.trace.turnInfo, u.trace.status, u.trace.failure, u.trace.diffSummary, u.trace.totals},
		ScreenCompare:   {u.compare.header, u.compare.status, u.compare.pairStatus},
		ScreenCharts:    {u.charts.status, u.charts.presetStatus},
		ScreenData:      {u.data.status, u.data.previewTitle},
		ScreenEndpoints: {u.endpoints.result, u.endpoints.serverStatus},
	}
	for _, name := range Screens {
		act(u, func() { require.NoError(t, u.Show(name)) })
		u.wait()
		act(u, func() {
			for _, l := range screens[name] {
				l.Show()
				l.SetText(long)
			}
			min := u.Content().MinSize()
			assert.LessOrEqual(t, min.Width, float32(1280), "%s: the content's minimum width", name)
			w.Resize(fyne.NewSize(1280, 800))
			assert.LessOrEqual(t, w.Canvas().Size().Width, float32(1280), "%s: the window did not widen", name)
		})
	}
}

// Defect 13: progress says what happened: an all-failed run is not "100%", a
// paused run shows no ETA, and a cancelled run does not keep "3 running".
func TestDefect13ProgressWording(t *testing.T) {
	assert.Equal(t, "0 done · 4 failed of 4", barText(0, 4, 4))
	assert.Equal(t, "3 of 4 done", barText(3, 0, 4))
	assert.Equal(t, "not started", barText(0, 0, 0))
	// A 0% bar draws no filled part (no NaN ratio from an empty range).
	test.NewTempApp(t)
	bar := widget.NewProgressBar()
	bar.Max = 0
	setBar(bar, 0, 0, 0)
	w := test.NewTempWindow(t, bar)
	w.Resize(fyne.NewSize(300, 40))
	bar.Refresh()
	for _, o := range test.WidgetRenderer(bar).Objects() {
		if r, ok := o.(*canvas.Rectangle); ok && r.Size().Width != bar.Size().Width && r.Visible() {
			t.Errorf("a filled part %v of %v drawn at 0%%", r.Size(), bar.Size())
		}
	}
	assert.Equal(t, 1.0, bar.Max)
	assert.Equal(t, "not started", bar.TextFormatter())
	paused := progressText(experiments.Progress{Total: 4, Done: 1, Running: 3, ETA: 5 * time.Second, Paused: true})
	assert.NotContains(t, paused, "ETA")
	assert.Contains(t, paused, "paused")

	st := newCtlStore()
	r := newCtlRunner([]experiments.Progress{{Experiment: 1, Total: 2, Done: 1, Running: 3}})
	u, _ := newTestUI(t, st, r)
	act(u, func() { test.Tap(u.run.runBt) })
	<-r.started
	<-r.stepped
	act(u, func() {
		assert.Contains(t, u.run.progress.Text, "3 running")
		test.Tap(u.run.cancelBt)
	})
	r.proceed <- struct{}{}
	u.wait()
	act(u, func() {
		assert.NotContains(t, u.run.progress.Text, "running", "nothing runs after the cancel")
		assert.Equal(t, "Experiment #1: 1 done, 0 failed, 1 not run of 2", u.run.progress.Text)
		assert.Equal(t, "1 of 2 done", u.run.bar.TextFormatter())
	})
}

// Defect 7: Runs' rollout table tells policies and models apart, and the
// per-setting table shows a 6-setting grid (2 policies × 3 objective counts)
// whole at 1280×800.
func TestDefect7RunsColumnsAndSettingRows(t *testing.T) {
	st := newFakeStore()
	u, w := newTestUI(t, st, nil)
	act(u, func() {
		w.Resize(fyne.NewSize(1280, 800))
		require.NoError(t, u.Show(ScreenRuns))
	})
	u.wait()
	rp := u.runs
	act(u, func() {
		for i, e := range rp.experiments {
			if e.ID == 1 {
				rp.table.selectRow(i)
			}
		}
	})
	u.wait()
	act(u, func() {
		assert.Equal(t, "Policy", rp.rollouts.table.headers[1])
		assert.Equal(t, "Model", rp.rollouts.table.headers[2])
		require.NotEmpty(t, rp.rollouts.table.rows)
		assert.Equal(t, "mem1", rp.rollouts.table.rows[0][1])
		var settings [][]string
		for _, pol := range []string{"mem1", "full"} {
			for _, n := range []int{1, 2, 4} {
				settings = append(settings, settingRow(experiments.SettingProgress{Model: "m", Policy: pol, Objectives: n, Total: 4}))
			}
		}
		rp.settings.setRows(settings)
		w.Content().Refresh()
		shown := rowsInView(rp.settings.table, 2)
		assert.GreaterOrEqual(t, shown, 6, "every setting row fits (table %v tall)", rp.settings.table.Size())

		// The experiments list above it keeps four experiments in view.
		rows := make([][]string, 8)
		for i := range rows {
			rows[i] = []string{fmt.Sprintf("#%d e", 8-i), "2026-12-01 10:00", "done", "4 of 4 done", "1.000"}
		}
		rp.table.setRows(rows)
		w.Content().Refresh()
		listed := rowsInView(rp.table.table, 0)
		assert.GreaterOrEqual(t, listed, 4, "four experiments in view (list %v tall)", rp.table.table.Size())
	})
}

// rowsInView counts the cells of column col that lie wholly inside tbl.
func rowsInView(tbl fyne.CanvasObject, col int) int {
	n := 0
	for _, c := range findCells(tbl) {
		if c.id.Col == col && c.Position().Y+c.Size().Height <= tbl.Size().Height+1 {
			n++
		}
	}
	return n
}

// User choices outlive the window: split positions, the screen, the window
// size, New experiment's endpoint and the export folder come back next start.
func TestPreferencesRemembered(t *testing.T) {
	test.NewTempApp(t)
	open := func() (*UI, fyne.Window) {
		w := test.NewTempWindow(t, nil)
		u := NewUI(Deps{Store: newCtlStore(), Runner: newCtlRunner(nil), Window: w, DefaultRun: defaultRun()})
		t.Cleanup(u.wait)
		u.wait()
		act(u, func() { w.SetContent(u.Content()) })
		return u, w
	}
	u, _ := open()
	dir := t.TempDir()
	act(u, func() {
		u.run.endpoint.SetText("http://127.0.0.1:9999/v1")
		u.run.model.SetText("remembered-model")
		test.Tap(u.run.runBt)
	})
	r := u.deps.Runner.(*ctlRunner)
	<-r.started
	act(u, func() { u.run.stop() })
	u.wait()
	act(u, func() {
		require.NoError(t, u.Show(ScreenRuns))
		u.splits["runs.split"].Offset = 0.41
		u.rememberExportDir(filepath.Join(dir, "rollouts.csv"))
		u.SavePrefs(fyne.NewSize(1100, 700))
	})
	u.wait()

	u2, _ := open()
	act(u2, func() {
		assert.InDelta(t, 0.41, u2.splits["runs.split"].Offset, 1e-9, "split position restored")
		size, ok := u2.LastWindowSize()
		require.True(t, ok)
		assert.Equal(t, fyne.NewSize(1100, 700), size)
		u2.ShowLastScreen()
		assert.Equal(t, ScreenRuns, u2.Current())
		assert.Equal(t, "http://127.0.0.1:9999/v1", u2.run.endpoint.Text)
		assert.Equal(t, "remembered-model", u2.run.model.Text)
		d := u2.exportDir()
		require.NotNil(t, d, "the save dialog opens in the last export folder")
		assert.Equal(t, dir, d.Path())
	})
}

// rowsFitting is how many rows of tb fit in its height below the header.
func rowsFitting(tb *dataTable) int {
	row := newTableCell(tb).MinSize().Height + theme.Padding()
	return int((tb.table.Size().Height - row) / row)
}

// Defect 12: Compare draws A and B on one scale, the last bar whole (Trace
// too), and its tables show more than a row or three at 1280×800.
func TestDefect12CompareScalesAndRoom(t *testing.T) {
	p := tokenPlot([]int{100, 300, 200}, 1, 300, 1, color.Black, 0, 0)
	require.NotNil(t, p)
	assert.GreaterOrEqual(t, p.X.Max, 2.5, "the last bar's slot is inside the axis")
	assert.LessOrEqual(t, p.X.Min, -0.5, "so is the first's")
	assert.GreaterOrEqual(t, p.Y.Max, 300.0)

	u, w := newTestUI(t, newFakeStore(), nil)
	act(u, func() {
		w.Resize(fyne.NewSize(1280, 800))
		u.OpenCompare(11, 12) // 3 turns against 1, of different sizes
	})
	u.wait()
	cp := u.compare
	act(u, func() {
		require.True(t, cp.loaded)
		assert.Equal(t, cp.chartA.yTop, cp.chartB.yTop, "one y-scale for A and B")
		assert.Equal(t, 3, cp.chartB.slots, "and one turn axis")
		assert.Greater(t, cp.chartA.yTop, 0.0)
		w.Content().Refresh()
		assert.GreaterOrEqual(t, rowsFitting(cp.turns), 4, "aligned turns table: %v", cp.turns.table.Size())
		assert.GreaterOrEqual(t, rowsFitting(cp.outcome), 3, "outcome table: %v", cp.outcome.table.Size())
	})
}

// Defect 11: on-screen charts read well: text grows with the canvas, equal
// series are shifted apart, an all-zero EM axis is 0..1, and EM/F1 is offered
// only where a chart plots it.
func TestDefect11OnScreenCharts(t *testing.T) {
	test.NewTempApp(t)
	assert.GreaterOrEqual(t, float64(screenFontSize(300)), float64(theme.TextSize()), "never below the theme's text")
	assert.Greater(t, float64(screenFontSize(900)), float64(screenFontSize(300)), "a larger canvas gets larger text")

	zero := experiments.Stat{N: 3}
	aggs := []experiments.Aggregate{
		{GroupKey: experiments.GroupKey{Model: "m", Policy: "mem1", Objectives: 2}, Rollouts: 3, EM: zero, F1: zero},
		{GroupKey: experiments.GroupKey{Model: "m", Policy: "full", Objectives: 2}, Rollouts: 3, EM: zero, F1: zero},
	}
	f, err := figures.Build(figures.Data{Aggregates: aggs}, figures.Options{Kind: figures.Accuracy, Dodge: true})
	require.NoError(t, err)
	assert.Equal(t, 0.0, f.Plot.Y.Min)
	assert.Equal(t, 1.0, f.Plot.Y.Max, "all-zero EM: a 0..1 axis")
	a, b := figures.DodgeShift(0, 2), figures.DodgeShift(1, 2)
	assert.NotEqual(t, a, b, "identical series are shifted apart")
	assert.InDelta(t, 1, math.Sqrt(a*b), 1e-12, "centred on the true objective count")
	assert.Equal(t, 1.0, figures.DodgeShift(0, 1), "a lone series stays put")

	u, _ := newTestUI(t, newFakeStore(), nil)
	act(u, func() {
		p := u.charts
		p.choice.SetSelected(chartPeak)
		assert.True(t, p.metric.Disabled(), "EM/F1 means nothing for peak tokens")
		assert.True(t, p.perObj.Disabled())
		p.choice.SetSelected(chartFrontier)
		assert.False(t, p.metric.Disabled())
		p.choice.SetSelected(chartAccuracy)
		assert.False(t, p.metric.Disabled())
	})
	u.wait()
}

// Defect 15: New experiment's grid preview follows edits, its hints wrap
// instead of being cut off, the prompt preview is normal text (not disabled
// grey); picking in Runs leaves Rollouts' filter alone.
func TestDefect15NewExperimentPreviewAndHints(t *testing.T) {
	u, _ := newTestUI(t, newCtlStore(), newCtlRunner(nil))
	p := u.run
	act(u, func() {
		require.NoError(t, u.Show(ScreenNewRun))
		p.objectives.SetText("2")
		p.tasks.SetText("4")
		test.Tap(p.previewBt)
	})
	u.wait()
	act(u, func() {
		require.True(t, strings.HasPrefix(p.plan.Text, "4 rollouts"), p.plan.Text)
		p.tasks.SetText("3")
	})
	u.wait()
	act(u, func() {
		assert.True(t, strings.HasPrefix(p.plan.Text, "3 rollouts"), "the preview follows the edit: %q", p.plan.Text)
		p.topP.SetText("7")
	})
	u.wait()
	act(u, func() {
		assert.Contains(t, p.plan.Text, "Out of date", "an invalid form does not leave the old plan standing")
		assert.Empty(t, p.prompt.Text)
	})

	for _, it := range p.form.Items {
		assert.Empty(t, it.HintText, "%s: hints are wrapped labels, not one cut-off line", it.Text)
	}
	var hints []string
	var walk func(fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		if c, ok := o.(*fyne.Container); ok {
			for _, ch := range c.Objects {
				walk(ch)
			}
		}
		if l, ok := o.(*widget.Label); ok && l.TextStyle.Italic {
			assert.Equal(t, fyne.TextWrapWord, l.Wrapping, l.Text)
			hints = append(hints, l.Text)
		}
	}
	for _, it := range p.form.Items {
		walk(it.Widget)
	}
	assert.Len(t, hints, 3, "the hints of the saved endpoints, mixed composition and the memory endpoints")

	act(u, func() { p.prompt.SetText("<|im_start|>user\nQuestion: ?") })
	require.Len(t, p.prompt.rich.Segments, 1)
	seg := p.prompt.rich.Segments[0].(*widget.TextSegment)
	assert.Equal(t, widget.RichTextStyleCodeBlock, seg.Style, "monospace in the normal text colour")
}

// Defect 16: counts agree with their nouns, headers and 16-objective EM sums
// are shown whole, and Data shows a whole question.
func TestDefect16WordingAndTruncation(t *testing.T) {
	assert.Equal(t, "1 model", plural(1, "model", "models"))
	assert.Equal(t, "3 experiments", plural(3, "experiment", "experiments"))

	st := newFakeStore()
	st.mu.Lock()
	st.exps = st.exps[1:] // one experiment
	st.mu.Unlock()
	u, _ := newTestUI(t, st, nil)
	act(u, func() { require.NoError(t, u.Show(ScreenRuns)) })
	u.wait()
	assert.Equal(t, "1 experiment", u.runs.status.Text)

	for name, tb := range map[string]*dataTable{"settings": u.runs.settings, "runs rollouts": u.runs.rollouts.table,
		"experiments": u.runs.table, "browser": u.rollouts.list.table, "summary": u.run.summary, "compare outcome": u.compare.outcome} {
		for i, h := range tb.headers {
			assert.GreaterOrEqual(t, tb.widths[i], textWidth(h, fyne.TextStyle{Bold: true}), "%s: header %q whole", name, h)
		}
	}
	em := func(tb *dataTable, header, sample string) {
		for i, h := range tb.headers {
			if h == header {
				assert.GreaterOrEqual(t, tb.widths[i], textWidth(sample, fyne.TextStyle{}), "%q holds %s", header, sample)
				return
			}
		}
		t.Errorf("no column %q", header)
	}
	em(u.runs.settings, "Mean EM", "16.000")
	em(u.runs.table, "Mean EM / reward", "16.000")
	em(u.rollouts.list.table, "EM", "16.00")
	em(u.runs.rollouts.table, "EM", "16.00")

	act(u, func() { require.NoError(t, u.Show(ScreenData)) })
	u.wait()
	act(u, func() { u.data.counts.selectRow(0) })
	u.wait()
	act(u, func() { u.data.preview.selectRow(0) })
	assert.Contains(t, u.data.question.Text, sampleTask.Objectives[0].Question, "the whole question is readable")
	assert.Contains(t, u.data.question.Text, "Gold: Arthur's Magazine")
}

// Defect 8: at 1280×800 the whole profile form shows, Save and Test included;
// the divider moves both ways; the oracle agent is a preset.
func TestDefect8EndpointsRoomAndOraclePreset(t *testing.T) {
	u, w := newTestUI(t, newCtlStore(), nil)
	act(u, func() {
		w.Resize(fyne.NewSize(1280, 800))
		require.NoError(t, u.Show(ScreenEndpoints))
	})
	u.wait()
	p := u.endpoints
	right := u.splits["endpoints.right"]
	act(u, func() {
		w.Content().Refresh()
		box := p.profileScroll.Content
		assert.GreaterOrEqual(t, p.profileScroll.Size().Height, box.MinSize().Height,
			"the profile form (%v) fits its pane (%v) without scrolling", box.MinSize(), p.profileScroll.Size())
		for _, off := range []float64{0.9, 0.2} {
			right.SetOffset(off)
			total := right.Size().Height
			got := float64(p.profileScroll.Size().Height / total)
			assert.InDelta(t, off, got, 0.08, "the divider moves to %.1f", off)
		}
		var oracle string
		for _, o := range p.preset.Options {
			if strings.HasPrefix(o, "mem1lab oracle agent") {
				oracle = o
			}
		}
		require.NotEmpty(t, oracle, "a preset for the built-in oracle agent")
		p.preset.SetSelected(oracle)
		assert.Equal(t, "http://127.0.0.1:8015/v1", p.url.Text)
		assert.Equal(t, "mem1lab-oracle", p.model.Entry.Text)
	})
}

// Defect 10: a whole path typed in the save dialog is used as it is, the
// message names the full path, and the next dialog opens in that folder.
func TestDefect10SaveDialogTakesTypedPath(t *testing.T) {
	u, w := newTestUI(t, newCtlStore(), nil)
	dir := t.TempDir()
	act(u, func() {
		require.NoError(t, u.Show(ScreenNewRun))
		test.Tap(u.run.exportBt)
	})
	var save *widget.Button
	act(u, func() {
		require.NotNil(t, u.savePath, "the save dialog is shown")
		u.savePath.SetText(filepath.Join(dir, "exp.toml"))
		save = findButton(w.Canvas().Overlays().Top(), "Save")
		require.NotNil(t, save)
		test.Tap(save)
	})
	b, err := os.ReadFile(filepath.Join(dir, "exp.toml"))
	require.NoError(t, err, "written where typed, not joined to another folder")
	assert.Contains(t, string(b), "model")
	assert.Equal(t, "Saved "+filepath.Join(dir, "exp.toml"), u.run.status.Text, "the message says where")

	act(u, func() { test.Tap(u.run.exportBt) })
	act(u, func() {
		assert.Equal(t, filepath.Join(dir, "experiment.toml"), u.savePath.Text, "the next dialog opens in that folder")
		u.savePath.SetText("relative.toml")
		test.Tap(findButton(w.Canvas().Overlays().Top(), "Save"))
	})
	_, err = os.Stat(filepath.Join(dir, "relative.toml"))
	assert.NoError(t, err, "a bare name goes to the folder shown")
}

// Defect 14: the Table 1 preset offers the saved endpoint profiles and the
// store's datasets, and one click makes one experiment with the whole grid.
func TestDefect14PresetPicksProfileAndDatasetAndRunsOneGrid(t *testing.T) {
	st := newCtlStore()
	st.profiles["gpu-a"] = `{"name":"gpu-a","url":"http://gpu-a:8000/v1","model":"Mem-Lab/Qwen2.5-7B-RL-RAG-Q2-EM-Release","mode":"completions","concurrency":4}`
	r := &presetRunner{}
	u, _ := newTestUI(t, st, r)
	p := u.charts
	act(u, func() { p.presetDialog() })
	u.wait()
	f := p.presetForm
	act(u, func() {
		require.NotNil(t, f)
		assert.Equal(t, []string{"gpu-a"}, f.profile.Options, "saved profiles are offered")
		assert.Equal(t, []string{"hotpotqa", "nq"}, f.dataset.Options, "the dataset is a picker of the store's datasets")
		f.profile.SetSelected("gpu-a")
		assert.Equal(t, "http://gpu-a:8000/v1", f.endpoint.Text)
		f.dataset.SetSelected("nq")
		f.tasks.SetText("3")
		p.submitPreset()
	})
	u.wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Len(t, r.cfgs, 1, "one experiment")
	c := r.cfgs[0]
	assert.Equal(t, "http://gpu-a:8000/v1", c.Endpoint)
	assert.Equal(t, "Mem-Lab/Qwen2.5-7B-RL-RAG-Q2-EM-Release", c.Model)
	assert.Equal(t, "nq", c.Dataset)
	assert.Len(t, c.ObjectivesList(), 5)
	assert.Len(t, c.PolicyList(), 2)
	assert.Equal(t, 3, c.Tasks)
}
