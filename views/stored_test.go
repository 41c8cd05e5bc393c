package views

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/widget"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/internal/fixture"
	"github.com/mem1lab/mem1lab/storage"
)

// bundleOracle imports the shared QA bundle into a temp store and serves the
// retrieval-oracle MEM1 agent over its HotpotQA questions; it returns the store
// and the endpoint's base URL (…/v1). Both are closed when the test ends.
func bundleOracle(t *testing.T) (*storage.Store, string) {
	t.Helper()
	bundle := filepath.Join("..", "..", "shared", "data", "qa-bundle")
	if _, err := os.Stat(filepath.Join(bundle, "unified", "questions.jsonl")); err != nil {
		fixture.Missing(t, "qa-bundle not found at %s: %v", bundle, err)
	}
	st, err := storage.Open(filepath.Join(t.TempDir(), "lab.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	_, err = st.ImportBundle(ctx, bundle)
	require.NoError(t, err)
	qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	srv := httptest.NewServer(oracle.New(qs))
	t.Cleanup(srv.Close)
	return st, srv.URL + "/v1"
}

// oracleStore runs the retrieval-oracle agent on the same two 2-objective
// HotpotQA tasks under policies mem1 and full. It returns the store and the two
// experiments' ids.
func oracleStore(t *testing.T) (*storage.Store, int64, int64) {
	t.Helper()
	st, url := bundleOracle(t)
	var exps []int64
	for _, policy := range []string{"mem1", "full"} {
		cfg := experiments.DefaultRunConfig()
		cfg.Endpoint, cfg.Model = url, oracle.ModelName
		cfg.Objectives, cfg.Tasks, cfg.Policy, cfg.Concurrency = 2, 2, policy, 1
		sum, err := (&experiments.Runner{Store: st, Env: st}).Run(context.Background(), cfg, nil)
		require.NoError(t, err)
		exps = append(exps, sum.Experiment)
	}
	return st, exps[0], exps[1]
}

func TestCompareAndTraceOnStoredOracleRollouts(t *testing.T) {
	st, expA, expB := oracleStore(t)
	ctx := context.Background()
	ra, err := st.Rollouts(ctx, expA)
	require.NoError(t, err)
	rb, err := st.Rollouts(ctx, expB)
	require.NoError(t, err)
	require.Len(t, ra, 2)
	require.Len(t, rb, 2)

	u, w := newTestUI(t, st, nil)
	act(u, func() { u.OpenCompare(ra[0].ID, 0) })
	u.wait()
	cp := u.compare
	require.True(t, cp.loaded, cp.status.Text)
	assert.Equal(t, rb[0].ID, cp.b.ID, "the full-context rollout on the same task")
	a, b := cp.a, cp.b
	require.Equal(t, len(a.Turns), len(b.Turns), "the oracle plays the same turns under both policies")
	require.Len(t, cp.turns.rows, len(a.Turns))
	for i := range a.Turns {
		row := cp.turns.rows[i]
		assert.Equal(t, row[2], row[4], "turn %d: same action under both policies", i+1)
		assert.Equal(t, turnCell(a.Turns[i], false), row[2])
	}
	// Consolidation: from turn 3 on, mem1's context is smaller than full's.
	last := len(a.Turns) - 1
	assert.Less(t, a.Turns[last].PromptTokens, b.Turns[last].PromptTokens)
	require.Len(t, cp.outcome.rows, 2)
	ma, mb := answerMarks(a), answerMarks(b)
	for k := range ma {
		assert.Equal(t, outcomeText(ma[k], mb[k]), cp.outcome.rows[k][4])
		assert.Equal(t, a.Score.PerObjective[k].Answer, cp.outcome.rows[k][2])
	}
	assert.True(t, hasText(w.Canvas(), cp.outcome.rows[0][4]), "outcome is drawn")

	// Same answers under both policies: the experiment pair has no disagreement.
	act(u, func() { cp.setPair(expA, expB) })
	u.wait()
	assert.Empty(t, cp.table.rows)
	assert.Equal(t, "2 tasks in both · 0 objectives differ: A right on 0, B right on 0", cp.pairStatus.Text)

	// Trace on the same stored rollout: gold passages are marked, facts carried follow the state.
	act(u, func() { u.OpenRollout(a.ID) })
	u.wait()
	tp := u.trace
	golds := 0
	for i, tu := range a.Turns {
		if i > 0 {
			w.pressKey(t, u, fyne.KeyRight)
		}
		for k, ps := range tu.Passages {
			line := tp.passages.Objects[k].(*widget.Label).Text
			isGold := false
			for _, o := range a.Task.Objectives {
				for _, id := range o.GoldPassageIDs {
					isGold = isGold || id == ps.ID
				}
			}
			assert.Equal(t, isGold, strings.Contains(line, "[gold passage of objective"), "turn %d passage %s: %s", i+1, ps.ID, line)
			if isGold {
				golds++
			}
		}
		carried := factsCarried(tu.InternalState, a.Task.Objectives)
		for k := range carried {
			assert.Equal(t, carried[k], strings.Contains(tp.facts.Objects[k].(*widget.Label).Text, "✓ in this turn's state"))
		}
	}
	t.Logf("gold passages retrieved across %d turns: %d", len(a.Turns), golds)
	// The oracle writes "fact k: <alias>" for what it found; a correct objective's alias is carried.
	final := factsCarried(a.Turns[last].InternalState, a.Task.Objectives)
	for k, m := range ma {
		if m.Correct() {
			assert.True(t, final[k], "objective %d answered right, so its gold answer is in the final state", k+1)
		}
	}
	assert.Equal(t, core.ActionAnswer, a.Turns[last].Action)
}
