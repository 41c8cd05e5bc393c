package experiments

import (
	"math"
	"sort"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/mem1lab/mem1lab/storage"
)

// Stat is the mean of N values and its standard error over tasks.
//
// StdErr = s / √N with s the sample standard deviation (denominator N − 1); it is
// 0 when N < 2. Means are accumulated with Welford's update, so long series do
// not lose precision.
type Stat struct {
	N      int     `json:"n"`
	Mean   float64 `json:"mean"`
	StdErr float64 `json:"stderr"`
}

// welford accumulates a running mean and sum of squared deviations.
type welford struct {
	n    int
	mean float64
	m2   float64
}

func (w *welford) add(x float64) {
	w.n++
	d := x - w.mean
	w.mean += d / float64(w.n)
	w.m2 += d * (x - w.mean)
}

func (w welford) stat() Stat {
	s := Stat{N: w.n, Mean: w.mean}
	if w.n >= 2 {
		s.StdErr = math.Sqrt(w.m2/float64(w.n-1)) / math.Sqrt(float64(w.n))
	}
	return s
}

// CI is the t confidence interval of the mean at level (e.g. 0.95):
// Mean ± t_{1−α/2, N−1}·StdErr (distuv.StudentsT, α = 1 − level), the
// standard interval for a mean of N independent tasks (Student 1908). It is
// (NaN, NaN) when N < 2 and the point Mean when StdErr is 0.
func (s Stat) CI(level float64) (low, high float64) {
	if s.N < 2 {
		return math.NaN(), math.NaN()
	}
	if s.StdErr == 0 {
		return s.Mean, s.Mean
	}
	q := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(s.N - 1)}.Quantile(1 - (1-level)/2)
	return s.Mean - q*s.StdErr, s.Mean + q*s.StdErr
}

// Scaled divides the mean and the standard error by d (d > 0), e.g. to turn a
// summed EM into the mean per objective.
func (s Stat) Scaled(d float64) Stat {
	if d <= 0 {
		return s
	}
	return Stat{N: s.N, Mean: s.Mean / d, StdErr: s.StdErr / d}
}

// GroupKey identifies a group of rollouts. Model is "" when models are pooled.
type GroupKey struct {
	Model      string `json:"model"`
	Policy     string `json:"policy"`
	Objectives int    `json:"objectives"`
}

// Aggregate is one group's metrics over its done rollouts (one rollout per task,
// so the standard errors are over tasks). EM and F1 are summed over objectives
// (MEM1's scheme: an N-objective task scores 0..N); PeakTokens is the largest
// context+generation of a rollout in tokens; Seconds is wall time per rollout;
// Turns is turns used per rollout. Rollouts counts every row of the group,
// Failed the failed ones; the Stats' N is the number of done rollouts.
//
// PeakTokens is the request peak as served (server usage, the server's
// tokenizer or an estimate: storage.RolloutRow.TokenSource). PaperPeakTokens,
// Dependency and CompressionRatio are MEM1 eval.py's figures (o200k counts)
// averaged as eval.py averages them: over the done rollouts where the figure
// is not None, so a rollout whose lenient Exact_match is 0 is left out of
// PaperPeakTokens (their N says how many were averaged).
type Aggregate struct {
	GroupKey
	Rollouts         int  `json:"rollouts"`
	Failed           int  `json:"failed"`
	EM               Stat `json:"em"`
	F1               Stat `json:"f1"`
	PeakTokens       Stat `json:"peak_tokens"`
	Seconds          Stat `json:"seconds"`
	Turns            Stat `json:"turns"`
	PaperPeakTokens  Stat `json:"paper_peak_tokens"`
	Dependency       Stat `json:"dependency"`
	CompressionRatio Stat `json:"compression_ratio"`
}

// EMPerObjective is EM divided by the number of objectives (0..1).
func (a Aggregate) EMPerObjective() Stat { return a.EM.Scaled(float64(a.Objectives)) }

// F1PerObjective is F1 divided by the number of objectives (0..1).
func (a Aggregate) F1PerObjective() Stat { return a.F1.Scaled(float64(a.Objectives)) }

