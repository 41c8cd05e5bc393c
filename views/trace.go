package views

import (
	"context"
	"fmt"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// tracePanel is the Trace screen: one rollout stepped turn by turn.
type tracePanel struct {
	u       *UI
	content fyne.CanvasObject

	detail   storage.RolloutDetail
	loaded   bool
	turn     int     // 0-based index of the turn shown
	siblings []int64 // rollouts of the list it was opened from, for ↑/↓
	seq      int

	header, turnLabel, turnInfo, status *widget.Label
	first, prev, next, last             *widget.Button
	state, information, sent, response  *widget.RichText
	query                               *widget.Label
	accordion                           *widget.Accordion
	totals                              *widget.Label
	answers                             *fyne.Container
	marks                               []answerMark
	chart                               *tokenChart
}

func newTracePanel(u *UI) *tracePanel {
	p := &tracePanel{u: u}
	p.header = widget.NewLabelWithStyle("Open a rollout from Runs or Rollouts (double-click or Open).", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	p.header.Wrapping = fyne.TextWrapWord
	p.turnLabel = widget.NewLabel("turn 0 of 0")
	p.turnInfo = widget.NewLabel("")
	p.status = widget.NewLabel("")
	p.first = widget.NewButtonWithIcon("", theme.MediaSkipPreviousIcon(), func() { p.step(-1 << 30) })
	p.prev = widget.NewButtonWithIcon("Previous", theme.NavigateBackIcon(), func() { p.step(-1) })
	p.next = widget.NewButtonWithIcon("Next", theme.NavigateNextIcon(), func() { p.step(1) })
	p.next.IconPlacement = widget.ButtonIconTrailingText
	p.last = widget.NewButtonWithIcon("", theme.MediaSkipNextIcon(), func() { p.step(1 << 30) })

	mono := func() *widget.RichText {
		r := widget.NewRichText()
		r.Wrapping = fyne.TextWrapWord
		return r
	}
	p.state, p.information, p.sent, p.response = mono(), mono(), mono(), mono()
	p.query = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
	p.query.Wrapping = fyne.TextWrapWord
	p.accordion = widget.NewAccordion(
		widget.NewAccordionItem("Exact context sent", p.sent),
		widget.NewAccordionItem("Raw response", p.response),
	)
	p.accordion.MultiOpen = true
	p.totals = widget.NewLabel("")
	p.totals.Wrapping = fyne.TextWrapWord
	p.answers = container.NewVBox()
	p.chart = newTokenChart()

	bold := func(s string) *widget.Label {
		return widget.NewLabelWithStyle(s, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	}
	nav := container.NewHBox(p.first, p.prev, p.turnLabel, p.next, p.last, p.turnInfo)
	top := container.NewVBox(p.header, nav, p.status)
	left := container.NewVScroll(container.NewVBox(
		bold("Internal state"), p.state,
		bold("Query"), p.query,
		bold("Information"), p.information,
		p.accordion,
	))
	right := container.NewBorder(
		container.NewVBox(bold("Context tokens per turn"), p.chart.raster),
		nil, nil, nil,
		container.NewVScroll(container.NewVBox(bold("Answers"), p.totals, p.answers)),
	)
	split := container.NewHSplit(left, right)
	split.Offset = 0.6
	p.content = container.NewBorder(top, nil, nil, nil, split)
	p.show()
	return p
}

// open loads rollout id and shows its first turn. siblings, when given, are the
// rollouts ↑/↓ move through.
func (p *tracePanel) open(id int64, siblings []int64) {
	if siblings != nil {
		p.siblings = siblings
	}
	p.seq++
	seq := p.seq
	p.status.SetText(fmt.Sprintf("Loading rollout #%d…", id))
	background(p.u, func(ctx context.Context) (storage.RolloutDetail, error) {
		return p.u.deps.Store.Rollout(ctx, id)
	}, func(d storage.RolloutDetail, err error) {
		if seq != p.seq {
			return
		}
		if err != nil {
			p.status.SetText(fmt.Sprintf("Could not load rollout #%d: %v", id, err))
			return
		}
		p.status.SetText("")
		p.detail, p.loaded, p.turn = d, true, 0
		p.marks = answerMarks(d)
		p.showAnswers()
		tokens := make([]int, len(d.Turns))
		for i, t := range d.Turns {
			tokens[i] = t.Tokens()
		}
		p.chart.setTokens(tokens)
		p.show()
	})
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

// openSibling opens the rollout delta places away in the list Trace was opened from.
func (p *tracePanel) openSibling(delta int) {
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
		p.header.SetText(fmt.Sprintf("Rollout #%d · %s · policy %s · %d objectives · %s · EM %.2f · F1 %.2f · peak %d tokens",
			d.ID, d.TaskKey, d.Policy, max(d.Objectives, len(d.Task.Objectives)), d.Status, d.EM, d.F1, d.PeakTokens))
	}
	if n == 0 {
		p.turnLabel.SetText("turn 0 of 0")
		p.turnInfo.SetText("")
		setMono(p.state, "")
		setMono(p.information, "")
		setMono(p.sent, "")
		setMono(p.response, "")
		p.query.SetText("")
		for _, b := range []*widget.Button{p.first, p.prev, p.next, p.last} {
			b.Disable()
		}
		p.chart.setCurrent(-1)
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
	if t.FinishReason != "" {
		info += " · finish " + t.FinishReason
	}
	p.turnInfo.SetText(info)
	setMono(p.state, orDash(t.InternalState, "(no internal state)"))
	switch t.Action {
	case core.ActionSearch:
		p.query.SetText(t.Query)
	case core.ActionAnswer:
		p.query.SetText("(no query: answered " + t.Answer + ")")
	default:
		p.query.SetText("(no query)")
	}
	setMono(p.information, orDash(t.Information, "(no information this turn)"))
	setMono(p.sent, t.Context)
	setMono(p.response, t.Response)
	p.accordion.Items[0].Title = fmt.Sprintf("Exact context sent (%d tokens)", t.PromptTokens)
	p.accordion.Refresh()
	atFirst, atLast := p.turn == 0, p.turn == n-1
	enable(p.first, !atFirst)
	enable(p.prev, !atFirst)
	enable(p.next, !atLast)
	enable(p.last, !atLast)
	p.chart.setCurrent(p.turn)
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
	marks := make([]answerMark, len(d.Task.Objectives))
	scored := len(d.Score.PerObjective) > 0
	var raw []string
	if !scored {
		for i := len(d.Turns) - 1; i >= 0; i-- {
			if d.Turns[i].Action == core.ActionAnswer {
				for _, a := range strings.Split(d.Turns[i].Answer, ";") {
					raw = append(raw, strings.TrimSpace(a))
				}
				break
			}
		}
	}
	for i, o := range d.Task.Objectives {
		m := answerMark{Question: o.Question, Gold: o.Gold, Scored: scored}
		if scored && i < len(d.Score.PerObjective) {
			s := d.Score.PerObjective[i]
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
		p.totals.SetText(t)
	}
	objs := make([]fyne.CanvasObject, 0, 3*len(p.marks))
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
