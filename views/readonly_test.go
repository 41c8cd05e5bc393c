package views

import (
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments"
)

// A store open read-only shows its banner above every screen, and New
// experiment refuses to launch, saying why.
func TestReadOnlyBanner(t *testing.T) {
	test.NewTempApp(t)
	tw := test.NewTempWindow(t, nil)
	w := &shortcutWindow{Window: tw, canvas: &shortcutCanvas{Canvas: tw.Canvas()}}
	r := newFakeRunner(nil, experiments.Summary{})
	const why = "Read-only: /x/lab.db cannot be written. Browsing works; running is off."
	u := NewUI(Deps{Store: newFakeStore(), Runner: r, Window: w, DefaultRun: defaultRun(), ReadOnly: why})
	u.wait()
	tw.SetContent(u.Content())
	tw.Resize(fyne.NewSize(1400, 900))
	require.NotNil(t, u.banner)
	for _, s := range Screens {
		act(u, func() { require.NoError(t, u.Show(s)) })
		u.wait() // each screen reloads in the background; render once that has applied
		assert.True(t, hasText(w.Canvas(), why), "banner on %s", s)
	}
	act(u, func() { require.NoError(t, u.Show(ScreenNewRun)) })
	u.wait()
	act(u, func() { test.Tap(u.run.runBt) })
	u.wait()
	assert.Empty(t, r.started, "nothing ran")
	assert.Equal(t, "Cannot run: "+why, u.run.status.Text)
	assert.False(t, u.run.running)

	// Without ReadOnly there is no banner.
	u2, _ := newTestUI(t, newFakeStore(), newFakeRunner(nil, experiments.Summary{}))
	assert.Nil(t, u2.banner)
}
