package figures

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"image/png"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

const model = "Mem-Lab/Qwen2.5-7B-RL-RAG-Q2-EM-Release"

// fixedData is a small fixed result set: mem1 and full at 1, 2, 4, 8, 16
// objectives, and a context curve per policy.
func fixedData() Data {
	var d Data
	for pi, policy := range []string{"full", "mem1"} {
		for i, n := range []int{1, 2, 4, 8, 16} {
			em := float64(n) * (0.6 - 0.2*float64(pi)) / float64(i+1)
			d.Aggregates = append(d.Aggregates, experiments.Aggregate{
				GroupKey:   experiments.GroupKey{Model: model, Policy: policy, Objectives: n},
				Rollouts:   10,
				EM:         experiments.Stat{N: 10, Mean: em, StdErr: 0.1},
				F1:         experiments.Stat{N: 10, Mean: em * 1.2, StdErr: 0.12},
				PeakTokens: experiments.Stat{N: 10, Mean: float64(600 + 200*n*(1-pi) + 40*n*pi), StdErr: 20},
				// The paper's count leaves out the prompt and skips Exact_match-0 rollouts.
				PaperPeakTokens: experiments.Stat{N: 8, Mean: float64(300 + 150*n*(1-pi) + 30*n*pi), StdErr: 15},
				Seconds:         experiments.Stat{N: 10, Mean: float64(n) * 0.7, StdErr: 0.05},
				Turns:           experiments.Stat{N: 10, Mean: float64(n + 1), StdErr: 0.1},
				Dependency:      experiments.Stat{N: 8, Mean: float64(5000 * n * (2 - pi)), StdErr: 100},
			})
			d.Runs = append(d.Runs, RunPoint{Model: model, Policy: policy, Turns: n + 1, Score: em})
		}
		c := experiments.ContextCurve{GroupKey: experiments.GroupKey{Model: model, Policy: policy, Objectives: 4}}
		for turn := 1; turn <= 5; turn++ {
			c.Points = append(c.Points, experiments.ContextPoint{Turn: turn,
				Tokens: experiments.Stat{N: 5, Mean: float64(500 + turn*300*(1-pi) + 30*turn), StdErr: 25}})
		}
		d.Curves = append(d.Curves, c)
	}
	return d
}

func TestSVGHasSeriesLabels(t *testing.T) {
	for _, k := range Kinds {
		t.Run(string(k), func(t *testing.T) {
			f, err := Build(fixedData(), Options{Kind: k, Overlay: true})
			require.NoError(t, err)
			var buf bytes.Buffer
			require.NoError(t, f.Write(&buf, "svg", DoubleColumn, 0, nil))
			svg := html.UnescapeString(buf.String())
			assert.True(t, strings.HasPrefix(strings.TrimSpace(svg), "<?xml"), "not an SVG document")
			assert.Contains(t, svg, "<svg")
			assert.Contains(t, svg, f.Plot.Title.Text)
			want := []string{"mem1 · Qwen2.5-7B-RL-RAG-Q2-EM-Release", "full · Qwen2.5-7B-RL-RAG-Q2-EM-Release"}
			if k == Context {
				want = []string{"mem1 · Qwen2.5-7B-RL-RAG-Q2-EM-Release, n=4", "full · Qwen2.5-7B-RL-RAG-Q2-EM-Release, n=4"}
			}
			for _, l := range want {
				assert.Contains(t, f.Labels, l)
				assert.Contains(t, svg, l)
			}
			overlay := k != Context && k != Turns && k != Dependency && k != RewardTurns // Table 1 has no dependency
			if overlay {
				assert.Contains(t, f.Caption, Citation)
			}
			for _, l := range []string{"MEM1-QA (paper)", "Search-R1 (paper)", "collapsed (paper)", Citation} {
				if overlay {
					assert.Contains(t, svg, l)
				} else {
					assert.NotContains(t, svg, l)
				}
			}
		})
	}
}

