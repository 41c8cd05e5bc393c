package figures

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

func TestPaperTable2Embedded(t *testing.T) {
	rows, err := PaperTable2()
	require.NoError(t, err)
	assert.Equal(t, []WebShopPaperRow{
		{System: "AgentLM-7B", Reward: 63.60, PeakTokens: 2240, Dependency: 280000, TimeS: 3.91},
		{System: "AgentLM-13B", Reward: 70.80, PeakTokens: 2360, Dependency: 300000, TimeS: 5.23},
		{System: "MEM1-WebShop", Reward: 70.87, PeakTokens: 810, Dependency: 150000, TimeS: 2.61},
	}, rows)
}

// TestParsePaperTable2Errors: a malformed Table 2 file is refused with
// file:line, comment lines counted.
func TestParsePaperTable2Errors(t *testing.T) {
	const head = "# a comment\n# another\nsystem,reward,peak_tokens,dependency,time_s\n"
	for name, c := range map[string]struct{ text, want string }{
		"bad number":   {head + "A,63.6,2240,280000,3.91\nB,70.8,lots,300000,5.23\n", "t2.csv:5: peak_tokens \"lots\": want a non-negative number"},
		"negative":     {head + "A,63.6,2240,-1,3.91\n", "t2.csv:4: dependency \"-1\""},
		"fields":       {head + "A,63.6,2240\n", "t2.csv:4: 3 fields, want 5"},
		"reward scale": {head + "A,0.636,2240,280000,3.91\nB,163.6,2240,280000,3.91\n", "t2.csv:5: reward 163.6: want 0..100"},
		"header":       {"# c\nsystem,em,peak_tokens,dependency,time_s\nA,1,2,3,4\n", "t2.csv:2: header"},
		"no rows":      {head, "t2.csv:2: no rows"},
		"empty":        {"", "t2.csv:1: no header"},
		"quote":        {head + "A,\"63.6,2240,280000,3.91\n", "t2.csv:4:"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParsePaperTable2(strings.NewReader(c.text), "t2.csv")
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
		})
	}
	rows, err := ParsePaperTable2(strings.NewReader(head+"A,63.6,2240,280000,3.91\n"), "t2.csv")
	require.NoError(t, err)
	assert.Equal(t, []WebShopPaperRow{{System: "A", Reward: 63.6, PeakTokens: 2240, Dependency: 280000, TimeS: 3.91}}, rows)
}

// webShopData is two policies' WebShop results: one goal per task, the
// reward (0..1) in EM, with each rollout's turns.
func webShopData() Data {
	d := Data{WebShop: true}
	for pi, policy := range []string{"full", "mem1"} {
		d.Aggregates = append(d.Aggregates, experiments.Aggregate{
			GroupKey:        experiments.GroupKey{Model: "scripted", Policy: policy, Objectives: 1},
			Rollouts:        4,
			EM:              experiments.Stat{N: 4, Mean: 0.5 + 0.2*float64(pi), StdErr: 0.1},
			F1:              experiments.Stat{N: 4, Mean: 0.5 + 0.2*float64(pi), StdErr: 0.1},
			PeakTokens:      experiments.Stat{N: 4, Mean: 900, StdErr: 10},
			PaperPeakTokens: experiments.Stat{N: 4, Mean: 700 - 200*float64(pi), StdErr: 10},
			Dependency:      experiments.Stat{N: 4, Mean: 120000, StdErr: 1000},
			Seconds:         experiments.Stat{N: 4, Mean: 1.5, StdErr: 0.1},
			Turns:           experiments.Stat{N: 4, Mean: 4.5, StdErr: 0.2},
		})
		for _, r := range []RunPoint{{Turns: 4, Score: 1}, {Turns: 4, Score: 0.5}, {Turns: 5, Score: 0.25}, {Turns: 5, Score: 0.5}} {
			r.Model, r.Policy = "scripted", policy
			d.Runs = append(d.Runs, r)
		}
	}
	return d
}

