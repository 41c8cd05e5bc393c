package webshop

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// TestMemoryBaselinesPlayWebShop: every policy but closed-book plays WebShop
// episodes through the runner. The scripted shopper buys the right product
// under each (it reads only the last page's actions and its own summary, which
// every policy's context carries), memory policies store their sub-calls and
// memory on the turns, and the sub-call prompts speak of the instruction, not
// of questions and a corpus.
func TestMemoryBaselinesPlayWebShop(t *testing.T) {
	fake := NewFakeServer()
	srv := httptest.NewServer(fake)
	defer srv.Close()
	st := testStore(t)
	ctx := context.Background()
	r := &Runner{Store: st, Model: Scripted{}}
	for _, policy := range []string{"window:2", "full:messages", "summary:1", "resum", "memagent", "mem0", "mem0:add-only", "amem"} {
		t.Run(policy, func(t *testing.T) {
			sum, err := r.Run(ctx, "ws "+policy, Config{EnvURL: srv.URL, Goals: []int{0, 3}, Policy: policy, Model: ScriptedModelName})
			require.NoError(t, err)
			assert.Equal(t, 2, sum.Done)
			assert.Equal(t, 100.0, sum.Reward100)
			rows, err := st.Rollouts(ctx, sum.Experiment)
			require.NoError(t, err)
			for _, row := range rows {
				assert.Equal(t, policy, row.Policy)
				turns, err := st.Turns(ctx, row.ID)
				require.NoError(t, err)
				require.GreaterOrEqual(t, len(turns), 4)
				calls, err := st.SubCalls(ctx, row.ID)
				require.NoError(t, err)
				p, err := core.WebShopPolicy(policy, core.MemoryOptions{})
				require.NoError(t, err)
				if _, memory := p.(core.MemoryPolicy); !memory {
					assert.Empty(t, calls)
					continue
				}
				require.NotEmpty(t, calls, "a memory policy's sub-calls are stored")
				instruction := fake.Goals[mustGoal(t, row.TaskKey)].Instruction
				generations := 0
				for _, c := range calls {
					assert.Equal(t, SubCallEndpoint, c.Endpoint)
					assert.Empty(t, c.Error, "the scripted replies are well-formed: %s", c.Request)
					if c.Role == core.RoleEmbedder {
						continue
					}
					generations++
					if c.Role == core.RoleSummariser || c.Role == core.RoleUpdater && policy == "memagent" || c.Role == core.RoleExtractor && strings.HasPrefix(policy, "mem0") {
						assert.Contains(t, c.Request, instruction, "the goal in the sub-call is the instruction")
					}
					assert.NotContains(t, c.Request, "questions")
					assert.NotContains(t, c.Request, "corpus")
				}
				assert.Positive(t, generations)
				assert.NotEmpty(t, turns[len(turns)-1].MemoryState, "the memory state is stored on the turn")
			}
		})
	}

	// window:2 carries the last two exchanges only.
	sum, err := r.Run(ctx, "window", Config{EnvURL: srv.URL, Goals: []int{0}, Policy: "window:2", Model: ScriptedModelName})
	require.NoError(t, err)
	rows, _ := st.Rollouts(ctx, sum.Experiment)
	turns, err := st.Turns(ctx, rows[0].ID)
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(turns), 4)
	assert.NotContains(t, turns[3].Context, turns[0].Response)
	assert.Contains(t, turns[3].Context, turns[1].Response)
	assert.Contains(t, turns[3].Context, turns[2].Response)

	// memagent's actor sees the prompt and the memory, no exchange.
	sum, err = r.Run(ctx, "memagent", Config{EnvURL: srv.URL, Goals: []int{0}, Policy: "memagent", Model: ScriptedModelName})
	require.NoError(t, err)
	rows, _ = st.Rollouts(ctx, sum.Experiment)
	turns, err = st.Turns(ctx, rows[0].ID)
	require.NoError(t, err)
	assert.NotContains(t, turns[2].Context, turns[1].Response)
	assert.Contains(t, turns[2].Context, "<summary>"+turns[1].InternalState+"</summary>", "the memory carries the last summary")
	assert.NotEmpty(t, turns[2].Memory)

	_, err = r.Run(ctx, "closed", Config{EnvURL: srv.URL, Goals: []int{0}, Policy: "closed-book", Model: ScriptedModelName})
	assert.ErrorContains(t, err, `policy "closed-book": WebShop has no retrieval to turn off`)
	_, err = r.Run(ctx, "unknown", Config{EnvURL: srv.URL, Goals: []int{0}, Policy: "amnesia", Model: ScriptedModelName})
	assert.ErrorContains(t, err, `unknown policy "amnesia"`)
}

// noEmbed is the scripted shopper without its embedder.
type noEmbed struct{ m Scripted }

