package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/webshop"
	"github.com/mem1lab/mem1lab/storage"
)

// labRunner runs experiments of every task family: qa configs go to the
// retrieval QA runner (experiments.Runner), webshop ones to webshop.Runner.
// It is the GUI's runner (views.Runner and views.RunController) and what
// `mem1lab run` and `mem1lab resume` use. Resume, Control and Orphaned
// dispatch on the stored config's family.
type labRunner struct {
	QA    *experiments.Runner
	Store *storage.Store
	// ShopModel builds the WebShop model for a stored config (nil:
	// shopModel: the scripted shopper when the config names no endpoint).
	ShopModel func(cfg webshop.Config) (core.Model, error)
	// Backoff between retried WebShop requests (nil: 0.5 s × attempt).
	Backoff func(attempt int) time.Duration
	// OnTurn (may be nil) is told of each stored WebShop turn.
	OnTurn func(rolloutID int64, t core.Turn)
	// Heartbeat is how often a WebShop run refreshes its lease on the
	// experiment and reads control requests (`mem1lab cancel ID` from
	// another process); 0 = 1 s.
	Heartbeat time.Duration

	mu     sync.Mutex
	active map[int64]shopPlay // WebShop experiments playing here
	demo   *http.Server
	demoAt string
}

// shopPlay is a WebShop experiment playing here: its cancel and pause gate.
type shopPlay struct {
	cancel context.CancelFunc
	gate   *experiments.PauseGate
}

func newLabRunner(st *storage.Store, qa *experiments.Runner) *labRunner {
	if qa == nil {
		qa = &experiments.Runner{Store: st, Env: st}
	}
	return &labRunner{QA: qa, Store: st}
}

// Close stops the fake WebShop started for demo runs, if any.
func (r *labRunner) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.demo != nil {
		_ = r.demo.Close()
		r.demo, r.demoAt = nil, ""
	}
}

