package experiments

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// countingEnv counts the searches that reach it.
type countingEnv struct{ n atomic.Int64 }

func (e *countingEnv) Search(ctx context.Context, q string, k int) ([]core.Passage, error) {
	e.n.Add(1)
	return fixedEnv{}.Search(ctx, q, k)
}

// With cache = true, the first turn of mem1 and of full on one task is one
// request: the second is answered from the cache, recorded as a cached turn
// with no model latency, and not counted as a call to the endpoint. A rerun
// of the same grid sends nothing to the server, and its searches come from
// the retrieval cache.
func TestResponseCache(t *testing.T) {
	hotpot := requireBundleFile(t, filepath.Join("raw", "hotpotqa_dev_distractor.rpt-test.jsonl"))
	st, err := storage.Open(filepath.Join(t.TempDir(), "lab.db"))
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	_, err = st.ImportHotpotDistractor(ctx, hotpot)
	require.NoError(t, err)
	stub := stubServer(0)
	defer stub.Close()
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		stub.Config.Handler.ServeHTTP(w, r)
	}))
	defer srv.Close()

	cfg := DefaultRunConfig()
	cfg.Name = "cache 1"
	cfg.Endpoint, cfg.Model, cfg.Objectives, cfg.Tasks, cfg.Concurrency, cfg.MaxTurns = srv.URL+"/v1", "stub", 1, 2, 1, 2
	cfg.Policies, cfg.Cache = []string{"mem1", "full"}, true
	cfg.SessionUser = true // per-rollout user fields must not split the cache
	env := &countingEnv{}
	var last Progress
	sum, err := (&Runner{Store: st, Env: env}).Run(ctx, cfg, func(p Progress) { last = p })
	require.NoError(t, err)
	rows, err := st.Rollouts(ctx, sum.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 4)
	firstCached := map[string]int{}
	turns, cachedTurns := 0, 0
	for _, r := range rows {
		ts, err := st.Turns(ctx, r.ID)
		require.NoError(t, err)
		require.Len(t, ts, 2)
		for _, tu := range ts {
			turns++
			if tu.Cached {
				cachedTurns++
				assert.Equal(t, tu.RetrievalLatency, tu.Latency, "a cached turn has no model latency")
			}
		}
		if ts[0].Cached {
			firstCached[r.TaskKey]++
		}
	}
	wantFirst := map[string]int{}
	for _, r := range rows {
		wantFirst[r.TaskKey] = 1
	}
	require.Len(t, wantFirst, 2)
	assert.Equal(t, wantFirst, firstCached,
		"one of each task's two first turns was answered from the cache")
	assert.Equal(t, int64(turns-cachedTurns), calls.Load(), "every uncached turn is one server call")
	require.Len(t, last.Endpoints, 1)
	assert.Equal(t, turns-cachedTurns, last.Endpoints[0].Requests, "cache hits are not GPU calls")
	assert.Equal(t, cachedTurns, last.Endpoints[0].CacheHits)

	before, searches := calls.Load(), env.n.Load()
	cfg.Name = "cache 2"
	sum2, err := (&Runner{Store: st, Env: env}).Run(ctx, cfg, nil)
	require.NoError(t, err)
	assert.Equal(t, before, calls.Load(), "a rerun is answered from the cache")
	assert.Equal(t, searches, env.n.Load(), "and so are its searches")
	rows2, err := st.Rollouts(ctx, sum2.Experiment)
	require.NoError(t, err)
	for _, r := range rows2 {
		ts, err := st.Turns(ctx, r.ID)
		require.NoError(t, err)
		for _, tu := range ts {
			assert.True(t, tu.Cached)
		}
	}

	cfg.Cache = false
	cfg.Name = "no cache"
	_, err = (&Runner{Store: st, Env: env}).Run(ctx, cfg, nil)
	require.NoError(t, err)
	assert.Equal(t, before+8, calls.Load(), "without cache every turn calls the server")
}

// cache = false leaves the config hash as it was before the key existed.
func TestCacheKeyOnlyWhenSet(t *testing.T) {
	cfg := DefaultRunConfig()
	b, err := cfg.CanonicalTOML()
	require.NoError(t, err)
	assert.NotContains(t, string(b), "cache")
	h := cfg.Hash()
	cfg.Cache = true
	b, err = cfg.CanonicalTOML()
	require.NoError(t, err)
	assert.True(t, strings.Contains(string(b), "cache = true"))
	assert.NotEqual(t, h, cfg.Hash())
}

func TestResponseCacheKey(t *testing.T) {
	a := ResponseCacheKey("http://h/v1", "m", []byte(`{"model":"m","prompt":"p","user":"mem1lab-e1-r1"}`))
	b := ResponseCacheKey("http://h/v1", "m", []byte(`{"model":"m","prompt":"p","user":"mem1lab-e1-r2"}`))
	assert.Equal(t, a, b, "the session key is not part of the request's identity")
	assert.NotEqual(t, a, ResponseCacheKey("http://h2/v1", "m", []byte(`{"model":"m","prompt":"p"}`)))
	assert.NotEqual(t, a, ResponseCacheKey("http://h/v1", "m", []byte(`{"model":"m","prompt":"q"}`)))
	assert.NotEqual(t, a, ResponseCacheKey("http://h/v1", "m2", []byte(`{"model":"m","prompt":"p"}`)))
}
