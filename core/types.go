// Package core is the MEM1 domain: tasks made of objectives, prompt templates, tag
// parsing, memory policies, the turn loop and scoring. It has no network, SQL or UI
// code; the model and the retrieval environment come in through the small
// interfaces Model and Environment declared here, where the turn loop consumes them.
package core

import (
	"context"
	"time"
)

// Objective is one question inside a task, with its gold answer aliases and the
// ids of the corpus passages that support it (empty when the dataset has none).
type Objective struct {
	QuestionID     string   `json:"question_id"`
	Question       string   `json:"question"`
	Gold           []string `json:"gold"`
	GoldPassageIDs []string `json:"gold_passage_ids,omitempty"`
}

// Task is N objectives asked together in one prompt (MEM1's multi-objective QA).
// Key identifies the task inside an experiment, e.g. "hotpotqa/n4/0003".
type Task struct {
	Key        string      `json:"key"`
	Dataset    string      `json:"dataset"`
	Objectives []Objective `json:"objectives"`
}

// Passage is one retrieved corpus passage. Score is the retriever's relevance
// (higher is better); Rank is 1-based.
type Passage struct {
	ID    string  `json:"id"`
	Title string  `json:"title"`
	Text  string  `json:"text"`
	Score float64 `json:"score"`
	Rank  int     `json:"rank"`
	// TitleLine, when set, is the title exactly as a /retrieve server's
	// contents gave it (its first line) where that is not `"Title"`;
	// RenderPassages then shows it verbatim, as the reference does.
	TitleLine string `json:"title_line,omitempty"`
}

// Exchange is one finished turn as it is carried into later contexts: the model's
// response exactly as appended (closing tag restored) and the rendered information
// block exactly as appended (tags and surrounding newlines included; "" when the
// turn ended with an answer or no action).
type Exchange struct {
	Response    string
	Information string
}

// Context is what the model sees for one turn: the rendered task prompt (the user
// message) and the exchanges a Policy kept, oldest first. Model adapters render it:
// raw completions put the exchanges, concatenated, after an open assistant turn;
// chat mode sends them as alternating assistant/user messages. With OneMessage
// (the "full" policy, see OneMessage) both modes send Prompt + Carried() as one
// user turn instead.
type Context struct {
	Prompt     string
	History    []Exchange
	OneMessage bool
	// System, when not empty, replaces the endpoint's system prompt for this
	// call (memory policies that put their memory there, e.g. amem).
	System string
}

// Usage is the token accounting of one model call. Reported is true when the
// counts are the server's "usage". Otherwise Source TokenSourceServerTokenize
// says the adapter counted them with the server's tokenizer (vLLM's POST
// /tokenize); with neither, the turn loop estimates them (EstimateTokens).
type Usage struct {
	PromptTokens     int
	CompletionTokens int
	Reported         bool
	Source           string
}

// Completion is one model call's result.
type Completion struct {
	// Text is the generated text. Servers cut it before the stop string that fired,
	// so the closing tag is usually missing; the turn loop restores it.
	Text string
	// FinishReason is the server's finish_reason ("stop", "length", ...).
	FinishReason string
	// StopReason is the matched stop string when the server reports it (vLLM's
	// non-standard stop_reason), else "".
	StopReason string
	Usage      Usage
	// Sent is the exact request text: the raw prompt string in completions mode,
	// the messages rendered as "<|role|>\ncontent" blocks in chat mode.
	Sent string
	// Cached is true when the reply came from a response cache, not the server.
	Cached bool
}

// Model completes one turn. stops are the stop strings for this turn.
// Implementations return an error for transport or server failures; malformed
// model output is not an error.
type Model interface {
	Complete(ctx context.Context, c Context, stops []string) (Completion, error)
}

// Environment answers a search query with the top k passages, best first.
type Environment interface {
	Search(ctx context.Context, query string, k int) ([]Passage, error)
}

// Action is what a response asked for.
type Action int

const (
	// ActionNone means the response had no complete search or answer tag.
	ActionNone Action = iota
	// ActionSearch means the response ended with <search>query</search>.
	ActionSearch
	// ActionAnswer means the response ended with <answer>...</answer>.
	ActionAnswer
)

// String returns "none", "search" or "answer".
func (a Action) String() string {
	switch a {
	case ActionSearch:
		return "search"
	case ActionAnswer:
		return "answer"
	default:
		return "none"
	}
}

