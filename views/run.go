package views

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/widget"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// Choices offered by the New run form (the CLI accepts the same words).
var (
	modeChoices    = []string{"completions", "chat"}
	policyChoices  = []string{"mem1", "full", "closed-book", summaryChoice, "resum", "memagent", "mem0", "mem0:add-only", "amem"}
	composeChoices = []string{experiments.ComposeRuleConsecutive, experiments.ComposeRuleRandom, experiments.ComposeRuleMixed}
)

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// runPanel is the New experiment screen: the run settings form, Run/Cancel, live progress
// and the finished run's summary by group.
type runPanel struct {
	u       *UI
	content fyne.CanvasObject

	name, endpoint, model, apiKeyEnv               *widget.Entry
	mode, dataset, compose                         *widget.Select
	policies                                       *widget.CheckGroup
	memory                                         *memoryForm        // memory policies' endpoints and knobs
	sources                                        *widget.CheckGroup // mixed composition's datasets
	endpoints                                      *widget.CheckGroup
	objectives, tasks, seed, concurrency, maxTurns *widget.Entry
	topK, temperature, topP, maxTokens, template   *widget.Entry
	tagThink, tagSearch, tagInfo, tagAnswer        *widget.Entry
	rps                                            *widget.Entry
	form                                           *widget.Form
	runBt, cancelBt, previewBt                     *widget.Button
	importBt, exportBt                             *widget.Button
	errors                                         *widget.Label
	plan                                           *widget.Label
	prompt                                         *widget.Entry
	offer                                          *widget.Label
	resumeBt, freshBt                              *widget.Button
	offerBox                                       *fyne.Container
	offerID                                        int64
	pending                                        experiments.RunConfig
	bar                                            *widget.ProgressBar
	progress                                       *widget.Label
	status                                         *widget.Label
	summary                                        *dataTable
	groups                                         []experiments.Group
	profiles                                       map[string]experiments.EndpointProfile
	retrKind                                       *widget.Select // bm25 | http
	retrURL                                        *widget.Entry
	retrTestBt                                     *widget.Button
	retrResult                                     *widget.Label

	running bool
	cancel  context.CancelFunc
	runSeq  int
}

// RunController is what a Runner offers beyond Run for run control
// (*experiments.Runner has it): resume an experiment from the store, and pause,
// resume or cancel a running one.
type RunController interface {
	Resume(ctx context.Context, expID int64, progress func(experiments.Progress)) (experiments.Summary, error)
	Control(ctx context.Context, expID int64, action string) error
}

