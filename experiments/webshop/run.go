package webshop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// EnvAttemptEndpoint is the endpoint name under which failed WebShop server
// requests are recorded (storage.Attempt.Endpoint).
const EnvAttemptEndpoint = "webshop"

// Config is a WebShop experiment as stored (the experiment's config JSON,
// with "family": "webshop").
type Config struct {
	Family  string `json:"family"`
	Dataset string `json:"dataset"`
	EnvURL  string `json:"env_url"`
	Goals   []int  `json:"goals"`
	Policy  string `json:"policy"`
	// Policies, when set, plays every goal under each of these policies (one
	// rollout per goal and policy, in that order) and Policy is the first.
	Policies []string `json:"policies,omitempty"`
	MaxTurns int      `json:"max_turns"`
	Model    string   `json:"model"`
	Template string   `json:"template,omitempty"`
	// Retries is how many times a failed WebShop request or model call (a
	// turn or a sub-call) is sent again when experiments.Retryable accepts
	// the failure; each failed attempt is recorded.
	Retries int     `json:"retries"`
	Timeout float64 `json:"timeout_seconds,omitempty"`
	// Endpoint, Mode, APIKeyEnv and APIKeyKeyring (the variable's and the
	// keyring entry's names, never the key) and the session-key settings
	// (experiments.EndpointProfile's) are where Model is served, so that a
	// resume can rebuild the model without being told ("" = the scripted
	// shopper, or the caller's model); the sampling settings are sent with
	// every request.
	Endpoint      string  `json:"endpoint,omitempty"`
	Mode          string  `json:"mode,omitempty"`
	APIKeyEnv     string  `json:"api_key_env,omitempty"`
	APIKeyKeyring string  `json:"api_key_keyring,omitempty"`
	SessionHeader string  `json:"session_header,omitempty"`
	SessionUser   bool    `json:"session_user,omitempty"`
	Temperature   float64 `json:"temperature,omitempty"`
	TopP          float64 `json:"top_p,omitempty"`
	MaxTokens     int     `json:"max_tokens,omitempty"`
	// EndpointWithCredentials is Endpoint as given, its user name and
	// password included (the model is built from it when set); it is held in
	// memory only, never stored: Endpoint is the URL without them.
	EndpointWithCredentials string `json:"-"`
	// RequestTimeout is the model request timeout in seconds (0 = the caller's).
	RequestTimeout float64 `json:"request_timeout_seconds,omitempty"`
	// FakeReward notes that the environment is mem1lab's fake WebShop, whose
	// reward has no product-type term.
	FakeReward bool `json:"fake_reward,omitempty"`
	// Memory holds the memory policies' knobs (k, evolve, similar,
	// summary_tokens, summary_every, memory_tokens); their sub-calls go to
	// the run's one endpoint, so its endpoint keys (url, model, mode,
	// api_key_env, requests_per_second, embeddings_*) must be empty. nil =
	// the defaults.
	Memory *experiments.MemoryConfig `json:"memory,omitempty"`
}

func (c *Config) normalize() error {
	c.Family, c.Dataset = core.FamilyWebShop, core.FamilyWebShop
	if len(c.Policies) > 0 {
		c.Policy = c.Policies[0]
	}
	if c.Policy == "" {
		c.Policy = core.PolicyMEM1
	}
	if c.MaxTurns == 0 {
		c.MaxTurns = core.DefaultWebShopMaxTurns
	}
	var errs []error
	if strings.TrimSpace(c.EnvURL) == "" {
		errs = append(errs, errors.New("webshop: no environment URL"))
	} else if experiments.StripUserinfo(c.EnvURL) != c.EnvURL {
		errs = append(errs, errors.New("webshop: no user name or password in the environment URL: it is stored with the experiment"))
	}
	if len(c.Goals) == 0 {
		errs = append(errs, errors.New("webshop: no goals"))
	}
	for _, g := range c.Goals {
		if g < 0 {
			errs = append(errs, fmt.Errorf("webshop: goal %d: want ≥ 0", g))
		}
	}
	for i, p := range c.PolicyList() {
		if _, err := core.WebShopPolicy(p, c.Memory.Options()); err != nil {
			errs = append(errs, err)
		}
		if slices.Contains(c.PolicyList()[:i], p) {
			errs = append(errs, fmt.Errorf("webshop: policy %q is listed twice", p))
		}
	}
	if c.Memory.HasEndpoint() {
		errs = append(errs, errors.New("webshop: memory: only the knobs apply (a WebShop run sends its sub-calls to its one endpoint)"))
	}
	if c.MaxTurns < 1 || c.MaxTurns > 100 {
		errs = append(errs, fmt.Errorf("webshop: max turns %d: want 1..100", c.MaxTurns))
	}
	return errors.Join(errs...)
}

