package core

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sub-call roles. The actor is the model that writes each turn; the others are
// the extra calls a memory policy makes (MEM1 Table 1 compares the actor's
// consolidated memory against policies that keep memory this way).
const (
	RoleActor      = "actor"      // the turn's own model call (counted from Turn, never a SubCall)
	RoleSummariser = "summariser" // folds exchanges into a summary (summary:K, resum)
	RoleExtractor  = "extractor"  // writes a note or facts from an observation (amem, mem0)
	RoleUpdater    = "updater"    // rewrites or evolves stored memory (memagent, mem0, amem)
	RoleEmbedder   = "embedder"   // POST /v1/embeddings
)

// SubCall is one extra model or embeddings call a memory policy made while
// preparing a turn, as stored (table subcalls). Turn is the 0-based index of
// the turn it was made for, Seq its 0-based order within that turn.
type SubCall struct {
	Turn     int
	Seq      int
	Role     string
	Endpoint string // the endpoint profile or URL that answered
	// Request is the exact user message of a generation call, or the JSON
	// array of input strings of an embeddings call.
	Request string
	// Response is the generated text, or the JSON array of vectors (one array
	// of float64 per input, in input order) of an embeddings call.
	Response string
	Usage    Usage
	Latency  time.Duration
	// Error is why the call failed, or why its reply could not be used
	// (e.g. malformed JSON); "" when it was used as is.
	Error string
	// Replayed is true when the call was not sent but read back from the
	// store (a resumed turn whose sub-call was committed before the crash).
	Replayed bool
}

// Tokens is the sub-call's prompt plus completion tokens.
func (s SubCall) Tokens() int { return s.Usage.PromptTokens + s.Usage.CompletionTokens }

// SubCaller makes a memory policy's sub-calls. The runner's implementation
// sends them to the experiment's memory and embeddings endpoints with the
// actor's retries and rate limits, commits each one to the store as it
// completes, and replays a committed one instead of sending it again when a
// resumed turn asks for the same (turn, seq, role, request).
type SubCaller interface {
	// Generate sends prompt as the single user message of a completion on the
	// memory endpoint; call carries Turn, Seq and Role. It returns call with
	// Response, Usage, Latency and Endpoint filled in.
	Generate(ctx context.Context, call SubCall, prompt string) (SubCall, error)
	// Embed embeds texts on the embeddings endpoint (POST /v1/embeddings) and
	// returns one vector per text, in order, and the completed call.
	Embed(ctx context.Context, call SubCall, texts []string) (SubCall, [][]float64, error)
	// Flag records that a completed call's reply could not be used (msg says
	// why); the rollout goes on.
	Flag(ctx context.Context, call SubCall, msg string) error
}

// SubCalls is the sub-call log of one turn: it numbers the calls a Memory
// makes (Seq 0, 1, …), keeps their records and forwards them to a SubCaller.
type SubCalls struct {
	sc    SubCaller
	turn  int
	Calls []SubCall
}

// NewSubCalls starts the log of turn's sub-calls on sc.
func NewSubCalls(sc SubCaller, turn int) *SubCalls { return &SubCalls{sc: sc, turn: turn} }

// ErrNoSubCaller is returned when a memory policy needs sub-calls and the
// agent has no SubCaller.
var ErrNoSubCaller = errors.New("memory policy needs sub-calls but the agent has no SubCaller")

// Generate makes one generation sub-call with that role and returns its text.
func (s *SubCalls) Generate(ctx context.Context, role, prompt string) (string, error) {
	if s.sc == nil {
		return "", ErrNoSubCaller
	}
	call := SubCall{Turn: s.turn, Seq: len(s.Calls), Role: role}
	done, err := s.sc.Generate(ctx, call, prompt)
	if err != nil {
		return "", fmt.Errorf("%s sub-call %d: %w", role, call.Seq, err)
	}
	s.Calls = append(s.Calls, done)
	return done.Response, nil
}

// Embed makes one embeddings sub-call and returns one vector per text.
// No texts make no call.
func (s *SubCalls) Embed(ctx context.Context, texts []string) ([][]float64, error) {
	if len(texts) == 0 {
		return nil, nil
	}
	if s.sc == nil {
		return nil, ErrNoSubCaller
	}
	call := SubCall{Turn: s.turn, Seq: len(s.Calls), Role: RoleEmbedder}
	done, vecs, err := s.sc.Embed(ctx, call, texts)
	if err != nil {
		return nil, fmt.Errorf("embedder sub-call %d: %w", call.Seq, err)
	}
	if len(vecs) != len(texts) {
		return nil, fmt.Errorf("embedder sub-call %d: %d vectors for %d inputs", call.Seq, len(vecs), len(texts))
	}
	s.Calls = append(s.Calls, done)
	return vecs, nil
}

