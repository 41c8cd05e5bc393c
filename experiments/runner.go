package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// RunStore is what the runner needs from the store (*storage.Store satisfies
// it): questions to compose tasks from, the experiment/task/rollout/turn writes
// (each committed as it happens), and the lease and queue of a running
// experiment.
type RunStore interface {
	// Questions returns up to limit questions of dataset ordered by seq after
	// skipping offset; limit ≤ 0 means all.
	Questions(ctx context.Context, dataset string, offset, limit int) ([]storage.Question, error)
	CreateExperiment(ctx context.Context, name, configJSON, configHash string) (int64, error)
	Experiment(ctx context.Context, id int64) (storage.ExperimentRow, error)
	SetExperimentStatus(ctx context.Context, id int64, status string) error
	AddTasks(ctx context.Context, expID int64, tasks []core.Task) (map[string]int64, error)
	QueueRollouts(ctx context.Context, expID int64, specs []storage.RolloutSpec) ([]int64, error)
	ExperimentLease(ctx context.Context, id int64) (storage.Lease, error)
	ClaimExperiment(ctx context.Context, id int64, owner, prev string) (bool, error)
	TouchExperiment(ctx context.Context, id int64, owner string) (string, error)
	ReleaseExperiment(ctx context.Context, id int64, owner string) error
	SetExperimentControl(ctx context.Context, id int64, control string) error
	RequeueInterrupted(ctx context.Context, expID int64) (int, error)
	CancelQueued(ctx context.Context, expID int64) (int, error)
	QueuedRollouts(ctx context.Context, expID int64) ([]storage.PendingRollout, error)
	ClaimRollout(ctx context.Context, id int64, endpoint string) (bool, error)
	// SetRolloutPrompt records the task prompt a claimed rollout sends.
	SetRolloutPrompt(ctx context.Context, id int64, prompt string) error
	Turns(ctx context.Context, rolloutID int64) ([]core.Turn, error)
	AppendTurn(ctx context.Context, rolloutID int64, t core.Turn) error
	RecordAttempt(ctx context.Context, a storage.Attempt) error
	FinishRollout(ctx context.Context, id int64, r storage.RolloutResult) error
	Rollouts(ctx context.Context, expID int64) ([]storage.RolloutRow, error)
}

var _ RunStore = (*storage.Store)(nil)

// ErrBusy is wrapped when an experiment is being run by another live process.
var ErrBusy = errors.New("experiment is being run elsewhere")

// ErrCancelRequested is returned (wrapping context.Canceled) when a run ends
// because Control(…, "cancel") or `mem1lab cancel` asked it to.
var ErrCancelRequested = fmt.Errorf("cancel requested: %w", context.Canceled)

// Runner runs experiments: it expands a config's grid (endpoint models ×
// policies × objectives × tasks) into rollouts queued in the store, and plays
// them through core.Agent on workers bound to endpoints (each endpoint gets as
// many workers as its concurrency, so endpoints serving one model share its
// rollouts in proportion to their concurrency), with rate limits, retries with
// backoff, a circuit breaker per endpoint, pause/resume/cancel and resumption
// after a crash. Every turn is stored as soon as it completes.
type Runner struct {
	Store RunStore
	// Env answers searches when the config's retriever is bm25 (the default):
	// the store's FTS5 index. A retriever of kind "http" replaces it with an
	// HTTPRetriever (NewRetriever).
	Env core.Environment
	// NewModel builds the model for one endpoint: it receives the config with its
	// top-level endpoint keys set to that endpoint (RunConfig.ForEndpoint). nil =
	// the go-openai adapter, key from the environment variable the profile names.
	// A model that implements io.Closer is closed when the run ends.
	NewModel func(RunConfig) (core.Model, error)
	// Clock is passed to each agent (nil = time.Now).
	Clock func() time.Time
	// Heartbeat is how often a running experiment refreshes its lease and its
	// rollouts' heartbeats and reads control requests (0 = 1 s).
	Heartbeat time.Duration
	// StaleAfter is how old a lease must be before another process may take the
	// experiment over (0 = 15 s). A lease whose process is gone from this host
	// is taken over at once.
	StaleAfter time.Duration
	// RetryFailed makes Resume put the experiment's failed rollouts back in
	// the queue first (the store must implement RequeueFailed): each goes on
	// from its last stored turn; done rollouts are never run again.
	RetryFailed bool

	// groupWait is the group commit's window (0 = groupCommitWait); tests
	// widen it so that what shares a commit does not depend on the machine's
	// speed.
	groupWait time.Duration

	mu     sync.Mutex
	active map[int64]*activeRun
}

// activeRun is an experiment this Runner is playing.
type activeRun struct {
	gate      *gate
	cancel    context.CancelFunc
	requested bool // cancel was requested through Control or the store
	mu        sync.Mutex
}

// Run creates the experiment described by cfg and plays it to the end; see
// Create and Resume.
//
// A rollout whose model calls or retrievals keep failing (after retries; the
// retriever's calls are retried like model calls) is stored as failed with the
// error text and the others go on.
// Cancelling ctx stops launching rollouts; rollouts in flight end as cancelled
// (their finished turns stay stored, and Resume continues them), the rollouts
// never started stay queued, and the experiment is marked cancelled. Run
// returns only after every worker and the heartbeat have stopped.
//
// progress (may be nil) is called after each stored turn and each finished
// rollout (and when a pause starts or ends). Calls are serialised: never two at
// once, never after Run returns. Changes made while a call is under way are
// merged into one next call with the latest figures (workers do not wait for
// the callback), so a slow callback sees fewer calls, never stale ones.
//
// The experiment ends "done", or "failed" when every rollout failed, or
// "cancelled".
//
// Errors: an invalid config, no questions or no tasks for the dataset, a model
// that cannot be built, store failures outside a rollout, and ctx.Err() after a
// cancellation (the summary is still filled in).
func (r *Runner) Run(ctx context.Context, cfg RunConfig, progress func(Progress)) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	if r.Store == nil {
		return Summary{}, errors.New("runner: no store")
	}
	if _, err := r.retriever(cfg); err != nil {
		return Summary{}, err
	}
	cfg, err := r.resolveTemplate(ctx, cfg)
	if err != nil {
		return Summary{}, err
	}
	eps, closeEps, err := r.endpoints(cfg)
	if err != nil {
		return Summary{}, err
	}
	defer closeEps()
	red := newRedactor(cfg)
	expID, err := r.Create(ctx, cfg)
	if err != nil {
		return Summary{Experiment: expID}, errors.New(red.text(err.Error()))
	}
	return r.execute(ctx, expID, cfg.WithoutCredentials(), eps, red, progress)
}

