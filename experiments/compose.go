package experiments

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// Composition rules.
const (
	ComposeRuleConsecutive = "consecutive"
	ComposeRuleRandom      = "random"
	// ComposeRuleMixed draws each task's objectives from several datasets in
	// turn (ComposeMixed). This is NOT MEM1's rule: the reference composes
	// each data source on its own and never mixes sources inside a task
	// (qa_search_test_merge_multi.py); use it for experiments beyond the paper.
	ComposeRuleMixed = "mixed"
)

// MixedDatasetName is the Task.Dataset of a mixed composition over datasets:
// "mixed:" and the names joined with "+" in the given order, e.g.
// "mixed:hotpotqa+nq".
func MixedDatasetName(datasets []string) string {
	return "mixed:" + strings.Join(datasets, "+")
}

// ComposeConsecutive builds N-objective tasks by MEM1's rule
// (Mem1/gen_data/data_process/qa_search_test_merge_multi.py): the dataset's
// questions, in file order (Seq, so all of a dataset's source files follow
// each other as they were imported, e.g. every HotpotQA file together), are
// cut into consecutive runs of n; the last run shorter than n is dropped (the
// reference drops len % n questions per data source). Questions are not
// grouped by source file. Keys are "{dataset}/n{n}/{index:04d}". n < 1 gives no
// tasks. Question ids and gold aliases are kept per objective.
func ComposeConsecutive(dataset string, qs []storage.Question, n int) []core.Task {
	if n < 1 {
		return nil
	}
	sorted := sortedBySeq(qs)
	var tasks []core.Task
	for i := 0; i+n <= len(sorted); i += n {
		tasks = append(tasks, makeTask(fmt.Sprintf("%s/n%d/%04d", dataset, n, len(tasks)), dataset, sorted[i:i+n]))
	}
	return tasks
}

// ComposeRandom builds `tasks` N-objective tasks of questions drawn at random
// (seeded; the same inputs and seed give the same tasks). A question appears at
// most once within a task; across tasks questions are drawn without replacement
// until the pool runs out, then the pool is reshuffled. Keys are
// "{dataset}/n{n}/random/{index:04d}". tasks ≤ 0 means len(qs)/n. n < 1 or fewer
// than n questions give no tasks.
func ComposeRandom(dataset string, qs []storage.Question, n, tasks int, seed int64) []core.Task {
	if n < 1 || len(qs) < n {
		return nil
	}
	if tasks <= 0 {
		tasks = len(qs) / n
	}
	pool := sortedBySeq(qs)                                      // independent of the caller's order
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6d656d316c6162)) // "mem1lab"
	perm := rng.Perm(len(pool))
	next := 0
	out := make([]core.Task, 0, tasks)
	for t := 0; t < tasks; t++ {
		picked := make([]storage.Question, 0, n)
		used := map[int]bool{}
		for len(picked) < n {
			if next == len(perm) {
				perm = rng.Perm(len(pool))
				next = 0
			}
			idx := perm[next]
			next++
			if used[idx] {
				continue // reshuffled pool gave a question already in this task
			}
			used[idx] = true
			picked = append(picked, pool[idx])
		}
		out = append(out, makeTask(fmt.Sprintf("%s/n%d/random/%04d", dataset, n, t), dataset, picked))
	}
	return out
}

// ComposeMixed builds `tasks` n-objective tasks whose objectives come from the
// datasets in turn (not MEM1's composition, which never mixes sources inside a
// task; see ComposeRuleMixed): the draws of the whole composition go round-robin over
// datasets in the given order (objective i of task t comes from
// datasets[(t·n+i) mod len(datasets)]), so with two datasets consecutive
// objectives alternate. Each dataset's questions (sources[name], ordered by Seq,
// so the caller's order does not matter) are drawn in a seeded shuffled order
// without replacement until that dataset runs out, then reshuffled; a question
// never appears twice within a task. The same inputs and seed give the same
// tasks. Task.Dataset is MixedDatasetName(datasets); keys are
// "mixed/n{n}/{index:04d}". Objectives keep their question ids (which carry
// their dataset's prefix, e.g. "nq:dev-0001"), gold aliases and gold passage ids.
//
// tasks ≤ 0 means as many tasks as the smallest dataset supplies before it
// would be reshuffled: ⌊min over datasets of len(questions) · len(datasets) / n⌋.
// No tasks when n < 1, datasets is empty, or a dataset has fewer questions
// than one task draws from it (⌈n/len(datasets)⌉).
func ComposeMixed(sources map[string][]storage.Question, datasets []string, n, tasks int, seed int64) []core.Task {
	k := len(datasets)
	if n < 1 || k == 0 {
		return nil
	}
	perTask := (n + k - 1) / k // most draws one task makes from one dataset
	pools := make([][]storage.Question, k)
	smallest := -1
	for i, d := range datasets {
		pools[i] = sortedBySeq(sources[d])
		if len(pools[i]) < perTask {
			return nil
		}
		if smallest < 0 || len(pools[i]) < smallest {
			smallest = len(pools[i])
		}
	}
	if tasks <= 0 {
		tasks = smallest * k / n
		if tasks == 0 {
			return nil
		}
	}
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6d697865646c6162)) // "mixedlab"
	perms := make([][]int, k)
	next := make([]int, k)
	for i := range pools {
		perms[i] = rng.Perm(len(pools[i]))
	}
	name := MixedDatasetName(datasets)
	out := make([]core.Task, 0, tasks)
	draw := 0 // draws so far over the whole composition
	for t := 0; t < tasks; t++ {
		picked := make([]storage.Question, 0, n)
		used := make([]map[int]bool, k)
		for len(picked) < n {
			d := draw % k
			draw++
			if used[d] == nil {
				used[d] = map[int]bool{}
			}
			for {
				if next[d] == len(perms[d]) {
					perms[d] = rng.Perm(len(pools[d]))
					next[d] = 0
				}
				idx := perms[d][next[d]]
				next[d]++
				if used[d][idx] {
					continue // the reshuffled pool gave a question already in this task
				}
				used[d][idx] = true
				picked = append(picked, pools[d][idx])
				break
			}
		}
		out = append(out, makeTask(fmt.Sprintf("mixed/n%d/%04d", n, t), name, picked))
	}
	return out
}

func sortedBySeq(qs []storage.Question) []storage.Question {
	out := append([]storage.Question(nil), qs...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

func makeTask(key, dataset string, qs []storage.Question) core.Task {
	t := core.Task{Key: key, Dataset: dataset, Objectives: make([]core.Objective, len(qs))}
	for i, q := range qs {
		o := q.Objective()
		o.Gold = append([]string(nil), o.Gold...)
		o.GoldPassageIDs = append([]string(nil), o.GoldPassageIDs...)
		t.Objectives[i] = o
	}
	return t
}
