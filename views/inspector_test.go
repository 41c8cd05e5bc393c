package views

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/driver/desktop"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

func joinParts(parts []diffPart, ops ...diffOp) string {
	var b strings.Builder
	for _, p := range parts {
		for _, o := range ops {
			if p.Op == o {
				b.WriteString(p.Text)
			}
		}
	}
	return b.String()
}

func TestWordDiffOnKnownStates(t *testing.T) {
	// The oracle's consolidation: one fact learned, the search pointer moves on.
	prev := "fact 1: Paris\nsearching: 2\n"
	cur := "fact 1: Paris\nfact 2: Rome\nsearching: 3\n"
	parts := wordDiff(prev, cur)
	assert.Equal(t, cur, joinParts(parts, diffKept, diffAdded), "kept + added = the new state")
	assert.Equal(t, prev, joinParts(parts, diffKept, diffDropped), "kept + dropped = the old state")
	assert.Equal(t, []diffPart{
		{diffKept, "fact 1: Paris\n"},
		{diffAdded, "fact 2: Rome\n"},
		{diffKept, "searching: "},
		{diffDropped, "2"},
		{diffAdded, "3"},
		{diffKept, "\n"},
	}, parts)
	k, a, d := diffCounts(parts)
	assert.Equal(t, [3]int{4, 4, 1}, [3]int{k, a, d})

	// Whole words, not characters: "Mumbai" replacing "Delhi" is one dropped and one added word.
	parts = wordDiff("the head office is in Delhi", "the head office is in Mumbai")
	assert.Equal(t, []diffPart{{diffKept, "the head office is in "}, {diffDropped, "Delhi"}, {diffAdded, "Mumbai"}}, parts)

	assert.Equal(t, []diffPart{{diffAdded, "new state"}}, wordDiff("", "new state"))
	assert.Equal(t, []diffPart{{diffDropped, "old"}}, wordDiff("old", ""))
	assert.Empty(t, wordDiff("", ""))
	same := wordDiff("same words here", "same words here")
	assert.Equal(t, []diffPart{{diffKept, "same words here"}}, same)

	// Many distinct words (beyond the private-use block) still diff exactly.
	var big, big2 []string
	for i := 0; i < 8000; i++ {
		big = append(big, "w"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+string(rune('A'+i/26%26))+string(rune('0'+i/676%10)))
	}
	big2 = append(append([]string{}, big[:4000]...), append([]string{"inserted"}, big[4000:]...)...)
	parts = wordDiff(strings.Join(big, " "), strings.Join(big2, " "))
	assert.Equal(t, strings.Join(big2, " "), joinParts(parts, diffKept, diffAdded))
	_, a, d = diffCounts(parts)
	assert.Equal(t, 1, a)
	assert.Equal(t, 0, d)
}

func TestDiffSegmentsUseDesignColours(t *testing.T) {
	segs := diffSegments([]diffPart{{diffKept, "kept "}, {diffDropped, "old"}, {diffAdded, "new\nline two"}})
	require.Len(t, segs, 6)
	assert.Equal(t, " ", segs[2].(*widget.TextSegment).Text, "a replaced word is set apart from its replacement")
	segs = append(segs[:2], segs[3:]...)
	style := func(i int) widget.RichTextStyle { return segs[i].(*widget.TextSegment).Style }
	text := func(i int) string { return segs[i].(*widget.TextSegment).Text }
	assert.Equal(t, "kept ", text(0))
	assert.Equal(t, theme.ColorNameForeground, style(0).ColorName)
	assert.False(t, style(0).TextStyle.Strikethrough)
	assert.Equal(t, "old", text(1))
	assert.Equal(t, theme.ColorNameError, style(1).ColorName, "dropped = red")
	assert.True(t, style(1).TextStyle.Strikethrough, "dropped = struck through")
	assert.Equal(t, "new", text(2))
	assert.Equal(t, theme.ColorNameSuccess, style(2).ColorName, "added = green")
	assert.False(t, style(3).Inline, "a line break ends the row")
	assert.Equal(t, "line two", text(4))
	for i := range segs {
		assert.True(t, style(i).TextStyle.Monospace)
	}
}

func TestFactsCarried(t *testing.T) {
	objs := sampleTask.Objectives
	assert.Equal(t, []bool{true, false}, factsCarried("Arthur's Magazine began in 1844", objs))
	assert.Equal(t, []bool{false, true}, factsCarried("head office: new delhi.", objs), "normalised, any alias")
	assert.Equal(t, []bool{false, false}, factsCarried("Delhiite food", objs), "whole words only")
	assert.Equal(t, []bool{false, false}, factsCarried("", objs))
}

