package views

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/mem1lab/mem1lab/experiments"
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

	// Run control of the selected experiment.
	title                        *widget.Label
	bar                          *widget.ProgressBar
	progress                     *widget.Label
	settings                     *dataTable
	pauseBt, unpauseBt, cancelBt *widget.Button
	continueBt                   *widget.Button
	liveProgress                 map[int64]experiments.Progress
	playing                      map[int64]bool // experiments this UI is playing
	lastFinished                 map[int64]int
	settingSeq                   int
	pollArmed                    bool // a reload is scheduled for experiments running elsewhere
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
		p.showSelected(e)
	}
	refresh := widget.NewButton("Refresh", p.reload)
	top := container.NewBorder(container.NewBorder(nil, nil, widget.NewLabelWithStyle("Experiments", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), refresh, p.status),
		nil, nil, nil, p.table.table)

	p.liveProgress, p.playing, p.lastFinished = map[int64]experiments.Progress{}, map[int64]bool{}, map[int64]int{}
	p.title = widget.NewLabelWithStyle("No experiment selected", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	p.bar = widget.NewProgressBar()
	p.progress = widget.NewLabel("")
	p.progress.Wrapping = fyne.TextWrapWord
	p.settings = newDataTable([]string{"Model", "Policy", "Objectives", "Done", "Failed", "Running", "Of", "Mean EM", "Mean request peak", "Mean paper peak"},
		[]float32{200, 70, 85, 60, 60, 70, 50, 80, 130, 130})
	p.pauseBt = widget.NewButton("Pause", func() { p.control("pause") })
	p.unpauseBt = widget.NewButton("Go on", func() { p.control("resume") })
	p.cancelBt = widget.NewButton("Cancel", func() { p.control("cancel") })
	p.cancelBt.Importance = widget.DangerImportance
	p.continueBt = widget.NewButton("Resume run", p.continueRun)
	p.continueBt.Importance = widget.HighImportance
	p.setButtons()
	ctl := container.NewBorder(
		container.NewVBox(container.NewBorder(nil, nil, p.title, container.NewHBox(p.pauseBt, p.unpauseBt, p.cancelBt, p.continueBt)),
			p.bar, p.progress), nil, nil, nil, p.settings.table)

	lower := container.NewVSplit(ctl, p.rollouts.content)
	lower.Offset = 0.4
	split := container.NewVSplit(top, lower)
	split.Offset = 0.3
	p.content = split
	return p
}

// controller is the runner's run control, nil when it has none.
func (p *runsPanel) controller() RunController {
	rc, _ := p.u.deps.Runner.(RunController)
	return rc
}

// setButtons enables the controls that apply to the selected experiment.
func (p *runsPanel) setButtons() {
	id := p.selectedID
	var e *storage.ExperimentRow
	for i := range p.experiments {
		if p.experiments[i].ID == id {
			e = &p.experiments[i]
		}
	}
	rc := p.controller()
	live, isLive := p.liveProgress[id]
	active := rc != nil && e != nil && (p.playing[id] || e.Status == storage.StatusRunning || e.Status == experiments.StatusPaused)
	enable := func(b *widget.Button, on bool) {
		if on {
			b.Enable()
		} else {
			b.Disable()
		}
	}
	paused := (isLive && live.Paused) || (e != nil && e.Status == experiments.StatusPaused)
	enable(p.pauseBt, active && !paused)
	enable(p.unpauseBt, active && paused)
	enable(p.cancelBt, active)
	unfinished := e != nil && e.Done+e.Failed < e.Rollouts
	enable(p.continueBt, rc != nil && unfinished && !p.playing[id] && e.Status != storage.StatusRunning && e.Status != experiments.StatusPaused)
}

