// Package stats holds the statistics that mem1lab's comparisons report: paired
// and Welch t intervals, a seeded paired bootstrap, a sign-flip permutation
// test, McNemar's test, Holm's step-down adjustment, win/tie/loss counts and
// means with standard errors clustered by task. It is pure (no I/O) and built
// on gonum (stat, stat/distuv, floats).
//
// Conventions: a difference is always a − b; levels are two-sided confidence
// levels in (0, 1), e.g. 0.95; a statistic that is undefined for the data given
// (fewer than two pairs, say) is NaN, never a made-up number.
package stats

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"

	"gonum.org/v1/gonum/floats"
	"gonum.org/v1/gonum/stat"
	"gonum.org/v1/gonum/stat/distuv"
)

// DefaultResamples is the number of bootstrap resamples used unless told
// otherwise.
const DefaultResamples = 10000

// ErrLength is returned when paired samples differ in length.
var ErrLength = errors.New("stats: paired samples differ in length")

// TResult is a t test with its confidence interval for a mean (or a difference
// of means). Mean is the estimate, SE its standard error, DF the degrees of
// freedom, T = Mean/SE, P the two-sided p-value 2·(1 − F_t(|T|; DF)), and
// [Low, High] = Mean ± t_{1−α/2, DF}·SE with α = 1 − level.
//
// When SE is 0 (every difference equal) the interval collapses to the mean and
// P is 1 when the mean is 0 and 0 otherwise. With N < 2 every field but N and
// Mean is NaN.
type TResult struct {
	N    int
	Mean float64
	SE   float64
	DF   float64
	T    float64
	P    float64
	Low  float64
	High float64
}

func nanT(n int, mean float64) TResult {
	nan := math.NaN()
	return TResult{N: n, Mean: mean, SE: nan, DF: nan, T: nan, P: nan, Low: nan, High: nan}
}

// tFrom fills T, P and the interval of r from Mean, SE and DF.
func tFrom(r TResult, level float64) TResult {
	if r.SE == 0 {
		r.T = math.NaN()
		r.Low, r.High = r.Mean, r.Mean
		r.P = 0
		if r.Mean == 0 {
			r.P = 1
		}
		return r
	}
	dist := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: r.DF}
	r.T = r.Mean / r.SE
	r.P = 2 * dist.Survival(math.Abs(r.T))
	q := dist.Quantile(1 - (1-level)/2)
	r.Low, r.High = r.Mean-q*r.SE, r.Mean+q*r.SE
	return r
}

// OneSampleT is Student's one-sample t test of mean(d) = 0 with its interval:
// SE = s/√n (s the sample standard deviation, denominator n − 1), DF = n − 1.
// Source: Student (1908), "The probable error of a mean", Biometrika 6(1);
// any text, e.g. NIST/SEMATECH e-Handbook §7.2.
func OneSampleT(d []float64, level float64) TResult {
	n := len(d)
	if n == 0 {
		return nanT(0, math.NaN())
	}
	mean := stat.Mean(d, nil)
	if n < 2 {
		return nanT(n, mean)
	}
	sd := stat.StdDev(d, nil)
	r := TResult{N: n, Mean: mean, SE: sd / math.Sqrt(float64(n)), DF: float64(n - 1)}
	return tFrom(r, level)
}

// PairedT is the paired t test of a and b: OneSampleT of the differences
// d_i = a_i − b_i. a and b must have the same length (ErrLength otherwise).
func PairedT(a, b []float64, level float64) (TResult, error) {
	d, err := Differences(a, b)
	if err != nil {
		return TResult{}, err
	}
	return OneSampleT(d, level), nil
}

// Differences returns a_i − b_i (ErrLength when the lengths differ).
func Differences(a, b []float64) ([]float64, error) {
	if len(a) != len(b) {
		return nil, fmt.Errorf("%w: %d and %d", ErrLength, len(a), len(b))
	}
	d := make([]float64, len(a))
	floats.SubTo(d, a, b)
	return d, nil
}

// WelchT is Welch's unequal-variance t test of mean(a) − mean(b) for two
// independent (unpaired) samples: SE = √(s_a²/n_a + s_b²/n_b) and the
// Welch–Satterthwaite degrees of freedom
// DF = SE⁴ / ((s_a²/n_a)²/(n_a−1) + (s_b²/n_b)²/(n_b−1)).
// Source: Welch (1947), Biometrika 34(1–2). N is n_a + n_b. Use it only for
// samples that are not paired.
func WelchT(a, b []float64, level float64) TResult {
	na, nb := len(a), len(b)
	if na == 0 || nb == 0 {
		return nanT(na+nb, math.NaN())
	}
	mean := stat.Mean(a, nil) - stat.Mean(b, nil)
	if na < 2 || nb < 2 {
		return nanT(na+nb, mean)
	}
	va := stat.Variance(a, nil) / float64(na)
	vb := stat.Variance(b, nil) / float64(nb)
	se := math.Sqrt(va + vb)
	r := TResult{N: na + nb, Mean: mean, SE: se}
	if se > 0 {
		r.DF = (va + vb) * (va + vb) / (va*va/float64(na-1) + vb*vb/float64(nb-1))
	} else {
		r.DF = float64(na + nb - 2)
	}
	return tFrom(r, level)
}

