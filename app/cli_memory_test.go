package app

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

// TestRunMemoryPoliciesFromFlags: memory policies run from the CLI, their
// knobs land in the stored config's [memory] table, and with no memory URL the
// sub-calls go to the agent's own endpoint.
func TestRunMemoryPoliciesFromFlags(t *testing.T) {
	db, url := oracleEndpoint(t)
	code, out, errOut := run(t, "run", "--db", db, "--endpoint", url, "--model", oracle.ModelName, "--mode", "chat",
		"--objectives", "2", "--policy", "closed-book,memagent", "--memory-tokens", "64", "--memory-evolve=false",
		"--tasks", "1", "--json", "--quiet")
	require.Equal(t, 0, code, errOut)
	var summary struct {
		Experiment int64 `json:"experiment"`
		Groups     []struct {
			Policy string `json:"policy"`
			Failed int    `json:"failed"`
		} `json:"groups"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &summary), out)
	require.Len(t, summary.Groups, 2)
	assert.Equal(t, "closed-book", summary.Groups[0].Policy)
	assert.Equal(t, "memagent", summary.Groups[1].Policy)

	st, err := storage.Open(db)
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	e, err := st.Experiment(ctx, summary.Experiment)
	require.NoError(t, err)
	var cfg experiments.RunConfig
	require.NoError(t, json.Unmarshal([]byte(e.ConfigJSON), &cfg))
	off := false
	assert.Equal(t, &experiments.MemoryConfig{MemoryTokens: 64, Evolve: &off}, cfg.Memory)
	rows, err := st.Rollouts(ctx, summary.Experiment)
	require.NoError(t, err)
	for _, row := range rows {
		require.Equal(t, storage.StatusDone, row.Status)
		d, err := st.Rollout(ctx, row.ID)
		require.NoError(t, err)
		calls := 0
		for _, tu := range d.Turns {
			for _, c := range tu.SubCalls {
				calls++
				assert.Equal(t, "default", c.Endpoint, "the agent's own endpoint")
				assert.Equal(t, core.RoleUpdater, c.Role)
				assert.LessOrEqual(t, core.EstimateTokens(tu.Memory), 64)
			}
		}
		if row.Policy == "memagent" {
			assert.Equal(t, len(d.Turns)-1, calls, "one update per information block")
		} else {
			assert.Zero(t, calls)
		}
	}
	for _, row := range rows {
		if row.Policy != "memagent" {
			continue
		}
		code, out, errOut = run(t, "show", strconv.FormatInt(row.ID, 10), "--db", db)
		require.Equal(t, 0, code, errOut)
		assert.Contains(t, out, "  sub-call 1  updater  default  ")
		assert.Contains(t, out, "memory")
	}
	code, _, errOut = run(t, "run", "--db", db, "--endpoint", url, "--memory-k", "three")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errOut, `"three" is not a whole number`)
}
