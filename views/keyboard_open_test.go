package views

import (
	"sync/atomic"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/test"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The rollout browser works from the keyboard alone: Ctrl+F, Return moves to
// the results, Down moves the highlight, Return opens that rollout in Trace.
func TestKeyboardOpensARolloutFromTheBrowser(t *testing.T) {
	u, w := newTestUI(t, newFakeStore(), nil)
	act(u, func() {
		w.canvas.TypedShortcut(&desktop.CustomShortcut{KeyName: fyne.KeyF, Modifier: fyne.KeyModifierShortcutDefault})
	})
	u.wait()
	require.Equal(t, ScreenRollouts, u.Current())
	l := u.rollouts.list
	require.GreaterOrEqual(t, len(l.shown), 2, "the fake store needs two rollouts in the browser")
	w.pressKey(t, u, fyne.KeyReturn)
	require.Same(t, fyne.Focusable(l.table.table), w.Canvas().Focused(), "Return in the search field focuses the results")
	w.pressKey(t, u, fyne.KeyDown)
	want := l.shown[1].ID
	w.pressKey(t, u, fyne.KeyReturn)
	u.wait()
	assert.Equal(t, ScreenTrace, u.Current())
	assert.Equal(t, want, u.trace.detail.ID, "Return opens the highlighted row, the second")
}

// Return and Enter activate the highlighted row of any data table; Space only
// selects it.
func TestDataTableReturnActivatesTheHighlightedRow(t *testing.T) {
	d := newDataTable([]string{"A"}, []float32{50})
	d.setRows([][]string{{"x"}, {"y"}, {"z"}})
	var got []int
	d.onActivate = func(row int) { got = append(got, row) }
	d.table.TypedKey(&fyne.KeyEvent{Name: fyne.KeySpace})
	assert.Empty(t, got, "Space selects without activating")
	assert.Equal(t, 0, d.selected)
	d.table.TypedKey(&fyne.KeyEvent{Name: fyne.KeyDown})
	d.table.TypedKey(&fyne.KeyEvent{Name: fyne.KeyDown})
	d.table.TypedKey(&fyne.KeyEvent{Name: fyne.KeyReturn})
	d.table.TypedKey(&fyne.KeyEvent{Name: fyne.KeyUp})
	d.table.TypedKey(&fyne.KeyEvent{Name: fyne.KeyEnter})
	assert.Equal(t, []int{2, 1}, got)
}

// The quit dialog answers the keyboard: Escape keeps running, Return stops the
// run and quits.
func TestQuitDialogAnswersReturnAndEscape(t *testing.T) {
	st := newCtlStore()
	r := newCtlRunner([]experiments.Progress{{Experiment: 1, Total: 2, Running: 2}})
	u, w := newTestUI(t, st, r)
	act(u, func() { test.Tap(u.run.runBt) })
	<-r.started
	<-r.stepped
	var quits atomic.Int32 // the quit callback runs on StopRuns's goroutine (fyne.Do)
	act(u, func() { u.ConfirmQuit(func() { quits.Add(1) }) })
	act(u, func() { require.NotNil(t, w.Canvas().Overlays().Top(), "a confirmation is shown") })
	w.pressKey(t, u, fyne.KeyEscape)
	act(u, func() { assert.Nil(t, w.Canvas().Overlays().Top(), "Escape closes it") })
	assert.Equal(t, int32(0), quits.Load(), "Escape keeps running")
	assert.Equal(t, 1, u.RunsInFlight())

	act(u, func() { u.ConfirmQuit(func() { quits.Add(1) }) })
	w.pressKey(t, u, fyne.KeyReturn)
	r.proceed <- struct{}{} // the run sees its context cancelled and returns
	eventually(t, u, func() bool { return quits.Load() == 1 })
	u.wait()
	assert.Equal(t, 0, u.RunsInFlight())
	assert.Contains(t, u.run.status.Text, "cancelled")
}
