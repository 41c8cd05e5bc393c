package experiments

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

func TestMT19937KnownOutputs(t *testing.T) {
	// Matsumoto & Nishimura's reference mt19937ar.c: init_genrand(5489) gives
	// 3499211612 first (the C++ std::mt19937 default; its 10000th output is
	// 4123659995, the value the C++ standard requires).
	m := newMT19937(5489)
	assert.Equal(t, uint32(3499211612), m.next32())
	for i := 2; i < 10000; i++ {
		m.next32()
	}
	assert.Equal(t, uint32(4123659995), m.next32())

	// numpy: np.random.seed(42); np.random.rand() → 0.3745401188473625,
	// then 0.9507143064099162.
	m = newMT19937(42)
	assert.Equal(t, 0.3745401188473625, m.float64())
	assert.Equal(t, 0.9507143064099162, m.float64())
}

func TestNumpyPermutationSeed42(t *testing.T) {
	// numpy: np.random.RandomState(42).permutation(10).
	assert.Equal(t, []int{8, 1, 5, 0, 7, 2, 9, 4, 3, 6}, numpyPermutation(42, 10))
	for _, n := range []int{0, 1, 2, 7, 1000} {
		p := numpyPermutation(7, n)
		seen := make([]bool, n)
		for _, v := range p {
			require.False(t, seen[v])
			seen[v] = true
		}
		assert.Len(t, p, n)
	}
}

func TestSampleTasks(t *testing.T) {
	tasks := make([]core.Task, 10)
	for i := range tasks {
		tasks[i] = core.Task{Key: fmt.Sprintf("hotpotqa/n2/%04d", i)}
	}
	got, err := SampleTasks(tasks, 4, 42)
	require.NoError(t, err)
	keys := []string{}
	for _, tk := range got {
		keys = append(keys, tk.Key)
	}
	// pandas: df.sample(n=4, random_state=42) on a 10-row frame takes rows 8, 1, 5, 0.
	assert.Equal(t, []string{"hotpotqa/n2/0008", "hotpotqa/n2/0001", "hotpotqa/n2/0005", "hotpotqa/n2/0000"}, keys)

	same, err := SampleTasks(tasks, 0, 42)
	require.NoError(t, err)
	assert.Equal(t, tasks, same)
	_, err = SampleTasks(tasks, 11, 42)
	require.ErrorContains(t, err, "11 tasks asked of 10")
	_, err = SampleTasks(tasks, 2, -1)
	require.Error(t, err)
	_, err = SampleTasks(tasks, 2, 1<<32)
	require.Error(t, err)
}

// float64 is numpy's random_sample(): (a>>5 · 2^26 + b>>6) / 2^53 from two
// outputs.
func (m *mt19937) float64() float64 {
	a, b := m.next32()>>5, m.next32()>>6
	return (float64(a)*67108864 + float64(b)) / 9007199254740992
}
