package views

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// runsStore is what the Runs screen reads.
type runsStore interface {
	// Experiments lists experiments, newest first, with rollout counts and means.
	Experiments(ctx context.Context) ([]storage.ExperimentRow, error)
	// Rollouts lists one experiment's rollouts.
	Rollouts(ctx context.Context, expID int64) ([]storage.RolloutRow, error)
}

// navigator is how a screen moves to another one without touching it: the
// UI hub routes these to the screen named.
type navigator interface {
	Show(name string) error
	openTrace(id int64, siblings []int64)
	openTraceInQuery(id int64, q storage.RolloutQuery, pos, total int)
	OpenCompare(a, b int64)
}

// runsPanel is the Runs screen: experiments with their progress and mean EM, and
// the selected experiment's rollouts below.
type runsPanel struct {
	u           *UI
	st          runsStore
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
	failures                     *widget.Label // why rollouts failed (first message, counts by kind)
	settings                     *dataTable
	pauseBt, unpauseBt, cancelBt *widget.Button
	continueBt                   *widget.Button
	liveProgress                 map[int64]experiments.Progress
	playing                      map[int64]bool // experiments this UI is playing
	lastFinished                 map[int64]int
	settingSeq                   int
	pollArmed                    bool  // a reload is scheduled for experiments running elsewhere
	newestSeen                   int64 // the newest experiment id listed so far
	// orphaned marks experiments listed as running or paused whose owner process is gone.
	orphaned map[int64]bool
}

func newRunsPanel(u *UI) *runsPanel {
	p := &runsPanel{u: u, st: u.deps.Store}
	p.table = newDataTable([]string{"Name", "Created", "Status", "Progress", "Mean EM / reward"}, []float32{240, 150, 90, 230, 80})
	p.rollouts = newRolloutList(u, u.deps.Store, u)
	p.status = widget.NewLabel("")
	p.status.Wrapping = fyne.TextWrapWord
	p.table.onSelect = func(row int) {
		e := p.experiments[row]
		p.selectedID = e.ID
		p.rollouts.load(e.ID)
		p.showSelected(e)
	}
	refresh := widget.NewButton("Refresh", p.reload)
	top := container.NewBorder(container.NewBorder(nil, nil, widget.NewLabelWithStyle("Experiments", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), refresh, p.status),
		nil, nil, nil, p.table.table)

	p.liveProgress, p.playing, p.lastFinished = map[int64]experiments.Progress{}, map[int64]bool{}, map[int64]int{}
	p.title = widget.NewLabelWithStyle("No experiment selected", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	p.title.Wrapping = fyne.TextWrapWord
	p.bar = widget.NewProgressBar()
	p.progress = widget.NewLabel("")
	p.progress.Wrapping = fyne.TextWrapWord
	p.failures = widget.NewLabel("")
	p.failures.Wrapping = fyne.TextWrapWord
	p.failures.Importance = widget.DangerImportance
	p.failures.Hide()
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
		container.NewVBox(container.NewBorder(nil, nil, nil, container.NewHBox(p.pauseBt, p.unpauseBt, p.cancelBt, p.continueBt), p.title),
			p.bar, p.progress, p.failures), nil, nil, nil, p.settings.table)

	// At 1280×800 the experiments list shows four rows, the per-setting
	// table a 2 policies × 3 objective counts grid, the rollouts the rest
	// (Rollouts has the full table).
	lower := container.NewVSplit(ctl, p.rollouts.content)
	lower.Offset = 0.74
	u.rememberSplit("runs.lower", lower)
	split := container.NewVSplit(top, lower)
	split.Offset = 0.31
	u.rememberSplit("runs.split", split)
	p.content = split

	ev := &u.events
	ev.RunProgress.Subscribe(p.live)
	ev.ExperimentCreated.Subscribe(func(id int64) {
		p.selectedID = id // the experiment just launched is the one to watch
		p.playing[id] = true
		p.reload()
	})
	ev.ExperimentChanged.Subscribe(func(int64) { p.reload() })
	ev.ExperimentFinished.Subscribe(func(r RunEnded) {
		if r.Experiment != 0 {
			delete(p.playing, r.Experiment)
		}
		p.reload()
	})
	u.follow(ScreenRuns, p.reload)
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
	orphan := e != nil && p.orphaned[id] && !p.playing[id]
	active := rc != nil && e != nil && !orphan && (p.playing[id] || e.Status == storage.StatusRunning || e.Status == experiments.StatusPaused)
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
	enable(p.continueBt, rc != nil && unfinished && !p.playing[id] &&
		(orphan || e.Status != storage.StatusRunning && e.Status != experiments.StatusPaused))
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
}

