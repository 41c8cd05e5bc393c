package experiments

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/storage"
)

// Every request carries the rollout's session key, in the header and the
// OpenAI user field, the same on each of its turns, on the retry of a failed
// call and after a resume.
func TestSessionKeyStableAcrossTurnsRetriesResume(t *testing.T) {
	hotpot := requireBundleFile(t, filepath.Join("raw", "hotpotqa_dev_distractor.rpt-test.jsonl"))
	st, err := storage.Open(filepath.Join(t.TempDir(), "lab.db"))
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	_, err = st.ImportHotpotDistractor(ctx, hotpot)
	require.NoError(t, err)

	stub := stubServer(0)
	defer stub.Close()
	var mu sync.Mutex
	type sent struct{ header, user string }
	var reqs []sent
	failed := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var b struct {
			User string `json:"user"`
		}
		_ = json.Unmarshal(body, &b)
		h := r.Header.Get("X-Rollout")
		mu.Lock()
		reqs = append(reqs, sent{h, b.User})
		first := !failed[h]
		failed[h] = true
		mu.Unlock()
		if first { // each rollout's first call fails once and is retried
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		resp, err := http.Post(stub.URL+r.URL.Path, "application/json", nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.Copy(w, resp.Body)
	}))
	defer srv.Close()

	cfg := DefaultRunConfig()
	cfg.Name = "sessions"
	cfg.Endpoint, cfg.Model, cfg.Objectives, cfg.Tasks, cfg.Concurrency, cfg.MaxTurns = srv.URL+"/v1", "stub", 1, 3, 1, 3
	cfg.SessionHeader, cfg.SessionUser = "X-Rollout", true
	cfg.Retries, cfg.RetryBaseSeconds = 3, 0.001
	runCtx, cancel := context.WithCancel(ctx)
	sum, err := (&Runner{Store: st, Env: fixedEnv{}}).Run(runCtx, cfg, func(p Progress) {
		if p.Turns == 4 { // mid-way through the second rollout
			cancel()
		}
	})
	require.Error(t, err, "cancelled")
	mu.Lock()
	before := len(reqs)
	mu.Unlock()
	_, err = (&Runner{Store: st, Env: fixedEnv{}}).Resume(ctx, sum.Experiment, nil)
	require.NoError(t, err)

	rows, err := st.Rollouts(ctx, sum.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 3)
	want := map[string]bool{}
	for _, r := range rows {
		assert.Equal(t, storage.StatusDone, r.Status)
		want[RolloutSessionKey(sum.Experiment, r.ID)] = true
	}
	mu.Lock()
	defer mu.Unlock()
	require.Greater(t, len(reqs), before, "the resume sent requests")
	perKey := map[string]int{}
	for _, s := range reqs {
		require.NotEmpty(t, s.header)
		assert.Equal(t, s.header, s.user, "the user field carries the same key")
		assert.True(t, want[s.header], "key %q names one of the experiment's rollouts", s.header)
		perKey[s.header]++
	}
	assert.Len(t, perKey, 3, "one key per rollout")
	for k, n := range perKey {
		assert.GreaterOrEqual(t, n, 4, "%s: a failed call, its retry and later turns share the key", k)
	}
	// The resumed rollout's calls after the resume used the key it had before.
	resumed := map[string]bool{}
	for _, s := range reqs[:before] {
		resumed[s.header] = true
	}
	after := map[string]bool{}
	for _, s := range reqs[before:] {
		after[s.header] = true
	}
	shared := 0
	for k := range after {
		if resumed[k] {
			shared++
		}
	}
	assert.Positive(t, shared, "a rollout interrupted mid-way kept its key after the resume")
}

func TestRouterPresets(t *testing.T) {
	for _, name := range []string{"vllm-router", "sglang-router", "litellm-proxy"} {
		p, ok := RouterPresetByName(name)
		require.True(t, ok, name)
		prof := p.Profile("r", "", "m")
		require.NoError(t, prof.Validate(), name)
		assert.Equal(t, DefaultSessionHeader, prof.SessionHeader)
		assert.True(t, prof.SessionUser)
	}
	_, ok := RouterPresetByName("nope")
	assert.False(t, ok)
}