// Plan is what a config's grid will make, for the composer's preview.
type Plan struct {
	Settings []Setting
	Tasks    []core.Task // every distinct task, by objectives then key
	Rollouts int
}

// Setting is one cell of the grid: a model (its endpoints share it), a policy
// and a number of objectives, with the number of tasks it runs.
type Setting struct {
	Model      string `json:"model"`
	Policy     string `json:"policy"`
	Objectives int    `json:"objectives"`
	Tasks      int    `json:"tasks"`
}

// QuestionSource gives a dataset's questions (*storage.Store and RunStore have it).
type QuestionSource interface {
	// Questions returns up to limit questions of dataset ordered by seq after
	// skipping offset; limit ≤ 0 means all.
	Questions(ctx context.Context, dataset string, offset, limit int) ([]storage.Question, error)
}

// LoadQuestions reads every question of cfg's source datasets
// (RunConfig.SourceDatasets: the mixed sources in order, else the dataset),
// one dataset after another, each in seq order. Errors name the dataset: a
// read failure, or a dataset with no questions (not imported).
func LoadQuestions(ctx context.Context, src QuestionSource, cfg RunConfig) ([]storage.Question, error) {
	var all []storage.Question
	for _, d := range cfg.SourceDatasets() {
		qs, err := src.Questions(ctx, d, 0, 0)
		if err != nil {
			return nil, fmt.Errorf("runner: questions of dataset %q: %w", d, err)
		}
		if len(qs) == 0 {
			return nil, fmt.Errorf("runner: dataset %q has no questions (import it first)", d)
		}
		all = append(all, qs...)
	}
	return all, nil
}

// PlanGrid expands cfg over qs (the dataset's questions; for compose = "mixed"
// every source dataset's questions, as LoadQuestions gives): for each objectives
// value the composed tasks (ComposeTasks), times policies, times models.
// Errors: an objectives value that yields no task.
func PlanGrid(cfg RunConfig, qs []storage.Question) (Plan, error) {
	var plan Plan
	for _, n := range cfg.ObjectivesList() {
		c := cfg
		c.Objectives = n
		tasks := ComposeTasks(c, qs)
		if c.Sample > 0 {
			var err error
			if tasks, err = SampleTasks(ComposeTasks(RunConfig{Compose: c.Compose, Dataset: c.Dataset, Datasets: c.Datasets,
				Objectives: n, Seed: c.Seed}, qs), c.Sample, c.Seed); err != nil {
				return Plan{}, fmt.Errorf("runner: %d-objective tasks: %w", n, err)
			}
			if c.Tasks > 0 && len(tasks) > c.Tasks {
				tasks = tasks[:c.Tasks]
			}
		}
		if len(tasks) == 0 {
			return Plan{}, fmt.Errorf("runner: dataset %q (%d questions) yields no %d-objective task", cfg.TaskDataset(), len(qs), n)
		}
		plan.Tasks = append(plan.Tasks, tasks...)
		for _, m := range cfg.Models() {
			for _, p := range cfg.PolicyList() {
				plan.Settings = append(plan.Settings, Setting{Model: m, Policy: p, Objectives: n, Tasks: len(tasks)})
				plan.Rollouts += len(tasks)
			}
		}
	}
	return plan, nil
}

// Create validates cfg, composes its grid from the store's questions and
// records the experiment (status queued) with cfg as JSON and cfg.Hash() (the
// API key is never in cfg, only where to find it), its tasks, and one queued
// rollout per (task, policy, model), all queued in one transaction. It returns
// the experiment id (0 when nothing was recorded).
func (r *Runner) Create(ctx context.Context, cfg RunConfig) (int64, error) {
	if err := cfg.Validate(); err != nil {
		return 0, err
	}
	cfg, err := r.resolveTemplate(ctx, cfg)
	if err != nil {
		return 0, err
	}
	cfg = cfg.WithoutCredentials() // what is stored never holds a key
	for _, p := range cfg.PolicyList() {
		c := cfg
		c.Policy = p
		if _, err := agentConfig(c); err != nil {
			return 0, err
		}
	}
	qs, err := LoadQuestions(ctx, r.Store, cfg)
	if err != nil {
		return 0, err
	}
	plan, err := PlanGrid(cfg, qs)
	if err != nil {
		return 0, err
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return 0, err
	}
	name := cfg.Name
	if name == "" {
		ns := make([]string, 0, len(cfg.ObjectivesList()))
		for _, n := range cfg.ObjectivesList() {
			ns = append(ns, fmt.Sprint(n))
		}
		name = fmt.Sprintf("%s n%s %s %s", strings.Join(cfg.SourceDatasets(), "+"), strings.Join(ns, ","), strings.Join(cfg.PolicyList(), ","), strings.Join(cfg.Models(), ","))
	}
	expID, err := r.Store.CreateExperiment(ctx, name, string(cfgJSON), cfg.Hash())
	if err != nil {
		return 0, fmt.Errorf("runner: %w", err)
	}
	taskIDs, err := r.Store.AddTasks(ctx, expID, plan.Tasks)
	if err != nil {
		r.setStatus(expID, storage.StatusFailed)
		return expID, fmt.Errorf("runner: %w", err)
	}
	var specs []storage.RolloutSpec
	for _, t := range plan.Tasks {
		for _, p := range cfg.PolicyList() {
			for _, m := range cfg.Models() {
				specs = append(specs, storage.RolloutSpec{TaskID: taskIDs[t.Key], Policy: p, Model: m})
			}
		}
	}
	if _, err := r.Store.QueueRollouts(ctx, expID, specs); err != nil {
		r.setStatus(expID, storage.StatusFailed)
		return expID, fmt.Errorf("runner: %w", err)
	}
	return expID, nil
}

