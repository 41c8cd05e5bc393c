package views

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// rolloutsStore is what the Rollouts screen (and the rollout list Runs shows) reads.
type rolloutsStore interface {
	// Experiments lists experiments, newest first, with rollout counts and means.
	Experiments(ctx context.Context) ([]storage.ExperimentRow, error)
	// Rollouts lists one experiment's rollouts.
	Rollouts(ctx context.Context, expID int64) ([]storage.RolloutRow, error)
	// BrowseRollouts returns one page of the rollouts a browser query selects.
	BrowseRollouts(ctx context.Context, q storage.RolloutQuery) (storage.RolloutPage, error)
	// Facets lists the policies, models, datasets and statuses the browser filters offer.
	Facets(ctx context.Context) (storage.RolloutFacets, error)
}

// rolloutList is a table of one experiment's rollouts with an Open button; both
// Runs and Rollouts show one. Double-clicking a row or pressing Open shows the
// rollout in Trace.
type rolloutList struct {
	u       *UI
	st      runsStore
	nav     navigator
	expID   int64 // 0 = none loaded
	all     []storage.RolloutRow
	shown   []storage.RolloutRow // all, filtered
	filter  string
	table   *dataTable
	openBt  *widget.Button
	status  *widget.Label
	content fyne.CanvasObject
	seq     int
}

func newRolloutList(u *UI, st runsStore, nav navigator) *rolloutList {
	l := &rolloutList{u: u, st: st, nav: nav}
	l.table = newDataTable([]string{"Task", "Policy", "Model", "Obj.", "EM", "F1", "Request peak", "Turns", "Status", "Error", "Paper peak"},
		[]float32{170, 60, 170, 45, 55, 55, 95, 55, 75, 240, 90})
	l.openBt = widget.NewButton("Open in Trace", l.openSelected)
	l.openBt.Disable()
	l.status = widget.NewLabel("Select an experiment.")
	l.status.Wrapping = fyne.TextWrapWord
	l.table.onSelect = func(int) { l.openBt.Enable() }
	l.table.onActivate = func(int) { l.openSelected() }
	l.content = container.NewBorder(nil, container.NewBorder(nil, nil, nil, l.openBt, l.status), nil, nil, l.table.table)
	return l
}

// load fetches experiment expID's rollouts; a later call wins over an earlier one.
func (l *rolloutList) load(expID int64) {
	l.seq++
	seq := l.seq
	l.status.SetText(fmt.Sprintf("Loading rollouts of experiment #%d…", expID))
	background(l.u, func(ctx context.Context) ([]storage.RolloutRow, error) {
		return l.st.Rollouts(ctx, expID)
	}, func(rs []storage.RolloutRow, err error) {
		if seq != l.seq {
			return
		}
		if err != nil {
			l.status.SetText(fmt.Sprintf("Could not load rollouts of experiment #%d: %v", expID, err))
			return
		}
		l.expID, l.all = expID, rs
		l.apply()
	})
}

func (l *rolloutList) apply() {
	l.shown = l.shown[:0:0]
	for _, r := range l.all {
		if l.filter == "" || strings.Contains(strings.ToLower(strings.Join([]string{r.TaskKey, r.Dataset, r.Policy, r.Status, r.Error}, " ")), l.filter) {
			l.shown = append(l.shown, r)
		}
	}
	shop := len(l.all) > 0 // a WebShop experiment's score is its final reward
	for _, r := range l.all {
		shop = shop && r.Dataset == core.FamilyWebShop
	}
	if shop {
		l.table.setHeader(4, "Reward")
		l.table.setHeader(5, "F1 (= reward)")
	} else {
		l.table.setHeader(4, "EM")
		l.table.setHeader(5, "F1")
	}
	rows := make([][]string, len(l.shown))
	for i, r := range l.shown {
		done := r.Status == storage.StatusDone
		rows[i] = []string{r.TaskKey, r.Policy, r.Model, strconv.Itoa(r.Objectives), scoreText("%.2f", r.EM, done), scoreText("%.2f", r.F1, done),
			strconv.Itoa(r.PeakTokens), strconv.Itoa(r.Turns), r.Status, errorCell(r.Status, r.Error), paperPeakCell(r)}
	}
	l.table.setRows(rows)
	l.openBt.Disable()
	if l.filter != "" {
		l.status.SetText(fmt.Sprintf("Experiment #%d: %d of %s match %q", l.expID, len(l.shown), plural(len(l.all), "rollout", "rollouts"), l.filter))
	} else {
		l.status.SetText(fmt.Sprintf("Experiment #%d: %s", l.expID, plural(len(l.all), "rollout", "rollouts")))
	}
}