// live receives a progress snapshot of an experiment this UI plays.
func (p *runsPanel) live(pr experiments.Progress) {
	if pr.Experiment == 0 {
		return
	}
	p.liveProgress[pr.Experiment] = pr
	p.playing[pr.Experiment] = true
	if pr.Experiment == p.selectedID {
		p.showLive(pr)
	}
	if fin := pr.Done + pr.Failed; fin != p.lastFinished[pr.Experiment] {
		p.lastFinished[pr.Experiment] = fin
		p.reload()
	}
	if p.u.charts != nil {
		p.u.charts.live(pr) // charts of a running experiment follow it (at most every 2 s)
	}
}

// ended is told when this UI stops playing an experiment.
func (p *runsPanel) ended(id int64) {
	delete(p.playing, id)
	p.reload()
}

func (p *runsPanel) showLive(pr experiments.Progress) {
	if pr.Total > 0 {
		p.bar.SetValue(float64(pr.Done+pr.Failed) / float64(pr.Total))
	}
	p.progress.SetText(progressText(pr) + throughputText(pr))
	rows := make([][]string, len(pr.Settings))
	for i, s := range pr.Settings {
		rows[i] = settingRow(s)
	}
	p.settings.setRows(rows)
	p.setButtons()
}

func settingRow(s experiments.SettingProgress) []string {
	return []string{s.Model, s.Policy, strconv.Itoa(s.Objectives), strconv.Itoa(s.Done), strconv.Itoa(s.Failed),
		strconv.Itoa(s.Running), strconv.Itoa(s.Total), fmt.Sprintf("%.3f", s.MeanEM), fmt.Sprintf("%.0f", s.MeanPeakTokens),
		paperPeakMean(s.MeanPaperPeakTokens, s.PaperPeakN)}
}

// paperPeakMean shows eval.py's mean peak and over how many rollouts it was
// taken ("–" when none had one).
func paperPeakMean(mean float64, n int) string {
	if n == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f (n=%d)", mean, n)
}

// showSelected shows the selected experiment: its live progress when this UI
// plays it, else its stored counts and per-setting means.
func (p *runsPanel) showSelected(e storage.ExperimentRow) {
	p.title.SetText(experimentLabel(e) + " · " + e.Status)
	p.settingSeq++ // a stored-settings load still in flight for an earlier selection is stale now
	if pr, ok := p.liveProgress[e.ID]; ok && p.playing[e.ID] {
		p.showLive(pr)
		return
	}
	if e.Rollouts > 0 {
		p.bar.SetValue(float64(e.Done+e.Failed) / float64(e.Rollouts))
	} else {
		p.bar.SetValue(0)
	}
	p.progress.SetText(fmt.Sprintf("%d done, %d failed, %d running of %d", e.Done, e.Failed, e.Running, e.Rollouts))
	p.setButtons()
	seq := p.settingSeq
	id := e.ID
	background(p.u, func(ctx context.Context) ([]experiments.SettingProgress, error) {
		rows, err := p.u.deps.Store.Rollouts(ctx, id)
		if err != nil {
			return nil, err
		}
		return settingsOf(rows), nil
	}, func(ss []experiments.SettingProgress, err error) {
		if seq != p.settingSeq || p.playing[id] {
			return
		}
		if err != nil {
			p.progress.SetText("Could not read rollouts: " + err.Error())
			return
		}
		rows := make([][]string, len(ss))
		for i, s := range ss {
			rows[i] = settingRow(s)
		}
		p.settings.setRows(rows)
	})
}

// settingsOf aggregates stored rollouts by (model, policy, objectives), in
// first-seen order; means are over done rollouts.
func settingsOf(rows []storage.RolloutRow) []experiments.SettingProgress {
	type key struct {
		m, p string
		n    int
	}
	idx := map[key]int{}
	var out []experiments.SettingProgress
	for _, r := range rows {
		k := key{r.Model, r.Policy, r.Objectives}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, experiments.SettingProgress{Model: r.Model, Policy: r.Policy, Objectives: r.Objectives})
		}
		s := &out[i]
		s.Total++
		switch r.Status {
		case storage.StatusDone:
			s.Done++
			s.MeanEM += (r.EM - s.MeanEM) / float64(s.Done)
			s.MeanPeakTokens += (float64(r.PeakTokens) - s.MeanPeakTokens) / float64(s.Done)
			if pk, ok := r.PaperPeak(); ok {
				s.PaperPeakN++
				s.MeanPaperPeakTokens += (float64(pk) - s.MeanPaperPeakTokens) / float64(s.PaperPeakN)
			}
		case storage.StatusFailed:
			s.Failed++
		case storage.StatusRunning:
			s.Running++
		}
	}
	return out
}