// PolicyList is the experiment's policies: Policies, or [Policy].
func (c Config) PolicyList() []string {
	if len(c.Policies) > 0 {
		return c.Policies
	}
	return []string{c.Policy}
}

// ParseGoals reads "0-9", "3,7,12" or a mix ("0-4,10")
// (experiments.ParseGoalList). Errors: anything else.
func ParseGoals(s string) ([]int, error) { return experiments.ParseGoalList(s) }

// Summary is an experiment's WebShop figures as the paper reports them
// (arXiv 2506.15841 Table 2): mean final reward ×100, mean peak tokens and
// dependency (o200k counts, eval.py's formulas over summary, response and
// observation, the exact-match gate off), mean seconds per trajectory.
type Summary struct {
	Experiment int64
	Figures
	// ByPolicy is the same figures per policy, in the experiment's order
	// (one entry for a one-policy experiment, equal to the whole).
	ByPolicy []PolicyFigures
}

// Figures are the counts and means of a set of rollouts; a mean over no
// done rollout is NaN.
type Figures struct {
	Rollouts   int
	Done       int
	Failed     int
	Reward100  float64
	PeakTokens float64
	Dependency float64
	Seconds    float64
}

// PolicyFigures are one policy's Figures.
type PolicyFigures struct {
	Policy string
	Figures
}

// Runner plays WebShop experiments into a store.
type Runner struct {
	Store *storage.Store
	Model core.Model
	// Backoff between retried server requests (nil: none).
	Backoff func(attempt int) time.Duration
	Clock   func() time.Time
	// EnvURL, when set, replaces the stored config's server on Resume (the
	// server moved; episodes are replayed, so any server of the same goals
	// will do).
	EnvURL string
	// Progress (may be nil) is told of each stored turn.
	Progress func(rolloutID int64, t core.Turn)
	// Report (may be nil) is sent the experiment's counts as Resume plays
	// it: once at the start, when a rollout starts, after each stored turn
	// and when a rollout ends (the shape New experiment and Runs show).
	Report func(experiments.Progress)
	// Embedder makes the embeddings sub-calls of mem0 and amem (nil: Model,
	// when it can embed, e.g. an endpoint's *experiments.OpenAIModel).
	Embedder experiments.Embedder
	// Gate (may be nil) pauses the play between turns and between rollouts
	// (none starts while it is paused); reports carry Progress.Paused while
	// it is paused, and the time held is left out of the episodes' seconds.
	Gate *experiments.PauseGate
	// Redact keeps the run's credentials out of what is stored: turns,
	// sub-calls, attempts and error texts (nil: the error patterns only).
	Redact *experiments.Redactor
}

// counter keeps the experiments.Progress that Report is sent.
type counter struct {
	pr     experiments.Progress
	report func(experiments.Progress)
	start  time.Time
	clock  func() time.Time
	gate   *experiments.PauseGate
}

func (c *counter) send() {
	if c.report == nil {
		return
	}
	pr := c.pr
	pr.Paused = c.gate.Paused()
	pr.Queued = pr.Total - pr.Done - pr.Failed - pr.Cancelled - pr.Running
	if pr.Queued < 0 {
		pr.Queued = 0
	}
	pr.Elapsed = c.clock().Sub(c.start)
	c.report(pr)
}

