package core

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultTopK is the number of passages retrieved per search in MEM1 (TOP_K = 3
// in Mem1/inference/data_pipelines.py).
const DefaultTopK = 3

// DefaultMaxTurns is MEM1's turn budget for a task with that many objectives:
// 6 turns up to 4 objectives, 20 beyond (the settings of MEM1's evaluation;
// MAX_ITERATION = 6 in Mem1/inference/data_pipelines.py).
func DefaultMaxTurns(objectives int) int {
	if objectives <= 4 {
		return 6
	}
	return 20
}

// BudgetHint is the line that opens each information block, telling the model
// how many turns remain including the coming one (turnsLeft = MaxTurns − index
// of the turn that searched − 1). The wording reproduces MEM1's inference
// pipeline (Mem1/inference/data_pipelines.py), which the released checkpoint
// was trained to read:
//
//	turnsLeft > 1: "[HINT]You have N turns left.[/HINT]"
//	turnsLeft = 1: "[HINT]You have 1 turn left. You must answer the question now.[/HINT]"
//
// turnsLeft ≤ 0 (never shown by the turn loop) says no turns are left and the
// answer is due now.
func BudgetHint(turnsLeft int) string {
	switch {
	case turnsLeft > 1:
		return "[HINT]You have " + strconv.Itoa(turnsLeft) + " turns left.[/HINT]"
	case turnsLeft == 1:
		return "[HINT]You have 1 turn left. You must answer the question now.[/HINT]"
	default:
		return "[HINT]You have no turns left. You must answer the question now.[/HINT]"
	}
}

// RenderPassages renders retrieved passages as MEM1 shows them to the model:
// one line per passage, `Doc k(Title: "T") text` with k = 1, 2, … in the given
// order, each line ending in "\n" (Mem1/inference/data_pipelines.py,
// passages2string; the quoted title is how the wiki-18 corpus stores titles).
// Passage text is copied as is, newlines included; a passage with TitleLine
// shows that line in place of the quoted title. No passages give "".
func RenderPassages(passages []Passage) string {
	var b strings.Builder
	for i, p := range passages {
		if p.TitleLine != "" {
			fmt.Fprintf(&b, "Doc %d(Title: %s) %s\n", i+1, p.TitleLine, p.Text)
			continue
		}
		fmt.Fprintf(&b, "Doc %d(Title: \"%s\") %s\n", i+1, p.Title, p.Text)
	}
	return b.String()
}

// InformationText is the inner text of the information block after a search:
// BudgetHint(turnsLeft) + "\n" + RenderPassages(passages). Wrapped by
// Tags.InformationBlock it gives, byte for byte, MEM1's
// "<information>\n{hint}\n{docs}\n</information>".
func InformationText(turnsLeft int, passages []Passage) string {
	return BudgetHint(turnsLeft) + "\n" + RenderPassages(passages)
}

// Carried is the assistant-side text of the context: every exchange's response
// followed by its information block, concatenated without separators. Raw
// completion adapters put it after the open assistant turn.
func (c Context) Carried() string {
	n := 0
	for _, e := range c.History {
		n += len(e.Response) + len(e.Information)
	}
	var b strings.Builder
	b.Grow(n)
	for _, e := range c.History {
		b.WriteString(e.Response)
		b.WriteString(e.Information)
	}
	return b.String()
}

// StripGeneration trims a generation as Python's str.strip() does (Unicode
// whitespace at both ends), which MEM1's clients apply to every completion
// before re-appending the stop string that ended it (Mem1/inference/models.py,
// VLLMOpenAIClient.generate_response and LiteLLMClient).
func StripGeneration(text string) string { return pyStrip(text) }

// AgentConfig sets how an Agent runs a rollout. Zero fields take defaults (see
// Normalized).
type AgentConfig struct {
	// Template is the task prompt; zero value: DefaultTemplate().
	Template Template
	// Tags are the protocol's tag names; zero value: DefaultTags().
	Tags Tags
	// Policy builds each context from the exchanges so far; nil: "mem1".
	Policy Policy
	// MaxTurns is the turn budget; 0: DefaultMaxTurns(number of objectives).
	MaxTurns int
	// TopK is the number of passages per search; 0: DefaultTopK.
	TopK int
	// Scheme scores the trajectory (see Schemes); "": SchemeMEM1.
	Scheme string
	// InvalidNote, when not empty, keeps a rollout going after a response with
	// no complete action: the information block after it holds the budget hint
	// and this note (Tags.InvalidActionNote gives one). When empty the rollout
	// ends there with no answer, as MEM1's inference pipeline does
	// (Mem1/inference/data_pipelines.py: act returns None and run_llm_loop
	// returns no answer).
	InvalidNote string
}

// Normalized returns c with defaults filled in for a task of that many
// objectives, or an error for invalid settings: negative MaxTurns or TopK,
// invalid tags, a template without QuestionsSlot, an unknown scheme.
func (c AgentConfig) Normalized(objectives int) (AgentConfig, error) {
	if c.Template.Text == "" {
		c.Template = DefaultTemplate()
	}
	if c.Tags == (Tags{}) {
		c.Tags = DefaultTags()
	}
	if c.Policy == nil {
		p, err := PolicyByName(PolicyMEM1)
		if err != nil {
			return c, err
		}
		c.Policy = p
	}
	if c.MaxTurns == 0 {
		c.MaxTurns = DefaultMaxTurns(objectives)
	}
	if c.TopK == 0 {
		c.TopK = DefaultTopK
	}
	if c.Scheme == "" {
		c.Scheme = SchemeMEM1
	}
	var errs []error
	if c.MaxTurns < 0 {
		errs = append(errs, fmt.Errorf("agent: MaxTurns %d is negative", c.MaxTurns))
	}
	if c.TopK < 0 {
		errs = append(errs, fmt.Errorf("agent: TopK %d is negative", c.TopK))
	}
	if err := c.Tags.Validate(); err != nil {
		errs = append(errs, err)
	}
	if !strings.Contains(c.Template.Text, QuestionsSlot) {
		errs = append(errs, fmt.Errorf("agent: template %q: %w", c.Template.Name, errEmptyTemplate))
	}
	if !knownScheme(c.Scheme) {
		errs = append(errs, fmt.Errorf("agent: unknown scoring scheme %q", c.Scheme))
	}
	return c, errors.Join(errs...)
}

// Prompt is the task prompt Run sends every turn for task (the user message):
// the template rendered with the tag names, after Normalized for the task's
// objectives. Errors are Normalized's.
func (c AgentConfig) Prompt(task Task) (string, error) {
	n, err := c.Normalized(len(task.Objectives))
	if err != nil {
		return "", err
	}
	return n.prompt(task), nil
}

// prompt renders the task prompt of a normalized config.
func (c AgentConfig) prompt(task Task) string { return c.Template.RenderWith(task, c.Tags) }

// Agent runs MEM1-style rollouts: Model writes each turn, Env answers searches.
// Clock measures latencies; nil means time.Now.
type Agent struct {
	Model  Model
	Env    Environment
	Config AgentConfig
	Clock  func() time.Time
	// Sub makes a memory policy's sub-calls (see MemoryPolicy); nil is fine
	// for policies without memory.
	Sub SubCaller
	// Held (may be nil) is the time, so far, the rollout's calls were held
	// by a paused run (it only grows): what it grows by during a turn is
	// left out of that turn's Latency (and RetrievalLatency), and all it
	// grows by during Run out of the outcome's Elapsed.
	Held func() time.Duration
}

// TurnError is the error Run returns when a turn fails: Op is "model",
// "search", "memory" (a memory policy's step) or "store" (the onTurn callback), Turn the 0-based turn index.
type TurnError struct {
	Turn int
	Op   string
	Err  error
}

func (e *TurnError) Error() string {
	return fmt.Sprintf("turn %d: %s: %v", e.Turn, e.Op, e.Err)
}

func (e *TurnError) Unwrap() error { return e.Err }

// Run plays one rollout of task and returns its outcome.
//
// prior are turns already stored for this rollout (indices 0..len(prior)-1, in
// order): their exchanges are rebuilt with Tags.Exchanges and the rollout
// continues at turn len(prior), so a resumed rollout sends the same contexts as
// an uninterrupted one. A prior that already ended (answer, no action without
// InvalidNote, or MaxTurns turns) is only scored.
//
// Each turn i: the context is the rendered prompt plus Policy.Keep(all
// exchanges), sent as one user turn when OneMessage(Policy); stops are
// Tags.Stops(i == MaxTurns-1), except that a policy with SearchStopOnLastTurn
// keeps both stops on the last turn; the response is the completion stripped
// (StripGeneration) with RestoreClosingTag applied, as MEM1's client does
// (Mem1/inference/models.py: content.strip(), then the stop_reason appended),
// then parsed with Tags.Parse. The server's text is kept in Turn.RawResponse.
//   - search, not on the last turn: Env.Search(query, TopK) (skipped for an
//     empty query), information = InformationText(MaxTurns-i-1, passages);
//   - search on the last turn: no retrieval, the rollout ends;
//   - answer: the rollout ends;
//   - no action: the rollout ends, unless InvalidNote is set (see AgentConfig).
//
// With a MemoryPolicy (core/memory.go) each turn first runs the memory step:
// the policy folds the newest exchange into its memory through Sub (its
// sub-calls are the turn's SubCalls) and builds the context in place of Keep;
// the turn stores the memory payload and the memory state, and a resumed
// rollout restores the memory from the last prior turn's state. A policy that
// does not retrieve (RetrievalPolicy, closed-book) never calls Env.Search: its
// information block holds the budget hint and ClosedBookNote. Sub-call tokens
// count in the outcome's TotalTokens (not in PeakTokens, the actor's).
//
// Turn.Latency spans the memory step, the model call and the retrieval; Turn.RetrievalLatency
// the retrieval alone. Turn.Context is Completion.Sent (Prompt + Carried() when the model leaves it
// empty); token counts come from the completion's usage, or the counts the
// adapter got from the server's tokenizer (Usage.Source), or else from
// EstimateTokens of the context and the generated text; Turn.TokenSource
// records which. onTurn (may be nil) is called after each new turn; its error
// ends the rollout.
//
// The outcome holds prior and new turns, the scheme's score of
// TrajectoryText(turns) (with Score.EvalPy set when eval.py's reading,
// EvalPyText, scores differently), the final answer, peak and total tokens and Elapsed
// (this call's wall time plus the prior turns' latencies). HitMaxTurns is set
// when all MaxTurns turns were used without an answer.
//
// Errors: invalid configuration or prior turns (nothing is called); a *TurnError
// when the model, the environment, the memory step or onTurn fails or ctx is done (Op "model"
// also covers cancellation between turns). With a *TurnError the outcome holds
// the turns finished so far, scored; a turn whose model or search call failed
// is not among them.
func (a *Agent) Run(ctx context.Context, task Task, prior []Turn, onTurn func(Turn) error) (Outcome, error) {
	cfg, err := a.Config.Normalized(len(task.Objectives))
	if err != nil {
		return Outcome{}, err
	}
	if a.Model == nil {
		return Outcome{}, errors.New("agent: no model")
	}
	if a.Env == nil {
		return Outcome{}, errors.New("agent: no environment")
	}
	for i, o := range task.Objectives {
		if o.Question == "" {
			// MEM1's prompt builder reads question[-1], which fails on "".
			return Outcome{}, fmt.Errorf("agent: task %q: objective %d has an empty question", task.Key, i+1)
		}
	}
	for i, t := range prior {
		if t.Index != i {
			return Outcome{}, fmt.Errorf("agent: prior turn %d has index %d", i, t.Index)
		}
	}
	if len(prior) > cfg.MaxTurns {
		return Outcome{}, fmt.Errorf("agent: %d prior turns exceed MaxTurns %d", len(prior), cfg.MaxTurns)
	}
	clock := a.Clock
	if clock == nil {
		clock = time.Now
	}
	began := clock()

	r := rollout{cfg: cfg, task: task, began: began, clock: clock, held: a.Held}
	r.heldAtBegin = r.heldNow()
	r.turns = append(r.turns, prior...)
	r.exchanges = cfg.Tags.Exchanges(prior)
	for _, t := range prior {
		r.priorTime += t.Latency
	}
	if len(prior) > 0 && r.ended(prior[len(prior)-1]) {
		return r.outcome(), nil
	}
	prompt := cfg.prompt(task)
	mem, err := newMemoryRun(cfg.Policy, a.Sub, prior)
	if err != nil {
		return r.outcome(), err
	}

	for i := len(prior); i < cfg.MaxTurns; i++ {
		if err := ctx.Err(); err != nil {
			return r.outcome(), &TurnError{Turn: i, Op: "model", Err: err}
		}
		last := i == cfg.MaxTurns-1
		start := clock() // sub-calls count in the turn's latency
		heldAtStart := r.heldNow()
		c := Context{Prompt: prompt, History: cfg.Policy.Keep(r.exchanges), OneMessage: OneMessage(cfg.Policy)}
		var mt Turn
		if mem != nil {
			c, mt, err = mem.prepare(ctx, MemoryStep{Turn: i, Task: task, Prompt: prompt, Exchanges: r.exchanges, MaxTurns: cfg.MaxTurns})
			if err != nil {
				return r.outcome(), &TurnError{Turn: i, Op: "memory", Err: err}
			}
		}
		stops := cfg.Tags.Stops(last && !SearchStopOnLastTurn(cfg.Policy))

		comp, err := a.Model.Complete(ctx, c, stops)
		if err != nil {
			return r.outcome(), &TurnError{Turn: i, Op: "model", Err: err}
		}
		response := RestoreClosingTag(StripGeneration(comp.Text), comp.FinishReason, comp.StopReason, stops)
		p := cfg.Tags.Parse(response)

		t := Turn{
			Index:         i,
			Context:       comp.Sent,
			Response:      response,
			RawResponse:   comp.Text,
			InternalState: p.InternalState,
			Action:        p.Action,
			Query:         p.Query,
			Answer:        p.Answer,
			FinishReason:  comp.FinishReason,
			SubCalls:      mt.SubCalls,
			Memory:        mt.Memory,
			MemoryState:   mt.MemoryState,
			Cached:        comp.Cached,
		}
		if t.Context == "" {
			t.Context = c.Prompt + c.Carried()
		}
		switch {
		case comp.Usage.Reported:
			t.PromptTokens, t.CompletionTokens, t.UsageReported = comp.Usage.PromptTokens, comp.Usage.CompletionTokens, true
			t.TokenSource = TokenSourceServerUsage
		case comp.Usage.Source == TokenSourceServerTokenize:
			t.PromptTokens, t.CompletionTokens = comp.Usage.PromptTokens, comp.Usage.CompletionTokens
			t.TokenSource = TokenSourceServerTokenize
		default:
			t.PromptTokens, t.CompletionTokens = EstimateTokens(t.Context), EstimateTokens(comp.Text)
			t.TokenSource = TokenSourceEstimate
		}

		turnsLeft := cfg.MaxTurns - i - 1
		switch {
		case p.Action == ActionSearch && !last && !retrieves(cfg.Policy):
			t.Information = BudgetHint(turnsLeft) + "\n" + ClosedBookNote + "\n"
		case p.Action == ActionSearch && !last:
			if strings.TrimSpace(p.Query) != "" {
				searchStart, heldBefore := clock(), r.heldNow()
				passages, err := a.Env.Search(ctx, p.Query, cfg.TopK)
				t.RetrievalLatency = clock().Sub(searchStart) - (r.heldNow() - heldBefore)
				if err != nil {
					return r.outcome(), &TurnError{Turn: i, Op: "search", Err: err}
				}
				t.Passages = passages
			}
			t.Information = InformationText(turnsLeft, t.Passages)
		case p.Action == ActionNone && !last && cfg.InvalidNote != "":
			t.Information = BudgetHint(turnsLeft) + "\n" + cfg.InvalidNote + "\n"
		}
		t.Latency = clock().Sub(start) - (r.heldNow() - heldAtStart) // model call plus retrieval, without a pause
		if t.Cached {
			t.Latency = t.RetrievalLatency // no model call was made
		}

		r.turns = append(r.turns, t)
		r.exchanges = append(r.exchanges, cfg.Tags.Exchanges([]Turn{t})...)
		if onTurn != nil {
			if err := onTurn(t); err != nil {
				return r.outcome(), &TurnError{Turn: i, Op: "store", Err: err}
			}
		}
		if r.ended(t) {
			break
		}
	}
	return r.outcome(), nil
}

// rollout is the state of one Run.
type rollout struct {
	cfg       AgentConfig
	task      Task
	turns     []Turn
	exchanges []Exchange
	began     time.Time
	priorTime time.Duration
	clock     func() time.Time
	// held is Agent.Held; heldAtBegin its value when Run began.
	held        func() time.Duration
	heldAtBegin time.Duration
}

// heldNow is the time the rollout has been held by a pause so far (0 without
// Agent.Held).
func (r *rollout) heldNow() time.Duration {
	if r.held == nil {
		return 0
	}
	return r.held()
}

// ended reports whether t, the latest turn, finishes the rollout.
func (r *rollout) ended(t Turn) bool { return r.cfg.EndsRollout(t) }

// EndsRollout reports whether turn t, the latest of a rollout, is its last
// under c, a Normalized config (so MaxTurns is set): the last turn of the
// budget, an answer, or a turn with no action when c has no InvalidNote (the
// reference stops there).
func (c AgentConfig) EndsRollout(t Turn) bool {
	switch {
	case t.Index >= c.MaxTurns-1:
		return true
	case t.Action == ActionAnswer:
		return true
	case t.Action == ActionNone:
		return c.InvalidNote == ""
	}
	return false
}

func (r *rollout) outcome() Outcome {
	o := Outcome{Turns: r.turns}
	for _, t := range r.turns {
		n := t.Tokens()
		o.TotalTokens += n + t.SubCallTokens()
		o.PeakTokens = max(o.PeakTokens, n)
	}
	gold := make([][]string, len(r.task.Objectives))
	for i, ob := range r.task.Objectives {
		gold[i] = ob.Gold
	}
	traj := TrajectoryText(r.turns)
	// The scheme was checked in Normalized, so scoring cannot fail here.
	o.Score, _ = ScoreTrajectoryWith(r.cfg.Scheme, traj, gold, r.cfg.Tags)
	o.Score = WithEvalPy(o.Score, r.turns, gold, r.cfg.Tags)
	o.Answer, _ = FinalAnswerWith(r.cfg.Scheme, traj, r.cfg.Tags)
	answered := len(r.turns) > 0 && r.turns[len(r.turns)-1].Action == ActionAnswer
	o.HitMaxTurns = !answered && len(r.turns) >= r.cfg.MaxTurns
	o.Elapsed = r.priorTime + r.clock().Sub(r.began) - (r.heldNow() - r.heldAtBegin)
	return o
}
