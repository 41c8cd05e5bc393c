package experiments

import (
	"context"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

// TestScriptedAgentEndToEnd drives HotpotQA tasks from the shared bundle through
// the retrieval-oracle agent (package oracle: a scripted OpenAI-compatible server
// that plays MEM1's protocol and carries its facts in <think>), in both modes and
// under both policies.
func TestScriptedAgentEndToEnd(t *testing.T) {
	st := bundleStore(t)
	ctx := context.Background()
	qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	agent := oracle.New(qs)
	srv := httptest.NewServer(agent)
	defer srv.Close()

	const tasks = 3
	type key struct {
		mode, policy string
		n            int
	}
	results := map[key][]storage.RolloutDetail{}
	totalEM := 0.0
	for _, mode := range []string{ModeCompletions, ModeChat} {
		for _, n := range []int{2, 4} {
			for _, policy := range []string{"mem1", "full"} {
				cfg := DefaultRunConfig()
				cfg.Endpoint, cfg.Model, cfg.Mode = srv.URL+"/v1", "scripted", mode
				cfg.Objectives, cfg.Tasks, cfg.Policy, cfg.Concurrency = n, tasks, policy, 2
				var mu sync.Mutex
				inCallback, calls, last := 0, 0, Progress{}
				sum, err := (&Runner{Store: st, Env: st}).Run(ctx, cfg, func(p Progress) {
					mu.Lock()
					inCallback++
					concurrent := inCallback > 1
					mu.Unlock()
					assert.False(t, concurrent, "progress called concurrently")
					mu.Lock()
					calls++
					last = p
					inCallback--
					mu.Unlock()
				})
				require.NoError(t, err, "%s n%d %s", mode, n, policy)
				require.Len(t, sum.Groups, 1)
				g := sum.Groups[0]
				assert.Equal(t, Group{Policy: policy, Objectives: n, Rollouts: tasks}, Group{Policy: g.Policy, Objectives: g.Objectives, Rollouts: g.Rollouts, Failed: g.Failed})
				assert.Equal(t, tasks, last.Done)
				assert.Equal(t, 0, last.Running)

				rows, err := st.Rollouts(ctx, sum.Experiment)
				require.NoError(t, err)
				require.Len(t, rows, tasks)
				turnsSeen := 0
				for _, row := range rows {
					d, err := st.Rollout(ctx, row.ID)
					require.NoError(t, err)
					assert.Equal(t, storage.StatusDone, d.Status, d.Error)
					// n searches then the answer.
					require.Len(t, d.Turns, n+1, "%s n%d %s %s", mode, n, policy, row.TaskKey)
					assert.Equal(t, row.Turns, len(d.Turns))
					for i, tu := range d.Turns {
						assert.Equal(t, i, tu.Index)
						assert.True(t, tu.UsageReported)
						assert.Positive(t, tu.PromptTokens)
						if i < n {
							assert.Equal(t, core.ActionSearch, tu.Action)
							// The query is stripped (the reference's act() strips it); the
							// joined question keeps its leading space.
							assert.Equal(t, strings.TrimSpace(core.JoinQuestions([]string{d.Task.Objectives[i].Question})), tu.Query, "query is the question")
							assert.NotEmpty(t, tu.Passages)
							assert.Contains(t, tu.Information, "Doc 1(Title: ")
						}
						// Information blocks open with the budget hint (the prompt also names the tag).
						infos := strings.Count(tu.Context, "<information>\n[HINT]")
						if policy == "mem1" {
							assert.LessOrEqual(t, infos, 1, "mem1 carries one exchange")
						} else {
							assert.Equal(t, i, infos, "full carries every exchange")
						}
						if mode == ModeCompletions {
							assert.True(t, strings.HasPrefix(tu.Context, "<|im_start|>system\n"))
						} else {
							assert.True(t, strings.HasPrefix(tu.Context, "<|user|>\n"))
						}
					}
					assert.Equal(t, core.ActionAnswer, d.Turns[n].Action)
					assert.Equal(t, n, strings.Count(d.Turns[n].Answer, ";")+1)
					assert.Equal(t, row.EM, d.Score.EM)
					totalEM += row.EM
					turnsSeen += len(d.Turns)
				}
				assert.Equal(t, turnsSeen, last.Turns)
				// At most one call per turn and per rollout's end: progress that lands
				// while the callback runs is merged into its next call (tracker.emit),
				// and the last call carries the final figures (checked above).
				assert.LessOrEqual(t, calls, turnsSeen+tasks, "no more than one call per turn and per rollout")
				assert.Positive(t, calls)
				sort.Slice(rows, func(i, j int) bool { return rows[i].TaskKey < rows[j].TaskKey })
				for _, row := range rows {
					d, _ := st.Rollout(ctx, row.ID)
					results[key{mode, policy, n}] = append(results[key{mode, policy, n}], d)
				}
			}
		}
	}
	t.Logf("oracle agent: summed EM %.0f over %d rollouts", totalEM, 8*tasks)
	assert.Positive(t, totalEM, "the scripted agent finds some answers")
	assert.Positive(t, agent.Requests("/v1/completions"))
	assert.Positive(t, agent.Requests("/v1/chat/completions"))

	for _, mode := range []string{ModeCompletions, ModeChat} {
		for _, n := range []int{2, 4} {
			mem1, full := results[key{mode, "mem1", n}], results[key{mode, "full", n}]
			require.Len(t, mem1, tasks)
			require.Len(t, full, tasks)
			for i := range mem1 {
				require.Equal(t, mem1[i].TaskKey, full[i].TaskKey)
				// The facts survive consolidation through <think>: same answers.
				assert.Equal(t, full[i].Turns[n].Answer, mem1[i].Turns[n].Answer, "%s n%d %s", mode, n, mem1[i].TaskKey)
				// Context size: full grows every turn; mem1 stays flat.
				ft, mt := full[i].Turns, mem1[i].Turns
				for j := 1; j < len(ft); j++ {
					assert.Greater(t, ft[j].PromptTokens, ft[j-1].PromptTokens, "full grows")
				}
				lo, hi := mt[1].PromptTokens, mt[1].PromptTokens
				for _, tu := range mt[1:] {
					lo, hi = min(lo, tu.PromptTokens), max(hi, tu.PromptTokens)
				}
				growth := ft[len(ft)-1].PromptTokens - ft[0].PromptTokens
				assert.Less(t, hi-lo, growth, "mem1 spread vs full growth")
				if n == 4 {
					assert.Less(t, mt[n].PromptTokens, ft[n].PromptTokens)
					assert.Less(t, float64(hi-lo), 0.5*float64(growth), "%s: mem1 per-turn context is flat", mem1[i].TaskKey)
				}
			}
		}
	}
}
