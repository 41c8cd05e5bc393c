package app

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/zalando/go-keyring"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/webshop"
	"github.com/mem1lab/mem1lab/storage"
)

// shopRun is what a WebShop run's JSON summary says.
type shopRun struct {
	Experiment int64               `json:"experiment"`
	Groups     []experiments.Group `json:"groups"`
	Family     string              `json:"family"`
	FakeReward bool                `json:"fake_reward"`
}

// shopTurns is each task's stored turns (actions and observations), by task key.
func shopTurns(t *testing.T, db string, expID int64) (map[string][]string, map[string]storage.RolloutRow) {
	t.Helper()
	st, err := storage.OpenReadOnly(db)
	require.NoError(t, err)
	defer st.Close()
	rows, err := st.Rollouts(t.Context(), expID)
	require.NoError(t, err)
	turns, byKey := map[string][]string{}, map[string]storage.RolloutRow{}
	for _, r := range rows {
		ts, err := st.Turns(t.Context(), r.ID)
		require.NoError(t, err)
		for _, tu := range ts {
			turns[r.TaskKey] = append(turns[r.TaskKey], tu.Query+"|"+tu.Answer+"|"+tu.Information)
		}
		byKey[r.TaskKey] = r
	}
	return turns, byKey
}

// TestRunFamilyWebShopFromCLI: `mem1lab run --family webshop --env demo
// --endpoint scripted` plays the scripted shopper on the in-process fake
// WebShop and stores one rollout per goal with its reward.
func TestRunFamilyWebShopFromCLI(t *testing.T) {
	db := filepath.Join(t.TempDir(), "lab.db")
	code, out, errs := run(t, "run", "--db", db, "--family", "webshop", "--env", "demo", "--endpoint", "scripted",
		"--goals", "0-2", "--max-turns", "10", "--json", "--quiet")
	require.Equal(t, 0, code, errs)
	var got shopRun
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	assert.Equal(t, core.FamilyWebShop, got.Family)
	assert.True(t, got.FakeReward)
	require.Len(t, got.Groups, 1)
	assert.Equal(t, 3, got.Groups[0].Rollouts)
	assert.InDelta(t, 1.0, got.Groups[0].MeanEM, 1e-9, "the scripted shopper buys the goal's product on the fake")

	turns, rows := shopTurns(t, db, got.Experiment)
	require.Len(t, rows, 3)
	for key, r := range rows {
		assert.Equal(t, storage.StatusDone, r.Status, key)
		assert.InDelta(t, 1.0, r.EM, 1e-9, "%s: the reward is stored as the score", key)
		assert.NotEmpty(t, turns[key], key)
	}
	st, err := storage.OpenReadOnly(db)
	require.NoError(t, err)
	e, err := st.Experiment(t.Context(), got.Experiment)
	require.NoError(t, err)
	st.Close()
	var wc webshop.Config
	require.NoError(t, json.Unmarshal([]byte(e.ConfigJSON), &wc))
	assert.Equal(t, []int{0, 1, 2}, wc.Goals)
	assert.Equal(t, webshop.ScriptedModelName, wc.Model)
	assert.Equal(t, 10, wc.MaxTurns)

	// The plain text summary says the demo's reward has no type term.
	code, out, errs = run(t, "run", "--db", db, "--family", "webshop", "--endpoint", "scripted", "--goals", "4", "--quiet")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, "final reward ×100: 100.0")
	assert.Contains(t, out, "no product-type term")
}

