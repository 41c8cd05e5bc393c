package views

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/mem1lab/mem1lab/experiments"
)

// endpointsPanel is the Endpoints screen: saved endpoint profiles (presets,
// fetch models, test connection) and a local vLLM/SGLang launcher with its log.
type endpointsPanel struct {
	u       *UI
	content fyne.CanvasObject

	profiles map[string]experiments.EndpointProfile
	names    []string
	list     *widget.List

	preset                         *widget.Select
	name, url, apiKeyEnv           *widget.Entry
	timeout, concurrency, rps      *widget.Entry
	sessionHeader                  *widget.Entry
	sessionUser                    *widget.Check
	mode                           *widget.Select
	model                          *widget.SelectEntry
	fetched                        []string // the models Fetch models found
	keyring, secret                *widget.Entry
	secretBt                       *widget.Button
	fetchBt, testBt, saveBt, delBt *widget.Button
	result                         *widget.Label
	form                           *widget.Form
	profileScroll                  *container.Scroll

	// Local server.
	engine                             *widget.Select
	command, lmodel, port, maxLen, gpu *widget.Entry
	extra                              *widget.Entry
	startBt, stopBt                    *widget.Button
	serverStatus                       *widget.Label
	log                                *widget.Entry
	logLines                           []string
	mu                                 sync.Mutex
	server                             *experiments.LocalServer
}

// headerNameRE is an HTTP header field name (RFC 9110's token).
var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// maxLogLines bounds the launcher's log panel.
const maxLogLines = 400

