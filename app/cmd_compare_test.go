package app

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gonum.org/v1/gonum/stat/distuv"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/oracle"
)

// byHand is a paired comparison computed straight from the rollouts CSV:
// rows of policy a and b matched on task_key, the differences of one column,
// their mean, and mean ± t_{.975, n−1}·sd/√n.
type byHand struct {
	n             int
	meanA, meanB  float64
	delta, lo, hi float64
	wins, losses  int
}

func pairedByHand(t *testing.T, recs [][]string, objectives int, col, a, b string) byHand {
	t.Helper()
	idx := map[string]int{}
	for i, h := range recs[0] {
		idx[h] = i
	}
	vals := map[string]map[string]float64{a: {}, b: {}}
	for _, r := range recs[1:] {
		if r[idx["status"]] != "done" {
			continue
		}
		n, _ := strconv.Atoi(r[idx["objectives"]])
		if objectives != 0 && n != objectives {
			continue
		}
		x, err := strconv.ParseFloat(r[idx[col]], 64)
		require.NoError(t, err)
		if m, ok := vals[r[idx["policy"]]]; ok {
			m[r[idx["task_key"]]] = x
		}
	}
	var keys []string
	for k := range vals[a] {
		if _, ok := vals[b][k]; ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var h byHand
	h.n = len(keys)
	var d []float64
	for _, k := range keys {
		h.meanA += vals[a][k] / float64(h.n)
		h.meanB += vals[b][k] / float64(h.n)
		x := vals[a][k] - vals[b][k]
		d = append(d, x)
		h.delta += x / float64(h.n)
		if x > 0 {
			h.wins++
		} else if x < 0 {
			h.losses++
		}
	}
	ss := 0.0
	for _, x := range d {
		ss += (x - h.delta) * (x - h.delta)
	}
	se := math.Sqrt(ss/float64(h.n-1)) / math.Sqrt(float64(h.n))
	q := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(h.n - 1)}.Quantile(0.975)
	h.lo, h.hi = h.delta-q*se, h.delta+q*se
	return h
}

// TestCompareOracleAcceptance (issue 13, acceptance 2): an oracle run of mem1
// vs full over 1, 2, 4 and 8 objectives; `mem1lab compare --json` gives
// deltas and paired-t intervals that a by-hand computation from the exported
// rollouts CSV reproduces, per objectives count and pooled.
func TestCompareOracleAcceptance(t *testing.T) {
	db, url := oracleEndpoint(t)
	code, _, errOut := run(t, "run", "--db", db, "--endpoint", url, "--model", oracle.ModelName,
		"--dataset", "hotpotqa", "--objectives", "1,2,4,8", "--tasks", "4", "--policy", "mem1,full", "--quiet", "--new")
	require.Equal(t, 0, code, errOut)
	csvPath := filepath.Join(t.TempDir(), "rollouts.csv")
	code, _, errOut = run(t, "export", "--db", db, "--experiment", "1", "--what", "rollouts", "--out", csvPath)
	require.Equal(t, 0, code, errOut)
	b, err := os.ReadFile(csvPath)
	require.NoError(t, err)
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	require.NoError(t, err)

	for metric, col := range map[string]string{"em": "em_per_objective", "peak": "peak_tokens", "f1": "f1_per_objective"} {
		code, out, errOut := run(t, "compare", "--db", db, "--experiment", "1", "--a", "policy=mem1", "--b", "policy=full",
			"--metric", metric, "--json")
		require.Equal(t, 0, code, errOut)
		lines := readJSONLines(t, out)
		require.Len(t, lines, 5, "1, 2, 4, 8 and pooled")
		for i, want := range []int{1, 2, 4, 8, 0} {
			l := lines[i]
			for _, k := range []string{"objectives", "n", "mean_a", "mean_b", "delta", "ci_low", "ci_high",
				"boot_ci_low", "boot_ci_high", "p", "p_holm", "wins", "ties", "losses", "test"} {
				assert.Contains(t, l, k)
			}
			if want == 0 {
				assert.Nil(t, l["objectives"], "pooled")
			} else {
				assert.Equal(t, float64(want), l["objectives"])
			}
			h := pairedByHand(t, recs, want, col, "mem1", "full")
			msg := metric + " objectives " + strconv.Itoa(want)
			assert.Equal(t, "paired t", l["test"], msg)
			assert.Equal(t, float64(h.n), l["n"], msg)
			assert.InDelta(t, h.meanA, l["mean_a"], 1e-9, msg)
			assert.InDelta(t, h.meanB, l["mean_b"], 1e-9, msg)
			assert.InDelta(t, h.delta, l["delta"], 1e-9, msg)
			assert.Equal(t, float64(h.wins), l["wins"], msg)
			assert.Equal(t, float64(h.losses), l["losses"], msg)
			if lo, ok := l["ci_low"].(float64); ok {
				assert.InDelta(t, h.lo, lo, 1e-9, msg)
				assert.InDelta(t, h.hi, l["ci_high"], 1e-9, msg)
			} else {
				t.Errorf("%s: no interval", msg)
			}
		}
		if metric == "peak" {
			// Full history carries every turn: its peak is above mem1's on
			// multi-turn tasks, so the pooled delta is negative.
			assert.Less(t, lines[4]["delta"], 0.0)
		}
	}

	// The text table, and the comparisons CSV: one row per metric and
	// objectives count.
	code, out, errOut := run(t, "compare", "--db", db, "--experiment", "1", "--a", "policy=mem1", "--b", "policy=full", "--metric", "peak")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "paired t")
	assert.Contains(t, out, "all")
	cmpPath := filepath.Join(t.TempDir(), "cmp.csv")
	code, _, errOut = run(t, "export", "--db", db, "--experiment", "1", "--what", "comparisons", "--a", "policy=mem1",
		"--b", "policy=full", "--out", cmpPath)
	require.Equal(t, 0, code, errOut)
	b, err = os.ReadFile(cmpPath)
	require.NoError(t, err)
	crecs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	require.NoError(t, err)
	assert.Equal(t, experiments.ComparisonColumns, crecs[0])
	assert.Len(t, crecs, 1+len(experiments.CompareMetrics)*5)

	// Clear errors.
	code, _, errOut = run(t, "compare", "--db", db, "--experiment", "1", "--a", "policy=mem1", "--b", "model=x")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "exactly one factor")
	code, _, errOut = run(t, "compare", "--db", db, "--experiment", "1", "--a", "colour=red", "--b", "policy=full")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "unknown factor")
	code, _, errOut = run(t, "export", "--db", db, "--experiment", "1", "--what", "comparisons", "--out", cmpPath)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "--a and --b are required")
}

// TestCompareAcrossExperiments: --experiment given twice pairs the same task
// keys across two experiments (mem1 in 1, full in 2).
func TestCompareAcrossExperiments(t *testing.T) {
	db := oracleStore(t)
	code, out, errOut := run(t, "compare", "--db", db, "--experiment", "1", "--experiment", "2", "--a", "policy=mem1",
		"--b", "policy=full", "--metric", "peak", "--json")
	require.Equal(t, 0, code, errOut)
	lines := readJSONLines(t, out)
	require.Len(t, lines, 2)
	assert.Equal(t, float64(3), lines[0]["n"])
	assert.Equal(t, "paired t", lines[0]["test"])
	// One experiment alone holds one side only.
	code, _, errOut = run(t, "compare", "--db", db, "--experiment", "1", "--a", "policy=mem1", "--b", "policy=full")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "selects no finished rollout")
}
