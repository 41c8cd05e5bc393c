package experiments

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

// TestFamilyKeepsQAHash: a qa config hashes as before the family keys
// existed (the hashes below are those of the code before them), whether
// family is left out, "" or "qa", and its canonical TOML and stored JSON
// name no family.
func TestFamilyKeepsQAHash(t *testing.T) {
	c := DefaultRunConfig()
	assert.Equal(t, "b15d5b40d06eee7bc9ea24811f650b25ac7f3c3de0bc1c744cf7b3e96780ef78", c.Hash())
	g := c
	g.Policies, g.ObjectivesGrid = []string{"mem1", "full"}, []int{1, 2}
	assert.Equal(t, "82c60807bf3498d7081964b360623f65a65a93f95d831bf279e2e72bc4f6444c", g.Hash())
	q := c
	q.Family = core.FamilyQA
	assert.Equal(t, c.Hash(), q.Hash())
	require.NoError(t, q.Validate())
	canon, err := q.CanonicalTOML()
	require.NoError(t, err)
	assert.NotContains(t, string(canon), "family")
	assert.NotContains(t, string(canon), "webshop")
	js, err := json.Marshal(c)
	require.NoError(t, err)
	assert.NotContains(t, string(js), "family")

	loaded, err := LoadRunConfig(writeFile(t, "family = \"qa\"\n"))
	require.NoError(t, err)
	assert.Equal(t, c.Hash(), loaded.Hash())
	assert.Equal(t, core.FamilyQA, loaded.FamilyName())
	assert.False(t, loaded.IsWebShop())
}

// TestWebShopConfig: family = "webshop" with its [webshop] table loads,
// fills its defaults and is checked by its own rules.
func TestWebShopConfig(t *testing.T) {
	cfg, err := LoadRunConfig(writeFile(t, `family = "webshop"
endpoint = "scripted"
max_turns = 12

[webshop]
env = "http://127.0.0.1:36001"
goals = "0-4,10"
timeout_seconds = 5
`))
	require.NoError(t, err)
	assert.True(t, cfg.IsWebShop())
	w := cfg.WebShopResolved()
	assert.Equal(t, "http://127.0.0.1:36001", w.Env)
	assert.Equal(t, 2, w.Retries)
	assert.InDelta(t, 5, w.TimeoutSeconds, 0)
	goals, err := ParseGoalList(w.Goals)
	require.NoError(t, err)
	assert.Equal(t, []int{0, 1, 2, 3, 4, 10}, goals)

	d := DefaultRunConfig()
	d.Family = core.FamilyWebShop
	require.NoError(t, d.Validate(), "a model endpoint, env demo and goals 0-9 by default")
	dw := d.WebShopResolved()
	assert.Equal(t, WebShopDemo, dw.Env)
	assert.Equal(t, DefaultWebShopGoals, dw.Goals)

	bad := d
	bad.Endpoint, bad.Policy, bad.MaxTurns = "nowhere", "closed-book", 101
	bad.WebShop = &WebShopSettings{Env: "ftp//x", Goals: "3-1"}
	err = bad.Validate()
	require.Error(t, err)
	for _, key := range []string{"endpoint:", "policy:", "max_turns:", "webshop.env:", "webshop.goals:"} {
		assert.Contains(t, err.Error(), key)
	}
	assert.Contains(t, err.Error(), `"scripted"`, "the endpoint error says how to get the scripted shopper")

	// Every policy but closed-book; one policy; the [memory] table's knobs only.
	for _, p := range []string{"mem1", "full", "full:messages", "window:3", "summary:2", "resum", "memagent", "mem0", "mem0:add-only", "amem"} {
		ok := d
		ok.Policy = p
		assert.NoError(t, ok.Validate(), p)
	}
	two := d
	two.Policies = []string{"mem1", "full", "mem0"}
	assert.NoError(t, two.Validate(), "one rollout per goal and policy")
	two.Policies = []string{"mem1", "closed-book", "mem1"}
	err = two.Validate()
	assert.ErrorContains(t, err, `policies: policy "closed-book": WebShop has no retrieval to turn off`)
	assert.ErrorContains(t, err, `policies: "mem1" is listed twice`)
	mem := d
	mem.Policy, mem.Memory = "summary:1", &MemoryConfig{SummaryTokens: 500}
	assert.NoError(t, mem.Validate())
	mem.Memory = &MemoryConfig{URL: "http://127.0.0.1:9/v1", Model: "m", K: -1}
	err = mem.Validate()
	assert.ErrorContains(t, err, "memory: url, model, mode, api_key_env, requests_per_second and the embeddings_ keys are for QA runs")
	envPass := d
	envPass.WebShop = &WebShopSettings{Env: "http://u:pw-4567@127.0.0.1:36001", Goals: "0"}
	assert.ErrorContains(t, envPass.Validate(), "webshop.env: no user name or password in the WebShop server's URL")
	mem.Memory = &MemoryConfig{EmbeddingsModel: "bge-small"}
	assert.ErrorContains(t, mem.Validate(), "only the knobs apply", "an embeddings model would go unused")
	assert.ErrorContains(t, err, "memory.k: -1")

	qa := DefaultRunConfig()
	qa.WebShop = &WebShopSettings{Env: "demo"}
	assert.ErrorContains(t, qa.Validate(), `webshop: set only with family = "webshop"`)
	unknown := DefaultRunConfig()
	unknown.Family = "shop"
	assert.ErrorContains(t, unknown.Validate(), `family: "shop": want "qa"`)
	_, err = LoadRunConfig(writeFile(t, "family = \"Webshop\"\n"))
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "family"), err.Error())
}

func TestParseGoalList(t *testing.T) {
	for in, want := range map[string][]int{"0-2": {0, 1, 2}, "3, 7": {3, 7}, "0-1,5": {0, 1, 5}} {
		got, err := ParseGoalList(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "x", "-3", "5-2", "1-2x", "2.5", "0-20000"} {
		_, err := ParseGoalList(in)
		assert.Error(t, err, in)
	}
}