// Run stores a new experiment for cfg (one rollout per goal, under
// cfg.Model) and plays it; see Resume for how rollouts are played.
func (r *Runner) Run(ctx context.Context, name string, cfg Config) (Summary, error) {
	if err := cfg.normalize(); err != nil {
		return Summary{}, err
	}
	if r.Store == nil || r.Model == nil {
		return Summary{}, errors.New("webshop: runner without store or model")
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return Summary{}, err
	}
	h := sha256.Sum256(b)
	expID, err := r.Store.CreateExperiment(ctx, name, string(b), hex.EncodeToString(h[:]))
	if err != nil {
		return Summary{}, err
	}
	tasks := make([]core.Task, len(cfg.Goals))
	for i, g := range cfg.Goals {
		tasks[i] = core.Task{Key: fmt.Sprintf("webshop/goal/%04d", g), Dataset: core.FamilyWebShop,
			Objectives: []core.Objective{{QuestionID: fmt.Sprintf("goal-%d", g), Question: fmt.Sprintf("WebShop goal %d", g)}}}
	}
	ids, err := r.Store.AddTasks(ctx, expID, tasks)
	if err != nil {
		return Summary{Experiment: expID}, err
	}
	for _, t := range tasks {
		for _, p := range cfg.PolicyList() {
			if _, err := r.Store.CreateRollout(ctx, expID, ids[t.Key], p, cfg.Model); err != nil {
				return Summary{Experiment: expID}, err
			}
		}
	}
	return r.Resume(ctx, expID)
}

// Resume plays experiment expID's rollouts that are not done, one at a time:
// each one's stored turns are replayed on a fresh environment and the episode
// goes on from there (core.WebShopAgent.Run). A rollout whose model or server
// keeps failing is stored as failed with the per-turn error ("turn N: step:
// …") and the others go on; failed server requests are recorded as attempts
// under EnvAttemptEndpoint. Errors: the experiment is not a WebShop one,
// store failures, ctx.Err() when cancelled.
func (r *Runner) Resume(ctx context.Context, expID int64) (Summary, error) {
	sum := Summary{Experiment: expID}
	e, err := r.Store.Experiment(ctx, expID)
	if err != nil {
		return sum, err
	}
	var cfg Config
	if err := json.Unmarshal([]byte(e.ConfigJSON), &cfg); err != nil || cfg.Family != core.FamilyWebShop {
		return sum, fmt.Errorf("webshop: experiment %d is not a WebShop experiment", expID)
	}
	if err := cfg.normalize(); err != nil {
		return sum, err
	}
	if experiments.StripUserinfo(r.EnvURL) != r.EnvURL {
		return sum, errors.New("webshop: no user name or password in the environment URL")
	}
	_ = r.Store.SetExperimentStatus(ctx, expID, storage.StatusRunning)
	rows, err := r.Store.Rollouts(ctx, expID)
	if err != nil {
		return sum, err
	}
	if r.EnvURL != "" {
		cfg.EnvURL = r.EnvURL
	}
	client := &Client{BaseURL: cfg.EnvURL, Timeout: time.Duration(cfg.Timeout * float64(time.Second))}
	clock := r.Clock
	if clock == nil {
		clock = time.Now
	}
	cnt := &counter{pr: experiments.Progress{Experiment: expID, Total: len(rows)}, report: r.Report, start: clock(), clock: clock, gate: r.Gate}
	for _, row := range rows {
		switch row.Status {
		case storage.StatusDone:
			cnt.pr.Done++
			cnt.pr.Turns += row.Turns
		case storage.StatusFailed:
			cnt.pr.Failed++ // played again below, from its last stored turn
		}
	}
	cnt.send()
	for _, row := range rows {
		if row.Status == storage.StatusDone {
			continue
		}
		if hold := r.hold(cnt); hold != nil {
			_, _ = hold(ctx) // paused between rollouts: none starts (no reset, no replay) until it goes on
		}
		if err := ctx.Err(); err != nil {
			_ = r.Store.SetExperimentStatus(context.WithoutCancel(ctx), expID, storage.StatusCancelled)
			return r.summarize(context.WithoutCancel(ctx), expID)
		}
		var goal int
		if _, err := fmt.Sscanf(row.TaskKey, "webshop/goal/%d", &goal); err != nil {
			return sum, fmt.Errorf("webshop: rollout %d: task key %q", row.ID, row.TaskKey)
		}
		if row.Status == storage.StatusFailed {
			cnt.pr.Failed--
		}
		cnt.pr.Running = 1
		cnt.send()
		// The rollout's session key rides on every model call, as in QA runs,
		// so a sticky router keeps the episode on one replica.
		sctx := experiments.WithSessionKey(ctx, experiments.RolloutSessionKey(expID, row.ID))
		status, err := r.play(sctx, client, cfg, row.ID, row.Policy, goal, cnt)
		if err != nil {
			return sum, err
		}
		cnt.pr.Running = 0
		switch status {
		case storage.StatusDone:
			cnt.pr.Done++
		case storage.StatusFailed:
			cnt.pr.Failed++
		case storage.StatusCancelled:
			cnt.pr.Cancelled++
		}
		cnt.send()
	}
	status := storage.StatusDone
	if ctx.Err() != nil {
		status = storage.StatusCancelled
	}
	_ = r.Store.SetExperimentStatus(context.WithoutCancel(ctx), expID, status)
	return r.summarize(context.WithoutCancel(ctx), expID)
}

