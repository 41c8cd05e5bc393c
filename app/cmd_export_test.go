package app

import (
	"bytes"
	"context"
	"encoding/csv"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

// oracleStore imports the HotpotQA dev sample and runs two experiments (mem1 and
// full, 2 objectives, 3 tasks) against the retrieval-oracle endpoint.
func oracleStore(t *testing.T) string {
	t.Helper()
	db, url := oracleEndpoint(t)
	for _, policy := range []string{"mem1", "full"} {
		code, _, errOut := run(t, "run", "--db", db, "--endpoint", url, "--model", oracle.ModelName,
			"--dataset", "hotpotqa", "--objectives", "2", "--tasks", "3", "--policy", policy, "--quiet", "--new")
		require.Equal(t, 0, code, errOut)
	}
	return db
}

func TestExportCommand(t *testing.T) {
	db := oracleStore(t)
	dir := t.TempDir()
	counts := map[string]int{"rollouts": 6, "aggregates": 2}
	for _, what := range []string{"rollouts", "turns", "aggregates"} {
		out := filepath.Join(dir, what+".csv")
		code, _, errOut := run(t, "export", "--db", db, "--experiment", "1,2", "--what", what, "--out", out)
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, errOut, "wrote "+what)
		b, err := os.ReadFile(out)
		require.NoError(t, err)
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		require.NoError(t, err, what)
		want := map[string][]string{"rollouts": experiments.RolloutColumns, "turns": experiments.TurnColumns,
			"aggregates": experiments.AggregateColumns}[what]
		assert.Equal(t, want, recs[0])
		if n, ok := counts[what]; ok {
			assert.Len(t, recs, n+1, what)
		} else {
			assert.Greater(t, len(recs), 6*3, "turns: at least 3 a rollout")
		}
	}

	// Trajectories go back in through import-trajectories with the same scores.
	traj := filepath.Join(dir, "traj.jsonl")
	code, _, errOut := run(t, "export", "--db", db, "--experiment", "1", "--what", "trajectories", "--out", traj)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, errOut, "3 finished rollouts")
	st, err := storage.Open(db)
	require.NoError(t, err)
	defer st.Close()
	e1, err := st.Experiment(context.Background(), 1)
	require.NoError(t, err)
	res, err := experiments.ImportTrajectories(context.Background(), st, traj, experiments.ImportOptions{Name: "back", Policy: "mem1", Model: "m", Dataset: "hotpotqa", Scheme: "mem1"})
	require.NoError(t, err)
	assert.Equal(t, 3, res.Rollouts)
	assert.InDelta(t, e1.MeanEM, res.MeanEM, 1e-9)
	assert.InDelta(t, e1.MeanF1, res.MeanF1, 1e-9)

	// Stdout, and clear errors that leave an earlier file alone.
	code, stdout, _ := run(t, "export", "--db", db, "--experiment", "2", "--what", "aggregates", "--out", "-")
	require.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(stdout, "model,policy,objectives,"), stdout)
	keep := filepath.Join(dir, "rollouts.csv")
	before, _ := os.ReadFile(keep)
	code, _, errOut = run(t, "export", "--db", db, "--experiment", "99", "--what", "rollouts", "--out", keep)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "no experiment 99")
	after, _ := os.ReadFile(keep)
	assert.Equal(t, before, after)
	code, _, errOut = run(t, "export", "--db", db, "--experiment", "1", "--what", "everything", "--out", keep)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "rollouts, turns, aggregates, trajectories")
	code, _, errOut = run(t, "export", "--db", db, "--what", "turns", "--out", keep)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "--experiment ID is required")
}

func TestPlotCommand(t *testing.T) {
	db := oracleStore(t)
	dir := t.TempDir()
	for _, chart := range []string{"accuracy", "peak", "context", "frontier", "time", "turns"} {
		for _, ext := range []string{"pdf", "svg", "png"} {
			out := filepath.Join(dir, chart+"."+ext)
			code, _, errOut := run(t, "plot", "--db", db, "--experiment", "1,2", "--chart", chart, "--out", out,
				"--overlay", "--size", "double", "--dpi", "120")
			require.Equal(t, 0, code, errOut)
			b, err := os.ReadFile(out)
			require.NoError(t, err)
			switch ext {
			case "pdf":
				assert.True(t, bytes.HasPrefix(b, []byte("%PDF-")), chart)
				assert.Len(t, regexp.MustCompile(`/Type\s*/Page[^s]`).FindAll(b, -1), 1)
			case "svg":
				assert.Contains(t, string(b), "mem1 · "+oracle.ModelName)
				assert.Contains(t, string(b), "full · "+oracle.ModelName)
			case "png":
				img, err := png.Decode(bytes.NewReader(b))
				require.NoError(t, err)
				assert.Equal(t, 7*120, img.Bounds().Dx())
			}
		}
	}
	code, _, errOut := run(t, "plot", "--db", db, "--experiment", "1", "--chart", "pie", "--out", filepath.Join(dir, "x.pdf"))
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `unknown chart "pie"`)
	code, _, errOut = run(t, "plot", "--db", db, "--experiment", "1", "--out", filepath.Join(dir, "x.jpg"))
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "want .png, .svg or .pdf")
}