// textsWithColor is every text drawn in the markup with the given colour name.
func textsWithColor(markup, color string) []string {
	var out []string
	for _, m := range textRE.FindAllStringSubmatch(markup, -1) {
		if strings.Contains(m[0], `color="`+color+`"`) {
			out = append(out, m[1])
		}
	}
	return out
}

func TestTraceDiffGoldMarksAndFacts(t *testing.T) {
	st := newFakeStore()
	u, w := newTestUI(t, st, nil)
	act(u, func() { u.OpenRollout(11) })
	u.wait()
	tp := u.trace
	c := w.Canvas()

	// Turn 1: everything in the state is new; passage 1 supports objective 1.
	assert.Equal(t, "(first turn: everything is new)", tp.diffSummary.Text)
	require.Len(t, tp.passages.Objects, 2)
	l0, l1 := tp.passages.Objects[0].(*widget.Label), tp.passages.Objects[1].(*widget.Label)
	assert.Equal(t, `#1  Arthur's Magazine  [wiki-101]  [gold passage of objective 1]`, l0.Text)
	assert.Equal(t, widget.SuccessImportance, l0.Importance)
	assert.Equal(t, `#2  First for Women  [wiki-102]`, l1.Text)
	assert.Equal(t, widget.MediumImportance, l1.Importance)
	assert.True(t, hasText(c, "[gold passage of objective 1]"), "gold mark is drawn")

	// Turn 2 against turn 1: a word diff, the fact about objective 1 is carried.
	w.pressKey(t, u, fyne.KeyRight)
	turns := st.details[11].Turns
	parts := wordDiff(turns[0].InternalState, turns[1].InternalState)
	k, a, d := diffCounts(parts)
	assert.Equal(t, strings.Join([]string{itoa(k), "words kept ·", itoa(a), "added ·", itoa(d), "dropped"}, " "), tp.diffSummary.Text)
	assert.Equal(t, turns[1].InternalState, joinParts(parts, diffKept, diffAdded))
	assert.Len(t, tp.diff.Segments, len(diffSegments(parts)))
	markup := test.RenderToMarkup(c)
	added, dropped := textsWithColor(markup, "success"), textsWithColor(markup, "error")
	assert.Contains(t, strings.Join(added, " "), "1844", "added words drawn green: %v", added)
	assert.Contains(t, strings.Join(dropped, " "), "founding", "dropped words drawn red: %v", dropped)
	require.Len(t, tp.passages.Objects, 1)
	assert.Equal(t, `#3  The Oberoi Group  [wiki-202]  [gold passage of objective 2]`, tp.passages.Objects[0].(*widget.Label).Text)
	require.Len(t, tp.facts.Objects, 2)
	// The retention timeline (memdiag.Retention): objective 1's gold is in turn
	// 1's information and in the states of turns 2 and 3; objective 2's comes
	// with turn 2's information and is not in turn 3's state (a forgetting
	// event at 3); the final answer has Arthur's Magazine but Mumbai, not Delhi.
	assert.Equal(t, "1. Arthur's Magazine: ✓ in this turn's state · carried in turns 2 3\nretrieved at turn 1 · kept to the end · in the final answer",
		tp.facts.Objects[0].(*widget.Label).Text)
	assert.Equal(t, "2. Delhi | New Delhi: ✗ not in this turn's state · never carried\nretrieved at turn 2 · forgotten at turn 3 · not in the final answer",
		tp.facts.Objects[1].(*widget.Label).Text)

	// Exact context with token counts, request parameters, the slider.
	assert.Equal(t, "Exact context sent (803 prompt tokens · 52 completion tokens)", tp.accordion.Items[0].Title)
	assert.Contains(t, tp.params.String(), `finish_reason "stop"`)
	assert.Equal(t, 2.0, tp.slider.Value)
	act(u, func() { tp.slider.SetValue(3) })
	assert.Equal(t, "turn 3 of 3", tp.turnLabel.Text)
	assert.Equal(t, 2, tp.chart.current)
	assert.Empty(t, tp.passages.Objects, "an answer turn has no information")
	act(u, func() { tp.slider.SetValue(1) })
	assert.Equal(t, "turn 1 of 3", tp.turnLabel.Text)

	// Copy puts the raw response on the clipboard.
	act(u, func() { test.Tap(tp.copyResponse) })
	assert.Equal(t, turns[0].Response, fyne.CurrentApp().Clipboard().Content())
}