func newEndpointsPanel(u *UI) *endpointsPanel {
	p := &endpointsPanel{u: u, profiles: map[string]experiments.EndpointProfile{}}
	p.list = widget.NewList(func() int { return len(p.names) },
		func() fyne.CanvasObject { return widget.NewLabel("endpoint profile name") },
		func(id widget.ListItemID, o fyne.CanvasObject) {
			n := p.names[id]
			pr := p.profiles[n]
			o.(*widget.Label).SetText(fmt.Sprintf("%s · %s", n, pr.Model))
		})
	p.list.OnSelected = func(id widget.ListItemID) {
		if id >= 0 && id < len(p.names) {
			p.fill(p.profiles[p.names[id]])
		}
	}

	// Servers first, then the routers put in front of many replicas (each
	// fills the session settings a sticky or prefix-aware router reads, and
	// a concurrency for many GPUs).
	presetNames := make([]string, 0, len(experiments.EndpointPresets)+len(experiments.RouterPresets))
	for _, pr := range experiments.EndpointPresets {
		presetNames = append(presetNames, fmt.Sprintf("%s (%s)", pr.Name, pr.URL))
	}
	for _, rp := range experiments.RouterPresets {
		presetNames = append(presetNames, fmt.Sprintf("%s (%s)", rp.Description, rp.URL))
	}
	p.preset = widget.NewSelect(presetNames, func(s string) {
		i := slices.Index(presetNames, s)
		if i < 0 {
			return
		}
		if j := i - len(experiments.EndpointPresets); j >= 0 {
			p.fillRouter(experiments.RouterPresets[j])
			return
		}
		pr := experiments.EndpointPresets[i]
		p.url.SetText(pr.URL)
		p.mode.SetSelected(pr.Mode)
		if pr.Model != "" {
			p.model.SetText(pr.Model)
		}
		if pr.Note != "" {
			p.result.SetText(pr.Note)
		}
		if strings.TrimSpace(p.name.Text) == "" {
			p.name.SetText(strings.ToLower(strings.ReplaceAll(pr.Name, " ", "-")))
		}
	})
	p.preset.PlaceHolder = "fill from a preset…"
	p.name = widget.NewEntry()
	p.name.SetPlaceHolder("e.g. gpu-a")
	p.url = widget.NewEntry()
	p.url.SetPlaceHolder("http://127.0.0.1:8000/v1")
	p.mode = widget.NewSelect(modeChoices, nil)
	p.mode.SetSelected(experiments.ModeCompletions)
	p.model = widget.NewSelectEntry(nil)
	p.model.SetPlaceHolder("model name the server serves")
	p.apiKeyEnv = widget.NewEntry()
	p.apiKeyEnv.SetPlaceHolder("name of the env var holding the key (the key is never stored)")
	p.keyring = widget.NewEntry()
	p.keyring.SetPlaceHolder("or an OS keyring entry name, e.g. openai")
	p.secret = widget.NewPasswordEntry()
	p.secret.SetPlaceHolder("paste a key to keep it in the OS keyring")
	p.secretBt = widget.NewButton("Save to keyring", p.saveSecret)
	p.timeout = widget.NewEntry()
	p.timeout.SetText("120")
	p.concurrency = widget.NewEntry()
	p.concurrency.SetText("4")
	p.rps = widget.NewEntry()
	p.rps.SetText("0")
	p.sessionHeader = widget.NewEntry()
	p.sessionHeader.SetPlaceHolder(experiments.DefaultSessionHeader + " (default); - for none")
	p.sessionUser = widget.NewCheck("and as \"user\"", nil) // the OpenAI request's user field
	p.fetchBt = widget.NewButton("Fetch models", p.fetchModels)
	p.testBt = widget.NewButton("Test connection", p.testConnection)
	p.saveBt = widget.NewButton("Save", p.save)
	p.saveBt.Importance = widget.HighImportance
	p.delBt = widget.NewButton("Delete", p.remove)
	p.result = widget.NewLabel("")
	p.result.Wrapping = fyne.TextWrapWord
	p.form = widget.NewForm(
		widget.NewFormItem("Name", p.name),
		widget.NewFormItem("Base URL", p.url),
		widget.NewFormItem("Mode", p.mode),
		widget.NewFormItem("Model", container.NewBorder(nil, nil, nil, p.fetchBt, p.model)),
		widget.NewFormItem("API key env var", p.apiKeyEnv),
		widget.NewFormItem("API key keyring entry", p.keyring),
		widget.NewFormItem("", container.NewBorder(nil, nil, nil, p.secretBt, p.secret)),
		widget.NewFormItem("Timeout per request (s)", p.timeout),
		widget.NewFormItem("Max concurrency", p.concurrency),
		widget.NewFormItem("Requests/s (0 = no cap)", p.rps),
		widget.NewFormItem("Session key header", container.NewBorder(nil, nil, nil, p.sessionUser, p.sessionHeader)),
	)

	p.engine = widget.NewSelect([]string{experiments.EngineVLLM, experiments.EngineSGLang}, func(e string) {
		p.command.SetText(experiments.DefaultLaunchCommand(e))
	})
	p.command = widget.NewEntry()
	p.lmodel = widget.NewEntry()
	p.lmodel.SetText("Mem-Lab/Qwen2.5-7B-RL-RAG-Q2-EM-Release")
	p.port = widget.NewEntry()
	p.port.SetText("8014")
	p.maxLen = widget.NewEntry()
	p.maxLen.SetText("32768")
	p.gpu = widget.NewEntry()
	p.gpu.SetText("0.9")
	p.extra = widget.NewEntry()
	p.extra.SetPlaceHolder("e.g. --dtype bfloat16 --served-model-name mem1")
	p.engine.SetSelected(experiments.EngineVLLM)
	p.startBt = widget.NewButton("Start", p.startServer)
	p.startBt.Importance = widget.HighImportance
	p.stopBt = widget.NewButton("Stop", p.stopServer)
	p.stopBt.Disable()
	p.serverStatus = widget.NewLabel("Not running.")
	p.serverStatus.Wrapping = fyne.TextWrapWord
	p.serverStatus.Wrapping = fyne.TextWrapWord
	p.log = widget.NewMultiLineEntry()
	p.log.TextStyle = fyne.TextStyle{Monospace: true}
	p.log.Disable()
	p.log.SetMinRowsVisible(10)
	launcher := widget.NewForm(
		widget.NewFormItem("Engine", p.engine),
		widget.NewFormItem("Command template", p.command),
		widget.NewFormItem("Model", p.lmodel),
		widget.NewFormItem("Port", p.port),
		widget.NewFormItem("Max model length", p.maxLen),
		widget.NewFormItem("GPU memory utilisation", p.gpu),
		widget.NewFormItem("Extra args", p.extra),
	)

	bold := func(s string) *widget.Label {
		return widget.NewLabelWithStyle(s, fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	}
	left := container.NewBorder(bold("Endpoint profiles"), widget.NewButton("New", p.clear), nil, nil, p.list)
	profileBox := container.NewVBox(container.NewBorder(nil, nil, bold("Profile"), nil, p.preset), p.form, container.NewHBox(p.saveBt, p.testBt, p.delBt), p.result)
	// Both halves scroll, so neither holds the divider in place: it moves
	// wherever the user drags it.
	localBox := container.NewVScroll(container.NewVBox(bold("Local inference server"), launcher,
		container.NewHBox(p.startBt, p.stopBt), p.serverStatus, p.log))
	p.profileScroll = container.NewVScroll(profileBox)
	right := container.NewVSplit(p.profileScroll, localBox)
	right.Offset = 0.74 // at 1280×800 the whole profile form, Save and Test included, shows
	u.rememberSplit("endpoints.right", right)
	split := container.NewHSplit(left, right)
	split.Offset = 0.22
	u.rememberSplit("endpoints.split", split)
	p.content = split
	u.follow(ScreenEndpoints, p.reload)
	return p
}

// reload reads the saved profiles.
func (p *endpointsPanel) reload() {
	background(p.u, func(ctx context.Context) (map[string]experiments.EndpointProfile, error) {
		return loadProfiles(ctx, p.u.deps.Store)
	}, func(ps map[string]experiments.EndpointProfile, err error) {
		if err != nil {
			p.result.SetText("Could not list endpoint profiles: " + err.Error())
			return
		}
		if ps == nil {
			ps = map[string]experiments.EndpointProfile{}
		}
		p.profiles = ps
		p.names = p.names[:0]
		for n := range ps {
			p.names = append(p.names, n)
		}
		slices.Sort(p.names)
		p.list.Refresh()
	})
}

func (p *endpointsPanel) clear() {
	p.list.UnselectAll()
	p.fill(experiments.EndpointProfile{Mode: experiments.ModeCompletions, TimeoutSeconds: 120, Concurrency: 4})
	p.result.SetText("")
}

func (p *endpointsPanel) fill(pr experiments.EndpointProfile) {
	ftoa := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	p.name.SetText(pr.Name)
	p.url.SetText(pr.URL)
	p.mode.SetSelected(pr.Mode)
	p.model.SetText(pr.Model)
	p.apiKeyEnv.SetText(pr.APIKeyEnv)
	p.keyring.SetText(pr.APIKeyKeyring)
	p.timeout.SetText(ftoa(pr.TimeoutSeconds))
	p.concurrency.SetText(strconv.Itoa(pr.Concurrency))
	p.rps.SetText(ftoa(pr.RequestsPerSecond))
	p.sessionHeader.SetText(pr.SessionHeader)
	p.sessionUser.SetChecked(pr.SessionUser)
}

// fillRouter fills the form from a router preset: its address, mode,
// concurrency and session settings (the name too when empty); the model and
// key stay as typed.
func (p *endpointsPanel) fillRouter(rp experiments.RouterPreset) {
	pr := rp.Profile(strings.TrimSpace(p.name.Text), "", strings.TrimSpace(p.model.Text))
	if pr.Name == "" {
		pr.Name = rp.Name
	}
	p.name.SetText(pr.Name)
	p.url.SetText(pr.URL)
	p.mode.SetSelected(pr.Mode)
	p.concurrency.SetText(strconv.Itoa(pr.Concurrency))
	p.sessionHeader.SetText(pr.SessionHeader)
	p.sessionUser.SetChecked(pr.SessionUser)
	p.result.SetText(rp.Description + ": every request of a rollout carries its session key (header " +
		pr.SessionHeader + "), so the router keeps the rollout on the replica that holds its prefix.")
}

// profile reads the form; every bad field is reported, one line each.
func (p *endpointsPanel) profile() (experiments.EndpointProfile, error) {
	var errs []string
	pr := experiments.EndpointProfile{
		Name: strings.TrimSpace(p.name.Text), URL: strings.TrimSpace(p.url.Text), Model: strings.TrimSpace(p.model.Text),
		Mode: p.mode.Selected, APIKeyEnv: strings.TrimSpace(p.apiKeyEnv.Text), APIKeyKeyring: strings.TrimSpace(p.keyring.Text),
		SessionHeader: strings.TrimSpace(p.sessionHeader.Text), SessionUser: p.sessionUser.Checked,
	}
	num := func(label, s string) float64 {
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %q is not a number", label, s))
		}
		return v
	}
	if h := pr.SessionHeader; h != "" && h != "-" && !headerNameRE.MatchString(h) {
		errs = append(errs, fmt.Sprintf("Session key header: %q is not an HTTP header name (letters, digits and !#$%%&'*+-.^_`|~)", h))
	}
	pr.TimeoutSeconds = num("Timeout", p.timeout.Text)
	pr.RequestsPerSecond = num("Requests/s", p.rps.Text)
	if c, err := strconv.Atoi(strings.TrimSpace(p.concurrency.Text)); err != nil {
		errs = append(errs, fmt.Sprintf("Max concurrency: %q is not a whole number", p.concurrency.Text))
	} else {
		pr.Concurrency = c
	}
	return pr, formErrors(errs, pr.Validate)
}