// play runs one rollout and gives the status it was stored with; it returns
// only store errors. Each stored turn counts in cnt.
func (r *Runner) play(ctx context.Context, client *Client, cfg Config, id int64, policy string, goal int, cnt *counter) (string, error) {
	bg := context.WithoutCancel(ctx) // a cancel ends the episode, not the store's reads and writes
	prior, err := r.Store.Turns(bg, id)
	if err != nil {
		return "", err
	}
	if err := r.Store.StartRollout(bg, id); err != nil {
		return "", err
	}
	turn := len(prior)
	// record stores a failed attempt of the current turn under endpoint.
	record := func(endpoint, op string, attempt int, err error) {
		status := 0
		var ce *experiments.CallError
		if errors.As(err, &ce) {
			status = ce.Status
		}
		_ = r.Store.RecordAttempt(bg, storage.Attempt{RolloutID: id, Turn: turn, Attempt: attempt, Endpoint: endpoint,
			Status: status, Error: r.Redact.Text(op + ": " + err.Error())})
	}
	env := &Env{Client: client, Goal: goal, Retries: cfg.Retries, Backoff: r.Backoff}
	env.OnFailure = func(op string, attempt int, err error) { record(EnvAttemptEndpoint, op, attempt, err) }
	defer env.Close(bg)
	model := retryingModel{m: r.Model, retries: cfg.Retries, backoff: r.Backoff,
		failed: func(attempt int, err error) { record(ModelAttemptEndpoint, "model", attempt, err) }}
	agent := &core.WebShopAgent{Model: model, Env: env, Clock: r.Clock, Hold: r.hold(cnt),
		Config: core.WebShopConfig{Template: cfg.Template, MaxTurns: cfg.MaxTurns, Policy: policy, Memory: cfg.Memory.Options()}}
	if p, err := core.WebShopPolicy(policy, agent.Config.Memory); err == nil {
		if _, memory := p.(core.MemoryPolicy); memory {
			emb := r.Embedder
			if emb == nil {
				emb, _ = r.Model.(experiments.Embedder)
			}
			sc, err := newSubCalls(bg, r.Store, id, len(prior), model, emb, r.Redact)
			if err != nil {
				return "", err
			}
			agent.Sub = sc
		}
	}
	out, runErr := agent.Run(ctx, prior, func(t core.Turn) error {
		t = r.Redact.Turn(t) // stored and reported without the run's credentials
		if err := r.Store.AppendTurn(bg, id, t); err != nil {
			return err
		}
		turn = t.Index + 1
		if r.Progress != nil {
			r.Progress(id, t)
		}
		cnt.pr.Turns++
		cnt.send()
		return nil
	})
	if out.Prompt != "" {
		_ = r.Store.SetRolloutPrompt(bg, id, out.Prompt)
	}
	res := storage.RolloutResult{Status: storage.StatusDone, Answer: "", PeakTokens: out.PeakTokens, TotalTokens: out.TotalTokens,
		Turns: len(out.Turns), Seconds: out.Elapsed.Seconds(), HitMaxTurns: out.HitMaxTurns}
	reward := out.Reward
	res.Score = core.Score{Scheme: core.FamilyWebShop, EM: reward, F1: reward, Reward: &reward, NoAnswer: !out.Done}
	if n := len(out.Turns); n > 0 && out.Turns[n-1].Action == core.ActionAnswer {
		res.Answer = r.Redact.Turn(out.Turns[n-1]).Answer
	}
	res.Paper = PaperMetrics(out.Turns, policy)
	res.RequestPeakTokens, res.TokenSource = core.RequestPeak(out.Turns)
	if runErr != nil {
		var te *core.TurnError
		if errors.As(runErr, &te) && te.Op == "store" {
			return "", runErr
		}
		res.Status, res.Error = storage.StatusFailed, r.Redact.Text(runErr.Error())
		if ctx.Err() != nil {
			res.Status = storage.StatusCancelled
		}
	}
	return res.Status, r.Store.FinishRollout(bg, id, res)
}