func (l *rolloutList) openSelected() {
	row := l.table.selected
	if row < 0 || row >= len(l.shown) {
		return
	}
	ids := make([]int64, len(l.shown))
	for i, r := range l.shown {
		ids[i] = r.ID
	}
	l.nav.openTrace(l.shown[row].ID, ids)
}

// errorCell is a rollout's Error column: the first line of its error, except
// that a rollout cancelled in the middle of a model call (its stored error is
// that call's "context canceled") reads as what it is, a stop that Resume
// picks up from that turn, e.g. "stopped in turn 3 (resumable)" for an error
// "turn 2: …" (errors count turns from 0, Trace from 1).
func errorCell(status, err string) string {
	if status == storage.StatusCancelled && strings.Contains(err, context.Canceled.Error()) {
		var n int // the stored error counts turns from 0, Trace from 1
		if _, serr := fmt.Sscanf(err, "turn %d:", &n); serr == nil && n >= 0 {
			return fmt.Sprintf("stopped in turn %d (resumable)", n+1)
		}
		return "stopped (resumable)"
	}
	return firstLine(err)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// The real store is what the app hands the screens.
var _ Store = (*storage.Store)(nil)

// browserColumn is one column of the rollout browser: its header, width, sort
// key and cell text.
type browserColumn struct {
	title string
	width float32
	sort  string
	cell  func(storage.BrowseRow) string
}

var browserColumns = []browserColumn{
	{"Experiment", 150, storage.SortExperiment, func(r storage.BrowseRow) string {
		return experimentLabel(storage.ExperimentRow{ID: r.ExperimentID, Name: r.Experiment})
	}},
	{"Task", 150, storage.SortTask, func(r storage.BrowseRow) string { return r.TaskKey }},
	{"Policy", 70, storage.SortPolicy, func(r storage.BrowseRow) string { return r.Policy }},
	{"Model", 150, storage.SortModel, func(r storage.BrowseRow) string { return r.Model }},
	{"Dataset", 80, storage.SortDataset, func(r storage.BrowseRow) string { return r.Dataset }},
	{"Obj.", 45, storage.SortObjectives, func(r storage.BrowseRow) string { return strconv.Itoa(r.Objectives) }},
	{"EM", 62, storage.SortEM, func(r storage.BrowseRow) string { return scoreText("%.2f", r.EM, r.Status == storage.StatusDone) }},
	{"F1", 62, storage.SortF1, func(r storage.BrowseRow) string { return scoreText("%.2f", r.F1, r.Status == storage.StatusDone) }},
	{"Correct", 72, storage.SortCorrect, func(r storage.BrowseRow) string {
		if r.CountMismatch {
			return fmt.Sprintf("%d/%d ≠#", r.Correct(), r.Objectives)
		}
		return fmt.Sprintf("%d/%d", r.Correct(), r.Objectives)
	}},
	{"Req. peak", 72, storage.SortPeakTokens, func(r storage.BrowseRow) string { return strconv.Itoa(r.PeakTokens) }},
	{"Paper peak", 80, storage.SortPaperPeakTokens, func(r storage.BrowseRow) string { return paperPeakCell(r.RolloutRow) }},
	{"Turns", 62, storage.SortTurns, func(r storage.BrowseRow) string {
		if r.HitMaxTurns {
			return strconv.Itoa(r.Turns) + " max"
		}
		return strconv.Itoa(r.Turns)
	}},
	{"Time s", 66, storage.SortTime, func(r storage.BrowseRow) string { return fmt.Sprintf("%.1f", r.Seconds) }},
	{"Sub-calls", 110, storage.SortSubCallTokens, func(r storage.BrowseRow) string {
		if r.SubCallTokens == 0 && r.SubCallSeconds == 0 {
			return ""
		}
		return fmt.Sprintf("%d tok · %.1f s", r.SubCallTokens, r.SubCallSeconds)
	}},
	{"Status", 75, storage.SortStatus, func(r storage.BrowseRow) string { return r.Status }},
	{"Error", 200, storage.SortError, func(r storage.BrowseRow) string { return errorCell(r.Status, r.Error) }},
}

// browserList is the rollout browser's table: one page of a query's rollouts.
type browserList struct {
	u       *UI
	shown   []storage.BrowseRow // the page shown
	total   int
	table   *dataTable
	openBt  *widget.Button
	cmpBt   *widget.Button
	prevBt  *widget.Button
	nextBt  *widget.Button
	status  *widget.Label
	content fyne.CanvasObject
	keepID  int64 // rollout to select again after a reload (0 = none)
}

// rolloutsPanel is the Rollouts screen: the rollout browser over every
// experiment, with sortable columns, filters, FTS5 text search and paging.
type rolloutsPanel struct {
	u                                 *UI
	st                                rolloutsStore
	nav                               navigator
	content                           fyne.CanvasObject
	experiments                       []storage.ExperimentRow
	pick                              *widget.Select // experiment ("All experiments" = 0)
	policy                            *widget.Select
	model                             *widget.Select
	dataset                           *widget.Select
	status                            *widget.Select
	filter                            *widget.Entry // text search
	wrong, mismatch, maxTurns, failed *widget.Check
	list                              *browserList
	expID                             int64 // chosen experiment, 0 = all
	query                             storage.RolloutQuery
	pageSize                          int
	seq, fseq                         int
	quiet                             bool // options being set by code, not the user
}

const anyChoice = "(any)"
const allExperiments = "All experiments"

func newRolloutsPanel(u *UI) *rolloutsPanel {
	p := &rolloutsPanel{u: u, st: u.deps.Store, nav: u, pageSize: storage.DefaultPageSize}
	l := &browserList{u: u}
	p.list = l
	headers := make([]string, len(browserColumns))
	widths := make([]float32, len(browserColumns))
	for i, c := range browserColumns {
		headers[i], widths[i] = c.title, c.width
	}
	l.table = newDataTable(headers, widths)
	l.table.table.CreateHeader = func() fyne.CanvasObject { return newSortHeader(p) }
	l.table.table.UpdateHeader = func(id widget.TableCellID, o fyne.CanvasObject) {
		h := o.(*sortHeader)
		h.col = id.Col
		text := ""
		if id.Col >= 0 && id.Col < len(browserColumns) {
			c := browserColumns[id.Col]
			text = c.title
			if key := p.query.Sort; key == c.sort || key == "" && c.sort == storage.SortID {
				if p.query.Desc {
					text += " ▼"
				} else {
					text += " ▲"
				}
			}
		}
		h.SetText(text)
	}
	l.openBt = widget.NewButton("Open in Trace", p.openSelected)
	l.openBt.Disable()
	l.cmpBt = widget.NewButton("Compare…", func() {
		if r := l.table.selected; r >= 0 && r < len(l.shown) {
			p.nav.OpenCompare(l.shown[r].ID, 0)
		}
	})
	l.cmpBt.Disable()
	l.prevBt = widget.NewButtonWithIcon("", theme.NavigateBackIcon(), func() { p.page(-1) })
	l.nextBt = widget.NewButtonWithIcon("", theme.NavigateNextIcon(), func() { p.page(1) })
	l.status = widget.NewLabel("Loading rollouts…")
	l.status.Wrapping = fyne.TextWrapWord
	l.table.onSelect = func(int) { l.openBt.Enable(); l.cmpBt.Enable() }
	l.table.onActivate = func(int) { p.openSelected() }
	l.content = container.NewBorder(nil, container.NewBorder(nil, nil, container.NewHBox(l.prevBt, l.nextBt), container.NewHBox(l.cmpBt, l.openBt), l.status),
		nil, nil, l.table.table)

	p.pick = widget.NewSelect([]string{allExperiments}, func(label string) {
		if p.quiet {
			return
		}
		id := int64(0)
		for _, e := range p.experiments {
			if experimentLabel(e) == label {
				id = e.ID
			}
		}
		p.expID = id
		p.changed()
	})
	p.pick.PlaceHolder = allExperiments
	choice := func(ph string) *widget.Select {
		s := widget.NewSelect([]string{anyChoice}, func(string) {
			if !p.quiet {
				p.changed()
			}
		})
		s.PlaceHolder = ph
		return s
	}
	p.policy, p.model, p.dataset, p.status = choice("policy"), choice("model"), choice("dataset"), choice("status")
	p.filter = widget.NewEntry()
	p.filter.SetPlaceHolder("search questions, answers, internal states, queries…")
	p.filter.OnChanged = func(string) { p.changed() }
	// Return in the search field moves the keyboard to the results: arrows,
	// then Return opens the highlighted rollout in Trace.
	p.filter.OnSubmitted = func(string) {
		if w := u.deps.Window; w != nil {
			w.Canvas().Focus(l.table.table)
		}
	}
	check := func(label string) *widget.Check {
		return widget.NewCheck(label, func(bool) {
			if !p.quiet {
				p.changed()
			}
		})
	}
	p.wrong, p.mismatch, p.maxTurns, p.failed = check("wrong only"), check("answer count mismatch"), check("hit max turns"), check("failed")
	row1 := container.NewBorder(nil, nil, widget.NewLabel("Rollouts"), nil,
		container.NewGridWithColumns(5, p.pick, p.policy, p.model, p.dataset, p.status))
	row2 := container.NewBorder(nil, nil, nil, container.NewHBox(p.wrong, p.mismatch, p.maxTurns, p.failed), p.filter)
	p.content = container.NewBorder(container.NewVBox(row1, row2), nil, nil, nil, l.content)

	ev := &u.events
	ev.ExperimentCreated.Subscribe(func(int64) { p.reload() })
	ev.ExperimentFinished.Subscribe(func(RunEnded) { p.reload() })
	u.follow(ScreenRollouts, p.reload)
	return p
}

// sortHeader is a header cell of the browser: tapping it sorts by its column,
// tapping again reverses the order.
type sortHeader struct {
	widget.Label
	p   *rolloutsPanel
	col int
}

func newSortHeader(p *rolloutsPanel) *sortHeader {
	h := &sortHeader{p: p}
	h.TextStyle.Bold = true
	h.Truncation = fyne.TextTruncateEllipsis
	h.ExtendBaseWidget(h)
	return h
}

// Tapped sorts by the header's column.
func (h *sortHeader) Tapped(*fyne.PointEvent) { h.p.sortBy(h.col) }

// sortBy orders by column col (ascending; descending when it already sorts by it).
func (p *rolloutsPanel) sortBy(col int) {
	if col < 0 || col >= len(browserColumns) {
		return
	}
	key := browserColumns[col].sort
	if p.query.Sort == key {
		p.query.Desc = !p.query.Desc
	} else {
		p.query.Sort, p.query.Desc = key, false
	}
	p.query.Offset = 0
	p.load()
}

func selected(s *widget.Select) string {
	if s.Selected == anyChoice {
		return ""
	}
	return s.Selected
}

// changed rebuilds the query from the filters and loads its first page.
func (p *rolloutsPanel) changed() {
	q := p.query
	q.ExperimentID = p.expID
	q.Policy, q.Model, q.Dataset, q.Status = selected(p.policy), selected(p.model), selected(p.dataset), selected(p.status)
	q.Text = p.filter.Text
	q.WrongOnly, q.CountMismatch, q.HitMaxTurns, q.Failed = p.wrong.Checked, p.mismatch.Checked, p.maxTurns.Checked, p.failed.Checked
	q.Offset = 0
	p.query = q
	p.list.keepID = 0
	p.load()
}

// page moves delta pages.
func (p *rolloutsPanel) page(delta int) {
	off := p.query.Offset + delta*p.pageSize
	if off < 0 || off >= p.list.total {
		return
	}
	p.query.Offset = off
	p.list.keepID = 0
	p.load()
}

// load runs the query for the current page; a later call wins.
func (p *rolloutsPanel) load() {
	p.seq++
	seq := p.seq
	q := p.query
	q.Limit = p.pageSize
	background(p.u, func(ctx context.Context) (storage.RolloutPage, error) {
		return p.st.BrowseRollouts(ctx, q)
	}, func(pg storage.RolloutPage, err error) {
		if seq != p.seq {
			return
		}
		if err != nil {
			p.list.status.SetText("Could not list rollouts: " + err.Error())
			return
		}
		p.apply(pg, q)
	})
}

func (p *rolloutsPanel) apply(pg storage.RolloutPage, q storage.RolloutQuery) {
	l := p.list
	l.shown, l.total = pg.Rows, pg.Total
	rows := make([][]string, len(pg.Rows))
	for i, r := range pg.Rows {
		cells := make([]string, len(browserColumns))
		for j, c := range browserColumns {
			cells[j] = c.cell(r)
		}
		rows[i] = cells
	}
	keep := l.keepID
	l.table.setRows(rows)
	l.openBt.Disable()
	l.cmpBt.Disable()
	for i, r := range pg.Rows {
		if keep != 0 && r.ID == keep {
			l.table.selectRow(i)
		}
	}
	l.keepID = keep
	enable(l.prevBt, q.Offset > 0)
	enable(l.nextBt, q.Offset+len(pg.Rows) < pg.Total)
	switch {
	case pg.Total == 0:
		l.status.SetText("No rollout matches.")
	default:
		l.status.SetText(fmt.Sprintf("rollouts %d–%d of %d", q.Offset+1, q.Offset+len(pg.Rows), pg.Total))
	}
}

// reload refreshes the filter choices and the page shown, keeping the selected
// rollout selected (a live run's new rollouts and turns appear).
func (p *rolloutsPanel) reload() {
	if r := p.list.table.selected; r >= 0 && r < len(p.list.shown) {
		p.list.keepID = p.list.shown[r].ID
	}
	p.fseq++
	seq := p.fseq
	type choices struct {
		es []storage.ExperimentRow
		f  storage.RolloutFacets
	}
	background(p.u, func(ctx context.Context) (choices, error) {
		es, err := p.st.Experiments(ctx)
		if err != nil {
			return choices{}, err
		}
		f, err := p.st.Facets(ctx)
		return choices{es, f}, err
	}, func(c choices, err error) {
		if seq != p.fseq {
			return
		}
		if err != nil {
			p.list.status.SetText("Could not list experiments: " + err.Error())
			return
		}
		p.quiet = true
		p.experiments = c.es
		labels := []string{allExperiments}
		for _, e := range c.es {
			labels = append(labels, experimentLabel(e))
		}
		p.pick.SetOptions(labels)
		if p.expID == 0 || !containsID(c.es, p.expID) {
			p.expID = 0
			p.pick.ClearSelected()
		} else {
			for _, e := range c.es {
				if e.ID == p.expID {
					p.pick.SetSelected(experimentLabel(e))
				}
			}
		}
		for _, s := range []struct {
			sel  *widget.Select
			opts []string
		}{{p.policy, c.f.Policies}, {p.model, c.f.Models}, {p.dataset, c.f.Datasets}, {p.status, c.f.Statuses}} {
			cur := s.sel.Selected
			s.sel.SetOptions(append([]string{anyChoice}, s.opts...))
			if cur != "" && cur != anyChoice && !contains(s.opts, cur) {
				s.sel.ClearSelected()
			}
		}
		p.quiet = false
		p.load()
	})
}

func containsID(es []storage.ExperimentRow, id int64) bool {
	for _, e := range es {
		if e.ID == id {
			return true
		}
	}
	return false
}

// openSelected opens the selected rollout in Trace; ↑/↓ there walk this query.
func (p *rolloutsPanel) openSelected() {
	l := p.list
	row := l.table.selected
	if row < 0 || row >= len(l.shown) {
		return
	}
	p.nav.openTraceInQuery(l.shown[row].ID, p.query, p.query.Offset+row, l.total)
}

// paperPeakCell is a rollout's paper peak (MEM1 eval.py, o200k): the count,
// "–" where eval.py gives None (lenient Exact_match 0), "" while not computed.
func paperPeakCell(r storage.RolloutRow) string {
	if r.Paper == nil {
		return ""
	}
	if pk, ok := r.PaperPeak(); ok {
		return strconv.Itoa(pk)
	}
	return "–"
}