func itoa(n int) string { return strconv.Itoa(n) }

// addFullRollout stores, in experiment 2, a `full` rollout on sampleTask that
// gets objective 2 right and objective 1 wrong.
func addFullRollout(st *fakeStore) storage.RolloutDetail {
	d := finishedRollout()
	d.ID, d.ExperimentID, d.Policy = 21, 2, "full"
	d.Turns = d.Turns[:2]
	last := d.Turns[1]
	last.Action, last.Query, last.Answer, last.Information, last.Passages = core.ActionAnswer, "", "First for Women; Delhi", "", nil
	d.Turns[1] = last
	d.EM, d.F1, d.PeakTokens = 1, 1, 900
	d.Score = core.Score{Scheme: "mem1", EM: 1, F1: 1, Answers: []string{"First for Women", "Delhi"},
		PerObjective: []core.ObjectiveScore{{Answer: "First for Women", EM: 0, F1: 0}, {Answer: "Delhi", EM: 1, F1: 1}}}
	st.mu.Lock()
	st.details[d.ID] = d
	st.rollouts[2] = append(st.rollouts[2], d.RolloutRow)
	st.mu.Unlock()
	return d
}

func TestCompareTwoRolloutsOnOneTask(t *testing.T) {
	st := newFakeStore()
	b := addFullRollout(st)
	u, w := newTestUI(t, st, nil)
	act(u, func() { u.OpenCompare(11, 0) })
	u.wait()
	assert.Equal(t, ScreenCompare, u.Current())
	cp := u.compare
	require.True(t, cp.loaded, cp.status.Text)
	assert.Equal(t, int64(11), cp.a.ID)
	assert.Equal(t, b.ID, cp.b.ID, "the other policy's rollout on the task")
	a := st.details[11]
	require.Len(t, cp.turns.rows, 3, "turns aligned to the longer rollout")
	assert.Equal(t, []string{"1", itoa(a.Turns[0].Tokens()), "search: " + a.Turns[0].Query, itoa(b.Turns[0].Tokens()), "search: " + b.Turns[0].Query}, cp.turns.rows[0])
	assert.Equal(t, []string{"2", itoa(a.Turns[1].Tokens()), "search: " + a.Turns[1].Query, itoa(b.Turns[1].Tokens()), "answer: First for Women; Delhi"}, cp.turns.rows[1])
	assert.Equal(t, []string{"3", itoa(a.Turns[2].Tokens()), "answer: " + a.Turns[2].Answer, "", "—"}, cp.turns.rows[2])
	require.Len(t, cp.outcome.rows, 2)
	assert.Equal(t, []string{"1. " + sampleTask.Objectives[0].Question, "Arthur's Magazine", "Arthur's Magazine", "First for Women", "A right / B wrong"}, cp.outcome.rows[0])
	assert.Equal(t, []string{"2. " + sampleTask.Objectives[1].Question, "Delhi | New Delhi", "Mumbai", "Delhi", "A wrong / B right"}, cp.outcome.rows[1])
	assert.True(t, hasText(w.Canvas(), "A right / B wrong"), "outcome is drawn")

	// The experiment pair table lists both disagreements.
	act(u, func() { cp.setPair(1, 2) })
	u.wait()
	require.Len(t, cp.table.rows, 2)
	assert.Equal(t, []string{sampleTask.Key, "1", sampleTask.Objectives[0].Question, "Arthur's Magazine", "Arthur's Magazine", "First for Women", "A right / B wrong"}, cp.table.rows[0])
	assert.Equal(t, "A wrong / B right", cp.table.rows[1][6])
	assert.Equal(t, "1 tasks in both · 2 objectives differ: A right on 1, B right on 1", cp.pairStatus.Text)

	// From Trace, Compare opens the same pair.
	act(u, func() { u.OpenRollout(21) })
	u.wait()
	act(u, func() { test.Tap(u.trace.compareBt) })
	u.wait()
	assert.Equal(t, int64(21), cp.a.ID)
	assert.Equal(t, int64(11), cp.b.ID)

	// A rollout alone on its task cannot be compared, and says so.
	act(u, func() { u.OpenCompare(12, 0) })
	u.wait()
	assert.False(t, cp.loaded)
	assert.Contains(t, cp.status.Text, "no other rollout")
}