// hold is the agent's Hold: nil without a gate, else a wait on it that
// reports the pause when it begins to hold and the go-on when it lets go,
// and gives the time held on the runner's clock.
func (r *Runner) hold(cnt *counter) func(context.Context) (time.Duration, error) {
	if r.Gate == nil {
		return nil
	}
	return func(ctx context.Context) (time.Duration, error) {
		if !r.Gate.Paused() {
			return 0, ctx.Err()
		}
		began := cnt.clock()
		cnt.send()
		err := r.Gate.Wait(ctx)
		held := cnt.clock().Sub(began)
		cnt.send()
		return held, err
	}
}

// PaperMetrics are a WebShop episode's peak tokens and dependency under
// eval.py's formulas (Mem1/inference/eval.py; core.PeakTokensConsolidating
// and core.DependencyConsolidating for "mem1", the full-history forms for
// every other policy, as for QA: core.PaperRuleFull) over
// core.WebShopRefTurns, o200k counts, with a memory policy's longest memory
// added to the peak as eval.py adds A-MEM's (core.Memories), and the
// exact-match gate off (WebShop has no exact match).
func PaperMetrics(turns []core.Turn, policy string) *core.PaperMetrics {
	if len(turns) == 0 {
		return nil
	}
	refs := core.WebShopRefTurns(turns, core.WebShopTags{})
	m := core.ComputePaperMetrics(refs, 1, core.PaperRuleFull(policy), core.Memories(turns), core.O200kTokens)
	m.ExactMatchLenient = 0
	return &m
}

func (r *Runner) summarize(ctx context.Context, expID int64) (Summary, error) {
	sum := Summary{Experiment: expID}
	rows, err := r.Store.Rollouts(ctx, expID)
	if err != nil {
		return sum, err
	}
	sum.Figures = figures(rows)
	byPolicy := map[string][]storage.RolloutRow{}
	var order []string
	for _, row := range rows {
		if _, seen := byPolicy[row.Policy]; !seen {
			order = append(order, row.Policy)
		}
		byPolicy[row.Policy] = append(byPolicy[row.Policy], row)
	}
	for _, p := range order {
		sum.ByPolicy = append(sum.ByPolicy, PolicyFigures{Policy: p, Figures: figures(byPolicy[p])})
	}
	return sum, nil
}

// figures counts rows and averages the done ones' reward ×100, paper peak
// tokens, dependency and seconds.
func figures(rows []storage.RolloutRow) Figures {
	var sum Figures
	var peaks, deps []float64
	var rewards, secs []float64
	for _, row := range rows {
		sum.Rollouts++
		switch row.Status {
		case storage.StatusDone:
			sum.Done++
		case storage.StatusFailed:
			sum.Failed++
		}
		if row.Status != storage.StatusDone {
			continue
		}
		rewards = append(rewards, row.EM*100)
		secs = append(secs, row.Seconds)
		if row.Paper != nil && row.Paper.PeakTokens != nil {
			peaks = append(peaks, float64(*row.Paper.PeakTokens))
		}
		if row.Paper != nil && row.Paper.Dependency != nil {
			deps = append(deps, float64(*row.Paper.Dependency))
		}
	}
	sum.Reward100, sum.PeakTokens, sum.Dependency, sum.Seconds = mean(rewards), mean(peaks), mean(deps), mean(secs)
	return sum
}

// mean is gonum's stat.Mean, NaN for no values (0/0).
func mean(xs []float64) float64 { return stat.Mean(xs, nil) }