// StoredConfig reads experiment expID's config back from the store.
func (r *Runner) StoredConfig(ctx context.Context, expID int64) (RunConfig, error) {
	e, err := r.Store.Experiment(ctx, expID)
	if err != nil {
		return RunConfig{}, err
	}
	if err := qaFamilyConfig(expID, e.ConfigJSON); err != nil {
		return RunConfig{}, err
	}
	var cfg RunConfig
	if err := json.Unmarshal([]byte(e.ConfigJSON), &cfg); err != nil {
		return RunConfig{}, fmt.Errorf("runner: experiment %d: stored config: %w", expID, err)
	}
	return cfg, nil
}

// Resume plays experiment expID's unfinished rollouts: queued ones, and those
// left running by a crash or cancelled, each continued from its last stored
// turn (the next context is rebuilt from the stored turns, so the rollout goes
// on exactly as if never interrupted). It fails with ErrBusy while another
// live process holds the experiment.
func (r *Runner) Resume(ctx context.Context, expID int64, progress func(Progress)) (Summary, error) {
	if r.Store == nil {
		return Summary{}, errors.New("runner: no store")
	}
	cfg, err := r.StoredConfig(ctx, expID)
	if err != nil {
		return Summary{Experiment: expID}, err
	}
	if err := cfg.Validate(); err != nil {
		return Summary{Experiment: expID}, err
	}
	if _, err := r.retriever(cfg); err != nil {
		return Summary{Experiment: expID}, err
	}
	eps, closeEps, err := r.endpoints(cfg)
	if err != nil {
		return Summary{Experiment: expID}, err
	}
	defer closeEps()
	return r.execute(ctx, expID, cfg, eps, newRedactor(cfg), progress)
}

// endpoints builds every endpoint's model.
func (r *Runner) endpoints(cfg RunConfig) ([]*endpointState, func(), error) {
	newModel := r.NewModel
	if newModel == nil {
		newModel = func(c RunConfig) (core.Model, error) {
			if _, err := ResolveKey(c.APIKeyEnv, c.APIKeyKeyring); err != nil {
				return nil, err
			}
			return NewModel(c.EndpointConfig())
		}
	}
	rp := cfg.retryPolicy()
	var eps []*endpointState
	closeAll := func() {
		for _, e := range eps {
			if cl, ok := e.model.(io.Closer); ok {
				_ = cl.Close()
			}
		}
	}
	for _, p := range cfg.EndpointList() {
		m, err := newModel(cfg.ForEndpoint(p))
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("runner: model of endpoint %s: %w", p.Name, err)
		}
		eps = append(eps, newEndpointState(p, m, rp))
	}
	return eps, closeAll, nil
}

// Control asks experiment expID to "pause" (no new model call starts until
// resumed), "resume" or "cancel" (rollouts in flight end as cancelled, queued
// ones stay queued for a later Resume). The request takes effect at once when
// this Runner plays the experiment, and within a heartbeat in any other process
// playing it (it is recorded in the store). Cancelling an experiment that no
// live process plays marks its queued rollouts and itself cancelled.
func (r *Runner) Control(ctx context.Context, expID int64, action string) error {
	control := ""
	switch action {
	case "pause":
		control = "pause"
	case "resume":
	case "cancel":
		control = "cancel"
	default:
		return fmt.Errorf("runner: unknown action %q (want pause, resume or cancel)", action)
	}
	if err := r.Store.SetExperimentControl(ctx, expID, control); err != nil {
		return err
	}
	r.mu.Lock()
	a := r.active[expID]
	r.mu.Unlock()
	if a != nil {
		switch action {
		case "pause":
			a.gate.set(true)
			r.setStatus(expID, StatusPaused)
		case "resume":
			a.gate.set(false)
			r.setStatus(expID, storage.StatusRunning)
		case "cancel":
			a.mu.Lock()
			a.requested = true
			a.mu.Unlock()
			a.cancel()
		}
		return nil
	}
	l, err := r.Store.ExperimentLease(ctx, expID)
	if err != nil {
		return err
	}
	if action == "cancel" && !r.ownerAlive(l) {
		if _, err := r.Store.CancelQueued(ctx, expID); err != nil {
			return err
		}
		return r.Store.SetExperimentStatus(ctx, expID, storage.StatusCancelled)
	}
	return nil
}

// Active reports whether this Runner is playing experiment expID now, and
// whether it is paused.
func (r *Runner) Active(expID int64) (running, paused bool) {
	r.mu.Lock()
	a := r.active[expID]
	r.mu.Unlock()
	if a == nil {
		return false, false
	}
	return true, a.gate.isPaused()
}

// Orphaned reports whether experiment expID is listed as running or paused
// while no live process holds it: its owner crashed or was killed before it
// could record how the run ended. Resume takes such an experiment over at once
// (the same lease check `mem1lab resume` makes); Pause and Cancel requests
// would never be read by anyone.
func (r *Runner) Orphaned(ctx context.Context, expID int64) (bool, error) {
	if running, _ := r.Active(expID); running {
		return false, nil
	}
	l, err := r.Store.ExperimentLease(ctx, expID)
	if err != nil {
		return false, err
	}
	if l.Status != storage.StatusRunning && l.Status != StatusPaused {
		return false, nil
	}
	return !r.ownerAlive(l), nil
}

