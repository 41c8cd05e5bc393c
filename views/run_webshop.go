package views

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
)

// Task family choices of New experiment.
const (
	familyQA      = "Retrieval QA"
	familyWebShop = "WebShop"
)

// shopForm is New experiment's form for the webshop family: the endpoint
// (or the scripted shopper), the WebShop server (or the in-process demo),
// goals, policy and turn budget. The run goes through the same Runner as a
// qa run, as a RunConfig with family = "webshop".
type shopForm struct {
	form                             *widget.Form
	name, endpoint, model, apiKeyEnv *widget.Entry
	mode                             *widget.Select
	policies                         *widget.CheckGroup // the usual policies
	morePolicies                     *widget.Entry      // others (window:K, summary:K), a comma list
	env, goals, maxTurns             *widget.Entry
	temperature, topP, maxTokens     *widget.Entry
	box                              *fyne.Container
}

func newShopForm(def experiments.RunConfig, changed func()) *shopForm {
	entry := func(v, place string) *widget.Entry {
		e := widget.NewEntry()
		e.SetText(v)
		e.SetPlaceHolder(place)
		e.OnChanged = func(string) { changed() }
		return e
	}
	ftoa := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	w := def.WebShopResolved()
	endpoint, turns := experiments.WebShopScripted, core.DefaultWebShopMaxTurns
	if def.IsWebShop() {
		endpoint = def.Endpoint
		if def.MaxTurns > 0 {
			turns = def.MaxTurns
		}
	}
	f := &shopForm{
		name:        entry(def.Name, "optional; generated when empty"),
		endpoint:    entry(endpoint, "scripted, or http://127.0.0.1:8000/v1"),
		model:       entry(def.Model, ""),
		apiKeyEnv:   entry(def.APIKeyEnv, "e.g. OPENAI_API_KEY (the key itself is never stored)"),
		env:         entry(w.Env, "demo, or http://127.0.0.1:36001"),
		goals:       entry(w.Goals, "e.g. 0-9 or 3,7,12"),
		maxTurns:    entry(strconv.Itoa(turns), ""),
		temperature: entry(ftoa(def.Temperature), ""),
		topP:        entry(ftoa(def.TopP), ""),
		maxTokens:   entry(strconv.Itoa(def.MaxTokens), ""),
	}
	f.mode = widget.NewSelect(modeChoices, func(string) { changed() })
	f.mode.SetSelected(def.Mode)
	if f.mode.Selected == "" {
		f.mode.SetSelected(experiments.ModeCompletions)
	}
	f.policies = widget.NewCheckGroup(webShopPolicyChoices, nil)
	f.morePolicies = entry("", "e.g. window:3, summary:2")
	f.setPolicies(def.PolicyList())
	f.policies.OnChanged = func([]string) { changed() }
	f.morePolicies.OnChanged = func(string) { changed() }
	f.form = widget.NewForm(
		widget.NewFormItem("Name", f.name),
		widget.NewFormItem("Endpoint URL", hint(f.endpoint, `"scripted" plays mem1lab's scripted shopper (no model); a URL runs the model at that OpenAI-compatible endpoint`)),
		widget.NewFormItem("Model", f.model),
		widget.NewFormItem("Mode", f.mode),
		widget.NewFormItem("API key env var", f.apiKeyEnv),
		widget.NewFormItem("WebShop server", hint(f.env, `the root URL of AgentGym's agentenv-webshop, or "demo": mem1lab's fake WebShop started in-process, whose reward has no product-type term (not comparable with the paper's Table 2)`)),
		widget.NewFormItem("Goals", hint(f.goals, "goal indices such as 0-9 or 3,7,12; goals below 500 are WebShop's test split")),
		widget.NewFormItem("Policies", hint(f.policies, "every goal is played under each policy checked: mem1, the full-history and window baselines, and the memory baselines (their summariser, extractor and updater calls go to this endpoint; mem0 and amem also need its /v1/embeddings)")),
		widget.NewFormItem("Other policies", hint(f.morePolicies, "window:K or summary:K with another K, comma-separated")),
		widget.NewFormItem("Max turns", f.maxTurns),
		widget.NewFormItem("Temperature", f.temperature),
		widget.NewFormItem("Top-p", f.topP),
		widget.NewFormItem("Max tokens per turn", f.maxTokens),
	)
	f.box = container.NewVBox(f.form)
	return f
}