// hashLookup finds experiments by config hash (*storage.Store has it); the New
// experiment screen uses it to offer a resume instead of a duplicate.
type hashLookup interface {
	ExperimentsByHash(ctx context.Context, hash string) ([]int64, error)
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
	p.policies = widget.NewCheckGroup(policyChoices, nil)
	p.memory = newMemoryForm(def.Memory)
	if len(def.Policies) > 0 {
		p.policies.SetSelected(p.memory.checks(def.Policies))
	} else if def.Policy != "" {
		p.policies.SetSelected(p.memory.checks([]string{def.Policy}))
	} else {
		p.policies.SetSelected([]string{"mem1"})
	}
	p.endpoints = widget.NewCheckGroup(nil, nil)
	p.template = entry(def.Template)
	p.template.SetPlaceHolder("built-in MEM1 template; or a file with a {questions} slot")
	p.rps = entry(ftoa(def.RequestsPerSecond))
	tags := def.CoreTags()
	p.tagThink, p.tagSearch, p.tagInfo, p.tagAnswer = entry(tags.Think), entry(tags.Search), entry(tags.Information), entry(tags.Answer)
	p.dataset = widget.NewSelect(nil, nil)
	if def.Dataset != "" {
		p.dataset.SetOptions([]string{def.Dataset})
		p.dataset.SetSelected(def.Dataset)
	}
	p.sources = widget.NewCheckGroup(append([]string(nil), def.Datasets...), nil)
	p.sources.Horizontal = true
	p.sources.SetSelected(def.Datasets)
	p.objectives = entry(intList(def.ObjectivesList()))
	p.objectives.SetPlaceHolder("e.g. 1, 2, 4, 8, 16")
	p.tasks = entry(itoa(def.Tasks))
	p.seed = entry(strconv.FormatInt(def.Seed, 10))
	p.compose = choose(composeChoices, def.Compose, "consecutive")
	p.compose.OnChanged = func(string) { p.showSources() }
	p.showSources()
	p.concurrency = entry(itoa(def.Concurrency))
	p.maxTurns = entry(itoa(def.MaxTurns))
	p.topK = entry(itoa(def.TopK))
	p.temperature = entry(ftoa(def.Temperature))
	p.topP = entry(ftoa(def.TopP))
	p.maxTokens = entry(itoa(def.MaxTokens))
	p.retrURL = widget.NewEntry()
	p.retrURL.SetPlaceHolder("http://127.0.0.1:8013/retrieve")
	p.retrKind = widget.NewSelect([]string{experiments.RetrieverBM25, experiments.RetrieverHTTP}, func(k string) {
		if k == experiments.RetrieverHTTP {
			p.retrURL.Enable()
			p.retrTestBt.Enable()
		} else {
			p.retrURL.Disable()
			p.retrTestBt.Disable()
		}
	})
	p.retrTestBt = widget.NewButton("Test", p.testRetriever)
	p.retrResult = widget.NewLabel("")
	p.retrResult.Wrapping = fyne.TextWrapWord
	p.setRetriever(def.Retriever)

	p.form = widget.NewForm(
		widget.NewFormItem("Name", p.name),
		widget.NewFormItem("Endpoint URL", p.endpoint),
		widget.NewFormItem("Model", p.model),
		widget.NewFormItem("Mode", p.mode),
		widget.NewFormItem("API key env var", p.apiKeyEnv),
		widget.NewFormItem("Requests/s (0 = no cap)", p.rps),
		widget.NewFormItem("Saved endpoints", p.endpoints),
		widget.NewFormItem("Policies", p.policies),
		widget.NewFormItem("Dataset", container.NewVBox(p.dataset, p.sources)),
		widget.NewFormItem("Objectives (list)", p.objectives),
		widget.NewFormItem("Tasks per setting (0 = all)", p.tasks),
		widget.NewFormItem("Seed", p.seed),
		widget.NewFormItem("Compose", p.compose),
		widget.NewFormItem("Concurrency", p.concurrency),
		widget.NewFormItem("Max turns (0 = auto)", p.maxTurns),
		widget.NewFormItem("Top-k passages", p.topK),
		widget.NewFormItem("Retriever", container.NewVBox(container.NewBorder(nil, nil, p.retrKind, p.retrTestBt, p.retrURL), p.retrResult)),
		widget.NewFormItem("Temperature", p.temperature),
		widget.NewFormItem("Top-p", p.topP),
		widget.NewFormItem("Max tokens per turn", p.maxTokens),
		widget.NewFormItem("Prompt template file", p.template),
		widget.NewFormItem("Tag names", container.NewGridWithColumns(4, p.tagThink, p.tagSearch, p.tagInfo, p.tagAnswer)),
		p.memory.item(),
	)
	p.form.Items[5].HintText = "with saved endpoints checked, the URL fields above are not used"
	p.form.Items[8].HintText = "with Compose mixed, check two or more datasets: each task takes its objectives from them in turn"

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

	p.previewBt = widget.NewButton("Preview", p.preview)
	p.importBt = widget.NewButton("Import TOML…", p.askImport)
	p.exportBt = widget.NewButton("Export TOML…", p.askExport)
	p.plan = widget.NewLabel("Preview shows how many rollouts the grid makes.")
	p.plan.Wrapping = fyne.TextWrapWord
	p.prompt = widget.NewMultiLineEntry()
	p.prompt.TextStyle = fyne.TextStyle{Monospace: true}
	p.prompt.Wrapping = fyne.TextWrapWord
	p.prompt.SetMinRowsVisible(8)
	p.prompt.Disable()
	p.offer = widget.NewLabel("")
	p.offer.Wrapping = fyne.TextWrapWord
	p.resumeBt = widget.NewButton("Resume it", p.resumeOffered)
	p.resumeBt.Importance = widget.HighImportance
	p.freshBt = widget.NewButton("Start a new one", func() {
		p.offerBox.Hide()
		p.launch(p.pending)
	})
	p.offerBox = container.NewVBox(p.offer, container.NewHBox(p.resumeBt, p.freshBt))
	p.offerBox.Hide()

	buttons := container.NewHBox(p.runBt, p.cancelBt, p.previewBt, p.importBt, p.exportBt)
	left := container.NewVScroll(container.NewVBox(p.form, buttons, p.errors, p.offerBox))
	right := container.NewBorder(
		container.NewVBox(widget.NewLabelWithStyle("Grid", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
			p.plan, p.prompt,
			widget.NewLabelWithStyle("Progress", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
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
		p.reloadProfiles()
		cur := p.dataset.Selected
		var keep []string
		for _, n := range p.sources.Selected {
			if contains(names, n) {
				keep = append(keep, n)
			}
		}
		p.sources.Options = names
		p.sources.SetSelected(keep)
		p.sources.Refresh()
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

// showSources shows the dataset checkboxes when Compose is mixed, the Dataset
// select otherwise.
func (p *runPanel) showSources() {
	if p.compose.Selected == experiments.ComposeRuleMixed {
		p.dataset.Hide()
		p.sources.Show()
	} else {
		p.sources.Hide()
		p.dataset.Show()
	}
}

// checkedSources is the checked mixed sources in the order offered (so the
// same choice always gives the same config and hash).
func (p *runPanel) checkedSources() []string {
	var out []string
	for _, o := range p.sources.Options {
		if contains(p.sources.Selected, o) {
			out = append(out, o)
		}
	}
	return out
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
	if cfg.APIKeyEnv != "" && !envNameRE.MatchString(cfg.APIKeyEnv) {
		bad("API key env var: %q is not a variable name (give the name of the variable, never the key)", cfg.APIKeyEnv)
	}
	cfg.Policies = nil
	switch pol := p.memory.policies(p.policies.Selected, bad); len(pol) {
	case 0:
		bad("Policies: check mem1, full or both")
	case 1:
		cfg.Policy = pol[0]
	default:
		cfg.Policy = pol[0]
		cfg.Policies = append([]string(nil), pol...)
	}
	cfg.Endpoints = nil
	for _, name := range p.endpoints.Selected {
		if prof, ok := p.profiles[name]; ok {
			cfg.Endpoints = append(cfg.Endpoints, prof)
		}
	}
	cfg.Datasets = nil
	if p.compose.Selected == experiments.ComposeRuleMixed {
		src := p.checkedSources()
		if len(src) < 2 {
			bad("Dataset: with Compose mixed, check at least two datasets to mix (%d checked)", len(src))
		}
		if len(src) > 0 {
			cfg.Dataset, cfg.Datasets = src[0], src
		}
	} else {
		cfg.Dataset = p.dataset.Selected
		if cfg.Dataset == "" {
			bad("Dataset: choose an imported dataset")
		}
	}
	cfg.ObjectivesGrid = nil
	var objs []int
	for _, f := range strings.FieldsFunc(p.objectives.Text, func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
		v, err := strconv.Atoi(f)
		if err != nil {
			bad("Objectives: %q is not a whole number", f)
			continue
		}
		if v < 1 {
			bad("Objectives must be at least 1 (got %d)", v)
			continue
		}
		if slices.Contains(objs, v) {
			bad("Objectives: %d is listed twice", v)
			continue
		}
		objs = append(objs, v)
	}
	switch {
	case len(objs) == 0 && strings.TrimSpace(p.objectives.Text) == "":
		bad("Objectives: give one number or a list such as 1, 2, 4")
	case len(objs) == 1:
		cfg.Objectives = objs[0]
	case len(objs) > 1:
		cfg.Objectives = objs[0]
		cfg.ObjectivesGrid = objs
	}
	cfg.Template = strings.TrimSpace(p.template.Text)
	cfg.Tags = nil
	tn := experiments.TagNames{Think: strings.TrimSpace(p.tagThink.Text), Search: strings.TrimSpace(p.tagSearch.Text),
		Information: strings.TrimSpace(p.tagInfo.Text), Answer: strings.TrimSpace(p.tagAnswer.Text)}
	if d := core.DefaultTags(); tn != (experiments.TagNames{Think: d.Think, Search: d.Search, Information: d.Information, Answer: d.Answer}) {
		ct := core.Tags{Think: tn.Think, Search: tn.Search, Information: tn.Information, Answer: tn.Answer}
		if err := ct.Validate(); err != nil {
			bad("Tag names: %v", err)
		}
		cfg.Tags = &tn
	}
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
		bad("Compose: choose consecutive, random or mixed")
	}
	cfg.Concurrency = intField("Concurrency", p.concurrency, 1)
	cfg.MaxTurns = intField("Max turns", p.maxTurns, 0)
	cfg.TopK = intField("Top-k", p.topK, 1)
	if rc, err := p.retriever(); err != nil {
		bad("Retriever: %v", err)
	} else {
		cfg.Retriever = rc
	}
	var ok bool
	if cfg.Temperature, ok = floatField("Temperature", p.temperature); ok && cfg.Temperature < 0 {
		bad("Temperature must be 0 or more (got %g)", cfg.Temperature)
	}
	if cfg.TopP, ok = floatField("Top-p", p.topP); ok && (cfg.TopP <= 0 || cfg.TopP > 1) {
		bad("Top-p must be more than 0 and at most 1 (got %g)", cfg.TopP)
	}
	cfg.MaxTokens = intField("Max tokens", p.maxTokens, 1)
	cfg.Memory = p.memory.config(bad)
	if v, ok := floatField("Requests/s", p.rps); ok {
		if v < 0 {
			bad("Requests/s must be 0 (no cap) or more (got %g)", v)
		}
		cfg.RequestsPerSecond = v
	}
	if len(errs) == 0 {
		// What the form cannot check itself (a template without a {questions} slot, …).
		if err := cfg.Validate(); err != nil {
			errs = append(errs, strings.TrimPrefix(err.Error(), "invalid run config: "))
		}
		for _, pol := range cfg.PolicyList() {
			c := cfg
			c.Policy = pol
			if c.Template != "" {
				if _, err := experiments.PreviewPrompt(c, core.Task{Objectives: []core.Objective{{Question: "?"}}}); err != nil {
					errs = append(errs, "Prompt template file: "+err.Error())
					break
				}
			}
		}
	}
	if len(errs) > 0 {
		return cfg, errors.New(strings.Join(errs, "\n"))
	}
	return cfg, nil
}

// start validates the form and launches the run in a goroutine with its own
// cancellable context. When the store holds an unfinished experiment with the
// same config (same hash), it offers to resume that one instead.
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
	hl, ok := p.u.deps.Store.(hashLookup)
	if _, canResume := p.u.deps.Runner.(RunController); !ok || !canResume {
		p.launch(cfg)
		return
	}
	p.runBt.Disable()
	background(p.u, func(ctx context.Context) (storage.ExperimentRow, error) {
		ids, err := hl.ExperimentsByHash(ctx, cfg.Hash())
		if err != nil {
			return storage.ExperimentRow{}, err
		}
		for _, id := range ids {
			e, err := p.u.deps.Store.Experiment(ctx, id)
			if err != nil {
				return storage.ExperimentRow{}, err
			}
			if e.Done+e.Failed < e.Rollouts {
				return e, nil
			}
		}
		return storage.ExperimentRow{}, nil
	}, func(e storage.ExperimentRow, err error) {
		p.runBt.Enable()
		if err != nil || e.ID == 0 {
			p.launch(cfg)
			return
		}
		p.pending, p.offerID = cfg, e.ID
		p.offer.SetText(fmt.Sprintf("Experiment #%d has this exact config and %d of its %d rollouts unfinished. Resume it rather than run it twice?",
			e.ID, e.Rollouts-e.Done-e.Failed, e.Rollouts))
		p.resumeBt.SetText(fmt.Sprintf("Resume #%d", e.ID))
		p.offerBox.Show()
	})
}

// resumeOffered resumes the experiment the offer named.
func (p *runPanel) resumeOffered() {
	p.offerBox.Hide()
	rc, ok := p.u.deps.Runner.(RunController)
	if !ok || p.offerID == 0 {
		return
	}
	id := p.offerID
	p.begin(func(ctx context.Context, progress func(experiments.Progress)) (experiments.Summary, error) {
		return rc.Resume(ctx, id, progress)
	})
}

// launch starts a new experiment with cfg.
func (p *runPanel) launch(cfg experiments.RunConfig) {
	runner := p.u.deps.Runner
	p.begin(func(ctx context.Context, progress func(experiments.Progress)) (experiments.Summary, error) {
		return runner.Run(ctx, cfg, progress)
	})
}

// begin runs play in a goroutine, showing its progress here and on Runs.
func (p *runPanel) begin(play func(ctx context.Context, progress func(experiments.Progress)) (experiments.Summary, error)) {
	if p.running {
		return
	}
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

	p.u.jobs.Add(1)
	go func() {
		defer p.u.jobs.Done()
		defer cancel()
		sum, err := play(ctx, func(pr experiments.Progress) {
			p.u.do(func() {
				if seq == p.runSeq && p.running {
					p.showProgress(pr)
				}
				p.u.runs.live(pr)
			})
		})
		cancelled := ctx.Err() != nil || errors.Is(err, context.Canceled)
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

// progressText is e.g. "12 done, 1 failed, 3 running of 40 · 87 turns", then,
// when known, the rates, the ETA, the retries and a pause.
func progressText(pr experiments.Progress) string {
	s := fmt.Sprintf("%d done, %d failed, %d running of %d · %d turns", pr.Done, pr.Failed, pr.Running, pr.Total, pr.Turns)
	if pr.Experiment != 0 {
		s = fmt.Sprintf("Experiment #%d: %s", pr.Experiment, s)
	}
	if pr.TurnsPerSecond > 0 {
		s += fmt.Sprintf(" · %.1f turns/s · %.0f tokens/s", pr.TurnsPerSecond, pr.TokensPerSecond)
	}
	if pr.ETA > 0 {
		s += " · ETA " + pr.ETA.Round(time.Second).String()
	}
	if pr.Retries > 0 {
		s += fmt.Sprintf(" · %d retries", pr.Retries)
	}
	if pr.Paused {
		s += " · paused"
	}
	return s
}

func (p *runPanel) finish(sum experiments.Summary, err error, cancelled bool) {
	p.running, p.cancel = false, nil
	if sum.Experiment != 0 {
		delete(p.u.runs.playing, sum.Experiment)
	}
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

func intList(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = strconv.Itoa(n)
	}
	return strings.Join(parts, ", ")
}

// profileStore keeps endpoint profiles (*storage.Store has it).
type profileStore interface {
	EndpointProfiles(ctx context.Context) (map[string]string, error)
	SaveEndpointProfile(ctx context.Context, name, profileJSON string) error
	DeleteEndpointProfile(ctx context.Context, name string) error
}

// loadProfiles reads and decodes the stored endpoint profiles (none when the
// store keeps none).
func loadProfiles(ctx context.Context, st Store) (map[string]experiments.EndpointProfile, error) {
	ps, ok := st.(profileStore)
	if !ok {
		return nil, nil
	}
	raw, err := ps.EndpointProfiles(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[string]experiments.EndpointProfile, len(raw))
	for name, j := range raw {
		var p experiments.EndpointProfile
		if err := json.Unmarshal([]byte(j), &p); err != nil {
			return nil, fmt.Errorf("endpoint profile %q: %w", name, err)
		}
		out[name] = p
	}
	return out, nil
}

// reloadProfiles offers the saved endpoint profiles as checkboxes, keeping
// the checked ones that still exist.
func (p *runPanel) reloadProfiles() {
	background(p.u, func(ctx context.Context) (map[string]experiments.EndpointProfile, error) {
		return loadProfiles(ctx, p.u.deps.Store)
	}, func(ps map[string]experiments.EndpointProfile, err error) {
		if err != nil {
			p.status.SetText("Could not list endpoint profiles: " + err.Error())
			return
		}
		p.profiles = ps
		names := make([]string, 0, len(ps))
		for n := range ps {
			names = append(names, n)
		}
		slices.Sort(names)
		var keep []string
		for _, n := range p.endpoints.Selected {
			if _, ok := ps[n]; ok {
				keep = append(keep, n)
			}
		}
		p.endpoints.Options = names
		p.endpoints.SetSelected(keep)
		p.endpoints.Refresh()
	})
}

// preview validates the form, then counts the rollouts the grid makes and
// shows the first task's rendered prompt.
func (p *runPanel) preview() {
	cfg, err := p.config()
	if err != nil {
		p.errors.SetText(err.Error())
		return
	}
	p.errors.SetText("")
	type result struct {
		plan   experiments.Plan
		prompt string
	}
	background(p.u, func(ctx context.Context) (result, error) {
		qs, err := experiments.LoadQuestions(ctx, p.u.deps.Store, cfg)
		if err != nil {
			return result{}, err
		}
		plan, err := experiments.PlanGrid(cfg, qs)
		if err != nil {
			return result{}, err
		}
		prompt, err := experiments.PreviewPrompt(cfg, plan.Tasks[0])
		return result{plan, prompt}, err
	}, func(r result, err error) {
		if err != nil {
			p.plan.SetText("Cannot make this grid: " + err.Error())
			p.prompt.SetText("")
			return
		}
		text := planText(r.plan)
		if cfg.Compose == experiments.ComposeRuleMixed {
			text += fmt.Sprintf("; objectives mixed from %s in turn", strings.Join(cfg.Datasets, " + "))
		}
		p.plan.SetText(text)
		p.prompt.SetText(r.prompt)
	})
}

// planText is e.g. "40 rollouts: 4 settings (2 policies × 2 objective counts ×
// 1 model), 10 tasks each".
func planText(pl experiments.Plan) string {
	var models, policies []string
	var objs []int
	for _, s := range pl.Settings {
		if !slices.Contains(models, s.Model) {
			models = append(models, s.Model)
		}
		if !slices.Contains(policies, s.Policy) {
			policies = append(policies, s.Policy)
		}
		if !slices.Contains(objs, s.Objectives) {
			objs = append(objs, s.Objectives)
		}
	}
	plural := func(n int, one, many string) string {
		if n == 1 {
			return fmt.Sprintf("%d %s", n, one)
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	return fmt.Sprintf("%s: %s (%s × %s × %s), %s in all",
		plural(pl.Rollouts, "rollout", "rollouts"), plural(len(pl.Settings), "setting", "settings"),
		plural(len(models), "model", "models"), plural(len(policies), "policy", "policies"),
		plural(len(objs), "objective count", "objective counts"), plural(len(pl.Tasks), "task", "tasks"))
}

// exportTOML writes the form's config as canonical TOML (the bytes whose hash
// identifies the experiment).
func (p *runPanel) exportTOML(w io.Writer) error {
	cfg, err := p.config()
	if err != nil {
		return err
	}
	b, err := cfg.CanonicalTOML()
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

// importTOML loads a TOML config file into the form.
func (p *runPanel) importTOML(path string) error {
	cfg, err := experiments.LoadRunConfig(path)
	if err != nil {
		return err
	}
	p.setConfig(cfg)
	return nil
}

// setConfig fills the form from cfg. Endpoint profiles in cfg that are not
// saved yet are offered (checked) for this session.
func (p *runPanel) setConfig(cfg experiments.RunConfig) {
	ftoa := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	p.name.SetText(cfg.Name)
	p.endpoint.SetText(cfg.Endpoint)
	p.model.SetText(cfg.Model)
	p.mode.SetSelected(cfg.Mode)
	p.apiKeyEnv.SetText(cfg.APIKeyEnv)
	p.rps.SetText(ftoa(cfg.RequestsPerSecond))
	p.policies.SetSelected(p.memory.checks(cfg.PolicyList()))
	p.memory.set(cfg.Memory, func() int { k, _ := strconv.Atoi(p.memory.window.Text); return k }())
	if !slices.Contains(p.dataset.Options, cfg.Dataset) {
		p.dataset.SetOptions(append(p.dataset.Options, cfg.Dataset))
	}
	p.dataset.SetSelected(cfg.Dataset)
	for _, d := range cfg.Datasets {
		if !slices.Contains(p.sources.Options, d) {
			p.sources.Options = append(p.sources.Options, d)
		}
	}
	p.sources.SetSelected(cfg.Datasets)
	p.sources.Refresh()
	p.objectives.SetText(intList(cfg.ObjectivesList()))
	p.tasks.SetText(strconv.Itoa(cfg.Tasks))
	p.seed.SetText(strconv.FormatInt(cfg.Seed, 10))
	p.compose.SetSelected(cfg.Compose)
	p.concurrency.SetText(strconv.Itoa(cfg.Concurrency))
	p.maxTurns.SetText(strconv.Itoa(cfg.MaxTurns))
	p.topK.SetText(strconv.Itoa(cfg.TopK))
	p.temperature.SetText(ftoa(cfg.Temperature))
	p.topP.SetText(ftoa(cfg.TopP))
	p.maxTokens.SetText(strconv.Itoa(cfg.MaxTokens))
	p.template.SetText(cfg.Template)
	p.setRetriever(cfg.Retriever)
	tags := cfg.CoreTags()
	p.tagThink.SetText(tags.Think)
	p.tagSearch.SetText(tags.Search)
	p.tagInfo.SetText(tags.Information)
	p.tagAnswer.SetText(tags.Answer)
	if p.profiles == nil {
		p.profiles = map[string]experiments.EndpointProfile{}
	}
	var names []string
	for _, e := range cfg.Endpoints {
		p.profiles[e.Name] = e
		names = append(names, e.Name)
		if !slices.Contains(p.endpoints.Options, e.Name) {
			p.endpoints.Options = append(p.endpoints.Options, e.Name)
		}
	}
	p.endpoints.SetSelected(names)
	p.endpoints.Refresh()
	// Keys the form does not show come along unchanged.
	def := p.u.deps.DefaultRun
	def.Scheme, def.TimeoutSeconds, def.Retriever = cfg.Scheme, cfg.TimeoutSeconds, cfg.Retriever
	def.Retries, def.RetryBaseSeconds, def.BreakerFailures, def.BreakerCooldownSeconds =
		cfg.Retries, cfg.RetryBaseSeconds, cfg.BreakerFailures, cfg.BreakerCooldownSeconds
	p.u.deps.DefaultRun = def
}

func (p *runPanel) askImport() {
	w := p.u.deps.Window
	if w == nil {
		return
	}
	dialog.ShowFileOpen(func(rc fyne.URIReadCloser, err error) {
		if err != nil || rc == nil {
			return
		}
		path := rc.URI().Path()
		_ = rc.Close()
		if err := p.importTOML(path); err != nil {
			p.errors.SetText(err.Error())
			return
		}
		p.errors.SetText("")
		p.status.SetText("Loaded " + path)
	}, w)
}

func (p *runPanel) askExport() {
	w := p.u.deps.Window
	if w == nil {
		return
	}
	if _, err := p.config(); err != nil {
		p.errors.SetText(err.Error())
		return
	}
	d := dialog.NewFileSave(func(wc fyne.URIWriteCloser, err error) {
		if err != nil || wc == nil {
			return
		}
		defer wc.Close()
		if err := p.exportTOML(wc); err != nil {
			p.errors.SetText(err.Error())
			return
		}
		p.status.SetText("Saved " + wc.URI().Path())
	}, w)
	d.SetFileName("experiment.toml")
	d.Show()
}

// setRetriever shows rc in the retriever picker (nil = bm25).
func (p *runPanel) setRetriever(rc *experiments.RetrieverConfig) {
	if rc != nil && rc.Kind == experiments.RetrieverHTTP {
		p.retrURL.SetText(rc.URL)
		p.retrKind.SetSelected(experiments.RetrieverHTTP)
	} else {
		p.retrKind.SetSelected(experiments.RetrieverBM25)
	}
}

// retriever reads the picker; the topk and timeout of the loaded config (not
// shown) are kept.
func (p *runPanel) retriever() (*experiments.RetrieverConfig, error) {
	target := experiments.RetrieverBM25
	if p.retrKind.Selected == experiments.RetrieverHTTP {
		target = strings.TrimSpace(p.retrURL.Text)
		if target == "" {
			return nil, errors.New("give the /retrieve server's URL, e.g. http://127.0.0.1:8013/retrieve")
		}
	}
	return experiments.ReplaceRetriever(p.u.deps.DefaultRun.Retriever, target)
}

// testRetriever sends one probe search to the picked /retrieve server.
func (p *runPanel) testRetriever() {
	rc, err := p.retriever()
	if err != nil {
		p.retrResult.SetText(err.Error())
		return
	}
	k, _ := strconv.Atoi(strings.TrimSpace(p.topK.Text))
	p.retrResult.SetText("Testing…")
	p.retrTestBt.Disable()
	background(p.u, func(ctx context.Context) (experiments.RetrieverProbe, error) {
		return experiments.ProbeRetriever(ctx, rc, k)
	}, func(pr experiments.RetrieverProbe, err error) {
		p.retrTestBt.Enable()
		if err != nil {
			p.retrResult.SetText("Retriever failed: " + err.Error())
			return
		}
		p.retrResult.SetText(fmt.Sprintf("OK: %d passages in %s; first %q.", pr.Passages, pr.Latency.Round(time.Millisecond), pr.FirstTitle))
	})
}
