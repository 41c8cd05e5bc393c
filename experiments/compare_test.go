package experiments

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

func unit(id int64, task string, n int, policy, model string, objEM ...float64) CompareUnit {
	u := CompareUnit{RolloutID: id, TaskKey: task, Objectives: n, Factors: map[string]string{"policy": policy,
		"model": model, "template": "default", "retriever": "default", "endpoint": "http://x/v1"}, ObjectiveEM: objEM}
	for _, x := range objEM {
		u.EM += x
		u.ObjectiveF1 = append(u.ObjectiveF1, x)
	}
	u.F1 = u.EM
	u.PeakTokens = float64(100 * id)
	u.Seconds = float64(id)
	return u
}

func TestParseCompareSetting(t *testing.T) {
	s, err := ParseCompareSetting("policy=mem1, model=qwen")
	require.NoError(t, err)
	assert.Equal(t, CompareSetting{"policy": "mem1", "model": "qwen"}, s)
	assert.Equal(t, "policy=mem1,model=qwen", s.String())
	for _, bad := range []string{"", "policy", "colour=red", "policy=a,policy=b"} {
		_, err := ParseCompareSetting(bad)
		assert.Error(t, err, bad)
	}
}

func TestCompareOneFactor(t *testing.T) {
	us := []CompareUnit{unit(1, "t1", 1, "mem1", "m", 1), unit(2, "t1", 1, "full", "m", 0)}
	_, err := Compare(us, CompareSetting{"policy": "mem1"}, CompareSetting{"policy": "mem1"}, "em", CompareOptions{})
	assert.ErrorIs(t, err, ErrNotOneFactor)
	_, err = Compare(us, CompareSetting{"policy": "mem1", "model": "a"}, CompareSetting{"policy": "full", "model": "b"}, "em", CompareOptions{})
	assert.ErrorIs(t, err, ErrNotOneFactor)
	assert.ErrorContains(t, err, "policy and model")
	_, err = Compare(us, CompareSetting{"policy": "mem1"}, CompareSetting{"policy": "window:2"}, "em", CompareOptions{})
	assert.ErrorContains(t, err, "selects no finished rollout")
	_, err = Compare(us, CompareSetting{"policy": "mem1"}, CompareSetting{"policy": "full"}, "bleu", CompareOptions{})
	assert.ErrorContains(t, err, "metric")
}

