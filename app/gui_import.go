package app

import (
	"context"
	"fmt"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/storage"

	"github.com/mem1lab/mem1lab/experiments"
	mstorage "github.com/mem1lab/mem1lab/storage"
	"github.com/mem1lab/mem1lab/views"
)

// trajectoriesMenuItem is File › "Import trajectories…": it picks a MEM1
// reference-pipeline JSONL file and loads it into the store as an experiment
// (experiments.ImportTrajectories: all lines or none, errors as file:line), then
// refreshes the screens. The dialog shows the import's warnings.
func trajectoriesMenuItem(win fyne.Window, st *mstorage.Store, ui *views.UI) *fyne.MenuItem {
	return fyne.NewMenuItem("Import trajectories (MEM1 JSONL)…", func() {
		d := dialog.NewFileOpen(func(rc fyne.URIReadCloser, err error) {
			if err != nil {
				dialog.ShowError(err, win)
				return
			}
			if rc == nil {
				return // cancelled
			}
			path := rc.URI().Path()
			rc.Close()
			go func() {
				res, err := experiments.ImportTrajectories(context.Background(), st, path, experiments.ImportOptions{})
				fyne.Do(func() {
					if err != nil {
						dialog.ShowError(err, win)
						return
					}
					dialog.ShowInformation("Trajectories imported", importSummary(path, res), win)
					ui.Refresh()
					_ = ui.Show(views.ScreenRollouts)
				})
			}()
		}, win)
		d.SetFilter(storage.NewExtensionFileFilter([]string{".jsonl", ".json"}))
		d.Show()
	})
}

// importSummary is the import dialog's text: what was stored, and each
// warning ImportTrajectories returned (what the file did not record).
func importSummary(path string, res experiments.ImportResult) string {
	failed := ""
	if res.Failed > 0 {
		failed = fmt.Sprintf(", %d failed", res.Failed)
	}
	msg := fmt.Sprintf("%d trajectories (%d turns%s) from %s are experiment #%d.\nMean EM %.3f · mean F1 %.3f.",
		res.Rollouts, res.Turns, failed, path, res.Experiment, res.MeanEM, res.MeanF1)
	for _, w := range res.Warnings {
		msg += "\n\nWarning: " + w
	}
	return msg
}