// TestRunWebShopTOML: a TOML config with family = "webshop" and a [webshop]
// table runs like the flags; flags override it.
func TestRunWebShopTOML(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "lab.db")
	cfg := filepath.Join(dir, "shop.toml")
	require.NoError(t, os.WriteFile(cfg, []byte(`family = "webshop"
endpoint = "scripted"
policy = "full"
max_turns = 8
name = "shop-toml"

[webshop]
env = "demo"
goals = "3,5"
`), 0o644))
	code, out, errs := run(t, "run", "--db", db, "--config", cfg, "--json", "--quiet")
	require.Equal(t, 0, code, errs)
	var got shopRun
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	require.Len(t, got.Groups, 1)
	assert.Equal(t, "full", got.Groups[0].Policy)
	_, rows := shopTurns(t, db, got.Experiment)
	assert.Len(t, rows, 2)
	assert.Contains(t, rows, "webshop/goal/0003")
	assert.Contains(t, rows, "webshop/goal/0005")

	code, out, errs = run(t, "run", "--db", db, "--config", cfg, "--goals", "7", "--json", "--quiet")
	require.Equal(t, 0, code, errs)
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	_, rows = shopTurns(t, db, got.Experiment)
	assert.Len(t, rows, 1)
	assert.Contains(t, rows, "webshop/goal/0007", "--goals overrides the file's")
}

// TestRunWebShopMemoryBaselineTOML: a WebShop config with a memory
// baseline and [memory] knobs plays it on the demo with the scripted
// shopper: the knobs reach the stored config, the sub-calls are stored, and
// a [memory] url is refused before anything is stored.
func TestRunWebShopMemoryBaselineTOML(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "lab.db")
	cfg := filepath.Join(dir, "shop.toml")
	require.NoError(t, os.WriteFile(cfg, []byte(`family = "webshop"
endpoint = "scripted"
policy = "summary:0"

[memory]
summary_every = 2

[webshop]
env = "demo"
goals = "1"
`), 0o644))
	code, out, errs := run(t, "run", "--db", db, "--config", cfg, "--json", "--quiet")
	require.Equal(t, 0, code, errs)
	var got shopRun
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	require.Len(t, got.Groups, 1)
	assert.Equal(t, "summary:0", got.Groups[0].Policy)
	assert.InDelta(t, 1.0, got.Groups[0].MeanEM, 1e-9)
	st, err := storage.OpenReadOnly(db)
	require.NoError(t, err)
	defer st.Close()
	e, err := st.Experiment(t.Context(), got.Experiment)
	require.NoError(t, err)
	var wc webshop.Config
	require.NoError(t, json.Unmarshal([]byte(e.ConfigJSON), &wc))
	require.NotNil(t, wc.Memory)
	assert.Equal(t, 2, wc.Memory.SummaryEvery)
	rows, err := st.Rollouts(t.Context(), got.Experiment)
	require.NoError(t, err)
	calls, err := st.SubCalls(t.Context(), rows[0].ID)
	require.NoError(t, err)
	require.NotEmpty(t, calls)
	for _, c := range calls {
		assert.Equal(t, core.RoleSummariser, c.Role)
		assert.Zero(t, c.Turn%2, "summary_every = 2 folds on even turns only")
	}

	bad := filepath.Join(dir, "bad.toml")
	db2 := filepath.Join(dir, "other.db")
	require.NoError(t, os.WriteFile(bad, []byte("family = \"webshop\"\nendpoint = \"scripted\"\npolicy = \"mem0\"\n[memory]\nurl = \"http://127.0.0.1:9/v1\"\nmodel = \"m\"\n"), 0o644))
	code, _, errs = run(t, "run", "--db", db2, "--config", bad, "--quiet")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "the embeddings_ keys are for QA runs")
	_, err = os.Stat(db2)
	assert.True(t, os.IsNotExist(err), "a refused config creates no store")
}

