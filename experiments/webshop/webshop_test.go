package webshop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// faulty wraps the fake server: fail(path, n) (n: the 1-based count of
// requests to that path) may answer instead of it.
type faulty struct {
	next http.Handler
	mu   sync.Mutex
	n    map[string]int
	fail func(w http.ResponseWriter, r *http.Request, path string, n int) bool
}

func (f *faulty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	if f.n == nil {
		f.n = map[string]int{}
	}
	f.n[r.URL.Path]++
	n := f.n[r.URL.Path]
	fail := f.fail
	f.mu.Unlock()
	if fail != nil && fail(w, r, r.URL.Path, n) {
		return
	}
	f.next.ServeHTTP(w, r)
}

func (f *faulty) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n[path]
}

func hang(_ http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(30 * time.Second):
	}
}

func TestClientProtocolOverFake(t *testing.T) {
	fake := NewFakeServer()
	srv := httptest.NewServer(fake)
	defer srv.Close()
	ctx := context.Background()
	c := &Client{BaseURL: srv.URL}

	idx, err := c.Create(ctx)
	require.NoError(t, err)
	const goal = 3
	require.NoError(t, c.Reset(ctx, idx, goal))
	g := fake.Goals[goal]
	ins, err := c.InstructionText(ctx, idx)
	require.NoError(t, err)
	assert.Equal(t, g.Instruction, ins)
	obs, err := c.Observation(ctx, idx)
	require.NoError(t, err)
	assert.Equal(t, "WebShop [SEP] Instruction: [SEP] "+g.Instruction+" [SEP] Search", obs)
	acts, err := c.AvailableActions(ctx, idx)
	require.NoError(t, err)
	assert.True(t, acts.HasSearchBar)

	var p Product
	for _, q := range fake.Products {
		if q.ASIN == g.ASIN {
			p = q
		}
	}
	state, reward, done, err := c.Step(ctx, idx, "search["+p.Category+" "+strings.Join(g.Attributes, " ")+"]")
	require.NoError(t, err)
	assert.False(t, done)
	assert.Zero(t, reward)
	assert.Contains(t, state, p.ASIN)
	acts, _ = c.AvailableActions(ctx, idx)
	assert.False(t, acts.HasSearchBar)
	assert.Contains(t, acts.Clickables, strings.ToLower(p.ASIN))

	_, _, _, err = c.Step(ctx, idx, "click["+strings.ToLower(p.ASIN)+"]")
	require.NoError(t, err)
	acts, _ = c.AvailableActions(ctx, idx)
	assert.Contains(t, acts.Clickables, "buy now")
	// An action the page does not offer changes nothing.
	before, _ := c.Observation(ctx, idx)
	_, reward, done, err = c.Step(ctx, idx, "click[no such thing]")
	require.NoError(t, err)
	assert.False(t, done)
	assert.Zero(t, reward)
	after, _ := c.Observation(ctx, idx)
	assert.Equal(t, before, after)

	for _, v := range g.Options {
		_, _, _, err = c.Step(ctx, idx, "click["+v+"]")
		require.NoError(t, err)
	}
	state, reward, done, err = c.Step(ctx, idx, "click[buy now]")
	require.NoError(t, err)
	assert.True(t, done)
	assert.Equal(t, 1.0, reward, "right product, attributes, options and price")
	assert.Contains(t, state, "no product-type term")
	require.NoError(t, c.Close(ctx, idx))
	_, err = c.Observation(ctx, idx)
	assert.ErrorIs(t, err, ErrEnvExpired, "a closed index is gone")

	// The reward formula: (attrs + options + price) / (attrs + options + 1).
	g2 := Goal{Attributes: []string{"a", "b"}, Options: map[string]string{"color": "red"}, PriceUpper: 20}
	assert.InDelta(t, 3.0/4, Reward(g2, Product{Attributes: []string{"a", "b"}, Price: 25}, map[string]string{"color": "red"}), 1e-12)
	assert.InDelta(t, 2.0/4, Reward(g2, Product{Attributes: []string{"a"}, Price: 10}, map[string]string{"color": "blue"}), 1e-12)
	assert.Len(t, fake.Goals, 600)
	assert.GreaterOrEqual(t, len(fake.Products), 24)
}

