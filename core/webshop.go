package core

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DefaultWebShopMaxTurns is MEM1's WebShop turn budget (10 turns).
const DefaultWebShopMaxTurns = 10

// WebShopTags are the WebShop family's tag names: Memory (the internal
// state, "summary"), Think (reasoning, pruned from carried contexts under
// mem1), Action (the action's tag, "answer") and Information (the
// environment's reply).
type WebShopTags struct {
	Memory, Think, Action, Information string
}

// DefaultWebShopTags are MEM1's WebShop tags: summary, think, answer,
// information (Mem1/gen_data/data_process/webshop.py's protocol).
func DefaultWebShopTags() WebShopTags {
	return WebShopTags{Memory: "summary", Think: "think", Action: "answer", Information: "information"}
}

func (t WebShopTags) qaTags() Tags {
	return Tags{Think: t.Memory, Search: t.Think, Information: t.Information, Answer: t.Action}
}

// Validate reports empty, malformed or repeated names (as Tags.Validate).
func (t WebShopTags) Validate() error { return t.qaTags().Validate() }

// Stops are the stop strings of every WebShop turn: the action's closing tag.
func (t WebShopTags) Stops() []string { return []string{closeTag(t.Action)} }

// WebShopParsed is what one WebShop response contains.
type WebShopParsed struct {
	// Memory is the first complete memory block's text, trimmed.
	Memory string
	// Action is the first complete action block's text, trimmed ("" none).
	Action string
	// Kind is "search" or "click" for a well-formed action, else "".
	Kind, Arg string
}

var webShopAction = regexp.MustCompile(`(?is)^(search|click)\[(.*)\]$`)

// ParseWebShopAction splits "search[keywords]" or "click[name]" (the
// WebShop action syntax; case of the verb ignored, spaces around trimmed).
// Errors: any other text, or an empty argument.
func ParseWebShopAction(s string) (kind, arg string, err error) {
	s = strings.TrimSpace(s)
	m := webShopAction.FindStringSubmatch(s)
	if m == nil {
		return "", "", fmt.Errorf("action %q: want search[keywords] or click[name]", s)
	}
	kind = strings.ToLower(m[1])
	if strings.TrimSpace(m[2]) == "" {
		return "", "", fmt.Errorf("action %q: empty %s argument", s, kind)
	}
	return kind, strings.TrimSpace(m[2]), nil
}

// Parse reads a response: the memory block and the action block (each the
// first complete one, as Tags.Parse reads think and answer).
func (t WebShopTags) Parse(response string) WebShopParsed {
	var p WebShopParsed
	if s, ok := firstBlock(response, t.Memory, 0); ok {
		p.Memory = pyStrip(s)
	}
	if s, ok := firstBlock(response, t.Action, 0); ok {
		p.Action = pyStrip(s)
		if k, a, err := ParseWebShopAction(p.Action); err == nil {
			p.Kind, p.Arg = k, a
		}
	}
	return p
}

// Prune removes every complete Think block from response (MEM1's WebShop
// setting carries the summary, not the reasoning).
func (t WebShopTags) Prune(response string) string {
	open, cl := openTag(t.Think), closeTag(t.Think)
	var b strings.Builder
	for {
		i := strings.Index(response, open)
		if i < 0 {
			break
		}
		j := strings.Index(response[i+len(open):], cl)
		if j < 0 {
			break
		}
		b.WriteString(response[:i])
		response = response[i+len(open)+j+len(cl):]
	}
	b.WriteString(response)
	return pyStrip(b.String())
}

// WebShopInformation is the inner text of the information block after a
// step: BudgetHint(turnsLeft), the page text, and the actions it offers.
func WebShopInformation(turnsLeft int, o Observation) string {
	return BudgetHint(turnsLeft) + "\n" + o.Text + "\nAvailable actions: " + o.Actions.String()
}

// InstructionSlot is the WebShop template's slot for the goal's instruction;
// ObservationSlot the slot for the first page and its actions.
const (
	InstructionSlot = "{instruction}"
	ObservationSlot = "{observation}"
)

