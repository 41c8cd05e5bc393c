package app

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

// TestSecretsNeverReachTheStoreOrOutput: a key in the endpoint URL and a key
// in an environment variable, echoed back by the server in its error bodies,
// appear nowhere in the store files, the exports, stdout/stderr or the
// arguments; the server still receives both keys as Authorization headers.
func TestSecretsNeverReachTheStoreOrOutput(t *testing.T) {
	db, qs := oracleQuestions(t)
	const urlKey, envKey = "sk-url-4f9c2e7d1b", "sk-env-8a3b6c0e5f"
	basic := base64.StdEncoding.EncodeToString([]byte("alice:" + urlKey))
	t.Setenv("MEM1LAB_TEST_KEY", envKey)
	ag := oracle.New(qs)
	var n atomic.Int64
	var mu sync.Mutex
	auths := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := r.Header.Get("Authorization")
		mu.Lock()
		auths[a]++
		mu.Unlock()
		if strings.HasSuffix(r.URL.Path, "completions") && !strings.Contains(promptOf(r), "Say OK.") && n.Add(1)%3 == 1 {
			// A careless server echoes the credentials it got in its error page.
			key := strings.TrimPrefix(a, "Bearer ")
			if raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(a, "Basic ")); err == nil {
				_, key, _ = strings.Cut(string(raw), ":")
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = fmt.Fprintf(w, `{"error":{"message":"auth failed for %s (header Authorization: %s) at %s","type":"server_error","param":null,"code":null}}`,
				key, a, "http://alice:"+key+"@upstream/v1")
			return
		}
		ag.ServeHTTP(w, r)
	}))
	defer srv.Close()
	withUser := strings.Replace(srv.URL, "http://", "http://alice:"+urlKey+"@", 1) + "/v1"
	cfgFile := filepath.Join(t.TempDir(), "exp.toml")
	require.NoError(t, os.WriteFile(cfgFile, []byte(fmt.Sprintf("endpoint = %q\nmodel = %q\ndataset = \"hotpotqa\"\nobjectives = 2\ntasks = 3\nconcurrency = 1\nretry_base_seconds = 0.001\n",
		withUser, oracle.ModelName)), 0o644))

	var outputs []string
	var allArgs [][]string
	cli := func(args ...string) int {
		allArgs = append(allArgs, args)
		code, out, errOut := run(t, args...)
		outputs = append(outputs, out, errOut)
		return code
	}
	require.Equal(t, 0, cli("run", "--db", db, "--config", cfgFile), strings.Join(outputs, "\n"))
	require.Equal(t, 0, cli("run", "--db", db, "--endpoint", srv.URL+"/v1", "--model", oracle.ModelName, "--objectives", "2",
		"--tasks", "3", "--api-key-env", "MEM1LAB_TEST_KEY", "--policy", "full", "--concurrency", "1"), strings.Join(outputs, "\n"))
	assert.Positive(t, auths["Basic "+basic], "the URL's key is sent as a Basic header")
	assert.Positive(t, auths["Bearer "+envKey], "the env key is sent as a bearer token")
	assert.Positive(t, n.Load())

	dir := t.TempDir()
	var files []string
	for _, what := range []string{"rollouts", "turns", "aggregates", "trajectories"} {
		out := filepath.Join(dir, what+".out")
		require.Equal(t, 0, cli("export", "--db", db, "--experiment", "1,2", "--what", what, "--out", out), what)
		files = append(files, out)
	}
	require.Equal(t, 0, cli("ls", "--db", db))
	require.Equal(t, 0, cli("show", "1", "--db", db))
	stored, err := filepath.Glob(db + "*")
	require.NoError(t, err)
	files = append(files, stored...)

	secrets := []string{urlKey, envKey, basic}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, s := range secrets {
			assert.NotContains(t, string(b), s, "%s holds a secret", filepath.Base(f))
		}
	}
	for i, o := range outputs {
		for _, s := range secrets {
			assert.NotContains(t, o, s, "output %d", i)
		}
	}
	for _, args := range allArgs {
		for _, s := range secrets {
			assert.NotContains(t, strings.Join(args, " "), s)
		}
	}
	// The echoed errors were stored, redacted.
	st, err := storage.Open(db)
	require.NoError(t, err)
	defer st.Close()
	redacted := 0
	for id := int64(1); id <= 6; id++ {
		as, err := st.Attempts(context.Background(), id)
		require.NoError(t, err)
		for _, a := range as {
			assert.Contains(t, a.Error, "auth failed for [redacted] (header Authorization: [redacted]")
			redacted++
		}
	}
	assert.Positive(t, redacted)
	e, err := st.Experiment(context.Background(), 1)
	require.NoError(t, err)
	assert.Contains(t, e.ConfigJSON, `"endpoint":"`+srv.URL+`/v1"`, "the stored config keeps the URL without its userinfo")
}