func (p *endpointsPanel) save() {
	pr, err := p.profile()
	if err != nil {
		p.result.SetText(err.Error())
		return
	}
	ps, ok := p.u.deps.Store.(profileStore)
	if !ok {
		p.result.SetText("This store cannot keep endpoint profiles.")
		return
	}
	b, _ := json.Marshal(pr)
	background(p.u, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, ps.SaveEndpointProfile(ctx, pr.Name, string(b))
	}, func(_ struct{}, err error) {
		if err != nil {
			p.result.SetText("Could not save: " + err.Error())
			return
		}
		p.result.SetText(fmt.Sprintf("Saved %q.", pr.Name))
		p.reload()
		p.u.events.ProfilesChanged.Emit(struct{}{})
	})
}

func (p *endpointsPanel) remove() {
	name := strings.TrimSpace(p.name.Text)
	ps, ok := p.u.deps.Store.(profileStore)
	if !ok || name == "" {
		return
	}
	background(p.u, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, ps.DeleteEndpointProfile(ctx, name)
	}, func(_ struct{}, err error) {
		if err != nil {
			p.result.SetText("Could not delete: " + err.Error())
			return
		}
		p.result.SetText(fmt.Sprintf("Deleted %q.", name))
		p.clear()
		p.reload()
		p.u.events.ProfilesChanged.Emit(struct{}{})
	})
}

