package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// RunStore is what the runner needs from the store (*storage.Store satisfies
// it): questions to compose tasks from, and the experiment/task/rollout/turn
// writes, each committed as it happens.
type RunStore interface {
	// Questions returns up to limit questions of dataset ordered by seq after
	// skipping offset; limit ≤ 0 means all.
	Questions(ctx context.Context, dataset string, offset, limit int) ([]storage.Question, error)
	CreateExperiment(ctx context.Context, name, configJSON, configHash string) (int64, error)
	SetExperimentStatus(ctx context.Context, id int64, status string) error
	AddTasks(ctx context.Context, expID int64, tasks []core.Task) (map[string]int64, error)
	CreateRollout(ctx context.Context, expID, taskID int64, policy, model string) (int64, error)
	StartRollout(ctx context.Context, id int64) error
	AppendTurn(ctx context.Context, rolloutID int64, t core.Turn) error
	FinishRollout(ctx context.Context, id int64, r storage.RolloutResult) error
	Rollouts(ctx context.Context, expID int64) ([]storage.RolloutRow, error)
}

var _ RunStore = (*storage.Store)(nil)

// Runner runs experiments: composes tasks from the store's questions, records
// the experiment, and plays every rollout through core.Agent with a bounded
// worker pool, storing each turn as soon as it completes.
type Runner struct {
	Store RunStore
	// Env answers searches (the store's FTS5 index, or an HTTPRetriever).
	Env core.Environment
	// NewModel builds the model for a config; nil = the go-openai adapter
	// (NewModel(cfg.EndpointConfig()), key from os.Getenv(cfg.APIKeyEnv)). A
	// model that implements io.Closer is closed when the run ends.
	NewModel func(RunConfig) (core.Model, error)
	// Clock is passed to each agent (nil = time.Now).
	Clock func() time.Time
}

// Run plays the experiment described by cfg and returns its summary.
//
// Steps: validate cfg; load the dataset's questions; compose tasks (cfg.Compose,
// the first cfg.Tasks of them when cfg.Tasks > 0); create the experiment with
// cfg as JSON and cfg.Hash() (the API key is never in cfg, only the name of its
// environment variable); add the tasks; queue one rollout per task; run them on
// cfg.Concurrency workers. Each rollout is started, every turn is appended as it
// completes, and it is finished with its score, peak/total tokens, turns,
// seconds and error. A rollout whose model or retrieval call fails is stored as
// failed with the error text and the other rollouts go on.
//
// Cancelling ctx stops launching rollouts; rollouts in flight end as cancelled
// (their finished turns stay stored), the rollouts never started stay queued,
// and the experiment is marked cancelled. Run returns only after every worker
// has returned.
//
// progress (may be nil) is called after each stored turn and each finished
// rollout. Calls are serialised: never two at once, never after Run returns.
//
// The experiment ends "done", or "failed" when every rollout failed, or
// "cancelled". Errors: an invalid config, no questions or no tasks for the
// dataset, a model that cannot be built, store failures outside a rollout, and
// ctx.Err() after a cancellation (the summary is still filled in).
func (r *Runner) Run(ctx context.Context, cfg RunConfig, progress func(Progress)) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	if r.Store == nil || r.Env == nil {
		return Summary{}, errors.New("runner: no store or no environment")
	}
	agentCfg, err := agentConfig(cfg)
	if err != nil {
		return Summary{}, err
	}
	newModel := r.NewModel
	if newModel == nil {
		newModel = func(c RunConfig) (core.Model, error) { return NewModel(c.EndpointConfig()) }
	}
	model, err := newModel(cfg)
	if err != nil {
		return Summary{}, fmt.Errorf("runner: model: %w", err)
	}
	if cl, ok := model.(io.Closer); ok {
		defer cl.Close()
	}

	qs, err := r.Store.Questions(ctx, cfg.Dataset, 0, 0)
	if err != nil {
		return Summary{}, fmt.Errorf("runner: questions: %w", err)
	}
	if len(qs) == 0 {
		return Summary{}, fmt.Errorf("runner: dataset %q has no questions (import it first)", cfg.Dataset)
	}
	tasks := ComposeTasks(cfg, qs)
	if len(tasks) == 0 {
		return Summary{}, fmt.Errorf("runner: dataset %q (%d questions) yields no %d-objective task", cfg.Dataset, len(qs), cfg.Objectives)
	}

	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return Summary{}, err
	}
	name := cfg.Name
	if name == "" {
		name = fmt.Sprintf("%s n%d %s %s", cfg.Dataset, cfg.Objectives, cfg.Policy, cfg.Model)
	}
	expID, err := r.Store.CreateExperiment(ctx, name, string(cfgJSON), cfg.Hash())
	if err != nil {
		return Summary{}, fmt.Errorf("runner: %w", err)
	}
	sum := Summary{Experiment: expID}
	taskIDs, err := r.Store.AddTasks(ctx, expID, tasks)
	if err != nil {
		r.setStatus(expID, storage.StatusFailed)
		return sum, fmt.Errorf("runner: %w", err)
	}
	jobs := make([]job, len(tasks))
	for i, t := range tasks {
		id, err := r.Store.CreateRollout(ctx, expID, taskIDs[t.Key], cfg.Policy, cfg.Model)
		if err != nil {
			r.setStatus(expID, storage.StatusFailed)
			return sum, fmt.Errorf("runner: %w", err)
		}
		jobs[i] = job{rolloutID: id, task: t}
	}
	if err := r.Store.SetExperimentStatus(ctx, expID, storage.StatusRunning); err != nil {
		return sum, fmt.Errorf("runner: %w", err)
	}

	tr := &tracker{p: Progress{Experiment: expID, Total: len(jobs)}, fn: progress}
	queue := make(chan job)
	var wg sync.WaitGroup
	workers := min(cfg.Concurrency, len(jobs))
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				r.play(ctx, j, model, agentCfg, tr)
			}
		}()
	}
