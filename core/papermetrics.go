package core

import (
	"strings"
)

// This file holds the token metrics of the MEM1 paper (arXiv 2506.15841,
// Table 1 peak tokens, Tables 2–3 dependency), transcribed from the reference
// evaluation script Mem1/inference/eval.py (github.com/MIT-MI/MEM1 @ 6f22061)
// and the lenient exact-match count of Mem1/inference/generate_rollout.py.
// The formulas work on a trajectory as the reference pipeline records it (see
// RefTurn) and take the token counter as an argument; O200kTokens is the
// counter eval.py uses.

// Token sources: where a token figure comes from. Every stored token figure
// records one of these.
const (
	// TokenSourceO200k: tiktoken o200k_base counts over text (O200kTokens), the
	// counts of MEM1's eval.py (tiktoken.encoding_for_model("gpt-4o-mini")).
	TokenSourceO200k = "o200k"
	// TokenSourceServerUsage: the serving model's own "usage" of the request.
	TokenSourceServerUsage = "server-usage"
	// TokenSourceServerTokenize: the serving model's tokenizer through vLLM's
	// POST /tokenize, used when the response had no usage.
	TokenSourceServerTokenize = "server-tokenize"
	// TokenSourceEstimate: EstimateTokens (chars/4 rule); an estimate only.
	TokenSourceEstimate = "estimate"
)

// TurnTokenSource is the source of a turn's token counts: Turn.TokenSource,
// or for turns without one TokenSourceServerUsage when UsageReported and
// TokenSourceEstimate otherwise.
func TurnTokenSource(t Turn) string {
	switch {
	case t.TokenSource != "":
		return t.TokenSource
	case t.UsageReported:
		return TokenSourceServerUsage
	default:
		return TokenSourceEstimate
	}
}

// RequestPeak is the largest request of a rollout as served, max over turns
// of Turn.Tokens(), with its source: the least exact source among the turns
// (estimate, then server-tokenize, then server-usage); "" for no turns.
func RequestPeak(turns []Turn) (int, string) {
	peak, src, rank := 0, "", 0
	order := map[string]int{TokenSourceServerUsage: 1, TokenSourceServerTokenize: 2, TokenSourceEstimate: 3}
	for _, t := range turns {
		peak = max(peak, t.Tokens())
		s := TurnTokenSource(t)
		if r := order[s]; r > rank {
			src, rank = s, r
		}
	}
	return peak, src
}

// ReferenceEvalTurns is how many turn indices eval.py reads from a trajectory
// record (its loops are `for i in range(10)`): turns 10 and later never count.
const ReferenceEvalTurns = 10

// TokenCounter returns the number of tokens of a text.
type TokenCounter func(string) int

// MemoCounter wraps count so that a text counted again is not re-encoded
// (eval.py's functions count the same contexts several times). The result is
// for one goroutine and one trajectory: its cache is never emptied.
func MemoCounter(count TokenCounter) TokenCounter {
	memo := map[string]int{}
	return func(s string) int {
		if n, ok := memo[s]; ok {
			return n
		}
		n := count(s)
		memo[s] = n
		return n
	}
}

// RefTurn is one turn index i of a reference trajectory record, the fields
// t{i}, r{i} and i{i} that Mem1/inference/data_pipelines.py (run_llm_loop)
// writes: T is the internal state "<think>…</think>" (or "" when the response
// had none; always present for a played turn), R the whole response
// (think block included; present for a search or answer turn), I the
// information block "<information>\n…\n</information>" (present after a
// search; "" after a search on the last turn). The Has flags say whether the
// key exists in the record: eval.py tests keys, not contents.
type RefTurn struct {
	T, R, I          string
	HasT, HasR, HasI bool
}

func (t RefTurn) any() bool { return t.HasT || t.HasR || t.HasI }

// ReferenceTurns rebuilds the reference pipeline's fields of stored turns
// (Mem1/inference/data_pipelines.py, run_llm_loop), in order:
//   - t{i}: "<think>" + stripped content + "</think>" of the first complete
//     think block of the response, or "" when there is none; always present;
//   - r{i}: the response, present when the turn searched or answered, or
//     when the rollout went on after it (mem1lab's invalid-action note; the
//     reference stops there);
//   - i{i}: the information block (tags.InformationBlock of Turn.Information),
//     present after a search ("" for a search on the last turn, which
//     retrieves nothing) or when an information block was carried.
func ReferenceTurns(turns []Turn, tags Tags) []RefTurn {
	if tags == (Tags{}) {
		tags = DefaultTags()
	}
	out := make([]RefTurn, len(turns))
	for k, t := range turns {
		rt := RefTurn{HasT: true}
		if s, ok := firstBlock(t.Response, tags.Think, 0); ok {
			rt.T = openTag(tags.Think) + pyStrip(s) + closeTag(tags.Think)
		}
		if t.Action == ActionSearch || t.Action == ActionAnswer || t.Information != "" {
			rt.R, rt.HasR = t.Response, true
		}
		if t.Action == ActionSearch || t.Information != "" {
			rt.HasI = true
			if t.Information != "" {
				rt.I = tags.InformationBlock(t.Information)
			}
		}
		out[k] = rt
	}
	return out
}