// Interval is a confidence interval [Low, High].
type Interval struct {
	Low, High float64
}

func newRand(seed uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// percentile is the percentile interval of the sorted bootstrap means at level
// (the empirical quantiles α/2 and 1 − α/2, gonum stat.Empirical).
func percentile(means []float64, level float64) Interval {
	sort.Float64s(means)
	a := (1 - level) / 2
	return Interval{Low: stat.Quantile(a, stat.Empirical, means, nil), High: stat.Quantile(1-a, stat.Empirical, means, nil)}
}

// PairedBootstrap is the percentile bootstrap interval of mean(d), d the paired
// differences (one per task): resamples times, draw n differences with
// replacement, take their mean; the interval is the α/2 and 1 − α/2 empirical
// quantiles of those means. Resampling whole pairs keeps the pairing. The
// generator is PCG seeded with seed, so equal inputs give equal intervals.
// Source: Efron & Tibshirani (1993), An Introduction to the Bootstrap, ch. 13.
// resamples ≤ 0 uses DefaultResamples; an empty d gives NaNs.
func PairedBootstrap(d []float64, resamples int, seed uint64, level float64) Interval {
	n := len(d)
	if n == 0 {
		return Interval{math.NaN(), math.NaN()}
	}
	if resamples <= 0 {
		resamples = DefaultResamples
	}
	rng := newRand(seed)
	means := make([]float64, resamples)
	for r := range means {
		s := 0.0
		for range n {
			s += d[rng.IntN(n)]
		}
		means[r] = s / float64(n)
	}
	return percentile(means, level)
}

// UnpairedBootstrap is the percentile bootstrap interval of mean(a) − mean(b)
// for independent samples: each resample draws len(a) values from a and len(b)
// from b with replacement (Efron & Tibshirani 1993, §8.3). Seeded as
// PairedBootstrap.
func UnpairedBootstrap(a, b []float64, resamples int, seed uint64, level float64) Interval {
	if len(a) == 0 || len(b) == 0 {
		return Interval{math.NaN(), math.NaN()}
	}
	if resamples <= 0 {
		resamples = DefaultResamples
	}
	rng := newRand(seed)
	diffs := make([]float64, resamples)
	for r := range diffs {
		sa, sb := 0.0, 0.0
		for range a {
			sa += a[rng.IntN(len(a))]
		}
		for range b {
			sb += b[rng.IntN(len(b))]
		}
		diffs[r] = sa/float64(len(a)) - sb/float64(len(b))
	}
	return percentile(diffs, level)
}

// ExactSignFlipMax is the largest n for which SignFlipP enumerates all 2ⁿ sign
// patterns instead of sampling them.
const ExactSignFlipMax = 16

// SignFlipP is the two-sided p-value of the sign-flip (paired permutation)
// test of "a and b are exchangeable within each pair": under that null each
// difference d_i is as likely to be −d_i, so the statistic |Σ d_i| is compared
// with its distribution over the 2ⁿ sign patterns. p = #{patterns with
// |Σ ±d_i| ≥ |Σ d_i|} / 2ⁿ, exact for n ≤ ExactSignFlipMax; beyond, resamples
// random patterns (DefaultResamples when ≤ 0) from a PCG seeded with seed give
// p = (1 + #{≥}) / (1 + resamples) (Phipson & Smyth 2010, SAGMB 9(1)).
// Source: Fisher (1935), The Design of Experiments (the randomisation test of
// paired differences); Good (2005), Permutation, Parametric and Bootstrap
// Tests of Hypotheses.
// An empty d gives NaN; all-zero differences give 1.
func SignFlipP(d []float64, resamples int, seed uint64) float64 {
	n := len(d)
	if n == 0 {
		return math.NaN()
	}
	obs := math.Abs(floats.Sum(d))
	// A small tolerance so that ties with the observed sum count as extreme
	// despite rounding in the sums.
	tol := 1e-9 * (1 + floats.Norm(d, 1))
	if n <= ExactSignFlipMax {
		count := 0
		total := 1 << n
		for mask := range total {
			s := 0.0
			for i, x := range d {
				if mask&(1<<i) != 0 {
					s -= x
				} else {
					s += x
				}
			}
			if math.Abs(s) >= obs-tol {
				count++
			}
		}
		return float64(count) / float64(total)
	}
	if resamples <= 0 {
		resamples = DefaultResamples
	}
	rng := newRand(seed)
	count := 0
	for range resamples {
		s := 0.0
		for _, x := range d {
			if rng.Uint64()&1 == 1 {
				s -= x
			} else {
				s += x
			}
		}
		if math.Abs(s) >= obs-tol {
			count++
		}
	}
	return float64(1+count) / float64(1+resamples)
}

// McNemarExactMax is the largest count of discordant pairs b + c for which
// McNemar uses the exact binomial test.
const McNemarExactMax = 25

// McNemarResult is McNemar's test on paired binary outcomes: B counts pairs
// where a is right and b wrong, C pairs where a is wrong and b right; Exact
// tells whether P came from the exact binomial test.
type McNemarResult struct {
	B, C  int
	P     float64
	Exact bool
}

// McNemar tests whether two paired binary outcomes (per-objective EM of two
// settings) have the same success rate, from the discordant counts b and c.
// For b + c ≤ McNemarExactMax it is the exact (conditional) binomial test,
// p = min(1, 2·P[X ≤ min(b, c)]), X ~ Binomial(b + c, ½); beyond, the
// continuity-corrected χ² statistic (|b − c| − 1)²/(b + c) with one degree of
// freedom. Source: McNemar (1947), Psychometrika 12(2); the exact form in
// Fagerland, Lydersen & Laake (2013), BMC Med Res Methodol 13:91. b + c = 0
// gives p = 1.
func McNemar(b, c int) McNemarResult {
	r := McNemarResult{B: b, C: c}
	n := b + c
	if n == 0 {
		r.P, r.Exact = 1, true
		return r
	}
	if n <= McNemarExactMax {
		bin := distuv.Binomial{N: float64(n), P: 0.5}
		r.P = math.Min(1, 2*bin.CDF(float64(min(b, c))))
		r.Exact = true
		return r
	}
	x := math.Abs(float64(b-c)) - 1
	if x < 0 {
		x = 0
	}
	chi := x * x / float64(n)
	r.P = distuv.ChiSquared{K: 1}.Survival(chi)
	return r
}

// Holm adjusts the p-values of a family of tests by Holm's step-down method:
// sorted ascending p_(1) ≤ … ≤ p_(m), the adjusted p_(i) is
// max_{j ≤ i} min(1, (m − j + 1)·p_(j)); the result is in the input's order.
// NaN p-values are left NaN and do not count towards m.
// Source: Holm (1979), "A simple sequentially rejective multiple test
// procedure", Scand. J. Statist. 6(2); R's p.adjust(method = "holm").
func Holm(p []float64) []float64 {
	out := make([]float64, len(p))
	var idx []int
	for i, x := range p {
		if math.IsNaN(x) {
			out[i] = math.NaN()
			continue
		}
		idx = append(idx, i)
	}
	sort.SliceStable(idx, func(i, j int) bool { return p[idx[i]] < p[idx[j]] })
	m := len(idx)
	run := 0.0
	for k, i := range idx {
		adj := math.Min(1, float64(m-k)*p[i])
		run = math.Max(run, adj)
		out[i] = run
	}
	return out
}

// WinTieLoss counts differences above tol (a wins), within ±tol (tie) and
// below −tol (a loses).
func WinTieLoss(d []float64, tol float64) (wins, ties, losses int) {
	for _, x := range d {
		switch {
		case x > tol:
			wins++
		case x < -tol:
			losses++
		default:
			ties++
		}
	}
	return wins, ties, losses
}

// ClusteredResult is a mean over units grouped in clusters with its
// cluster-robust standard error and a t interval on C − 1 degrees of freedom
// (C clusters). N counts units, C clusters.
type ClusteredResult struct {
	N, C      int
	Mean, SE  float64
	Low, High float64
}

// ClusteredMean is the mean of every value of clusters (units: objectives;
// clusters: tasks) with the cluster-robust ("sandwich") standard error of
// Miller (2024), "Adding Error Bars to Evals", arXiv 2411.00640 (its section
// on clustered standard errors):
//
//	x̄ = Σ_c Σ_i x_ic / n,   SE² = (1/n²) Σ_c (Σ_i (x_ic − x̄))²
//
// which adds the within-task covariance terms to the naive SE² = Σ(x − x̄)²/n²
// (objectives of one task are not independent). The interval is
// x̄ ± t_{1−α/2, C−1}·SE (C − 1 degrees of freedom, the usual small-cluster
// choice; Cameron & Miller 2015, J. Human Resources 50(2)). For paired
// comparisons pass per-objective differences a − b. Empty clusters are
// skipped; with C < 2 the SE and interval are NaN.
func ClusteredMean(clusters [][]float64, level float64) ClusteredResult {
	var r ClusteredResult
	sum := 0.0
	for _, c := range clusters {
		if len(c) == 0 {
			continue
		}
		r.C++
		r.N += len(c)
		sum += floats.Sum(c)
	}
	nan := math.NaN()
	if r.N == 0 {
		r.Mean, r.SE, r.Low, r.High = nan, nan, nan, nan
		return r
	}
	r.Mean = sum / float64(r.N)
	if r.C < 2 {
		r.SE, r.Low, r.High = nan, nan, nan
		return r
	}
	ss := 0.0
	for _, c := range clusters {
		s := 0.0
		for _, x := range c {
			s += x - r.Mean
		}
		ss += s * s
	}
	r.SE = math.Sqrt(ss) / float64(r.N)
	q := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(r.C - 1)}.Quantile(1 - (1-level)/2)
	r.Low, r.High = r.Mean-q*r.SE, r.Mean+q*r.SE
	return r
}