// StatusPaused is the experiment status while a pause is in effect.
const StatusPaused = "paused"

func (r *Runner) heartbeat() time.Duration {
	if r.Heartbeat > 0 {
		return r.Heartbeat
	}
	return time.Second
}

func (r *Runner) staleAfter() time.Duration {
	if r.StaleAfter > 0 {
		return r.StaleAfter
	}
	return 15 * time.Second
}

// ownerAlive reports whether a lease is held by a live process.
func (r *Runner) ownerAlive(l storage.Lease) bool {
	if l.Owner == "" {
		return false
	}
	if time.Since(l.At) > r.staleAfter() {
		return false
	}
	return ownerProcessAlive(l.Owner)
}

// claim takes experiment expID's lease for owner.
func (r *Runner) claim(ctx context.Context, expID int64, owner string) error {
	l, err := r.Store.ExperimentLease(ctx, expID)
	if err != nil {
		return err
	}
	if r.ownerAlive(l) {
		return fmt.Errorf("runner: experiment %d: %w (%s, heartbeat %s ago)", expID, ErrBusy, l.Owner, time.Since(l.At).Round(time.Second))
	}
	ok, err := r.Store.ClaimExperiment(ctx, expID, owner, l.Owner)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("runner: experiment %d: %w (claimed meanwhile)", expID, ErrBusy)
	}
	return nil
}

// execute plays experiment expID's unfinished rollouts on eps.
func (r *Runner) execute(ctx context.Context, expID int64, cfg RunConfig, eps []*endpointState, red *redactor, progress func(Progress)) (Summary, error) {
	sum := Summary{Experiment: expID}
	env, err := r.retriever(cfg)
	if err != nil {
		return sum, err
	}
	if c, ok := env.(io.Closer); ok && env != r.Env {
		defer c.Close()
	}
	var respCache ResponseCache
	if cfg.Cache {
		if rc, ok := r.Store.(RetrievalCache); ok && env != nil {
			env = &cachedEnv{env: env, cache: rc, retriever: retrieverCacheName(cfg)}
		}
		respCache, _ = r.Store.(ResponseCache)
	}
	owner := newOwner()
	if err := r.claim(ctx, expID, owner); err != nil {
		return sum, err
	}
	bg := context.WithoutCancel(ctx)
	defer func() { _ = r.Store.ReleaseExperiment(bg, expID, owner) }()

	acfgs := map[string]core.AgentConfig{}
	for _, p := range cfg.PolicyList() {
		c := cfg
		c.Policy = p
		a, err := agentConfig(c)
		if err != nil {
			return sum, err
		}
		acfgs[p] = a
	}
	if r.RetryFailed {
		rq, ok := r.Store.(interface {
			RequeueFailed(ctx context.Context, expID int64) (int, error)
		})
		if !ok {
			return sum, errors.New("runner: this store cannot requeue failed rollouts")
		}
		if _, err := rq.RequeueFailed(ctx, expID); err != nil {
			return sum, fmt.Errorf("runner: %w", err)
		}
	}
	if _, err := r.Store.RequeueInterrupted(ctx, expID); err != nil {
		return sum, fmt.Errorf("runner: %w", err)
	}
	pending, err := r.Store.QueuedRollouts(ctx, expID)
	if err != nil {
		return sum, fmt.Errorf("runner: %w", err)
	}
	rows, err := r.Store.Rollouts(ctx, expID)
	if err != nil {
		return sum, fmt.Errorf("runner: %w", err)
	}
	if err := r.Store.SetExperimentStatus(ctx, expID, storage.StatusRunning); err != nil {
		return sum, fmt.Errorf("runner: %w", err)
	}

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	act := &activeRun{gate: newGate(), cancel: cancelRun}
	act.gate.now = r.Clock // the time held is measured on the agents' clock
	r.mu.Lock()
	if r.active == nil {
		r.active = map[int64]*activeRun{}
	}
	r.active[expID] = act
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.active, expID)
		r.mu.Unlock()
	}()

	tr := newTracker(expID, rows, eps, act.gate, progress)
	tr.cache = respCache
	rp := cfg.retryPolicy()
	mem, err := r.memoryEndpoints(cfg, eps)
	if err != nil {
		return sum, err
	}
	defer mem.closeAll()
	rs := newRetrieverState(env, rp)
	wr := r.directWrites()
	if bs, ok := r.Store.(batchWriteStore); ok {
		wait := groupCommitWait
		if r.groupWait > 0 {
			wait = r.groupWait
		}
		tw := newTurnWriterWait(bs, wait)
		defer tw.close() // when execute returns, after wg.Wait below has seen every worker stop
		wr = groupWrites(tw)
		tr.writer = tw
	}
	if ps, ok := r.Store.(paperSetter); ok {
		tr.paper = newPaperLane(ps, tr.writer, tr) // closed after the workers, before tw
	}

	// Heartbeat: lease, rollouts' heartbeats, control requests from the store.
	hbDone := make(chan struct{})
	hbStop := make(chan struct{})
	go func() {
		defer close(hbDone)
		t := time.NewTicker(r.heartbeat())
		defer t.Stop()
		for {
			select {
			case <-hbStop:
				return
			case <-t.C:
			}
			control, err := r.Store.TouchExperiment(bg, expID, owner)
			if err != nil {
				continue
			}
			switch control {
			case "cancel":
				act.mu.Lock()
				act.requested = true
				act.mu.Unlock()
				cancelRun()
			case "pause":
				if act.gate.set(true) {
					r.setStatus(expID, StatusPaused)
					tr.changed()
				}
			default:
				if act.gate.set(false) {
					r.setStatus(expID, storage.StatusRunning)
					tr.changed()
				}
			}
		}
	}()

	queues := map[string]chan storage.PendingRollout{}
	for _, m := range cfg.Models() {
		queues[m] = make(chan storage.PendingRollout, len(pending))
	}
	for _, p := range pending {
		q, ok := queues[p.Model]
		if !ok {
			// A rollout for a model no endpoint serves any more: fail it clearly.
			_ = r.Store.FinishRollout(bg, p.ID, storage.RolloutResult{Status: storage.StatusFailed,
				Error: fmt.Sprintf("%s: no endpoint serves model %q", KindOther, p.Model)})
			tr.finish(p, storage.StatusFailed, core.Outcome{}, nil, nil)
			continue
		}
		q <- p
	}
	for _, q := range queues {
		close(q)
	}
	var wg sync.WaitGroup
	for _, ep := range eps {
		q := queues[ep.profile.Model]
		for w := 0; w < ep.profile.Concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// The bookkeeping of the worker's last rollout, whose result
				// is committed with the claim of its next one (play).
				var after *pendingResult
				flush := func() {
					if after != nil {
						after.release()
						after.settle()
						after = nil
					}
				}
				defer flush()
				for {
					// A paused run first settles the last rollout's result.
					if act.gate.waitIdle(runCtx, flush) != nil || ep.downErr() != nil {
						return
					}
					var job storage.PendingRollout
					var ok bool
					select {
					case <-runCtx.Done():
						return
					case job, ok = <-q:
					}
					if !ok {
						return
					}
					if runCtx.Err() != nil {
						return // left queued for a later resume
					}
					after = r.play(runCtx, job, ep, rs, mem, acfgs[job.Policy], rp, act.gate, tr, red, wr, after)
				}
			}()
		}
	}
	wg.Wait()
	if tr.paper != nil {
		tr.paper.close() // every finished rollout's paper figures are stored
	}
	close(hbStop)
	<-hbDone
	tr.flush() // a change a capped emit left marked (every emitter has stopped)

	// A model whose every endpoint is down: its rollouts never started fail
	// with the reason (`run --resume ID --retry-failed` plays them later).
	var downErrs []error
	for _, ep := range eps {
		if err := ep.downErr(); err != nil {
			downErrs = append(downErrs, err)
		}
	}
	if runCtx.Err() == nil && len(downErrs) > 0 {
		for model, q := range queues {
			var reason error
			for _, ep := range eps {
				if ep.profile.Model != model {
					continue
				}
				if reason = ep.downErr(); reason == nil {
					break
				}
			}
			if reason == nil {
				continue
			}
			msg := boundText(red.text(fmt.Sprintf("%s: not started: %v", KindEndpointDown, reason)), maxSummary)
			for job := range q {
				tr.finish(job, storage.StatusFailed, core.Outcome{}, nil, wr.finish(bg, job.ID, storage.RolloutResult{Status: storage.StatusFailed, Error: msg}))
			}
		}
	}

	act.mu.Lock()
	requested := act.requested
	act.mu.Unlock()
	status := storage.StatusDone
	final, err := r.Store.Rollouts(bg, expID)
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("runner: %w", err))
	}
	done, failed, queued := 0, 0, 0
	for _, row := range final {
		switch row.Status {
		case storage.StatusDone:
			done++
		case storage.StatusFailed:
			failed++
		case storage.StatusQueued, storage.StatusRunning:
			queued++
		}
	}
	switch {
	case runCtx.Err() != nil:
		status = storage.StatusCancelled
	case queued > 0:
		status = storage.StatusCancelled
	case failed == len(final) && done == 0, len(downErrs) > 0:
		status = storage.StatusFailed
	}
	if err := r.Store.SetExperimentStatus(bg, expID, status); err != nil {
		errs = append(errs, fmt.Errorf("runner: %w", err))
	}
	if requested {
		_ = r.Store.SetExperimentControl(bg, expID, "")
	}
	errs = append(errs, tr.storeErrors()...)
	for _, e := range downErrs {
		errs = append(errs, fmt.Errorf("runner: experiment %d stopped as failed: %s", expID, red.text(e.Error())))
	}
	sum.Groups = Summarize(final)
	switch {
	case ctx.Err() != nil:
		errs = append(errs, ctx.Err())
	case requested:
		errs = append(errs, ErrCancelRequested)
	}
	return sum, errors.Join(errs...)
}