// saveSecret keeps the pasted key in the OS keyring under the entry name; the
// key leaves the form at once and never reaches the store.
func (p *endpointsPanel) saveSecret() {
	entry, key := strings.TrimSpace(p.keyring.Text), p.secret.Text
	p.secret.SetText("")
	if err := experiments.SaveKeyringKey(entry, key); err != nil {
		p.result.SetText("Keyring: " + err.Error())
		return
	}
	p.result.SetText(fmt.Sprintf("Key saved in the OS keyring under %q.", entry))
}

func (p *endpointsPanel) fetchModels() {
	pr := experiments.EndpointProfile{URL: strings.TrimSpace(p.url.Text), APIKeyEnv: strings.TrimSpace(p.apiKeyEnv.Text),
		APIKeyKeyring: strings.TrimSpace(p.keyring.Text)}
	p.result.SetText("Fetching models…")
	background(p.u, func(ctx context.Context) ([]string, error) {
		return experiments.FetchModels(ctx, pr, nil)
	}, func(ms []string, err error) {
		if err != nil {
			p.result.SetText("Fetch models failed: " + err.Error())
			return
		}
		p.fetched = ms
		p.fetched = ms
		p.model.SetOptions(ms)
		if len(ms) > 0 && strings.TrimSpace(p.model.Text) == "" {
			p.model.SetText(ms[0])
		}
		p.result.SetText(fmt.Sprintf("%s: %s", plural(len(ms), "model", "models"), strings.Join(ms, ", ")))
	})
}

func (p *endpointsPanel) testConnection() {
	pr, err := p.profile()
	if err != nil {
		p.result.SetText(err.Error())
		return
	}
	p.result.SetText("Testing…")
	p.testBt.Disable()
	background(p.u, func(ctx context.Context) (experiments.ConnectionReport, error) {
		return experiments.TestConnection(ctx, pr, nil)
	}, func(rep experiments.ConnectionReport, err error) {
		p.testBt.Enable()
		if err != nil {
			p.result.SetText("Connection failed: " + err.Error())
			return
		}
		p.result.SetText(fmt.Sprintf("OK: %s answered in %s (%q).", pr.Model, rep.Latency.Round(time.Millisecond), rep.Text))
	})
}

// launchSpec reads the launcher form.
func (p *endpointsPanel) launchSpec() (experiments.LaunchSpec, error) {
	s := experiments.LaunchSpec{Engine: p.engine.Selected, Command: p.command.Text, Model: strings.TrimSpace(p.lmodel.Text),
		ExtraArgs: p.extra.Text}
	var errs []string
	var err error
	if s.Port, err = strconv.Atoi(strings.TrimSpace(p.port.Text)); err != nil {
		errs = append(errs, fmt.Sprintf("Port: %q is not a whole number", p.port.Text))
	}
	if t := strings.TrimSpace(p.maxLen.Text); t != "" {
		if s.MaxModelLen, err = strconv.Atoi(t); err != nil {
			errs = append(errs, fmt.Sprintf("Max model length: %q is not a whole number", t))
		}
	}
	if t := strings.TrimSpace(p.gpu.Text); t != "" {
		if s.GPUMemory, err = strconv.ParseFloat(t, 64); err != nil {
			errs = append(errs, fmt.Sprintf("GPU memory utilisation: %q is not a number", t))
		}
	}
	return s, formErrors(errs, s.Validate)
}