// demoURL starts the fake WebShop in-process (once; runs share it) and gives
// its root URL.
func (r *labRunner) demoURL() (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.demo != nil {
		return r.demoAt, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("webshop demo: %w", err)
	}
	srv := &http.Server{Handler: webshop.NewFakeServer(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	r.demo, r.demoAt = srv, "http://"+ln.Addr().String()
	return r.demoAt, nil
}

// Family is the stored experiment expID's task family ("qa" for configs
// written before families existed).
func (r *labRunner) Family(ctx context.Context, expID int64) (string, error) {
	e, err := r.Store.Experiment(ctx, expID)
	if err != nil {
		return "", err
	}
	var f struct {
		Family string `json:"family"`
	}
	_ = json.Unmarshal([]byte(e.ConfigJSON), &f)
	if f.Family == "" {
		return core.FamilyQA, nil
	}
	return f.Family, nil
}

// Run starts a new experiment for cfg in its family.
func (r *labRunner) Run(ctx context.Context, cfg experiments.RunConfig, progress func(experiments.Progress)) (experiments.Summary, error) {
	if !cfg.IsWebShop() {
		if err := cfg.Validate(); err != nil { // an unknown family is refused here, not run as qa
			return experiments.Summary{}, err
		}
		return r.QA.Run(ctx, cfg, progress)
	}
	wcfg, err := r.shopConfig(cfg)
	if err != nil {
		return experiments.Summary{}, err
	}
	name := cfg.Name
	if name == "" {
		name = fmt.Sprintf("webshop goals %s %s %s", cfg.WebShopResolved().Goals, strings.Join(wcfg.PolicyList(), ","), wcfg.Model)
	}
	return r.playShop(ctx, 0, progress, "", func(wr *webshop.Runner, ctx context.Context) (webshop.Summary, error) {
		return wr.Run(ctx, name, wcfg)
	}, wcfg)
}

// shopConfig turns a webshop RunConfig into the stored webshop.Config,
// starting the fake WebShop when the environment is demo.
func (r *labRunner) shopConfig(cfg experiments.RunConfig) (webshop.Config, error) {
	if err := cfg.Validate(); err != nil {
		return webshop.Config{}, err
	}
	w := cfg.WebShopResolved()
	goals, err := experiments.ParseGoalList(w.Goals)
	if err != nil {
		return webshop.Config{}, err
	}
	tmpl, err := readTemplate(cfg.Template)
	if err != nil {
		return webshop.Config{}, err
	}
	if cfg.TemplateName != "" {
		if cfg.Template != "" {
			return webshop.Config{}, fmt.Errorf("webshop: set template (a file) or template_name (a stored template), not both")
		}
		if tmpl, err = r.storedWebShopTemplate(cfg.TemplateName); err != nil {
			return webshop.Config{}, err
		}
	}
	wc := webshop.Config{EnvURL: w.Env, Goals: goals, Policy: cfg.Policy, Policies: cfg.Policies, MaxTurns: cfg.MaxTurns, Model: cfg.Model,
		Template: tmpl, Retries: w.Retries, Timeout: w.TimeoutSeconds, Memory: cfg.Memory}
	if cfg.Endpoint == experiments.WebShopScripted {
		wc.Model = webshop.ScriptedModelName
	} else {
		wc.Endpoint, wc.Mode, wc.APIKeyEnv, wc.APIKeyKeyring = experiments.StripUserinfo(cfg.Endpoint), cfg.Mode, cfg.APIKeyEnv, cfg.APIKeyKeyring
		if wc.Endpoint != cfg.Endpoint {
			wc.EndpointWithCredentials = cfg.Endpoint // in memory only
		}
		wc.SessionHeader, wc.SessionUser = cfg.SessionHeader, cfg.SessionUser
		wc.Temperature, wc.TopP, wc.MaxTokens, wc.RequestTimeout = cfg.Temperature, cfg.TopP, cfg.MaxTokens, cfg.TimeoutSeconds
	}
	if w.Env == experiments.WebShopDemo {
		if wc.EnvURL, err = r.demoURL(); err != nil {
			return webshop.Config{}, err
		}
		wc.FakeReward = true
	}
	return wc, nil
}

// shopModel is the default ShopModel: the scripted shopper for a config
// without an endpoint, else the endpoint's model (its key read from the
// named environment variable).
func shopModel(cfg webshop.Config) (core.Model, error) {
	if cfg.Endpoint == "" {
		if cfg.Model != webshop.ScriptedModelName {
			return nil, fmt.Errorf("webshop: the stored config names model %q but no endpoint: resume it with `mem1lab webshop-run --resume ID --endpoint URL --model %s`", cfg.Model, cfg.Model)
		}
		return webshop.Scripted{}, nil
	}
	key, err := experiments.ResolveKey(cfg.APIKeyEnv, cfg.APIKeyKeyring)
	if err != nil {
		return nil, fmt.Errorf("webshop: %w", err)
	}
	timeout := time.Duration(cfg.RequestTimeout * float64(time.Second))
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	base := cfg.Endpoint
	if cfg.EndpointWithCredentials != "" {
		base = cfg.EndpointWithCredentials
	}
	return experiments.NewModel(experiments.Endpoint{BaseURL: base, Model: cfg.Model, Mode: cfg.Mode, APIKey: key,
		Temperature: cfg.Temperature, TopP: cfg.TopP, MaxTokens: cfg.MaxTokens, Timeout: timeout,
		SessionHeader: cfg.SessionHeader, SessionUser: cfg.SessionUser})
}

// playShop runs one WebShop play (a Run, or a Resume of expID) with a
// cancel that Control can reach, progress in the experiments.Progress shape,
// and the figures as a one-group experiments.Summary (mean reward as EM and
// F1, in [0, 1]). A cancelled play returns the context's error with the
// summary so far.
func (r *labRunner) playShop(ctx context.Context, expID int64, progress func(experiments.Progress), envURL string,
	play func(*webshop.Runner, context.Context) (webshop.Summary, error), cfg webshop.Config) (experiments.Summary, error) {
	newModel := r.ShopModel
	if newModel == nil {
		newModel = shopModel
	}
	m, err := newModel(cfg)
	if err != nil {
		return experiments.Summary{Experiment: expID}, err
	}
	backoff := r.Backoff
	if backoff == nil {
		backoff = func(a int) time.Duration { return time.Duration(a) * 500 * time.Millisecond }
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	gate := experiments.NewPauseGate()
	owner := leaseOwner()
	registered := int64(0)
	var beats sync.WaitGroup
	stopBeats := make(chan struct{})
	// register claims experiment id for this play: the lease tells other
	// processes (and Runs) that it is played here and carries their cancel
	// requests. A play that loses the claim (another resume of the same
	// experiment, in this process or another, got there first) must not go
	// on: it would play the same rollouts twice.
	register := func(id int64) error {
		if id == 0 || registered == id {
			return nil
		}
		r.mu.Lock()
		if _, mine := r.active[id]; mine {
			r.mu.Unlock()
			return fmt.Errorf("experiment %d: %w (played here already)", id, experiments.ErrBusy)
		}
		if r.active == nil {
			r.active = map[int64]shopPlay{}
		}
		r.active[id] = shopPlay{cancel: cancel, gate: gate}
		r.mu.Unlock()
		bg := context.WithoutCancel(ctx)
		l, err := r.Store.ExperimentLease(bg, id)
		if err == nil && l.Owner != "" && l.Owner != owner {
			// Held by a process that is still alive: its play, not ours.
			if orphaned, oerr := r.QA.Orphaned(bg, id); oerr != nil || !orphaned {
				err = fmt.Errorf("experiment %d: %w (%s)", id, experiments.ErrBusy, l.Owner)
			}
		}
		if err == nil {
			var ok bool
			if ok, err = r.Store.ClaimExperiment(bg, id, owner, l.Owner); err == nil && !ok {
				err = fmt.Errorf("experiment %d: %w (claimed meanwhile)", id, experiments.ErrBusy)
			}
		}
		if err != nil {
			r.mu.Lock()
			delete(r.active, id)
			r.mu.Unlock()
			return err
		}
		registered = id
		every := r.Heartbeat
		if every <= 0 {
			every = time.Second
		}
		beats.Add(1)
		go func() {
			defer beats.Done()
			tick := time.NewTicker(every)
			defer tick.Stop()
			last := "" // the stored control last acted on: only a change is a request
			for {
				select {
				case <-stopBeats:
					return
				case <-tick.C:
					control, err := r.Store.TouchExperiment(bg, id, owner)
					if err != nil || control == last {
						continue // a read from before a local Pause or Resume must not undo it
					}
					last = control
					switch control {
					case "cancel":
						cancel()
					case "pause":
						if gate.Set(true) {
							r.setShopStatus(bg, id, experiments.StatusPaused)
						}
					default:
						if gate.Set(false) {
							r.setShopStatus(bg, id, storage.StatusRunning)
						}
					}
				}
			}
		}()
		return nil
	}
	defer func() {
		close(stopBeats)
		beats.Wait()
		if registered != 0 {
			_ = r.Store.ReleaseExperiment(context.WithoutCancel(ctx), registered, owner)
			r.mu.Lock()
			delete(r.active, registered)
			r.mu.Unlock()
		}
	}()
	if err := register(expID); err != nil {
		return experiments.Summary{Experiment: expID}, err
	}
	var claimErr error   // a new experiment's claim, made on its first progress report
	var secrets []string // the endpoint's key, kept out of what is stored
	if key, kerr := experiments.ResolveKey(cfg.APIKeyEnv, cfg.APIKeyKeyring); kerr == nil && key != "" {
		secrets = append(secrets, key)
	}
	wr := &webshop.Runner{Store: r.Store, Model: m, Backoff: backoff, EnvURL: envURL, Progress: r.OnTurn, Gate: gate,
		Redact: experiments.NewRedactor(secrets, cfg.EndpointWithCredentials, cfg.Endpoint), // an old config may hold userinfo
		Report: func(pr experiments.Progress) {
			if err := register(pr.Experiment); err != nil && claimErr == nil {
				claimErr = err
				cancel()
			}
			if progress != nil {
				progress(pr)
			}
		}}
	ws, err := play(wr, ctx)
	if claimErr != nil {
		return experiments.Summary{Experiment: ws.Experiment}, claimErr
	}
	sum := experiments.Summary{Experiment: ws.Experiment}
	for _, pf := range ws.ByPolicy {
		if pf.Rollouts == 0 {
			continue
		}
		g := experiments.Group{Policy: pf.Policy, Objectives: 1, Rollouts: pf.Rollouts, Failed: pf.Failed,
			MeanEM: pf.Reward100 / 100, MeanF1: pf.Reward100 / 100, MeanPeakTokens: pf.PeakTokens, MeanSeconds: pf.Seconds}
		if !math.IsNaN(pf.PeakTokens) {
			g.MeanPaperPeakTokens, g.PaperPeakN = pf.PeakTokens, pf.Done
		}
		sum.Groups = append(sum.Groups, g)
	}
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("webshop: experiment %d cancelled: %w", ws.Experiment, ctx.Err())
	}
	return sum, err
}

// Resume continues experiment expID in its family; a WebShop experiment run
// on the in-process fake WebShop gets a fresh one (episodes are replayed, so
// any server of the same goals will do).
func (r *labRunner) Resume(ctx context.Context, expID int64, progress func(experiments.Progress)) (experiments.Summary, error) {
	return r.resumeAt(ctx, expID, "", progress)
}

// resumeAt is Resume with the WebShop server replaced by env ("" = the
// stored one, or a fresh fake for a demo run; "demo" = a fresh fake).
func (r *labRunner) resumeAt(ctx context.Context, expID int64, env string, progress func(experiments.Progress)) (experiments.Summary, error) {
	fam, err := r.Family(ctx, expID)
	if err != nil {
		return experiments.Summary{Experiment: expID}, err
	}
	switch fam {
	case core.FamilyQA:
		return r.QA.Resume(ctx, expID, progress)
	case core.FamilyWebShop:
	default:
		return experiments.Summary{Experiment: expID}, fmt.Errorf("experiment %d: unknown task family %q", expID, fam)
	}
	e, err := r.Store.Experiment(ctx, expID)
	if err != nil {
		return experiments.Summary{Experiment: expID}, err
	}
	var cfg webshop.Config
	if err := json.Unmarshal([]byte(e.ConfigJSON), &cfg); err != nil {
		return experiments.Summary{Experiment: expID}, fmt.Errorf("experiment %d: stored config: %w", expID, err)
	}
	r.mu.Lock()
	_, busy := r.active[expID]
	r.mu.Unlock()
	if !busy {
		l, err := r.Store.ExperimentLease(ctx, expID)
		if err != nil {
			return experiments.Summary{Experiment: expID}, err
		}
		orphaned, _ := r.QA.Orphaned(ctx, expID)
		busy = l.Owner != "" && l.Status == storage.StatusRunning && !orphaned
	}
	if busy {
		return experiments.Summary{Experiment: expID}, fmt.Errorf("experiment %d: %w", expID, experiments.ErrBusy)
	}
	if env != "" && env != experiments.WebShopDemo {
		if u, perr := url.Parse(env); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return experiments.Summary{Experiment: expID}, fmt.Errorf("experiment %d: --env %q: want a WebShop server's http(s) URL or %q", expID, env, experiments.WebShopDemo)
		}
		if cfg.FakeReward {
			return experiments.Summary{Experiment: expID}, fmt.Errorf("experiment %d ran on mem1lab's fake WebShop, whose reward lacks the product-type term: resume it there (--env %s) and start a new experiment for %s", expID, experiments.WebShopDemo, env)
		}
	}
	if env == experiments.WebShopDemo || env == "" && cfg.FakeReward {
		if env, err = r.demoURL(); err != nil {
			return experiments.Summary{Experiment: expID}, err
		}
	}
	return r.playShop(ctx, expID, progress, env, func(wr *webshop.Runner, ctx context.Context) (webshop.Summary, error) {
		return wr.Resume(ctx, expID)
	}, cfg)
}

// Control pauses, resumes or cancels a running experiment. A WebShop
// experiment playing in this process is cancelled at once (its finished turns
// are kept; Resume continues it) or paused between turns: the turn in flight
// is stored, no new one starts until it is resumed, and the time paused is
// not counted in the episodes' seconds. The request is recorded in the store
// too, so a WebShop play in another process (and the QA runner for its
// experiments) picks it up within a heartbeat.
func (r *labRunner) Control(ctx context.Context, expID int64, action string) error {
	r.mu.Lock()
	play, mine := r.active[expID]
	r.mu.Unlock()
	if !mine {
		return r.QA.Control(ctx, expID, action)
	}
	switch action {
	case "cancel":
		play.cancel()
		return nil
	case "pause", "resume":
		paused := action == "pause"
		control, status := "", storage.StatusRunning
		if paused {
			control, status = "pause", experiments.StatusPaused
		}
		if err := r.Store.SetExperimentControl(ctx, expID, control); err != nil {
			return err
		}
		if play.gate.Set(paused) {
			r.setShopStatus(ctx, expID, status)
		}
		return nil
	default:
		return fmt.Errorf("runner: unknown action %q (want pause, resume or cancel)", action)
	}
}

// setShopStatus records a WebShop play's pause or go-on as the experiment's
// status while it is running or paused; a play that has just ended (done or
// cancelled) keeps its final status.
func (r *labRunner) setShopStatus(ctx context.Context, id int64, status string) {
	if e, err := r.Store.Experiment(ctx, id); err == nil && (e.Status == storage.StatusRunning || e.Status == experiments.StatusPaused) {
		_ = r.Store.SetExperimentStatus(ctx, id, status)
	}
}

// Orphaned reports whether an experiment listed as running has no live
// process holding it; a WebShop experiment playing here never is.
func (r *labRunner) Orphaned(ctx context.Context, expID int64) (bool, error) {
	r.mu.Lock()
	_, mine := r.active[expID]
	r.mu.Unlock()
	if mine {
		return false, nil
	}
	return r.QA.Orphaned(ctx, expID)
}

// storedWebShopTemplate is the text of the template kept in the store under
// name (`mem1lab template import FILE --family webshop`). Errors: no store, no
// such template, or one without an {instruction} slot (a QA template).
func (r *labRunner) storedWebShopTemplate(name string) (string, error) {
	if r.Store == nil {
		return "", fmt.Errorf("webshop: template_name %q: no store to read it from", name)
	}
	t, err := r.Store.Template(context.Background(), name)
	if err != nil {
		return "", fmt.Errorf("webshop: template_name %q: %w (import it with `mem1lab template import FILE --family webshop`)", name, err)
	}
	if !strings.Contains(t.Text, core.InstructionSlot) {
		return "", fmt.Errorf("webshop: template %q has no %s slot (is it a QA template?)", name, core.InstructionSlot)
	}
	return t.Text, nil
}

// readTemplate reads a WebShop prompt template file ("" = the built-in
// prompt). Errors: the file cannot be read, or it has no {instruction} slot.
func readTemplate(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if !strings.Contains(string(b), core.InstructionSlot) {
		return "", fmt.Errorf("%s: no %s slot", path, core.InstructionSlot)
	}
	return string(b), nil
}

// leaseOwner names this process as an experiment's lease holder, in the
// runner's "host|pid|nonce" form (so its liveness checks apply).
func leaseOwner() string {
	host, _ := os.Hostname()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s|%d|%s", strings.ReplaceAll(host, "|", "_"), os.Getpid(), hex.EncodeToString(b))
}