// play runs one rollout on ep (from its last stored turn) and records its
// result. prev (may be nil) is the worker's previous rollout's result, not
// yet waited for: play hands its claim in right behind it, so both share a
// commit, then settles it. play returns its own result the same way (nil
// when it stored it already), which the worker must release and settle.
func (r *Runner) play(ctx context.Context, j storage.PendingRollout, ep *endpointState, rs *retrieverState, mem *memoryEndpoints, acfg core.AgentConfig, rp retryPolicy, g *gate, tr *tracker,
	red *redactor, wr rolloutWrites, prev *pendingResult) (after *pendingResult) {
	bg := context.WithoutCancel(ctx)
	wr.begin()
	defer wr.end()
	// The prompt every model call of this rollout carries, kept for the
	// trajectories export (an invalid config fails in agent.Run below); it is
	// stored with the claim.
	prompt, perr := acfg.Prompt(j.Task)
	if perr != nil {
		prompt = ""
	}
	// The claim is handed in right behind the previous rollout's result, so
	// both share a commit. Through the group commit the rollout does not wait
	// for it: its first model call goes out while the claim commits, and the
	// claim is waited for (confirm) before the first turn is handed in or a
	// failed call recorded, so nothing of the rollout is stored unless the
	// claim held. A memory policy's sub-calls may store records before the
	// first turn, so such a rollout waits for its claim first. The previous
	// result and this claim are counted in the progress as soon as they
	// commit, not when the first turn is in (a model call away).
	claimWait := wr.claimLater(ctx, j.ID, ep.profile.Name, prompt, tr)
	if prev != nil {
		prev.release() // after the claim is in, so the result's batch waits for it
	}
	var claimed bool
	claimDone := make(chan struct{})
	go func() {
		defer close(claimDone)
		ok, err := claimWait()
		if prev != nil {
			prev.settle()
		}
		if err != nil {
			tr.storeError(err)
		}
		if ok {
			tr.start(j)
		}
		claimed = ok
	}()
	confirm := func() bool {
		select {
		case <-claimDone:
		default: // held up by the store
			began := time.Now()
			<-claimDone
			wr.waited(time.Since(began))
		}
		return claimed
	}
	_, isMemory := acfg.Policy.(core.MemoryPolicy)
	if (!wr.pipelined || isMemory) && !confirm() {
		return // left queued (store failure) or taken by another worker
	}
	var prior []core.Turn
	var err error
	if j.HasTurns { // a rollout that starts from turn 0 has nothing to read
		prior, err = r.Store.Turns(bg, j.ID)
	}
	if err != nil {
		if !confirm() {
			return
		}
		res := storage.RolloutResult{Status: storage.StatusFailed, Error: KindOther + ": " + err.Error()}
		tr.finish(j, res.Status, core.Outcome{}, nil, wr.finish(bg, j.ID, res))
		return
	}
	model := &callModel{store: r.Store, ep: ep, gate: g, rp: rp, rolloutID: j.ID, turn: len(prior), tr: tr, red: red,
		session: RolloutSessionKey(tr.experiment(), j.ID), cache: tr.cache, claimed: confirm}
	paused := &heldTime{} // a pause is no part of the rollout's time
	agent := &core.Agent{Model: model, Env: &callEnv{rs: rs, model: model}, Config: acfg, Clock: r.Clock, Held: paused.total}
	if isMemory {
		sc, err := r.newSubCaller(bg, j.ID, len(prior), ep, mem, g, rp, tr, red)
		if err != nil {
			res := storage.RolloutResult{Status: storage.StatusFailed, Error: KindOther + ": " + err.Error()}
			tr.finish(j, res.Status, core.Outcome{}, nil, wr.finish(bg, j.ID, res))
			return
		}
		agent.Sub = sc
	}
	// A turn is handed to the store and the rollout goes on to its next
	// model call while it commits (the group commit's wait is off the
	// rollout's path); before the next turn is handed in, and before the
	// result, the rollout waits for that commit. So at most one turn per
	// rollout is unstored at a time, a turn counts in the progress only once
	// stored, and a crash loses at most the turns in flight. A turn that
	// cannot be stored stops the rollout. A turn that ends the rollout
	// (core.AgentConfig.EndsRollout: an answer, the last of the turn budget)
	// is held and handed in with the result, in the same write: both are
	// stored or neither.
	ends := func(core.Turn) bool { return false } // an invalid config: agent.Run fails it
	if n, err := acfg.Normalized(len(j.Task.Objectives)); err == nil {
		ends = n.EndsRollout
	}
	var (
		unsettled func() error // the last turn's commit, nil once waited for
		lastTurn  core.Turn
		held      *core.Turn // a last turn kept for the result's write
	)
	settle := func() error {
		if unsettled == nil {
			return nil
		}
		err := unsettled()
		unsettled = nil
		if err != nil {
			return err
		}
		tr.turn(lastTurn)
		return nil
	}
	hand := func(t core.Turn) error {
		if err := settle(); err != nil {
			return fmt.Errorf("turn %d not stored: %w", lastTurn.Index, err)
		}
		// The turn is stored even when ctx was cancelled during its call.
		unsettled, lastTurn = wr.appendTurn(bg, j.ID, t), t
		if !wr.pipelined {
			return settle() // stored already: its error stops the rollout now
		}
		return nil
	}
	onTurn := func(t core.Turn) error {
		model.markReplied(false)
		if !confirm() {
			return errNotClaimed
		}
		if held != nil { // the rollout went on after all
			h := *held
			held = nil
			if err := hand(h); err != nil {
				return err
			}
		}
		t = red.turn(t)
		if wr.pipelined && ends(t) {
			if err := settle(); err != nil {
				return fmt.Errorf("turn %d not stored: %w", lastTurn.Index, err)
			}
			held, lastTurn = &t, t
			return nil
		}
		return hand(t)
	}
	began := time.Now()
	out, err := agent.Run(withHeld(ctx, paused), j.Task, prior, onTurn)
	model.markReplied(false) // a reply whose turn was never stored
	if !confirm() {
		return // taken elsewhere or not claimable: nothing of it was stored
	}
	if serr := settle(); serr != nil && err == nil {
		err = &core.TurnError{Turn: lastTurn.Index, Op: "store", Err: serr}
	} else if serr != nil {
		err = errors.Join(err, fmt.Errorf("turn %d not stored: %w", lastTurn.Index, serr))
	}
	secs := (time.Since(began) - paused.total()).Seconds() // a pause is no part of it
	for _, t := range prior {
		secs += t.Latency.Seconds()
	}
	res := storage.RolloutResult{
		Status:      storage.StatusDone,
		Score:       out.Score,
		Answer:      out.Answer,
		PeakTokens:  out.PeakTokens,
		TotalTokens: out.TotalTokens,
		Turns:       len(out.Turns),
		Seconds:     secs,
		HitMaxTurns: out.HitMaxTurns,
	}
	if err != nil {
		res.Status = storage.StatusFailed
		if ctx.Err() != nil {
			res.Status = storage.StatusCancelled
		}
		res.Error = err.Error()
		if res.Status == storage.StatusFailed {
			res.Error = ErrorKind(err) + ": " + res.Error
		}
		res.Error = boundText(red.text(res.Error), 2*maxSummary)
	}
	// settled follows the result's write (with the held last turn): when
	// that write failed, neither is stored, and the rollout is stored as
	// failed on that turn, as when any other turn cannot be stored.
	settled := func(err error) (storage.RolloutResult, error) {
		if held == nil {
			return res, err
		}
		if err == nil {
			tr.turn(*held)
			return res, nil
		}
		terr := &core.TurnError{Turn: held.Index, Op: "store", Err: err}
		failed := res
		failed.Status = storage.StatusFailed
		failed.Error = ErrorKind(terr) + ": " + terr.Error()
		if ctx.Err() != nil { // a cancelled run: resumable, as any cancelled rollout
			failed.Status, failed.Error = storage.StatusCancelled, terr.Error()
		}
		failed.Error = boundText(red.text(failed.Error), 2*maxSummary)
		return failed, wr.finish(bg, j.ID, failed)
	}
	if tr.paper == nil {
		res = withPaperFigures(res, j.Task, out.Turns, acfg.Tags, j.Policy)
		wait, release := wr.finishAsync(bg, j.ID, held, res)
		release()
		final, err := settled(wait())
		tr.finish(j, final.Status, out, final.Paper, err)
		return
	}
	// The paper figures follow from the lane (paperlane.go); the served
	// request peak is cheap and is stored with the result.
	res.RequestPeakTokens, res.TokenSource = core.RequestPeak(out.Turns)
	if res.TokenSource == "" {
		res.TokenSource = core.TokenSourceEstimate
	}
	wait, release := wr.finishAsync(bg, j.ID, held, res)
	return &pendingResult{release: release, settle: func() {
		final, err := settled(wait())
		tr.finish(j, final.Status, out, nil, err)
		if err == nil {
			tr.paper.add(paperJob{j: j, status: final.Status, turns: out.Turns, tags: acfg.Tags,
				requestPeak: res.RequestPeakTokens, source: res.TokenSource})
		}
	}}
}

