package views

import (
	"reflect"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments"
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
	act(u, func() { test.Tap(u.run.runBt) })
	<-r.started
	// The runner created experiment #3; the store lists it first.
	st.fakeStore.mu.Lock()
	st.exps = append([]storage.ExperimentRow{{ID: 3, Name: "just launched", Status: storage.StatusRunning, Rollouts: 2}}, st.exps...)
	st.fakeStore.mu.Unlock()
	<-r.stepped
	eventually(t, u, func() bool { return len(u.runs.experiments) == len(st.exps) })
	act(u, func() { require.NoError(t, u.Show(ScreenRuns)) })
	eventually(t, u, func() bool { return u.runs.table.selected == 0 })
	act(u, func() {
		rp := u.runs
		assert.Equal(t, int64(3), rp.selectedID, "the launched experiment is selected")
		assert.Equal(t, float32(0), tableOffset(t, rp.table.table).Y, "its row is not scrolled under the header")
		assert.True(t, hasText(w.Canvas(), "#3 just launched"), "its row is drawn")
		assert.False(t, rp.pauseBt.Disabled(), "Pause is reachable")
		assert.False(t, rp.cancelBt.Disabled(), "Cancel is reachable")
	})
	act(u, func() { test.Tap(u.runs.cancelBt) })
	r.proceed <- struct{}{}
	u.wait()
}