// control sends pause, resume or cancel to the selected experiment.
func (p *runsPanel) control(action string) {
	rc := p.controller()
	id := p.selectedID
	if rc == nil || id == 0 {
		return
	}
	background(p.u, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, rc.Control(ctx, id, action)
	}, func(_ struct{}, err error) {
		if err != nil {
			p.status.SetText(fmt.Sprintf("Could not %s experiment #%d: %v", action, id, err))
			return
		}
		if pr, ok := p.liveProgress[id]; ok {
			pr.Paused = action == "pause"
			p.liveProgress[id] = pr
			if id == p.selectedID {
				p.showLive(pr)
			}
		}
		p.status.SetText(fmt.Sprintf("Experiment #%d: %s requested", id, action))
		p.reload()
	})
}

// continueRun resumes the selected experiment's unfinished rollouts (after a
// crash or a cancel), from each rollout's last stored turn.
func (p *runsPanel) continueRun() {
	rc := p.controller()
	id := p.selectedID
	if rc == nil || id == 0 || p.playing[id] {
		return
	}
	p.playing[id] = true
	p.setButtons()
	p.u.jobs.Add(1)
	go func() {
		defer p.u.jobs.Done()
		_, err := rc.Resume(p.u.ctx, id, func(pr experiments.Progress) {
			p.u.do(func() { p.live(pr) })
		})
		p.u.do(func() {
			switch {
			case errors.Is(err, context.Canceled):
				p.status.SetText(fmt.Sprintf("Experiment #%d cancelled; finished turns are kept.", id))
			case err != nil:
				p.status.SetText(fmt.Sprintf("Experiment #%d: %v", id, err))
			default:
				p.status.SetText(fmt.Sprintf("Experiment #%d finished.", id))
			}
			p.ended(id)
		})
	}()
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
		p.armPoll(es)
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

// runsPollInterval is how often Runs reloads the list while an experiment another
// process runs is listed as running (tests turn it off unless they test it).
var runsPollInterval = 2 * time.Second

// armPoll schedules one more reload after runsPollInterval while an experiment
// that another process runs (`mem1lab run` on the same store, say) is listed as
// running, so its progress shows here without pressing Refresh. Experiments this
// UI plays report their progress directly and need no polling.
func (p *runsPanel) armPoll(es []storage.ExperimentRow) {
	if runsPollInterval <= 0 || p.pollArmed {
		return
	}
	elsewhere := false
	for _, e := range es {
		if e.Status == storage.StatusRunning && !p.playing[e.ID] {
			elsewhere = true
		}
	}
	if !elsewhere {
		return
	}
	p.pollArmed = true
	ctx, every := p.u.ctx, runsPollInterval
	go func() {
		t := time.NewTimer(every)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.u.do(func() {
			p.pollArmed = false
			p.reload()
		})
	}()
}

// throughputText is the live throughput line under a running experiment's
// progress, e.g. "\nin flight: gpu-a 62, gpu-b 60 · store wait 1%": the model
// calls under way per endpoint and the share of the workers' time spent
// waiting for their writes to commit (near 0: the GPUs set the pace).
func throughputText(pr experiments.Progress) string {
	if len(pr.Endpoints) == 0 {
		return ""
	}
	parts := make([]string, len(pr.Endpoints))
	for i, e := range pr.Endpoints {
		parts[i] = fmt.Sprintf("%s %d", e.Name, e.InFlight)
	}
	return fmt.Sprintf("\nin flight: %s · store wait %.0f%%", strings.Join(parts, ", "), 100*pr.StoreWaitShare)
}
