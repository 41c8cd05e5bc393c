package experiments

import (
	"fmt"

	"github.com/mem1lab/mem1lab/core"
)

// mt19937 is the Mersenne Twister MT19937 (Matsumoto & Nishimura 1998), seeded
// as numpy's legacy RandomState(int) seeds it (init_genrand: the 32-bit seed
// spread by key[i] = 1812433253·(key[i-1] ^ key[i-1]>>30) + i).
type mt19937 struct {
	key [624]uint32
	pos int
}

func newMT19937(seed uint32) *mt19937 {
	m := &mt19937{pos: 624}
	m.key[0] = seed
	for i := 1; i < 624; i++ {
		m.key[i] = 1812433253*(m.key[i-1]^(m.key[i-1]>>30)) + uint32(i)
	}
	return m
}

// next32 is genrand_int32: the next tempered 32-bit output.
func (m *mt19937) next32() uint32 {
	const upper, lower, matrixA = 0x80000000, 0x7fffffff, 0x9908b0df
	if m.pos >= 624 {
		for i := 0; i < 624; i++ {
			y := m.key[i]&upper | m.key[(i+1)%624]&lower
			v := m.key[(i+397)%624] ^ y>>1
			if y&1 != 0 {
				v ^= matrixA
			}
			m.key[i] = v
		}
		m.pos = 0
	}
	y := m.key[m.pos]
	m.pos++
	y ^= y >> 11
	y ^= y << 7 & 0x9d2c5680
	y ^= y << 15 & 0xefc60000
	y ^= y >> 18
	return y
}

// interval is numpy's random_interval(max) for max < 2^32: the outputs masked
// to the smallest all-ones mask covering max, drawn again while above max.
func (m *mt19937) interval(max uint32) uint32 {
	if max == 0 {
		return 0
	}
	mask := max
	mask |= mask >> 1
	mask |= mask >> 2
	mask |= mask >> 4
	mask |= mask >> 8
	mask |= mask >> 16
	for {
		if v := m.next32() & mask; v <= max {
			return v
		}
	}
}

// numpyPermutation is numpy.random.RandomState(seed).permutation(n): arange(n)
// shuffled by the legacy Fisher–Yates (for i = n-1 … 1: swap i with
// random_interval(i)).
func numpyPermutation(seed uint32, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	m := newMT19937(seed)
	for i := n - 1; i >= 1; i-- {
		j := int(m.interval(uint32(i)))
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// SampleTasks draws k of the composed tasks as MEM1's rollout script does
// (Mem1/inference/generate_rollout.py, read_nq_search_data:
// df.sample(frac=1000/len(df), random_state=42)): pandas' sample without
// replacement is numpy's RandomState(seed).choice(len, k, replace=False), which
// is permutation(len)[:k]. Tasks come back in that sampled order, with their
// composed keys (the reference keeps the original row index likewise). The
// MT19937 stream, the legacy interval draw and the shuffle are reimplemented
// here; they are tested against published numpy outputs for seed 42.
//
// k ≤ 0 returns tasks unchanged. Errors: k > len(tasks) (pandas refuses to
// sample more rows than there are without replacement; the reference's
// frac = 1000/len fails so on fewer than 1000 tasks), or a seed outside
// 0..2^32-1 (numpy's legacy seeding range).
func SampleTasks(tasks []core.Task, k int, seed int64) ([]core.Task, error) {
	if k <= 0 {
		return tasks, nil
	}
	if seed < 0 || seed > 1<<32-1 {
		return nil, fmt.Errorf("sample: seed %d: want 0..4294967295 (numpy's RandomState range)", seed)
	}
	if k > len(tasks) {
		return nil, fmt.Errorf("sample: %d tasks asked of %d composed (sampling is without replacement)", k, len(tasks))
	}
	perm := numpyPermutation(uint32(seed), len(tasks))
	out := make([]core.Task, k)
	for i := range out {
		out[i] = tasks[perm[i]]
	}
	return out, nil
}
