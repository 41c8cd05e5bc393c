package views

import (
	"context"
	"fmt"
	"html"
	"image"
	"image/color"
	"regexp"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

var textRE = regexp.MustCompile(`<text[^>]*>([^<]*)</text>`)

// renderedText is every text the canvas draws, in markup order.
func renderedText(c fyne.Canvas) []string {
	var out []string
	for _, m := range textRE.FindAllStringSubmatch(test.RenderToMarkup(c), -1) {
		out = append(out, html.UnescapeString(m[1]))
	}
	return out
}

func hasText(c fyne.Canvas, want string) bool {
	for _, s := range renderedText(c) {
		if strings.Contains(s, want) {
			return true
		}
	}
	return false
}

// richText is the plain text of a RichText.
func richText(r *widget.RichText) string { return r.String() }

// findCells returns the table cells currently rendered under o.
func findCells(o fyne.CanvasObject) []*tableCell {
	var out []*tableCell
	var walk func(fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		if !o.Visible() {
			return
		}
		if c, ok := o.(*tableCell); ok {
			out = append(out, c)
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
	return out
}

func TestNavigationAndShortcuts(t *testing.T) {
	u, w := newTestUI(t, newFakeStore(), nil)
	assert.Equal(t, ScreenData, u.Current())
	assert.Same(t, u.data.content, u.stack.Objects[0])

	act(u, func() { require.NoError(t, u.Show(ScreenRuns)) })
	u.wait() // Runs reloads in the background; render only once that has applied
	assert.Equal(t, ScreenRuns, u.Current())
	assert.Same(t, u.runs.content, u.stack.Objects[0])
	assert.True(t, hasText(w.Canvas(), "Experiments"), "Runs screen is drawn")
	assert.False(t, hasText(w.Canvas(), "Try a BM25 query"), "Data screen is hidden")

	err := u.Show("Nowhere")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"Nowhere"`)
	assert.Equal(t, ScreenRuns, u.Current())

	// Tapping the navigation list switches too.
	act(u, func() { u.nav.Select(2) })
	assert.Equal(t, ScreenNewRun, u.Current())

	keys := []fyne.KeyName{fyne.Key1, fyne.Key2, fyne.Key3, fyne.Key4, fyne.Key5}
	panels := []fyne.CanvasObject{u.data.content, u.endpoints.content, u.run.content, u.runs.content, u.rollouts.content}
	for _, i := range []int{4, 0, 3, 1, 2} {
		act(u, func() {
			w.canvas.TypedShortcut(&desktop.CustomShortcut{KeyName: keys[i], Modifier: fyne.KeyModifierShortcutDefault})
		})
		assert.Equal(t, Screens[i], u.Current(), "Ctrl+%d", i+1)
		assert.Same(t, panels[i], u.stack.Objects[0], "Ctrl+%d", i+1)
	}
}

func TestDataPanelCountsPreviewAndSearch(t *testing.T) {
	st := newFakeStore()
	u, w := newTestUI(t, st, nil)
	c := w.Canvas()

	require.Len(t, u.data.counts.rows, len(st.datasets))
	for i, d := range st.datasets {
		assert.Equal(t, []string{d.Name, fmt.Sprint(d.Questions), fmt.Sprint(d.Passages)}, u.data.counts.rows[i])
	}
	assert.True(t, hasText(c, "7405"), "passage count is drawn")

	act(u, func() { u.data.counts.selectRow(0) })
	u.wait()
	require.Len(t, u.data.questions, previewQuestions, "preview stops at 50 of 60 questions")
	assert.Equal(t, [][2]int{{0, previewQuestions}}, st.questionCalls)
	assert.Equal(t, st.questions["hotpotqa"][0].Question, u.data.preview.rows[0][1])
	assert.Equal(t, "answer 7 | alias 7", u.data.preview.rows[7][2])
	assert.Equal(t, "hotpotqa: first 50 questions (select one to read it whole)", u.data.previewTitle.Text)
	assert.True(t, hasText(c, "Which magazine was started first"), "question is drawn")

	act(u, func() {
		test.Type(u.data.query, "Oberoi head office")
		test.Tap(u.data.searchBt)
	})
	u.wait()
	assert.Equal(t, []string{"Oberoi head office"}, st.searches)
	assert.Equal(t, []int{3}, st.searchK, "MEM1 shows the top-3 passages")
	require.NotEmpty(t, u.data.passages)
	lines := strings.Split(richText(u.data.results), "\n")
	require.Len(t, lines, len(u.data.passages))
	for i, p := range u.data.passages {
		assert.Equal(t, fmt.Sprintf("Doc %d(Title: \"%s\") %s", i+1, p.Title, p.Text), lines[i])
	}
	assert.True(t, hasText(c, `Doc 1(Title: "The Oberoi Group")`), "passage is drawn: %v", renderedText(c))

	st.mu.Lock()
	st.searchErr = errBM25
	st.mu.Unlock()
	act(u, func() { u.data.query.OnSubmitted(u.data.query.Text) })
	u.wait()
	assert.Contains(t, u.data.status.Text, errBM25.Error())
	assert.False(t, u.data.searchBt.Disabled(), "search can be retried")
}

func TestRunFormValidation(t *testing.T) {
	r := newFakeRunner(nil, experiments.Summary{})
	u, _ := newTestUI(t, newFakeStore(), r)
	act(u, func() { require.NoError(t, u.Show(ScreenNewRun)) })
	u.wait() // showing a screen reloads it in the background
	p := u.run

	cfg, err := p.config()
	require.NoError(t, err, "defaults are valid")
	want := defaultRun()
	assert.Equal(t, want, cfg, "the form round-trips the default run")

	p.objectives.SetText("two")
	p.temperature.SetText("hot")
	p.topP.SetText("1.5")
	p.concurrency.SetText("0")
	p.seed.SetText("1e3")
	p.endpoint.SetText("localhost:8000")
	test.Tap(p.runBt)
	msg := p.errors.Text
	for _, part := range []string{
		`Objectives: "two" is not a whole number`,
		`Temperature: "hot" is not a number`,
		// The rules and their words are RunConfig.Validate's (one validation source).
		`Top-p: 1.5: want a value in (0, 1], or 0 to send none`,
		`Concurrency: 0: want 1..256`,
		`Seed: "1e3" is not a whole number`,
		`Endpoint URL: "localhost:8000": scheme must be http or https`,
	} {
		assert.Contains(t, msg, part)
	}
	assert.NotContains(t, msg, "Max tokens", "valid fields are not reported")
	assert.Empty(t, r.started, "nothing ran")
	assert.False(t, p.runBt.Disabled())

	p.objectives.SetText("3")
	p.temperature.SetText("0")
	p.topP.SetText("1")
	p.concurrency.SetText("4")
	p.seed.SetText("-7")
	p.endpoint.SetText("https://example.org/v1")
	cfg, err = p.config()
	require.NoError(t, err)
	assert.Equal(t, 3, cfg.Objectives)
	assert.Equal(t, int64(-7), cfg.Seed)
	assert.Equal(t, 4, cfg.Concurrency)
	assert.Equal(t, "https://example.org/v1", cfg.Endpoint)
}

func TestRunProgressAndSummary(t *testing.T) {
	st := newFakeStore()
	sum := experiments.Summary{Experiment: 3, Groups: []experiments.Group{
		{Policy: "mem1", Objectives: 2, Rollouts: 4, Failed: 1, MeanEM: 0.75, MeanF1: 1.125, MeanPeakTokens: 912, MeanSeconds: 3.25},
	}}
	steps := []experiments.Progress{
		{Experiment: 3, Total: 4, Running: 2},
		{Experiment: 3, Total: 4, Done: 2, Failed: 1, Running: 1, Turns: 9},
	}
	r := newFakeRunner(steps, sum)
	u, w := newTestUI(t, st, r)
	act(u, func() { require.NoError(t, u.Show(ScreenNewRun)) })
	u.wait() // showing a screen reloads it in the background
	p := u.run
	p.objectives.SetText("2")
	p.tasks.SetText("4")
	before := st.experimentCalls()

	act(u, func() { test.Tap(p.runBt) })
	cfg := <-r.started
	assert.Equal(t, 4, cfg.Tasks)
	assert.Equal(t, "hotpotqa", cfg.Dataset)
	for _, s := range steps {
		got := <-r.stepped
		assert.InDelta(t, float64(s.Done+s.Failed)/float64(s.Total), p.bar.Value, 1e-9)
		assert.Equal(t, progressText(got), p.progress.Text)
		assert.True(t, p.runBt.Disabled(), "one run at a time")
		assert.False(t, p.cancelBt.Disabled())
		r.proceed <- struct{}{}
	}
	assert.NoError(t, <-r.ended)
	u.wait()

	assert.Equal(t, "2 done, 1 failed, 1 running of 4 · 9 turns", strings.TrimPrefix(p.progress.Text, "Experiment #3: "))
	assert.Equal(t, 0.75, p.bar.Value, "the bar shows what finished, not a blanket 100%")
	assert.Contains(t, p.status.Text, "experiment #3")
	require.Len(t, p.summary.rows, 1)
	assert.Equal(t, []string{"mem1", "2", "4", "1", "0.750", "1.125", "912", "3.2"}, p.summary.rows[0])
	assert.True(t, hasText(w.Canvas(), "1.125"), "summary is drawn")
	assert.False(t, p.runBt.Disabled())
	assert.True(t, p.cancelBt.Disabled())
	assert.Greater(t, st.experimentCalls(), before, "runs list refreshed")
}

func TestRunCancel(t *testing.T) {
	r := newFakeRunner(nil, experiments.Summary{Experiment: 5})
	r.waitCancel = true
	u, _ := newTestUI(t, newFakeStore(), r)
	p := u.run

	act(u, func() { test.Tap(p.runBt) })
	<-r.started
	require.False(t, p.cancelBt.Disabled())
	act(u, func() { test.Tap(p.cancelBt) })
	assert.ErrorIs(t, <-r.ended, context.Canceled)
	u.wait()
	assert.Contains(t, p.status.Text, "cancelled")
	assert.Contains(t, p.status.Text, "#5")
	assert.False(t, p.runBt.Disabled(), "a new run can start")
	assert.Nil(t, p.cancel)
}

func TestRunsRolloutsOpenInTrace(t *testing.T) {
	st := newFakeStore()
	u, w := newTestUI(t, st, nil)
	act(u, func() { require.NoError(t, u.Show(ScreenRuns)) })
	u.wait() // showing a screen reloads it in the background
	rp := u.runs
	require.Len(t, rp.table.rows, len(st.exps))
	assert.Equal(t, []string{"#1 mem1 n2 smoke", "2025-06-01 09:30", "running", "1 done, 0 failed of 2", "1.000"},
		[]string{rp.table.rows[1][0], st.exps[1].CreatedAt.Format("2006-01-02 15:04"), rp.table.rows[1][2], rp.table.rows[1][3], rp.table.rows[1][4]})

	act(u, func() { rp.table.selectRow(1) })
	u.wait()
	l := rp.rollouts
	require.Len(t, l.rows(), 2)
	assert.Equal(t, []string{"hotpotqa/n2/0000", "mem1", "Mem-Lab/Qwen2.5-7B-RL-RAG-Q2-EM-Release", "2", "1.00", "1.00", "855", "3", "done", "", ""}, l.table.rows[0], "paper peak not computed")
	assert.True(t, l.openBt.Disabled(), "nothing selected yet")
	assert.Empty(t, u.rollouts.pick.Selected, "Rollouts keeps its own experiment filter; picking in Runs does not change it (defect 15)")

	act(u, func() { l.table.selectRow(0) })
	require.False(t, l.openBt.Disabled())
	act(u, func() { test.Tap(l.openBt) })
	u.wait()
	assert.Equal(t, ScreenTrace, u.Current())
	assert.Equal(t, int64(11), u.trace.detail.ID)
	assert.Equal(t, "turn 1 of 3", u.trace.turnLabel.Text)
	assert.True(t, hasText(w.Canvas(), "turn 1 of 3"))

	// ↓ opens the next rollout of the list Trace came from.
	w.pressKey(t, u, fyne.KeyDown)
	u.wait()
	assert.Equal(t, int64(12), u.trace.detail.ID)
	assert.Equal(t, "turn 1 of 1", u.trace.turnLabel.Text)

	// Double-clicking a row in the Rollouts screen opens it too.
	act(u, func() { require.NoError(t, u.Show(ScreenRollouts)) })
	u.wait()
	require.Len(t, u.rollouts.list.shown, 2)
	var target *tableCell
	for _, c := range findCells(u.rollouts.list.table.table) {
		if c.Text == "hotpotqa/n2/0000" {
			target = c
		}
	}
	require.NotNil(t, target, "rollout row is drawn")
	act(u, func() { test.DoubleTap(target) })
	u.wait()
	assert.Equal(t, ScreenTrace, u.Current())
	assert.Equal(t, int64(11), u.trace.detail.ID)

	// The status filter narrows the table.
	act(u, func() { u.rollouts.status.SetSelected("running") })
	u.wait()
	require.Len(t, u.rollouts.list.shown, 1)
	assert.Equal(t, int64(12), u.rollouts.list.shown[0].ID)
}

func (l *rolloutList) rows() [][]string { return l.table.rows }

func TestTraceStepping(t *testing.T) {
	st := newFakeStore()
	u, w := newTestUI(t, st, nil)
	act(u, func() { u.OpenRollout(11) })
	u.wait()
	tp := u.trace
	turns := st.details[11].Turns
	check := func(i int) {
		t.Helper()
		assert.Equal(t, fmt.Sprintf("turn %d of %d", i+1, len(turns)), tp.turnLabel.Text)
		assert.Equal(t, turns[i].InternalState, richText(tp.state))
		assert.Equal(t, turns[i].Context, richText(tp.sent))
		assert.Equal(t, i, tp.chart.current)
		if turns[i].Information != "" {
			assert.Equal(t, turns[i].Information, richText(tp.information))
		}
		if turns[i].Query != "" {
			assert.Equal(t, turns[i].Query, tp.query.Text)
		}
	}
	check(0)
	assert.True(t, tp.prev.Disabled())
	assert.True(t, hasText(w.Canvas(), "Oberoi head office"), "internal state is drawn")

	act(u, func() { test.Tap(tp.next) })
	check(1)
	assert.True(t, hasText(w.Canvas(), "turn 2 of 3"))
	w.pressKey(t, u, fyne.KeyRight)
	check(2)
	assert.True(t, tp.next.Disabled())
	w.pressKey(t, u, fyne.KeyRight) // stays on the last turn
	check(2)
	w.pressKey(t, u, fyne.KeyLeft)
	check(1)
	w.pressKey(t, u, fyne.KeyHome)
	check(0)
	w.pressKey(t, u, fyne.KeyEnd)
	check(2)
	act(u, func() { test.Tap(tp.prev) })
	check(1)
	act(u, func() { test.Tap(tp.first) })
	check(0)

	// Arrow keys do nothing on other screens.
	act(u, func() { require.NoError(t, u.Show(ScreenData)) })
	w.pressKey(t, u, fyne.KeyRight)
	check(0)
}

// highlightX is the mean x of the chart's highlighted pixels (-1 when none).
func highlightX(img image.Image) float64 {
	var sum, n float64
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if color.NRGBAModel.Convert(img.At(x, y)) == highlightColor {
				sum += float64(x)
				n++
			}
		}
	}
	if n == 0 {
		return -1
	}
	return sum / n
}

func TestTokenChartHighlightsCurrentTurn(t *testing.T) {
	test.NewTempApp(t)
	tokens := []int{553, 855, 718}
	fg := color.Black
	var xs []float64
	for cur := range tokens {
		img := drawTokenChart(tokens, cur, 300, 150, 1, fg, 0, 0)
		require.Equal(t, image.Rect(0, 0, 300, 150), img.Bounds())
		xs = append(xs, highlightX(img))
	}
	assert.Greater(t, xs[0], 0.0, "turn 1 highlighted")
	assert.Less(t, xs[0], xs[1])
	assert.Less(t, xs[1], xs[2])
	assert.Equal(t, -1.0, highlightX(drawTokenChart(tokens, -1, 300, 150, 1, fg, 0, 0)), "no highlight without a current turn")
	assert.Equal(t, -1.0, highlightX(drawTokenChart(nil, 0, 300, 150, 1, fg, 0, 0)))
}

func TestAnswerMarks(t *testing.T) {
	st := newFakeStore()
	u, w := newTestUI(t, st, nil)
	act(u, func() { u.OpenRollout(11) })
	u.wait()
	d := st.details[11]
	marks := u.trace.marks
	require.Len(t, marks, len(d.Task.Objectives))
	for i, m := range marks {
		assert.Equal(t, d.Score.PerObjective[i].Answer, m.Answer)
		assert.Equal(t, d.Task.Objectives[i].Gold, m.Gold)
		assert.Equal(t, d.Score.PerObjective[i].EM > 0, m.Correct(), "objective %d", i+1)
	}
	assert.True(t, marks[0].Correct())
	assert.False(t, marks[1].Correct())
	labels := u.trace.answers.Objects
	require.Len(t, labels, 3*len(marks))
	assert.Equal(t, widget.SuccessImportance, labels[1].(*widget.Label).Importance)
	assert.Equal(t, widget.DangerImportance, labels[4].(*widget.Label).Importance)
	assert.True(t, hasText(w.Canvas(), "answer: Arthur's Magazine   ✓ EM 1 · F1 1.00"), "%v", renderedText(w.Canvas()))
	assert.True(t, hasText(w.Canvas(), "answer: Mumbai   ✗ EM 0 · F1 0.00"))
	assert.True(t, hasText(w.Canvas(), "gold: Delhi | New Delhi"))

	// Unfinished: the last answer split on ';', not scored.
	act(u, func() { u.OpenRollout(12) })
	u.wait()
	marks = u.trace.marks
	require.Len(t, marks, 2)
	assert.Equal(t, "Arthur's Magazine", marks[0].Answer)
	assert.Equal(t, "Delhi", marks[1].Answer)
	for _, m := range marks {
		assert.False(t, m.Scored)
		assert.False(t, m.Correct())
		assert.Equal(t, "not scored yet", m.markText())
	}
}

// TestPeakCellsNameTheirCount: the rollout tables and the trace header tell
// the request peak (with its source) from MEM1 eval.py's paper peak.
func TestPeakCellsNameTheirCount(t *testing.T) {
	peak := 321
	r := storage.RolloutRow{PeakTokens: 900, TokenSource: core.TokenSourceServerUsage, Policy: "mem1"}
	assert.Equal(t, "", paperPeakCell(r), "not computed")
	assert.Equal(t, "request peak 900 tokens (server-usage)", peakSummary(r))
	r.Paper = &core.PaperMetrics{ExactMatchLenient: 0}
	assert.Equal(t, "–", paperPeakCell(r), "eval.py's None")
	assert.Contains(t, peakSummary(r), "paper peak – (lenient Exact_match 0)")
	r.Paper = &core.PaperMetrics{ExactMatchLenient: 1, PeakTokens: &peak}
	assert.Equal(t, "321", paperPeakCell(r))
	assert.Equal(t, "request peak 900 tokens (server-usage) · paper peak 321 (eval.py consolidating, o200k)", peakSummary(r))
	r.Paper.Full = true
	assert.Contains(t, peakSummary(r), "eval.py full-history")

	rows := []storage.RolloutRow{
		{Model: "m", Policy: "mem1", Objectives: 2, Status: storage.StatusDone, PeakTokens: 100, Paper: &core.PaperMetrics{PeakTokens: &peak}},
		{Model: "m", Policy: "mem1", Objectives: 2, Status: storage.StatusDone, PeakTokens: 300, Paper: &core.PaperMetrics{}},
	}
	ss := settingsOf(rows)
	require.Len(t, ss, 1)
	assert.Equal(t, "321 (n=1)", settingRow(ss[0])[9], "Exact_match-0 rollout left out, as eval.py does")
	assert.Equal(t, "200", settingRow(ss[0])[8])
}
