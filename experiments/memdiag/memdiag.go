// Package memdiag computes memory diagnostics of stored rollouts: what each
// turn's context was made of, which gold facts the internal state kept and
// dropped, accuracy by objective position, and how the internal state grows.
// Everything is computed from stored turns (core.Turn), so it works on old runs
// and imported trajectories alike. The package is pure: token counts come
// from an Encoder (O200K for the paper's o200k_base counts).
package memdiag

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"

	"github.com/tiktoken-go/tokenizer"
	"gonum.org/v1/gonum/stat"

	"github.com/mem1lab/mem1lab/core"
)

// Encoder splits text into token pieces whose concatenation is the text (a
// byte-level BPE's tokens as strings). Composition attributes each piece to
// the part of the context its first byte lies in, so the parts always sum to
// the context's token count.
type Encoder func(text string) ([]string, error)

var (
	o200kOnce sync.Once
	o200k     tokenizer.Codec
	o200kErr  error
)

// O200K is the o200k_base encoder (tiktoken's, as MEM1's eval.py counts peak
// tokens with gpt-4o-mini's encoding), offline via
// github.com/tiktoken-go/tokenizer.
func O200K(text string) ([]string, error) {
	o200kOnce.Do(func() { o200k, o200kErr = tokenizer.Get(tokenizer.O200kBase) })
	if o200kErr != nil {
		return nil, o200kErr
	}
	_, pieces, err := o200k.Encode(text)
	return pieces, err
}

// Part kinds of a context, in the order a context holds them.
const (
	PartPrompt      = "prompt"      // the rendered task prompt
	PartState       = "state"       // carried internal states (<think>…</think> of carried responses)
	PartResponses   = "responses"   // the rest of the carried responses (actions, stray text)
	PartInformation = "information" // carried <information> blocks
	PartMemory      = "memory"      // memory payloads (A-MEM notes, summaries); none for mem1/full/window
)

// Parts lists the part kinds in order.
var Parts = []string{PartPrompt, PartState, PartResponses, PartInformation, PartMemory}

// Segment is a piece of a context and the part it belongs to.
type Segment struct {
	Part string
	Text string
}

// Composition is one turn's context split into parts, in tokens. Turn is
// 1-based; Tokens is the token count of the whole context text (the sum of
// the parts, always).
type Composition struct {
	Turn   int            `json:"turn"`
	Tokens int            `json:"tokens"`
	Parts  map[string]int `json:"parts"`
}

// splitState splits a carried response into its first complete think block
// (tags included) and the rest, as core.Tags.Parse finds the internal state.
func splitState(response, think string) (before, state, after string) {
	open, close := "<"+think+">", "</"+think+">"
	i := strings.Index(response, open)
	if i < 0 {
		return response, "", ""
	}
	j := strings.Index(response[i+len(open):], close)
	if j < 0 {
		return response, "", ""
	}
	end := i + len(open) + j + len(close)
	return response[:i], response[i:end], response[end:]
}

// ContextSegments rebuilds the context of every turn of a rollout as the turn
// loop built it (core.Agent.Run: prompt + policy.Keep(exchanges so far),
// exchanges from core.Tags.Exchanges) and splits each into segments. The
// model adapter's chat wrapper (a Qwen prefix in completions mode) is not
// part of it.
func ContextSegments(prompt string, turns []core.Turn, policy core.Policy, tags core.Tags) [][]Segment {
	ex := tags.Exchanges(turns)
	out := make([][]Segment, len(turns))
	for i := range turns {
		segs := []Segment{{PartPrompt, prompt}}
		for _, e := range policy.Keep(ex[:i]) {
			before, state, after := splitState(e.Response, tags.Think)
			segs = append(segs, Segment{PartResponses, before}, Segment{PartState, state}, Segment{PartResponses, after},
				Segment{PartInformation, e.Information})
		}
		out[i] = segs
	}
	return out
}

// Compose counts the tokens of each turn's segments (ContextSegments): the
// whole context is encoded once and each token counts towards the segment
// its first byte lies in. Errors are the encoder's.
func Compose(contexts [][]Segment, enc Encoder) ([]Composition, error) {
	out := make([]Composition, len(contexts))
	for i, segs := range contexts {
		var b strings.Builder
		ends := make([]int, len(segs))
		for k, s := range segs {
			b.WriteString(s.Text)
			ends[k] = b.Len()
		}
		pieces, err := enc(b.String())
		if err != nil {
			return nil, fmt.Errorf("turn %d: %w", i+1, err)
		}
		c := Composition{Turn: i + 1, Tokens: len(pieces), Parts: map[string]int{}}
		for _, p := range Parts {
			c.Parts[p] = 0
		}
		off, k := 0, 0
		for _, p := range pieces {
			for k < len(segs)-1 && off >= ends[k] {
				k++
			}
			c.Parts[segs[k].Part]++
			off += len(p)
		}
		out[i] = c
	}
	return out, nil
}

// normalize is SQuAD's answer normalisation (core.Normalize, scheme squad),
// padded with spaces so that whole-word containment is a substring test.
func normalize(s string) string {
	n, _ := core.Normalize(core.SchemeSQuAD, s)
	return " " + n + " "
}

// contains reports whether text holds one of the aliases as whole words after
// normalisation.
func contains(text string, aliases []string) bool {
	t := normalize(text)
	for _, a := range aliases {
		na := normalize(a)
		if strings.TrimSpace(na) != "" && strings.Contains(t, na) {
			return true
		}
	}
	return false
}