// ParseAction is the inverse of Action.String; unknown strings give ActionNone.
func ParseAction(s string) Action {
	switch s {
	case "search":
		return ActionSearch
	case "answer":
		return ActionAnswer
	default:
		return ActionNone
	}
}

// Turn is one model call and the environment's reply, as stored.
type Turn struct {
	Index int // 0-based
	// Context is the exact text sent to the model (Completion.Sent).
	Context string
	// Response is the generation as MEM1's reference keeps it: RawResponse
	// stripped like Python's str.strip(), then the closing tag that stopped it
	// restored (StripGeneration, RestoreClosingTag). This is the text carried
	// into later contexts and scored.
	Response string
	// RawResponse is the generated text exactly as the server returned it
	// (leading/trailing whitespace kept, closing tag cut by the server). ""
	// for turns stored before it was kept.
	RawResponse   string
	InternalState string // text of <think>…</think>
	Action        Action
	Query         string // text of <search>…</search>
	Answer        string // text of <answer>…</answer>
	// Information is the inner text of the information block (budget hint and
	// rendered passages), without the tags; "" when no search happened.
	Information      string
	Passages         []Passage // what the environment returned for Query
	PromptTokens     int
	CompletionTokens int
	UsageReported    bool
	// TokenSource is where PromptTokens and CompletionTokens come from:
	// TokenSourceServerUsage, TokenSourceServerTokenize or TokenSourceEstimate
	// ("" on turns stored before sources were recorded: see TurnTokenSource).
	TokenSource  string
	Latency      time.Duration
	FinishReason string
	// RetrievalLatency is the part of Latency spent in Env.Search (retries
	// included; 0 when the turn did not search).
	RetrievalLatency time.Duration
	// Memory policies (core/memory.go): the sub-calls made while preparing
	// this turn, the memory payload that entered its context, and the
	// policy's memory state (JSON) after that step, from which resume rebuilds
	// the memory. All empty for policies without memory.
	SubCalls    []SubCall
	Memory      string
	MemoryState string
	// Cached is true when the generation came from a response cache: no model
	// call was made, and Latency counts only the retrieval.
	Cached bool
}

// Tokens is the size of this turn's sequence: context plus generation.
func (t Turn) Tokens() int { return t.PromptTokens + t.CompletionTokens }

// ObjectiveScore is the score of one objective's answer.
type ObjectiveScore struct {
	Answer string  `json:"answer"`
	EM     float64 `json:"em"`
	F1     float64 `json:"f1"`
}

// Score is a trajectory's score under one scheme. EM and F1 are summed over
// objectives, so an N-objective task scores 0..N (MEM1, arXiv 2506.15841, eval.py).
type Score struct {
	Scheme        string           `json:"scheme"`
	EM            float64          `json:"em"`
	F1            float64          `json:"f1"`
	Answers       []string         `json:"answers"`
	CountMismatch bool             `json:"count_mismatch"`
	NoAnswer      bool             `json:"no_answer"`
	PerObjective  []ObjectiveScore `json:"per_objective"`
	// Unbalanced is true when the answer tags did not pair up, which scores 0
	// without looking for an answer (MEM1 eval.py check_tags_balance).
	Unbalanced bool `json:"unbalanced,omitempty"`
	// EvalPy is the score MEM1's eval.py gives the same rollout when it
	// differs from EM/F1 above (nil when equal): see EvalPyText. It differs
	// mainly for rollouts longer than EvalPyTurns turns, whose later turns
	// eval.py never reads.
	EvalPy *EvalPyScore `json:"eval_py,omitempty"`
	// Reward is a WebShop episode's final reward in [0, 1] (nil for QA; the
	// WebShop runner also writes it to EM and F1 so that tables and charts
	// that read EM show it).
	Reward *float64 `json:"reward,omitempty"`
}

// EvalPyScore is a trajectory's EM and F1 as Mem1/inference/eval.py computes
// them (summed over objectives), with the answer it found ("" when none).
type EvalPyScore struct {
	EM     float64 `json:"em"`
	F1     float64 `json:"f1"`
	Answer string  `json:"answer"`
}

// Outcome is the result of one rollout (trajectory).
type Outcome struct {
	Turns       []Turn
	Answer      string // the final answer text scored ("" when none)
	Score       Score
	PeakTokens  int // max over turns of Turn.Tokens()
	TotalTokens int // sum over turns of Turn.Tokens()
	Elapsed     time.Duration
	HitMaxTurns bool
}