// TestPeakAxisNamesItsCount: the peak chart draws the paper's count by
// default with the overlay, and the request count with an axis that says so
// and no paper overlay; groups without a paper peak are not drawn at 0.
func TestPeakAxisNamesItsCount(t *testing.T) {
	d := fixedData()
	f, err := Build(d, Options{Kind: Peak, Overlay: true})
	require.NoError(t, err)
	assert.Equal(t, PeakPaperLabel, f.Plot.Y.Label.Text)
	assert.Contains(t, f.Labels, "MEM1-QA (paper)")
	assert.Equal(t, 10, f.Points)

	f, err = Build(d, Options{Kind: Peak, Overlay: true, PeakCount: PeakRequest})
	require.NoError(t, err)
	assert.Equal(t, PeakRequestLabel, f.Plot.Y.Label.Text)
	assert.NotContains(t, f.Labels, "MEM1-QA (paper)", "the paper's numbers are not a request count")
	assert.NotContains(t, f.Caption, Citation, "no paper citation without the overlay")

	f, err = Build(d, Options{Kind: Frontier, Overlay: true, PeakCount: PeakRequest})
	require.NoError(t, err)
	assert.Equal(t, PeakRequestLabel, f.Plot.X.Label.Text)
	assert.NotContains(t, f.Labels, "MEM1-QA (paper)")
	f, err = Build(d, Options{Kind: Frontier, Overlay: true})
	require.NoError(t, err)
	assert.Equal(t, PeakPaperLabel, f.Plot.X.Label.Text)
	assert.Contains(t, f.Labels, "MEM1-QA (paper)")

	// Every mem1 rollout at n=16 scored Exact_match 0: that point is left out.
	for i := range d.Aggregates {
		if d.Aggregates[i].Policy == "mem1" && d.Aggregates[i].Objectives == 16 {
			d.Aggregates[i].PaperPeakTokens = experiments.Stat{}
		}
	}
	f, err = Build(d, Options{Kind: Peak})
	require.NoError(t, err)
	assert.Equal(t, 9, f.Points)
}

func TestOverlayOffHasNoPaperSeries(t *testing.T) {
	f, err := Build(fixedData(), Options{Kind: Accuracy})
	require.NoError(t, err)
	assert.Equal(t, []string{"full · Qwen2.5-7B-RL-RAG-Q2-EM-Release", "mem1 · Qwen2.5-7B-RL-RAG-Q2-EM-Release"}, f.Labels)
	assert.Equal(t, 10, f.Points)
}

func TestPDFHeaderAndPageCount(t *testing.T) {
	f, err := Build(fixedData(), Options{Kind: Accuracy, Overlay: true, Metric: "f1", PerObjective: true})
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, f.Write(&buf, "pdf", SingleColumn, 0, nil))
	b := buf.Bytes()
	require.True(t, bytes.HasPrefix(b, []byte("%PDF-1.")), "header %q", b[:min(8, len(b))])
	assert.Contains(t, string(b[max(0, len(b)-64):]), "%%EOF")
	pages := regexp.MustCompile(`/Type\s*/Page[^s]`).FindAll(b, -1)
	assert.Len(t, pages, 1, "one page")
	counts := regexp.MustCompile(`/Count\s+(\d+)`).FindAllSubmatch(b, -1)
	require.NotEmpty(t, counts)
	assert.Equal(t, "1", string(counts[0][1]))
}

func TestPNGDecodesAtDPI(t *testing.T) {
	f, err := Build(fixedData(), Options{Kind: Peak, Overlay: true})
	require.NoError(t, err)
	for _, dpi := range []int{100, 200} {
		var buf bytes.Buffer
		require.NoError(t, f.Write(&buf, "png", SingleColumn, dpi, nil))
		img, err := png.Decode(&buf)
		require.NoError(t, err)
		// 3.5 in × 3.2 in at dpi.
		assert.Equal(t, int(3.5*float64(dpi)+0.5), img.Bounds().Dx(), "width at %d dpi", dpi)
		assert.Equal(t, int(3.2*float64(dpi)+0.5), img.Bounds().Dy(), "height at %d dpi", dpi)
	}
}