func TestOutcomeText(t *testing.T) {
	r := answerMark{Scored: true, EM: 1}
	wr := answerMark{Scored: true}
	assert.Equal(t, "both right", outcomeText(r, r))
	assert.Equal(t, "both wrong", outcomeText(wr, wr))
	assert.Equal(t, "A right / B wrong", outcomeText(r, wr))
	assert.Equal(t, "A wrong / B right", outcomeText(wr, r))
	assert.Equal(t, "not scored", outcomeText(r, answerMark{}))
}

func TestBrowserFiltersSortPagesAndWalksInTrace(t *testing.T) {
	st := newFakeStore()
	addFullRollout(st)
	u, w := newTestUI(t, st, nil)
	act(u, func() { require.NoError(t, u.Show(ScreenRollouts)) })
	u.wait()
	p := u.rollouts
	act(u, func() { p.pick.SetSelected(allExperiments) })
	u.wait()
	ids := func() []int64 {
		var out []int64
		for _, r := range p.list.shown {
			out = append(out, r.ID)
		}
		return out
	}
	assert.Equal(t, []int64{11, 12, 21}, ids(), "every experiment by default")
	assert.Equal(t, "rollouts 1–3 of 3", p.list.status.Text)
	assert.Equal(t, []string{"#1 mem1 n2 smoke", "hotpotqa/n2/0000", "mem1"}, p.list.table.rows[0][:3])
	assert.Equal(t, "1/2", p.list.table.rows[0][8], "correct objectives")
	assert.Equal(t, []string{anyChoice, "full", "mem1"}, p.policy.Options)

	// Text search, then a policy, then the wrong-only check.
	act(u, func() { p.filter.SetText("Mumbai") })
	u.wait()
	assert.Equal(t, []int64{11, 12}, ids())
	assert.Equal(t, "Mumbai", st.browses[len(st.browses)-1].Text)
	act(u, func() { p.filter.SetText(""); p.policy.SetSelected("full") })
	u.wait()
	assert.Equal(t, []int64{21}, ids())
	act(u, func() { p.policy.SetSelected(anyChoice); p.wrong.SetChecked(true) })
	u.wait()
	assert.Equal(t, []int64{11, 21}, ids(), "finished with EM below the objectives")
	act(u, func() { p.wrong.SetChecked(false) })
	u.wait()

	// Tapping a header sorts; tapping it again reverses.
	var peak *sortHeader
	act(u, func() {
		h := newSortHeader(p)
		h.col = 9 // Peak
		peak = h
		test.Tap(peak)
	})
	u.wait()
	last := st.browses[len(st.browses)-1]
	assert.Equal(t, storage.SortPeakTokens, last.Sort)
	assert.False(t, last.Desc)
	act(u, func() { test.Tap(peak) })
	u.wait()
	assert.True(t, st.browses[len(st.browses)-1].Desc)
	assert.Equal(t, []int64{21, 11, 12}, ids(), "peak tokens, descending")

	// Pages: two rows a page.
	p.pageSize = 2
	act(u, func() { p.changed() })
	u.wait()
	assert.Equal(t, []int64{21, 11}, ids())
	assert.True(t, p.list.prevBt.Disabled())
	act(u, func() { test.Tap(p.list.nextBt) })
	u.wait()
	assert.Equal(t, []int64{12}, ids())
	assert.Equal(t, "rollouts 3–3 of 3", p.list.status.Text)
	assert.True(t, p.list.nextBt.Disabled())
	act(u, func() { test.Tap(p.list.prevBt) })
	u.wait()

	// Open the second row in Trace; ↓ walks the filter's order across the page edge.
	act(u, func() { p.list.table.selectRow(1) })
	act(u, func() { test.Tap(p.list.openBt) })
	u.wait()
	assert.Equal(t, ScreenTrace, u.Current())
	assert.Equal(t, int64(11), u.trace.detail.ID)
	assert.Contains(t, u.trace.header.Text, "2 of 3 in the filter")
	w.pressKey(t, u, fyne.KeyDown)
	u.wait()
	assert.Equal(t, int64(12), u.trace.detail.ID, "next rollout, on the next page")
	w.pressKey(t, u, fyne.KeyDown)
	u.wait()
	assert.Equal(t, int64(12), u.trace.detail.ID, "stays on the last")
	w.pressKey(t, u, fyne.KeyUp)
	u.wait()
	w.pressKey(t, u, fyne.KeyUp)
	u.wait()
	assert.Equal(t, int64(21), u.trace.detail.ID)
	assert.Contains(t, u.trace.header.Text, "1 of 3 in the filter")
}