// DefaultWebShopTemplate is mem1lab's WebShop prompt, in its own words, for
// the protocol of MEM1's WebShop data (Mem1/gen_data/data_process/webshop.py):
// the memory in <summary>, the action inside <answer>. The tag names are
// filled in by RenderWebShopPrompt.
const DefaultWebShopTemplate = `You are shopping on a web store for a customer. Reach the product that fits the customer's request and buy it, choosing the options the request asks for.

Each turn, first write <{think}> your reasoning about the page you see </{think}>. Then write <{memory}> a short summary of everything you need to remember: the request, what you searched, what you found and chose </{memory}>. Only the summary is kept for later turns, so put every fact you need in it. Finish the turn with exactly one action inside <{action}> </{action}>: either search[keywords] when the page has a search bar, or click[name] with one of the clickable names the page lists. The store answers with the new page inside <{information}> </{information}>, with the number of turns you have left. Buy before your turns run out.

Customer request: {instruction}

Start page:
{observation}
`

// RenderWebShopPrompt fills template's tag names and its InstructionSlot and
// ObservationSlot ("" template: DefaultWebShopTemplate).
func RenderWebShopPrompt(template string, tags WebShopTags, o Observation) string {
	if template == "" {
		template = DefaultWebShopTemplate
	}
	r := strings.NewReplacer("{think}", tags.Think, "{memory}", tags.Memory, "{action}", tags.Action,
		"{information}", tags.Information, InstructionSlot, o.Instruction,
		ObservationSlot, o.Text+"\nAvailable actions: "+o.Actions.String())
	return r.Replace(template)
}

// WebShopConfig sets how a WebShopAgent plays an episode. Zero fields take
// defaults: DefaultWebShopTemplate, DefaultWebShopTags, DefaultWebShopMaxTurns,
// policy "mem1".
type WebShopConfig struct {
	Template string
	Tags     WebShopTags
	MaxTurns int
	// Policy is "mem1" (the context is the prompt, the last response with its
	// think blocks pruned, and the last information), "full" (every
	// exchange, unpruned, as one growing context), or any other policy of
	// PolicyWith but closed-book (WebShop has no retrieval to turn off):
	// "full:messages", "window:K", and the memory policies, whose sub-calls
	// go through WebShopAgent.Sub and whose prompts speak of the instruction.
	Policy string
	// Memory is the memory policies' knobs.
	Memory MemoryOptions
}

// WebShopPolicy is the policy a WebShop run plays under that name (see
// WebShopConfig.Policy). Errors: an unknown name, and closed-book.
func WebShopPolicy(name string, o MemoryOptions) (Policy, error) {
	if name == "" {
		name = PolicyMEM1
	}
	p, err := PolicyWith(name, o)
	if err != nil {
		return nil, fmt.Errorf("webshop: %w", err)
	}
	if !retrieves(p) {
		return nil, fmt.Errorf("webshop: policy %q: WebShop has no retrieval to turn off", name)
	}
	return p, nil
}

// normalized is c with its defaults, and the policy it names; errors list
// every invalid field.
func (c WebShopConfig) normalized() (WebShopConfig, Policy, error) {
	if c.Tags == (WebShopTags{}) {
		c.Tags = DefaultWebShopTags()
	}
	if c.MaxTurns == 0 {
		c.MaxTurns = DefaultWebShopMaxTurns
	}
	if c.Policy == "" {
		c.Policy = PolicyMEM1
	}
	var errs []error
	if err := c.Tags.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.MaxTurns < 0 {
		errs = append(errs, fmt.Errorf("webshop: MaxTurns %d is negative", c.MaxTurns))
	}
	policy, err := WebShopPolicy(c.Policy, c.Memory)
	if err != nil {
		errs = append(errs, err)
	}
	if c.Template != "" && !strings.Contains(c.Template, InstructionSlot) {
		errs = append(errs, fmt.Errorf("webshop: template has no %s slot", InstructionSlot))
	}
	return c, policy, errors.Join(errs...)
}

// WebShopOutcome is one WebShop episode's result. Reward is the final reward
// in [0, 1] (0 when the episode never bought); Done says the environment
// ended the episode.
type WebShopOutcome struct {
	Turns       []Turn
	Prompt      string
	Instruction string
	Reward      float64
	Done        bool
	HitMaxTurns bool
	PeakTokens  int // max over turns of Turn.Tokens()
	TotalTokens int // Σ over turns of Turn.Tokens() and its sub-calls' tokens (Turn.SubCallTokens), as for QA
	Elapsed     time.Duration
}

