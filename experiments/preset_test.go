package experiments

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

func TestTable1PresetGrid(t *testing.T) {
	base := DefaultRunConfig()
	base.Endpoint, base.Model = "http://10.0.0.5:8000/v1", "my-model"
	cfgs := Table1Preset(base, 0)
	require.Len(t, cfgs, 10)
	seen := map[[2]any]bool{}
	for i, c := range cfgs {
		require.NoError(t, c.Validate(), c.Name)
		assert.Equal(t, DefaultPresetTasks, c.Tasks)
		assert.Equal(t, "my-model", c.Model)
		assert.Equal(t, base.Endpoint, c.Endpoint)
		want := 6
		if c.Objectives > 4 {
			want = 20
		}
		assert.Equal(t, want, c.MaxTurns, c.Name)
		assert.Equal(t, Table1Objectives[i/2], c.Objectives)
		seen[[2]any{c.Policy, c.Objectives}] = true
	}
	assert.Len(t, seen, 10, "every (policy, objectives) once")
	assert.Equal(t, 7, Table1Preset(base, 7)[3].Tasks)
}

type failingRunner struct{ calls []string }

func (f *failingRunner) Run(ctx context.Context, cfg RunConfig, progress func(Progress)) (Summary, error) {
	f.calls = append(f.calls, cfg.Name)
	if cfg.Objectives == 2 {
		return Summary{}, errors.New("endpoint down")
	}
	progress(Progress{Total: 1, Done: 1})
	return Summary{Experiment: int64(len(f.calls))}, nil
}

func TestRunSettingsGoesOnAfterAFailureAndStopsOnCancel(t *testing.T) {
	cfgs := Table1Preset(DefaultRunConfig(), 1)[:4]
	r := &failingRunner{}
	var prog []int
	sums, err := RunSettings(context.Background(), r, cfgs, func(i int, p Progress) { prog = append(prog, i) }, nil)
	require.Error(t, err)
	assert.ErrorContains(t, err, "MEM1 Table 1 · mem1 n=2: endpoint down")
	assert.Len(t, sums, 4)
	assert.Equal(t, []int{0, 1}, prog)
	assert.Len(t, r.calls, 4)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r2 := &failingRunner{}
	_, err = RunSettings(ctx, r2, cfgs, nil, nil)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, r2.calls)
}

// TestPresetWithOracleRunsAggregatesAndTrajectories runs the Table 1 grid (two
// tasks per setting) through the retrieval-oracle endpoint over the real bundle,
// aggregates it, and checks that the trajectories export rescores to the stored
// EM and F1.
func TestPresetWithOracleRunsAggregatesAndTrajectories(t *testing.T) {
	st := bundleStore(t)
	ctx := context.Background()
	qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	srv := httptest.NewServer(oracle.New(qs))
	defer srv.Close()
	base := DefaultRunConfig()
	base.Endpoint, base.Model, base.Concurrency = srv.URL+"/v1", oracle.ModelName, 2
	cfgs := Table1Preset(base, 2)
	var done []int64
	sums, err := RunSettings(ctx, &Runner{Store: st, Env: st}, cfgs, nil, func(i int, s Summary, err error) {
		done = append(done, s.Experiment)
	})
	require.NoError(t, err)
	require.Len(t, sums, 10)
	assert.Len(t, done, 10)
	ids := make([]int64, len(sums))
	for i, s := range sums {
		ids[i] = s.Experiment
	}
	aggs, err := ExperimentAggregates(ctx, st, true, ids...)
	require.NoError(t, err)
	require.Len(t, aggs, 10)
	for _, a := range aggs {
		assert.Equal(t, oracle.ModelName, a.Model)
		assert.Equal(t, 2, a.EM.N, "%+v", a.GroupKey)
		assert.Positive(t, a.PeakTokens.Mean)
		assert.LessOrEqual(t, a.EM.Mean, float64(a.Objectives))
		assert.LessOrEqual(t, a.Turns.Mean, float64(core.DefaultMaxTurns(a.Objectives)))
	}

	// Trajectories of the settings eval.py can read whole (≤ 10 turns) rescore
	// to the stored EM and F1.
	path := filepath.Join(t.TempDir(), "traj.jsonl")
	f, err := os.Create(path)
	require.NoError(t, err)
	var short []int64
	for i, c := range cfgs {
		if c.Objectives <= 4 {
			short = append(short, ids[i])
		}
	}
	n, err := WriteTrajectoriesJSONL(ctx, f, st, short...)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	assert.Equal(t, 2*len(short), n)
	ts, err := ReadTrajectoriesJSONL(path)
	require.NoError(t, err)
	scores, _, _, err := ScoreTrajectories(ts, "mem1")
	require.NoError(t, err)
	for i, s := range scores {
		var id int64
		for _, c := range ts[i].Index {
			id = id*10 + int64(c-'0')
		}
		d, err := st.Rollout(ctx, id)
		require.NoError(t, err)
		assert.Equal(t, storage.StatusDone, d.Status)
		assert.InDelta(t, d.EM, s.Score.EM, 1e-9, "rollout %d EM", id)
		assert.InDelta(t, d.F1, s.Score.F1, 1e-9, "rollout %d F1", id)
	}
}

// TestTable1GridMatchesThePresetSettings: the one-experiment grid plans the
// same ten settings (objectives × policies) as the per-setting preset.
func TestTable1GridMatchesThePresetSettings(t *testing.T) {
	base := DefaultRunConfig()
	g := Table1Grid(base, 7)
	require.NoError(t, g.Validate())
	assert.Equal(t, "MEM1 Table 1", g.Name)
	assert.Equal(t, 7, g.Tasks)
	assert.Equal(t, 0, g.MaxTurns)
	var want [][2]any
	for _, c := range Table1Preset(base, 7) {
		want = append(want, [2]any{c.Objectives, c.Policy})
	}
	var got [][2]any
	for _, n := range g.ObjectivesList() {
		for _, p := range g.PolicyList() {
			got = append(got, [2]any{n, p})
		}
	}
	assert.Equal(t, want, got)
	assert.Equal(t, DefaultPresetTasks, Table1Grid(base, 0).Tasks)
}
