package experiments

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/storage"
)

// mkDataset is n questions of dataset ds, ids "{ds}:q{seq}", seq from 0.
func mkDataset(ds string, n int) []storage.Question {
	qs := make([]storage.Question, n)
	for i := range qs {
		qs[i] = storage.Question{ID: fmt.Sprintf("%s:q%03d", ds, i), Dataset: ds, Seq: i, SourceFile: ds + ".jsonl",
			Question: fmt.Sprintf("%s question %d", ds, i), Golden: []string{fmt.Sprintf("%s gold %d", ds, i), "alias"},
			GoldPassageIDs: []string{fmt.Sprintf("%s-p%d", ds, i)}}
	}
	return qs
}

func datasetOf(id string) string { d, _, _ := strings.Cut(id, ":"); return d }

func TestComposeMixed(t *testing.T) {
	sources := map[string][]storage.Question{"hotpotqa": mkDataset("hotpotqa", 9), "nq": mkDataset("nq", 6)}
	ds := []string{"hotpotqa", "nq"}
	a := ComposeMixed(sources, ds, 4, 5, 11)
	require.Len(t, a, 5)
	assert.Equal(t, a, ComposeMixed(sources, ds, 4, 5, 11), "same seed, same tasks")
	assert.NotEqual(t, a, ComposeMixed(sources, ds, 4, 5, 12), "another seed, other tasks")

	assert.Equal(t, "mixed/n4/0003", a[3].Key)
	for _, task := range a {
		assert.Equal(t, "mixed:hotpotqa+nq", task.Dataset)
		require.Len(t, task.Objectives, 4)
		seen := map[string]bool{}
		for i, o := range task.Objectives {
			assert.Equal(t, ds[i%2], datasetOf(o.QuestionID), "objective %d of %s: the datasets alternate", i+1, task.Key)
			assert.False(t, seen[o.QuestionID], "%s twice in %s", o.QuestionID, task.Key)
			seen[o.QuestionID] = true
		}
	}
	// Objectives keep the question's id, gold aliases and gold passages.
	o := a[0].Objectives[1]
	var q storage.Question
	for _, c := range sources["nq"] {
		if c.ID == o.QuestionID {
			q = c
		}
	}
	require.NotEmpty(t, q.ID)
	assert.Equal(t, q.Question, o.Question)
	assert.Equal(t, q.Golden, o.Gold)
	assert.Equal(t, q.GoldPassageIDs, o.GoldPassageIDs)

	// The first 3 tasks draw 6 nq questions: each nq question once before any repeats.
	nq := map[string]bool{}
	for _, task := range a[:3] {
		for _, o := range task.Objectives {
			if datasetOf(o.QuestionID) == "nq" {
				nq[o.QuestionID] = true
			}
		}
	}
	assert.Len(t, nq, 6)

	// An odd n carries the turn over from task to task.
	odd := ComposeMixed(sources, ds, 3, 2, 1)
	require.Len(t, odd, 2)
	var got []string
	for _, task := range odd {
		for _, o := range task.Objectives {
			got = append(got, datasetOf(o.QuestionID))
		}
	}
	assert.Equal(t, []string{"hotpotqa", "nq", "hotpotqa", "nq", "hotpotqa", "nq"}, got)

	// tasks ≤ 0: as many as the smallest dataset gives (6 nq · 2 datasets / 4).
	assert.Len(t, ComposeMixed(sources, ds, 4, 0, 1), 3)
	// Too few questions for one task's share (⌈5/2⌉ = 3 from each), or none at all.
	short := map[string][]storage.Question{"hotpotqa": mkDataset("hotpotqa", 9), "nq": mkDataset("nq", 2)}
	assert.Empty(t, ComposeMixed(short, ds, 5, 2, 1))
	assert.Len(t, ComposeMixed(short, ds, 4, 2, 1), 2, "2 nq questions are enough for 4 objectives")
	assert.Empty(t, ComposeMixed(sources, []string{"hotpotqa", "musique"}, 2, 2, 1))
	assert.Empty(t, ComposeMixed(sources, ds, 0, 2, 1))
	assert.Empty(t, ComposeMixed(sources, nil, 2, 2, 1))

	// The callers' order of questions does not matter.
	rev := map[string][]storage.Question{}
	for d, qs := range sources {
		for i := len(qs) - 1; i >= 0; i-- {
			rev[d] = append(rev[d], qs[i])
		}
	}
	assert.Equal(t, a, ComposeMixed(rev, ds, 4, 5, 11))
}

