package views

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"gonum.org/v1/plot/vg"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/figures"
	"github.com/mem1lab/mem1lab/experiments/memdiag"
	"github.com/mem1lab/mem1lab/storage"
)

// livePollInterval is how often Trace reloads a rollout that is still running
// (0 = never; the tests turn it off and drive refreshes themselves).
var livePollInterval = 2 * time.Second

// traceNav is where ↑/↓ move in Trace: either a fixed list of rollout ids (the
// Runs screen's list) or the rollout browser's query, position pos in its order.
type traceNav struct {
	ids   []int64
	query *storage.RolloutQuery
	pos   int // index of the open rollout in the query's order
	total int // rollouts the query selects
}

// traceStore is what the Trace screen reads.
type traceStore interface {
	// Rollout returns one rollout with its task, turns and score.
	Rollout(ctx context.Context, id int64) (storage.RolloutDetail, error)
	// Experiment returns one experiment (its config JSON feeds the request parameters).
	Experiment(ctx context.Context, id int64) (storage.ExperimentRow, error)
	// BrowseRollouts returns one page of a browser query (↑/↓ walk it).
	BrowseRollouts(ctx context.Context, q storage.RolloutQuery) (storage.RolloutPage, error)
}

// tracePanel is the Trace screen: one rollout stepped turn by turn.
type tracePanel struct {
	u       *UI
	st      traceStore
	screens navigator
	content fyne.CanvasObject

	detail   storage.RolloutDetail
	config   string // the experiment's config JSON, for the request parameters
	loaded   bool
	turn     int     // 0-based index of the turn shown
	siblings []int64 // rollouts of the list it was opened from, for ↑/↓
	nav      traceNav
	seq      int

	header, turnLabel, turnInfo, status *widget.Label
	failure                             *widget.Label // the rollout's error, when it has one
	first, prev, next, last             *widget.Button
	slider                              *widget.Slider
	sliding                             bool // the slider is being set from show
	state, diff, information            *widget.RichText
	sent, response, params              *widget.RichText
	diffSummary                         *widget.Label
	facts                               *fyne.Container
	passages                            *fyne.Container
	query                               *widget.Label
	accordion                           *widget.Accordion
	copyResponse, copyParams, copySent  *widget.Button
	totals                              *widget.Label
	answers                             *fyne.Container
	marks                               []answerMark
	chart                               *tokenChart
	compareBt                           *widget.Button
	// composition is the rollout's context split into parts per turn (o200k
	// tokens, figures.Composition), computed in the background on load.
	composition *chartView
	compSeq     int
	memory      *memorySection // memory policies' payload and sub-calls
	// The left column's section titles: QA's terms, or a WebShop rollout's
	// (memory <summary>, action, observation).
	stateTitle, diffTitle, queryTitle, infoTitle *widget.Label
	// WebShop only: the turn's reasoning (<think>), the actions the page
	// offered, and the final reward on the turn that ended the episode.
	reasoning, actions *widget.RichText
	reasoningBox       *fyne.Container
	actionsBox         *fyne.Container
	reward             *widget.Label

	liveStop context.CancelFunc  // stops the poller of a running rollout
	scrolls  []*container.Scroll // re-laid out when the turn changes
}

