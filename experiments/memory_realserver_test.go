package experiments

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

// TestMemoryPoliciesRealServer runs amem and mem0 with the oracle as the
// actor and the real tiny model server (../shared/llm/serve) for the memory
// sub-calls and POST /v1/embeddings. The tiny model writes stories, so every
// JSON reply is malformed: each such sub-call carries a clear error and the
// rollout goes on; the embeddings are real 64-dim vectors, stored with the
// notes and facts and used to rank them. mem0's extractor is also run on a
// scripted server (facts as JSON) with the real embeddings, so facts are
// embedded, stored and ranked.
func TestMemoryPoliciesRealServer(t *testing.T) {
	if os.Getenv("CI") != "" {
		if _, err := exec.LookPath("node"); err != nil {
			t.Fatal("node is missing with CI set: the tiny model server needs it")
		}
		if _, err := os.Stat(filepath.Join("..", "..", "shared", "llm", "serve")); err != nil {
			t.Fatalf("the tiny model server is missing with CI set: %v", err)
		}
	}
	st := bundleStore(t)
	ctx := context.Background()
	qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	actor := httptest.NewServer(oracle.New(qs))
	defer actor.Close()
	scripted := httptest.NewServer(&memoryServer{})
	defer scripted.Close()
	base, stop := startTinyServer(t, "4096")
	defer stop()
	model := servedModel(t, base)

	run := func(policy string, mc *MemoryConfig) storage.RolloutDetail {
		cfg := DefaultRunConfig()
		cfg.Endpoint, cfg.Model, cfg.Mode = actor.URL+"/v1", "scripted", ModeChat
		cfg.Objectives, cfg.Tasks, cfg.Policy, cfg.Concurrency, cfg.MaxTokens = 2, 1, policy, 1, 48
		cfg.Memory = mc
		sum, err := (&Runner{Store: st, Env: st}).Run(ctx, cfg, nil)
		require.NoError(t, err)
		rows, err := st.Rollouts(ctx, sum.Experiment)
		require.NoError(t, err)
		require.Len(t, rows, 1)
		d, err := st.Rollout(ctx, rows[0].ID)
		require.NoError(t, err)
		require.Equal(t, storage.StatusDone, d.Status, d.Error)
		require.Len(t, d.Turns, 3)
		return d
	}
	vectors := func(c core.SubCall) [][]float64 {
		require.Equal(t, core.RoleEmbedder, c.Role)
		var v [][]float64
		require.NoError(t, json.Unmarshal([]byte(c.Response), &v))
		for _, x := range v {
			require.Len(t, x, 64, "the server's 64-dim embeddings")
		}
		return v
	}

	t.Run("amem", func(t *testing.T) {
		d := run("amem", &MemoryConfig{URL: base + "/v1", Model: model})
		for _, tu := range d.Turns[1:] {
			for _, c := range tu.SubCalls {
				assert.Equal(t, "memory", c.Endpoint)
				assert.True(t, c.Usage.Reported, "the server reports usage")
				switch c.Role {
				case core.RoleExtractor:
					assert.Contains(t, c.Error, "malformed JSON reply", "a story is not JSON")
				case core.RoleEmbedder:
					vectors(c)
				}
			}
		}
		// Turn 2 retrieved note 0 by its real embedding.
		assert.Equal(t, []string{core.RoleEmbedder, core.RoleExtractor, core.RoleEmbedder, core.RoleUpdater}, roles(d.Turns[2].SubCalls))
		var state struct {
			Notes []core.Note `json:"notes"`
		}
		require.NoError(t, json.Unmarshal([]byte(d.Turns[2].MemoryState), &state))
		require.Len(t, state.Notes, 2)
		assert.Equal(t, vectors(d.Turns[1].SubCalls[1])[0], state.Notes[0].Vec, "the stored note carries its embedding")
		assert.Equal(t, "- "+state.Notes[0].Content+"\n", d.Turns[2].Memory)
	})

	t.Run("mem0", func(t *testing.T) {
		// Facts from the scripted extractor, embeddings from the real model.
		d := run("mem0", &MemoryConfig{URL: scripted.URL + "/v1", Model: "mem", EmbeddingsURL: base + "/v1", EmbeddingsModel: model, K: 2})
		var state struct {
			Facts []core.Fact `json:"facts"`
		}
		require.NoError(t, json.Unmarshal([]byte(d.Turns[2].MemoryState), &state))
		require.NotEmpty(t, state.Facts)
		vecs := make([][]float64, len(state.Facts))
		for i, f := range state.Facts {
			require.Len(t, f.Vec, 64)
			vecs[i] = f.Vec
		}
		calls := d.Turns[2].SubCalls
		query := vectors(calls[len(calls)-1])[0]
		ranked, err := core.RankCosine(query, vecs, 2)
		require.NoError(t, err)
		want := ""
		for _, r := range ranked {
			want += "- " + state.Facts[r.Index].Text + "\n"
		}
		assert.Equal(t, want, d.Turns[2].Memory, "the top-2 facts by real embedding entered the context")
		assert.Equal(t, "embeddings", calls[len(calls)-1].Endpoint)

		// Everything on the real model: the story replies are flagged, no panic.
		d = run("mem0", &MemoryConfig{URL: base + "/v1", Model: model})
		for _, tu := range d.Turns[1:] {
			require.Equal(t, []string{core.RoleExtractor}, roles(tu.SubCalls))
			assert.True(t, strings.HasPrefix(tu.SubCalls[0].Error, "malformed JSON reply"), tu.SubCalls[0].Error)
		}
	})
}