// TestRunBadFamily: an unknown family, WebShop keys without family webshop
// and bad goals are clear errors, and nothing is stored.
func TestRunBadFamily(t *testing.T) {
	db := filepath.Join(t.TempDir(), "lab.db")
	code, _, errs := run(t, "run", "--db", db, "--family", "shopping", "--no-preflight")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, `family: "shopping": want "qa"`)
	code, _, errs = run(t, "run", "--db", db, "--env", "demo", "--no-preflight")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, `webshop: set only with family = "webshop"`)
	code, _, errs = run(t, "run", "--db", db, "--family", "webshop", "--endpoint", "scripted", "--policy", "closed-book")
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, `policy: policy "closed-book": WebShop has no retrieval to turn off`)
	code, _, errs = run(t, "run", "--db", db, "--family", "webshop", "--goals", "9-3")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errs, "bad range")
	_, err := os.Stat(db)
	assert.True(t, os.IsNotExist(err), "a refused config creates no store")

	cfg := filepath.Join(t.TempDir(), "bad.toml")
	require.NoError(t, os.WriteFile(cfg, []byte("family = \"webshop\"\nendpoint = \"scripted\"\n[webshop]\nenv = \"demo\"\ngoal = \"1\"\n"), 0o644))
	code, _, errs = run(t, "run", "--db", db, "--config", cfg)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "unknown keys: webshop.goal")
}

// cancelAfter is the scripted shopper that cancels the run at its n-th call
// (which fails as a cancelled request would).
type cancelAfter struct {
	mu     sync.Mutex
	n      int
	cancel context.CancelFunc
}

func (m *cancelAfter) Complete(ctx context.Context, c core.Context, stops []string) (core.Completion, error) {
	m.mu.Lock()
	m.n--
	last := m.n == 0
	m.mu.Unlock()
	if last {
		m.cancel()
		return core.Completion{}, ctx.Err()
	}
	return webshop.Scripted{}.Complete(ctx, c, stops)
}

// TestResumeCancelledWebShop: a WebShop run cancelled mid-episode is stored
// as cancelled; `mem1lab resume ID` finishes it on a fresh fake WebShop with
// the very turns and rewards of an uninterrupted run.
func TestResumeCancelledWebShop(t *testing.T) {
	cfg := experiments.DefaultRunConfig()
	cfg.Family, cfg.Endpoint = core.FamilyWebShop, experiments.WebShopScripted
	cfg.WebShop = &experiments.WebShopSettings{Env: experiments.WebShopDemo, Goals: "0-3"}

	whole := filepath.Join(t.TempDir(), "whole.db")
	st, err := storage.Open(whole)
	require.NoError(t, err)
	r := newLabRunner(st, nil)
	var last experiments.Progress
	sum, err := r.Run(t.Context(), cfg, func(p experiments.Progress) { last = p })
	require.NoError(t, err)
	r.Close()
	require.NoError(t, st.Close())
	assert.Equal(t, 4, last.Total)
	assert.Equal(t, 4, last.Done)
	assert.Positive(t, last.Turns)
	wantTurns, wantRows := shopTurns(t, whole, sum.Experiment)

	cut := filepath.Join(t.TempDir(), "cut.db")
	st, err = storage.Open(cut)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r = newLabRunner(st, nil)
	r.ShopModel = func(webshop.Config) (core.Model, error) { return &cancelAfter{n: 6, cancel: cancel}, nil }
	sum, err = r.Run(ctx, cfg, nil)
	require.ErrorIs(t, err, context.Canceled)
	require.NotZero(t, sum.Experiment)
	e, err := st.Experiment(t.Context(), sum.Experiment)
	require.NoError(t, err)
	assert.Equal(t, storage.StatusCancelled, e.Status)
	assert.Less(t, e.Done, 4, "the cut came before the end")
	r.Close()
	require.NoError(t, st.Close())

	id := strconv.FormatInt(sum.Experiment, 10)
	code, out, errs := run(t, "resume", id, "--db", cut, "--json", "--quiet")
	require.Equal(t, 0, code, errs)
	var got shopRun
	require.NoError(t, json.Unmarshal([]byte(out), &got), out)
	assert.Equal(t, sum.Experiment, got.Experiment)
	gotTurns, gotRows := shopTurns(t, cut, sum.Experiment)
	assert.Equal(t, wantTurns, gotTurns, "the resumed episodes are the uninterrupted ones")
	require.Len(t, gotRows, len(wantRows))
	for k, w := range wantRows {
		assert.Equal(t, storage.StatusDone, gotRows[k].Status, k)
		assert.Equal(t, w.Turns, gotRows[k].Turns, k)
		assert.InDelta(t, w.EM, gotRows[k].EM, 1e-12, k)
	}
	st, err = storage.OpenReadOnly(cut)
	require.NoError(t, err)
	defer st.Close()
	e, err = st.Experiment(t.Context(), sum.Experiment)
	require.NoError(t, err)
	assert.Equal(t, storage.StatusDone, e.Status)
}

