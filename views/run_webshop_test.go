package views

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/webshop"
	"github.com/mem1lab/mem1lab/storage"
)

// shopRunner runs what New experiment hands it: webshop configs through
// webshop.Runner (the scripted shopper, into a real store), as the app's
// runner does; it keeps the configs and progress it saw.
type shopRunner struct {
	st       *storage.Store
	mu       sync.Mutex
	cfgs     []experiments.RunConfig
	progress []experiments.Progress
}

func (r *shopRunner) Run(ctx context.Context, cfg experiments.RunConfig, progress func(experiments.Progress)) (experiments.Summary, error) {
	r.mu.Lock()
	r.cfgs = append(r.cfgs, cfg)
	r.mu.Unlock()
	if !cfg.IsWebShop() {
		return experiments.Summary{}, errors.New("shopRunner: not a webshop config")
	}
	if cfg.Endpoint != experiments.WebShopScripted {
		return experiments.Summary{}, errors.New("shopRunner: only the scripted shopper")
	}
	w := cfg.WebShopResolved()
	goals, err := experiments.ParseGoalList(w.Goals)
	if err != nil {
		return experiments.Summary{}, err
	}
	wr := &webshop.Runner{Store: r.st, Model: webshop.Scripted{}, Report: func(p experiments.Progress) {
		r.mu.Lock()
		r.progress = append(r.progress, p)
		r.mu.Unlock()
		progress(p)
	}}
	ws, err := wr.Run(ctx, "gui webshop", webshop.Config{EnvURL: w.Env, Goals: goals, Policy: cfg.Policy, MaxTurns: cfg.MaxTurns,
		Model: webshop.ScriptedModelName})
	return experiments.Summary{Experiment: ws.Experiment, Groups: []experiments.Group{{Policy: cfg.Policy, Objectives: 1,
		Rollouts: ws.Rollouts, Failed: ws.Failed, MeanEM: ws.Reward100 / 100, MeanF1: ws.Reward100 / 100}}}, err
}

