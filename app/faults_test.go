package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

// oracleQuestions imports the HotpotQA dev sample into a fresh store and
// returns its path and questions.
func oracleQuestions(t *testing.T) (string, []storage.Question) {
	t.Helper()
	hotpot := needRaw(t, "hotpotqa_dev_distractor.rpt-dev.jsonl")
	db := filepath.Join(t.TempDir(), "lab.db")
	code, _, errOut := run(t, "import", "--db", db, "--hotpot", hotpot)
	require.Equal(t, 0, code, errOut)
	st, err := storage.Open(db)
	require.NoError(t, err)
	qs, err := st.Questions(context.Background(), "hotpotqa", 0, 0)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	return db, qs
}

// promptOf reads the prompt (completions) or the messages (chat) of a request.
func promptOf(r *http.Request) string {
	b, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(b))
	return string(b)
}

// TestRunFailuresExitNonZeroAndRetryFailed: a rollout the server refuses makes
// `run` exit 1 with one stderr line per failure kind; `run --resume ID
// --retry-failed` then plays only that rollout again and exits 0.
func TestRunFailuresExitNonZeroAndRetryFailed(t *testing.T) {
	db, qs := oracleQuestions(t)
	ag := oracle.New(qs)
	victim := qs[1].Question // task 2 of 1-objective consecutive tasks
	var broken atomic.Bool
	broken.Store(true)
	var mu sync.Mutex
	var seen []string // prompts of generation requests
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "completions") {
			p := promptOf(r)
			mu.Lock()
			seen = append(seen, p)
			mu.Unlock()
			if broken.Load() && strings.Contains(p, jsonText(victim)) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"error":{"message":"prompt refused","type":"invalid_request_error","param":null,"code":null}}`))
				return
			}
		}
		ag.ServeHTTP(w, r)
	}))
	defer srv.Close()

	code, out, errOut := run(t, "run", "--db", db, "--endpoint", srv.URL+"/v1", "--model", oracle.ModelName,
		"--objectives", "1", "--tasks", "3", "--concurrency", "1", "--quiet", "--json")
	assert.Equal(t, 1, code, "a failed rollout makes the run fail")
	assert.Contains(t, errOut, "1 of 3 rollouts failed")
	assert.Regexp(t, `(?m)^  1 http_4xx, first rollout \d+: .*prompt refused`, errOut)
	var sum struct {
		Experiment int64 `json:"experiment"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &sum), out)

	st, err := storage.Open(db)
	require.NoError(t, err)
	before, err := st.Rollouts(context.Background(), sum.Experiment)
	require.NoError(t, err)
	require.NoError(t, st.Close())

	broken.Store(false)
	mu.Lock()
	seen = nil
	mu.Unlock()
	code, _, errOut = run(t, "run", "--db", db, "--resume", itoa(sum.Experiment), "--retry-failed", "--quiet")
	require.Equal(t, 0, code, errOut)
	mu.Lock()
	for _, p := range seen {
		if !strings.Contains(p, "Say OK.") { // the preflight's one-token request
			assert.Contains(t, p, jsonText(victim), "only the failed rollout runs again")
		}
	}
	mu.Unlock()
	st, err = storage.Open(db)
	require.NoError(t, err)
	defer st.Close()
	after, err := st.Rollouts(context.Background(), sum.Experiment)
	require.NoError(t, err)
	require.Len(t, after, 3)
	for i := range after {
		assert.Equal(t, storage.StatusDone, after[i].Status, after[i].Error)
		if before[i].Status == storage.StatusDone {
			assert.Equal(t, before[i], after[i], "a done rollout is untouched")
		}
	}

	code, _, errOut = run(t, "run", "--db", db, "--retry-failed")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "--retry-failed needs --resume")
}

func jsonText(s string) string {
	b, _ := json.Marshal(s)
	return strings.Trim(string(b), `"`)
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestPreflightFailsFast: an unreachable endpoint, or one that refuses the
// model, stops `run` before anything is queued, with the reason.
func TestPreflightFailsFast(t *testing.T) {
	db, _ := oracleQuestions(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "http://" + l.Addr().String() + "/v1"
	require.NoError(t, l.Close())
	code, _, errOut := run(t, "run", "--db", db, "--endpoint", dead, "--model", "m", "--tasks", "0", "--quiet")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "preflight failed, nothing queued")
	assert.Contains(t, errOut, "connection refused")

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/models") {
			_, _ = w.Write([]byte(`{"object":"list","data":[{"id":"other"}]}`))
			return
		}
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"message":"The model 'm' does not exist.","type":"NotFoundError","param":null,"code":404}}`))
	}))
	defer srv.Close()
	code, _, errOut = run(t, "run", "--db", db, "--endpoint", srv.URL+"/v1", "--model", "m", "--quiet")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "does not exist")

	code, out, _ := run(t, "ls", "--db", db)
	require.Equal(t, 0, code)
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(out), "\n")+1, "no experiment was created:\n%s", out)
}

// TestExportFilesAreWorldReadable: exports are written 0644 like the GUI's.
func TestExportFilesAreWorldReadable(t *testing.T) {
	db := oracleStore(t)
	out := filepath.Join(t.TempDir(), "rollouts.csv")
	code, _, errOut := run(t, "export", "--db", db, "--experiment", "1", "--what", "rollouts", "--out", out)
	require.Equal(t, 0, code, errOut)
	fi, err := os.Stat(out)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), fi.Mode().Perm())
}

// TestHelpFitsEightyColumns: no line of `mem1lab help` is wider than 80.
func TestHelpFitsEightyColumns(t *testing.T) {
	code, out, _ := run(t, "help")
	require.Equal(t, 0, code)
	for _, line := range strings.Split(out, "\n") {
		assert.LessOrEqual(t, utf8.RuneCountInString(line), 80, "%q", line)
	}
	assert.Contains(t, out, "--retry-failed")
}