func (n noEmbed) Complete(ctx context.Context, c core.Context, stops []string) (core.Completion, error) {
	return n.m.Complete(ctx, c, stops)
}

// TestMemoryPolicyNeedsEmbeddings: mem0 on a model that cannot embed fails
// the rollout at its first memory step with a clear per-turn error.
func TestMemoryPolicyNeedsEmbeddings(t *testing.T) {
	srv := httptest.NewServer(NewFakeServer())
	defer srv.Close()
	st := testStore(t)
	ctx := context.Background()
	sum, err := (&Runner{Store: st, Model: noEmbed{}}).Run(ctx, "mem0", Config{EnvURL: srv.URL, Goals: []int{0}, Policy: "mem0", Model: ScriptedModelName})
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Failed)
	rows, _ := st.Rollouts(ctx, sum.Experiment)
	assert.Contains(t, rows[0].Error, "turn 1: memory: ")
	assert.Contains(t, rows[0].Error, "cannot embed")
}

// TestMemoryPolicyResume: a summary:1 episode whose server fails mid-way is
// resumed on a healthy server; its turns, memories and sub-calls equal an
// uninterrupted episode's (the memory comes back from the stored state, the
// sub-calls of stored turns are not sent again).
func TestMemoryPolicyResume(t *testing.T) {
	srv, heal := brokenStepServer(t)
	st := testStore(t)
	ctx := context.Background()
	cfg := Config{EnvURL: srv.URL, Goals: []int{11}, Policy: "summary:1", Model: ScriptedModelName}
	r := &Runner{Store: st, Model: Scripted{}}
	sum, err := r.Run(ctx, "flaky", cfg)
	require.NoError(t, err)
	require.Equal(t, 1, sum.Failed)
	rows, _ := st.Rollouts(ctx, sum.Experiment)
	heal()
	sum, err = r.Resume(ctx, sum.Experiment)
	require.NoError(t, err)
	require.Equal(t, 1, sum.Done)
	resumed, err := st.Turns(ctx, rows[0].ID)
	require.NoError(t, err)
	resumedCalls, err := st.SubCalls(ctx, rows[0].ID)
	require.NoError(t, err)

	cleanID := uninterrupted(t, r, cfg)
	want, err := st.Turns(ctx, cleanID)
	require.NoError(t, err)
	wantCalls, err := st.SubCalls(ctx, cleanID)
	require.NoError(t, err)
	require.Len(t, resumed, len(want))
	for i := range want {
		assert.Equal(t, want[i].Context, resumed[i].Context, "turn %d", i)
		assert.Equal(t, want[i].Memory, resumed[i].Memory, "turn %d", i)
		assert.Equal(t, want[i].MemoryState, resumed[i].MemoryState, "turn %d", i)
	}
	require.Len(t, resumedCalls, len(wantCalls))
	for i := range wantCalls {
		assert.Equal(t, [2]int{wantCalls[i].Turn, wantCalls[i].Seq}, [2]int{resumedCalls[i].Turn, resumedCalls[i].Seq})
		assert.Equal(t, wantCalls[i].Request, resumedCalls[i].Request)
	}
	clean, err := st.Rollout(ctx, cleanID)
	require.NoError(t, err)
	assert.Equal(t, storage.StatusDone, clean.Status)
}

// TestSeveralPoliciesOneExperiment: Policies plays every goal under each
// policy in one experiment (goal-major order); the summary gives each
// policy's figures, and a listed-twice or unknown policy stores nothing.
func TestSeveralPoliciesOneExperiment(t *testing.T) {
	srv := httptest.NewServer(NewFakeServer())
	defer srv.Close()
	st := testStore(t)
	ctx := context.Background()
	r := &Runner{Store: st, Model: Scripted{}}
	pols := []string{"mem1", "full", "summary:1"}
	sum, err := r.Run(ctx, "three", Config{EnvURL: srv.URL, Goals: []int{0, 4}, Policies: pols, Model: ScriptedModelName})
	require.NoError(t, err)
	assert.Equal(t, 6, sum.Rollouts)
	assert.Equal(t, 6, sum.Done)
	require.Len(t, sum.ByPolicy, 3)
	for i, pf := range sum.ByPolicy {
		assert.Equal(t, pols[i], pf.Policy)
		assert.Equal(t, 2, pf.Done)
		assert.Equal(t, 100.0, pf.Reward100)
		assert.Positive(t, pf.PeakTokens)
	}
	assert.Greater(t, sum.ByPolicy[1].PeakTokens, sum.ByPolicy[0].PeakTokens, "full history peaks above mem1")
	rows, err := st.Rollouts(ctx, sum.Experiment)
	require.NoError(t, err)
	var got []string
	for _, row := range rows {
		got = append(got, row.TaskKey+" "+row.Policy)
	}
	assert.Equal(t, []string{"webshop/goal/0000 mem1", "webshop/goal/0000 full", "webshop/goal/0000 summary:1",
		"webshop/goal/0004 mem1", "webshop/goal/0004 full", "webshop/goal/0004 summary:1"}, got)
	e, err := st.Experiment(ctx, sum.Experiment)
	require.NoError(t, err)
	assert.Contains(t, e.ConfigJSON, `"policy":"mem1","policies":["mem1","full","summary:1"]`)

	before, err := st.Experiments(ctx)
	require.NoError(t, err)
	_, err = r.Run(ctx, "twice", Config{EnvURL: srv.URL, Goals: []int{0}, Policies: []string{"mem1", "amem", "mem1"}, Model: ScriptedModelName})
	assert.ErrorContains(t, err, `policy "mem1" is listed twice`)
	after, err := st.Experiments(ctx)
	require.NoError(t, err)
	assert.Len(t, after, len(before), "a refused config stores nothing")
}

