package views

import (
	"context"
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/mem1lab/mem1lab/storage"
)

// runsPanel is the Runs screen: experiments with their progress and mean EM, and
// the selected experiment's rollouts below.
type runsPanel struct {
	u           *UI
	content     fyne.CanvasObject
	experiments []storage.ExperimentRow
	table       *dataTable
	selectedID  int64
	rollouts    *rolloutList
	status      *widget.Label
	seq         int
}

func newRunsPanel(u *UI) *runsPanel {
	p := &runsPanel{u: u}
	p.table = newDataTable([]string{"Name", "Created", "Status", "Progress", "Mean EM"}, []float32{240, 150, 90, 230, 80})
	p.rollouts = newRolloutList(u)
	p.status = widget.NewLabel("")
	p.table.onSelect = func(row int) {
		e := p.experiments[row]
		p.selectedID = e.ID
		p.rollouts.load(e.ID)
		u.rollouts.selectExperiment(e.ID)
	}
	refresh := widget.NewButton("Refresh", p.reload)
	top := container.NewBorder(container.NewBorder(nil, nil, widget.NewLabelWithStyle("Experiments", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), refresh, p.status),
		nil, nil, nil, p.table.table)
	split := container.NewVSplit(top, p.rollouts.content)
	split.Offset = 0.4
	p.content = split
	return p
}

// reload fetches the experiments, keeping the selected one selected.
func (p *runsPanel) reload() {
	p.seq++
	seq := p.seq
	background(p.u, func(ctx context.Context) ([]storage.ExperimentRow, error) {
		return p.u.deps.Store.Experiments(ctx)
	}, func(es []storage.ExperimentRow, err error) {
		if seq != p.seq {
			return
		}
		if err != nil {
			p.status.SetText("Could not list experiments: " + err.Error())
			return
		}
		p.experiments = es
		rows := make([][]string, len(es))
		for i, e := range es {
			rows[i] = []string{experimentLabel(e), e.CreatedAt.Local().Format("2006-01-02 15:04"), e.Status,
				fmt.Sprintf("%d done, %d failed of %d", e.Done, e.Failed, e.Rollouts), fmt.Sprintf("%.3f", e.MeanEM)}
		}
		p.table.setRows(rows)
		p.status.SetText(fmt.Sprintf("%d experiments", len(es)))
		if p.selectedID == 0 && len(es) > 0 {
			p.table.selectRow(0) // the newest experiment until the user picks one
			return
		}
		for i, e := range es {
			if e.ID == p.selectedID {
				p.table.selectRow(i)
			}
		}
	})
}

func experimentLabel(e storage.ExperimentRow) string {
	if e.Name == "" {
		return fmt.Sprintf("#%d", e.ID)
	}
	return fmt.Sprintf("#%d %s", e.ID, e.Name)
}
