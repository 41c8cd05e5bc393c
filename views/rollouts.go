package views

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/mem1lab/mem1lab/storage"
)

// rolloutList is a table of one experiment's rollouts with an Open button; both
// Runs and Rollouts show one. Double-clicking a row or pressing Open shows the
// rollout in Trace.
type rolloutList struct {
	u       *UI
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

func newRolloutList(u *UI) *rolloutList {
	l := &rolloutList{u: u}
	l.table = newDataTable([]string{"Task", "Objectives", "EM", "F1", "Peak tokens", "Turns", "Status", "Error"},
		[]float32{190, 90, 60, 60, 100, 60, 90, 260})
	l.openBt = widget.NewButton("Open in Trace", l.openSelected)
	l.openBt.Disable()
	l.status = widget.NewLabel("Select an experiment.")
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
		return l.u.deps.Store.Rollouts(ctx, expID)
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

// setFilter keeps the rows whose task, dataset, policy, status or error contains s
// (case-insensitive).
func (l *rolloutList) setFilter(s string) {
	l.filter = strings.ToLower(strings.TrimSpace(s))
	l.apply()
}

func (l *rolloutList) apply() {
	l.shown = l.shown[:0:0]
	for _, r := range l.all {
		if l.filter == "" || strings.Contains(strings.ToLower(strings.Join([]string{r.TaskKey, r.Dataset, r.Policy, r.Status, r.Error}, " ")), l.filter) {
			l.shown = append(l.shown, r)
		}
	}
	rows := make([][]string, len(l.shown))
	for i, r := range l.shown {
		rows[i] = []string{r.TaskKey, strconv.Itoa(r.Objectives), fmt.Sprintf("%.2f", r.EM), fmt.Sprintf("%.2f", r.F1),
			strconv.Itoa(r.PeakTokens), strconv.Itoa(r.Turns), r.Status, firstLine(r.Error)}
	}
	l.table.setRows(rows)
	l.openBt.Disable()
	if l.filter != "" {
		l.status.SetText(fmt.Sprintf("Experiment #%d: %d of %d rollouts match %q", l.expID, len(l.shown), len(l.all), l.filter))
	} else {
		l.status.SetText(fmt.Sprintf("Experiment #%d: %d rollouts", l.expID, len(l.all)))
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
	l.u.trace.open(l.shown[row].ID, ids)
	_ = l.u.Show(ScreenTrace)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// rolloutsPanel is the Rollouts screen: pick an experiment, filter its rollouts,
// open one in Trace.
type rolloutsPanel struct {
	u           *UI
	content     fyne.CanvasObject
	experiments []storage.ExperimentRow
	pick        *widget.Select
	filter      *widget.Entry
	list        *rolloutList
	expID       int64 // chosen experiment, 0 = none
	seq         int
}

func newRolloutsPanel(u *UI) *rolloutsPanel {
	p := &rolloutsPanel{u: u}
	p.list = newRolloutList(u)
	p.pick = widget.NewSelect(nil, func(label string) {
		for _, e := range p.experiments {
			if experimentLabel(e) == label && e.ID != p.expID {
				p.expID = e.ID
				p.list.load(e.ID)
			}
		}
	})
	p.pick.PlaceHolder = "(choose an experiment)"
	p.filter = widget.NewEntry()
	p.filter.SetPlaceHolder("filter: task, status, error…")
	p.filter.OnChanged = p.list.setFilter
	bar := container.NewBorder(nil, nil, widget.NewLabel("Experiment"), nil, container.NewGridWithColumns(2, p.pick, p.filter))
	p.content = container.NewBorder(bar, nil, nil, nil, p.list.content)
	return p
}

// reload refreshes the experiment choices and, when one is chosen, its rollouts.
func (p *rolloutsPanel) reload() {
	p.seq++
	seq := p.seq
	background(p.u, func(ctx context.Context) ([]storage.ExperimentRow, error) {
		return p.u.deps.Store.Experiments(ctx)
	}, func(es []storage.ExperimentRow, err error) {
		if seq != p.seq {
			return
		}
		if err != nil {
			p.list.status.SetText("Could not list experiments: " + err.Error())
			return
		}
		p.experiments = es
		labels := make([]string, len(es))
		for i, e := range es {
			labels[i] = experimentLabel(e)
		}
		cur := p.pick.Selected
		p.pick.SetOptions(labels)
		if contains(labels, cur) && p.expID != 0 {
			p.list.load(p.expID)
		} else {
			p.expID = 0
			p.pick.ClearSelected()
		}
	})
}

// selectExperiment chooses experiment id when it is listed.
func (p *rolloutsPanel) selectExperiment(id int64) {
	for _, e := range p.experiments {
		if e.ID == id {
			p.pick.SetSelected(experimentLabel(e))
		}
	}
}
