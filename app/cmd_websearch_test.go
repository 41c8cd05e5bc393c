package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

// TestRunWithSerperFromCLI: `run --retriever serper:URL` against a local
// Serper-shaped server searches the web for every query with the key from
// $SERPER_API_KEY, stores the rendered results, keeps only the variable's
// name in the config, and a rerun is answered from the store's cache.
func TestRunWithSerperFromCLI(t *testing.T) {
	db, url := oracleEndpoint(t)
	const key = "serper-cli-test-key-42"
	var calls atomic.Int64
	serper := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		if r.URL.Path != "/search" || r.Header.Get("X-API-KEY") != key {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		var body struct {
			Q   string `json:"q"`
			Num int    `json:"num"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		var organic []map[string]any
		for i := 1; i <= body.Num; i++ {
			organic = append(organic, map[string]any{"title": fmt.Sprintf("Web %d", i), "snippet": "About " + body.Q, "link": fmt.Sprintf("https://w/%d", i)})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"answerBox": map[string]any{"title": "Box", "answer": "A"}, "organic": organic})
	}))
	defer serper.Close()
	t.Setenv(experiments.DefaultSerperKeyEnv, key)

	args := []string{"run", "--db", db, "--endpoint", url, "--model", oracle.ModelName,
		"--dataset", "hotpotqa", "--objectives", "2", "--tasks", "2", "--retriever", "serper:" + serper.URL, "--json", "--quiet"}
	code, out, errOut := run(t, args...)
	require.Equal(t, 0, code, errOut)
	var sum experiments.Summary
	require.NoError(t, json.Unmarshal([]byte(out), &sum))
	first := calls.Load()
	require.Positive(t, first)

	st, err := storage.Open(db)
	require.NoError(t, err)
	e, err := st.Experiment(context.Background(), sum.Experiment)
	require.NoError(t, err)
	assert.Contains(t, e.ConfigJSON, `"kind":"serper"`)
	assert.NotContains(t, e.ConfigJSON, key)
	rows, err := st.Rollouts(context.Background(), sum.Experiment)
	require.NoError(t, err)
	searches := 0
	for _, row := range rows {
		turns, err := st.Turns(context.Background(), row.ID)
		require.NoError(t, err)
		for _, tu := range turns {
			if tu.Action == core.ActionSearch && tu.Information != "" {
				searches++
				assert.Contains(t, tu.Information, "Doc 1(Title: \"Box\") A\nDoc 2(Title: \"Web 1\") About "+tu.Query)
				assert.Len(t, tu.Passages, 4)
			}
		}
	}
	assert.Positive(t, searches)
	require.NoError(t, st.Close())

	code, _, errOut = run(t, args...)
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, first, calls.Load(), "the rerun's searches all come from the cache")

	raw, err := os.ReadFile(db)
	require.NoError(t, err)
	assert.NotContains(t, string(raw), key)

	t.Setenv(experiments.DefaultSerperKeyEnv, "")
	code, _, errOut = run(t, "run", "--db", db, "--endpoint", url, "--model", oracle.ModelName, "--retriever", "serper:"+serper.URL, "--quiet")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errOut, "$SERPER_API_KEY is not set")
}

// TestWebSearchDemoDrivesAWebQARun: `websearch-demo` serves the store's
// corpus in Serper's shape; the oracle agent's run through it with
// `--retriever serper:URL` finds gold answers in the rendered results.
func TestWebSearchDemoDrivesAWebQARun(t *testing.T) {
	db, url := oracleEndpoint(t)
	const key = "demo-key-7"
	t.Setenv(experiments.DefaultSerperKeyEnv, key)
	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	done := make(chan error, 1)
	go func() {
		c := &CLI{Stdout: &logs, Stderr: &logs}
		done <- c.cmdWebSearchDemo(ctx, []string{"--db", db, "--addr", "127.0.0.1:0"})
	}()
	defer func() {
		http.DefaultClient.CloseIdleConnections() // the retriever's keep-alive connections
		cancel()
		assert.NoError(t, <-done)
	}()
	listening := regexp.MustCompile(`listening on (http://\S+)/search`)
	var base string
	require.Eventually(t, func() bool {
		if m := listening.FindStringSubmatch(logs.String()); m != nil {
			base = m[1]
			return true
		}
		return false
	}, 2*time.Minute, 10*time.Millisecond, "never listened: %s", logs.String())
	assert.Contains(t, logs.String(), "X-API-KEY must match $SERPER_API_KEY")

	code, out, errOut := run(t, "run", "--db", db, "--endpoint", url, "--model", oracle.ModelName,
		"--dataset", "hotpotqa", "--objectives", "1", "--tasks", "4", "--retriever", "serper:"+base, "--json", "--quiet")
	require.Equal(t, 0, code, errOut)
	var sum experiments.Summary
	require.NoError(t, json.Unmarshal([]byte(out), &sum))
	st, err := storage.OpenReadOnly(db)
	require.NoError(t, err)
	defer st.Close()
	rows, err := st.Rollouts(context.Background(), sum.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 4)
	em := 0.0
	for _, row := range rows {
		assert.Equal(t, storage.StatusDone, row.Status, row.Error)
		em += row.EM
		turns, err := st.Turns(context.Background(), row.ID)
		require.NoError(t, err)
		for _, tu := range turns {
			for _, p := range tu.Passages {
				assert.True(t, strings.HasPrefix(p.ID, "passage:"), p.ID)
			}
		}
	}
	assert.Positive(t, em, "the oracle finds gold answers in web results built from the corpus")
}
