package storage

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

// TestEndpointProfileURLLosesItsUserinfo: a profile whose URL carries a key
// is stored without it.
func TestEndpointProfileURLLosesItsUserinfo(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "lab.db"))
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	require.NoError(t, s.SaveEndpointProfile(ctx, "remote", `{"name":"remote","url":"https://bob:sk-secret-123@api.example/v1","model":"m"}`))
	ps, err := s.EndpointProfiles(ctx)
	require.NoError(t, err)
	assert.NotContains(t, ps["remote"], "sk-secret-123")
	assert.Contains(t, ps["remote"], `"url":"https://api.example/v1"`)
	assert.Contains(t, ps["remote"], `"model":"m"`)
}

// TestFailedRolloutsRequeueAndErrorsAreBounded: RequeueFailed queues only the
// failed rollouts again, keeping their turns; a huge error text is stored cut.
func TestFailedRolloutsRequeueAndErrorsAreBounded(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "lab.db"))
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	exp, err := s.CreateExperiment(ctx, "e", "{}", "h")
	require.NoError(t, err)
	ids, err := s.AddTasks(ctx, exp, []core.Task{{Key: "a", Dataset: "d", Objectives: []core.Objective{{Question: "q?"}}},
		{Key: "b", Dataset: "d", Objectives: []core.Objective{{Question: "r?"}}}})
	require.NoError(t, err)
	rids, err := s.QueueRollouts(ctx, exp, []RolloutSpec{{TaskID: ids["a"], Policy: "mem1", Model: "m"}, {TaskID: ids["b"], Policy: "mem1", Model: "m"}})
	require.NoError(t, err)
	for _, id := range rids {
		ok, err := s.ClaimRollout(ctx, id, "e1")
		require.NoError(t, err)
		require.True(t, ok)
	}
	require.NoError(t, s.AppendTurn(ctx, rids[1], core.Turn{Index: 0, Context: "c", Response: "r"}))
	huge := strings.Repeat("é", 1<<20)
	require.NoError(t, s.RecordAttempt(ctx, Attempt{RolloutID: rids[1], Attempt: 1, Status: 500, Error: huge}))
	require.NoError(t, s.FinishRollout(ctx, rids[0], RolloutResult{Status: StatusDone, Turns: 1}))
	require.NoError(t, s.FinishRollout(ctx, rids[1], RolloutResult{Status: StatusFailed, Error: huge}))

	rows, err := s.Rollouts(ctx, exp)
	require.NoError(t, err)
	assert.LessOrEqual(t, len(rows[1].Error), MaxErrorText)
	assert.Contains(t, rows[1].Error, "bytes dropped")
	as, err := s.Attempts(ctx, rids[1])
	require.NoError(t, err)
	assert.LessOrEqual(t, len(as[0].Error), MaxErrorText)

	n, err := s.RequeueFailed(ctx, exp)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	q, err := s.QueuedRollouts(ctx, exp)
	require.NoError(t, err)
	require.Len(t, q, 1)
	assert.Equal(t, rids[1], q[0].ID)
	turns, err := s.Turns(ctx, rids[1])
	require.NoError(t, err)
	assert.Len(t, turns, 1, "its stored turns are kept")
	rows, err = s.Rollouts(ctx, exp)
	require.NoError(t, err)
	assert.Equal(t, StatusDone, rows[0].Status)
	assert.Empty(t, rows[1].Error)
}
