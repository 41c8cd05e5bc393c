package views

import (
	"errors"
	"fmt"
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
	policy                           *widget.SelectEntry
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
	f.policy = widget.NewSelectEntry(webShopPolicyChoices)
	f.policy.SetText(core.PolicyMEM1)
	if _, err := core.WebShopPolicy(def.Policy, core.MemoryOptions{}); err == nil && def.Policy != "" {
		f.policy.SetText(def.Policy)
	}
	f.policy.OnChanged = func(string) { changed() }
	f.form = widget.NewForm(
		widget.NewFormItem("Name", f.name),
		widget.NewFormItem("Endpoint URL", hint(f.endpoint, `"scripted" plays mem1lab's scripted shopper (no model); a URL runs the model at that OpenAI-compatible endpoint`)),
		widget.NewFormItem("Model", f.model),
		widget.NewFormItem("Mode", f.mode),
		widget.NewFormItem("API key env var", f.apiKeyEnv),
		widget.NewFormItem("WebShop server", hint(f.env, `the root URL of AgentGym's agentenv-webshop, or "demo": mem1lab's fake WebShop started in-process, whose reward has no product-type term (not comparable with the paper's Table 2)`)),
		widget.NewFormItem("Goals", hint(f.goals, "goal indices such as 0-9 or 3,7,12; goals below 500 are WebShop's test split")),
		widget.NewFormItem("Policy", hint(f.policy, "mem1, a full-history or window baseline, or a memory baseline (its summariser, extractor and updater calls go to this endpoint; mem0 and amem also need its /v1/embeddings); type window:K or summary:K for another K, or a list such as mem1, full, amem to play every goal under each")),
		widget.NewFormItem("Max turns", f.maxTurns),
		widget.NewFormItem("Temperature", f.temperature),
		widget.NewFormItem("Top-p", f.topP),
		widget.NewFormItem("Max tokens per turn", f.maxTokens),
	)
	f.box = container.NewVBox(f.form)
	return f
}

// webShopPolicyChoices are the policies the WebShop form offers (any other
// that core.WebShopPolicy takes can be typed).
var webShopPolicyChoices = []string{core.PolicyMEM1, core.PolicyFull, core.PolicyFullMessages, "window:1", "window:2", "window:4",
	"summary:1", core.PolicyReSum, core.PolicyMemAgent, core.PolicyMem0, core.PolicyMem0Add, core.PolicyAMem}

// shopKeys maps RunConfig.Validate's keys to the WebShop form's labels.
var shopKeys = map[string]string{
	"endpoint": "Endpoint URL", "model": "Model", "mode": "Mode", "api_key_env": "API key env var",
	"temperature": "Temperature", "top_p": "Top-p", "max_tokens": "Max tokens per turn",
	"policy": "Policy", "max_turns": "Max turns", "webshop.env": "WebShop server", "webshop.goals": "Goals",
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
	cfg.Policy, cfg.Policies = strings.TrimSpace(f.policy.Text), nil
	if strings.Contains(cfg.Policy, ",") { // a list: every goal under each
		cfg.Policies = nil
		for _, p := range strings.Split(cfg.Policy, ",") {
			if p = strings.TrimSpace(p); p != "" {
				cfg.Policies = append(cfg.Policies, p)
			}
		}
		cfg.Policy = ""
		if len(cfg.Policies) > 0 {
			cfg.Policy = cfg.Policies[0]
		}
	}
	cfg.Endpoints, cfg.Memory, cfg.Retriever, cfg.Tags = nil, nil, nil, nil
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
	f.policy.SetText(strings.Join(cfg.PolicyList(), ", "))
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
