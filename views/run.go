package views

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// Choices offered by the New run form (the CLI accepts the same words).
var (
	modeChoices    = []string{"completions", "chat"}
	policyChoices  = []string{"mem1", "full"}
	composeChoices = []string{"consecutive", "random"}
)

// runPanel is the New run screen: the run settings form, Run/Cancel, live progress
// and the finished run's summary by group.
type runPanel struct {
	u       *UI
	content fyne.CanvasObject

	name, endpoint, model, apiKeyEnv               *widget.Entry
	mode, policy, dataset, compose                 *widget.Select
	objectives, tasks, seed, concurrency, maxTurns *widget.Entry
	topK, temperature, topP, maxTokens             *widget.Entry
	form                                           *widget.Form
	runBt, cancelBt                                *widget.Button
	errors                                         *widget.Label
	bar                                            *widget.ProgressBar
	progress                                       *widget.Label
	status                                         *widget.Label
	summary                                        *dataTable
	groups                                         []experiments.Group

	running bool
	cancel  context.CancelFunc
	runSeq  int
}

func newRunPanel(u *UI) *runPanel {
	p := &runPanel{u: u}
	def := u.deps.DefaultRun
	entry := func(v string) *widget.Entry { e := widget.NewEntry(); e.SetText(v); return e }
	choose := func(opts []string, v, fallback string) *widget.Select {
		s := widget.NewSelect(opts, nil)
		if v == "" {
			v = fallback
		}
		s.SetSelected(v)
		return s
	}
	itoa := strconv.Itoa
	ftoa := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

	p.name = entry(def.Name)
	p.name.SetPlaceHolder("optional; generated when empty")
	p.endpoint = entry(def.Endpoint)
	p.endpoint.SetPlaceHolder("http://127.0.0.1:8000/v1")
	p.model = entry(def.Model)
	p.mode = choose(modeChoices, def.Mode, "completions")
	p.apiKeyEnv = entry(def.APIKeyEnv)
	p.apiKeyEnv.SetPlaceHolder("e.g. OPENAI_API_KEY (the key itself is never stored)")
	p.policy = choose(policyChoices, def.Policy, "mem1")
	p.dataset = widget.NewSelect(nil, nil)
	if def.Dataset != "" {
		p.dataset.SetOptions([]string{def.Dataset})
		p.dataset.SetSelected(def.Dataset)
	}
	p.objectives = entry(itoa(def.Objectives))
	p.tasks = entry(itoa(def.Tasks))
	p.seed = entry(strconv.FormatInt(def.Seed, 10))
	p.compose = choose(composeChoices, def.Compose, "consecutive")
	p.concurrency = entry(itoa(def.Concurrency))
	p.maxTurns = entry(itoa(def.MaxTurns))
	p.topK = entry(itoa(def.TopK))
	p.temperature = entry(ftoa(def.Temperature))
	p.topP = entry(ftoa(def.TopP))
	p.maxTokens = entry(itoa(def.MaxTokens))

	p.form = widget.NewForm(
		widget.NewFormItem("Name", p.name),
		widget.NewFormItem("Endpoint URL", p.endpoint),
		widget.NewFormItem("Model", p.model),
		widget.NewFormItem("Mode", p.mode),
		widget.NewFormItem("API key env var", p.apiKeyEnv),
		widget.NewFormItem("Policy", p.policy),
		widget.NewFormItem("Dataset", p.dataset),
		widget.NewFormItem("Objectives", p.objectives),
		widget.NewFormItem("Tasks (0 = all)", p.tasks),
		widget.NewFormItem("Seed", p.seed),
		widget.NewFormItem("Compose", p.compose),
		widget.NewFormItem("Concurrency", p.concurrency),
		widget.NewFormItem("Max turns (0 = auto)", p.maxTurns),
		widget.NewFormItem("Top-k passages", p.topK),
		widget.NewFormItem("Temperature", p.temperature),
		widget.NewFormItem("Top-p", p.topP),
		widget.NewFormItem("Max tokens per turn", p.maxTokens),
	)

	p.runBt = widget.NewButton("Run", p.start)
	p.runBt.Importance = widget.HighImportance
	p.cancelBt = widget.NewButton("Cancel", p.stop)
	p.cancelBt.Disable()
	p.errors = widget.NewLabel("")
	p.errors.Wrapping = fyne.TextWrapWord
	p.errors.Importance = widget.DangerImportance
	p.bar = widget.NewProgressBar()
	p.progress = widget.NewLabel("Not started.")
	p.status = widget.NewLabel("")
	p.status.Wrapping = fyne.TextWrapWord
	p.summary = newDataTable([]string{"Policy", "Objectives", "Rollouts", "Failed", "Mean EM", "Mean F1", "Mean peak tokens", "Mean seconds"},
		[]float32{80, 90, 80, 70, 80, 80, 130, 110})

	buttons := container.NewHBox(p.runBt, p.cancelBt)
	left := container.NewVScroll(container.NewVBox(p.form, buttons, p.errors))
	right := container.NewBorder(
		container.NewVBox(widget.NewLabelWithStyle("Progress", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
			p.bar, p.progress, p.status,
			widget.NewLabelWithStyle("Summary by group", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})),
		nil, nil, nil, p.summary.table)
	split := container.NewHSplit(left, right)
	split.Offset = 0.45
	p.content = split
	return p
}