// Aggregates groups rollout rows by (model, policy, objectives) — by (policy,
// objectives) with Model "" when byModel is false — and computes each group's
// Stats over its done rollouts. Groups are sorted by model, policy, objectives.
func Aggregates(rows []storage.RolloutRow, byModel bool) []Aggregate {
	type acc struct {
		a                          Aggregate
		em, f1, peak, secs, nTurns welford
		paper, dep, ratio          welford
	}
	groups := map[GroupKey]*acc{}
	for _, r := range rows {
		k := GroupKey{Policy: r.Policy, Objectives: r.Objectives}
		if byModel {
			k.Model = r.Model
		}
		g := groups[k]
		if g == nil {
			g = &acc{a: Aggregate{GroupKey: k}}
			groups[k] = g
		}
		g.a.Rollouts++
		switch r.Status {
		case storage.StatusFailed:
			g.a.Failed++
		case storage.StatusDone:
			g.em.add(r.EM)
			g.f1.add(r.F1)
			g.peak.add(float64(r.PeakTokens))
			g.secs.add(r.Seconds)
			g.nTurns.add(float64(r.Turns))
			if p := r.Paper; p != nil {
				if p.PeakTokens != nil {
					g.paper.add(float64(*p.PeakTokens))
				}
				if p.Dependency != nil {
					g.dep.add(float64(*p.Dependency))
				}
				if p.CompressionRatio != nil {
					g.ratio.add(*p.CompressionRatio)
				}
			}
		}
	}
	out := make([]Aggregate, 0, len(groups))
	for _, g := range groups {
		a := g.a
		a.EM, a.F1, a.PeakTokens, a.Seconds, a.Turns = g.em.stat(), g.f1.stat(), g.peak.stat(), g.secs.stat(), g.nTurns.stat()
		a.PaperPeakTokens, a.Dependency, a.CompressionRatio = g.paper.stat(), g.dep.stat(), g.ratio.stat()
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GroupKey.less(out[j].GroupKey) })
	return out
}

func (k GroupKey) less(o GroupKey) bool {
	if k.Model != o.Model {
		return k.Model < o.Model
	}
	if k.Policy != o.Policy {
		return k.Policy < o.Policy
	}
	return k.Objectives < o.Objectives
}

// ContextPoint is the context size at one turn: Turn is 1-based; Tokens is the
// mean (with standard error) over rollouts of the turn's context + generation
// tokens (core.Turn.Tokens), over the rollouts that reached that turn.
type ContextPoint struct {
	Turn   int  `json:"turn"`
	Tokens Stat `json:"tokens"`
}

// ContextCurve is the per-turn context size of one group, turns in order.
type ContextCurve struct {
	GroupKey
	Points []ContextPoint `json:"points"`
}

// CurveBuilder accumulates per-turn token counts into ContextCurves with memory
// proportional to groups × turns, not to turns stored. Feed it with
// storage.Store.EachTurnTokens. The zero value is not usable: use NewCurveBuilder.
type CurveBuilder struct {
	byModel bool
	acc     map[GroupKey][]welford
}

// NewCurveBuilder starts an empty builder; byModel as in Aggregates.
func NewCurveBuilder(byModel bool) *CurveBuilder {
	return &CurveBuilder{byModel: byModel, acc: map[GroupKey][]welford{}}
}

// Add counts one turn. It always returns nil (its signature fits EachTurnTokens).
func (b *CurveBuilder) Add(t storage.TurnTokens) error {
	if t.Index < 0 {
		return nil
	}
	k := GroupKey{Policy: t.Policy, Objectives: t.Objectives}
	if b.byModel {
		k.Model = t.Model
	}
	ws := b.acc[k]
	for len(ws) <= t.Index {
		ws = append(ws, welford{})
	}
	ws[t.Index].add(float64(t.PromptTokens + t.CompletionTokens))
	b.acc[k] = ws
	return nil
}

// Curves returns one curve per group, sorted as Aggregates sorts groups; turns
// no rollout reached are left out.
func (b *CurveBuilder) Curves() []ContextCurve {
	out := make([]ContextCurve, 0, len(b.acc))
	for k, ws := range b.acc {
		c := ContextCurve{GroupKey: k}
		for i, w := range ws {
			if w.n > 0 {
				c.Points = append(c.Points, ContextPoint{Turn: i + 1, Tokens: w.stat()})
			}
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GroupKey.less(out[j].GroupKey) })
	return out
}