// WebShopAgent plays WebShop episodes: Model writes each turn, Env applies
// the actions. Clock measures latencies; nil means time.Now.
type WebShopAgent struct {
	Model  Model
	Env    StepEnvironment
	Config WebShopConfig
	Clock  func() time.Time
	// Sub makes a memory policy's sub-calls (nil: a memory policy fails its
	// first memory step with ErrNoSubCaller).
	Sub SubCaller
	// Hold (may be nil) is called before each new turn starts, before its
	// clock: it blocks while the run is paused and returns how long it held
	// the episode, which is left out of the outcome's Elapsed; an error ends
	// the episode like a cancelled model call.
	Hold func(ctx context.Context) (time.Duration, error)
}

// Run plays one episode and returns its outcome.
//
// Env.Reset gives the first page; the prompt is RenderWebShopPrompt of it.
// prior are turns already stored for this episode: their actions are
// replayed on the fresh environment (Env.Step, in order) so the page is where
// the episode left it, and the episode goes on at turn len(prior) with the
// same contexts (the exchanges are rebuilt from the stored turns). A replay
// that ends the episode, or a prior that already did, only reports it.
//
// Each turn i: the context is the prompt plus the exchanges the policy keeps
// (mem1: the last, its think blocks pruned; full: all, as one message;
// window:K: the last K), or what a memory policy's memory step gives (its
// sub-calls, memory and memory state are stored on the turn, and a resumed
// episode restores the memory from the last prior turn's state), stops
// Tags.Stops(); the response is stripped and its closing tag restored as in
// Agent.Run, then parsed. A well-formed action is sent to Env.Step; the
// stored turn has Query = the action, Action ActionSearch (ActionAnswer on
// the step that ended the episode, with Answer = the action), InternalState
// the memory, and Information WebShopInformation of the new page. A response
// without a well-formed action ends the episode with reward 0 (as MEM1
// ends a rollout on an invalid action). The episode ends when Env says done
// or after MaxTurns turns.
//
// Errors: invalid config; a *TurnError with Op "reset", "memory", "model",
// "step" or "store" (the outcome holds the finished turns).
func (a *WebShopAgent) Run(ctx context.Context, prior []Turn, onTurn func(Turn) error) (WebShopOutcome, error) {
	cfg, policy, err := a.Config.normalized()
	if err != nil {
		return WebShopOutcome{}, err
	}
	if a.Model == nil || a.Env == nil {
		return WebShopOutcome{}, errors.New("webshop: no model or no environment")
	}
	clock := a.Clock
	if clock == nil {
		clock = time.Now
	}
	began := clock()
	out := WebShopOutcome{}
	var priorTime, held time.Duration
	finish := func() WebShopOutcome {
		for _, t := range out.Turns {
			out.TotalTokens += t.Tokens() + t.SubCallTokens() // a memory policy's sub-calls are paid for too
			out.PeakTokens = max(out.PeakTokens, t.Tokens())
		}
		out.HitMaxTurns = !out.Done && len(out.Turns) >= cfg.MaxTurns
		out.Elapsed = priorTime + clock().Sub(began) - held
		return out
	}
	obs, err := a.Env.Reset(ctx)
	if err != nil {
		return finish(), &TurnError{Turn: len(prior), Op: "reset", Err: err}
	}
	out.Instruction = obs.Instruction
	out.Prompt = RenderWebShopPrompt(cfg.Template, cfg.Tags, obs)
	for i, t := range prior {
		if t.Index != i {
			return WebShopOutcome{}, fmt.Errorf("webshop: prior turn %d has index %d", i, t.Index)
		}
		priorTime += t.Latency
		out.Turns = append(out.Turns, t)
		if t.Query == "" { // an invalid action ended it
			return finish(), nil
		}
		res, err := a.Env.Step(ctx, t.Query)
		if err != nil {
			return finish(), &TurnError{Turn: i, Op: "step", Err: fmt.Errorf("replaying %q: %w", t.Query, err)}
		}
		if res.Done {
			out.Done, out.Reward = true, res.Reward
			return finish(), nil
		}
	}
	info := cfg.Tags.qaTags()
	var exchanges []Exchange
	for _, t := range prior {
		exchanges = append(exchanges, a.exchange(cfg, t, info))
	}
	mem, err := newMemoryRun(policy, a.Sub, prior)
	if err != nil {
		return finish(), err
	}
	for i := len(prior); i < cfg.MaxTurns; i++ {
		if a.Hold != nil {
			d, err := a.Hold(ctx)
			held += d
			if err != nil {
				return finish(), &TurnError{Turn: i, Op: "model", Err: err}
			}
		}
		if err := ctx.Err(); err != nil {
			return finish(), &TurnError{Turn: i, Op: "model", Err: err}
		}
		start := clock() // sub-calls count in the turn's latency
		c := Context{Prompt: out.Prompt, History: policy.Keep(exchanges), OneMessage: OneMessage(policy)}
		var mt Turn
		if mem != nil {
			c, mt, err = mem.prepare(ctx, MemoryStep{Turn: i, Prompt: out.Prompt, Exchanges: exchanges, MaxTurns: cfg.MaxTurns, Instruction: out.Instruction})
			if err != nil {
				return finish(), &TurnError{Turn: i, Op: "memory", Err: err}
			}
		}
		stops := cfg.Tags.Stops()
		comp, err := a.Model.Complete(ctx, c, stops)
		if err != nil {
			return finish(), &TurnError{Turn: i, Op: "model", Err: err}
		}
		response := RestoreClosingTag(StripGeneration(comp.Text), comp.FinishReason, comp.StopReason, stops)
		p := cfg.Tags.Parse(response)
		t := Turn{Index: i, Context: comp.Sent, Response: response, RawResponse: comp.Text, InternalState: p.Memory, FinishReason: comp.FinishReason,
			SubCalls: mt.SubCalls, Memory: mt.Memory, MemoryState: mt.MemoryState, Cached: comp.Cached}
		if t.Context == "" {
			t.Context = c.Prompt + c.Carried()
		}
		switch {
		case comp.Usage.Reported:
			t.PromptTokens, t.CompletionTokens, t.UsageReported, t.TokenSource = comp.Usage.PromptTokens, comp.Usage.CompletionTokens, true, TokenSourceServerUsage
		case comp.Usage.Source == TokenSourceServerTokenize:
			t.PromptTokens, t.CompletionTokens, t.TokenSource = comp.Usage.PromptTokens, comp.Usage.CompletionTokens, TokenSourceServerTokenize
		default:
			t.PromptTokens, t.CompletionTokens, t.TokenSource = EstimateTokens(t.Context), EstimateTokens(comp.Text), TokenSourceEstimate
		}
		ended := p.Kind == ""
		if !ended {
			t.Action, t.Query = ActionSearch, p.Kind+"["+p.Arg+"]"
			stepStart := clock()
			res, err := a.Env.Step(ctx, t.Query)
			t.RetrievalLatency = clock().Sub(stepStart)
			if err != nil {
				return finish(), &TurnError{Turn: i, Op: "step", Err: err}
			}
			t.Information = WebShopInformation(cfg.MaxTurns-i-1, res.Observation)
			if res.Done {
				t.Action, t.Answer = ActionAnswer, t.Query
				out.Done, out.Reward, ended = true, res.Reward, true
				t.Information = "Reward: " + strconv.FormatFloat(res.Reward, 'f', -1, 64) + "\n" + res.Text
			}
		}
		t.Latency = clock().Sub(start)
		out.Turns = append(out.Turns, t)
		exchanges = append(exchanges, a.exchange(cfg, t, info))
		if onTurn != nil {
			if err := onTurn(t); err != nil {
				return finish(), &TurnError{Turn: i, Op: "store", Err: err}
			}
		}
		if ended {
			break
		}
	}
	return finish(), nil
}