// reloadDatasets offers the store's datasets in the Dataset select, keeping the
// current choice when it still exists.
func (p *runPanel) reloadDatasets() {
	background(p.u, func(ctx context.Context) ([]storage.DatasetInfo, error) {
		return p.u.deps.Store.Datasets(ctx)
	}, func(ds []storage.DatasetInfo, err error) {
		if err != nil {
			p.status.SetText("Could not list datasets: " + err.Error())
			return
		}
		names := make([]string, len(ds))
		for i, d := range ds {
			names[i] = d.Name
		}
		cur := p.dataset.Selected
		p.dataset.SetOptions(names)
		switch {
		case contains(names, cur):
			p.dataset.SetSelected(cur)
		case len(names) > 0:
			p.dataset.SetSelected(names[0])
		default:
			p.dataset.ClearSelected()
		}
	})
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// config reads the form into a RunConfig. Every invalid field is reported, one
// line each, in form order. Settings the form does not show (template, scheme,
// request timeout) come from Deps.DefaultRun.
func (p *runPanel) config() (experiments.RunConfig, error) {
	cfg := p.u.deps.DefaultRun
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	intField := func(label string, e *widget.Entry, min int) int {
		s := strings.TrimSpace(e.Text)
		v, err := strconv.Atoi(s)
		if err != nil {
			bad("%s: %q is not a whole number", label, s)
			return 0
		}
		if v < min {
			bad("%s must be at least %d (got %d)", label, min, v)
		}
		return v
	}
	floatField := func(label string, e *widget.Entry) (float64, bool) {
		s := strings.TrimSpace(e.Text)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			bad("%s: %q is not a number", label, s)
			return 0, false
		}
		return v, true
	}

	cfg.Name = strings.TrimSpace(p.name.Text)
	cfg.Endpoint = strings.TrimSpace(p.endpoint.Text)
	if u, err := url.Parse(cfg.Endpoint); cfg.Endpoint == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("Endpoint URL: %q is not an http(s) URL such as http://127.0.0.1:8000/v1", cfg.Endpoint)
	}
	cfg.Model = strings.TrimSpace(p.model.Text)
	if cfg.Model == "" {
		bad("Model: give the model name the endpoint serves")
	}
	cfg.Mode = p.mode.Selected
	if !contains(modeChoices, cfg.Mode) {
		bad("Mode: choose completions or chat")
	}
	cfg.APIKeyEnv = strings.TrimSpace(p.apiKeyEnv.Text)
	cfg.Policy = p.policy.Selected
	if !contains(policyChoices, cfg.Policy) {
		bad("Policy: choose mem1 or full")
	}
	cfg.Dataset = p.dataset.Selected
	if cfg.Dataset == "" {
		bad("Dataset: choose an imported dataset")
	}
	cfg.Objectives = intField("Objectives", p.objectives, 1)
	cfg.Tasks = intField("Tasks", p.tasks, 0)
	if s := strings.TrimSpace(p.seed.Text); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			bad("Seed: %q is not a whole number", s)
		}
		cfg.Seed = v
	} else {
		bad("Seed: %q is not a whole number", s)
	}
	cfg.Compose = p.compose.Selected
	if !contains(composeChoices, cfg.Compose) {
		bad("Compose: choose consecutive or random")
	}
	cfg.Concurrency = intField("Concurrency", p.concurrency, 1)
	cfg.MaxTurns = intField("Max turns", p.maxTurns, 0)
	cfg.TopK = intField("Top-k", p.topK, 1)
	var ok bool
	if cfg.Temperature, ok = floatField("Temperature", p.temperature); ok && cfg.Temperature < 0 {
		bad("Temperature must be 0 or more (got %g)", cfg.Temperature)
	}
	if cfg.TopP, ok = floatField("Top-p", p.topP); ok && (cfg.TopP <= 0 || cfg.TopP > 1) {
		bad("Top-p must be more than 0 and at most 1 (got %g)", cfg.TopP)
	}
	cfg.MaxTokens = intField("Max tokens", p.maxTokens, 1)
	if len(errs) > 0 {
		return cfg, errors.New(strings.Join(errs, "\n"))
	}
	return cfg, nil
}