func TestClientFailures(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name      string
		handler   http.HandlerFunc
		retryable bool
		expired   bool
		status    int // -1: no CallError
	}{
		{"500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "Internal Server Error", 500) }, true, false, 500},
		{"503 retry-after", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "2")
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}, true, false, 503},
		{"timeout", hang, true, false, 0},
		{"malformed JSON", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"state": "x", "rew`)) }, false, false, -1},
		{"wrong shape", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"observation":"x"}`)) }, false, false, -1},
		{"expired 404", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(404)
			_, _ = w.Write([]byte(`{"error":"env_idx 4 not found"}`))
		}, false, true, -1},
		{"expired as AgentGym error", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"error":"KeyError: env_idx 4 not found"}`))
		}, false, true, -1},
		{"other server error", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"error":"goal file missing"}`)) }, false, false, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := httptest.NewServer(tc.handler)
			defer s.Close()
			c := &Client{BaseURL: s.URL}
			if tc.name == "timeout" {
				c.Timeout = 100 * time.Millisecond
			}
			_, _, _, err := c.Step(ctx, 4, "click[buy now]")
			require.Error(t, err)
			assert.Contains(t, err.Error(), "/step")
			assert.Equal(t, tc.retryable, experiments.Retryable(err), "%v", err)
			assert.Equal(t, tc.expired, errors.Is(err, ErrEnvExpired), "%v", err)
			var ce *experiments.CallError
			if tc.status < 0 {
				assert.False(t, errors.As(err, &ce), "%v", err)
				return
			}
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.status, ce.Status)
			if tc.name == "timeout" {
				assert.True(t, ce.Timeout)
			}
			if tc.name == "503 retry-after" {
				assert.Equal(t, 2*time.Second, ce.RetryAfter)
			}
		})
	}
}

func testStore(t *testing.T) *storage.Store {
	st, err := storage.Open(filepath.Join(t.TempDir(), "lab.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	return st
}

// TestScriptedRunStoresEpisodes: the scripted shopper over the fake server,
// through the runner, buys the right product for each goal; the store keeps
// each turn's action and page (with its available actions), the reward (also
// in EM), peak tokens and dependency.
func TestScriptedRunStoresEpisodes(t *testing.T) {
	fake := NewFakeServer()
	srv := httptest.NewServer(fake)
	defer srv.Close()
	st := testStore(t)
	ctx := context.Background()
	r := &Runner{Store: st, Model: Scripted{}}
	sum, err := r.Run(ctx, "webshop demo", Config{EnvURL: srv.URL, Goals: []int{0, 1, 2, 3, 4, 5}, Model: ScriptedModelName, FakeReward: true})
	require.NoError(t, err)
	assert.Equal(t, 6, sum.Done)
	assert.Equal(t, 100.0, sum.Reward100)
	assert.Positive(t, sum.PeakTokens)
	assert.Positive(t, sum.Dependency)

	rows, err := st.Rollouts(ctx, sum.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 6)
	for _, row := range rows {
		assert.Equal(t, storage.StatusDone, row.Status, row.Error)
		assert.Equal(t, 1.0, row.EM)
		turns, err := st.Turns(ctx, row.ID)
		require.NoError(t, err)
		require.GreaterOrEqual(t, len(turns), 4, "search, open, options, buy")
		assert.True(t, strings.HasPrefix(turns[0].Query, "search["))
		assert.Contains(t, turns[0].Information, "Available actions: click[back to search], click[b0")
		assert.Contains(t, turns[0].InternalState, "request: ")
		last := turns[len(turns)-1]
		assert.Equal(t, core.ActionAnswer, last.Action)
		assert.Equal(t, "click[buy now]", last.Answer)
		assert.Contains(t, last.Information, "Reward: 1")
		d, err := st.Rollout(ctx, row.ID)
		require.NoError(t, err)
		assert.Contains(t, d.Prompt, "Customer request: "+fake.Goals[mustGoal(t, row.TaskKey)].Instruction)
	}
	e, err := st.Experiment(ctx, sum.Experiment)
	require.NoError(t, err)
	assert.Contains(t, e.ConfigJSON, `"family":"webshop"`)
	assert.Contains(t, e.ConfigJSON, `"fake_reward":true`)
}

func mustGoal(t *testing.T, key string) int {
	var g int
	_, err := fmtSscanf(key, &g)
	require.NoError(t, err)
	return g
}

// TestExpiredIndexIsRecreatedAndReplayed: the server forgets the episode's
// index mid-episode; the environment creates a new one, resets the goal,
// replays the actions and the episode still buys the right product.
func TestExpiredIndexIsRecreatedAndReplayed(t *testing.T) {
	fake := NewFakeServer()
	var expireOnce sync.Once
	f := &faulty{next: fake}
	f.fail = func(w http.ResponseWriter, r *http.Request, path string, n int) bool {
		if path == "/step" && n == 3 {
			expireOnce.Do(func() {
				fake.mu.Lock()
				for idx := range fake.envs {
					delete(fake.envs, idx)
				}
				fake.mu.Unlock()
			})
		}
		return false
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	st := testStore(t)
	ctx := context.Background()
	sum, err := (&Runner{Store: st, Model: Scripted{}}).Run(ctx, "expire", Config{EnvURL: srv.URL, Goals: []int{7}, Model: ScriptedModelName})
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Done)
	assert.Equal(t, 100.0, sum.Reward100)
	assert.Equal(t, 2, f.count("/create"), "a second index replaces the expired one")
	rows, _ := st.Rollouts(ctx, sum.Experiment)
	atts, err := st.Attempts(ctx, rows[0].ID)
	require.NoError(t, err)
	require.Len(t, atts, 1)
	assert.Equal(t, EnvAttemptEndpoint, atts[0].Endpoint)
	assert.Contains(t, atts[0].Error, "step: ")
	assert.Contains(t, atts[0].Error, "not found")
}

// brokenStepServer is the fake WebShop behind a fault that answers 500 to
// every /step from the third on, until heal is called; it is closed with the
// test.
func brokenStepServer(t *testing.T) (srv *httptest.Server, heal func()) {
	var mu sync.Mutex
	broken := true
	f := &faulty{next: NewFakeServer()}
	f.fail = func(w http.ResponseWriter, r *http.Request, path string, n int) bool {
		mu.Lock()
		defer mu.Unlock()
		if broken && path == "/step" && n >= 3 {
			http.Error(w, "Internal Server Error", 500)
			return true
		}
		return false
	}
	srv = httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv, func() {
		mu.Lock()
		broken = false
		mu.Unlock()
	}
}

// uninterrupted plays cfg's (one-goal) experiment again on a healthy fake
// WebShop and returns its rollout's id: what a resumed episode must equal.
func uninterrupted(t *testing.T, r *Runner, cfg Config) int64 {
	t.Helper()
	clean := httptest.NewServer(NewFakeServer())
	t.Cleanup(clean.Close)
	cfg.EnvURL = clean.URL
	sum, err := r.Run(context.Background(), "uninterrupted", cfg)
	require.NoError(t, err)
	rows, err := r.Store.Rollouts(context.Background(), sum.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	return rows[0].ID
}

// TestFailedStepThenResume: a server that keeps answering 500 (after one
// retry) fails the rollout with a per-turn error and keeps its turns;
// resuming against a healthy server replays them and finishes the episode
// with the contexts of an uninterrupted one.
func TestFailedStepThenResume(t *testing.T) {
	srv, heal := brokenStepServer(t)
	st := testStore(t)
	ctx := context.Background()
	cfg := Config{EnvURL: srv.URL, Goals: []int{11}, Model: ScriptedModelName, Retries: 1}
	r := &Runner{Store: st, Model: Scripted{}}
	sum, err := r.Run(ctx, "flaky", cfg)
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Failed)
	rows, _ := st.Rollouts(ctx, sum.Experiment)
	assert.Contains(t, rows[0].Error, "turn 2: step: webshop POST /step: 500")
	assert.Contains(t, rows[0].Error, "gave up after 2 attempts")
	stored, err := st.Turns(ctx, rows[0].ID)
	require.NoError(t, err)
	assert.Len(t, stored, 2)
	atts, _ := st.Attempts(ctx, rows[0].ID)
	assert.Len(t, atts, 2, "both failed attempts are recorded")

	heal()
	sum, err = r.Resume(ctx, sum.Experiment)
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Done)
	assert.Equal(t, 100.0, sum.Reward100)
	resumed, err := st.Turns(ctx, rows[0].ID)
	require.NoError(t, err)

	want, err := st.Turns(ctx, uninterrupted(t, r, cfg))
	require.NoError(t, err)
	require.Len(t, resumed, len(want))
	for i := range want {
		assert.Equal(t, want[i].Context, resumed[i].Context, "turn %d", i)
		assert.Equal(t, want[i].Information, resumed[i].Information, "turn %d", i)
	}
}

func TestParseGoals(t *testing.T) {
	g, err := ParseGoals("0-3,10, 12")
	require.NoError(t, err)
	assert.Equal(t, []int{0, 1, 2, 3, 10, 12}, g)
	for _, bad := range []string{"", "a", "5-2", "-1", "1.5"} {
		_, err := ParseGoals(bad)
		assert.Error(t, err, bad)
	}
}

func fmtSscanf(key string, g *int) (int, error) { return fmt.Sscanf(key, "webshop/goal/%d", g) }

// TestRewardByTurns: rollouts that bought at once score 100 at their turn
// count; a rollout whose model never acts scores 0 after one turn.
func TestRewardByTurns(t *testing.T) {
	srv := httptest.NewServer(NewFakeServer())
	defer srv.Close()
	st := testStore(t)
	ctx := context.Background()
	sum, err := (&Runner{Store: st, Model: Scripted{}}).Run(ctx, "a", Config{EnvURL: srv.URL, Goals: []int{0, 1}, Model: ScriptedModelName})
	require.NoError(t, err)
	pts, err := RewardByTurns(ctx, st, sum.Experiment)
	require.NoError(t, err)
	require.NotEmpty(t, pts)
	n := 0
	for _, p := range pts {
		assert.Equal(t, "mem1 / "+ScriptedModelName, p.Series)
		assert.Equal(t, 100.0, p.Reward)
		n += p.N
	}
	assert.Equal(t, 2, n)

	sum2, err := (&Runner{Store: st, Model: idle{}}).Run(ctx, "b", Config{EnvURL: srv.URL, Goals: []int{0}, Model: "idle"})
	require.NoError(t, err)
	pts, err = RewardByTurns(ctx, st, sum2.Experiment)
	require.NoError(t, err)
	assert.Equal(t, []RewardPoint{{Series: "mem1 / idle", Turns: 1, Reward: 0, N: 1}}, pts)

	out := filepath.Join(t.TempDir(), "r.svg")
	require.NoError(t, PlotRewardVsTurns(pts, "reward vs turns", "fake WebShop", out))
	raw, err := os.ReadFile(out)
	require.NoError(t, err)
	assert.Contains(t, string(raw), "<svg")
	assert.Error(t, PlotRewardVsTurns(nil, "", "", out))
}

// idle answers without an action.
type idle struct{}

func (idle) Complete(context.Context, core.Context, []string) (core.Completion, error) {
	return core.Completion{Text: "<summary>nothing</summary>", FinishReason: "stop"}, nil
}

// TestEnvRetriesAndGivesUp: failed requests are retried up to Retries and
// reported each time; a malformed reply is not retried.
func TestEnvRetriesAndGivesUp(t *testing.T) {
	fake := NewFakeServer()
	f := &faulty{next: fake}
	f.fail = func(w http.ResponseWriter, r *http.Request, path string, n int) bool {
		switch {
		case path == "/create" && n <= 2:
			w.Header().Set("Retry-After", "0")
			http.Error(w, "warming up", http.StatusServiceUnavailable)
			return true
		case path == "/available_actions" && n == 2:
			_, _ = w.Write([]byte(`{"clickables": 3}`))
			return true
		}
		return false
	}
	srv := httptest.NewServer(f)
	defer srv.Close()
	ctx := context.Background()
	var failures []string
	env := &Env{Client: &Client{BaseURL: srv.URL}, Goal: 2, Retries: 2, OnFailure: func(op string, attempt int, err error) {
		failures = append(failures, op+" "+strconv.Itoa(attempt))
	}}
	o, err := env.Reset(ctx)
	require.NoError(t, err)
	assert.Equal(t, fake.Goals[2].Instruction, o.Instruction)
	assert.True(t, o.Actions.HasSearchBar)
	assert.Equal(t, []string{"reset 1", "reset 2"}, failures)

	_, err = env.Step(ctx, "search[anything]")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "available_actions: reply is not {has_search_bar, clickables}")
	assert.Equal(t, []string{"reset 1", "reset 2", "step 1"}, failures, "a malformed reply is not retried")

	env2 := &Env{Client: &Client{BaseURL: "http://" + closedAddr(t)}, Retries: 1}
	_, err = env2.Reset(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "gave up after 2 attempts")
}

func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}