// blockingShopper waits in its first call until the run is cancelled.
type blockingShopper struct{ started chan struct{} }

func (m blockingShopper) Complete(ctx context.Context, _ core.Context, _ []string) (core.Completion, error) {
	close(m.started)
	<-ctx.Done()
	return core.Completion{}, ctx.Err()
}

// shopRunPlay is a WebShop run started in the background by startShopPlay.
type shopRunPlay struct {
	db   string
	st   *storage.Store
	r    *labRunner
	id   int64 // the experiment, known from its first progress report
	done chan shopOutcome
}

type shopOutcome struct {
	sum experiments.Summary
	err error
}

// startShopPlay runs goals of the demo WebShop with model under a fresh lab
// runner on a fresh store (heartbeat every beat; 0 = the default), in the
// background, and returns once the experiment is stored; onProgress (may be
// nil) sees every report. The store and runner close with the test.
func startShopPlay(t *testing.T, model core.Model, goals string, beat time.Duration, onProgress func(experiments.Progress)) *shopRunPlay {
	t.Helper()
	p := &shopRunPlay{db: filepath.Join(t.TempDir(), "lab.db"), done: make(chan shopOutcome, 1)}
	st, err := storage.Open(p.db)
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	r := newLabRunner(st, nil)
	t.Cleanup(r.Close)
	r.Heartbeat = beat
	r.ShopModel = func(webshop.Config) (core.Model, error) { return model, nil }
	cfg := experiments.DefaultRunConfig()
	cfg.Family, cfg.Endpoint = core.FamilyWebShop, experiments.WebShopScripted
	cfg.WebShop = &experiments.WebShopSettings{Goals: goals}
	ids := make(chan int64, 1)
	go func() {
		sum, err := r.Run(context.Background(), cfg, func(pr experiments.Progress) {
			select {
			case ids <- pr.Experiment:
			default:
			}
			if onProgress != nil {
				onProgress(pr)
			}
		})
		p.done <- shopOutcome{sum, err}
	}()
	p.st, p.r, p.id = st, r, <-ids
	return p
}

// TestLabRunnerControlsWebShop: Runs' controls reach a WebShop run playing in
// this process: not orphaned; pause and go on set the experiment's status and
// its stored control; cancel stops it as cancelled.
func TestLabRunnerControlsWebShop(t *testing.T) {
	m := blockingShopper{started: make(chan struct{})}
	p := startShopPlay(t, m, "0-1", 0, nil)
	st, r, id, done := p.st, p.r, p.id, p.done
	<-m.started
	orphaned, err := r.Orphaned(t.Context(), id)
	require.NoError(t, err)
	assert.False(t, orphaned, "playing here")
	require.NoError(t, r.Control(t.Context(), id, "pause"))
	e, err := st.Experiment(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, experiments.StatusPaused, e.Status)
	l, err := st.ExperimentLease(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, "pause", l.Control, "another process's heartbeat would read it")
	require.NoError(t, r.Control(t.Context(), id, "resume"))
	e, err = st.Experiment(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, storage.StatusRunning, e.Status)
	assert.ErrorContains(t, r.Control(t.Context(), id, "rewind"), `unknown action "rewind"`)
	require.NoError(t, r.Control(t.Context(), id, "cancel"))
	res := <-done
	require.ErrorIs(t, res.err, context.Canceled)
	assert.Equal(t, id, res.sum.Experiment)
	e, err = st.Experiment(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, storage.StatusCancelled, e.Status)
	assert.Zero(t, e.Done)
}

// heldShopper is the scripted shopper whose first call waits for release.
type heldShopper struct {
	started, release chan struct{}
	mu               sync.Mutex
	calls            int
}