// start validates the form and launches the run in a goroutine with its own
// cancellable context.
func (p *runPanel) start() {
	if p.running {
		return
	}
	cfg, err := p.config()
	if err != nil {
		p.errors.SetText(err.Error())
		return
	}
	if p.u.deps.Runner == nil {
		p.errors.SetText("Runs are not available: no runner was configured.")
		return
	}
	p.errors.SetText("")
	ctx, cancel := context.WithCancel(p.u.ctx)
	p.running, p.cancel = true, cancel
	p.runSeq++
	seq := p.runSeq
	p.runBt.Disable()
	p.cancelBt.Enable()
	p.bar.SetValue(0)
	p.progress.SetText("Starting…")
	p.status.SetText("")
	p.groups = nil
	p.summary.setRows(nil)

	runner := p.u.deps.Runner
	p.u.jobs.Add(1)
	go func() {
		defer p.u.jobs.Done()
		defer cancel()
		sum, err := runner.Run(ctx, cfg, func(pr experiments.Progress) {
			p.u.do(func() {
				if seq == p.runSeq && p.running {
					p.showProgress(pr)
				}
			})
		})
		cancelled := ctx.Err() != nil
		p.u.do(func() { p.finish(sum, err, cancelled) })
	}()
}

// stop cancels the run in flight.
func (p *runPanel) stop() {
	if p.cancel == nil {
		return
	}
	p.cancelBt.Disable()
	p.progress.SetText(p.progress.Text + " · cancelling…")
	p.cancel()
}

func (p *runPanel) showProgress(pr experiments.Progress) {
	if pr.Total > 0 {
		p.bar.SetValue(float64(pr.Done+pr.Failed) / float64(pr.Total))
	}
	p.progress.SetText(progressText(pr))
}

// progressText is e.g. "12 done, 1 failed, 3 running of 40 · 87 turns".
func progressText(pr experiments.Progress) string {
	s := fmt.Sprintf("%d done, %d failed, %d running of %d · %d turns", pr.Done, pr.Failed, pr.Running, pr.Total, pr.Turns)
	if pr.Experiment != 0 {
		s = fmt.Sprintf("Experiment #%d: %s", pr.Experiment, s)
	}
	return s
}

func (p *runPanel) finish(sum experiments.Summary, err error, cancelled bool) {
	p.running, p.cancel = false, nil
	p.runBt.Enable()
	p.cancelBt.Disable()
	switch {
	case cancelled:
		p.status.SetText(fmt.Sprintf("Run cancelled (experiment #%d); finished rollouts are kept.", sum.Experiment))
	case err != nil:
		p.status.SetText("Run failed: " + err.Error())
	default:
		p.bar.SetValue(1)
		p.status.SetText(fmt.Sprintf("Run finished: experiment #%d, %d groups.", sum.Experiment, len(sum.Groups)))
	}
	p.groups = sum.Groups
	rows := make([][]string, len(sum.Groups))
	for i, g := range sum.Groups {
		rows[i] = []string{g.Policy, strconv.Itoa(g.Objectives), strconv.Itoa(g.Rollouts), strconv.Itoa(g.Failed),
			fmt.Sprintf("%.3f", g.MeanEM), fmt.Sprintf("%.3f", g.MeanF1),
			fmt.Sprintf("%.0f", g.MeanPeakTokens), fmt.Sprintf("%.1f", g.MeanSeconds)}
	}
	p.summary.setRows(rows)
	p.u.runs.reload()
	p.u.rollouts.reload()
}
