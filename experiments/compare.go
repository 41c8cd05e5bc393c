package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/gonum/stat"

	"github.com/mem1lab/mem1lab/experiments/stats"
	"github.com/mem1lab/mem1lab/storage"
)

// CompareFactors are the factors a comparison may change, one at a time:
// policy and model are the rollout's; template, retriever and endpoint are the
// experiment's settings (template "" and retriever "" read as "default";
// endpoint is the base URL serving the rollout's model).
var CompareFactors = []string{"policy", "model", "template", "retriever", "endpoint"}

// CompareMetrics are the metrics a comparison reports, per task:
//
//	em    exact match per objective, EM/N (0..1; the mean of the task's objectives)
//	f1    F1 per objective, F1/N (0..1)
//	peak  peak tokens of the rollout (ComparePeakTokens)
//	time  wall seconds of the rollout
var CompareMetrics = []string{"em", "f1", "peak", "time"}

// CompareSetting selects rollouts by factor values, e.g. {policy: mem1}.
type CompareSetting map[string]string

// ParseCompareSetting reads "policy=mem1" or "policy=mem1,model=qwen" (factors from
// CompareFactors). An unknown factor, a missing "=" or a repeated factor is an
// error naming it.
func ParseCompareSetting(s string) (CompareSetting, error) {
	out := CompareSetting{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return nil, fmt.Errorf("setting %q: want FACTOR=VALUE (factors: %s)", part, strings.Join(CompareFactors, ", "))
		}
		if !isFactor(k) {
			return nil, fmt.Errorf("setting %q: unknown factor %q (factors: %s)", part, k, strings.Join(CompareFactors, ", "))
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("setting %q: factor %q given twice", s, k)
		}
		out[k] = v
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("setting %q: empty (e.g. policy=mem1)", s)
	}
	return out, nil
}

func isFactor(k string) bool {
	for _, f := range CompareFactors {
		if f == k {
			return true
		}
	}
	return false
}

// String is the setting as "k=v,k=v", factors in CompareFactors order.
func (s CompareSetting) String() string {
	var parts []string
	for _, f := range CompareFactors {
		if v, ok := s[f]; ok {
			parts = append(parts, f+"="+v)
		}
	}
	return strings.Join(parts, ",")
}

// CompareUnit is one done rollout as a comparison sees it. Factors holds every
// factor of CompareFactors. EM and F1 are summed over objectives (0..N);
// ObjectiveEM and ObjectiveF1 are the per-objective marks in objective order
// (nil when the score was stored without them).
type CompareUnit struct {
	ExperimentID int64
	RolloutID    int64
	TaskKey      string
	Objectives   int
	Factors      map[string]string
	EM, F1       float64
	PeakTokens   float64
	Seconds      float64
	ObjectiveEM  []float64
	ObjectiveF1  []float64
}

// Metric is the unit's value of metric m (CompareMetrics); NaN for an unknown m.
func (u CompareUnit) Metric(m string) float64 {
	n := float64(max(u.Objectives, 1))
	switch m {
	case "em":
		return u.EM / n
	case "f1":
		return u.F1 / n
	case "peak":
		return u.PeakTokens
	case "time":
		return u.Seconds
	}
	return math.NaN()
}

// ComparePeakTokens is the peak-token figure comparisons use for a rollout:
// today the stored peak_tokens (largest context + generation of a turn). It is
// the one place to switch to the paper's o200k count when the store has it.
func ComparePeakTokens(r storage.RolloutExport) float64 { return float64(r.PeakTokens) }

// CompareStore is what LoadCompareUnits reads (*storage.Store satisfies it).
type CompareStore interface {
	Experiment(ctx context.Context, id int64) (storage.ExperimentRow, error)
	EachRollout(ctx context.Context, expID int64, fn func(storage.RolloutExport) error) error
}