func TestRenderFollowsSize(t *testing.T) {
	f, err := Build(fixedData(), Options{Kind: Frontier, Overlay: true})
	require.NoError(t, err)
	for _, sz := range [][2]int{{640, 400}, {1200, 700}, {300, 500}} {
		img := f.Render(sz[0], sz[1], 1.5, nil)
		assert.Equal(t, sz[0], img.Bounds().Dx())
		assert.Equal(t, sz[1], img.Bounds().Dy())
	}
	assert.Equal(t, 1, f.Render(0, 10, 1, nil).Bounds().Dx())
}

func TestEmptyDataStillDraws(t *testing.T) {
	for _, k := range Kinds {
		f, err := Build(Data{}, Options{Kind: k})
		require.NoError(t, err, k)
		assert.Contains(t, f.Plot.Title.Text, "no finished rollouts")
		var buf bytes.Buffer
		require.NoError(t, f.Write(&buf, "png", SingleColumn, 72, nil), k)
		_, err = png.Decode(&buf)
		require.NoError(t, err)
	}
}

func TestBadInput(t *testing.T) {
	_, err := Build(fixedData(), Options{Kind: "pie"})
	assert.ErrorIs(t, err, ErrUnknownKind)
	_, err = Build(fixedData(), Options{Kind: Accuracy, Metric: "bleu"})
	assert.Error(t, err)
	_, err = ParseKind("pie")
	assert.ErrorContains(t, err, "accuracy, peak, context, frontier")
	_, err = FormatOf("fig.jpeg")
	assert.ErrorContains(t, err, "fig.jpeg")
	got, err := FormatOf("out/Fig.PDF")
	require.NoError(t, err)
	assert.Equal(t, "pdf", got)
}

func TestPaperTable(t *testing.T) {
	rows, err := PaperTable1()
	require.NoError(t, err)
	require.Len(t, rows, 21)
	var mem1, collapsed int
	for _, r := range rows {
		if r.System == "MEM1-QA" {
			mem1++
			if r.Objectives == 16 {
				assert.Equal(t, 1.97, r.EM)
				assert.Equal(t, 1040.0, r.PeakTokens)
			}
		}
		if r.Collapsed {
			collapsed++
		}
	}
	assert.Equal(t, 3, mem1)
	assert.Equal(t, 3, collapsed)
	_, err = ParsePaperTable(strings.NewReader("system,objectives,em,f1,peak_tokens,peak_tokens_sd,time_s,time_s_sd,collapsed\nX,two,1,1,1,1,1,1,false\n"), "t.csv")
	assert.ErrorContains(t, err, "t.csv:2: objectives")
}

// BenchmarkRedraw10k builds and renders a context chart of 10,000 points (50
// curves × 200 turns) into a 1200×800 raster, the app's redraw path.
func BenchmarkRedraw10k(b *testing.B) {
	var d Data
	for c := 0; c < 50; c++ {
		cur := experiments.ContextCurve{GroupKey: experiments.GroupKey{Policy: fmt.Sprintf("p%02d", c), Objectives: 1 << (c % 5)}}
		for turn := 1; turn <= 200; turn++ {
			cur.Points = append(cur.Points, experiments.ContextPoint{Turn: turn,
				Tokens: experiments.Stat{N: 8, Mean: float64(400 + c*10 + turn*(c%7)), StdErr: 15}})
		}
		d.Curves = append(d.Curves, cur)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f, err := Build(d, Options{Kind: Context})
		if err != nil {
			b.Fatal(err)
		}
		if f.Points != 10000 {
			b.Fatalf("%d points", f.Points)
		}
		_ = f.Render(1200, 800, 1, nil)
	}
}

// fakeSource serves two experiments' rows and turn tokens.
type fakeSource struct {
	rows  map[int64][]storage.RolloutRow
	turns []storage.TurnTokens
}

