package views

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// outcomeText names how two rollouts did on one objective: "A right / B wrong",
// "A wrong / B right", "both right", "both wrong", or "not scored" when either is
// unscored.
func outcomeText(a, b answerMark) string {
	if !a.Scored || !b.Scored {
		return "not scored"
	}
	switch ac, bc := a.Correct(), b.Correct(); {
	case ac && bc:
		return "both right"
	case ac:
		return "A right / B wrong"
	case bc:
		return "A wrong / B right"
	}
	return "both wrong"
}

// disagreement is one objective on which the two experiments of a pair differ.
type disagreement struct {
	Pair      int // index into the pairs
	Objective int // 0-based
	Question  string
	Gold      []string
	A, B      answerMark
}

// disagreements lists, for each scored pair, the objectives one rollout got
// right (EM) and the other did not, in pair then objective order.
func disagreements(pairs []storage.RolloutPair) []disagreement {
	var out []disagreement
	for i, p := range pairs {
		ma := answerMarksOf(p.Task, nil, p.ScoreA)
		mb := answerMarksOf(p.Task, nil, p.ScoreB)
		for k := range p.Task.Objectives {
			if !ma[k].Scored || !mb[k].Scored || ma[k].Correct() == mb[k].Correct() {
				continue
			}
			o := p.Task.Objectives[k]
			out = append(out, disagreement{Pair: i, Objective: k, Question: o.Question, Gold: o.Gold, A: ma[k], B: mb[k]})
		}
	}
	return out
}

// webShopRow reports whether a rollout is a WebShop episode (its score is
// the final reward, its turns' queries are shop actions).
func webShopRow(r storage.RolloutRow) bool { return r.Dataset == core.FamilyWebShop }

// scoreLabel is a rollout's score as Compare names it: "EM 1.00", or for a
// WebShop episode "reward 1.00".
func scoreLabel(r storage.RolloutRow) string {
	if webShopRow(r) {
		return fmt.Sprintf("reward %.2f", r.EM)
	}
	return fmt.Sprintf("EM %.2f", r.EM)
}

// turnCell is what Compare shows of one side's turn: its action and text (a
// WebShop turn's action as the shop reads it, e.g. "action: click[buy now]").
func turnCell(t core.Turn, webshop bool) string {
	if webshop {
		switch {
		case t.Action == core.ActionAnswer:
			return "action: " + t.Answer + " (ended the episode)"
		case t.Query != "":
			return "action: " + t.Query
		}
	}
	switch t.Action {
	case core.ActionSearch:
		return "search: " + t.Query
	case core.ActionAnswer:
		return "answer: " + t.Answer
	}
	return "(no action)"
}

// comparePanel is the Compare screen: two rollouts on one task side by side with
// turns aligned, and, for a pair of experiments, the objectives where they differ.
type comparePanel struct {
	u       *UI
	st      compareStore
	content fyne.CanvasObject

	a, b    storage.RolloutDetail
	loaded  bool // both sides loaded
	same    []storage.RolloutRow
	header  *widget.Label
	pickB   *widget.Select
	turns   *dataTable // aligned turns
	outcome *dataTable // final per-objective outcome
	chartA  *tokenChart
	chartB  *tokenChart
	tabs    *container.AppTabs
	status  *widget.Label
	seq     int
	quiet   bool

	experiments []storage.ExperimentRow
	expA, expB  *widget.Select
	pairs       []storage.RolloutPair
	disagree    []disagreement
	table       *dataTable
	pairStatus  *widget.Label
	pseq, eseq  int

	// The summary of the comparison of the settings the two rollouts belong
	// to (experiments.Compare) and its largest per-task differences.
	summary    *dataTable
	largest    *dataTable
	largestIDs [][2]int64
	sumStatus  *widget.Label
	sseq       int
}

// summaryHeaders are the columns of Compare's summary table; "this task" is
// the loaded pair's own difference, marked ◀ in its row.
var summaryHeaders = []string{"Metric", "Objectives", "n", "Mean A", "Mean B", "Δ (A-B)", "95% CI (t)", "p (Holm)", "W/T/L", "Test", "This task Δ"}

