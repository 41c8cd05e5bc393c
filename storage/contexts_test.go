package storage

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

// fullPolicyContexts builds n contexts the way the full policy grows them in
// completions mode: a Qwen chat prefix around the prompt plus every earlier
// response and information, closed by the open assistant turn (so each context
// is not a plain extension of the one before). add is the bytes each turn adds.
func fullPolicyContexts(n, add int) []string {
	prompt := "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n" + strings.Repeat("Answer the questions. ", 80)
	tail := "<|im_end|>\n<|im_start|>assistant\n"
	var carried strings.Builder
	out := make([]string, n)
	for i := range n {
		out[i] = prompt + carried.String() + tail
		fmt.Fprintf(&carried, "<think>turn %d é</think><search>q%d</search>", i, i)
		carried.WriteString(strings.Repeat(string(rune('a'+i%26)), add))
	}
	return out
}

func newRollout(t testing.TB, s *Store, policy string) int64 {
	t.Helper()
	ctx := ctxT(t)
	e, err := s.CreateExperiment(ctx, "ctx", `{}`, "h-ctx")
	require.NoError(t, err)
	ids, err := s.AddTasks(ctx, e, sampleTasks())
	require.NoError(t, err)
	r, err := s.CreateRollout(ctx, e, ids["nq/n1/0000"], policy, "qwen")
	require.NoError(t, err)
	return r
}

func storedContextBytes(t *testing.T, s *Store, rolloutID int64) int {
	t.Helper()
	var n int
	require.NoError(t, s.r.QueryRowContext(ctxT(t),
		`SELECT COALESCE(SUM(length(CAST(context AS BLOB))), 0) FROM turns WHERE rollout_id = ?`, rolloutID).Scan(&n))
	return n
}

// Under the full policy the stored context bytes grow linearly with the
// trajectory, not with the sum of the contexts, and every context comes back
// byte for byte with the SHA-256 stored beside it.
func TestContextsStoredLinearlyAndExact(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	r := newRollout(t, s, "full")
	const n, add = 40, 4000
	contexts := fullPolicyContexts(n, add)
	sumFull := 0
	for i, c := range contexts {
		tu := sampleTurn(i)
		tu.Context = c
		if i%2 == 0 {
			require.NoError(t, s.AppendTurn(ctx, r, tu))
		} else {
			require.Nil(t, s.AppendTurns(ctx, []TurnWrite{{RolloutID: r, Turn: tu}})[0])
		}
		sumFull += len(c)
	}
	last := len(contexts[n-1])
	stored := storedContextBytes(t, s, r)
	assert.LessOrEqual(t, stored, 2*last, "stored context bytes %d for a %d-byte final context (sum of contexts %d)",
		stored, last, sumFull)

	turns, err := s.Turns(ctx, r)
	require.NoError(t, err)
	require.Len(t, turns, n)
	for i, tu := range turns {
		require.Equal(t, contexts[i], tu.Context, "turn %d", i)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT idx, ctx_sha256 FROM turns WHERE rollout_id = ? ORDER BY idx`, r)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var i int
		var h string
		require.NoError(t, rows.Scan(&i, &h))
		want := sha256.Sum256([]byte(contexts[i]))
		assert.Equal(t, hex.EncodeToString(want[:]), h, "turn %d hash", i)
	}
	require.NoError(t, rows.Err())

	// A fresh Store (no cache) appends the next turn by rebuilding the last one.
	s2, err := Open(s.Path())
	require.NoError(t, err)
	defer s2.Close()
	next := contexts[n-1][:len(contexts[n-1])-len("<|im_end|>\n<|im_start|>assistant\n")] + "more<|im_end|>\n<|im_start|>assistant\n"
	tu := sampleTurn(n)
	tu.Context = next
	require.NoError(t, s2.AppendTurn(ctx, r, tu))
	got, err := turnContext(ctx, s2.r, r, n)
	require.NoError(t, err)
	assert.Equal(t, next, got)
}

// A damaged stored delta is caught by the hash, never returned as a context.
func TestContextHashCatchesDamage(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	r := newRollout(t, s, "full")
	for i, c := range fullPolicyContexts(3, 200) {
		tu := sampleTurn(i)
		tu.Context = c
		require.NoError(t, s.AppendTurn(ctx, r, tu))
	}
	_, err := s.w.ExecContext(ctx, `UPDATE turns SET context = 'x' || context WHERE rollout_id = ? AND idx = 1`, r)
	require.NoError(t, err)
	_, err = s.Turns(ctx, r)
	require.ErrorIs(t, err, ErrContextHash)
	assert.Contains(t, err.Error(), "turn 1 of rollout")
}

// Contexts that part inside a multi-byte character keep valid UTF-8 deltas;
// mem1-style contexts (prompt + last exchange) round-trip too.
func TestContextDeltaUTF8AndMem1(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	r := newRollout(t, s, "mem1")
	prompt := strings.Repeat("préfixe commun ", 20)
	contexts := []string{prompt + "é1", prompt + "è2", prompt + "ê3 and more", prompt, prompt + "日本"}
	for i, c := range contexts {
		tu := sampleTurn(i)
		tu.Context = c
		require.NoError(t, s.AppendTurn(ctx, r, tu))
	}
	turns, err := s.Turns(ctx, r)
	require.NoError(t, err)
	for i, tu := range turns {
		assert.Equal(t, contexts[i], tu.Context)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT context, ctx_base FROM turns WHERE rollout_id = ? AND idx > 0`, r)
	require.NoError(t, err)
	defer rows.Close()
	for rows.Next() {
		var suffix string
		var base *int
		require.NoError(t, rows.Scan(&suffix, &base))
		assert.True(t, utf8.ValidString(suffix), "suffix %q", suffix)
		assert.NotNil(t, base, "a shared prompt is stored once")
	}
	require.NoError(t, rows.Err())
}