func (f fakeSource) Rollouts(_ context.Context, id int64) ([]storage.RolloutRow, error) {
	rs, ok := f.rows[id]
	if !ok {
		return nil, fmt.Errorf("no experiment %d", id)
	}
	return rs, nil
}

func (f fakeSource) EachTurnTokens(_ context.Context, ids []int64, fn func(storage.TurnTokens) error) error {
	for _, t := range f.turns {
		if err := fn(t); err != nil {
			return err
		}
	}
	return nil
}

func TestLoadFiltersByDataset(t *testing.T) {
	src := fakeSource{rows: map[int64][]storage.RolloutRow{
		1: {{Dataset: "hotpotqa", Policy: "mem1", Model: "m", Objectives: 2, Status: storage.StatusDone, EM: 2},
			{Dataset: "nq", Policy: "mem1", Model: "m", Objectives: 2, Status: storage.StatusDone, EM: 0}},
		2: {{Dataset: "musique", Policy: "full", Model: "m", Objectives: 4, Status: storage.StatusDone, EM: 1}},
	}, turns: []storage.TurnTokens{{Dataset: "nq", Policy: "mem1", Objectives: 2, PromptTokens: 10},
		{Dataset: "hotpotqa", Policy: "mem1", Objectives: 2, PromptTokens: 30}}}
	d, ds, err := Load(context.Background(), src, []int64{1, 2}, LoadOptions{Curves: true})
	require.NoError(t, err)
	assert.Equal(t, []string{"hotpotqa", "musique", "nq"}, ds)
	require.Len(t, d.Aggregates, 2)
	assert.Equal(t, 1.0, d.Aggregates[1].EM.Mean, "mem1: (2 + 0) / 2")
	assert.Equal(t, "", d.Aggregates[0].Model, "models pooled")
	require.Len(t, d.Curves, 1)
	assert.Equal(t, 20.0, d.Curves[0].Points[0].Tokens.Mean)

	d, _, err = Load(context.Background(), src, []int64{1}, LoadOptions{Dataset: "hotpotqa", ByModel: true, Curves: true})
	require.NoError(t, err)
	require.Len(t, d.Aggregates, 1)
	assert.Equal(t, 2.0, d.Aggregates[0].EM.Mean)
	assert.Equal(t, "m", d.Aggregates[0].Model)
	assert.Equal(t, 30.0, d.Curves[0].Points[0].Tokens.Mean)

	_, _, err = Load(context.Background(), src, []int64{9}, LoadOptions{})
	assert.ErrorContains(t, err, "no experiment 9")
}

// TestErrorBars: bars are 95% t intervals by default and ±1 SE on request,
// and the caption says which. By hand: N = 4, SE = 2 → t_{.975,3} = 3.182446305284263,
// half-width 6.364892610568526.
func TestErrorBars(t *testing.T) {
	st := experiments.Stat{N: 4, Mean: 10, StdErr: 2}
	assert.InDelta(t, 2*3.182446305284263, half(st, Options{}), 1e-9)
	assert.InDelta(t, 2, half(st, Options{Bars: BarsSE}), 1e-12)
	assert.Zero(t, half(experiments.Stat{N: 1, Mean: 3}, Options{}), "no interval from one task")
	aggs := []experiments.Aggregate{{GroupKey: experiments.GroupKey{Policy: "mem1", Objectives: 2}, Rollouts: 4, EM: st}}
	f, err := Build(Data{Aggregates: aggs}, Options{Kind: Accuracy})
	require.NoError(t, err)
	assert.Contains(t, f.Caption, "95% CI")
	f, err = Build(Data{Aggregates: aggs}, Options{Kind: Accuracy, Bars: BarsSE, Overlay: true})
	require.NoError(t, err)
	assert.Contains(t, f.Caption, "standard error")
	assert.Contains(t, f.Caption, Citation)
	_, err = Build(Data{Aggregates: aggs}, Options{Kind: Accuracy, Bars: "sd"})
	assert.Error(t, err)
}
