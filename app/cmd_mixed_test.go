package app

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

// mixedOracle imports raw HotpotQA and raw NQ-open into a fresh store and
// serves the retrieval-oracle agent over both datasets' questions.
func mixedOracle(t *testing.T) (db, url string) {
	t.Helper()
	hotpot := needRaw(t, "hotpotqa_dev_distractor.rpt-dev.jsonl")
	nq := needRaw(t, "NQ-open.dev.jsonl")
	db = filepath.Join(t.TempDir(), "lab.db")
	code, _, errOut := run(t, "import", "--db", db, "--hotpot", hotpot, "--nq", nq)
	require.Equal(t, 0, code, errOut)
	st, err := storage.Open(db)
	require.NoError(t, err)
	defer st.Close()
	var qs []storage.Question
	for _, d := range []string{"hotpotqa", "nq"} {
		more, err := st.Questions(context.Background(), d, 0, 0)
		require.NoError(t, err)
		require.NotEmpty(t, more, d)
		qs = append(qs, more...)
	}
	srv := httptest.NewServer(oracle.New(qs))
	t.Cleanup(srv.Close)
	return db, srv.URL + "/v1"
}

// TestRunMixedSources: `--dataset hotpotqa,nq --compose mixed` composes tasks
// whose objectives come from both datasets in turn, and names the experiment
// after both.
func TestRunMixedSources(t *testing.T) {
	db, url := mixedOracle(t)
	code, out, errOut := run(t, "run", "--db", db, "--endpoint", url, "--model", oracle.ModelName,
		"--dataset", "hotpotqa,nq", "--compose", "mixed", "--objectives", "2", "--tasks", "2", "--json", "--quiet")
	require.Equal(t, 0, code, errOut)
	var summary struct {
		Experiment int64 `json:"experiment"`
		Groups     []struct {
			Objectives int `json:"objectives"`
			Rollouts   int `json:"rollouts"`
			Failed     int `json:"failed"`
		} `json:"groups"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &summary), out)
	require.Len(t, summary.Groups, 1)
	assert.Equal(t, 2, summary.Groups[0].Objectives)
	assert.Equal(t, 2, summary.Groups[0].Rollouts)
	assert.Equal(t, 0, summary.Groups[0].Failed)

	st, err := storage.Open(db)
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	e, err := st.Experiment(ctx, summary.Experiment)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(e.Name, "hotpotqa+nq n2 mem1 "), e.Name)
	assert.Contains(t, e.ConfigJSON, `"datasets":["hotpotqa","nq"]`)
	rows, err := st.Rollouts(ctx, summary.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	for _, r := range rows {
		d, err := st.Rollout(ctx, r.ID)
		require.NoError(t, err)
		assert.Equal(t, "mixed:hotpotqa+nq", d.Task.Dataset)
		require.Len(t, d.Task.Objectives, 2)
		assert.True(t, strings.HasPrefix(d.Task.Objectives[0].QuestionID, "hotpotqa:"), d.Task.Objectives[0].QuestionID)
		assert.True(t, strings.HasPrefix(d.Task.Objectives[1].QuestionID, "nq:"), d.Task.Objectives[1].QuestionID)
		assert.NotEmpty(t, d.Task.Objectives[1].Gold, "NQ gold aliases kept")
		assert.NotEmpty(t, d.Turns)
	}

	// A list without --compose mixed is refused, naming both keys.
	code, _, errOut = run(t, "run", "--db", db, "--endpoint", url, "--dataset", "hotpotqa,nq", "--quiet")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "datasets:")
	assert.Contains(t, errOut, `compose = "mixed"`)
	// A source with no questions is named.
	code, _, errOut = run(t, "run", "--db", db, "--endpoint", url, "--dataset", "hotpotqa,musique", "--compose", "mixed", "--quiet")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `dataset "musique" has no questions`)
}