// TestNewExperimentWebShopFamily: choosing WebShop hides the QA form and
// shows the WebShop one; bad goals and an empty server are reported under
// their labels; Ctrl+R runs the WebShop experiment against a fake WebShop
// server, with live progress and the stored rewards.
func TestNewExperimentWebShopFamily(t *testing.T) {
	st, err := storage.Open(filepath.Join(t.TempDir(), "lab.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	srv := httptest.NewServer(webshop.NewFakeServer())
	t.Cleanup(srv.Close)
	r := &shopRunner{st: st}
	u, w := newTestUI(t, st, r)
	menu := fyne.NewMainMenu(u.GoMenu())
	p := u.run
	act(u, func() {
		require.NoError(t, u.Show(ScreenNewRun))
		assert.True(t, p.form.Visible(), "Retrieval QA is the default family")
		assert.False(t, p.shop.box.Visible())
		p.family.SetSelected(familyWebShop)
	})
	u.wait()
	act(u, func() {
		assert.False(t, p.form.Visible(), "the QA-only fields are hidden")
		assert.False(t, p.truncateBt.Visible())
		assert.True(t, p.shop.box.Visible())
		assert.Equal(t, experiments.WebShopScripted, p.shop.endpoint.Text, "WebShop opens on the scripted shopper")
		assert.Equal(t, "demo", p.shop.env.Text)
		assert.Equal(t, "0-9", p.shop.goals.Text)
		assert.Equal(t, "10", p.shop.maxTurns.Text, "MEM1's WebShop turn budget")

		p.shop.goals.SetText("9-3")
		p.shop.env.SetText("")
		p.start()
		assert.Contains(t, p.errors.Text, "Goals: goals \"9-3\": bad range")
		assert.Contains(t, p.errors.Text, "WebShop server: give a URL")
		p.shop.env.SetText("ftp//nowhere")
		p.shop.goals.SetText("0-2")
		p.start()
		assert.Contains(t, p.errors.Text, "WebShop server:")
		p.shop.morePolicies.SetText("closed-book")
		p.start()
		assert.Contains(t, p.errors.Text, `Policies: policy "closed-book": WebShop has no retrieval to turn off`)
		p.shop.morePolicies.SetText("")
		p.shop.policies.SetSelected(nil)
		p.start()
		assert.Contains(t, p.errors.Text, "Policies: check at least one")
	})
	u.wait()
	r.mu.Lock()
	assert.Empty(t, r.cfgs, "nothing runs while the form is bad")
	r.mu.Unlock()

	act(u, func() {
		p.shop.env.SetText(srv.URL)
		p.shop.policies.SetSelected([]string{core.PolicyMemAgent})
		p.preview()
		assert.Contains(t, p.plan.Text, "one WebShop episode per goal, policy memagent", "a memory baseline is a WebShop policy")
		p.shop.policies.SetSelected([]string{core.PolicyAMem, core.PolicyMEM1})
		p.shop.morePolicies.SetText(" window:3, mem1")
		p.preview()
		assert.Contains(t, p.plan.Text, "9 rollouts: one WebShop episode per goal and policy (mem1, amem, window:3)", "checked in the offered order, then the typed ones")
		p.shop.morePolicies.SetText("")
		p.shop.policies.SetSelected([]string{core.PolicyFull})
		p.preview()
		assert.Contains(t, p.plan.Text, "3 rollouts: one WebShop episode per goal, policy full")
		desktopShortcut(menu, w.Canvas(), &desktop.CustomShortcut{KeyName: fyne.KeyR, Modifier: fyne.KeyModifierShortcutDefault})
	})
	u.wait()

	r.mu.Lock()
	require.Len(t, r.cfgs, 1)
	cfg := r.cfgs[0]
	require.NotEmpty(t, r.progress)
	lastPr := r.progress[len(r.progress)-1]
	r.mu.Unlock()
	assert.Equal(t, core.FamilyWebShop, cfg.Family)
	assert.Equal(t, srv.URL, cfg.WebShop.Env)
	assert.Equal(t, "0-2", cfg.WebShop.Goals)
	assert.Equal(t, core.PolicyFull, cfg.Policy)
	assert.Equal(t, 10, cfg.MaxTurns)
	assert.Equal(t, 3, lastPr.Total)
	assert.Equal(t, 3, lastPr.Done)
	assert.Positive(t, lastPr.Turns)

	act(u, func() {
		assert.Contains(t, p.status.Text, "Run finished")
		assert.Contains(t, p.progress.Text, "3 done, 0 failed")
		assert.Empty(t, p.errors.Text)
		assert.Equal(t, "Mean reward", p.summary.headers[4], "the summary names the reward")
	})
	rows, err := st.Rollouts(t.Context(), lastPr.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 3)
	for _, row := range rows {
		assert.Equal(t, storage.StatusDone, row.Status)
		assert.InDelta(t, 1.0, row.EM, 1e-9, "the fake's reward for the scripted shopper")
	}

	// Export gives the family and its table; switching back runs qa again.
	act(u, func() {
		cfg, err := p.config()
		require.NoError(t, err)
		b, err := cfg.CanonicalTOML()
		require.NoError(t, err)
		assert.Contains(t, string(b), `family = "webshop"`)
		assert.Contains(t, string(b), "[webshop]")
		p.family.SetSelected(familyQA)
	})
	u.wait()
	act(u, func() {
		assert.True(t, p.form.Visible())
		assert.False(t, p.shop.box.Visible())
		cfg, _ := p.config()
		assert.False(t, cfg.IsWebShop())
		assert.Nil(t, cfg.WebShop)
	})
}

// TestShopFormPoliciesRoundTrip: a WebShop config's policies fill the form
// (the offered ones checked, the others typed) and read back the same.
func TestShopFormPoliciesRoundTrip(t *testing.T) {
	test.NewTempApp(t)
	def := experiments.DefaultRunConfig()
	def.Family, def.Endpoint = core.FamilyWebShop, experiments.WebShopScripted
	f := newShopForm(def, func() {})
	assert.Equal(t, []string{core.PolicyMEM1}, f.policies.Selected, "mem1 by default")
	cfg := def
	cfg.Policy, cfg.Policies = "amem", []string{"amem", "window:3", "mem1", "summary:2"}
	f.set(cfg)
	assert.ElementsMatch(t, []string{"amem", "mem1"}, f.policies.Selected)
	assert.Equal(t, "window:3, summary:2", f.morePolicies.Text)
	got, err := f.config(def)
	require.NoError(t, err)
	assert.Equal(t, []string{"mem1", "amem", "window:3", "summary:2"}, got.Policies)
	assert.Equal(t, "mem1", got.Policy)
	withKnobs := def
	withKnobs.Memory = &experiments.MemoryConfig{URL: "http://127.0.0.1:9/v1", Model: "m", SummaryTokens: 500}
	got, err = f.config(withKnobs)
	require.NoError(t, err)
	require.NotNil(t, got.Memory)
	assert.Equal(t, experiments.MemoryConfig{SummaryTokens: 500}, *got.Memory, "the knobs are kept, the endpoint keys (QA's) are not")
	one := def
	one.Policy, one.Policies = "resum", nil
	f.set(one)
	got, err = f.config(def)
	require.NoError(t, err)
	assert.Equal(t, "resum", got.Policy)
	assert.Nil(t, got.Policies)
}
