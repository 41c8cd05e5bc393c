package views

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	policyChoices  = []string{"mem1", "full", "full:messages", "closed-book", summaryChoice, "resum", "memagent", "mem0", "mem0:add-only", "amem"}
	composeChoices = []string{experiments.ComposeRuleConsecutive, experiments.ComposeRuleRandom, experiments.ComposeRuleMixed}
)

// newExperimentStore is what the New experiment screen reads.
type newExperimentStore interface {
	// Datasets lists the imported datasets with their question and passage counts.
	Datasets(ctx context.Context) ([]storage.DatasetInfo, error)
	// Questions returns up to limit questions of dataset in import order, skipping offset.
	Questions(ctx context.Context, dataset string, offset, limit int) ([]storage.Question, error)
	// Rollouts lists one experiment's rollouts (a finished run's counts and failures).
	Rollouts(ctx context.Context, expID int64) ([]storage.RolloutRow, error)
	// Experiment returns one experiment (to offer resuming one with the same config).
	Experiment(ctx context.Context, id int64) (storage.ExperimentRow, error)
}

// runPanel is the New experiment screen: the run settings form, Run/Cancel, live progress
// and the finished run's summary by group.
type runPanel struct {
	u       *UI
	st      newExperimentStore
	content fyne.CanvasObject
	// webshop is set while the run launched last is a WebShop one (its
	// summary shows rewards).
	webshop bool

	name, endpoint, model, apiKeyEnv               *widget.Entry
	mode, dataset, compose                         *widget.Select
	policies                                       *widget.CheckGroup
	memory                                         *memoryForm        // memory policies' endpoints and knobs
	sources                                        *widget.CheckGroup // mixed composition's datasets
	endpoints                                      *widget.CheckGroup
	objectives, tasks, seed, concurrency, maxTurns *widget.Entry
	topK, temperature, topP, maxTokens, template   *widget.Entry
	storedTemplate                                 *widget.Select // a template kept in the store; noStoredTemplate = none
	tagThink, tagSearch, tagInfo, tagAnswer        *widget.Entry
	rps                                            *widget.Entry
	form                                           *widget.Form
	runBt, cancelBt, previewBt                     *widget.Button
	importBt, exportBt, truncateBt                 *widget.Button
	errors                                         *widget.Label
	plan                                           *widget.Label
	prompt                                         *textView
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
	retrKind                                       *widget.Select // bm25 | bm25-tuned | bleve | http | serper
	retrURL                                        *widget.Entry
	retrKeyEnv                                     *widget.Entry // serper: the env var holding the key
	// retrURLs is the address typed for each remote retriever kind, so that
	// switching kinds never hands a /retrieve address (and a web-search key)
	// to the other; retrShown is the kind whose address the field shows.
	retrURLs   map[string]string
	retrShown  string
	retrTestBt *widget.Button
	retrResult *widget.Label
	family     *widget.Select // familyQA | familyWebShop
	shop       *shopForm      // the webshop family's form

	running bool
	cancel  context.CancelFunc
	runSeq  int

	previewed  bool // a grid preview was shown; edits refresh it
	previewSeq int
}

// RunController is what a Runner offers beyond Run for run control
// (*experiments.Runner has it): resume an experiment from the store, and pause,
// resume or cancel a running one.
type RunController interface {
	Resume(ctx context.Context, expID int64, progress func(experiments.Progress)) (experiments.Summary, error)
	Control(ctx context.Context, expID int64, action string) error
	// Orphaned reports whether an experiment listed as running or paused has no
	// live process holding it (its owner crashed or was killed).
	Orphaned(ctx context.Context, expID int64) (bool, error)
}

// noStoredTemplate is the stored-template choice meaning "none".
const noStoredTemplate = "(none)"

// templateLister lists the prompt templates kept in the store (*storage.Store
// has it); without it the form offers none.
type templateLister interface {
	Templates(ctx context.Context) ([]storage.StoredTemplate, error)
}

// The app's runner offers run control.
var _ RunController = (*experiments.Runner)(nil)

