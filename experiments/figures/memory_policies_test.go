package figures

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/internal/fixture"
	"github.com/mem1lab/mem1lab/storage"
)

// memoryPolicies are every policy mem1lab offers, as charted side by side.
var memoryPolicies = []string{"mem1", "full", "closed-book", "summary:2", "resum", "memagent", "mem0", "mem0:add-only", "amem"}

// plainMemory is a scripted memory endpoint: one JSON reply that every memory
// prompt can use (a fact, note metadata, no evolution, no update), and
// embeddings as hashed bags of words.
func plainMemory(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == "/v1/embeddings" {
		var req struct {
			Input []string `json:"input"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		var data []any
		for i, text := range req.Input {
			v := make([]float64, 8)
			for _, word := range strings.Fields(text) {
				h := fnv.New32a()
				_, _ = h.Write([]byte(word))
				v[h.Sum32()%8]++
			}
			data = append(data, map[string]any{"index": i, "embedding": v})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"data": data, "usage": map[string]int{"prompt_tokens": 3 * len(req.Input)}})
		return
	}
	reply := `{"facts": ["a fact was noted"], "keywords": ["k"], "context": "c", "tags": ["t"], "should_evolve": false, "memory": []}`
	_ = json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
		"message": map[string]any{"role": "assistant", "content": reply}}}, "usage": map[string]int{"prompt_tokens": 50, "completion_tokens": 20}})
}

// TestEveryPolicyOnOneChart runs every policy with the retrieval-oracle actor
// over 1, 2, 4 and 8 HotpotQA objectives and draws the accuracy and peak-token
// charts: one line per policy, one point per objective count. With
// MEM1LAB_WRITE_FIGURES set it writes them to docs/screenshots.
func TestEveryPolicyOnOneChart(t *testing.T) {
	bundle := filepath.Join("..", "..", "..", "shared", "data", "qa-bundle")
	if _, err := os.Stat(filepath.Join(bundle, "unified", "questions.jsonl")); err != nil {
		fixture.Missing(t, "qa-bundle missing: %v", err)
	}
	ctx := context.Background()
	st, err := storage.Open(filepath.Join(t.TempDir(), "lab.db"))
	require.NoError(t, err)
	defer st.Close()
	_, err = st.ImportBundle(ctx, bundle)
	require.NoError(t, err)
	qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	actor := httptest.NewServer(oracle.New(qs))
	defer actor.Close()
	mem := httptest.NewServer(http.HandlerFunc(plainMemory))
	defer mem.Close()

	cfg := experiments.DefaultRunConfig()
	cfg.Endpoint, cfg.Model, cfg.Mode, cfg.Concurrency = actor.URL+"/v1", oracle.ModelName, experiments.ModeChat, 2
	cfg.ObjectivesGrid, cfg.Objectives, cfg.Tasks = []int{1, 2, 4, 8}, 1, 2
	cfg.Policies, cfg.Policy = memoryPolicies, memoryPolicies[0]
	cfg.Memory = &experiments.MemoryConfig{URL: mem.URL + "/v1", Model: "scripted"}
	sum, err := (&experiments.Runner{Store: st, Env: st}).Run(ctx, cfg, nil)
	require.NoError(t, err)
	for _, g := range sum.Groups {
		assert.Zero(t, g.Failed, "%s n%d", g.Policy, g.Objectives)
	}
	d, _, err := Load(ctx, st, []int64{sum.Experiment}, LoadOptions{})
	require.NoError(t, err)
	for _, kind := range []Kind{Accuracy, Peak} {
		// The request peak: eval.py's paper peak leaves out rollouts whose lenient
		// Exact_match is 0, and closed-book answers nothing right with the oracle.
		f, err := Build(d, Options{Kind: kind, PeakCount: PeakRequest, Title: fmt.Sprintf("Every memory policy, oracle actor (%s)", kind)})
		require.NoError(t, err)
		assert.Equal(t, memoryPoliciesSorted(), f.Labels)
		assert.Equal(t, len(memoryPolicies)*4, f.Points)
		if os.Getenv("MEM1LAB_WRITE_FIGURES") != "" {
			out, err := os.Create(filepath.Join("..", "..", "docs", "screenshots", "memory-policies-"+string(kind)+".png"))
			require.NoError(t, err)
			require.NoError(t, f.Write(out, "png", DoubleColumn, 150, nil))
			require.NoError(t, out.Close())
		}
	}
}

func memoryPoliciesSorted() []string {
	out := append([]string(nil), memoryPolicies...)
	sort.Strings(out)
	return out
}