func TestWebShopChartsSayRewardAndOverlayTable2(t *testing.T) {
	table2 := []string{"AgentLM-7B (paper, Table 2)", "AgentLM-13B (paper, Table 2)", "MEM1-WebShop (paper, Table 2)"}
	for _, k := range []Kind{Accuracy, Peak, Time, Dependency, Frontier} {
		t.Run(string(k), func(t *testing.T) {
			f, err := Build(webShopData(), Options{Kind: k, Overlay: true, Metric: "f1"})
			require.NoError(t, err)
			for _, l := range table2 {
				assert.Contains(t, f.Labels, l)
			}
			assert.Contains(t, f.Caption, Citation2)
			assert.NotContains(t, f.Caption, Citation, "no Table 1 on WebShop charts")
			for _, l := range f.Labels {
				assert.NotContains(t, l, "MEM1-QA")
			}
			text := f.Plot.Title.Text + " " + f.Plot.X.Label.Text + " " + f.Plot.Y.Label.Text + " " + strings.Join(f.Labels, " ")
			assert.NotRegexp(t, `\b(EM|F1)\b`, text, "WebShop charts never say EM or F1")
			assert.NotContains(t, f.Caption, FakeRewardNote, "not a fake-server experiment")
		})
	}
	f, err := Build(webShopData(), Options{Kind: Accuracy})
	require.NoError(t, err)
	assert.Equal(t, RewardLabel, f.Plot.Y.Label.Text)
	assert.Contains(t, f.Plot.Title.Text, "reward ×100")
	assert.NotContains(t, f.Caption, Citation2, "no overlay unless asked")
	f, err = Build(webShopData(), Options{Kind: Peak, Overlay: true, PeakCount: PeakRequest})
	require.NoError(t, err)
	assert.NotContains(t, f.Labels, table2[0], "the paper's peak is its own count")

	// The reward (×100) is what is drawn.
	f, err = Build(webShopData(), Options{Kind: Frontier})
	require.NoError(t, err)
	assert.Contains(t, f.Plot.Y.Label.Text, "reward ×100")
	assert.Greater(t, f.Plot.Y.Max, 50.0, "scores ×100, not 0..1")
}

// TestWebShopChartsByCategory: WebShop has one goal per task, so its
// per-objectives charts put one category per setting on x (named on the
// axis), then Table 2's systems when overlaid, instead of every point at
// x = 1; QA charts keep their objectives axis.
func TestWebShopChartsByCategory(t *testing.T) {
	for _, k := range []Kind{Accuracy, Peak, Time, Turns, Dependency} {
		f, err := Build(webShopData(), Options{Kind: k})
		require.NoError(t, err)
		assert.Equal(t, []string{"full", "mem1"}, f.Categories, "%s: one model: the policies name the categories", k)
		assert.Equal(t, "setting (WebShop: one goal per task)", f.Plot.X.Label.Text, k)
		assert.Contains(t, f.Plot.Title.Text, " by setting", k)
		assert.NotContains(t, f.Plot.Title.Text, "objectives", k)
		assert.Equal(t, 2, f.Points, k)
		ticks := f.Plot.X.Tick.Marker.Ticks(f.Plot.X.Min, f.Plot.X.Max)
		require.Len(t, ticks, 2, k)
		assert.Equal(t, plot.Tick{Value: 1, Label: "full"}, ticks[0])
		assert.Equal(t, plot.Tick{Value: 2, Label: "mem1"}, ticks[1])
		assert.InDelta(t, 0.5, f.Plot.X.Min, 1e-12)
		assert.InDelta(t, 2.5, f.Plot.X.Max, 1e-12)
	}
	f, err := Build(webShopData(), Options{Kind: Accuracy, Overlay: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"full", "mem1", "AgentLM-7B (paper)", "AgentLM-13B (paper)", "MEM1-WebShop (paper)"}, f.Categories)
	two := webShopData()
	two.Aggregates[1].Model = "qwen/Qwen2.5-7B"
	f2, err := Build(two, Options{Kind: Accuracy})
	require.NoError(t, err)
	assert.Equal(t, []string{"mem1 · Qwen2.5-7B", "full · scripted"}, f2.Categories, "two models: policy · model, by model then policy")
	assert.InDelta(t, 5.5, f.Plot.X.Max, 1e-12)
	assert.Equal(t, "Final reward ×100 by setting", f.Plot.Title.Text)
	f, err = Build(Data{WebShop: true}, Options{Kind: Accuracy})
	require.NoError(t, err)
	assert.Empty(t, f.Categories)
	assert.Contains(t, f.Plot.Title.Text, "by setting — no finished rollouts")

	qa, err := Build(fixedData(), Options{Kind: Accuracy})
	require.NoError(t, err)
	assert.Nil(t, qa.Categories)
	assert.Equal(t, "objectives (log₂)", qa.Plot.X.Label.Text)
}

