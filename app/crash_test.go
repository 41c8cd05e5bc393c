package app

import (
	"bytes"
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

// slowOracle is the retrieval-oracle agent with a little latency, calling
// onCall with the running count of generation requests.
type slowOracle struct {
	next    http.Handler
	latency time.Duration
	mu      sync.Mutex
	n       int
	at      int
	hit     chan struct{}
}

func (s *slowOracle) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "completions") {
		s.mu.Lock()
		s.n++
		if s.n == s.at {
			close(s.hit)
		}
		s.mu.Unlock()
		time.Sleep(s.latency)
	}
	s.next.ServeHTTP(w, r)
}

// TestCrashAndResume runs `mem1lab run` as a subprocess on a 200-rollout
// experiment, kills it with SIGKILL mid-way, and resumes it with --resume:
// every rollout completes once, no turn is duplicated or lost, each resumed
// rollout ends as an uninterrupted run of the same task does, and the store
// passes PRAGMA integrity_check.
func TestCrashAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	hotpot := needRaw(t, "hotpotqa_dev_distractor.rpt-test.jsonl")
	dir := t.TempDir()
	db := filepath.Join(dir, "lab.db")
	code, _, errOut := run(t, "import", "--db", db, "--hotpot", hotpot)
	require.Equal(t, 0, code, errOut)

	bin := filepath.Join(dir, "mem1lab")
	build := exec.Command("go", "build", "-tags", "ci,sqlite_fts5", "-o", bin, "..")
	var buildOut bytes.Buffer
	build.Stdout, build.Stderr = &buildOut, &buildOut
	require.NoError(t, build.Run(), "go build: %s", buildOut.String())

	st, err := storage.Open(db)
	require.NoError(t, err)
	ctx := context.Background()
	qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(qs), 400)
	srvAgent := &slowOracle{next: oracle.New(qs), latency: 10 * time.Millisecond, at: 250, hit: make(chan struct{})}
	srv := httptest.NewServer(srvAgent)
	defer srv.Close()

	args := []string{"run", "--db", db, "--endpoint", srv.URL + "/v1", "--model", oracle.ModelName,
		"--dataset", "hotpotqa", "--objectives", "2", "--tasks", "200", "--concurrency", "8", "--quiet", "--json"}
	first := exec.Command(bin, args...)
	var firstOut bytes.Buffer
	first.Stdout, first.Stderr = &firstOut, &firstOut
	require.NoError(t, first.Start())
	select {
	case <-srvAgent.hit:
	case <-time.After(60 * time.Second):
		_ = first.Process.Kill()
		t.Fatalf("the run never reached 250 calls: %s", firstOut.String())
	}
	require.NoError(t, first.Process.Signal(syscall.SIGKILL))
	err = first.Wait()
	require.Error(t, err, "killed")

	exps, err := st.Experiments(ctx)
	require.NoError(t, err)
	require.Len(t, exps, 1)
	expID := exps[0].ID
	rows, err := st.Rollouts(ctx, expID)
	require.NoError(t, err)
	require.Len(t, rows, 200)
	counts := map[string]int{}
	partial := 0
	for _, r := range rows {
		counts[r.Status]++
		if r.Status == storage.StatusRunning {
			turns, err := st.Turns(ctx, r.ID)
			require.NoError(t, err)
			if len(turns) > 0 {
				partial++
			}
		}
	}
	t.Logf("at the kill: %v, %d interrupted rollouts with stored turns", counts, partial)
	assert.Positive(t, counts[storage.StatusRunning], "rollouts were in flight")
	assert.Positive(t, counts[storage.StatusDone])
	assert.Less(t, counts[storage.StatusDone], 200)

	// Without --resume the same config is refused, not duplicated.
	code2 := exec.Command(bin, args...)
	out2, _ := code2.CombinedOutput()
	assert.Contains(t, string(out2), "--resume")

	second := exec.Command(bin, "run", "--db", db, "--resume", strconv.FormatInt(expID, 10), "--quiet", "--json")
	out, err := second.CombinedOutput()
	require.NoError(t, err, "resume: %s", out)

	// A reference run of the same tasks, never interrupted.
	cfg, err := (&experiments.Runner{Store: st}).StoredConfig(ctx, expID)
	require.NoError(t, err)
	cfg.Name = "reference"
	ref, err := (&experiments.Runner{Store: st, Env: st}).Run(ctx, cfg, nil)
	require.NoError(t, err)
	refRows, err := st.Rollouts(ctx, ref.Experiment)
	require.NoError(t, err)
	refByKey := map[string]storage.RolloutRow{}
	for _, r := range refRows {
		refByKey[r.TaskKey] = r
	}

	rows, err = st.Rollouts(ctx, expID)
	require.NoError(t, err)
	require.Len(t, rows, 200)
	for _, r := range rows {
		require.Equal(t, storage.StatusDone, r.Status, "rollout %d: %s", r.ID, r.Error)
		turns, err := st.Turns(ctx, r.ID)
		require.NoError(t, err)
		require.Len(t, turns, 3, "rollout %d: two searches and the answer, none twice, none lost", r.ID)
		for i, tu := range turns {
			assert.Equal(t, i, tu.Index)
		}
		assert.Equal(t, core.ActionAnswer, turns[2].Action)
		assert.Equal(t, 3, r.Turns)
		want := refByKey[r.TaskKey]
		assert.Equal(t, want.EM, r.EM, "task %s ends as an uninterrupted run does", r.TaskKey)
		refTurns, err := st.Turns(ctx, want.ID)
		require.NoError(t, err)
		for i := range turns {
			assert.Equal(t, refTurns[i].Context, turns[i].Context, "task %s turn %d: same context", r.TaskKey, i)
		}
	}
	e, err := st.Experiment(ctx, expID)
	require.NoError(t, err)
	assert.Equal(t, storage.StatusDone, e.Status)
	assert.Equal(t, 200, e.Done)
	raw, err := sql.Open("sqlite3", "file:"+db+"?mode=ro")
	require.NoError(t, err)
	defer raw.Close()
	var dup int
	require.NoError(t, raw.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT rollout_id, idx FROM turns
		GROUP BY rollout_id, idx HAVING COUNT(*) > 1)`).Scan(&dup))
	assert.Zero(t, dup)
	var check string
	require.NoError(t, raw.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check))
	assert.Equal(t, "ok", check)
	require.NoError(t, st.IntegrityCheck(ctx))
	require.NoError(t, st.Close())
}