// evalTurns is eval.py's view: at most ReferenceEvalTurns indices.
func evalTurns(turns []RefTurn) []RefTurn {
	if len(turns) > ReferenceEvalTurns {
		return turns[:ReferenceEvalTurns]
	}
	return turns
}

// maxMemory is eval.py's A-MEM term: the token count of the largest memory
// (0 when the record has none).
func maxMemory(memories []string, count TokenCounter) int {
	m := 0
	for _, s := range memories {
		m = max(m, count(s))
	}
	return m
}

// PeakTokensConsolidating is eval.py's compute_peak_token_compression, the
// paper's peak tokens for a consolidating policy (MEM1, A-MEM). For each turn
// index i in 0..9 it counts the tokens of t{i-1}+r{i-1}+i{i-1}+t{i}+r{i}
// (the task prompt q is not counted; absent keys add nothing; a turn index
// past the end still counts the previous turn's t+r+i) and takes the maximum;
// for A-MEM records (memories non-nil) the largest memory's count is added.
// ok is false where eval.py returns None: exactMatch (the record's lenient
// Exact_match) is 0, or the peak is 0.
func PeakTokensConsolidating(turns []RefTurn, exactMatch float64, memories []string, count TokenCounter) (int, bool) {
	if exactMatch == 0 {
		return 0, false
	}
	turns = evalTurns(turns)
	peak, prev := 0, ""
	for i := 0; i < ReferenceEvalTurns; i++ {
		var cur RefTurn
		if i < len(turns) {
			cur = turns[i]
		}
		peak = max(peak, count(prev+cur.T+cur.R))
		prev = cur.T + cur.R + cur.I
	}
	if peak == 0 {
		return 0, false
	}
	return peak + maxMemory(memories, count), true
}

// PeakTokensFullHistory is eval.py's compute_peak_token_non_compression, the
// paper's peak tokens for a full-history run: the tokens of t{i}+r{i}+i{i}
// concatenated over turn indices 0..9, stopping at the first index with none
// of the three keys, plus the largest memory for A-MEM records. ok is false
// (eval.py's None) when exactMatch is 0; an empty trajectory gives (0, true).
func PeakTokensFullHistory(turns []RefTurn, exactMatch float64, memories []string, count TokenCounter) (int, bool) {
	if exactMatch == 0 {
		return 0, false
	}
	var b strings.Builder
	for _, t := range evalTurns(turns) {
		if !t.any() {
			break
		}
		b.WriteString(t.T)
		b.WriteString(t.R)
		b.WriteString(t.I)
	}
	return count(b.String()) + maxMemory(memories, count), true
}

// DependencyConsolidating is eval.py's compute_dependency_compression (the
// paper's Tables 2–3): over the generated segments t{i} then r{i} of turn
// indices 0..9 (stopping at the first index with none of the keys), the sum of
// (ctx + ⌊len/2⌋)·len, where len is the segment's token count and ctx the
// tokens of the context it was generated after: t{i-1}+r{i-1}+i{i-1} plus, for
// r{i}, t{i}. Information is context only, never a segment. ok is false (None)
// when the segments have no tokens at all. Not gated on Exact_match.
func DependencyConsolidating(turns []RefTurn, count TokenCounter) (int, bool) {
	return dependency(turns, count, false)
}

// DependencyFullHistory is eval.py's compute_dependency_non_compression: as
// DependencyConsolidating, but the context of each segment is everything
// before it (all earlier t, r and i).
func DependencyFullHistory(turns []RefTurn, count TokenCounter) (int, bool) {
	return dependency(turns, count, true)
}

func dependency(turns []RefTurn, count TokenCounter, full bool) (int, bool) {
	dep, total := 0, 0
	ctx := ""
	for _, t := range evalTurns(turns) {
		if !t.any() {
			break
		}
		turnText := ""
		for _, seg := range []struct {
			s   string
			has bool
		}{{t.T, t.HasT}, {t.R, t.HasR}} {
			if !seg.has {
				continue
			}
			l := count(seg.s)
			dep += (count(ctx) + l/2) * l
			total += l
			ctx += seg.s
			turnText += seg.s
		}
		if !full {
			ctx = turnText
		}
		ctx += t.I
	}
	if total == 0 {
		return 0, false
	}
	return dep, true
}

// CompressionRatio is eval.py's compute_compression_ratio: the tokens of the
// last consolidated context, t{k-1}+r{k-1}+i{k-1}+t{k}+r{k} for the last turn
// index k (≤ 9, stopping at the first index with none of the keys) that has an
// r key, divided by the summed token counts of every t, r and i field read.
// ok is false (None) when that sum is 0. Not gated on Exact_match.
func CompressionRatio(turns []RefTurn, count TokenCounter) (float64, bool) {
	total, length := 0, 0
	prev := ""
	for _, t := range evalTurns(turns) {
		if !t.any() {
			break
		}
		cur := ""
		if t.HasT {
			total += count(t.T)
			cur += t.T
		}
		if t.HasR {
			total += count(t.R)
			cur += t.R
			length = count(prev + cur)
		}
		if t.HasI {
			total += count(t.I)
			cur += t.I
		}
		prev = cur
	}
	if total == 0 {
		return 0, false
	}
	return float64(length) / float64(total), true
}