// FactRetention is what the internal state did with one objective's gold
// fact. Objective is the 1-based position in the task. Retrieved is the
// 1-based turn whose information block first held a gold alias (0: never).
// InState[j] tells whether the internal state of turn Retrieved+1+j holds an
// alias (the states after the retrieval, to the last turn). Forgetting lists
// the turns at which the fact left the state (a state without it right after
// the retrieval or after a state with it). Answered tells whether the final
// answer for this objective holds an alias.
type FactRetention struct {
	Objective  int    `json:"objective"`
	Retrieved  int    `json:"retrieved"`
	InState    []bool `json:"in_state"`
	Forgetting []int  `json:"forgetting"`
	Answered   bool   `json:"answered"`
}

// Retention follows each objective's gold aliases through the turns: matches
// are whole-word, after SQuAD normalisation (lower-case, no punctuation or
// articles). answers are the final per-objective answers (core.Score.Answers;
// missing ones count as not answered).
func Retention(task core.Task, turns []core.Turn, answers []string) []FactRetention {
	out := make([]FactRetention, len(task.Objectives))
	for k, o := range task.Objectives {
		r := FactRetention{Objective: k + 1, InState: []bool{}, Forgetting: []int{}}
		for _, t := range turns {
			if t.Information != "" && contains(t.Information, o.Gold) {
				r.Retrieved = t.Index + 1
				break
			}
		}
		if r.Retrieved > 0 {
			held := true
			for _, t := range turns {
				if t.Index+1 <= r.Retrieved {
					continue
				}
				in := contains(t.InternalState, o.Gold)
				r.InState = append(r.InState, in)
				if held && !in {
					r.Forgetting = append(r.Forgetting, t.Index+1)
				}
				held = in
			}
		}
		if k < len(answers) {
			r.Answered = contains(answers[k], o.Gold)
		}
		out[k] = r
	}
	return out
}

// CurvePoint is one point of a retention curve: of the N retrieved gold facts
// whose rollout went on for at least K more turns, Share were in the internal
// state K turns after the retrieval.
type CurvePoint struct {
	K     int     `json:"k"`
	N     int     `json:"n"`
	Share float64 `json:"share"`
}

// RetentionCurve pools FactRetentions (of one policy, say) into the share of
// retrieved facts still in the state k = 1, 2, … turns later; points with no
// fact are left out.
func RetentionCurve(facts []FactRetention) []CurvePoint {
	var n, kept []int
	for _, f := range facts {
		for j, in := range f.InState {
			for len(n) <= j {
				n, kept = append(n, 0), append(kept, 0)
			}
			n[j]++
			if in {
				kept[j]++
			}
		}
	}
	var out []CurvePoint
	for j := range n {
		out = append(out, CurvePoint{K: j + 1, N: n[j], Share: float64(kept[j]) / float64(n[j])})
	}
	return out
}

// PositionAccuracy is the mean EM of the objective at 1-based Position over N
// tasks with Objectives objectives, with its standard error s/√N (0 for
// N < 2).
type PositionAccuracy struct {
	Objectives int     `json:"objectives"`
	Position   int     `json:"position"`
	N          int     `json:"n"`
	EM         float64 `json:"em"`
	StdErr     float64 `json:"stderr"`
}

// AccuracyByPosition groups per-objective EM marks (one slice per rollout,
// objectives in task order, as core.Score.PerObjective holds them) by
// (objectives count, position); sorted by objectives then position.
func AccuracyByPosition(perObjective [][]float64) []PositionAccuracy {
	type key struct{ n, p int }
	vals := map[key][]float64{}
	for _, po := range perObjective {
		for p, em := range po {
			k := key{len(po), p + 1}
			vals[k] = append(vals[k], em)
		}
	}
	out := make([]PositionAccuracy, 0, len(vals))
	for k, v := range vals {
		a := PositionAccuracy{Objectives: k.n, Position: k.p, N: len(v), EM: stat.Mean(v, nil)}
		if len(v) >= 2 {
			a.StdErr = stat.StdDev(v, nil) / math.Sqrt(float64(len(v)))
		}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Objectives != out[j].Objectives {
			return out[i].Objectives < out[j].Objectives
		}
		return out[i].Position < out[j].Position
	})
	return out
}

// StateGrowth is the size of a rollout's internal state per turn (Tokens[i]
// for turn i+1, the think text's tokens) and its least-squares slope in
// tokens per turn (gonum stat.LinearRegression of tokens on turn; 0 for fewer
// than two turns).
type StateGrowth struct {
	Tokens []int   `json:"tokens"`
	Slope  float64 `json:"slope"`
}

// Growth measures the internal state of each turn with enc.
func Growth(turns []core.Turn, enc Encoder) (StateGrowth, error) {
	g := StateGrowth{Tokens: make([]int, len(turns))}
	xs := make([]float64, len(turns))
	ys := make([]float64, len(turns))
	for i, t := range turns {
		p, err := enc(t.InternalState)
		if err != nil {
			return StateGrowth{}, fmt.Errorf("turn %d: %w", i+1, err)
		}
		g.Tokens[i] = len(p)
		xs[i], ys[i] = float64(i+1), float64(len(p))
	}
	if len(turns) >= 2 {
		_, g.Slope = stat.LinearRegression(xs, ys, nil, false)
	}
	return g, nil
}