// flakyModel fails its first calls with err, then plays the scripted shopper.
type flakyModel struct {
	mu    sync.Mutex
	fails int
	err   error
	calls int
}

func (m *flakyModel) Complete(ctx context.Context, c core.Context, stops []string) (core.Completion, error) {
	m.mu.Lock()
	m.calls++
	fail := m.calls <= m.fails
	m.mu.Unlock()
	if fail {
		return core.Completion{}, m.err
	}
	return Scripted{}.Complete(ctx, c, stops)
}

// TestModelCallsRetried: a model call that fails with a retryable error
// (503) is sent again, as a WebShop request is, each failed attempt recorded
// under ModelAttemptEndpoint; a final error (400) fails the rollout at once.
func TestModelCallsRetried(t *testing.T) {
	srv := httptest.NewServer(NewFakeServer())
	defer srv.Close()
	st := testStore(t)
	ctx := context.Background()
	m := &flakyModel{fails: 2, err: &experiments.CallError{Status: 503, Err: errors.New("busy")}}
	sum, err := (&Runner{Store: st, Model: m}).Run(ctx, "flaky model", Config{EnvURL: srv.URL, Goals: []int{0}, Model: ScriptedModelName, Retries: 2})
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Done)
	assert.Equal(t, 100.0, sum.Reward100)
	rows, _ := st.Rollouts(ctx, sum.Experiment)
	atts, err := st.Attempts(ctx, rows[0].ID)
	require.NoError(t, err)
	require.Len(t, atts, 2)
	for i, a := range atts {
		assert.Equal(t, ModelAttemptEndpoint, a.Endpoint)
		assert.Equal(t, 503, a.Status)
		assert.Equal(t, i+1, a.Attempt)
		assert.Contains(t, a.Error, "model: ")
	}

	bad := &flakyModel{fails: 99, err: &experiments.CallError{Status: 400, Err: errors.New("context too long")}}
	sum, err = (&Runner{Store: st, Model: bad}).Run(ctx, "bad request", Config{EnvURL: srv.URL, Goals: []int{0}, Model: ScriptedModelName, Retries: 2})
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Failed)
	assert.Equal(t, 1, bad.calls, "a 400 is final")
	rows, _ = st.Rollouts(ctx, sum.Experiment)
	assert.Contains(t, rows[0].Error, "turn 0: model: ")
}

// TestEnvURLWithUserinfoRefused: a WebShop server URL with a user name or
// password is refused before anything is stored (the URL is stored with the
// experiment), for a new run and for a resume elsewhere.
func TestEnvURLWithUserinfoRefused(t *testing.T) {
	srv := httptest.NewServer(NewFakeServer())
	defer srv.Close()
	st := testStore(t)
	ctx := context.Background()
	withPass := strings.Replace(srv.URL, "http://", "http://shop:pw-secret-1@", 1)
	r := &Runner{Store: st, Model: Scripted{}}
	_, err := r.Run(ctx, "userinfo", Config{EnvURL: withPass, Goals: []int{0}, Model: ScriptedModelName})
	assert.ErrorContains(t, err, "no user name or password in the environment URL")
	exps, err := st.Experiments(ctx)
	require.NoError(t, err)
	assert.Empty(t, exps)
	sum, err := r.Run(ctx, "plain", Config{EnvURL: srv.URL, Goals: []int{0}, Model: ScriptedModelName})
	require.NoError(t, err)
	_, err = (&Runner{Store: st, Model: Scripted{}, EnvURL: withPass}).Resume(ctx, sum.Experiment)
	assert.ErrorContains(t, err, "no user name or password")
	e, err := st.Experiment(ctx, sum.Experiment)
	require.NoError(t, err)
	assert.Equal(t, storage.StatusDone, e.Status, "the refused resume changed nothing")
}