func TestSelectionSurvivesLiveRefresh(t *testing.T) {
	st := newFakeStore()
	u, _ := newTestUI(t, st, nil)
	act(u, func() { require.NoError(t, u.Show(ScreenRollouts)) })
	u.wait()
	act(u, func() { u.rollouts.pick.SetSelected("#1 mem1 n2 smoke") })
	u.wait()
	act(u, func() { u.rollouts.list.table.selectRow(1) }) // rollout 12, running
	act(u, func() { u.OpenRollout(12) })
	u.wait()
	tp := u.trace
	assert.Equal(t, "turn 1 of 1", tp.turnLabel.Text)

	// The runner stores two more turns; the UI refreshes.
	st.mu.Lock()
	d := st.details[12]
	more := sampleTurns()
	d.Turns = []core.Turn{more[0], more[1], more[2]}
	st.details[12] = d
	st.mu.Unlock()
	act(u, func() { tp.step(0); u.Refresh() })
	u.wait()
	assert.Equal(t, "turn 1 of 3", tp.turnLabel.Text, "new turns appear, the turn shown stays")
	assert.Equal(t, int64(12), tp.detail.ID)
	act(u, func() { tp.step(2) })
	act(u, func() { u.Refresh() })
	u.wait()
	assert.Equal(t, "turn 3 of 3", tp.turnLabel.Text)
	assert.Equal(t, 1, u.rollouts.list.table.selected, "the browser keeps its selected row")
	assert.Equal(t, int64(12), u.rollouts.list.shown[u.rollouts.list.table.selected].ID)
}

func TestTracePollsARunningRollout(t *testing.T) {
	old := livePollInterval
	livePollInterval = 5e6 // 5 ms
	defer func() { livePollInterval = old }()
	st := newFakeStore()
	u, _ := newTestUI(t, st, nil)
	act(u, func() { u.OpenRollout(12) })
	u.wait()
	st.mu.Lock()
	d := st.details[12]
	d.Turns = sampleTurns()
	d.Status = storage.StatusDone
	st.details[12] = d
	st.mu.Unlock()
	require.Eventually(t, func() bool {
		u.applying.Lock()
		defer u.applying.Unlock()
		return u.trace.turnLabel.Text == "turn 1 of 3"
	}, 5e9, 5e6)
	u.wait()
	act(u, func() { u.trace.stopWatching() })
	assert.Nil(t, u.trace.liveStop, "a finished rollout is not polled")
}

func TestImageMasters(t *testing.T) {
	st := newFakeStore()
	addFullRollout(st)
	u, w := newTestUI(t, st, nil)
	act(u, func() { u.OpenRollout(11) })
	u.wait()
	w.pressKey(t, u, fyne.KeyRight)
	diff := u.trace.diff
	box := widget.NewRichText(diff.Segments...)
	box.Wrapping = fyne.TextWrapWord
	dw := test.NewTempWindow(t, box)
	dw.Resize(fyne.NewSize(520, 120))
	test.AssertRendersToImage(t, "trace_state_diff.png", dw.Canvas())

	if os.Getenv("MEM1LAB_REVIEW") != "" { // a picture of Trace for a person to look at
		test.AssertRendersToImage(t, "review_trace.png", w.Canvas())
	}
	act(u, func() { u.OpenCompare(11, 21) })
	u.wait()
	// The Compare screen alone, so the master does not depend on the navigation.
	act(u, func() { u.stack.Objects = nil; u.stack.Refresh() })
	cw := test.NewTempWindow(t, u.compare.content)
	cw.Resize(fyne.NewSize(1200, 820))
	test.AssertRendersToImage(t, "compare_screen.png", cw.Canvas())
}

func TestCtrlFFocusesTheBrowserSearch(t *testing.T) {
	u, w := newTestUI(t, newFakeStore(), nil)
	act(u, func() {
		w.canvas.TypedShortcut(&desktop.CustomShortcut{KeyName: fyne.KeyF, Modifier: fyne.KeyModifierShortcutDefault})
	})
	assert.Equal(t, ScreenRollouts, u.Current())
	assert.Same(t, fyne.Focusable(u.rollouts.filter), w.Canvas().Focused())
	// Ctrl+7 is Compare (Data, Endpoints, New experiment, Runs, Rollouts, Trace, Compare, Charts).
	act(u, func() {
		w.canvas.TypedShortcut(&desktop.CustomShortcut{KeyName: fyne.Key7, Modifier: fyne.KeyModifierShortcutDefault})
	})
	assert.Equal(t, ScreenCompare, u.Current())
}