func (m *heldShopper) Complete(ctx context.Context, c core.Context, stops []string) (core.Completion, error) {
	m.mu.Lock()
	m.calls++
	first := m.calls == 1
	m.mu.Unlock()
	if first {
		close(m.started)
		<-m.release
	}
	return webshop.Scripted{}.Complete(ctx, c, stops)
}

// TestWebShopStoredPause: `mem1lab pause ID` from another process reaches a
// WebShop run through its heartbeat: the turn in flight is stored, no model
// call starts while paused (the run reports Paused), and `pause --resume`
// lets the episode go on to its purchase.
func TestWebShopStoredPause(t *testing.T) {
	m := &heldShopper{started: make(chan struct{}), release: make(chan struct{})}
	held := make(chan int, 1)
	p := startShopPlay(t, m, "1", 2*time.Millisecond, func(pr experiments.Progress) {
		if pr.Paused && pr.Turns == 1 {
			m.mu.Lock()
			n := m.calls
			m.mu.Unlock()
			select {
			case held <- n:
			default:
			}
		}
	})
	db, st, id := p.db, p.st, p.id
	<-m.started
	code, _, errs := run(t, "pause", "--db", db, strconv.FormatInt(id, 10))
	require.Equal(t, 0, code, errs)
	for { // the heartbeat takes the request: the status says paused
		e, err := st.Experiment(t.Context(), id)
		require.NoError(t, err)
		if e.Status == experiments.StatusPaused {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(m.release)
	assert.Equal(t, 1, <-held, "held before the second turn: one model call made")
	code, _, errs = run(t, "pause", "--db", db, "--resume", strconv.FormatInt(id, 10))
	require.Equal(t, 0, code, errs)
	require.NoError(t, (<-p.done).err)
	e, err := st.Experiment(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, storage.StatusDone, e.Status)
	rows, err := st.Rollouts(t.Context(), id)
	require.NoError(t, err)
	assert.InDelta(t, 1.0, rows[0].EM, 1e-9, "the episode went on to its purchase")
}

// TestWebShopLeaseAndStoredCancel: a WebShop run holds the experiment's
// lease, so another runner (another process) sees it as held, not orphaned,
// and cannot resume it; a cancel request stored by `mem1lab cancel ID`
// reaches the run through its heartbeat.
func TestWebShopLeaseAndStoredCancel(t *testing.T) {
	m := blockingShopper{started: make(chan struct{})}
	p := startShopPlay(t, m, "0", 5*time.Millisecond, nil)
	db, st, id := p.db, p.st, p.id
	<-m.started

	other := newLabRunner(st, nil)
	orphaned, err := other.Orphaned(t.Context(), id)
	require.NoError(t, err)
	assert.False(t, orphaned, "the lease is held by a live process")
	_, err = other.Resume(t.Context(), id, nil)
	require.ErrorIs(t, err, experiments.ErrBusy)

	code, _, errs := run(t, "cancel", "--db", db, strconv.FormatInt(id, 10))
	require.Equal(t, 0, code, errs)
	require.ErrorIs(t, (<-p.done).err, context.Canceled)
	e, err := st.Experiment(t.Context(), id)
	require.NoError(t, err)
	assert.Equal(t, storage.StatusCancelled, e.Status)
	l, err := st.ExperimentLease(t.Context(), id)
	require.NoError(t, err)
	assert.Empty(t, l.Owner, "the lease is given up when the run ends")
}

// TestResumeCommandArgs: `resume` wants one experiment ID that exists.
func TestResumeCommandArgs(t *testing.T) {
	db := filepath.Join(t.TempDir(), "lab.db")
	st, err := storage.Open(db)
	require.NoError(t, err)
	require.NoError(t, st.Close())
	code, _, errs := run(t, "resume", "--db", db)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "want one experiment ID")
	code, _, errs = run(t, "resume", "x1", "--db", db)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, `experiment ID "x1"`)
	code, _, errs = run(t, "resume", "42", "--db", db)
	assert.Equal(t, 1, code)
	assert.Contains(t, errs, "42")
}