// policyList is the checked policies in the offered order, then the other
// policies typed, without repeats.
func (f *shopForm) policyList() []string {
	var out []string
	for _, p := range webShopPolicyChoices {
		if slices.Contains(f.policies.Selected, p) {
			out = append(out, p)
		}
	}
	for _, p := range strings.Split(f.morePolicies.Text, ",") {
		if p = strings.TrimSpace(p); p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// setPolicies checks the offered policies among pols and types the others
// (mem1 alone when pols names none).
func (f *shopForm) setPolicies(pols []string) {
	var checked, other []string
	for _, p := range pols {
		switch {
		case p == "":
		case slices.Contains(webShopPolicyChoices, p):
			checked = append(checked, p)
		default:
			other = append(other, p)
		}
	}
	if len(checked)+len(other) == 0 {
		checked = []string{core.PolicyMEM1}
	}
	f.policies.SetSelected(checked)
	f.morePolicies.SetText(strings.Join(other, ", "))
}

// webShopPolicyChoices are the policies the WebShop form offers as checks
// (any other that core.WebShopPolicy takes can be typed).
var webShopPolicyChoices = []string{core.PolicyMEM1, core.PolicyFull, core.PolicyFullMessages, "window:1", "window:2", "window:4",
	"summary:1", core.PolicyReSum, core.PolicyMemAgent, core.PolicyMem0, core.PolicyMem0Add, core.PolicyAMem}

// shopKeys maps RunConfig.Validate's keys to the WebShop form's labels.
var shopKeys = map[string]string{
	"endpoint": "Endpoint URL", "model": "Model", "mode": "Mode", "api_key_env": "API key env var",
	"temperature": "Temperature", "top_p": "Top-p", "max_tokens": "Max tokens per turn",
	"policy": "Policies", "policies": "Policies", "max_turns": "Max turns", "webshop.env": "WebShop server", "webshop.goals": "Goals",
}

// config reads the WebShop form into a RunConfig with family = "webshop"
// over def (keys the form does not show come from def). What does not
// parse is reported per field; the rest is RunConfig.Validate's, under the
// form's labels.
func (f *shopForm) config(def experiments.RunConfig) (experiments.RunConfig, error) {
	cfg := def
	var errs []string
	unparsed := map[string]bool{}
	num := func(key, label string, e *widget.Entry, float bool) float64 {
		s := strings.TrimSpace(e.Text)
		var v float64
		var err error
		if float {
			v, err = strconv.ParseFloat(s, 64)
		} else {
			var n int
			n, err = strconv.Atoi(s)
			v = float64(n)
		}
		if err != nil {
			what := "a whole number"
			if float {
				what = "a number"
			}
			errs = append(errs, fmt.Sprintf("%s: %q is not %s", label, s, what))
			unparsed[key] = true
		}
		return v
	}
	cfg.Family = core.FamilyWebShop
	cfg.Name = strings.TrimSpace(f.name.Text)
	cfg.Endpoint = strings.TrimSpace(f.endpoint.Text)
	cfg.Model = strings.TrimSpace(f.model.Text)
	cfg.Mode = f.mode.Selected
	cfg.APIKeyEnv = strings.TrimSpace(f.apiKeyEnv.Text)
	pols := f.policyList()
	cfg.Policy, cfg.Policies = "", nil
	switch {
	case len(pols) == 1:
		cfg.Policy = pols[0]
	case len(pols) > 1:
		cfg.Policy, cfg.Policies = pols[0], pols
	default:
		errs = append(errs, "Policies: check at least one")
		unparsed["policy"] = true
	}
	cfg.Endpoints, cfg.Retriever, cfg.Tags = nil, nil, nil
	cfg.Memory = def.Memory.Knobs() // the memory baselines' knobs; their sub-calls go to this endpoint
	cfg.Template, cfg.TemplateName, cfg.TemplateSHA256, cfg.TemplateText = "", "", "", ""
	cfg.ObjectivesGrid, cfg.Datasets = nil, nil
	ws := experiments.WebShopSettings{Env: strings.TrimSpace(f.env.Text), Goals: strings.TrimSpace(f.goals.Text)}
	if def.WebShop != nil {
		ws.Retries, ws.TimeoutSeconds = def.WebShop.Retries, def.WebShop.TimeoutSeconds
	}
	if ws.Env == "" {
		errs = append(errs, `WebShop server: give a URL, or "demo" for the fake WebShop`)
		unparsed["webshop.env"] = true
	}
	if ws.Goals == "" {
		errs = append(errs, "Goals: give goal indices such as 0-9")
		unparsed["webshop.goals"] = true
	}
	cfg.WebShop = &ws
	cfg.MaxTurns = int(num("max_turns", "Max turns", f.maxTurns, false))
	cfg.Temperature = num("temperature", "Temperature", f.temperature, true)
	cfg.TopP = num("top_p", "Top-p", f.topP, true)
	cfg.MaxTokens = int(num("max_tokens", "Max tokens per turn", f.maxTokens, false))
	if err := cfg.Validate(); err != nil {
		for _, line := range strings.Split(strings.TrimPrefix(err.Error(), "invalid run config: "), "\n") {
			key, rest, ok := strings.Cut(line, ": ")
			if ok && unparsed[key] {
				continue
			}
			if label, known := shopKeys[key]; ok && known {
				line = label + ": " + rest
			}
			errs = append(errs, line)
		}
	}
	if len(errs) > 0 {
		return cfg, errors.New(strings.Join(errs, "\n"))
	}
	return cfg, nil
}

// set fills the WebShop form from cfg (a family = "webshop" config).
func (f *shopForm) set(cfg experiments.RunConfig) {
	ftoa := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	w := cfg.WebShopResolved()
	f.name.SetText(cfg.Name)
	f.endpoint.SetText(cfg.Endpoint)
	f.model.SetText(cfg.Model)
	f.mode.SetSelected(cfg.Mode)
	f.apiKeyEnv.SetText(cfg.APIKeyEnv)
	f.env.SetText(w.Env)
	f.goals.SetText(w.Goals)
	f.setPolicies(cfg.PolicyList())
	turns := cfg.MaxTurns
	if turns == 0 {
		turns = core.DefaultWebShopMaxTurns
	}
	f.maxTurns.SetText(strconv.Itoa(turns))
	f.temperature.SetText(ftoa(cfg.Temperature))
	f.topP.SetText(ftoa(cfg.TopP))
	f.maxTokens.SetText(strconv.Itoa(cfg.MaxTokens))
}

// planText is what Preview says of a WebShop run: one rollout per goal.
func (f *shopForm) planText(cfg experiments.RunConfig) string {
	goals, _ := experiments.ParseGoalList(cfg.WebShopResolved().Goals)
	who := "the scripted shopper"
	if cfg.Endpoint != experiments.WebShopScripted {
		who = cfg.Model
	}
	pols := cfg.PolicyList()
	each := fmt.Sprintf("one WebShop episode per goal, policy %s", pols[0])
	if len(pols) > 1 {
		each = fmt.Sprintf("one WebShop episode per goal and policy (%s)", strings.Join(pols, ", "))
	}
	text := fmt.Sprintf("%s: %s, %s, up to %d turns each",
		plural(len(goals)*len(pols), "rollout", "rollouts"), each, who, maxInt(cfg.MaxTurns, core.DefaultWebShopMaxTurns))
	if cfg.WebShopResolved().Env == experiments.WebShopDemo {
		text += "; on the fake WebShop (reward without the product-type term)"
	}
	return text
}

func maxInt(v, fallback int) int {
	if v > 0 {
		return v
	}
	return fallback
}