func newTracePanel(u *UI) *tracePanel {
	p := &tracePanel{u: u, st: u.deps.Store, screens: u}
	p.header = widget.NewLabelWithStyle("Open a rollout from Runs or Rollouts (double-click or Open).", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	p.header.Wrapping = fyne.TextWrapWord
	p.turnLabel = widget.NewLabel("no turns stored")
	p.failure = widget.NewLabel("")
	p.failure.Wrapping = fyne.TextWrapWord
	p.failure.Importance = widget.DangerImportance
	p.failure.Hide()
	p.turnInfo = widget.NewLabel("")
	p.turnInfo.Wrapping = fyne.TextWrapWord
	p.status = widget.NewLabel("")
	p.status.Wrapping = fyne.TextWrapWord
	p.first = widget.NewButtonWithIcon("", theme.MediaSkipPreviousIcon(), func() { p.step(-1 << 30) })
	p.prev = widget.NewButtonWithIcon("Previous", theme.NavigateBackIcon(), func() { p.step(-1) })
	p.next = widget.NewButtonWithIcon("Next", theme.NavigateNextIcon(), func() { p.step(1) })
	p.next.IconPlacement = widget.ButtonIconTrailingText
	p.last = widget.NewButtonWithIcon("", theme.MediaSkipNextIcon(), func() { p.step(1 << 30) })
	p.slider = widget.NewSlider(1, 1)
	p.slider.Step = 1
	p.slider.OnChanged = func(v float64) {
		if !p.sliding {
			p.step(int(v+0.5) - 1 - p.turn)
		}
	}
	p.compareBt = widget.NewButtonWithIcon("Compare…", theme.ViewRestoreIcon(), func() {
		if p.loaded {
			p.screens.OpenCompare(p.detail.ID, 0)
		}
	})

	mono := func() *widget.RichText {
		r := widget.NewRichText()
		r.Wrapping = fyne.TextWrapWord
		return r
	}
	p.state, p.diff, p.information, p.sent, p.response, p.params = mono(), mono(), mono(), mono(), mono(), mono()
	p.diffSummary = widget.NewLabel("")
	p.diffSummary.Wrapping = fyne.TextWrapWord
	p.facts = container.NewVBox()
	p.passages = container.NewVBox()
	p.query = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	p.query.Wrapping = fyne.TextWrapWord
	copyOf := func(what func() string) func() {
		return func() {
			if a := fyne.CurrentApp(); a != nil && a.Clipboard() != nil {
				a.Clipboard().SetContent(what())
				p.status.SetText("Copied to the clipboard.")
			}
		}
	}
	p.copySent = widget.NewButtonWithIcon("Copy context", theme.ContentCopyIcon(), copyOf(func() string { return p.sent.String() }))
	p.copyResponse = widget.NewButtonWithIcon("Copy response", theme.ContentCopyIcon(), copyOf(func() string { return p.response.String() }))
	p.copyParams = widget.NewButtonWithIcon("Copy parameters", theme.ContentCopyIcon(), copyOf(func() string { return p.params.String() }))
	p.composition = newChartView(u)
	p.accordion = widget.NewAccordion(
		widget.NewAccordionItem("Exact context sent", container.NewBorder(container.NewHBox(p.copySent), nil, nil, nil, p.sent)),
		widget.NewAccordionItem("Raw response", container.NewBorder(container.NewHBox(p.copyResponse), nil, nil, nil, p.response)),
		widget.NewAccordionItem("Request parameters", container.NewBorder(container.NewHBox(p.copyParams), nil, nil, nil, p.params)),
		widget.NewAccordionItem("Context composition (o200k tokens)", p.composition.raster),
	)
	p.accordion.MultiOpen = true
	p.totals = widget.NewLabel("")
	p.totals.Wrapping = fyne.TextWrapWord
	p.answers = container.NewVBox()
	p.chart = newTokenChart()
	p.memory = newMemorySection()

	bold := func(s string) *widget.Label {
		return widget.NewLabelWithStyle(s, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	}
	nav := container.NewBorder(nil, nil, container.NewHBox(p.first, p.prev, p.turnLabel, p.next, p.last), p.compareBt, p.slider)
	top := container.NewVBox(p.header, p.failure, nav, container.NewGridWithColumns(2, p.turnInfo, p.status))
	p.stateTitle, p.diffTitle = bold(qaStateTitle), bold(qaDiffTitle)
	p.queryTitle, p.infoTitle = bold(qaQueryTitle), bold(qaInfoTitle)
	p.reasoning, p.actions = mono(), mono()
	p.reasoningBox = container.NewVBox(bold("Reasoning (<think>)"), p.reasoning)
	p.actionsBox = container.NewVBox(bold(webShopActionsTitle), p.actions)
	p.reasoningBox.Hide()
	p.actionsBox.Hide()
	p.reward = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	p.reward.Hide()
	left := container.NewVScroll(container.NewVBox(
		p.stateTitle, p.state,
		container.NewBorder(nil, nil, p.diffTitle, nil, p.diffSummary), p.diff,
		p.reasoningBox,
		p.queryTitle, p.query,
		p.infoTitle, p.reward, p.passages, p.information,
		p.actionsBox,
		p.accordion,
		p.memory.box,
	))
	answers := container.NewVScroll(container.NewVBox(bold("Answers"), p.totals, p.answers, bold("Facts carried in the internal state"), p.facts))
	right := container.NewBorder(
		container.NewVBox(bold("Context size per turn (tokens: context + generation)"), p.chart.raster),
		nil, nil, nil, answers,
	)
	p.scrolls = []*container.Scroll{left, answers}
	split := container.NewHSplit(left, right)
	split.Offset = 0.6
	u.rememberSplit("trace.split", split)
	p.content = container.NewBorder(top, nil, nil, nil, split)
	p.show()
	u.follow(ScreenTrace, p.refresh)
	return p
}

// open loads rollout id and shows its first turn. siblings, when given, are the
// rollouts ↑/↓ move through.
func (p *tracePanel) open(id int64, siblings []int64) {
	if siblings != nil {
		p.siblings = siblings
		p.nav = traceNav{ids: siblings}
	}
	p.load(id, false)
}

// openInQuery opens rollout id, which sits at position pos of the browser's
// query q (total rollouts selected); ↑/↓ then walk that query's order.
func (p *tracePanel) openInQuery(id int64, q storage.RolloutQuery, pos, total int) {
	p.siblings = nil
	p.nav = traceNav{query: &q, pos: pos, total: total}
	p.load(id, false)
}

// load fetches rollout id (and its experiment's config). keep keeps the turn
// shown (clamped), for refreshes of the same rollout.
func (p *tracePanel) load(id int64, keep bool) {
	p.seq++
	seq := p.seq
	if !keep {
		// Nothing of the rollout shown so far may linger while another loads.
		p.detail, p.config, p.loaded, p.turn, p.marks = storage.RolloutDetail{}, "", false, 0, nil
		p.chart.setTokens(nil)
		p.showAnswers()
		p.header.SetText(fmt.Sprintf("Rollout #%d", id))
		p.show()
		p.status.SetText(fmt.Sprintf("Loading rollout #%d…", id))
	}
	type loaded struct {
		d   storage.RolloutDetail
		cfg string
	}
	background(p.u, func(ctx context.Context) (loaded, error) {
		d, err := p.st.Rollout(ctx, id)
		if err != nil {
			return loaded{}, err
		}
		cfg := ""
		if e, err := p.st.Experiment(ctx, d.ExperimentID); err == nil {
			cfg = e.ConfigJSON
		}
		return loaded{d, cfg}, nil
	}, func(l loaded, err error) {
		if seq != p.seq {
			return
		}
		if err != nil {
			p.status.SetText(fmt.Sprintf("Could not load rollout #%d: %v", id, err))
			return
		}
		if !keep {
			p.status.SetText("")
		}
		same := p.loaded && p.detail.ID == l.d.ID
		p.detail, p.config, p.loaded = l.d, l.cfg, true
		if !keep || !same {
			p.turn = 0
		}
		p.turn = max(0, min(p.turn, len(l.d.Turns)-1))
		p.marks = answerMarks(l.d)
		p.showAnswers()
		tokens := make([]int, len(l.d.Turns))
		for i, t := range l.d.Turns {
			tokens[i] = t.Tokens()
		}
		p.chart.setTokens(tokens)
		p.show()
		p.watch()
		p.loadComposition(l.d, l.cfg)
	})
}

// loadComposition computes rollout d's context composition in the background
// and shows it as a stacked chart (only the latest request is applied).
func (p *tracePanel) loadComposition(d storage.RolloutDetail, configJSON string) {
	p.compSeq++
	seq := p.compSeq
	fg := theme.Color(theme.ColorNameForeground)
	size := vg.Length(theme.TextSize() * 0.85)
	background(p.u, func(context.Context) (*figures.Figure, error) {
		comp, err := experiments.RolloutComposition(d, configJSON, nil)
		if err != nil {
			return nil, err
		}
		series := []figures.CompositionSeries{figures.RolloutCompositionSeries(fmt.Sprintf("rollout #%d", d.ID), comp)}
		return figures.BuildDiagnostic(figures.DiagnosticData{Composition: series},
			figures.Options{Kind: figures.Composition, Foreground: fg, FontSize: size})
	}, func(f *figures.Figure, err error) {
		if seq != p.compSeq || err != nil {
			return
		}
		p.composition.setFigure(f)
	})
}

// refresh reloads the rollout shown, keeping its turn: new turns of a running
// rollout appear as they are stored.
func (p *tracePanel) refresh() {
	if p.loaded {
		p.load(p.detail.ID, true)
	}
}

// watch starts polling the rollout shown while it is running (livePollInterval),
// and stops any earlier poller.
func (p *tracePanel) watch() {
	if p.liveStop != nil {
		p.liveStop()
		p.liveStop = nil
	}
	if livePollInterval <= 0 || !p.loaded || (p.detail.Status != storage.StatusRunning && p.detail.Status != storage.StatusQueued) {
		return
	}
	ctx, cancel := context.WithCancel(p.u.ctx)
	p.liveStop = cancel
	id := p.detail.ID
	tick := time.NewTicker(livePollInterval)
	go func() {
		defer tick.Stop()
		select {
		case <-ctx.Done():
		case <-tick.C:
			p.u.do(func() {
				if ctx.Err() == nil && p.detail.ID == id {
					p.refresh()
				}
			})
		}
	}()
}

// stopWatching ends the live poller, if any.
func (p *tracePanel) stopWatching() {
	if p.liveStop != nil {
		p.liveStop()
		p.liveStop = nil
	}
}

// step moves by delta turns, clamped to the rollout's turns.
func (p *tracePanel) step(delta int) {
	n := len(p.detail.Turns)
	if n == 0 {
		return
	}
	t := p.turn + delta
	if delta < -n {
		t = 0
	} else if delta > n {
		t = n - 1
	}
	t = max(0, min(n-1, t))
	if t != p.turn {
		p.turn = t
		p.show()
	}
}

// openSibling opens the rollout delta places away in the list or browser query
// Trace was opened from.
func (p *tracePanel) openSibling(delta int) {
	if q := p.nav.query; q != nil {
		pos := p.nav.pos + delta
		if pos < 0 || pos >= p.nav.total {
			return
		}
		qq := *q
		qq.Offset, qq.Limit = pos, 1
		seq := p.seq + 1
		p.seq = seq
		background(p.u, func(ctx context.Context) (storage.RolloutPage, error) {
			return p.st.BrowseRollouts(ctx, qq)
		}, func(pg storage.RolloutPage, err error) {
			if seq != p.seq {
				return
			}
			if err != nil || len(pg.Rows) == 0 {
				p.status.SetText(fmt.Sprintf("Could not move to the next rollout: %v", err))
				return
			}
			p.nav.pos, p.nav.total = pos, pg.Total
			p.load(pg.Rows[0].ID, false)
		})
		return
	}
	for i, id := range p.siblings {
		if id == p.detail.ID {
			j := i + delta
			if j >= 0 && j < len(p.siblings) {
				p.open(p.siblings[j], nil)
			}
			return
		}
	}
}

// typedKey: ←/→ previous/next turn, Home/End first/last turn, ↑/↓ previous/next rollout.
func (p *tracePanel) typedKey(ev *fyne.KeyEvent) {
	switch ev.Name {
	case fyne.KeyLeft:
		p.step(-1)
	case fyne.KeyRight:
		p.step(1)
	case fyne.KeyHome:
		p.step(-1 << 30)
	case fyne.KeyEnd:
		p.step(1 << 30)
	case fyne.KeyUp:
		p.openSibling(-1)
	case fyne.KeyDown:
		p.openSibling(1)
	}
}

// show renders the current turn.
func (p *tracePanel) show() {
	n := len(p.detail.Turns)
	if p.loaded {
		d := p.detail
		done := d.Status == storage.StatusDone
		h := fmt.Sprintf("Rollout #%d · %s · policy %s · %s · %d objectives · %s · EM %s · F1 %s · %s",
			d.ID, d.TaskKey, d.Policy, d.Model, max(d.Objectives, len(d.Task.Objectives)), d.Status,
			scoreText("%.2f", d.EM, done), scoreText("%.2f", d.F1, done), peakSummary(d.RolloutRow))
		if p.webShop() {
			h = fmt.Sprintf("Rollout #%d · %s · WebShop · policy %s · %s · %s · final reward ×100 %s · %s",
				d.ID, d.TaskKey, d.Policy, d.Model, d.Status, scoreText("%.1f", 100*d.EM, done), peakSummary(d.RolloutRow))
		}
		if p.nav.query != nil && p.nav.total > 0 {
			h += fmt.Sprintf(" · %d of %d in the filter", p.nav.pos+1, p.nav.total)
		}
		p.header.SetText(h)
	}
	p.failure.SetText("")
	p.failure.Hide()
	if p.loaded && p.detail.Error != "" {
		p.failure.SetText(fmt.Sprintf("This rollout %s: %s", orDash(p.detail.Status, "ended"), p.detail.Error))
		p.failure.Show()
	}
	p.setFamilyTitles()
	if n == 0 {
		p.showWebShopTurn(nil)
		p.turnLabel.SetText("no turns stored")
		p.turnInfo.SetText("")
		p.accordion.Items[0].Title = "Exact context sent"
		p.accordion.Refresh()
		setMono(p.state, "")
		p.diff.Segments = nil
		p.diff.Refresh()
		p.diffSummary.SetText("")
		setMono(p.information, "")
		setMono(p.sent, "")
		setMono(p.response, "")
		setMono(p.params, "")
		p.query.SetText("")
		p.passages.Objects = nil
		p.passages.Refresh()
		p.facts.Objects = nil
		p.facts.Refresh()
		for _, b := range []*widget.Button{p.first, p.prev, p.next, p.last} {
			b.Disable()
		}
		p.slider.Disable()
		p.chart.setCurrent(-1)
		p.memory.show(core.Turn{}, nil)
		return
	}
	t := p.detail.Turns[p.turn]
	p.turnLabel.SetText(fmt.Sprintf("turn %d of %d", p.turn+1, n))
	info := fmt.Sprintf("%s · %d tokens (%d context + %d generated)", t.Action, t.Tokens(), t.PromptTokens, t.CompletionTokens)
	if !t.UsageReported {
		info += " estimated"
	}
	if t.Latency > 0 {
		info += fmt.Sprintf(" · %.1f s", t.Latency.Seconds())
	}
	if t.RetrievalLatency > 0 {
		info += fmt.Sprintf(" (retrieval %.2f s)", t.RetrievalLatency.Seconds())
	}
	if t.FinishReason != "" {
		info += " · finish " + t.FinishReason
	}
	p.turnInfo.SetText(info)
	setMono(p.state, orDash(t.InternalState, "(no internal state)"))
	p.showDiff()
	switch t.Action {
	case core.ActionSearch:
		p.query.SetText(t.Query)
	case core.ActionAnswer:
		p.query.SetText("(no query: answered " + t.Answer + ")")
	default:
		p.query.SetText("(no query)")
	}
	p.showPassages(t)
	setMono(p.information, orDash(t.Information, "(no information this turn)"))
	p.showWebShopTurn(&t)
	setMono(p.sent, orDash(t.Context, "(no context recorded)"))
	setMono(p.response, t.Response)
	setMono(p.params, p.requestParams(t))
	p.accordion.Items[0].Title = fmt.Sprintf("Exact context sent (%d prompt tokens · %d completion tokens)", t.PromptTokens, t.CompletionTokens)
	p.accordion.Refresh()
	p.showFacts()
	var prevTurn *core.Turn
	if p.turn > 0 {
		prevTurn = &p.detail.Turns[p.turn-1]
	}
	p.memory.show(t, prevTurn)
	atFirst, atLast := p.turn == 0, p.turn == n-1
	enable(p.first, !atFirst)
	enable(p.prev, !atFirst)
	enable(p.next, !atLast)
	enable(p.last, !atLast)
	p.sliding = true
	p.slider.Min, p.slider.Max = 1, float64(max(n, 1))
	if n > 1 {
		p.slider.Enable()
	} else {
		p.slider.Disable()
	}
	p.slider.SetValue(float64(p.turn + 1))
	p.sliding = false
	p.chart.setCurrent(p.turn)
	p.relayout()
}

// relayout lays the panels out again after their contents changed size.
func (p *tracePanel) relayout() {
	for _, s := range p.scrolls {
		s.Content.Refresh()
		s.Refresh()
	}
}

// showDiff renders the internal state of this turn against the previous one.
func (p *tracePanel) showDiff() {
	t := p.detail.Turns[p.turn]
	if p.turn == 0 {
		p.diff.Segments = diffSegments([]diffPart{{Op: diffAdded, Text: t.InternalState}})
		p.diffSummary.SetText("(first turn: everything is new)")
	} else {
		parts := wordDiff(p.detail.Turns[p.turn-1].InternalState, t.InternalState)
		p.diff.Segments = diffSegments(parts)
		k, a, d := diffCounts(parts)
		p.diffSummary.SetText(fmt.Sprintf("%d words kept · %d added · %d dropped", k, a, d))
	}
	p.diff.Refresh()
}

// passageLine is the information panel's line for one passage: rank, title,
// and the objectives it is a gold supporting passage of.
func passageLine(ps core.Passage, objs []core.Objective) (string, bool) {
	var gold []string
	for k, o := range objs {
		for _, id := range o.GoldPassageIDs {
			if id != "" && id == ps.ID {
				gold = append(gold, fmt.Sprint(k+1))
				break
			}
		}
	}
	s := fmt.Sprintf("#%d  %s", ps.Rank, ps.Title)
	if ps.ID != "" {
		s += "  [" + ps.ID + "]"
	}
	if len(gold) > 0 {
		return s + "  [gold passage of objective " + strings.Join(gold, ", ") + "]", true
	}
	return s, false
}

func (p *tracePanel) showPassages(t core.Turn) {
	objs := make([]fyne.CanvasObject, 0, len(t.Passages))
	for i, ps := range t.Passages {
		if ps.Rank == 0 {
			ps.Rank = i + 1
		}
		line, gold := passageLine(ps, p.detail.Task.Objectives)
		l := widget.NewLabel(line)
		l.Truncation = fyne.TextTruncateEllipsis
		if gold {
			l.Importance = widget.SuccessImportance
			l.TextStyle.Bold = true
		}
		objs = append(objs, l)
	}
	p.passages.Objects = objs
	p.passages.Refresh()
}

// showFacts lists, per objective, whether a gold answer is in this turn's
// internal state, and the turns whose state holds one.
func (p *tracePanel) showFacts() {
	if p.webShop() {
		l := widget.NewLabel("(WebShop has no gold facts: the final reward scores the purchase)")
		l.Wrapping = fyne.TextWrapWord
		p.facts.Objects = []fyne.CanvasObject{l}
		p.facts.Refresh()
		return
	}
	objs := p.detail.Task.Objectives
	per := make([][]bool, len(p.detail.Turns))
	for i, t := range p.detail.Turns {
		per[i] = factsCarried(t.InternalState, objs)
	}
	ret := memdiag.Retention(p.detail.Task, p.detail.Turns, p.detail.Score.Answers)
	rows := make([]fyne.CanvasObject, 0, len(objs))
	for k, o := range objs {
		var in []string
		for i := range per {
			if per[i][k] {
				in = append(in, fmt.Sprint(i+1))
			}
		}
		now := per[p.turn][k]
		mark := "✗ not in this turn's state"
		if now {
			mark = "✓ in this turn's state"
		}
		seen := "never carried"
		if len(in) > 0 {
			seen = "carried in turns " + strings.Join(in, " ")
		}
		l := widget.NewLabel(fmt.Sprintf("%d. %s: %s · %s\n%s", k+1, strings.Join(o.Gold, " | "), mark, seen, retentionLine(ret[k])))
		l.Wrapping = fyne.TextWrapWord
		if now {
			l.Importance = widget.SuccessImportance
		}
		rows = append(rows, l)
	}
	p.facts.Objects = rows
	p.facts.Refresh()
}

// retentionLine is an objective's timeline from memdiag.Retention: where its
// gold fact was first retrieved, the turns it left the internal state
// (forgetting events) and whether the final answer has it.
func retentionLine(r memdiag.FactRetention) string {
	if r.Retrieved == 0 {
		s := "never retrieved"
		if r.Answered {
			s += " · in the final answer"
		}
		return s
	}
	s := fmt.Sprintf("retrieved at turn %d", r.Retrieved)
	switch len(r.Forgetting) {
	case 0:
		if len(r.InState) > 0 {
			s += " · kept to the end"
		}
	default:
		turns := make([]string, len(r.Forgetting))
		for i, t := range r.Forgetting {
			turns[i] = strconv.Itoa(t)
		}
		s += " · forgotten at turn " + strings.Join(turns, ", ")
	}
	if r.Answered {
		return s + " · in the final answer"
	}
	return s + " · not in the final answer"
}

// requestParams is the raw view's request description: this turn's call and the
// experiment's settings as stored.
func (p *tracePanel) requestParams(t core.Turn) string {
	var b strings.Builder
	fmt.Fprintf(&b, "rollout %d · turn %d · model %s · policy %s\n", p.detail.ID, t.Index+1, p.detail.Model, p.detail.Policy)
	fmt.Fprintf(&b, "prompt_tokens %d · completion_tokens %d · usage reported %v · finish_reason %q · latency %s · retrieval %s\n",
		t.PromptTokens, t.CompletionTokens, t.UsageReported, t.FinishReason, t.Latency, t.RetrievalLatency)
	if t.RawResponse != "" && t.RawResponse != t.Response {
		fmt.Fprintf(&b, "raw response as the server sent it (stripped, closing tag restored above): %q\n", t.RawResponse)
	}
	if p.config != "" {
		var v any
		if json.Unmarshal([]byte(p.config), &v) == nil {
			if pretty, err := json.MarshalIndent(v, "", "  "); err == nil {
				b.WriteString("experiment config:\n")
				b.Write(pretty)
				return b.String()
			}
		}
		b.WriteString("experiment config: " + p.config)
	}
	return b.String()
}

func enable(b *widget.Button, on bool) {
	if on {
		b.Enable()
	} else {
		b.Disable()
	}
}

func orDash(s, empty string) string {
	if strings.TrimSpace(s) == "" {
		return empty
	}
	return s
}

// setMono replaces a RichText's content with s in a monospace paragraph.
func setMono(r *widget.RichText, s string) {
	r.Segments = []widget.RichTextSegment{&widget.TextSegment{Text: s, Style: monoParagraph}}
	r.Refresh()
}

// answerMark is one objective's answer next to its gold aliases.
type answerMark struct {
	Question string
	Answer   string
	Gold     []string
	EM, F1   float64
	Scored   bool // false while the rollout is unfinished: Answer is the split raw answer
}

// Correct reports an exact match.
func (m answerMark) Correct() bool { return m.Scored && m.EM > 0 }

// answerMarks pairs each objective with its answer: from Score.PerObjective when
// the rollout was scored, else from the last <answer> split on ';'.
func answerMarks(d storage.RolloutDetail) []answerMark {
	return answerMarksOf(d.Task, d.Turns, d.Score)
}

func answerMarksOf(task core.Task, turns []core.Turn, score core.Score) []answerMark {
	marks := make([]answerMark, len(task.Objectives))
	scored := len(score.PerObjective) > 0
	var raw []string
	if !scored {
		for i := len(turns) - 1; i >= 0; i-- {
			if turns[i].Action == core.ActionAnswer {
				for _, a := range strings.Split(turns[i].Answer, ";") {
					raw = append(raw, strings.TrimSpace(a))
				}
				break
			}
		}
	}
	for i, o := range task.Objectives {
		m := answerMark{Question: o.Question, Gold: o.Gold, Scored: scored}
		if scored && i < len(score.PerObjective) {
			s := score.PerObjective[i]
			m.Answer, m.EM, m.F1 = s.Answer, s.EM, s.F1
		} else if i < len(raw) {
			m.Answer = raw[i]
		}
		marks[i] = m
	}
	return marks
}

// markText is e.g. "✓ EM 1 · F1 1.00", "✗ EM 0 · F1 0.40" or "not scored yet".
func (m answerMark) markText() string {
	if !m.Scored {
		return "not scored yet"
	}
	sym := "✗"
	if m.Correct() {
		sym = "✓"
	}
	return fmt.Sprintf("%s EM %g · F1 %.2f", sym, m.EM, m.F1)
}

func (p *tracePanel) showAnswers() {
	s := p.detail.Score
	switch {
	case p.webShop():
		if s.Reward != nil {
			p.totals.SetText(fmt.Sprintf("Scheme webshop: final reward %s (×100: %.1f)", strconv.FormatFloat(*s.Reward, 'f', -1, 64), 100**s.Reward))
		} else {
			p.totals.SetText("WebShop episode not finished: no final reward yet.")
		}
	case len(s.PerObjective) == 0:
		p.totals.SetText("Unfinished or unscored: answers below are the last <answer> split on ';'.")
	default:
		t := fmt.Sprintf("Scheme %s: EM %g of %d · F1 %.2f", s.Scheme, s.EM, len(p.marks), s.F1)
		if s.CountMismatch {
			t += " · answer count differs from objectives (scored 0)"
		}
		if s.NoAnswer {
			t += " · no answer given"
		}
		if s.Unbalanced {
			t += " · unbalanced answer tags (scored 0)"
		}
		if e := s.EvalPy; e != nil {
			// eval.py reads turns 1–10 only (and the t/r/i fields); say what it would report.
			t += fmt.Sprintf(" · MEM1 eval.py reads: EM %g · F1 %.2f", e.EM, e.F1)
		}
		p.totals.SetText(t)
	}
	objs := make([]fyne.CanvasObject, 0, 3*len(p.marks))
	if p.webShop() { // one goal; its "answer" is the action that ended the episode
		bought := "(not ended by an action yet)"
		if n := len(p.detail.Turns); n > 0 && p.detail.Turns[n-1].Action == core.ActionAnswer {
			bought = "ended with " + p.detail.Turns[n-1].Answer
		}
		for _, o := range p.detail.Task.Objectives {
			l := widget.NewLabel(o.Question + ": " + bought)
			l.Wrapping = fyne.TextWrapWord
			objs = append(objs, l)
		}
		p.answers.Objects = objs
		p.answers.Refresh()
		return
	}
	for i, m := range p.marks {
		q := widget.NewLabelWithStyle(fmt.Sprintf("%d. %s", i+1, m.Question), fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
		q.Wrapping = fyne.TextWrapWord
		ans := m.Answer
		if ans == "" {
			ans = "(none)"
		}
		a := widget.NewLabel(fmt.Sprintf("answer: %s   %s", ans, m.markText()))
		a.Wrapping = fyne.TextWrapWord
		switch {
		case !m.Scored:
			a.Importance = widget.MediumImportance
		case m.Correct():
			a.Importance = widget.SuccessImportance
		default:
			a.Importance = widget.DangerImportance
		}
		g := widget.NewLabel("gold: " + strings.Join(m.Gold, " | "))
		g.Wrapping = fyne.TextWrapWord
		objs = append(objs, q, a, g)
	}
	p.answers.Objects = objs
	p.answers.Refresh()
}

// peakSummary names both peak counts of a rollout: the request peak with its
// token source, and MEM1 eval.py's paper peak (o200k) with its rule, or why
// there is none.
func peakSummary(r storage.RolloutRow) string {
	src := r.TokenSource
	if src == "" {
		src = "as served"
	}
	s := fmt.Sprintf("request peak %d tokens (%s)", r.PeakTokens, src)
	switch pk, ok := r.PaperPeak(); {
	case ok:
		rule := "consolidating"
		if r.Paper.Full {
			rule = "full-history"
		}
		s += fmt.Sprintf(" · paper peak %d (eval.py %s, o200k)", pk, rule)
	case r.Paper != nil:
		s += " · paper peak – (lenient Exact_match 0)"
	}
	return s
}

// Trace's section titles for QA rollouts and for WebShop ones (the family's
// terms: core.DefaultWebShopTags).
const (
	qaStateTitle        = "Internal state"
	qaDiffTitle         = "State diff against the previous turn"
	qaQueryTitle        = "Query"
	qaInfoTitle         = "Information"
	webShopStateTitle   = "Memory (<summary>)"
	webShopDiffTitle    = "Memory diff against the previous turn"
	webShopActionTitle  = "Action (search[…] / click[…])"
	webShopInfoTitle    = "Observation"
	webShopActionsTitle = "Available actions"
)

// webShop reports whether the rollout shown is a WebShop episode (its task's
// dataset, or its score's scheme, is core.FamilyWebShop).
func (p *tracePanel) webShop() bool {
	return p.loaded && (p.detail.Dataset == core.FamilyWebShop || p.detail.Score.Scheme == core.FamilyWebShop)
}

// setFamilyTitles names the left column's sections in the rollout's family's terms.
func (p *tracePanel) setFamilyTitles() {
	titles := []string{qaStateTitle, qaDiffTitle, qaQueryTitle, qaInfoTitle}
	if p.webShop() {
		titles = []string{webShopStateTitle, webShopDiffTitle, webShopActionTitle, webShopInfoTitle}
	}
	for i, l := range []*widget.Label{p.stateTitle, p.diffTitle, p.queryTitle, p.infoTitle} {
		if l.Text != titles[i] {
			l.SetText(titles[i])
		}
	}
}

// showWebShopTurn fills a WebShop turn's sections (nil t, or a QA rollout,
// hides them): the reasoning, the action, the observation (the budget hint,
// then the page), the available actions and, on the turn that ended the episode, the final
// reward. The information is split by core.SplitWebShopInformation; text it
// cannot read is shown whole with the reason.
func (p *tracePanel) showWebShopTurn(t *core.Turn) {
	if t == nil || !p.webShop() {
		p.reasoningBox.Hide()
		p.actionsBox.Hide()
		p.reward.Hide()
		return
	}
	setMono(p.reasoning, orDash(core.DefaultWebShopTags().Reasoning(t.Response), "(no reasoning)"))
	p.reasoningBox.Show()
	switch {
	case t.Action == core.ActionAnswer:
		p.query.SetText(t.Answer + "  (ended the episode)")
	case t.Query != "":
		p.query.SetText(t.Query)
	default:
		p.query.SetText("(no valid action: the episode ended with reward 0)")
	}
	parts, err := core.SplitWebShopInformation(t.Information)
	if err != nil {
		setMono(p.information, t.Information+"\n\n("+err.Error()+")")
		p.actionsBox.Hide()
		p.reward.Hide()
		return
	}
	page := orDash(parts.Page, "(no observation this turn)")
	if parts.Hint != "" {
		page = parts.Hint + "\n" + page
	}
	setMono(p.information, page)
	if parts.HasReward {
		txt := fmt.Sprintf("Final reward %s (×100: %s)", strconv.FormatFloat(parts.Reward, 'f', -1, 64),
			strconv.FormatFloat(100*parts.Reward, 'f', 1, 64))
		if fakeWebShop(p.config) {
			txt += " · " + figures.FakeRewardNote
		}
		p.reward.SetText(txt)
		p.reward.Show()
	} else {
		p.reward.Hide()
	}
	if len(parts.Actions) == 0 {
		p.actionsBox.Hide()
		return
	}
	setMono(p.actions, strings.Join(parts.Actions, "\n"))
	p.actionsBox.Show()
}

// fakeWebShop reports whether an experiment's config JSON marks mem1lab's
// fake WebShop server ("fake_reward": true), whose reward lacks the
// product-type term.
func fakeWebShop(configJSON string) bool {
	_, fake := figures.WebShopConfig(configJSON)
	return fake
}