// callModel is the model one rollout talks to: it waits for the pause gate, the
// endpoint's breaker and rate limit before each call, retries failed calls
// that are worth retrying with exponential backoff and jitter (honouring
// Retry-After), and records every failed attempt in the store.
type callModel struct {
	store     RunStore
	ep        *endpointState
	gate      *gate
	rp        retryPolicy
	rolloutID int64
	turn      int // index of the turn the next call is for
	tr        *tracker
	red       *redactor
	session   string        // the rollout's session key, sent with every call (RolloutSessionKey)
	cache     ResponseCache // nil = the run has no response cache
	replied   bool          // a reply was received and its turn not yet handed to the store
	// claimed waits for the rollout's claim and reports whether it holds
	// (nil: it holds): a failed attempt is recorded, and retried, only for a
	// rollout this run owns.
	claimed func() bool
}

// markReplied tells the group commit that this rollout's turn is on its way
// (true: a reply arrived) or no longer is (false: handed in, or dropped).
func (m *callModel) markReplied(on bool) {
	if m.replied == on {
		return
	}
	m.replied = on
	if on {
		m.tr.replied(1)
	} else {
		m.tr.replied(-1)
	}
}

func (m *callModel) Complete(ctx context.Context, c core.Context, stops []string) (core.Completion, error) {
	if m.session != "" {
		ctx = WithSessionKey(ctx, m.session)
	}
	if m.cache != nil {
		ctx = WithResponseCache(ctx, m.cache)
	}
	for attempt := 1; ; attempt++ {
		if err := m.gate.wait(ctx); err != nil {
			return core.Completion{}, err
		}
		if err := m.ep.acquire(ctx); err != nil {
			return core.Completion{}, err
		}
		start := time.Now()
		m.ep.inFlight.Add(1)
		comp, err := m.ep.model.Complete(ctx, c, stops)
		m.ep.inFlight.Add(-1)
		if err == nil {
			m.markReplied(true)
			m.ep.report(nil)
			if comp.Cached {
				m.ep.cacheHit() // not a GPU call
			}
			m.turn++
			return comp, nil
		}
		if ctx.Err() != nil {
			return comp, err // the run was cancelled: not the endpoint's fault
		}
		m.ep.report(err)
		if m.claimed != nil && !m.claimed() {
			return comp, errNotClaimed
		}
		var ce *CallError
		status, retryAfter := 0, time.Duration(0)
		if errors.As(err, &ce) {
			status, retryAfter = ce.Status, ce.RetryAfter
		}
		if rerr := m.store.RecordAttempt(context.WithoutCancel(ctx), storage.Attempt{RolloutID: m.rolloutID, Turn: m.turn,
			Attempt: attempt, Endpoint: m.ep.profile.Name, Status: status, Error: boundText(m.red.text(ErrorKind(err)+": "+err.Error()), maxSummary),
			Latency: time.Since(start)}); rerr != nil {
			m.tr.storeError(rerr)
		}
		m.tr.retry()
		if down := m.ep.downErr(); down != nil {
			return comp, down
		}
		if !Retryable(err) || attempt > m.rp.retries {
			if attempt > 1 {
				err = fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
			}
			return comp, err
		}
		if err := sleepCtx(ctx, m.rp.backoff(attempt, retryAfter)); err != nil {
			return comp, err
		}
	}
}

