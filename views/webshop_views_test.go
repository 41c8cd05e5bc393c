package views

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"fyne.io/fyne/v2/widget"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot/plotter"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments/figures"
	"github.com/mem1lab/mem1lab/experiments/webshop"
	"github.com/mem1lab/mem1lab/storage"
)

// webShopStore plays the scripted shopper on goals 0–5 of the fake WebShop
// (served by the test) into a temp store, as `webshop-run --env demo` does;
// it returns the store and the experiment's id.
func webShopStore(t *testing.T) (*storage.Store, int64) {
	t.Helper()
	st, err := storage.Open(filepath.Join(t.TempDir(), "lab.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	srv := httptest.NewServer(webshop.NewFakeServer())
	t.Cleanup(srv.Close)
	r := &webshop.Runner{Store: st, Model: webshop.Scripted{}}
	sum, err := r.Run(context.Background(), "ws", webshop.Config{EnvURL: srv.URL, Goals: []int{0, 1, 2, 3, 4, 5},
		Model: webshop.ScriptedModelName, FakeReward: true})
	require.NoError(t, err)
	require.Equal(t, 6, sum.Done)
	return st, sum.Experiment
}

// TestTraceShowsWebShopTurn: a stored WebShop rollout's turns are labelled in
// the family's terms, with the page as the observation, the offered actions
// in their own section and the final reward on the last turn.
func TestTraceShowsWebShopTurn(t *testing.T) {
	st, exp := webShopStore(t)
	ctx := context.Background()
	rows, err := st.Rollouts(ctx, exp)
	require.NoError(t, err)
	d, err := st.Rollout(ctx, rows[0].ID)
	require.NoError(t, err)
	require.Greater(t, len(d.Turns), 2)
	require.Equal(t, core.FamilyWebShop, d.Dataset)
	first, last := d.Turns[0], d.Turns[len(d.Turns)-1]
	_, offered, ok := strings.Cut(first.Information, "\nAvailable actions: ")
	require.True(t, ok, "the stored information lists the actions")

	u, _ := newTestUI(t, st, nil)
	act(u, func() { u.OpenRollout(d.ID) })
	u.wait()
	act(u, func() {
		tr := u.trace
		require.True(t, tr.loaded, tr.status.Text)
		assert.Equal(t, "Memory (<summary>)", tr.stateTitle.Text)
		assert.Equal(t, "Observation", tr.infoTitle.Text)
		assert.True(t, strings.HasPrefix(tr.queryTitle.Text, "Action"), tr.queryTitle.Text)
		assert.Contains(t, tr.header.Text, "final reward ×100 100.0")
		assert.NotContains(t, tr.header.Text, "EM ")
		assert.Equal(t, first.InternalState, tr.state.String())
		assert.True(t, strings.HasPrefix(first.Query, "search["), first.Query)
		assert.Equal(t, first.Query, tr.query.Text)
		assert.True(t, tr.reasoningBox.Visible())
		assert.Equal(t, "The page has a search bar; search for the request.", tr.reasoning.String())
		require.True(t, tr.actionsBox.Visible())
		assert.Equal(t, strings.Split(offered, ", "), strings.Split(tr.actions.String(), "\n"))
		assert.NotContains(t, tr.information.String(), "Available actions")
		assert.Contains(t, tr.information.String(), "[SEP]", "the page is the observation")
		assert.False(t, tr.reward.Visible(), "no reward before the purchase")

		tr.step(1 << 30)
		assert.Equal(t, last.Answer+"  (ended the episode)", tr.query.Text)
		assert.Equal(t, "click[buy now]", last.Answer)
		require.True(t, tr.reward.Visible())
		assert.Contains(t, tr.reward.Text, "Final reward 1 (×100: 100.0)")
		assert.Contains(t, tr.reward.Text, figures.FakeRewardNote)
		assert.False(t, tr.actionsBox.Visible(), "the purchase page offers nothing")
		assert.Contains(t, tr.information.String(), "Purchased")
		assert.Contains(t, tr.totals.Text, "final reward 1")
		require.Len(t, tr.answers.Objects, 1)
		assert.Equal(t, d.Task.Objectives[0].Question+": ended with click[buy now]", tr.answers.Objects[0].(*widget.Label).Text)
		require.Len(t, tr.facts.Objects, 1)
		assert.Contains(t, tr.facts.Objects[0].(*widget.Label).Text, "no gold facts")
	})
}

// TestTraceQAKeepsItsTerms: a QA rollout shows none of the WebShop sections.
func TestTraceQAKeepsItsTerms(t *testing.T) {
	u, _ := newTestUI(t, newFakeStore(), nil)
	act(u, func() { u.OpenRollout(11) })
	u.wait()
	act(u, func() {
		tr := u.trace
		require.True(t, tr.loaded)
		assert.Equal(t, []string{"Internal state", "State diff against the previous turn", "Query", "Information"},
			[]string{tr.stateTitle.Text, tr.diffTitle.Text, tr.queryTitle.Text, tr.infoTitle.Text})
		for _, box := range []interface{ Visible() bool }{tr.reasoningBox, tr.actionsBox, tr.reward} {
			assert.False(t, box.Visible())
		}
		assert.Contains(t, tr.header.Text, "EM ")
	})
}

// TestChartsWebShopReward: WebShop experiments chart the reward (never EM),
// the overlay is the paper's Table 2, the fake server's caveat is shown, and
// Reward vs turns draws one point per stored rollout.
func TestChartsWebShopReward(t *testing.T) {
	st, exp := webShopStore(t)
	rows, err := st.Rollouts(context.Background(), exp)
	require.NoError(t, err)
	u, _ := newTestUI(t, st, nil)
	act(u, func() {
		require.NoError(t, u.Show(ScreenCharts))
		u.charts.selectExperiments(exp)
	})
	u.wait()
	p := u.charts
	act(u, func() {
		require.Len(t, p.figs, 1, p.status.Text)
		f := p.figs[0]
		assert.Equal(t, figures.RewardLabel, f.Plot.Y.Label.Text)
		assert.Contains(t, f.Plot.Title.Text, "reward ×100")
		assert.NotRegexp(t, `\bEM\b`, f.Plot.Title.Text+f.Plot.Y.Label.Text+strings.Join(f.Labels, " "))
		assert.Contains(t, f.Caption, figures.FakeRewardNote)
		assert.Contains(t, p.status.Text, "final reward ×100")
		assert.Contains(t, p.status.Text, figures.FakeRewardNote)
		assert.True(t, p.metric.Disabled(), "EM/F1 do not apply to WebShop")
		p.overlay.SetChecked(true)
	})
	u.wait()
	for _, c := range []string{chartAccuracy, chartPeak, chartTime, chartDependency, chartFrontier} {
		act(u, func() { p.choice.SetSelected(c) })
		u.wait()
		act(u, func() {
			require.Len(t, p.figs, 1, c)
			assert.Contains(t, p.figs[0].Labels, "MEM1-WebShop (paper, Table 2)", c)
			assert.NotContains(t, p.figs[0].Labels, "MEM1-QA (paper)", c)
			assert.Contains(t, p.figs[0].Caption, figures.Citation2, c)
			assert.Contains(t, p.status.Text, figures.Citation2, c)
			assert.Equal(t, 1, p.figs[0].Points, "%s: one group (mem1, one goal per task)", c)
		})
	}
	act(u, func() { p.choice.SetSelected(chartRewardTurns) })
	u.wait()
	act(u, func() {
		require.Len(t, p.figs, 1)
		f := p.figs[0]
		assert.Equal(t, "turns used", f.Plot.X.Label.Text)
		assert.Equal(t, figures.RewardLabel, f.Plot.Y.Label.Text)
		var want plotter.XYs
		for _, r := range rows {
			require.Equal(t, storage.StatusDone, r.Status)
			want = append(want, plotter.XY{X: float64(r.Turns), Y: 100 * r.EM})
		}
		require.Len(t, f.Scatter, 1)
		got := f.Scatter["mem1 · "+webshop.ScriptedModelName]
		byXY := func(xs plotter.XYs) {
			sort.Slice(xs, func(i, j int) bool { return xs[i].X < xs[j].X || xs[i].X == xs[j].X && xs[i].Y < xs[j].Y })
		}
		got = append(plotter.XYs(nil), got...)
		byXY(got)
		byXY(want)
		assert.Equal(t, want, got)
		assert.Equal(t, len(rows), f.Points)
		assert.NotContains(t, f.Caption, figures.Citation2, "the paper has no per-turn-count results")
	})
}

// TestChartsQAOverlayIsTable1: QA charts never draw Table 2.
func TestChartsQAOverlayIsTable1(t *testing.T) {
	u, p := chartsUI(t)
	for _, c := range []string{chartAccuracy, chartPeak, chartTime, chartDependency, chartFrontier} {
		act(u, func() {
			p.choice.SetSelected(c)
			p.overlay.SetChecked(true)
		})
		u.wait()
		act(u, func() {
			require.Len(t, p.figs, 1)
			for _, l := range p.figs[0].Labels {
				assert.NotContains(t, l, "Table 2", c)
			}
			assert.NotContains(t, p.figs[0].Caption, figures.Citation2, c)
			assert.NotContains(t, p.status.Text, figures.FakeRewardNote, c)
		})
	}
	act(u, func() { assert.False(t, p.metric.Disabled(), "EM/F1 apply to QA frontier charts") })
}

// Compare names a WebShop episode's score as its reward and its turns as
// shop actions, and the outcome as the two final rewards (a purchase has no
// gold answer to be right or wrong about).
func TestCompareWebShopInItsTerms(t *testing.T) {
	st, exp := webShopStore(t)
	ctx := context.Background()
	srv := httptest.NewServer(webshop.NewFakeServer())
	defer srv.Close()
	r := &webshop.Runner{Store: st, Model: webshop.Scripted{}}
	other, err := r.Run(ctx, "ws again", webshop.Config{EnvURL: srv.URL, Goals: []int{0}, Policy: core.PolicyFull,
		Model: webshop.ScriptedModelName, FakeReward: true})
	require.NoError(t, err)
	a, err := st.Rollouts(ctx, exp)
	require.NoError(t, err)
	b, err := st.Rollouts(ctx, other.Experiment)
	require.NoError(t, err)
	require.Equal(t, a[0].TaskKey, b[0].TaskKey)
	da, err := st.Rollout(ctx, a[0].ID)
	require.NoError(t, err)

	u, _ := newTestUI(t, st, nil)
	act(u, func() { u.OpenCompare(a[0].ID, b[0].ID) })
	u.wait()
	act(u, func() {
		p := u.compare
		assert.Contains(t, p.header.Text, "reward 1.00")
		assert.NotContains(t, p.header.Text, "EM ")
		require.NotEmpty(t, p.turns.rows)
		assert.Equal(t, "action: "+da.Turns[0].Query, p.turns.rows[0][2])
		last := p.turns.rows[len(da.Turns)-1][2]
		assert.Equal(t, "action: click[buy now] (ended the episode)", last)
		require.Len(t, p.outcome.rows, 1)
		assert.Equal(t, "final reward A 1.00 · B 1.00", p.outcome.rows[0][4])
	})
}

// TestTraceShowsWebShopMemoryBaseline: a WebShop rollout played under a
// memory baseline (mem0, scripted shopper and its hashed embeddings) shows,
// besides the episode's own <summary>, the baseline's memory section: the
// facts that entered the context and each turn's sub-calls.
func TestTraceShowsWebShopMemoryBaseline(t *testing.T) {
	st, err := storage.Open(filepath.Join(t.TempDir(), "lab.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	srv := httptest.NewServer(webshop.NewFakeServer())
	t.Cleanup(srv.Close)
	ctx := context.Background()
	sum, err := (&webshop.Runner{Store: st, Model: webshop.Scripted{}}).Run(ctx, "ws mem0",
		webshop.Config{EnvURL: srv.URL, Goals: []int{2}, Policy: core.PolicyMem0, Model: webshop.ScriptedModelName, FakeReward: true})
	require.NoError(t, err)
	require.Equal(t, 1, sum.Done)
	rows, err := st.Rollouts(ctx, sum.Experiment)
	require.NoError(t, err)
	d, err := st.Rollout(ctx, rows[0].ID)
	require.NoError(t, err)
	require.Greater(t, len(d.Turns), 2)
	second := d.Turns[1] // folds the first page: extractor, embeddings
	require.NotEmpty(t, second.SubCalls)

	u, _ := newTestUI(t, st, nil)
	act(u, func() { u.OpenRollout(d.ID) })
	u.wait()
	act(u, func() {
		tr := u.trace
		require.True(t, tr.loaded, tr.status.Text)
		assert.Contains(t, tr.header.Text, "policy mem0")
		assert.Equal(t, "Memory (<summary>)", tr.stateTitle.Text, "the episode's own memory keeps its label")
		tr.step(1)
		m := tr.memory
		require.True(t, m.box.Visible())
		require.Len(t, m.subcalls.Items, len(second.SubCalls))
		assert.Contains(t, m.subcalls.Items[0].Title, "extractor · "+webshop.SubCallEndpoint)
		assert.Equal(t, orDash(second.Memory, "(no memory entered the context this turn)"), m.payload.String())
		assert.Contains(t, m.changes.String(), "+ fact 0: ", "the first fact is listed as added")
	})
}

// TestChartsMixedFamiliesChartQA: a selection of a QA and a WebShop
// experiment is charted as QA: the WebShop rollouts are left out (a reward is
// not an EM) and the status says how many and how to chart them.
func TestChartsMixedFamiliesChartQA(t *testing.T) {
	st, qa, _ := oracleStore(t)
	srv := httptest.NewServer(webshop.NewFakeServer())
	t.Cleanup(srv.Close)
	sum, err := (&webshop.Runner{Store: st, Model: webshop.Scripted{}}).Run(context.Background(), "ws", webshop.Config{EnvURL: srv.URL, Goals: []int{0, 1, 2},
		Model: webshop.ScriptedModelName, FakeReward: true})
	require.NoError(t, err)
	u, _ := newTestUI(t, st, nil)
	act(u, func() {
		require.NoError(t, u.Show(ScreenCharts))
		u.charts.selectExperiments(qa, sum.Experiment)
	})
	u.wait()
	p := u.charts
	act(u, func() {
		require.Len(t, p.figs, 1, p.status.Text)
		assert.Equal(t, "EM (sum over objectives)", p.figs[0].Plot.Y.Label.Text, "charted as QA")
		assert.Contains(t, p.status.Text, "3 WebShop rollouts left out: a chart shows one task family")
		assert.False(t, p.metric.Disabled())
	})
}

// TestRolloutListNamesWebShopReward: a WebShop experiment's rollouts are
// listed with a Reward column where QA ones show EM.
func TestRolloutListNamesWebShopReward(t *testing.T) {
	st, exp := webShopStore(t)
	u, _ := newTestUI(t, st, nil)
	l := u.runs.rollouts
	act(u, func() { l.load(exp) })
	u.wait()
	act(u, func() {
		require.Len(t, l.table.rows, 6)
		assert.Equal(t, "Reward", l.table.headers[4])
		assert.Equal(t, "F1 (= reward)", l.table.headers[5])
		assert.Equal(t, "1.00", l.table.rows[0][4])
	})
}
