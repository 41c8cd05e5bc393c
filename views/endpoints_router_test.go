package views

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments"
)

// Issue 11: the router presets are offered on Endpoints; picking one fills
// the session settings a sticky router reads, and saving keeps them (a saved
// profile opened and saved again loses nothing).
func TestEndpointsRouterPresetKeepsSessionSettings(t *testing.T) {
	st := newCtlStore()
	u, _ := newTestUI(t, st, newCtlRunner(nil))
	p := u.endpoints
	rp, ok := experiments.RouterPresetByName("litellm-proxy")
	require.True(t, ok)
	act(u, func() {
		i := slices.IndexFunc(p.preset.Options, func(o string) bool { return strings.HasPrefix(o, rp.Description) })
		require.GreaterOrEqual(t, i, 0, "router preset offered: %q", p.preset.Options)
		p.model.SetText("qwen")
		p.preset.SetSelectedIndex(i)
	})
	act(u, func() {
		assert.Equal(t, rp.URL, p.url.Text)
		assert.Equal(t, rp.Mode, p.mode.Selected)
		assert.Equal(t, "128", p.concurrency.Text)
		assert.Equal(t, rp.SessionHeader, p.sessionHeader.Text)
		assert.True(t, p.sessionUser.Checked)
		assert.Equal(t, "litellm-proxy", p.name.Text)
		assert.Equal(t, "qwen", p.model.Text, "the model stays as typed")
		test.Tap(p.saveBt)
	})
	u.wait()
	var saved experiments.EndpointProfile
	act(u, func() {
		require.Contains(t, st.profiles, "litellm-proxy")
		require.NoError(t, json.Unmarshal([]byte(st.profiles["litellm-proxy"]), &saved))
	})
	want := rp.Profile("litellm-proxy", "", "qwen")
	want.TimeoutSeconds = 120 // the form's default, untouched
	assert.Equal(t, want, saved)

	// A profile sending no header, opened and saved again, still sends none.
	act(u, func() {
		p.fill(experiments.EndpointProfile{Name: "quiet", URL: "http://127.0.0.1:9/v1", Model: "m", Mode: experiments.ModeChat,
			Concurrency: 2, SessionHeader: "-"})
	})
	act(u, func() {
		pr, err := p.profile()
		require.NoError(t, err)
		assert.Equal(t, "-", pr.SessionHeader)
		assert.False(t, pr.SessionUser)
		p.sessionHeader.SetText("X Session")
		_, err = p.profile()
		require.Error(t, err)
		assert.Contains(t, err.Error(), `Session key header: "X Session" is not an HTTP header name`)
	})
}