// TestComparePaired: by hand. Two objectives counts; for n = 2 three tasks
// with per-objective EM (a vs b): t1 {1,1} vs {1,0}, t2 {1,0} vs {0,0},
// t3 {0,1} vs {0,1}. EM per objective: a = 1, .5, .5; b = .5, 0, .5;
// d = .5, .5, 0 → mean 1/3, sd √(1/12), SE = 1/6, t = 2, df = 2.
// McNemar: a-only right = 2 (t1 obj 2, t2 obj 1), b-only = 0 → exact p = 2·¼ = .5.
// Clustered: per-objective d = {0,1}, {1,0}, {0,0}; mean 1/3; deviations per
// task 1/3, 1/3, −2/3 → SE = √(2/3)/6.
// Model "z" rollouts do not pair with model "m" ones (another factor differs).
func TestComparePaired(t *testing.T) {
	us := []CompareUnit{
		unit(1, "t1", 2, "mem1", "m", 1, 1), unit(2, "t1", 2, "full", "m", 1, 0),
		unit(3, "t2", 2, "mem1", "m", 1, 0), unit(4, "t2", 2, "full", "m", 0, 0),
		unit(5, "t3", 2, "mem1", "m", 0, 1), unit(6, "t3", 2, "full", "m", 0, 1),
		unit(7, "t4", 2, "mem1", "z", 1, 1), // no partner
		unit(8, "u1", 1, "mem1", "m", 1), unit(9, "u1", 1, "full", "m", 0),
		unit(10, "u2", 1, "mem1", "m", 1), unit(11, "u2", 1, "full", "m", 1),
	}
	c, err := Compare(us, CompareSetting{"policy": "mem1"}, CompareSetting{"policy": "full"}, "em", CompareOptions{Seed: 3})
	require.NoError(t, err)
	assert.Equal(t, "policy", c.Factor)
	require.Len(t, c.Rows, 3)
	r1, r2, pool := c.Rows[0], c.Rows[1], c.Rows[2]
	assert.Equal(t, 1, r1.Objectives)
	assert.Equal(t, 2, r2.Objectives)
	assert.True(t, pool.Pooled)

	assert.Equal(t, TestPaired, r2.Test)
	assert.Equal(t, 3, r2.N)
	assert.Equal(t, 1, r2.UnpairedA)
	assert.InDelta(t, 2.0/3, r2.MeanA, 1e-12)
	assert.InDelta(t, 1.0/3, r2.MeanB, 1e-12)
	assert.InDelta(t, 1.0/3, r2.Delta, 1e-12)
	tq := 4.302652729911275 // t_{0.975, 2}
	assert.InDelta(t, 1.0/3-tq/6, r2.CILow, 1e-9)
	assert.InDelta(t, 1.0/3+tq/6, r2.CIHigh, 1e-9)
	// two-sided p of t = 2 on 2 df: 1 − 2/√6 (closed form of the t(2) CDF).
	assert.InDelta(t, 1-2/math.Sqrt(6), r2.P, 1e-9)
	assert.Equal(t, []int{2, 1, 0}, []int{r2.Wins, r2.Ties, r2.Losses})
	assert.Equal(t, 2, r2.McNemarB)
	assert.Equal(t, 0, r2.McNemarC)
	assert.InDelta(t, 0.5, r2.McNemarP, 1e-12)
	assert.Equal(t, 6, r2.ObjN)
	assert.InDelta(t, 1.0/3, r2.ObjDelta, 1e-12)
	assert.InDelta(t, math.Sqrt(2.0/3)/6, r2.ObjSE, 1e-12)
	// sign flip over d = .5, .5, 0: |sum| ≥ 1 for 4 of 8 patterns.
	assert.InDelta(t, 0.5, r2.PPerm, 1e-12)
	// Wilcoxon over d = .5, .5, 0: the zero dropped, two tied positives (ranks
	// 1.5, 1.5), V = 3 of 3: normal approximation (ties), μ = 1.5,
	// σ² = 2·3·5/24 − (8 − 2)/48 = 1.125, z = (3 − 1.5 − .5)/√1.125.
	assert.InDelta(t, math.Erfc(1/math.Sqrt(1.125)/math.Sqrt2), r2.PWilcoxon, 1e-12)
	assert.LessOrEqual(t, r2.BootLow, r2.Delta)
	assert.GreaterOrEqual(t, r2.BootHigh, r2.Delta)

	// n = 1: d = 1, 0 → mean .5, SE .5, t = 1 on 1 df: p = .5.
	assert.InDelta(t, 0.5, r1.Delta, 1e-12)
	assert.InDelta(t, 0.5, r1.P, 1e-9)
	// Holm over the two rows: p = .5 and 1 − 2/√6 ≈ .1835 → .367, .5.
	assert.InDelta(t, 2*(1-2/math.Sqrt(6)), r2.PHolm, 1e-9)
	assert.InDelta(t, 0.5, r1.PHolm, 1e-9)

	// Pooled: five pairs, d = .5, .5, 0, 1, 0 (tasks weigh equally).
	assert.Equal(t, 5, pool.N)
	assert.InDelta(t, 0.4, pool.Delta, 1e-12)
	assert.Equal(t, pool.P, pool.PHolm)
	assert.Equal(t, 8, pool.ObjN)
	assert.InDelta(t, 3.0/8, pool.ObjDelta, 1e-12, "objectives weigh equally: 3 of 8 objective differences are 1")
	assert.Equal(t, 1, pool.UnpairedA)
	require.NotEmpty(t, pool.PairRollouts)
	assert.Equal(t, int64(8), pool.PairRollouts[0].A, "largest difference first")

	js := c.JSON()
	require.Len(t, js, 3)
	assert.Nil(t, js[2].Objectives)
	require.NotNil(t, js[1].Objectives)
	assert.Equal(t, 2, *js[1].Objectives)
}

// TestCompareReplicates: two rollouts of one task and setting are averaged.
func TestCompareReplicates(t *testing.T) {
	us := []CompareUnit{unit(1, "t1", 1, "mem1", "m", 1), unit(2, "t1", 1, "mem1", "m", 0), unit(3, "t1", 1, "full", "m", 0),
		unit(4, "t2", 1, "mem1", "m", 1), unit(5, "t2", 1, "full", "m", 0)}
	c, err := Compare(us, CompareSetting{"policy": "mem1"}, CompareSetting{"policy": "full"}, "em", CompareOptions{})
	require.NoError(t, err)
	assert.Equal(t, 2, c.Rows[0].N)
	assert.InDelta(t, 0.75, c.Rows[0].Delta, 1e-12)
}

// TestCompareUnpaired: sides with no task in common get Welch's t, labelled,
// and no paired statistic.
func TestCompareUnpaired(t *testing.T) {
	us := []CompareUnit{unit(1, "a1", 1, "mem1", "m", 1), unit(2, "a2", 1, "mem1", "m", 1), unit(3, "a3", 1, "mem1", "m", 0),
		unit(4, "b1", 1, "full", "m", 0), unit(5, "b2", 1, "full", "m", 0), unit(6, "b3", 1, "full", "m", 1)}
	c, err := Compare(us, CompareSetting{"policy": "mem1"}, CompareSetting{"policy": "full"}, "peak", CompareOptions{})
	require.NoError(t, err)
	for _, r := range c.Rows {
		assert.Equal(t, TestWelch, r.Test)
		assert.Equal(t, 6, r.N)
		assert.Zero(t, r.Wins+r.Ties+r.Losses)
		assert.True(t, math.IsNaN(r.PPerm))
		// peak = 100·id: a = 100, 200, 300; b = 400, 500, 600 → delta −300.
		assert.InDelta(t, -300, r.Delta, 1e-9)
		// Welch by hand: variances 10000 each, SE = √(2·10000/3), df = 4.
		se := math.Sqrt(20000.0 / 3)
		assert.InDelta(t, -300-2.7764451051977987*se, r.CILow, 1e-6)
	}
}