func (p *endpointsPanel) appendLog(line string) {
	p.logLines = append(p.logLines, line)
	if len(p.logLines) > maxLogLines {
		p.logLines = p.logLines[len(p.logLines)-maxLogLines:]
	}
	p.log.SetText(strings.Join(p.logLines, "\n"))
}

// startServer starts the local server, streams its log, waits for /health and
// then saves a ready profile "local-ENGINE" pointing at it.
func (p *endpointsPanel) startServer() {
	spec, err := p.launchSpec()
	if err != nil {
		p.serverStatus.SetText(err.Error())
		return
	}
	p.logLines = nil
	p.log.SetText("")
	srv, err := experiments.StartLocalServer(spec, func(line string) { p.u.do(func() { p.appendLog(line) }) })
	if err != nil {
		p.serverStatus.SetText(err.Error())
		return
	}
	p.mu.Lock()
	p.server = srv
	p.mu.Unlock()
	p.startBt.Disable()
	p.stopBt.Enable()
	p.serverStatus.SetText(fmt.Sprintf("Starting %s on port %d; waiting for /health…", spec.Engine, spec.Port))
	prof := experiments.EndpointProfile{Name: "local-" + spec.Engine, URL: srv.URL, Model: spec.Model,
		Mode: experiments.ModeCompletions, TimeoutSeconds: 600, Concurrency: 8}
	background(p.u, func(ctx context.Context) (struct{}, error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
		defer cancel()
		if err := srv.WaitHealthy(ctx); err != nil {
			return struct{}{}, err
		}
		if ps, ok := p.u.deps.Store.(profileStore); ok {
			b, _ := json.Marshal(prof)
			if err := ps.SaveEndpointProfile(ctx, prof.Name, string(b)); err != nil {
				return struct{}{}, err
			}
		}
		return struct{}{}, nil
	}, func(_ struct{}, err error) {
		if err != nil {
			p.serverStatus.SetText("Not ready: " + err.Error())
			p.startBt.Enable()
			p.stopBt.Disable()
			return
		}
		p.serverStatus.SetText(fmt.Sprintf("Ready at %s: profile %q saved.", srv.URL, prof.Name))
		p.reload()
		p.u.events.ProfilesChanged.Emit(struct{}{})
	})
}

// stopServer stops the local server (SIGTERM, then SIGKILL after 15 s).
func (p *endpointsPanel) stopServer() {
	p.mu.Lock()
	srv := p.server
	p.server = nil
	p.mu.Unlock()
	if srv == nil {
		return
	}
	p.stopBt.Disable()
	p.serverStatus.SetText("Stopping…")
	background(p.u, func(ctx context.Context) (struct{}, error) {
		srv.Stop(15 * time.Second)
		return struct{}{}, nil
	}, func(struct{}, error) {
		p.serverStatus.SetText("Stopped.")
		p.startBt.Enable()
	})
}

// shutdown stops a running local server and waits for it (app exit).
func (p *endpointsPanel) shutdown() {
	p.mu.Lock()
	srv := p.server
	p.server = nil
	p.mu.Unlock()
	if srv != nil {
		srv.Stop(15 * time.Second)
	}
}

// Shutdown stops what the UI started: it cancels what still runs (StopRuns
// before quitting lets the runs record how they ended), the store watch, and
// stops a local inference server. Call it after the window closed.
func (u *UI) Shutdown() {
	u.stop()
	if u.endpoints != nil {
		u.endpoints.shutdown()
	}
}

// formErrors is a form's verdict: the field errors found while reading it, or,
// when every field parsed, what validate says of the whole; one message per line.
func formErrors(fieldErrs []string, validate func() error) error {
	if len(fieldErrs) == 0 {
		if err := validate(); err != nil {
			fieldErrs = strings.Split(err.Error(), "\n")
		}
	}
	if len(fieldErrs) > 0 {
		return errors.New(strings.Join(fieldErrs, "\n"))
	}
	return nil
}
