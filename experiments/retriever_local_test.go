package experiments

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/experiments/retrieval"
	"github.com/mem1lab/mem1lab/storage"
)

func TestParseRetrieverLocalEngines(t *testing.T) {
	for _, kind := range []string{RetrieverBM25Tuned, RetrieverBleve} {
		rc, err := ParseRetriever(kind)
		require.NoError(t, err)
		require.NotNil(t, rc)
		assert.Equal(t, kind, rc.Kind)
		assert.Equal(t, kind, rc.String())
		assert.Empty(t, rc.validate())
		rc.URL = "http://x/retrieve"
		assert.NotEmpty(t, rc.validate(), "a local engine takes no url")
	}
	rc := &RetrieverConfig{Kind: "faiss"}
	require.Len(t, rc.validate(), 1)
	assert.Contains(t, rc.validate()[0].Error(), RetrieverBleve)
	_, err := NewRetriever(RunConfig{Retriever: &RetrieverConfig{Kind: RetrieverBleve}}, notAStore{})
	assert.ErrorContains(t, err, "has no store", "a local engine needs the store's corpus")
}

// notAStore is an environment that is not a store.
type notAStore struct{}

func (notAStore) Search(context.Context, string, int) ([]core.Passage, error) { return nil, nil }

// A run with a local engine as its retriever stores that engine's passages.
func TestRunWithLocalRetrieverEngines(t *testing.T) {
	st := bundleStore(t)
	ctx := context.Background()
	qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	model := httptest.NewServer(oracle.New(qs))
	defer model.Close()
	for _, kind := range []string{RetrieverBM25Tuned, RetrieverBleve} {
		t.Run(kind, func(t *testing.T) {
			cfg := DefaultRunConfig()
			cfg.Endpoint, cfg.Model = model.URL+"/v1", oracle.ModelName
			cfg.Objectives, cfg.Tasks, cfg.Concurrency = 2, 2, 1
			cfg.Retriever = &RetrieverConfig{Kind: kind}
			cfg.Name = "local retriever " + kind
			sum, err := (&Runner{Store: st, Env: st}).Run(ctx, cfg, nil)
			require.NoError(t, err)
			env, closer, err := retrieval.Open(ctx, kind, st)
			require.NoError(t, err)
			defer closer.Close()
			rows, err := st.Rollouts(ctx, sum.Experiment)
			require.NoError(t, err)
			require.Len(t, rows, 2)
			searches := 0
			for _, row := range rows {
				require.Equal(t, storage.StatusDone, row.Status, row.Error)
				turns, err := st.Turns(ctx, row.ID)
				require.NoError(t, err)
				for _, tu := range turns {
					if tu.Action != core.ActionSearch || tu.Information == "" {
						continue
					}
					searches++
					want, err := env.Search(ctx, tu.Query, 3)
					require.NoError(t, err)
					assert.Equal(t, want, tu.Passages, "turn %d of rollout %d", tu.Index, row.ID)
				}
			}
			assert.Positive(t, searches)
		})
	}
}