// A resume that loses the race for the lease (another process claimed the
// experiment after this one checked it was free) stops with ErrBusy before
// playing anything, instead of playing the same rollouts a second time.
func TestWebShopResumeLosingTheLeaseDoesNotPlay(t *testing.T) {
	db := filepath.Join(t.TempDir(), "lab.db")
	code, _, errs := run(t, "run", "--db", db, "--family", "webshop", "--env", "demo", "--endpoint", "scripted",
		"--goals", "0-1", "--quiet")
	require.Equal(t, 0, code, errs)
	st, err := storage.Open(db)
	require.NoError(t, err)
	defer st.Close()
	ctx := t.Context()
	require.NoError(t, st.SetExperimentStatus(ctx, 1, storage.StatusCancelled))

	r := newLabRunner(st, nil)
	defer r.Close()
	rival := leaseOwner()
	played := false // the model was built, so the play reached its claim
	r.ShopModel = func(webshop.Config) (core.Model, error) {
		// The rival takes the experiment between the busy check and the claim.
		l, err := st.ExperimentLease(ctx, 1)
		require.NoError(t, err)
		ok, err := st.ClaimExperiment(ctx, 1, rival, l.Owner)
		require.NoError(t, err)
		require.True(t, ok)
		require.NoError(t, st.SetExperimentStatus(ctx, 1, storage.StatusRunning))
		played = true
		return webshop.Scripted{}, nil
	}
	_, err = r.Resume(ctx, 1, nil)
	require.True(t, played, "the model was built: the race window was reached")
	require.ErrorIs(t, err, experiments.ErrBusy)
	l, err := st.ExperimentLease(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, rival, l.Owner, "the rival keeps its lease")
	e, err := st.Experiment(ctx, 1)
	require.NoError(t, err)
	assert.Equal(t, storage.StatusRunning, e.Status, "the loser records nothing about the rival's run")
}

// A WebShop run's model calls use the endpoint's keyring entry and carry the
// rollout's session key, as QA runs do (the config keeps names, never the key).
func TestWebShopRunKeyringAndSessionKey(t *testing.T) {
	keyring.MockInit()
	require.NoError(t, keyring.Set(experiments.KeyringService, "shop-key", "sk-shop-secret"))
	var mu sync.Mutex
	var auth, session []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/completions") {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		auth, session = append(auth, r.Header.Get("Authorization")), append(session, r.Header.Get("X-Session-ID"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"c","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":"<think>buy</think><summary>s</summary><answer>click[buy now]","finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":5,"total_tokens":10}}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	db := filepath.Join(dir, "lab.db")
	cfg := filepath.Join(dir, "shop.toml")
	require.NoError(t, os.WriteFile(cfg, []byte(`family = "webshop"
endpoint = "`+srv.URL+`/v1"
model = "m"
api_key_keyring = "shop-key"
max_turns = 2

[webshop]
env = "demo"
goals = "0"
`), 0o644))
	code, _, errs := run(t, "run", "--db", db, "--config", cfg, "--quiet", "--no-preflight")
	require.Contains(t, []int{0, 1}, code, errs)
	mu.Lock()
	defer mu.Unlock()
	require.NotEmpty(t, auth)
	for i := range auth {
		assert.Equal(t, "Bearer sk-shop-secret", auth[i], "the keyring entry's key is sent")
		assert.Equal(t, "mem1lab-e1-r1", session[i], "the rollout's session key rides on every call")
	}
	raw, err := os.ReadFile(db)
	require.NoError(t, err)
	wal, _ := os.ReadFile(db + "-wal")
	assert.NotContains(t, string(raw)+string(wal), "sk-shop-secret", "the key never reaches the store")
}