// Rows written before the delta migration hold the whole context and no hash;
// they still read back, and a new turn can build on them. A reset rollout
// re-played with other contexts is not misled by the writer's cache.
func TestContextLegacyRowsAndReset(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	r := newRollout(t, s, "full")
	legacy := strings.Repeat("legacy prompt ", 30)
	_, err := s.w.ExecContext(ctx, `INSERT INTO turns(rollout_id, idx, context, response, internal_state, action, query,
		answer, information, prompt_tokens, completion_tokens, usage_reported, latency_ms, finish_reason, created_at)
		VALUES (?, 0, ?, '', '', 'search', '', '', '', 0, 0, 0, 0, 'stop', '2026-01-01T00:00:00.000Z')`, r, legacy)
	require.NoError(t, err)
	tu := sampleTurn(1)
	tu.Context = legacy + "next"
	require.NoError(t, s.AppendTurn(ctx, r, tu))
	turns, err := s.Turns(ctx, r)
	require.NoError(t, err)
	require.Len(t, turns, 2)
	assert.Equal(t, legacy, turns[0].Context)
	assert.Equal(t, legacy+"next", turns[1].Context)
	assert.Less(t, storedContextBytes(t, s, r), 2*len(legacy))

	require.NoError(t, s.ResetRollout(ctx, r))
	other := fullPolicyContexts(3, 100)
	for i, c := range other {
		tu := sampleTurn(i)
		tu.Context = "other " + c
		require.NoError(t, s.AppendTurn(ctx, r, tu))
	}
	turns, err = s.Turns(ctx, r)
	require.NoError(t, err)
	for i, tu := range turns {
		assert.Equal(t, "other "+other[i], tu.Context)
	}
}

// ImportExperiment stores its turns' contexts as deltas too.
func TestImportExperimentContextsAsDeltas(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	tasks := sampleTasks()
	contexts := fullPolicyContexts(20, 2000)
	var turns []core.Turn
	for i, c := range contexts {
		tu := sampleTurn(i)
		tu.Context = c
		turns = append(turns, tu)
	}
	id, err := s.ImportExperiment(ctx, ExperimentImport{Name: "imp", ConfigJSON: "{}", Tasks: tasks},
		func(add func(ImportedRollout) error) error {
			return add(ImportedRollout{TaskKey: tasks[0].Key, Policy: "full", Model: "m",
				Result: RolloutResult{Status: StatusDone}, Turns: turns})
		})
	require.NoError(t, err)
	rs, err := s.Rollouts(ctx, id)
	require.NoError(t, err)
	require.Len(t, rs, 1)
	got, err := s.Turns(ctx, rs[0].ID)
	require.NoError(t, err)
	for i := range turns {
		require.Equal(t, contexts[i], got[i].Context)
	}
	assert.LessOrEqual(t, storedContextBytes(t, s, rs[0].ID), 2*len(contexts[len(contexts)-1]))
}