// hashLookup finds experiments by config hash (*storage.Store has it); the New
// experiment screen uses it to offer a resume instead of a duplicate.
type hashLookup interface {
	ExperimentsByHash(ctx context.Context, hash string) ([]int64, error)
}

func newRunPanel(u *UI) *runPanel {
	p := &runPanel{u: u, st: u.deps.Store}
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
	if pr := u.prefs; pr != nil && pr.String(prefEndpoint) != "" {
		def.Endpoint, def.Model = pr.String(prefEndpoint), pr.StringWithFallback(prefModel, def.Model)
	}
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
	p.storedTemplate = widget.NewSelect([]string{noStoredTemplate}, nil)
	p.storedTemplate.SetSelected(noStoredTemplate)
	if def.TemplateName != "" {
		p.storedTemplate.SetOptions([]string{noStoredTemplate, def.TemplateName})
		p.storedTemplate.SetSelected(def.TemplateName)
	}
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
	p.retrKeyEnv = widget.NewEntry()
	p.retrKeyEnv.SetPlaceHolder(experiments.DefaultSerperKeyEnv + " (the env var holding the key; never stored)")
	p.retrKind = widget.NewSelect([]string{experiments.RetrieverBM25, experiments.RetrieverBM25Tuned, experiments.RetrieverBleve,
		experiments.RetrieverHTTP, experiments.RetrieverSerper}, func(k string) {
		if p.retrURLs == nil {
			p.retrURLs = map[string]string{}
		}
		if p.retrShown != "" {
			p.retrURLs[p.retrShown] = p.retrURL.Text
		}
		p.retrURL.SetText(p.retrURLs[k])
		p.retrShown = k
		switch k {
		case experiments.RetrieverHTTP:
			p.retrURL.SetPlaceHolder("http://127.0.0.1:8013/retrieve")
		case experiments.RetrieverSerper:
			p.retrURL.SetPlaceHolder(experiments.DefaultSerperURL + " (or any service of the same shape)")
		}
		remote := k == experiments.RetrieverHTTP || k == experiments.RetrieverSerper
		for _, w := range []fyne.Disableable{p.retrURL, p.retrTestBt} {
			if remote {
				w.Enable()
			} else {
				w.Disable()
			}
		}
		if k == experiments.RetrieverSerper {
			p.retrKeyEnv.Show()
		} else {
			p.retrKeyEnv.Hide()
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
		widget.NewFormItem("Saved endpoints", hint(p.endpoints, "with saved endpoints checked, the URL fields above are not used")),
		widget.NewFormItem("Policies", p.policies),
		widget.NewFormItem("Dataset", hint(container.NewVBox(p.dataset, p.sources),
			"with Compose mixed, check two or more datasets: each task takes its objectives from them in turn")),
		widget.NewFormItem("Objectives (list)", p.objectives),
		widget.NewFormItem("Tasks per setting (0 = all)", p.tasks),
		widget.NewFormItem("Seed", p.seed),
		widget.NewFormItem("Compose", p.compose),
		widget.NewFormItem("Concurrency", p.concurrency),
		widget.NewFormItem("Max turns (0 = auto)", p.maxTurns),
		widget.NewFormItem("Top-k passages", p.topK),
		widget.NewFormItem("Retriever", container.NewVBox(container.NewBorder(nil, nil, p.retrKind, p.retrTestBt, p.retrURL), p.retrKeyEnv, p.retrResult)),
		widget.NewFormItem("Temperature", p.temperature),
		widget.NewFormItem("Top-p", p.topP),
		widget.NewFormItem("Max tokens per turn", p.maxTokens),
		widget.NewFormItem("Prompt template file", p.template),
		widget.NewFormItem("Stored template", p.storedTemplate),
		widget.NewFormItem("Tag names", container.NewGridWithColumns(4, p.tagThink, p.tagSearch, p.tagInfo, p.tagAnswer)),
		p.memory.item(),
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
	p.progress.Wrapping = fyne.TextWrapWord
	p.status = widget.NewLabel("")
	p.status.Wrapping = fyne.TextWrapWord
	p.summary = newDataTable([]string{"Policy", "Objectives", "Rollouts", "Failed", "Mean EM", "Mean F1", "Mean peak tokens", "Mean seconds"},
		[]float32{80, 90, 80, 70, 80, 80, 130, 110})

	p.previewBt = widget.NewButton("Preview", p.preview)
	p.truncateBt = widget.NewButton("Preset: MEM1 truncate", p.applyTruncate)
	p.importBt = widget.NewButton("Import TOML…", p.askImport)
	p.exportBt = widget.NewButton("Export TOML…", p.askExport)
	p.plan = widget.NewLabel("Preview shows how many rollouts the grid makes.")
	p.plan.Wrapping = fyne.TextWrapWord
	p.prompt = newTextView(8)
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

	p.shop = newShopForm(def, func() { p.formChanged() })
	p.family = widget.NewSelect([]string{familyQA, familyWebShop}, nil)
	p.family.SetSelected(familyQA)
	if def.IsWebShop() {
		p.family.SetSelected(familyWebShop)
	}
	p.family.OnChanged = func(string) { p.showFamily(); p.formChanged() }
	p.showFamily()
	familyRow := container.NewBorder(nil, nil, widget.NewLabelWithStyle("Task family", fyne.TextAlignTrailing, fyne.TextStyle{Bold: true}), nil, p.family)

	buttons := container.NewVBox(container.NewHBox(p.runBt, p.cancelBt, p.previewBt, p.importBt, p.exportBt),
		container.NewHBox(p.truncateBt))
	left := container.NewVScroll(container.NewVBox(familyRow, p.form, p.shop.box, buttons, p.errors, p.offerBox))
	right := container.NewBorder(
		container.NewVBox(widget.NewLabelWithStyle("Grid", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
			p.plan, p.prompt.content,
			widget.NewLabelWithStyle("Progress", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
			p.bar, p.progress, p.status,
			widget.NewLabelWithStyle("Summary by group", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})),
		nil, nil, nil, p.summary.table)
	split := container.NewHSplit(left, right)
	split.Offset = 0.45
	u.rememberSplit("run.split", split)
	p.content = split

	for _, e := range []*widget.Entry{p.name, p.endpoint, p.model, p.apiKeyEnv, p.objectives, p.tasks, p.seed, p.concurrency,
		p.maxTurns, p.topK, p.temperature, p.topP, p.maxTokens, p.template, p.tagThink, p.tagSearch, p.tagInfo, p.tagAnswer, p.rps} {
		e.OnChanged = func(string) { p.formChanged() }
	}
	for _, s := range []*widget.Select{p.mode, p.dataset} {
		s.OnChanged = func(string) { p.formChanged() }
	}
	p.compose.OnChanged = func(string) { p.showSources(); p.formChanged() }
	for _, g := range []*widget.CheckGroup{p.policies, p.sources, p.endpoints} {
		g.OnChanged = func([]string) { p.formChanged() }
	}
	u.events.ProfilesChanged.Subscribe(func(struct{}) { p.reloadProfiles() })
	u.follow(ScreenNewRun, p.reloadDatasets)
	return p
}

// isShop reports whether the form is set to the webshop family.
func (p *runPanel) isShop() bool { return p.family != nil && p.family.Selected == familyWebShop }

// showFamily shows the chosen family's form: the retrieval QA settings, or
// the WebShop ones (the QA-only fields and presets are hidden).
func (p *runPanel) showFamily() {
	if p.isShop() {
		p.form.Hide()
		p.truncateBt.Hide()
		p.shop.box.Show()
	} else {
		p.shop.box.Hide()
		p.form.Show()
		p.truncateBt.Show()
	}
}

// reloadDatasets offers the store's datasets in the Dataset select, keeping the
// current choice when it still exists.
func (p *runPanel) reloadDatasets() {
	background(p.u, func(ctx context.Context) ([]storage.DatasetInfo, error) {
		return p.st.Datasets(ctx)
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
		p.reloadTemplates()
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

// reloadTemplates offers the store's templates in the Stored template select,
// keeping the current choice when it still exists.
func (p *runPanel) reloadTemplates() {
	tl, ok := p.u.deps.Store.(templateLister)
	if !ok {
		return
	}
	background(p.u, func(ctx context.Context) ([]storage.StoredTemplate, error) {
		return tl.Templates(ctx)
	}, func(ts []storage.StoredTemplate, err error) {
		if err != nil {
			p.status.SetText("Could not list templates: " + err.Error())
			return
		}
		opts := []string{noStoredTemplate}
		for _, t := range ts {
			opts = append(opts, t.Name)
		}
		cur := p.storedTemplate.Selected
		p.storedTemplate.SetOptions(opts)
		if contains(opts, cur) {
			p.storedTemplate.SetSelected(cur)
		} else {
			p.storedTemplate.SetSelected(noStoredTemplate)
		}
	})
}

// applyTruncate fills the form with MEM1's "truncate" rows
// (experiments.TruncatePreset): an instruct model through the consolidating
// pipeline in completions mode, on the stored MEM1 training prompt when one is
// kept under experiments.TruncateTemplateName.
func (p *runPanel) applyTruncate() {
	cfg, err := p.config()
	if err != nil {
		// Start from the defaults when the form does not parse yet.
		cfg = p.u.deps.DefaultRun
	}
	cfg = experiments.TruncatePreset(cfg)
	if !contains(p.storedTemplate.Options, cfg.TemplateName) {
		cfg.TemplateName = ""
	}
	p.setConfig(cfg)
	msg := "Truncate preset: " + cfg.Model + ", policy mem1, completions mode."
	if cfg.TemplateName == "" {
		msg += " Import MEM1's training prompt as \"" + experiments.TruncateTemplateName + "\" (mem1lab template import) to run it on that prompt."
	}
	p.status.SetText(msg)
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

// formKeys maps RunConfig.Validate's keys to the form's field labels: the form
// only parses what was typed, and every rule (ranges, URL shape, names) and
// its message comes from RunConfig.Validate, the same check the CLI and TOML
// files get.
var formKeys = map[string]string{
	"endpoint": "Endpoint URL", "model": "Model", "mode": "Mode", "api_key_env": "API key env var",
	"temperature": "Temperature", "top_p": "Top-p", "max_tokens": "Max tokens per turn",
	"dataset": "Dataset", "datasets": "Dataset", "objectives": "Objectives", "objectives_grid": "Objectives",
	"tasks": "Tasks per setting", "compose": "Compose", "policy": "Policies", "policies": "Policies",
	"max_turns": "Max turns", "top_k": "Top-k passages", "concurrency": "Concurrency",
	"requests_per_second": "Requests/s", "tags": "Tag names", "template": "Prompt template file",
}

// config reads the form into a RunConfig. What cannot be parsed is reported
// per field; the rest is checked by RunConfig.Validate, whose messages are
// shown under the form's labels, one line each. Settings the form does not
// show (scheme, request timeout, retries) come from Deps.DefaultRun.
func (p *runPanel) config() (experiments.RunConfig, error) {
	if p.isShop() {
		return p.shop.config(p.u.deps.DefaultRun)
	}
	cfg := p.u.deps.DefaultRun
	cfg.Family, cfg.WebShop = "", nil
	var errs []string
	unparsed := map[string]bool{} // Validate keys whose field did not parse
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Sprintf(format, args...))
		unparsed[key] = true
	}
	intField := func(key, label string, e *widget.Entry) int {
		s := strings.TrimSpace(e.Text)
		v, err := strconv.Atoi(s)
		if err != nil {
			bad(key, "%s: %q is not a whole number", label, s)
		}
		return v
	}
	floatField := func(key, label string, e *widget.Entry) float64 {
		s := strings.TrimSpace(e.Text)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			bad(key, "%s: %q is not a number", label, s)
		}
		return v
	}

	cfg.Name = strings.TrimSpace(p.name.Text)
	cfg.Endpoint = strings.TrimSpace(p.endpoint.Text)
	cfg.Model = strings.TrimSpace(p.model.Text)
	cfg.Mode = p.mode.Selected
	cfg.APIKeyEnv = strings.TrimSpace(p.apiKeyEnv.Text)
	cfg.Policies = nil
	switch pol := p.memory.policies(p.policies.Selected, func(format string, args ...any) { bad("policy", format, args...) }); len(pol) {
	case 0:
		bad("policy", "Policies: check mem1, full or both")
		cfg.Policy = ""
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
		cfg.Dataset, cfg.Datasets = "", src
		if len(src) > 0 {
			cfg.Dataset = src[0]
		}
	} else {
		cfg.Dataset = p.dataset.Selected
	}
	cfg.ObjectivesGrid = nil
	var objs []int
	for _, f := range strings.FieldsFunc(p.objectives.Text, func(r rune) bool { return r == ',' || r == ' ' || r == ';' }) {
		v, err := strconv.Atoi(f)
		if err != nil {
			errs = append(errs, fmt.Sprintf("Objectives: %q is not a whole number", f))
			continue
		}
		objs = append(objs, v)
	}
	switch {
	case len(objs) == 0:
		if strings.TrimSpace(p.objectives.Text) == "" {
			errs = append(errs, "Objectives: give one number or a list such as 1, 2, 4")
		}
		unparsed["objectives"], unparsed["objectives_grid"] = true, true
	case len(objs) == 1:
		cfg.Objectives = objs[0]
	case len(objs) > 1:
		cfg.Objectives = objs[0]
		cfg.ObjectivesGrid = objs
	}
	cfg.Template = strings.TrimSpace(p.template.Text)
	cfg.TemplateName, cfg.TemplateSHA256, cfg.TemplateText = "", "", ""
	if sel := p.storedTemplate.Selected; sel != "" && sel != noStoredTemplate {
		cfg.TemplateName = sel
	}
	cfg.Tags = nil
	tn := experiments.TagNames{Think: strings.TrimSpace(p.tagThink.Text), Search: strings.TrimSpace(p.tagSearch.Text),
		Information: strings.TrimSpace(p.tagInfo.Text), Answer: strings.TrimSpace(p.tagAnswer.Text)}
	if d := core.DefaultTags(); tn != (experiments.TagNames{Think: d.Think, Search: d.Search, Information: d.Information, Answer: d.Answer}) {
		cfg.Tags = &tn
	}
	cfg.Tasks = intField("tasks", "Tasks", p.tasks)
	if s := strings.TrimSpace(p.seed.Text); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			bad("seed", "Seed: %q is not a whole number", s)
		}
		cfg.Seed = v
	} else {
		bad("seed", "Seed: %q is not a whole number", s)
	}
	cfg.Compose = p.compose.Selected
	cfg.Concurrency = intField("concurrency", "Concurrency", p.concurrency)
	cfg.MaxTurns = intField("max_turns", "Max turns", p.maxTurns)
	cfg.TopK = intField("top_k", "Top-k", p.topK)
	if rc, err := p.retriever(); err != nil {
		bad("retriever", "Retriever: %v", err)
	} else {
		cfg.Retriever = rc
	}
	cfg.Temperature = floatField("temperature", "Temperature", p.temperature)
	cfg.TopP = floatField("top_p", "Top-p", p.topP)
	cfg.MaxTokens = intField("max_tokens", "Max tokens", p.maxTokens)
	cfg.Memory = p.memory.config(func(format string, args ...any) { bad("memory", format, args...) })
	cfg.RequestsPerSecond = floatField("requests_per_second", "Requests/s", p.rps)

	// Every rule is RunConfig.Validate's; its lines for fields that did not parse
	// would only repeat the parse error.
	if err := cfg.Validate(); err != nil {
		for _, line := range strings.Split(strings.TrimPrefix(err.Error(), "invalid run config: "), "\n") {
			key, rest, ok := strings.Cut(line, ": ")
			if ok && unparsed[key] || key == "dataset" && cfg.Compose == experiments.ComposeRuleMixed {
				continue // said already, or said better by the datasets line
			}
			if label, known := formKeys[key]; ok && known {
				rest = strings.TrimPrefix(rest, key+": ")
				if n := len(label) + 1; len(rest) > n && strings.EqualFold(rest[:n], label+" ") {
					rest = rest[n:] // "endpoint URL "x": …" under the label Endpoint URL
				}
				line = label + ": " + rest
			}
			errs = append(errs, line)
		}
	}
	if len(errs) == 0 && cfg.Template != "" {
		// What only rendering can tell: a template without a {questions} slot, …
		for _, pol := range cfg.PolicyList() {
			c := cfg
			c.Policy = pol
			if _, err := experiments.PreviewPrompt(c, core.Task{Objectives: []core.Objective{{Question: "?"}}}); err != nil {
				errs = append(errs, "Prompt template file: "+err.Error())
				break
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
	if cfg.IsWebShop() {
		p.launch(cfg) // WebShop experiments are resumed from Runs
		return
	}
	hl, ok := p.u.deps.Store.(hashLookup)
	if _, canResume := p.u.deps.Runner.(RunController); !ok || !canResume {
		p.launch(cfg)
		return
	}
	p.runBt.Disable()
	background(p.u, func(ctx context.Context) (storage.ExperimentRow, error) {
		// A stored template enters the hash by content.
		src, _ := p.u.deps.Store.(experiments.TemplateSource)
		rc, err := experiments.ResolveTemplate(ctx, src, cfg)
		if err != nil {
			return storage.ExperimentRow{}, err
		}
		ids, err := hl.ExperimentsByHash(ctx, rc.Hash())
		if err != nil {
			return storage.ExperimentRow{}, err
		}
		for _, id := range ids {
			e, err := p.st.Experiment(ctx, id)
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
	p.webshop = p.pending.IsWebShop() // the summary names what the offered experiment scores
	p.begin(func(ctx context.Context, progress func(experiments.Progress)) (experiments.Summary, error) {
		return rc.Resume(ctx, id, progress)
	})
}

// launch starts a new experiment with cfg.
func (p *runPanel) launch(cfg experiments.RunConfig) {
	p.webshop = cfg.IsWebShop()
	if pr := p.u.prefs; pr != nil && len(cfg.Endpoints) == 0 && !cfg.IsWebShop() {
		pr.SetString(prefEndpoint, cfg.Endpoint) // the form opens on them next time
		pr.SetString(prefModel, cfg.Model)
	}
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
	if ro := p.u.deps.ReadOnly; ro != "" {
		p.status.SetText("Cannot run: " + ro)
		return
	}
	ctx, cancel := context.WithCancel(p.u.ctx)
	p.running, p.cancel = true, cancel
	p.runSeq++
	seq := p.runSeq
	p.runBt.Disable()
	p.cancelBt.Enable()
	setBar(p.bar, 0, 0, 0)
	p.progress.SetText("Starting…")
	p.status.SetText("")
	p.groups = nil
	p.summary.setRows(nil)

	p.u.jobs.Add(1)
	p.u.runStarted()
	go func() {
		defer p.u.jobs.Done()
		defer p.u.runEnded()
		defer cancel()
		announced := false
		sum, err := play(ctx, func(pr experiments.Progress) {
			p.u.do(func() {
				if seq == p.runSeq && p.running {
					p.showProgress(pr)
				}
				if pr.Experiment != 0 && !announced {
					announced = true
					p.u.events.ExperimentCreated.Emit(pr.Experiment)
				}
				p.u.events.RunProgress.Emit(pr)
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
	setBar(p.bar, pr.Done, pr.Failed, pr.Total)
	p.progress.SetText(progressText(pr))
}

// setBar shows done and failed of total rollouts on bar; its text says how
// many failed rather than a bare percentage (an all-failed run is not "100%").
func setBar(bar *widget.ProgressBar, done, failed, total int) {
	bar.Max = 1
	bar.TextFormatter = func() string { return barText(done, failed, total) }
	v := 0.0
	if total > 0 {
		v = float64(done+failed) / float64(total)
	}
	bar.SetValue(v)
	bar.Refresh() // the text changes even when the value does not
}

// barText is e.g. "3 of 4 done" or "0 done · 4 failed of 4".
func barText(done, failed, total int) string {
	switch {
	case total == 0:
		return "not started"
	case failed == 0:
		return fmt.Sprintf("%d of %d done", done, total)
	default:
		return fmt.Sprintf("%d done · %d failed of %d", done, failed, total)
	}
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
	if pr.ETA > 0 && !pr.Paused {
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
	p.runBt.Enable()
	p.cancelBt.Disable()
	switch {
	case cancelled:
		p.status.SetText(fmt.Sprintf("Run cancelled (experiment #%d); finished rollouts are kept.", sum.Experiment))
	case err != nil:
		p.status.SetText("Run failed: " + err.Error())
	default:
		p.status.SetText(fmt.Sprintf("Run finished: experiment #%d, %s.", sum.Experiment, plural(len(sum.Groups), "group", "groups")))
	}
	if id := sum.Experiment; id != 0 {
		// The final counts and, when rollouts failed, why: read back from the store.
		seq := p.runSeq
		type ended struct {
			counts, failures    string
			done, failed, total int
		}
		background(p.u, func(ctx context.Context) (ended, error) {
			rows, err := p.st.Rollouts(ctx, id)
			if err != nil {
				return ended{}, err
			}
			done, failed, left := 0, 0, 0
			for _, r := range rows {
				switch r.Status {
				case storage.StatusDone:
					done++
				case storage.StatusFailed:
					failed++
				default:
					left++
				}
			}
			c := fmt.Sprintf("Experiment #%d: %d done, %d failed", id, done, failed)
			if left > 0 {
				c += fmt.Sprintf(", %d not run", left)
			}
			return ended{c + fmt.Sprintf(" of %d", len(rows)), failureSummary(rows), done, failed, len(rows)}, nil
		}, func(e ended, err error) {
			if err != nil || seq != p.runSeq || p.running || e.total == 0 {
				return
			}
			p.progress.SetText(e.counts)
			setBar(p.bar, e.done, e.failed, e.total)
			if e.failures != "" {
				p.errors.SetText(e.failures)
				if !cancelled && p.status.Text != "" && strings.HasPrefix(p.status.Text, "Run finished") {
					p.status.SetText(fmt.Sprintf("Run finished with failures: experiment #%d (see above).", id))
				}
			}
		})
	}
	p.groups = sum.Groups
	rows := make([][]string, len(sum.Groups))
	for i, g := range sum.Groups {
		rows[i] = []string{g.Policy, strconv.Itoa(g.Objectives), strconv.Itoa(g.Rollouts), strconv.Itoa(g.Failed),
			scoreText("%.3f", g.MeanEM, g.Rollouts > g.Failed), scoreText("%.3f", g.MeanF1, g.Rollouts > g.Failed),
			scoreText("%.0f", g.MeanPeakTokens, g.Rollouts > g.Failed), scoreText("%.1f", g.MeanSeconds, g.Rollouts > g.Failed)}
	}
	// A WebShop episode scores its final reward (stored as EM and F1 alike).
	if p.webshop {
		p.summary.setHeader(4, "Mean reward")
		p.summary.setHeader(5, "Mean F1 (= reward)")
	} else {
		p.summary.setHeader(4, "Mean EM")
		p.summary.setHeader(5, "Mean F1")
	}
	p.summary.setRows(rows)
	p.u.events.ExperimentFinished.Emit(RunEnded{Experiment: sum.Experiment, Summary: sum, Err: err, Cancelled: cancelled})
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
	p.previewed = true
	p.previewSeq++
	seq := p.previewSeq
	if cfg.IsWebShop() {
		p.plan.SetText(p.shop.planText(cfg))
		p.prompt.SetText("")
		return
	}
	type result struct {
		plan   experiments.Plan
		prompt string
	}
	background(p.u, func(ctx context.Context) (result, error) {
		qs, err := experiments.LoadQuestions(ctx, p.st, cfg)
		if err != nil {
			return result{}, err
		}
		plan, err := experiments.PlanGrid(cfg, qs)
		if err != nil {
			return result{}, err
		}
		src, _ := p.u.deps.Store.(experiments.TemplateSource)
		rc, err := experiments.ResolveTemplate(ctx, src, cfg)
		if err != nil {
			return result{}, err
		}
		prompt, err := experiments.PreviewPrompt(rc, plan.Tasks[0])
		return result{plan, prompt}, err
	}, func(r result, err error) {
		if seq != p.previewSeq {
			return // the form changed since
		}
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

// formChanged keeps the grid preview true to the form: once a preview was
// shown, every edit previews again, or, while the form does not validate,
// says that the preview is out of date.
func (p *runPanel) formChanged() {
	if !p.previewed {
		return
	}
	if _, err := p.config(); err != nil {
		p.previewSeq++ // a preview still in flight is stale too
		p.plan.SetText("Out of date: the form changed and does not validate yet; press Preview to see why.")
		p.prompt.SetText("")
		return
	}
	p.preview()
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
	if cfg.IsWebShop() {
		p.shop.set(cfg)
		p.family.SetSelected(familyWebShop)
		def := p.u.deps.DefaultRun
		def.TimeoutSeconds, def.WebShop, def.Memory = cfg.TimeoutSeconds, cfg.WebShop, cfg.Memory.Knobs()
		p.u.deps.DefaultRun = def
		return
	}
	p.family.SetSelected(familyQA)
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
	if cfg.TemplateName != "" {
		if !contains(p.storedTemplate.Options, cfg.TemplateName) {
			p.storedTemplate.SetOptions(append(p.storedTemplate.Options, cfg.TemplateName))
		}
		p.storedTemplate.SetSelected(cfg.TemplateName)
	} else {
		p.storedTemplate.SetSelected(noStoredTemplate)
	}
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
	p.u.saveDialog("experiment.toml", func(wc fyne.URIWriteCloser) error {
		defer wc.Close()
		return p.exportTOML(wc)
	}, p.status.SetText)
}

// setRetriever shows rc in the retriever picker (nil = bm25).
func (p *runPanel) setRetriever(rc *experiments.RetrieverConfig) {
	kind := experiments.RetrieverBM25
	p.retrURLs, p.retrShown = map[string]string{}, ""
	p.retrKeyEnv.SetText("")
	if rc != nil {
		kind = rc.Kind
		switch rc.Kind {
		case experiments.RetrieverHTTP:
			p.retrURLs[kind] = rc.URL
		case experiments.RetrieverSerper:
			if u, _ := experiments.NormalizeSerperURL(rc.URL); u != experiments.DefaultSerperURL {
				p.retrURLs[kind] = rc.URL
			}
			p.retrKeyEnv.SetText(rc.APIKeyEnv)
		}
	}
	if p.retrKind.Selected == kind {
		p.retrKind.SetSelected("") // so OnChanged runs and shows the address
	}
	p.retrKind.SetSelected(kind)
}

// retriever reads the picker; the topk and timeout of the loaded config (not
// shown), and a web search's keyring entry, are kept.
func (p *runPanel) retriever() (*experiments.RetrieverConfig, error) {
	target := p.retrKind.Selected
	url := strings.TrimSpace(p.retrURL.Text)
	switch target {
	case "":
		target = experiments.RetrieverBM25
	case experiments.RetrieverHTTP:
		if url == "" {
			return nil, errors.New("give the /retrieve server's URL, e.g. http://127.0.0.1:8013/retrieve")
		}
		target = url
	case experiments.RetrieverSerper:
		if url != "" {
			target += ":" + url
		}
	}
	rc, err := experiments.ReplaceRetriever(p.u.deps.DefaultRun.Retriever, target)
	if err != nil || rc == nil || rc.Kind != experiments.RetrieverSerper {
		return rc, err
	}
	env := strings.TrimSpace(p.retrKeyEnv.Text)
	if env != "" && !envVarRE.MatchString(env) {
		return nil, fmt.Errorf("web search key: %q is not an environment variable name (the name, never the key)", env)
	}
	rc.APIKeyEnv = env
	return rc, nil
}

// envVarRE is an environment variable name.
var envVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// testRetriever sends one probe search to the picked /retrieve server or web search.
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