// `resume --env` takes a WebShop server's URL or demo, and a fake-WebShop
// experiment is not continued on another server (the rewards would mix).
func TestResumeWebShopEnvChecked(t *testing.T) {
	db := filepath.Join(t.TempDir(), "lab.db")
	code, _, errs := run(t, "run", "--db", db, "--family", "webshop", "--env", "demo", "--endpoint", "scripted",
		"--goals", "0", "--quiet")
	require.Equal(t, 0, code, errs)
	code, _, errs = run(t, "resume", "1", "--db", db, "--env", "foo", "--quiet")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errs, `--env "foo": want a WebShop server's http(s) URL`)
	code, _, errs = run(t, "resume", "1", "--db", db, "--env", "http://127.0.0.1:9/", "--quiet")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errs, "fake WebShop")
	code, _, errs = run(t, "resume", "1", "--db", db, "--env", "demo", "--quiet")
	assert.Equal(t, 0, code, errs)
}

// TestWebShopSecretsNeverStored: a WebShop run on an endpoint whose URL
// carries a user name and password, with a keyring key, under a memory
// baseline, against a model that echoes both secrets in its turns and its
// sub-call replies: neither reaches the store (config, turns, memory,
// sub-calls, errors), nor the progress log.
func TestWebShopSecretsNeverStored(t *testing.T) {
	keyring.MockInit()
	require.NoError(t, keyring.Set(experiments.KeyringService, "shop-key", "sk-shop-secret"))
	const password = "pw-shop-9876"
	var mu sync.Mutex
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/completions") {
			http.NotFound(w, r)
			return
		}
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		var req struct {
			Stop []string `json:"stop"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		text := "<think>I hold sk-shop-secret and " + password + "</think><summary>sk-shop-secret</summary><answer>search[shoes " + password + "]"
		if len(req.Stop) == 0 { // a sub-call: the summariser
			text = "notes: sk-shop-secret " + password
		}
		b, _ := json.Marshal(map[string]any{"id": "c", "object": "text_completion", "created": 1, "model": "m",
			"choices": []map[string]any{{"index": 0, "text": text, "finish_reason": "stop"}}})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}))
	defer srv.Close()
	dir := t.TempDir()
	db := filepath.Join(dir, "lab.db")
	cfg := filepath.Join(dir, "shop.toml")
	endpoint := strings.Replace(srv.URL, "http://", "http://shopper:"+password+"@", 1) + "/v1"
	require.NoError(t, os.WriteFile(cfg, []byte(`family = "webshop"
endpoint = "`+endpoint+`"
model = "m"
api_key_keyring = "shop-key"
policy = "summary:0"
max_turns = 3

[webshop]
env = "demo"
goals = "0"
`), 0o644))
	code, out, errs := run(t, "run", "--db", db, "--config", cfg, "--no-preflight")
	require.Contains(t, []int{0, 1}, code, errs)
	mu.Lock()
	require.GreaterOrEqual(t, len(auth), 2, "turns and sub-calls were sent")
	mu.Unlock()
	st, err := storage.OpenReadOnly(db)
	require.NoError(t, err)
	exps, err := st.Experiments(t.Context())
	require.NoError(t, err)
	require.Len(t, exps, 1)
	rows, err := st.Rollouts(t.Context(), exps[0].ID)
	require.NoError(t, err)
	calls, err := st.SubCalls(t.Context(), rows[0].ID)
	require.NoError(t, err)
	turns, err := st.Turns(t.Context(), rows[0].ID)
	require.NoError(t, err)
	st.Close()
	require.NotEmpty(t, calls, "the memory baseline made sub-calls")
	require.NotEmpty(t, turns)
	assert.Contains(t, turns[0].Response, "[redacted]", "the echoed secret is marked where it was")
	assert.Contains(t, exps[0].ConfigJSON, "http://127.0.0.1", "the endpoint is kept, without its userinfo")
	raw, err := os.ReadFile(db)
	require.NoError(t, err)
	wal, _ := os.ReadFile(db + "-wal")
	for _, secret := range []string{"sk-shop-secret", password} {
		assert.False(t, strings.Contains(string(raw)+string(wal), secret), "the store never holds %s", secret)
		assert.False(t, strings.Contains(out+errs, secret), "the output never shows %s", secret)
	}
}