// compareStore is what the Compare screen reads.
type compareStore interface {
	// Experiments lists experiments, newest first (the pair table's choices).
	Experiments(ctx context.Context) ([]storage.ExperimentRow, error)
	// Rollout returns one rollout with its task, turns and score.
	Rollout(ctx context.Context, id int64) (storage.RolloutDetail, error)
	// SameTaskRollouts lists the rollouts on the same task as rollout id (it included).
	SameTaskRollouts(ctx context.Context, id int64) ([]storage.RolloutRow, error)
	// PairRollouts pairs the rollouts of two experiments on the same tasks.
	PairRollouts(ctx context.Context, a, b int64) ([]storage.RolloutPair, error)
}

func newComparePanel(u *UI) *comparePanel {
	p := &comparePanel{u: u, st: u.deps.Store}
	p.header = widget.NewLabelWithStyle("Pick a rollout in Rollouts or Trace and press Compare, or choose two experiments below.",
		fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	p.header.Wrapping = fyne.TextWrapWord
	p.status = widget.NewLabel("")
	p.status.Wrapping = fyne.TextWrapWord
	p.pickB = widget.NewSelect(nil, func(label string) {
		if p.quiet {
			return
		}
		for _, r := range p.same {
			if sameTaskLabel(r) == label && r.ID != p.b.ID {
				p.open(p.a.ID, r.ID)
			}
		}
	})
	p.pickB.PlaceHolder = "(other rollouts on this task)"
	p.turns = newDataTable([]string{"Turn", "A tokens", "A", "B tokens", "B"}, []float32{50, 80, 380, 80, 380})
	p.outcome = newDataTable([]string{"Objective", "Gold", "A answer", "B answer", "Outcome"}, []float32{260, 160, 170, 170, 140})
	p.chartA, p.chartB = newTokenChart(), newTokenChart()
	p.chartA.raster.SetMinSize(fyne.NewSize(200, 110))
	p.chartB.raster.SetMinSize(fyne.NewSize(200, 110))

	p.expA = widget.NewSelect(nil, func(string) { p.loadPairs() })
	p.expA.PlaceHolder = "(experiment A)"
	p.expB = widget.NewSelect(nil, func(string) { p.loadPairs() })
	p.expB.PlaceHolder = "(experiment B)"
	p.table = newDataTable([]string{"Task", "#", "Question", "Gold", "A answer", "B answer", "Outcome"},
		[]float32{140, 30, 300, 140, 140, 140, 130})
	p.table.onActivate = func(row int) {
		if row >= 0 && row < len(p.disagree) {
			pr := p.pairs[p.disagree[row].Pair]
			p.open(pr.A.ID, pr.B.ID)
		}
	}
	p.pairStatus = widget.NewLabel("")
	p.summary = newDataTable(summaryHeaders, []float32{60, 80, 40, 70, 70, 80, 140, 70, 70, 130, 90})
	p.largest = newDataTable([]string{"Task", "Δ EM/objective", "A", "B"}, []float32{150, 100, 60, 60})
	p.largest.onActivate = func(row int) {
		if row >= 0 && row < len(p.largestIDs) {
			p.open(p.largestIDs[row][0], p.largestIDs[row][1])
		}
	}
	p.sumStatus = widget.NewLabel("")
	p.sumStatus.Wrapping = fyne.TextWrapWord
	p.pairStatus.Wrapping = fyne.TextWrapWord

	bold := func(s string) *widget.Label {
		return widget.NewLabelWithStyle(s, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	}
	charts := container.NewGridWithColumns(2,
		container.NewBorder(bold("A: context size per turn"), nil, nil, nil, p.chartA.raster),
		container.NewBorder(bold("B: context size per turn"), nil, nil, nil, p.chartB.raster))
	sumSplit := container.NewHSplit(p.summary.table, container.NewBorder(bold("Largest differences (double-click to open)"), nil, nil, nil, p.largest.table))
	sumSplit.Offset = 0.72
	// The comparison summary and the context charts share the space above the
	// turn-by-turn view; the summary shows first.
	above := container.NewAppTabs(
		container.NewTabItem("Comparison of the two settings", container.NewBorder(p.sumStatus, nil, nil, nil, sumSplit)),
		container.NewTabItem("Context size per turn", charts))
	// Three bands that each keep their share of the height (a split, not a
	// border, so a tall summary never squeezes the turn-by-turn view).
	lower := container.NewVSplit(p.turns.table,
		container.NewBorder(bold("Final outcome per objective"), nil, nil, nil, p.outcome.table))
	lower.Offset = 0.5
	u.rememberSplit("compare.lower", lower)
	inner := container.NewVSplit(above, lower)
	inner.Offset = 0.3
	u.rememberSplit("compare.bands", inner) // not "compare.inner": that held the old two-band layout's offset
	top := container.NewBorder(
		container.NewVBox(p.header, container.NewBorder(nil, nil, widget.NewLabel("B:"), nil, p.pickB), p.status),
		nil, nil, nil,
		inner)
	bottom := container.NewBorder(
		container.NewVBox(bold("Rollouts of two experiments on the same tasks that disagree (double-click to compare the pair)"),
			container.NewGridWithColumns(2, p.expA, p.expB), p.pairStatus),
		nil, nil, nil, p.table.table)
	// Two tabs, so the rollout pair's tables and the experiments' disagreement
	// table each get the screen's height.
	p.tabs = container.NewAppTabs(
		container.NewTabItem("Two rollouts", top),
		container.NewTabItem("Where two experiments disagree", bottom))
	p.content = p.tabs
	u.events.ExperimentFinished.Subscribe(func(RunEnded) { p.reloadExperiments() })
	u.follow(ScreenCompare, p.reloadExperiments)
	return p
}

func sameTaskLabel(r storage.RolloutRow) string {
	return fmt.Sprintf("#%d · exp %d · %s · %s · %s", r.ID, r.ExperimentID, r.Policy, r.Model, scoreLabel(r))
}

// open loads rollouts a and b (b = 0: another rollout on a's task, preferring
// one under another policy) and shows them side by side.
func (p *comparePanel) open(a, b int64) {
	p.tabs.SelectIndex(0)
	p.seq++
	seq := p.seq
	p.status.SetText(fmt.Sprintf("Loading rollout #%d…", a))
	type loaded struct {
		a, b storage.RolloutDetail
		same []storage.RolloutRow
	}
	background(p.u, func(ctx context.Context) (loaded, error) {
		var l loaded
		var err error
		if l.a, err = p.st.Rollout(ctx, a); err != nil {
			return l, err
		}
		if l.same, err = p.st.SameTaskRollouts(ctx, a); err != nil {
			return l, err
		}
		if b == 0 {
			b = otherRollout(l.same, l.a.RolloutRow)
		}
		if b == 0 {
			return l, fmt.Errorf("no other rollout on task %s", l.a.TaskKey)
		}
		l.b, err = p.st.Rollout(ctx, b)
		return l, err
	}, func(l loaded, err error) {
		if seq != p.seq {
			return
		}
		p.a, p.b, p.same = l.a, l.b, l.same
		p.loaded = err == nil
		p.quiet = true
		labels := []string{}
		for _, r := range l.same {
			if r.ID != l.a.ID {
				labels = append(labels, sameTaskLabel(r))
			}
		}
		p.pickB.SetOptions(labels)
		if err == nil {
			p.pickB.SetSelected(sameTaskLabel(l.b.RolloutRow))
		} else {
			p.pickB.ClearSelected()
		}
		p.quiet = false
		if err != nil {
			p.status.SetText(fmt.Sprintf("Could not compare: %v", err))
			p.show()
			return
		}
		p.status.SetText("")
		p.show()
	})
}

// otherRollout picks the rollout to compare a with among same: the first under
// another policy, else the first under another model, else the first other one;
// 0 when there is none.
func otherRollout(same []storage.RolloutRow, a storage.RolloutRow) int64 {
	for _, pick := range []func(storage.RolloutRow) bool{
		func(r storage.RolloutRow) bool { return r.Policy != a.Policy },
		func(r storage.RolloutRow) bool { return r.Model != a.Model },
		func(storage.RolloutRow) bool { return true },
	} {
		for _, r := range same {
			if r.ID != a.ID && pick(r) {
				return r.ID
			}
		}
	}
	return 0
}

// show renders the loaded pair.
func (p *comparePanel) show() {
	if !p.loaded {
		p.turns.setRows(nil)
		p.outcome.setRows(nil)
		p.chartA.setTokens(nil)
		p.chartB.setTokens(nil)
		return
	}
	a, b := p.a, p.b
	side := func(name string, d storage.RolloutDetail) string {
		s := fmt.Sprintf("%s: #%d %s", name, d.ID, d.Policy)
		if a.Model != b.Model {
			s += " " + d.Model
		}
		return s + fmt.Sprintf(" · %s · peak %d tokens", scoreLabel(d.RolloutRow), d.PeakTokens)
	}
	p.header.SetText(fmt.Sprintf("Task %s   %s   %s", a.TaskKey, side("A", a), side("B", b)))
	n := max(len(a.Turns), len(b.Turns))
	rows := make([][]string, n)
	tokens := func(ts []core.Turn) []int {
		out := make([]int, len(ts))
		for i, t := range ts {
			out[i] = t.Tokens()
		}
		return out
	}
	for i := range rows {
		r := []string{strconv.Itoa(i + 1), "", "—", "", "—"}
		if i < len(a.Turns) {
			r[1], r[2] = strconv.Itoa(a.Turns[i].Tokens()), turnCell(a.Turns[i], webShopRow(a.RolloutRow))
		}
		if i < len(b.Turns) {
			r[3], r[4] = strconv.Itoa(b.Turns[i].Tokens()), turnCell(b.Turns[i], webShopRow(b.RolloutRow))
		}
		rows[i] = r
	}
	p.turns.setRows(rows)
	// One y-scale and one turn axis for both, so their heights compare at a glance.
	ta, tb := tokens(a.Turns), tokens(b.Turns)
	top, turns := 0, max(len(ta), len(tb))
	for _, v := range append(append([]int(nil), ta...), tb...) {
		top = max(top, v)
	}
	p.chartA.setScale(float64(top), turns)
	p.chartB.setScale(float64(top), turns)
	p.chartA.setTokens(ta)
	p.chartB.setTokens(tb)
	ma, mb := answerMarks(a), answerMarks(b)
	out := make([][]string, len(ma))
	for k := range ma {
		bm := answerMark{}
		if k < len(mb) {
			bm = mb[k]
		}
		outcome := outcomeText(ma[k], bm)
		if webShopRow(a.RolloutRow) && webShopRow(b.RolloutRow) {
			outcome = fmt.Sprintf("final reward A %.2f · B %.2f", a.EM, b.EM) // a purchase has no gold answer
		}
		out[k] = []string{fmt.Sprintf("%d. %s", k+1, ma[k].Question), strings.Join(ma[k].Gold, " | "),
			orDash(ma[k].Answer, "(none)"), orDash(bm.Answer, "(none)"), outcome}
	}
	p.outcome.setRows(out)
	p.loadSummary(a, b)
}

// summaryResult is what loadSummary computes off the UI thread.
type summaryResult struct {
	a, b    experiments.CompareSetting
	rows    [][]string
	largest [][]string
	ids     [][2]int64
}

// loadSummary compares the two settings rollouts a and b belong to (the one
// factor they differ in) over their experiments' tasks, one row per metric for
// the pair's objectives count and pooled.
func (p *comparePanel) loadSummary(a, b storage.RolloutDetail) {
	p.sseq++
	seq := p.sseq
	p.sumStatus.SetText("Comparing the two settings…")
	background(p.u, func(ctx context.Context) (summaryResult, error) {
		ids := []int64{a.ExperimentID}
		if b.ExperimentID != a.ExperimentID {
			ids = append(ids, b.ExperimentID)
		}
		units, err := experiments.LoadCompareUnits(ctx, p.u.deps.Store, ids...)
		if err != nil {
			return summaryResult{}, err
		}
		return compareSummary(units, a.ID, b.ID, a.Objectives)
	}, func(r summaryResult, err error) {
		if seq != p.sseq {
			return
		}
		if err != nil {
			p.summary.setRows(nil)
			p.largest.setRows(nil)
			p.largestIDs = nil
			p.sumStatus.SetText("No summary: " + err.Error())
			return
		}
		p.summary.setRows(r.rows)
		p.largest.setRows(r.largest)
		p.largestIDs = r.ids
		p.sumStatus.SetText(fmt.Sprintf("A = %s, B = %s on the same tasks; 95%% paired-t intervals, Holm across objectives counts", r.a, r.b))
	})
}

// compareSummary builds the summary rows (summaryHeaders) of the settings of
// rollouts a and b, and the largest per-task EM differences at objectives n.
func compareSummary(units []experiments.CompareUnit, a, b int64, n int) (summaryResult, error) {
	sa, sb, err := experiments.RolloutSettings(units, a, b)
	if err != nil {
		return summaryResult{}, err
	}
	r := summaryResult{a: sa, b: sb}
	for _, m := range experiments.CompareMetrics {
		c, err := experiments.Compare(units, sa, sb, m, experiments.CompareOptions{Seed: 1})
		if err != nil {
			return summaryResult{}, err
		}
		for _, row := range c.Rows {
			if !row.Pooled && row.Objectives != n {
				continue
			}
			obj, own := "all", ""
			if !row.Pooled {
				obj = strconv.Itoa(row.Objectives)
			}
			for _, pd := range row.PairRollouts {
				if pd.A == a && pd.B == b {
					own = fmtStat(pd.Delta) + " ◀"
				}
			}
			r.rows = append(r.rows, []string{m, obj, strconv.Itoa(row.N), fmtStat(row.MeanA), fmtStat(row.MeanB),
				fmtStat(row.Delta), "[" + fmtStat(row.CILow) + ", " + fmtStat(row.CIHigh) + "]", fmtStat(row.PHolm),
				fmt.Sprintf("%d/%d/%d", row.Wins, row.Ties, row.Losses), row.Test, own})
			if m == "em" && !row.Pooled {
				for _, pd := range row.PairRollouts {
					if len(r.largest) == 10 || pd.Delta == 0 {
						break
					}
					r.largest = append(r.largest, []string{pd.TaskKey, fmtStat(pd.Delta), "#" + strconv.FormatInt(pd.A, 10), "#" + strconv.FormatInt(pd.B, 10)})
					r.ids = append(r.ids, [2]int64{pd.A, pd.B})
				}
			}
		}
	}
	return r, nil
}

// fmtStat prints a statistic with four significant digits, "–" when undefined.
func fmtStat(x float64) string {
	if x != x {
		return "–"
	}
	return strconv.FormatFloat(x, 'g', 4, 64)
}

// reloadExperiments refreshes the experiment choices of the pair table.
func (p *comparePanel) reloadExperiments() {
	p.eseq++
	seq := p.eseq
	background(p.u, func(ctx context.Context) ([]storage.ExperimentRow, error) {
		return p.st.Experiments(ctx)
	}, func(es []storage.ExperimentRow, err error) {
		if seq != p.eseq || err != nil {
			return
		}
		p.experiments = es
		labels := make([]string, len(es))
		for i, e := range es {
			labels[i] = experimentLabel(e)
		}
		p.expA.SetOptions(labels)
		p.expB.SetOptions(labels)
	})
}

func (p *comparePanel) experimentID(s *widget.Select) int64 {
	for _, e := range p.experiments {
		if experimentLabel(e) == s.Selected {
			return e.ID
		}
	}
	return 0
}

// setPair chooses experiments a and b for the disagreement table.
func (p *comparePanel) setPair(a, b int64) {
	for _, e := range p.experiments {
		if e.ID == a {
			p.expA.SetSelected(experimentLabel(e))
		}
		if e.ID == b {
			p.expB.SetSelected(experimentLabel(e))
		}
	}
}

// loadPairs fills the disagreement table for the chosen experiment pair.
func (p *comparePanel) loadPairs() {
	a, b := p.experimentID(p.expA), p.experimentID(p.expB)
	if a == 0 || b == 0 {
		return
	}
	p.pseq++
	seq := p.pseq
	p.pairStatus.SetText("Pairing rollouts…")
	background(p.u, func(ctx context.Context) ([]storage.RolloutPair, error) {
		return p.st.PairRollouts(ctx, a, b)
	}, func(pairs []storage.RolloutPair, err error) {
		if seq != p.pseq {
			return
		}
		if err != nil {
			p.pairStatus.SetText("Could not pair the experiments: " + err.Error())
			return
		}
		p.pairs = pairs
		p.disagree = disagreements(pairs)
		rows := make([][]string, len(p.disagree))
		aWins := 0
		for i, d := range p.disagree {
			if d.A.Correct() {
				aWins++
			}
			rows[i] = []string{pairs[d.Pair].TaskKey, strconv.Itoa(d.Objective + 1), d.Question, strings.Join(d.Gold, " | "),
				orDash(d.A.Answer, "(none)"), orDash(d.B.Answer, "(none)"), outcomeText(d.A, d.B)}
		}
		p.table.setRows(rows)
		p.pairStatus.SetText(fmt.Sprintf("%d tasks in both · %d objectives differ: A right on %d, B right on %d",
			len(pairs), len(p.disagree), aWins, len(p.disagree)-aWins))
	})
}