// exchange is a stored turn as carried: under mem1 its response with the
// think blocks pruned.
func (a *WebShopAgent) exchange(cfg WebShopConfig, t Turn, info Tags) Exchange {
	e := Exchange{Response: t.Response}
	if cfg.Policy == PolicyMEM1 {
		e.Response = cfg.Tags.Prune(t.Response)
	}
	if t.Information != "" {
		e.Information = info.InformationBlock(t.Information)
	}
	return e
}

// WebShopRefTurns are a WebShop episode's turns in the reference record's
// shape for the paper's token metrics (PeakTokensConsolidating,
// DependencyConsolidating and their full-history forms): T the memory block
// "<summary>…</summary>", R the response, I the information block.
func WebShopRefTurns(turns []Turn, tags WebShopTags) []RefTurn {
	if tags == (WebShopTags{}) {
		tags = DefaultWebShopTags()
	}
	info := tags.qaTags()
	out := make([]RefTurn, len(turns))
	for i, t := range turns {
		r := RefTurn{R: t.Response, HasT: true, HasR: true}
		if t.InternalState != "" {
			r.T = openTag(tags.Memory) + t.InternalState + closeTag(tags.Memory)
		}
		if t.Information != "" {
			r.I, r.HasI = info.InformationBlock(t.Information), true
		}
		out[i] = r
	}
	return out
}