feed:
	for _, j := range jobs {
		select {
		case <-ctx.Done():
			break feed
		case queue <- j:
		}
	}
	close(queue)
	wg.Wait()

	// The run's own context may be cancelled: the closing writes must still land.
	bg := context.WithoutCancel(ctx)
	status := storage.StatusDone
	done, failed, storeErr := tr.counts()
	switch {
	case ctx.Err() != nil:
		status = storage.StatusCancelled
	case failed == len(jobs) && done == 0:
		status = storage.StatusFailed
	}
	var errs []error
	if err := r.Store.SetExperimentStatus(bg, expID, status); err != nil {
		errs = append(errs, fmt.Errorf("runner: %w", err))
	}
	errs = append(errs, storeErr...)
	rows, err := r.Store.Rollouts(bg, expID)
	if err != nil {
		errs = append(errs, fmt.Errorf("runner: %w", err))
	}
	sum.Groups = Summarize(rows)
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return sum, errors.Join(errs...)
}

// ComposeTasks composes cfg's tasks from the dataset's questions: the rule in
// cfg.Compose, cut to the first cfg.Tasks when cfg.Tasks > 0.
func ComposeTasks(cfg RunConfig, qs []storage.Question) []core.Task {
	var tasks []core.Task
	switch cfg.Compose {
	case ComposeRuleRandom:
		tasks = ComposeRandom(cfg.Dataset, qs, cfg.Objectives, cfg.Tasks, cfg.Seed)
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
	pol, err := core.PolicyByName(cfg.Policy)
	if err != nil {
		return core.AgentConfig{}, err
	}
	tmpl := core.DefaultTemplate()
	if cfg.Template != "" {
		if tmpl, err = core.LoadTemplate(cfg.Template); err != nil {
			return core.AgentConfig{}, fmt.Errorf("template: %w", err)
		}
	}
	return core.AgentConfig{
		Template: tmpl,
		Tags:     core.DefaultTags(),
		Policy:   pol,
		MaxTurns: cfg.MaxTurns,
		TopK:     cfg.TopK,
		Scheme:   cfg.Scheme,
	}, nil
}

type job struct {
	rolloutID int64
	task      core.Task
}

// play runs one rollout and records its result.
func (r *Runner) play(ctx context.Context, j job, model core.Model, acfg core.AgentConfig, tr *tracker) {
	bg := context.WithoutCancel(ctx)
	if err := r.Store.StartRollout(ctx, j.rolloutID); err != nil {
		status := storage.StatusFailed
		if ctx.Err() != nil {
			status = storage.StatusCancelled
		}
		tr.finish(status, r.finish(bg, j.rolloutID, storage.RolloutResult{Status: status, Error: err.Error()}))
		return
	}
	tr.start()
	// acfg.MaxTurns 0 lets the agent apply core.DefaultMaxTurns per task.
	agent := &core.Agent{Model: model, Env: r.Env, Config: acfg, Clock: r.Clock}
	onTurn := func(t core.Turn) error {
		// The turn is stored even when ctx was cancelled during its call.
		if err := r.Store.AppendTurn(bg, j.rolloutID, t); err != nil {
			return err
		}
		tr.turn()
		return nil
	}
	began := time.Now()
	out, err := agent.Run(ctx, j.task, nil, onTurn)
	res := storage.RolloutResult{
		Status:      storage.StatusDone,
		Score:       out.Score,
		Answer:      out.Answer,
		PeakTokens:  out.PeakTokens,
		TotalTokens: out.TotalTokens,
		Turns:       len(out.Turns),
		Seconds:     time.Since(began).Seconds(),
		HitMaxTurns: out.HitMaxTurns,
	}
	if err != nil {
		res.Status = storage.StatusFailed
		if ctx.Err() != nil {
			res.Status = storage.StatusCancelled
		}
		res.Error = err.Error()
	}
	tr.finish(res.Status, r.finish(bg, j.rolloutID, res))
}

func (r *Runner) finish(ctx context.Context, id int64, res storage.RolloutResult) error {
	if err := r.Store.FinishRollout(ctx, id, res); err != nil {
		return fmt.Errorf("runner: rollout %d: %w", id, err)
	}
	return nil
}

func (r *Runner) setStatus(id int64, status string) {
	_ = r.Store.SetExperimentStatus(context.Background(), id, status)
}

// tracker counts progress and serialises the progress callback.
type tracker struct {
	mu       sync.Mutex
	p        Progress
	fn       func(Progress)
	storeErr []error
}

func (t *tracker) emit() {
	if t.fn != nil {
		t.fn(t.p)
	}
}

func (t *tracker) start() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.Running++
}

func (t *tracker) turn() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.Turns++
	t.emit()
}

// finish records a rollout's end. A rollout that never started (StartRollout
// failed) is not counted as running.
func (t *tracker) finish(status string, storeErr error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if storeErr != nil {
		t.storeErr = append(t.storeErr, storeErr)
	}
	if t.p.Running > 0 {
		t.p.Running--
	}
	switch status {
	case storage.StatusDone:
		t.p.Done++
	case storage.StatusCancelled:
		t.p.Cancelled++
	default:
		t.p.Failed++
	}
	t.emit()
}

func (t *tracker) counts() (done, failed int, errs []error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.p.Done, t.p.Failed, t.storeErr
}

// Summarize aggregates rollout rows by (policy, objectives), groups sorted by
// policy then objectives. Rollouts counts every row of the group; Failed counts
// rows with status failed; the means (EM, F1, peak tokens, seconds) are over the
// rows with status done only (0 when none is done).
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