// LoadCompareUnits reads the done rollouts of the experiments expIDs as
// CompareUnits (failed, cancelled and unfinished rollouts are left out). An
// unknown experiment is an error wrapping storage.ErrNotFound.
func LoadCompareUnits(ctx context.Context, st CompareStore, expIDs ...int64) ([]CompareUnit, error) {
	var out []CompareUnit
	for _, id := range expIDs {
		e, err := st.Experiment(ctx, id)
		if err != nil {
			return nil, err
		}
		cfg := experimentConfig(e)
		var raw map[string]any
		_ = json.Unmarshal([]byte(e.ConfigJSON), &raw)
		retriever, _ := raw["retriever"].(string)
		err = st.EachRollout(ctx, id, func(r storage.RolloutExport) error {
			if r.Status != storage.StatusDone {
				return nil
			}
			u := CompareUnit{ExperimentID: r.ExperimentID, RolloutID: r.ID, TaskKey: r.TaskKey, Objectives: r.Objectives,
				EM: r.EM, F1: r.F1, PeakTokens: ComparePeakTokens(r), Seconds: r.Seconds,
				Factors: map[string]string{"policy": r.Policy, "model": r.Model, "template": orDefault(cfg.Template),
					"retriever": orDefault(retriever), "endpoint": endpointOf(cfg, r.Model)}}
			if len(r.Score.PerObjective) > 0 {
				for _, o := range r.Score.PerObjective {
					u.ObjectiveEM = append(u.ObjectiveEM, o.EM)
					u.ObjectiveF1 = append(u.ObjectiveF1, o.F1)
				}
			}
			out = append(out, u)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
}

// endpointOf is the base URL that served model in cfg.
func endpointOf(cfg RunConfig, model string) string {
	for _, p := range cfg.Endpoints {
		if p.Model == model {
			return p.URL
		}
	}
	return cfg.Endpoint
}

// CompareOptions tune Compare. Zero values take the defaults.
type CompareOptions struct {
	Level     float64 // confidence level, 0.95 by default
	Resamples int     // bootstrap and sign-flip resamples, stats.DefaultResamples by default
	Seed      uint64  // seed of the bootstrap and sign-flip generators (0 is a valid seed)
}

// Test labels of ComparisonRow.Test.
const (
	TestPaired = "paired t"
	TestWelch  = "welch t (unpaired)"
	TestNone   = "none"
)

// ComparisonRow is one objectives count (or the pool of all, Objectives 0 and
// Pooled true) of a comparison of one metric. Fields that a row cannot have
// are NaN (a one-pair row has no interval; an unpaired row no bootstrap of
// pairs, no sign-flip p, no McNemar).
//
// Paired rows (Test = TestPaired): the unit is a task (one pair = the same
// task key run under both settings, every other factor equal). N pairs;
// MeanA, MeanB the metric's means over the pairs; Delta the mean of the
// per-task differences a − b; [CILow, CIHigh] its paired-t 95% interval
// (stats.OneSampleT); [BootLow, BootHigh] the seeded paired bootstrap
// percentile interval (stats.PairedBootstrap); P the paired-t p-value; PPerm
// the sign-flip permutation p-value (stats.SignFlipP); PWilcoxon Wilcoxon's
// signed-rank p-value (stats.WilcoxonSignedRankP); Wins, Ties, Losses the
// tasks where a is above, equal to or below b. UnpairedA/UnpairedB count
// rollouts of each side with no partner (left out).
//
// For em and f1 the mean over objectives is given too: ObjN objectives,
// ObjDelta the mean per-objective difference, ObjSE its standard error
// clustered by task and [ObjCILow, ObjCIHigh] (stats.ClusteredMean; Miller
// 2024, arXiv 2411.00640). In a row of one objectives count ObjDelta equals
// Delta; in the pooled row tasks weigh by their objectives. For em, McNemar's
// test on per-objective EM: McNemarB objectives right under a only,
// McNemarC right under b only, McNemarP (exact binomial for ≤ 25 discordant).
//
// Unpaired rows (Test = TestWelch, when the two sides share no task): N is the
// rollouts of both sides, Delta = MeanA − MeanB, the interval and P are
// Welch's (stats.WelchT), the bootstrap resamples each side independently
// (stats.UnpairedBootstrap); no win/tie/loss, sign-flip or McNemar.
//
// PHolm is P adjusted by Holm's method across the rows of one objectives count
// (the objectives grid); the pooled row is a single test: its PHolm is its P.
type ComparisonRow struct {
	Metric               string
	Objectives           int
	Pooled               bool
	N                    int
	MeanA, MeanB, Delta  float64
	CILow, CIHigh        float64
	BootLow, BootHigh    float64
	P, PHolm, PPerm      float64
	PWilcoxon            float64
	Wins, Ties, Losses   int
	Test                 string
	UnpairedA, UnpairedB int
	ObjN                 int
	ObjDelta, ObjSE      float64
	ObjCILow, ObjCIHigh  float64
	McNemarB, McNemarC   int
	McNemarP             float64
	McNemarExact         bool
	// PairRollouts lists, for paired rows, each pair's rollout ids (a, b; the
	// first rollout when a task ran more than once) with its difference, largest
	// |difference| first.
	PairRollouts []PairDelta
}

// PairDelta is one pair of a comparison: its task, the rollouts of a and b and
// the metric's difference a − b.
type PairDelta struct {
	TaskKey    string
	A, B       int64
	Delta      float64
	Objectives int
}

// Comparison is a comparison of two settings on one metric: the factor they
// differ in, the settings as given, and one row per objectives count
// (ascending) followed by the pooled row.
type Comparison struct {
	Factor string
	A, B   CompareSetting
	Metric string
	Rows   []ComparisonRow
}

// ErrNotOneFactor is returned when the two settings do not differ in exactly
// one factor.
var ErrNotOneFactor = errors.New("a comparison changes exactly one factor")

// resolveSettings finds the factor a and b differ in and completes both with
// the factors only one of them names (those hold for both sides).
func resolveSettings(a, b CompareSetting) (factor string, fa, fb CompareSetting, err error) {
	fa, fb = CompareSetting{}, CompareSetting{}
	var diff []string
	for _, f := range CompareFactors {
		va, oka := a[f]
		vb, okb := b[f]
		switch {
		case oka && okb && va != vb:
			diff = append(diff, f)
			fa[f], fb[f] = va, vb
		case oka:
			fa[f], fb[f] = va, va
		case okb:
			fa[f], fb[f] = vb, vb
		}
	}
	for k := range a {
		if !isFactor(k) {
			return "", nil, nil, fmt.Errorf("unknown factor %q", k)
		}
	}
	for k := range b {
		if !isFactor(k) {
			return "", nil, nil, fmt.Errorf("unknown factor %q", k)
		}
	}
	switch len(diff) {
	case 1:
		return diff[0], fa, fb, nil
	case 0:
		return "", nil, nil, fmt.Errorf("%w: --a %s and --b %s select the same setting", ErrNotOneFactor, a, b)
	default:
		return "", nil, nil, fmt.Errorf("%w: --a %s and --b %s differ in %s", ErrNotOneFactor, a, b, strings.Join(diff, " and "))
	}
}

func (s CompareSetting) matches(u CompareUnit) bool {
	for k, v := range s {
		if u.Factors[k] != v {
			return false
		}
	}
	return true
}

// side is one setting's rollouts of one pairing key (replicates averaged).
type side struct {
	units []CompareUnit
}

func (s side) value(m string) float64 {
	t := 0.0
	for _, u := range s.units {
		t += u.Metric(m)
	}
	return t / float64(len(s.units))
}

// objectives is the per-objective marks of the first rollout (nil if none).
func (s side) objectives(m string) []float64 {
	if m == "f1" {
		return s.units[0].ObjectiveF1
	}
	return s.units[0].ObjectiveEM
}

// pairKey is the task plus every factor but the compared one. The endpoint
// counts only when the settings name it (the same model served from two
// addresses, as in two runs on different days, still pairs).
func pairKey(u CompareUnit, factor string, named CompareSetting) string {
	var b strings.Builder
	b.WriteString(u.TaskKey)
	fmt.Fprintf(&b, "\x00%d", u.Objectives)
	for _, f := range CompareFactors {
		if f == factor {
			continue
		}
		if _, ok := named[f]; f == "endpoint" && !ok {
			continue
		}
		b.WriteString("\x00" + u.Factors[f])
	}
	return b.String()
}

// Compare compares setting a with setting b on metric (CompareMetrics) over
// units (LoadCompareUnits). The settings must differ in exactly one factor
// (ErrNotOneFactor); a factor named by one side only holds for both. Rollouts
// pair when their task key, objectives count and every other factor are
// equal (the endpoint only when named); replicate rollouts of one key and side are averaged (McNemar and the
// clustered mean use the first). An objectives count with pairs is compared
// paired on its pairs; one where the sides share no task falls back to Welch's
// t (Test says which). An error names an unknown metric, or a side that
// selects no rollout.
func Compare(units []CompareUnit, a, b CompareSetting, metric string, opt CompareOptions) (Comparison, error) {
	known := false
	for _, m := range CompareMetrics {
		known = known || m == metric
	}
	if !known {
		return Comparison{}, fmt.Errorf("metric %q: want one of %s", metric, strings.Join(CompareMetrics, ", "))
	}
	factor, fa, fb, err := resolveSettings(a, b)
	if err != nil {
		return Comparison{}, err
	}
	if opt.Level <= 0 || opt.Level >= 1 {
		opt.Level = 0.95
	}
	if opt.Resamples <= 0 {
		opt.Resamples = stats.DefaultResamples
	}
	byN := map[int][2]map[string]*side{}
	var order [2][]string
	count := [2]int{}
	for _, u := range units {
		i := -1
		switch {
		case fa.matches(u):
			i = 0
		case fb.matches(u):
			i = 1
		default:
			continue
		}
		count[i]++
		g, ok := byN[u.Objectives]
		if !ok {
			g = [2]map[string]*side{{}, {}}
			byN[u.Objectives] = g
		}
		k := pairKey(u, factor, fa)
		s := g[i][k]
		if s == nil {
			s = &side{}
			g[i][k] = s
			order[i] = append(order[i], k)
		}
		s.units = append(s.units, u)
	}
	if count[0] == 0 {
		return Comparison{}, fmt.Errorf("--a %s selects no finished rollout", a)
	}
	if count[1] == 0 {
		return Comparison{}, fmt.Errorf("--b %s selects no finished rollout", b)
	}
	ns := make([]int, 0, len(byN))
	for n := range byN {
		ns = append(ns, n)
	}
	sort.Ints(ns)
	cmp := Comparison{Factor: factor, A: fa, B: fb, Metric: metric}
	var allPairs []pairing
	var allA, allB []float64
	for _, n := range ns {
		g := byN[n]
		ps, ua, ub := pairUp(g, order)
		allPairs = append(allPairs, ps...)
		va, vb := sideValues(g[0], metric), sideValues(g[1], metric)
		allA, allB = append(allA, va...), append(allB, vb...)
		row := compareRow(ps, va, vb, metric, opt)
		row.Objectives = n
		row.UnpairedA, row.UnpairedB = ua, ub
		cmp.Rows = append(cmp.Rows, row)
	}
	ps := make([]float64, len(cmp.Rows))
	for i, r := range cmp.Rows {
		ps[i] = r.P
	}
	for i, p := range stats.Holm(ps) {
		cmp.Rows[i].PHolm = p
	}
	pooled := compareRow(allPairs, allA, allB, metric, opt)
	pooled.Pooled = true
	pooled.PHolm = pooled.P
	for _, r := range cmp.Rows {
		if len(allPairs) > 0 {
			pooled.UnpairedA += r.UnpairedA
			pooled.UnpairedB += r.UnpairedB
		}
	}
	cmp.Rows = append(cmp.Rows, pooled)
	return cmp, nil
}

type pairing struct {
	a, b *side
}

// pairUp matches the keys both sides hold, in a's order; it counts the
// rollouts left without a partner on each side.
func pairUp(g [2]map[string]*side, order [2][]string) (ps []pairing, ua, ub int) {
	for _, k := range order[0] {
		sa, ok := g[0][k]
		if !ok {
			continue
		}
		if sb, ok := g[1][k]; ok {
			ps = append(ps, pairing{sa, sb})
		} else {
			ua += len(sa.units)
		}
	}
	for k, sb := range g[1] {
		if _, ok := g[0][k]; !ok {
			ub += len(sb.units)
		}
	}
	return ps, ua, ub
}

func sideValues(m map[string]*side, metric string) []float64 {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]float64, 0, len(keys))
	for _, k := range keys {
		s := m[k]
		for _, u := range s.units {
			out = append(out, u.Metric(metric))
		}
	}
	return out
}

// mean is gonum's stat.Mean, NaN for no values (0/0).
func mean(xs []float64) float64 { return stat.Mean(xs, nil) }

// tieTolerance is how close two values of a pair must be to count as a tie.
const tieTolerance = 1e-9

func compareRow(ps []pairing, va, vb []float64, metric string, opt CompareOptions) ComparisonRow {
	nan := math.NaN()
	row := ComparisonRow{Metric: metric, ObjDelta: nan, ObjSE: nan, ObjCILow: nan, ObjCIHigh: nan, McNemarP: nan, PPerm: nan, PWilcoxon: nan}
	if len(ps) == 0 {
		row.Test = TestWelch
		if len(va) == 0 || len(vb) == 0 {
			row.Test = TestNone
		}
		w := stats.WelchT(va, vb, opt.Level)
		bo := stats.UnpairedBootstrap(va, vb, opt.Resamples, opt.Seed, opt.Level)
		row.N, row.MeanA, row.MeanB, row.Delta = len(va)+len(vb), mean(va), mean(vb), w.Mean
		row.CILow, row.CIHigh, row.P, row.BootLow, row.BootHigh = w.Low, w.High, w.P, bo.Low, bo.High
		return row
	}
	row.Test = TestPaired
	a := make([]float64, len(ps))
	b := make([]float64, len(ps))
	for i, p := range ps {
		a[i], b[i] = p.a.value(metric), p.b.value(metric)
	}
	d, _ := stats.Differences(a, b)
	t := stats.OneSampleT(d, opt.Level)
	bo := stats.PairedBootstrap(d, opt.Resamples, opt.Seed, opt.Level)
	row.N, row.MeanA, row.MeanB, row.Delta = len(ps), mean(a), mean(b), t.Mean
	row.CILow, row.CIHigh, row.P = t.Low, t.High, t.P
	row.BootLow, row.BootHigh = bo.Low, bo.High
	row.PPerm = stats.SignFlipP(d, opt.Resamples, opt.Seed)
	row.PWilcoxon = stats.WilcoxonSignedRankP(d)
	row.Wins, row.Ties, row.Losses = stats.WinTieLoss(d, tieTolerance)
	for i, p := range ps {
		row.PairRollouts = append(row.PairRollouts, PairDelta{TaskKey: p.a.units[0].TaskKey, A: p.a.units[0].RolloutID,
			B: p.b.units[0].RolloutID, Delta: d[i], Objectives: p.a.units[0].Objectives})
	}
	sort.SliceStable(row.PairRollouts, func(i, j int) bool {
		return math.Abs(row.PairRollouts[i].Delta) > math.Abs(row.PairRollouts[j].Delta)
	})
	if metric != "em" && metric != "f1" {
		return row
	}
	var clusters [][]float64
	mb, mc := 0, 0
	complete := true
	for _, p := range ps {
		oa, ob := p.a.objectives(metric), p.b.objectives(metric)
		if len(oa) == 0 || len(oa) != len(ob) {
			complete = false
			break
		}
		c := make([]float64, len(oa))
		for k := range oa {
			c[k] = oa[k] - ob[k]
			if metric == "em" {
				ra, rb := oa[k] >= 0.5, ob[k] >= 0.5
				switch {
				case ra && !rb:
					mb++
				case rb && !ra:
					mc++
				}
			}
		}
		clusters = append(clusters, c)
	}
	if !complete {
		return row
	}
	cl := stats.ClusteredMean(clusters, opt.Level)
	row.ObjN, row.ObjDelta, row.ObjSE, row.ObjCILow, row.ObjCIHigh = cl.N, cl.Mean, cl.SE, cl.Low, cl.High
	if metric == "em" {
		mn := stats.McNemar(mb, mc)
		row.McNemarB, row.McNemarC, row.McNemarP, row.McNemarExact = mn.B, mn.C, mn.P, mn.Exact
	}
	return row
}

// ComparisonJSON is a ComparisonRow as `mem1lab compare --json` prints it:
// undefined numbers are null, Objectives is null for the pooled row.
type ComparisonJSON struct {
	Metric     string   `json:"metric"`
	Factor     string   `json:"factor"`
	A          string   `json:"a"`
	B          string   `json:"b"`
	Objectives *int     `json:"objectives"`
	N          int      `json:"n"`
	MeanA      *float64 `json:"mean_a"`
	MeanB      *float64 `json:"mean_b"`
	Delta      *float64 `json:"delta"`
	CILow      *float64 `json:"ci_low"`
	CIHigh     *float64 `json:"ci_high"`
	BootLow    *float64 `json:"boot_ci_low"`
	BootHigh   *float64 `json:"boot_ci_high"`
	P          *float64 `json:"p"`
	PHolm      *float64 `json:"p_holm"`
	PPerm      *float64 `json:"p_perm"`
	Wins       int      `json:"wins"`
	Ties       int      `json:"ties"`
	Losses     int      `json:"losses"`
	Test       string   `json:"test"`
	UnpairedA  int      `json:"unpaired_a"`
	UnpairedB  int      `json:"unpaired_b"`
	ObjN       int      `json:"objective_n"`
	ObjDelta   *float64 `json:"objective_delta"`
	ObjSE      *float64 `json:"objective_se_clustered"`
	ObjCILow   *float64 `json:"objective_ci_low"`
	ObjCIHigh  *float64 `json:"objective_ci_high"`
	McNemarB   int      `json:"mcnemar_b"`
	McNemarC   int      `json:"mcnemar_c"`
	McNemarP   *float64 `json:"mcnemar_p"`
	PWilcoxon  *float64 `json:"p_wilcoxon"`
}

func num(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// JSON turns the comparison's rows into ComparisonJSON, in order.
func (c Comparison) JSON() []ComparisonJSON {
	out := make([]ComparisonJSON, 0, len(c.Rows))
	for _, r := range c.Rows {
		j := ComparisonJSON{Metric: c.Metric, Factor: c.Factor, A: c.A.String(), B: c.B.String(), N: r.N,
			MeanA: num(r.MeanA), MeanB: num(r.MeanB), Delta: num(r.Delta), CILow: num(r.CILow), CIHigh: num(r.CIHigh),
			BootLow: num(r.BootLow), BootHigh: num(r.BootHigh), P: num(r.P), PHolm: num(r.PHolm), PPerm: num(r.PPerm),
			Wins: r.Wins, Ties: r.Ties, Losses: r.Losses, Test: r.Test, UnpairedA: r.UnpairedA, UnpairedB: r.UnpairedB,
			ObjN: r.ObjN, ObjDelta: num(r.ObjDelta), ObjSE: num(r.ObjSE), ObjCILow: num(r.ObjCILow), ObjCIHigh: num(r.ObjCIHigh),
			McNemarB: r.McNemarB, McNemarC: r.McNemarC, McNemarP: num(r.McNemarP),
			PWilcoxon: num(r.PWilcoxon)}
		if !r.Pooled {
			n := r.Objectives
			j.Objectives = &n
		}
		out = append(out, j)
	}
	return out
}

// ComparisonColumns is the header of the comparisons CSV, one row per metric
// and objectives count (the pooled row has an empty objectives), as
// ComparisonRow and ComparisonJSON describe:
//
//	metric, factor, a, b, objectives, n, mean_a, mean_b, delta (a − b)
//	ci_low, ci_high                 paired t 95% (Welch's for unpaired rows)
//	boot_ci_low, boot_ci_high       seeded bootstrap percentile 95%
//	p, p_holm, p_perm               t p-value, Holm-adjusted over objectives counts, sign-flip p
//	wins, ties, losses, test        tasks where a is above/equal/below b; "paired t" or "welch t (unpaired)"
//	unpaired_a, unpaired_b          rollouts left out for want of a partner
//	objective_n, objective_delta, objective_se_clustered, objective_ci_low, objective_ci_high
//	                                em, f1: mean over objectives, SE clustered by task
//	mcnemar_b, mcnemar_c, mcnemar_p em: McNemar on per-objective EM
//	p_wilcoxon                      Wilcoxon signed-rank p (paired rows)
var ComparisonColumns = []string{
	"metric", "factor", "a", "b", "objectives", "n", "mean_a", "mean_b", "delta", "ci_low", "ci_high",
	"boot_ci_low", "boot_ci_high", "p", "p_holm", "p_perm", "wins", "ties", "losses", "test",
	"unpaired_a", "unpaired_b", "objective_n", "objective_delta", "objective_se_clustered",
	"objective_ci_low", "objective_ci_high", "mcnemar_b", "mcnemar_c", "mcnemar_p", "p_wilcoxon",
}

func fmtNum(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return ""
	}
	return fmtFloat(x)
}

// WriteComparisonsCSV writes the rows of cmps, in order, as CSV with
// ComparisonColumns (undefined numbers are empty).
func WriteComparisonsCSV(w io.Writer, cmps []Comparison) error {
	cw, err := newCSVWriter(w, ComparisonColumns)
	if err != nil {
		return err
	}
	for _, c := range cmps {
		for _, r := range c.Rows {
			obj := ""
			if !r.Pooled {
				obj = strconv.Itoa(r.Objectives)
			}
			mcn := func(n int) string {
				if math.IsNaN(r.McNemarP) {
					return ""
				}
				return strconv.Itoa(n)
			}
			objN := ""
			if r.ObjN > 0 {
				objN = strconv.Itoa(r.ObjN)
			}
			err := cw.write(c.Metric, c.Factor, c.A.String(), c.B.String(), obj, strconv.Itoa(r.N),
				fmtNum(r.MeanA), fmtNum(r.MeanB), fmtNum(r.Delta), fmtNum(r.CILow), fmtNum(r.CIHigh),
				fmtNum(r.BootLow), fmtNum(r.BootHigh), fmtNum(r.P), fmtNum(r.PHolm), fmtNum(r.PPerm),
				strconv.Itoa(r.Wins), strconv.Itoa(r.Ties), strconv.Itoa(r.Losses), r.Test,
				strconv.Itoa(r.UnpairedA), strconv.Itoa(r.UnpairedB), objN, fmtNum(r.ObjDelta), fmtNum(r.ObjSE),
				fmtNum(r.ObjCILow), fmtNum(r.ObjCIHigh), mcn(r.McNemarB), mcn(r.McNemarC), fmtNum(r.McNemarP),
				fmtNum(r.PWilcoxon))
			if err != nil {
				return err
			}
		}
	}
	return cw.flush()
}

// ExperimentComparisons loads the done rollouts of expIDs and compares a with
// b on each of metrics (every CompareMetrics when empty), in that order.
func ExperimentComparisons(ctx context.Context, st CompareStore, a, b CompareSetting, metrics []string, opt CompareOptions, expIDs ...int64) ([]Comparison, error) {
	units, err := LoadCompareUnits(ctx, st, expIDs...)
	if err != nil {
		return nil, err
	}
	if len(metrics) == 0 {
		metrics = CompareMetrics
	}
	out := make([]Comparison, 0, len(metrics))
	for _, m := range metrics {
		c, err := Compare(units, a, b, m, opt)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// RolloutSettings finds, among units, the rollouts a and b and the settings
// they stand for: the one factor in which they differ, with the value each
// side has (the endpoint counts only when nothing else differs, as Compare
// pairs across endpoints). It fails when either rollout is not among units (not done) or
// when they differ in no factor or in more than one.
func RolloutSettings(units []CompareUnit, a, b int64) (CompareSetting, CompareSetting, error) {
	var ua, ub *CompareUnit
	for i := range units {
		switch units[i].RolloutID {
		case a:
			ua = &units[i]
		case b:
			ub = &units[i]
		}
	}
	if ua == nil || ub == nil {
		return nil, nil, errors.New("both rollouts must be finished to compare their settings")
	}
	var diff []string
	for _, f := range CompareFactors {
		if f != "endpoint" && ua.Factors[f] != ub.Factors[f] {
			diff = append(diff, f)
		}
	}
	if len(diff) == 0 && ua.Factors["endpoint"] != ub.Factors["endpoint"] {
		diff = []string{"endpoint"}
	}
	if len(diff) != 1 {
		if len(diff) == 0 {
			return nil, nil, fmt.Errorf("%w: rollouts %d and %d have the same settings", ErrNotOneFactor, a, b)
		}
		return nil, nil, fmt.Errorf("%w: rollouts %d and %d differ in %s", ErrNotOneFactor, a, b, strings.Join(diff, " and "))
	}
	f := diff[0]
	return CompareSetting{f: ua.Factors[f]}, CompareSetting{f: ub.Factors[f]}, nil
}

// ParseStoredConfig decodes an experiment's stored config JSON (unknown
// fields ignored); malformed JSON is an error.
func ParseStoredConfig(configJSON string) (RunConfig, error) {
	var cfg RunConfig
	if err := json.Unmarshal([]byte(configJSON), &cfg); err != nil {
		return RunConfig{}, fmt.Errorf("stored config: %w", err)
	}
	return cfg, nil
}