// TestStatCI: the aggregates' 95% interval on Student's sleep differences
// (R's t.test(extra ~ group, data = sleep, paired = TRUE): 0.7001142 to
// 2.4598858 for group 2 − group 1).
func TestStatCI(t *testing.T) {
	var w welford
	for _, x := range []float64{1.2, 2.4, 1.3, 1.3, 0.0, 1.0, 1.8, 0.8, 4.6, 1.4} {
		w.add(x)
	}
	lo, hi := w.stat().CI(0.95)
	assert.InDelta(t, 0.7001142, lo, 5e-8)
	assert.InDelta(t, 2.4598858, hi, 5e-8)
	lo, _ = Stat{N: 1, Mean: 3}.CI(0.95)
	assert.True(t, math.IsNaN(lo))
	lo, hi = Stat{N: 3, Mean: 3}.CI(0.95)
	assert.Equal(t, []float64{3, 3}, []float64{lo, hi})
}

func TestRolloutSettings(t *testing.T) {
	us := []CompareUnit{unit(1, "t1", 1, "mem1", "m", 1), unit(2, "t1", 1, "full", "m", 0), unit(3, "t1", 1, "full", "z", 0)}
	a, b, err := RolloutSettings(us, 1, 2)
	require.NoError(t, err)
	assert.Equal(t, CompareSetting{"policy": "mem1"}, a)
	assert.Equal(t, CompareSetting{"policy": "full"}, b)
	_, _, err = RolloutSettings(us, 1, 3)
	assert.ErrorIs(t, err, ErrNotOneFactor)
	_, _, err = RolloutSettings(us, 1, 99)
	assert.Error(t, err)
}

// TestComparePairsAcrossEndpoints: the same model served from two addresses
// still pairs, unless the endpoint is named; other factors must match.
func TestComparePairsAcrossEndpoints(t *testing.T) {
	a, b := unit(1, "t1", 1, "mem1", "m", 1), unit(2, "t1", 1, "full", "m", 0)
	b.Factors["endpoint"] = "http://other/v1"
	c, err := Compare([]CompareUnit{a, b}, CompareSetting{"policy": "mem1"}, CompareSetting{"policy": "full"}, "em", CompareOptions{})
	require.NoError(t, err)
	assert.Equal(t, TestPaired, c.Rows[0].Test)
	_, err = Compare([]CompareUnit{a, b}, CompareSetting{"policy": "mem1", "endpoint": "http://x/v1"}, CompareSetting{"policy": "full"}, "em", CompareOptions{})
	assert.ErrorContains(t, err, "selects no finished rollout", "the named endpoint holds for both sides")
	b.Factors["endpoint"], b.Factors["template"] = "http://x/v1", "other.txt"
	c, err = Compare([]CompareUnit{a, b}, CompareSetting{"policy": "mem1"}, CompareSetting{"policy": "full"}, "em", CompareOptions{})
	require.NoError(t, err)
	assert.Equal(t, TestWelch, c.Rows[0].Test, "another template: no pair")
}

func TestRolloutSettingsEndpoint(t *testing.T) {
	a, b := unit(1, "t1", 1, "mem1", "m", 1), unit(2, "t1", 1, "full", "m", 0)
	b.Factors["endpoint"] = "http://other/v1"
	sa, _, err := RolloutSettings([]CompareUnit{a, b}, 1, 2)
	require.NoError(t, err)
	assert.Equal(t, CompareSetting{"policy": "mem1"}, sa)
	b.Factors["policy"] = "mem1"
	sa, sb, err := RolloutSettings([]CompareUnit{a, b}, 1, 2)
	require.NoError(t, err)
	assert.Equal(t, CompareSetting{"endpoint": "http://x/v1"}, sa)
	assert.Equal(t, CompareSetting{"endpoint": "http://other/v1"}, sb)
}

func TestRolloutComposition(t *testing.T) {
	d := storage.RolloutDetail{RolloutRow: storage.RolloutRow{ID: 1, Policy: "full"}, Prompt: "Answer these questions. ",
		Turns: []core.Turn{{Index: 0, Response: "<think>look</think><search>q</search>", Information: "Doc 1 text"},
			{Index: 1, Response: "<think>done</think><answer>a</answer>"}}}
	comp, err := RolloutComposition(d, `{}`, nil)
	require.NoError(t, err)
	require.Len(t, comp, 2)
	assert.Equal(t, comp[0].Tokens, comp[0].Parts["prompt"], "turn 1 is the prompt alone")
	sum := 0
	for _, v := range comp[1].Parts {
		sum += v
	}
	assert.Equal(t, comp[1].Tokens, sum)
	assert.Positive(t, comp[1].Parts["information"])
	d.Policy = "no-such-policy"
	_, err = RolloutComposition(d, `{}`, nil)
	assert.Error(t, err, "an unknown policy has no context layout")
}