// LenientExactMatch is generate_rollout.py's Exact_match for multi-objective
// data: the final answer (answered false: the rollout gave none, which the
// reference writes as "None") is split on ';' and for each objective k the
// k-th part and the objective's first gold alias, both lower-cased and
// stripped, match when either contains the other (so an empty part matches).
// The result counts matching objectives, 0..len(gold); it is 0 when there are
// fewer parts than objectives or an objective has no alias (the reference's
// caught IndexError). eval.py leaves a record whose count is 0 out of its
// peak-token means.
func LenientExactMatch(answer string, answered bool, gold [][]string) int {
	if !answered {
		answer = "None"
	}
	parts := strings.Split(answer, ";")
	n := 0
	for k, aliases := range gold {
		if k >= len(parts) || len(aliases) == 0 {
			return 0
		}
		a := pyStrip(strings.ToLower(parts[k]))
		g := pyStrip(strings.ToLower(aliases[0]))
		if strings.Contains(g, a) || strings.Contains(a, g) {
			n++
		}
	}
	return n
}

// RolloutAnswer is the answer the reference pipeline returns for a rollout:
// the answer of the last turn when that turn answered (run_llm_loop returns
// at the first answer), else none.
func RolloutAnswer(turns []Turn) (string, bool) {
	if len(turns) == 0 || turns[len(turns)-1].Action != ActionAnswer {
		return "", false
	}
	return turns[len(turns)-1].Answer, true
}

// PaperMetrics are a trajectory's figures under eval.py's definitions. A nil
// pointer is eval.py's None. Every count is an O200kTokens count
// (TokenSourceO200k) when computed by ComputePaperMetrics.
type PaperMetrics struct {
	// ExactMatchLenient is generate_rollout.py's Exact_match (LenientExactMatch).
	ExactMatchLenient int
	// PeakTokens is the paper's peak under the rule of the policy: the
	// consolidating rule for consolidating policies, the full-history rule
	// otherwise (see PaperRuleFull).
	PeakTokens *int
	// Dependency is the dependency under the same rule as PeakTokens.
	Dependency *int
	// CompressionRatio is CompressionRatio (one definition for every policy).
	CompressionRatio *float64
	// Full says which rule PeakTokens and Dependency follow.
	Full bool
}

// PaperRuleFull reports whether eval.py's full-history ("non-compression")
// rule is the paper's rule for a policy: true for "full" and "window:K"
// (contexts that keep more than the last exchange), false for "mem1".
func PaperRuleFull(policy string) bool { return policy != PolicyMEM1 && policy != "" }

// ComputePaperMetrics computes eval.py's figures of one trajectory from its
// reference fields, with the lenient exact-match count em, under the
// consolidating rule (full false) or the full-history rule (full true).
// memories is the A-MEM hook (nil for policies without a memory store).
func ComputePaperMetrics(turns []RefTurn, em int, full bool, memories []string, count TokenCounter) PaperMetrics {
	count = MemoCounter(count)
	m := PaperMetrics{ExactMatchLenient: em, Full: full}
	var peak, dep int
	var okP, okD bool
	if full {
		peak, okP = PeakTokensFullHistory(turns, float64(em), memories, count)
		dep, okD = DependencyFullHistory(turns, count)
	} else {
		peak, okP = PeakTokensConsolidating(turns, float64(em), memories, count)
		dep, okD = DependencyConsolidating(turns, count)
	}
	if okP {
		m.PeakTokens = &peak
	}
	if okD {
		m.Dependency = &dep
	}
	if r, ok := CompressionRatio(turns, count); ok {
		m.CompressionRatio = &r
	}
	return m
}

// RolloutPaperMetrics is ComputePaperMetrics for stored turns of a task: the
// reference fields from ReferenceTurns, the lenient count from RolloutAnswer,
// o200k counts, the rule of the policy (PaperRuleFull), and the turns' memory
// payloads as A-MEM's memories (Memories; eval.py adds the largest one's tokens
// to the peak).
func RolloutPaperMetrics(task Task, turns []Turn, tags Tags, policy string) PaperMetrics {
	gold := make([][]string, len(task.Objectives))
	for i, ob := range task.Objectives {
		gold[i] = ob.Gold
	}
	ans, ok := RolloutAnswer(turns)
	em := LenientExactMatch(ans, ok, gold)
	// A memory policy's payloads are A-MEM's "memories": eval.py adds the
	// largest one to the peak (Memories is nil for the other policies).
	return ComputePaperMetrics(ReferenceTurns(turns, tags), em, PaperRuleFull(policy), Memories(turns), O200kTokens)
}
