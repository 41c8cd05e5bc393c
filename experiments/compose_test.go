package experiments

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/storage"
)

func mkQuestions(src string, from, n int) []storage.Question {
	var qs []storage.Question
	for i := 0; i < n; i++ {
		seq := from + i
		qs = append(qs, storage.Question{
			ID: fmt.Sprintf("hotpotqa:q%03d", seq), Dataset: "hotpotqa", Seq: seq, SourceFile: src,
			Question: fmt.Sprintf("question %d", seq), Golden: []string{fmt.Sprintf("gold %d", seq), "alias"},
			GoldPassageIDs: []string{fmt.Sprintf("hp-%d", seq)},
		})
	}
	return qs
}

func TestComposeConsecutive(t *testing.T) {
	// source a: seq 0..6 (7 questions), source b: seq 7..11 (5 questions); given shuffled.
	// MEM1 cuts the whole dataset in file order, not each source file.
	qs := append(mkQuestions("b", 7, 6), mkQuestions("a", 0, 7)...)
	tasks := ComposeConsecutive("hotpotqa", qs, 3)
	// [0 1 2] [3 4 5] [6 7 8] [9 10 11] (12 dropped): a task spans both files.
	require.Len(t, tasks, 4)
	assert.Equal(t, "hotpotqa/n3/0000", tasks[0].Key)
	assert.Equal(t, "hotpotqa/n3/0003", tasks[3].Key)
	ids := func(i int) []string {
		var out []string
		for _, o := range tasks[i].Objectives {
			out = append(out, o.QuestionID)
		}
		return out
	}
	assert.Equal(t, []string{"hotpotqa:q000", "hotpotqa:q001", "hotpotqa:q002"}, ids(0))
	assert.Equal(t, []string{"hotpotqa:q003", "hotpotqa:q004", "hotpotqa:q005"}, ids(1))
	assert.Equal(t, []string{"hotpotqa:q006", "hotpotqa:q007", "hotpotqa:q008"}, ids(2))
	assert.Equal(t, []string{"hotpotqa:q009", "hotpotqa:q010", "hotpotqa:q011"}, ids(3))
	o := tasks[2].Objectives[2]
	assert.Equal(t, "question 8", o.Question)
	assert.Equal(t, []string{"gold 8", "alias"}, o.Gold)
	assert.Equal(t, []string{"hp-8"}, o.GoldPassageIDs)
	assert.Equal(t, "hotpotqa", tasks[0].Dataset)

	assert.Empty(t, ComposeConsecutive("hotpotqa", qs, 0))
	assert.Empty(t, ComposeConsecutive("hotpotqa", mkQuestions("a", 0, 2), 3))
	assert.Len(t, ComposeConsecutive("hotpotqa", qs, 1), 13)
}

func TestComposeRandom(t *testing.T) {
	qs := mkQuestions("a", 0, 10)
	a := ComposeRandom("nq", qs, 4, 6, 7)
	b := ComposeRandom("nq", qs, 4, 6, 7)
	require.Len(t, a, 6)
	assert.Equal(t, a, b, "same seed, same tasks")
	c := ComposeRandom("nq", qs, 4, 6, 8)
	assert.NotEqual(t, a, c, "another seed, other tasks")
	for _, task := range a {
		require.Len(t, task.Objectives, 4)
		seen := map[string]bool{}
		for _, o := range task.Objectives {
			assert.False(t, seen[o.QuestionID], "question twice in %s", task.Key)
			seen[o.QuestionID] = true
		}
	}
	assert.Equal(t, "nq/n4/random/0005", a[5].Key)
	// The first 10 objectives drawn are the 10 questions, each once.
	first := map[string]bool{}
	for _, task := range a[:2] {
		for _, o := range task.Objectives {
			first[o.QuestionID] = true
		}
	}
	assert.Len(t, first, 8)
	assert.Len(t, ComposeRandom("nq", qs, 4, 0, 1), 2, "tasks 0 = len/n")
	assert.Empty(t, ComposeRandom("nq", qs[:3], 4, 2, 1))
	// Input order does not matter.
	rev := append([]storage.Question(nil), qs...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	assert.Equal(t, a, ComposeRandom("nq", rev, 4, 6, 7))
}
