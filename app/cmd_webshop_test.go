package app

import (
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments/webshop"
	"github.com/mem1lab/mem1lab/storage"
)

// TestWebShopRunScriptedFromCLI: `webshop-run` drives the scripted shopper
// over the in-process fake WebShop and over a served one, stores the
// episodes and prints the paper's WebShop figures; --resume against another
// server of the same goals replays and reports the same experiment.
func TestWebShopRunScriptedFromCLI(t *testing.T) {
	db := filepath.Join(t.TempDir(), "lab.db")
	code, out, errs := run(t, "webshop-run", "--db", db, "--goals", "0-2", "--json")
	require.Equal(t, 0, code, errs)
	var got map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	assert.EqualValues(t, 3, got["done"])
	assert.EqualValues(t, 100, got["reward_x100"])
	assert.Positive(t, got["peak_tokens"])
	assert.Positive(t, got["dependency"])
	assert.Equal(t, true, got["fake_reward"])
	assert.Contains(t, errs, "turn 0: search[")

	srv := httptest.NewServer(webshop.NewFakeServer())
	defer srv.Close()
	fig := filepath.Join(t.TempDir(), "reward.svg")
	code, out, errs = run(t, "webshop-run", "--db", db, "--env", srv.URL, "--goals", "5", "--policy", "full", "--plot", fig)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "1 rollouts, 1 done, 0 failed")
	assert.Contains(t, out, "final reward ×100: 100.0")
	assert.NotContains(t, out, "fake WebShop: its reward", "a served URL is not known to be the fake")
	svg, err := os.ReadFile(fig)
	require.NoError(t, err)
	assert.Contains(t, string(svg), "full / mem1lab-scripted-shopper")

	id := strconv.FormatFloat(got["experiment"].(float64), 'f', 0, 64)
	code, out, errs = run(t, "webshop-run", "--db", db, "--resume", id, "--env", srv.URL)
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "experiment "+id+": 3 rollouts, 3 done")

	st, err := storage.OpenReadOnly(db)
	require.NoError(t, err)
	defer st.Close()
	exps, err := st.Experiments(t.Context())
	require.NoError(t, err)
	assert.Len(t, exps, 2)

	tmpl := filepath.Join(t.TempDir(), "t.txt")
	require.NoError(t, os.WriteFile(tmpl, []byte("Shop for: {instruction}\nCustomer request: {instruction}\n{observation}\n"), 0o644))
	code, out, errs = run(t, "webshop-run", "--db", db, "--goals", "2", "--template", tmpl, "--json")
	require.Equal(t, 0, code, errs)
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	st2, err := storage.OpenReadOnly(db)
	require.NoError(t, err)
	rows, err := st2.Rollouts(t.Context(), int64(got["experiment"].(float64)))
	require.NoError(t, err)
	d, err := st2.Rollout(t.Context(), rows[0].ID)
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(d.Prompt, "Shop for: i need"), d.Prompt)
	st2.Close()
	require.NoError(t, os.WriteFile(tmpl, []byte("no slot"), 0o644))
	code, _, errs = run(t, "webshop-run", "--db", db, "--goals", "2", "--template", tmpl)
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errs, "{instruction}")

	code, _, errs = run(t, "webshop-run", "--db", db, "--goals", "x")
	assert.NotEqual(t, 0, code)
	assert.True(t, strings.Contains(errs, "goals"), errs)
}

// TestWebShopRunSeveralPolicies: `webshop-run --policy mem1,window:2,mem0`
// plays every goal under each and reports each policy's figures, in the JSON
// and in the text summary; `run --family webshop` with the same list gives
// one summary group per policy.
func TestWebShopRunSeveralPolicies(t *testing.T) {
	db := filepath.Join(t.TempDir(), "lab.db")
	code, out, errs := run(t, "webshop-run", "--db", db, "--goals", "0-1", "--policy", "mem1,window:2,mem0", "--json")
	require.Equal(t, 0, code, errs)
	var got struct {
		Rollouts int `json:"rollouts"`
		Policies []struct {
			Policy string  `json:"policy"`
			Done   int     `json:"done"`
			Reward float64 `json:"reward_x100"`
		} `json:"policies"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	assert.Equal(t, 6, got.Rollouts)
	require.Len(t, got.Policies, 3)
	for i, p := range []string{"mem1", "window:2", "mem0"} {
		assert.Equal(t, p, got.Policies[i].Policy)
		assert.Equal(t, 2, got.Policies[i].Done)
		assert.InDelta(t, 100, got.Policies[i].Reward, 1e-9)
	}
	code, out, errs = run(t, "webshop-run", "--db", db, "--goals", "3", "--policy", "mem1, amem")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "2 rollouts, 2 done")
	assert.Contains(t, out, "mem1           (1 done) final reward ×100: 100.0")
	assert.Contains(t, out, "amem           (1 done) final reward ×100: 100.0")

	// Compare sets two of the policies side by side on the same goals, in
	// WebShop's terms.
	code, out, errs = run(t, "compare", "--db", db, "--experiment", "1", "-a", "policy=mem1", "-b", "policy=window:2")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "final reward (WebShop, 0..1): a = policy=mem1, b = policy=window:2")
	assert.Contains(t, out, "0/2/0  paired t", "two goals paired")
	code, out, errs = run(t, "compare", "--db", db, "--experiment", "1", "-a", "policy=mem1", "-b", "policy=mem0", "--metric", "peak")
	require.Equal(t, 0, code, errs)
	assert.True(t, strings.HasPrefix(out, "peak: "), out)

	code, out, errs = run(t, "run", "--db", db, "--family", "webshop", "--endpoint", "scripted", "--goals", "2",
		"--policy", "full,resum", "--json", "--quiet")
	require.Equal(t, 0, code, errs)
	var sum shopRun
	require.NoError(t, json.Unmarshal([]byte(out), &sum), out)
	require.Len(t, sum.Groups, 2)
	assert.Equal(t, "full", sum.Groups[0].Policy)
	assert.Equal(t, "resum", sum.Groups[1].Policy)
	assert.Equal(t, 1, sum.Groups[1].Rollouts)
}
