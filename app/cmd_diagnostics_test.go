package app

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

func exportCSV(t *testing.T, db, exp, what string) []map[string]string {
	t.Helper()
	out := filepath.Join(t.TempDir(), what+".csv")
	code, _, errOut := run(t, "export", "--db", db, "--experiment", exp, "--what", what, "--out", out)
	require.Equal(t, 0, code, errOut)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	require.NoError(t, err)
	header := map[string][]string{"composition": experiments.CompositionColumns, "retention": experiments.RetentionColumns,
		"retention-curves": experiments.RetentionCurveColumns, "positions": experiments.PositionColumns,
		"state-growth": experiments.StateGrowthColumns}[what]
	require.Equal(t, header, recs[0])
	if os.Getenv("MEMDIAG_DUMP") != "" {
		t.Log(string(b))
	}
	var rows []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, h := range recs[0] {
			m[h] = r[i]
		}
		rows = append(rows, m)
	}
	return rows
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err, s)
	return n
}

// TestDiagnosticsExports: the memory-diagnostics tables of oracle runs (mem1
// in experiment 1, full in 2; 3 tasks of 2 objectives), computed from the
// stored turns.
func TestDiagnosticsExports(t *testing.T) {
	db := oracleStore(t)

	comp := exportCSV(t, db, "1,2", "composition")
	require.NotEmpty(t, comp)
	maxTokens := map[string]int{}
	for _, r := range comp {
		sum := 0
		for _, p := range []string{"prompt", "state", "responses", "information", "memory"} {
			sum += atoi(t, r[p])
		}
		assert.Equal(t, atoi(t, r["tokens"]), sum, "parts sum to the context tokens: %v", r)
		if r["turn"] == "1" {
			assert.Equal(t, r["tokens"], r["prompt"], "turn 1 is the prompt alone")
		} else {
			assert.Positive(t, atoi(t, r["information"]), "a later turn carries information: %v", r)
		}
		maxTokens[r["policy"]] = max(maxTokens[r["policy"]], atoi(t, r["tokens"]))
	}
	assert.Greater(t, maxTokens["full"], maxTokens["mem1"], "full history carries more")

	ret := exportCSV(t, db, "1,2", "retention")
	assert.Len(t, ret, 6*2, "one row per objective of each rollout")
	retrieved := 0
	for _, r := range ret {
		if r["retrieved"] != "0" {
			retrieved++
		}
		assert.Equal(t, strconv.Itoa(len(splitFields(r["forgetting"]))), r["forgetting_events"])
	}
	assert.Positive(t, retrieved, "the oracle retrieves gold passages")

	curves := exportCSV(t, db, "1,2", "retention-curves")
	for _, r := range curves {
		s, err := strconv.ParseFloat(r["share"], 64)
		require.NoError(t, err)
		assert.True(t, s >= 0 && s <= 1)
	}

	pos := exportCSV(t, db, "1,2", "positions")
	assert.Len(t, pos, 2*2, "two policies, two positions")
	for _, r := range pos {
		assert.Equal(t, "3", r["n"])
	}

	growth := exportCSV(t, db, "1", "state-growth")
	assert.Len(t, growth, 3)
	for _, r := range growth {
		assert.Len(t, splitFields(r["state_tokens"]), atoi(t, r["turns"]))
	}
}

func splitFields(s string) []string {
	var out []string
	for _, f := range bytes.Fields([]byte(s)) {
		out = append(out, string(f))
	}
	return out
}

// TestDiagnosticsCached: the first export caches each rollout's diagnostics
// in the store; later exports read the cache, and a cached row of another
// version is recomputed.
func TestDiagnosticsCached(t *testing.T) {
	db := oracleStore(t)
	first := exportCSV(t, db, "1", "composition")
	st, err := storage.Open(db)
	require.NoError(t, err)
	ctx := context.Background()
	cached, err := st.ExperimentDiagnostics(ctx, 1)
	require.NoError(t, err)
	require.Len(t, cached, 3, "one row per done rollout")

	// Mark the first rollout's cached turn-1 tokens; the next export shows the mark.
	var id int64
	for k := range cached {
		if id == 0 || k < id {
			id = k
		}
	}
	c := cached[id]
	var rd experiments.RolloutDiagnostics
	require.NoError(t, json.Unmarshal([]byte(c.JSON), &rd))
	rd.Composition[0].Tokens = 999999
	b, err := json.Marshal(rd)
	require.NoError(t, err)
	c.JSON = string(b)
	require.NoError(t, st.SaveDiagnostics(ctx, id, c))
	require.NoError(t, st.Close())
	again := exportCSV(t, db, "1", "composition")
	assert.Equal(t, "999999", again[0]["tokens"], "read from the cache")

	// Another version: recomputed and cached afresh.
	st, err = storage.Open(db)
	require.NoError(t, err)
	c.Version = experiments.DiagnosticsVersion + 1
	require.NoError(t, st.SaveDiagnostics(ctx, id, c))
	require.NoError(t, st.Close())
	assert.Equal(t, first, exportCSV(t, db, "1", "composition"))
}