func TestQAChartsKeepTable1(t *testing.T) {
	for _, k := range []Kind{Accuracy, Peak, Time, Frontier, Dependency} {
		f, err := Build(fixedData(), Options{Kind: k, Overlay: true, FakeReward: true})
		require.NoError(t, err)
		for _, l := range f.Labels {
			assert.NotContains(t, l, "Table 2", k)
		}
		assert.NotContains(t, f.Caption, Citation2, k)
		assert.NotContains(t, f.Caption, FakeRewardNote, "%s: QA data has no WebShop reward", k)
	}
	f, err := Build(fixedData(), Options{Kind: Accuracy})
	require.NoError(t, err)
	assert.Equal(t, "EM (sum over objectives)", f.Plot.Y.Label.Text)
}

func TestFakeRewardNoted(t *testing.T) {
	for _, k := range []Kind{Accuracy, Peak, Time, Dependency, Frontier, Turns, RewardTurns} {
		f, err := Build(webShopData(), Options{Kind: k, FakeReward: true})
		require.NoError(t, err)
		assert.Contains(t, f.Caption, FakeRewardNote, k)
	}
}

func TestRewardVsTurnsPoints(t *testing.T) {
	f, err := Build(webShopData(), Options{Kind: RewardTurns, Overlay: true})
	require.NoError(t, err)
	assert.Equal(t, 8, f.Points)
	want := plotter.XYs{{X: 4, Y: 100}, {X: 4, Y: 50}, {X: 5, Y: 25}, {X: 5, Y: 50}}
	assert.Equal(t, map[string]plotter.XYs{"full · scripted": want, "mem1 · scripted": want}, f.Scatter)
	assert.Equal(t, []string{"full · scripted", "full · scripted · mean per turn count", "mem1 · scripted", "mem1 · scripted · mean per turn count"}, f.Labels)
	assert.Equal(t, "Final reward ×100 vs turns used", f.Plot.Title.Text)
	assert.Equal(t, "turns used", f.Plot.X.Label.Text)
	assert.Equal(t, RewardLabel, f.Plot.Y.Label.Text)
	assert.NotContains(t, f.Caption, Citation2, "the paper has no per-turn-count results")
}

// rowsSource serves fixed rollout rows.
type rowsSource map[int64][]storage.RolloutRow

func (s rowsSource) Rollouts(_ context.Context, id int64) ([]storage.RolloutRow, error) {
	return s[id], nil
}
func (s rowsSource) EachTurnTokens(context.Context, []int64, func(storage.TurnTokens) error) error {
	return nil
}