func (r *Runner) setStatus(id int64, status string) {
	_ = r.Store.SetExperimentStatus(context.Background(), id, status)
}

// TemplateSource gives stored prompt templates by name (*storage.Store has it).
type TemplateSource interface {
	Template(ctx context.Context, name string) (storage.StoredTemplate, error)
}

// ResolveTemplate fills in a config that names a stored template
// (TemplateName): TemplateText from src and TemplateSHA256 from its text, so
// cfg.Hash() records the template by content. A config without TemplateName,
// or one already resolved (its text matching its hash), is returned as it is.
// Errors: no such template (wraps storage.ErrNotFound), or a stored text whose
// hash differs from the one the config records.
func ResolveTemplate(ctx context.Context, src TemplateSource, cfg RunConfig) (RunConfig, error) {
	if cfg.TemplateName == "" {
		return cfg, nil
	}
	if cfg.TemplateText != "" {
		if h := storage.TemplateHash(cfg.TemplateText); h != cfg.TemplateSHA256 {
			return cfg, fmt.Errorf("template_name %q: text has sha256 %s, the config records %q", cfg.TemplateName, h, cfg.TemplateSHA256)
		}
		return cfg, nil
	}
	if src == nil {
		return cfg, fmt.Errorf("template_name %q: this store keeps no templates", cfg.TemplateName)
	}
	st, err := src.Template(ctx, cfg.TemplateName)
	if err != nil {
		return cfg, fmt.Errorf("template_name %q: %w (import it first: mem1lab template import FILE --name %s)", cfg.TemplateName, err, cfg.TemplateName)
	}
	if cfg.TemplateSHA256 != "" && cfg.TemplateSHA256 != st.SHA256 {
		return cfg, fmt.Errorf("template_name %q: the stored template has sha256 %s, the config asks for %s", cfg.TemplateName, st.SHA256, cfg.TemplateSHA256)
	}
	cfg.TemplateText, cfg.TemplateSHA256 = st.Text, st.SHA256
	return cfg, nil
}