// WilcoxonExactMax is the largest number of non-zero differences for which
// WilcoxonSignedRankP enumerates the exact null distribution (no ties only).
const WilcoxonExactMax = 25

// WilcoxonSignedRankP is the two-sided p-value of Wilcoxon's signed-rank
// test of "the paired differences d are symmetric about 0". Zeros are dropped
// (Wilcoxon's convention); the |d| are ranked, tied values sharing their mean
// rank, and V = Σ ranks of positive differences. With n ≤ WilcoxonExactMax
// non-zero differences and no ties, p = min(1, 2·P[V' ≤ min(V, n(n+1)/2 − V)])
// under the exact null distribution of V' (every sign pattern equally likely);
// otherwise the normal approximation with continuity correction and the tie
// correction of the variance:
//
//	μ = n(n+1)/4,  σ² = n(n+1)(2n+1)/24 − Σ_ties (t³ − t)/48,
//	z = (V − μ − ½·sign(V − μ)) / σ,  p = 2·Φ(−|z|).
//
// Source: Wilcoxon (1945), Biometrics Bulletin 1(6); the approximation as R's
// wilcox.test computes it (Hollander & Wolfe, Nonparametric Statistical
// Methods, 1973). No non-zero difference gives p = 1; an empty d gives NaN.
func WilcoxonSignedRankP(d []float64) float64 {
	if len(d) == 0 {
		return math.NaN()
	}
	type obs struct {
		abs float64
		pos bool
	}
	var xs []obs
	for _, x := range d {
		if x != 0 {
			xs = append(xs, obs{math.Abs(x), x > 0})
		}
	}
	n := len(xs)
	if n == 0 {
		return 1
	}
	sort.Slice(xs, func(i, j int) bool { return xs[i].abs < xs[j].abs })
	v, tieTerm, ties := 0.0, 0.0, false
	for i := 0; i < n; {
		j := i
		for j < n && xs[j].abs == xs[i].abs {
			j++
		}
		rank := float64(i+j+1) / 2 // mean of ranks i+1 … j
		for k := i; k < j; k++ {
			if xs[k].pos {
				v += rank
			}
		}
		if t := float64(j - i); t > 1 {
			ties = true
			tieTerm += t*t*t - t
		}
		i = j
	}
	nf := float64(n)
	total := nf * (nf + 1) / 2
	if n <= WilcoxonExactMax && !ties {
		// counts[s] = number of sign patterns whose positive ranks sum to s.
		counts := make([]float64, int(total)+1)
		counts[0] = 1
		for r := 1; r <= n; r++ {
			for s := int(total); s >= r; s-- {
				counts[s] += counts[s-r]
			}
		}
		lo := int(math.Min(v, total-v))
		tail := 0.0
		for s := 0; s <= lo; s++ {
			tail += counts[s]
		}
		return math.Min(1, 2*tail/math.Exp2(nf))
	}
	mu := nf * (nf + 1) / 4
	sigma := math.Sqrt(nf*(nf+1)*(2*nf+1)/24 - tieTerm/48)
	if sigma == 0 {
		return 1
	}
	diff := v - mu
	cc := 0.0
	if diff > 0 {
		cc = 0.5
	} else if diff < 0 {
		cc = -0.5
	}
	z := (diff - cc) / sigma
	return 2 * distuv.UnitNormal.CDF(-math.Abs(z))
}