func TestLoadWebShopRuns(t *testing.T) {
	ws := []storage.RolloutRow{
		{Dataset: core.FamilyWebShop, Policy: "mem1", Model: "m", Objectives: 1, Status: storage.StatusDone, EM: 0.75, F1: 0.75, Turns: 4},
		{Dataset: core.FamilyWebShop, Policy: "mem1", Model: "m", Objectives: 1, Status: storage.StatusFailed, Turns: 2},
		{Dataset: core.FamilyWebShop, Policy: "full", Model: "m", Objectives: 1, Status: storage.StatusDone, EM: 1, F1: 1, Turns: 5},
	}
	qa := []storage.RolloutRow{{Dataset: "hotpotqa", Policy: "mem1", Model: "m", Objectives: 2, Status: storage.StatusDone, EM: 2, Turns: 3}}
	src := rowsSource{1: ws, 2: qa}
	d, _, err := Load(context.Background(), src, []int64{1}, LoadOptions{ByModel: true})
	require.NoError(t, err)
	assert.True(t, d.WebShop)
	assert.Equal(t, []RunPoint{{Model: "m", Policy: "mem1", Turns: 4, Score: 0.75}, {Model: "m", Policy: "full", Turns: 5, Score: 1}}, d.Runs)
	d, _, err = Load(context.Background(), src, []int64{1}, LoadOptions{})
	require.NoError(t, err)
	assert.Equal(t, "", d.Runs[0].Model, "models pooled")
	for _, ids := range [][]int64{{2}, {1, 2}, {}} {
		d, _, err = Load(context.Background(), src, ids, LoadOptions{})
		require.NoError(t, err)
		assert.False(t, d.WebShop, "%v: not every rollout is a WebShop one", ids)
	}

	// A mixed selection charts its QA rollouts only: a reward must not pool
	// with a one-objective EM group; the webshop dataset filter charts the rest.
	qa1 := storage.RolloutRow{Dataset: "hotpotqa", Policy: "mem1", Model: "m", Objectives: 1, Status: storage.StatusDone, EM: 0, Turns: 2}
	src[3] = []storage.RolloutRow{qa1}
	d, datasets, err := Load(context.Background(), src, []int64{1, 3}, LoadOptions{ByModel: true})
	require.NoError(t, err)
	assert.False(t, d.WebShop)
	assert.Equal(t, 3, d.LeftOutWebShop)
	require.Len(t, d.Aggregates, 1)
	assert.Equal(t, 1, d.Aggregates[0].Rollouts, "the QA rollout alone")
	assert.InDelta(t, 0, d.Aggregates[0].EM.Mean, 1e-12, "no reward pooled into the EM")
	assert.Equal(t, []RunPoint{{Model: "m", Policy: "mem1", Turns: 2, Score: 0}}, d.Runs)
	assert.Equal(t, []string{"hotpotqa", core.FamilyWebShop}, datasets, "the filter still offers webshop")
	d, _, err = Load(context.Background(), src, []int64{1, 3}, LoadOptions{Dataset: core.FamilyWebShop})
	require.NoError(t, err)
	assert.True(t, d.WebShop)
	assert.Zero(t, d.LeftOutWebShop)
}

func TestWebShopConfig(t *testing.T) {
	for cfg, want := range map[string][2]bool{
		`{"family":"webshop","fake_reward":true}`: {true, true},
		`{"family":"webshop"}`:                    {true, false},
		`{"family":"qa","fake_reward":true}`:      {false, false},
		`{"dataset":"hotpotqa"}`:                  {false, false},
		`not json`:                                {false, false},
	} {
		ws, fake := WebShopConfig(cfg)
		assert.Equal(t, want, [2]bool{ws, fake}, cfg)
	}
}

func TestPaperCaptionWebShop(t *testing.T) {
	exps := []storage.ExperimentRow{{ID: 1, Name: "ws", ConfigJSON: `{"family":"webshop","fake_reward":true}`}}
	c := PaperCaption(exps, webShopData().Aggregates, nil, Options{})
	assert.Contains(t, c, "(a) final reward ×100 per setting (policy and model)")
	assert.Contains(t, c, "no product-type term")
	assert.NotContains(t, c, "(a) EM")
	qa := PaperCaption([]storage.ExperimentRow{{ID: 2, ConfigJSON: `{"dataset":"hotpotqa"}`}}, fixedData().Aggregates, nil, Options{})
	assert.Contains(t, qa, "(a) EM (summed over objectives)")
	assert.NotContains(t, qa, "product-type")
}

func TestCaptionWrapsAtSeparators(t *testing.T) {
	f, err := Build(webShopData(), Options{Kind: Accuracy, Overlay: true, FakeReward: true})
	require.NoError(t, err)
	sty := f.Legend.TextStyle
	wide := wrapCaption(f.Caption, sty, 1e6)
	assert.Equal(t, f.Caption, wide, "one line when it fits")
	narrow := wrapCaption(f.Caption, sty, sty.Width(FakeRewardNote)+1)
	lines := strings.Split(narrow, "\n")
	assert.Equal(t, []string{BarsCaption(Options{}), Citation2, FakeRewardNote}, lines)
	assert.Equal(t, f.Caption, strings.Join(lines, " · "), "nothing lost")
}