func (r *Runner) resolveTemplate(ctx context.Context, cfg RunConfig) (RunConfig, error) {
	src, _ := r.Store.(TemplateSource)
	return ResolveTemplate(ctx, src, cfg)
}

// ComposeTasks composes cfg's tasks from the dataset's questions: the rule in
// cfg.Compose, cut to the first cfg.Tasks when cfg.Tasks > 0. cfg.Sample is
// applied by PlanGrid (sample of the whole composition, then the cut). For "mixed", qs
// holds every source dataset's questions and is split by Question.Dataset.
func ComposeTasks(cfg RunConfig, qs []storage.Question) []core.Task {
	var tasks []core.Task
	switch cfg.Compose {
	case ComposeRuleRandom:
		tasks = ComposeRandom(cfg.Dataset, qs, cfg.Objectives, cfg.Tasks, cfg.Seed)
	case ComposeRuleMixed:
		sources := map[string][]storage.Question{}
		for _, q := range qs {
			sources[q.Dataset] = append(sources[q.Dataset], q)
		}
		tasks = ComposeMixed(sources, cfg.Datasets, cfg.Objectives, cfg.Tasks, cfg.Seed)
	default:
		tasks = ComposeConsecutive(cfg.Dataset, qs, cfg.Objectives)
	}
	if cfg.Tasks > 0 && len(tasks) > cfg.Tasks {
		tasks = tasks[:cfg.Tasks]
	}
	return tasks
}

// agentConfig turns the run config into the agent's settings (MaxTurns is
// resolved per task).
func agentConfig(cfg RunConfig) (core.AgentConfig, error) {
	pol, err := core.PolicyWith(cfg.Policy, cfg.Memory.Options())
	if err != nil {
		return core.AgentConfig{}, err
	}
	tmpl := core.DefaultTemplate()
	switch {
	case cfg.TemplateName != "":
		if cfg.TemplateText == "" {
			return core.AgentConfig{}, fmt.Errorf("template_name %q: not resolved from the store (ResolveTemplate)", cfg.TemplateName)
		}
		if h := storage.TemplateHash(cfg.TemplateText); cfg.TemplateSHA256 != "" && h != cfg.TemplateSHA256 {
			return core.AgentConfig{}, fmt.Errorf("template_name %q: text has sha256 %s, the config records %s", cfg.TemplateName, h, cfg.TemplateSHA256)
		}
		if tmpl, err = core.ParseTemplate(cfg.TemplateName, cfg.TemplateText); err != nil {
			return core.AgentConfig{}, fmt.Errorf("template: %w", err)
		}
	case cfg.Template != "":
		if tmpl, err = LoadTemplate(cfg.Template); err != nil {
			return core.AgentConfig{}, fmt.Errorf("template: %w", err)
		}
	}
	return core.AgentConfig{
		Template: tmpl,
		Tags:     cfg.CoreTags(),
		Policy:   pol,
		MaxTurns: cfg.MaxTurns,
		TopK:     cfg.SearchTopK(),
		Scheme:   cfg.Scheme,
	}, nil
}

// Summarize aggregates rollout rows by (policy, objectives), groups sorted by
// policy then objectives. Rollouts counts every row of the group; Failed counts
// rows with status failed; the means (EM, F1, peak tokens, seconds) are over the
// rows with status done only (0 when none is done); the paper peak mean is
// over the done rows that have one (eval.py's rule: lenient Exact_match 0 is
// left out), PaperPeakN of them.
func Summarize(rows []storage.RolloutRow) []Group {
	type key struct {
		policy string
		n      int
	}
	acc := map[key]*Group{}
	doneN := map[key]int{}
	for _, r := range rows {
		k := key{r.Policy, r.Objectives}
		g := acc[k]
		if g == nil {
			g = &Group{Policy: r.Policy, Objectives: r.Objectives}
			acc[k] = g
		}
		g.Rollouts++
		switch r.Status {
		case storage.StatusFailed:
			g.Failed++
		case storage.StatusDone:
			doneN[k]++
			g.MeanEM += r.EM
			g.MeanF1 += r.F1
			g.MeanPeakTokens += float64(r.PeakTokens)
			g.MeanSeconds += r.Seconds
			if p, ok := r.PaperPeak(); ok {
				g.MeanPaperPeakTokens += float64(p)
				g.PaperPeakN++
			}
		}
	}
	out := make([]Group, 0, len(acc))
	for k, g := range acc {
		if n := doneN[k]; n > 0 {
			f := float64(n)
			g.MeanEM /= f
			g.MeanF1 /= f
			g.MeanPeakTokens /= f
			g.MeanSeconds /= f
		}
		if g.PaperPeakN > 0 {
			g.MeanPaperPeakTokens /= float64(g.PaperPeakN)
		}
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Policy != out[j].Policy {
			return out[i].Policy < out[j].Policy
		}
		return out[i].Objectives < out[j].Objectives
	})
	return out
}