// Flag marks the latest sub-call's reply as unusable (e.g. malformed JSON):
// the message is stored with the call and the policy goes on without it.
func (s *SubCalls) Flag(ctx context.Context, msg string) error {
	if len(s.Calls) == 0 || s.sc == nil {
		return nil
	}
	last := &s.Calls[len(s.Calls)-1]
	last.Error = msg
	return s.sc.Flag(ctx, *last, msg)
}

// MemoryStep is what a Memory sees when it prepares turn Turn.
type MemoryStep struct {
	Turn   int
	Task   Task
	Prompt string // the rendered task prompt
	// Exchanges are every finished exchange of the rollout, oldest first; the
	// last one is the observation not yet folded into memory (none at turn 0).
	Exchanges []Exchange
	// MaxTurns is the rollout's turn budget.
	MaxTurns int
	// Instruction is a WebShop episode's instruction: when set, the sub-call
	// prompts speak of a shopper following it on a web store; "" = retrieval
	// QA, whose prompts list Task's questions.
	Instruction string
}

// Memory is the per-rollout state of a MemoryPolicy.
type Memory interface {
	// Restore loads a state State returned ("" = empty memory), so a resumed
	// rollout continues with the memory it had.
	Restore(state string) error
	// Prepare folds the newest observation into memory (with sub-calls) and
	// returns the actor's context for the coming turn and the memory payload:
	// the memory text that entered that context ("" when none).
	Prepare(ctx context.Context, calls *SubCalls, step MemoryStep) (Context, string, error)
	// State serialises the memory (JSON) after Prepare.
	State() (string, error)
}

// MemoryPolicy is a Policy whose memory is kept by extra model calls. Keep is
// what the policy shows when no memory is built (e.g. reading old traces).
type MemoryPolicy interface {
	Policy
	NewMemory() Memory
}

// RetrievalPolicy is implemented by policies that change whether the
// environment is searched; Retrieves false means searches are not sent and the
// information block carries only the budget hint and ClosedBookNote.
type RetrievalPolicy interface {
	Retrieves() bool
}

// ClosedBookNote is the line a closed-book rollout's information block holds
// in place of passages.
const ClosedBookNote = "No documents are available in this run; answer from what you already know."

func retrieves(p Policy) bool {
	if rp, ok := p.(RetrievalPolicy); ok {
		return rp.Retrieves()
	}
	return true
}

// memoryRun drives a MemoryPolicy inside Agent.Run.
type memoryRun struct {
	mem Memory
	sc  SubCaller
}

// newMemoryRun returns nil for a policy without memory, else its memory
// restored from the last prior turn's MemoryState.
func newMemoryRun(p Policy, sc SubCaller, prior []Turn) (*memoryRun, error) {
	mp, ok := p.(MemoryPolicy)
	if !ok {
		return nil, nil
	}
	m := mp.NewMemory()
	if len(prior) > 0 {
		if err := m.Restore(prior[len(prior)-1].MemoryState); err != nil {
			return nil, fmt.Errorf("agent: %s memory of turn %d: %w", p.Name(), len(prior)-1, err)
		}
	}
	return &memoryRun{mem: m, sc: sc}, nil
}

// prepare runs the memory step of turn i and returns the context, and the
// fields it fills in on the turn.
func (m *memoryRun) prepare(ctx context.Context, step MemoryStep) (Context, Turn, error) {
	calls := NewSubCalls(m.sc, step.Turn)
	c, payload, err := m.mem.Prepare(ctx, calls, step)
	t := Turn{SubCalls: calls.Calls, Memory: payload}
	if err != nil {
		return c, t, err
	}
	st, err := m.mem.State()
	if err != nil {
		return c, t, fmt.Errorf("memory state: %w", err)
	}
	t.MemoryState = st
	return c, t, nil
}

// SubCallTokens is the tokens of the turn's sub-calls.
func (t Turn) SubCallTokens() int {
	n := 0
	for _, s := range t.SubCalls {
		n += s.Tokens()
	}
	return n
}

// Memories is the memory payload of each turn, in order, as MEM1's A-MEM
// client kept them (Mem1/inference/models.py appends one memory string per
// actor call, "" when nothing was retrieved); eval.py's peak tokens add the
// longest one to the context's (compute_peak_token_*: "memories"). nil when no
// turn of a memory policy is among turns (none has a memory state).
func Memories(turns []Turn) []string {
	var out []string
	memory := false
	for _, t := range turns {
		out = append(out, t.Memory)
		memory = memory || t.MemoryState != "" || t.Memory != ""
	}
	if !memory {
		return nil
	}
	return out
}