func TestComposeTasksMixedThroughConfig(t *testing.T) {
	src := fakeQuestions{"hotpotqa": mkDataset("hotpotqa", 8), "nq": mkDataset("nq", 8), "empty": nil}
	cfg := DefaultRunConfig()
	cfg.Compose, cfg.Datasets, cfg.Objectives, cfg.Tasks = ComposeRuleMixed, []string{"nq", "hotpotqa"}, 2, 3
	require.NoError(t, cfg.Validate())
	qs, err := LoadQuestions(context.Background(), src, cfg)
	require.NoError(t, err)
	assert.Len(t, qs, 16)
	tasks := ComposeTasks(cfg, qs)
	require.Len(t, tasks, 3)
	for _, task := range tasks {
		assert.Equal(t, "mixed:nq+hotpotqa", task.Dataset)
		assert.Equal(t, "nq", datasetOf(task.Objectives[0].QuestionID), "the first dataset listed goes first")
		assert.Equal(t, "hotpotqa", datasetOf(task.Objectives[1].QuestionID))
	}
	cfg.ObjectivesGrid = []int{2, 20}
	_, err = PlanGrid(cfg, qs)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"mixed:nq+hotpotqa"`)
	assert.Contains(t, err.Error(), "20-objective")

	cfg.Datasets = []string{"hotpotqa", "empty"}
	_, err = LoadQuestions(context.Background(), src, cfg)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `dataset "empty" has no questions`)

	// Without mixing only the dataset is read.
	one := DefaultRunConfig()
	qs, err = LoadQuestions(context.Background(), src, one)
	require.NoError(t, err)
	assert.Len(t, qs, 8)
	assert.Equal(t, "hotpotqa", qs[0].Dataset)
}

type fakeQuestions map[string][]storage.Question

func (f fakeQuestions) Questions(_ context.Context, dataset string, _, _ int) ([]storage.Question, error) {
	return f[dataset], nil
}

func TestComposeMixedConfigValidate(t *testing.T) {
	c := DefaultRunConfig()
	c.Compose, c.Datasets = ComposeRuleMixed, []string{"hotpotqa", "nq"}
	require.NoError(t, c.Validate())
	assert.Equal(t, []string{"hotpotqa", "nq"}, c.SourceDatasets())
	assert.Equal(t, "mixed:hotpotqa+nq", c.TaskDataset())

	for _, tc := range []struct {
		compose  string
		datasets []string
		want     []string
	}{
		{ComposeRuleMixed, nil, []string{"datasets:", "at least 2 datasets", "got 0"}},
		{ComposeRuleMixed, []string{"nq"}, []string{"datasets:", "got 1"}},
		{ComposeRuleMixed, []string{"nq", "nq"}, []string{`datasets: "nq" is listed twice`}},
		{ComposeRuleMixed, []string{"nq", "hotpot qa+x"}, []string{`datasets: entry 2 is "hotpot qa+x"`}},
		{ComposeRuleMixed, []string{"nq", ""}, []string{`datasets: entry 2 is ""`}},
		{ComposeRuleRandom, []string{"hotpotqa", "nq"}, []string{"datasets:", `compose = "mixed"`, `compose is "random"`}},
		{"blend", nil, []string{`compose: "blend"`, `"mixed"`}},
	} {
		c := DefaultRunConfig()
		c.Compose, c.Datasets = tc.compose, tc.datasets
		err := c.Validate()
		require.Error(t, err, "%s %v", tc.compose, tc.datasets)
		for _, w := range tc.want {
			assert.Contains(t, err.Error(), w, "%s %v", tc.compose, tc.datasets)
		}
	}
	plain := DefaultRunConfig()
	assert.Equal(t, []string{"hotpotqa"}, plain.SourceDatasets())
	assert.Equal(t, "hotpotqa", plain.TaskDataset())
}

// TestComposeMixedKeepsOldHashes: configs written before the datasets key have
// the same canonical TOML (no datasets line) and the same hash as before it
// (the values were computed with the code before the key existed).
func TestComposeMixedKeepsOldHashes(t *testing.T) {
	def := DefaultRunConfig()
	b, err := def.CanonicalTOML()
	require.NoError(t, err)
	assert.NotContains(t, string(b), "datasets")
	assert.Equal(t, "b15d5b40d06eee7bc9ea24811f650b25ac7f3c3de0bc1c744cf7b3e96780ef78", def.Hash())
	grid := DefaultRunConfig()
	grid.Compose, grid.ObjectivesGrid, grid.Policies = ComposeRuleRandom, []int{1, 2, 4}, []string{"mem1", "full"}
	assert.Equal(t, "675ec21fa3316c4844e5b2527809253a5131ac24bf0241097c8ee676e0d5bfb2", grid.Hash())
	j, err := json.Marshal(def)
	require.NoError(t, err)
	assert.NotContains(t, string(j), "datasets")

	// A mixed config round-trips through TOML with its sources.
	mixed := DefaultRunConfig()
	mixed.Compose, mixed.Datasets = ComposeRuleMixed, []string{"hotpotqa", "nq"}
	mb, err := mixed.CanonicalTOML()
	require.NoError(t, err)
	assert.Contains(t, string(mb), `datasets = ["hotpotqa", "nq"]`)
	back, err := LoadRunConfig(writeFile(t, string(mb)))
	require.NoError(t, err)
	assert.Equal(t, mixed, back)
	assert.NotEqual(t, def.Hash(), mixed.Hash())
}