func (p *runsPanel) showLive(pr experiments.Progress) {
	setBar(p.bar, pr.Done, pr.Failed, pr.Total)
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
		strconv.Itoa(s.Running), strconv.Itoa(s.Total), scoreText("%.3f", s.MeanEM, s.Done > 0), scoreText("%.0f", s.MeanPeakTokens, s.Done > 0),
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
	if webShopExperiment(e.ConfigJSON) {
		p.settings.setHeader(7, "Mean reward")
	} else {
		p.settings.setHeader(7, "Mean EM")
	}
	p.title.SetText(experimentLabel(e) + " · " + statusText(e, p.orphaned[e.ID] && !p.playing[e.ID]))
	p.settingSeq++ // a stored-settings load still in flight for an earlier selection is stale now
	live := false
	if pr, ok := p.liveProgress[e.ID]; ok && p.playing[e.ID] {
		p.showLive(pr)
		live = true
	} else {
		setBar(p.bar, e.Done, e.Failed, e.Rollouts)
	}
	if !live {
		p.progress.SetText(fmt.Sprintf("%d done, %d failed, %d running of %d", e.Done, e.Failed, e.Running, e.Rollouts))
		p.setButtons()
	}
	seq := p.settingSeq
	id := e.ID
	type stored struct {
		settings []experiments.SettingProgress
		failures string
	}
	background(p.u, func(ctx context.Context) (stored, error) {
		rows, err := p.st.Rollouts(ctx, id)
		if err != nil {
			return stored{}, err
		}
		return stored{settingsOf(rows), failureSummary(rows)}, nil
	}, func(st stored, err error) {
		if seq != p.settingSeq {
			return
		}
		if err != nil {
			p.progress.SetText("Could not read rollouts: " + err.Error())
			return
		}
		p.failures.SetText(st.failures)
		p.failures.Show()
		if st.failures == "" {
			p.failures.Hide()
		}
		if p.playing[id] {
			return // the live progress fills the table
		}
		ss := st.settings
		rows := make([][]string, len(ss))
		for i, s := range ss {
			rows[i] = settingRow(s)
		}
		p.settings.setRows(rows)
	})
}

// settingsOf aggregates stored rollouts by (model, policy, objectives), in
// first-seen order; means are over done rollouts.
// webShopExperiment reports whether an experiment's stored config is a
// WebShop one ("family": "webshop"); anything unreadable counts as QA.
func webShopExperiment(configJSON string) bool {
	var c struct {
		Family string `json:"family"`
	}
	return json.Unmarshal([]byte(configJSON), &c) == nil && c.Family == core.FamilyWebShop
}

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
		p.u.events.ExperimentChanged.Emit(id) // Runs (this screen) reloads; others may listen
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
	p.u.runStarted()
	go func() {
		defer p.u.jobs.Done()
		defer p.u.runEnded()
		_, err := rc.Resume(p.u.ctx, id, func(pr experiments.Progress) {
			p.u.do(func() { p.u.events.RunProgress.Emit(pr) })
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
			p.u.events.ExperimentFinished.Emit(RunEnded{Experiment: id, Err: err, Cancelled: errors.Is(err, context.Canceled)})
		})
	}()
}

// reload fetches the experiments, keeping the selected one selected.
func (p *runsPanel) reload() {
	p.seq++
	seq := p.seq
	type listed struct {
		es     []storage.ExperimentRow
		orphan map[int64]bool
	}
	rc, playing := p.controller(), maps.Clone(p.playing)
	background(p.u, func(ctx context.Context) (listed, error) {
		es, err := p.st.Experiments(ctx)
		if err != nil {
			return listed{}, err
		}
		// Experiments listed as running that nobody runs any more (the app or the
		// CLI was killed, the machine restarted) are offered for resuming.
		orphan := map[int64]bool{}
		for _, e := range es {
			if rc != nil && !playing[e.ID] && (e.Status == storage.StatusRunning || e.Status == experiments.StatusPaused) {
				if gone, err := rc.Orphaned(ctx, e.ID); err == nil && gone {
					orphan[e.ID] = true
				}
			}
		}
		return listed{es, orphan}, nil
	}, func(l listed, err error) {
		if seq != p.seq {
			return
		}
		if err != nil {
			p.status.SetText("Could not list experiments: " + err.Error())
			return
		}
		es := l.es
		p.experiments, p.orphaned = es, l.orphan
		rows := make([][]string, len(es))
		for i, e := range es {
			rows[i] = []string{experimentLabel(e), e.CreatedAt.Local().Format("2006-01-02 15:04"), statusText(e, p.orphaned[e.ID] && !p.playing[e.ID]),
				fmt.Sprintf("%d done, %d failed of %d", e.Done, e.Failed, e.Rollouts), scoreText("%.3f", e.MeanEM, e.Done > 0)}
		}
		p.table.setRows(rows)
		p.status.SetText(plural(len(es), "experiment", "experiments"))
		p.armPoll(es)
		newest := int64(0)
		if len(es) > 0 {
			newest = es[0].ID
		}
		if newest > p.newestSeen && p.newestSeen != 0 || p.selectedID == 0 && len(es) > 0 {
			// A new experiment (launched here or by another process) or none picked yet:
			// the newest is selected, at the top.
			p.newestSeen = newest
			p.table.selectRow(0)
			return
		}
		p.newestSeen = max(p.newestSeen, newest)
		for i, e := range es {
			if e.ID == p.selectedID {
				p.table.selectRow(i)
			}
		}
	})
}

// statusText is the experiment's status as Runs shows it; an orphaned one
// (listed as running, its process gone) says so.
func statusText(e storage.ExperimentRow, orphaned bool) string {
	if orphaned {
		return "stopped (its process is gone; Resume run)"
	}
	return e.Status
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
		if e.Status == storage.StatusRunning && !p.playing[e.ID] && !p.orphaned[e.ID] {
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
