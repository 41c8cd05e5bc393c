package storage

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

// TestRunControlQueries: rollouts queue atomically, a lease is a compare and
// swap, interrupted rollouts requeue with their turns, attempts are counted.
func TestRunControlQueries(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "lab.db"))
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	exp, err := s.CreateExperiment(ctx, "e", "{}", "h1")
	require.NoError(t, err)
	ids, err := s.AddTasks(ctx, exp, []core.Task{{Key: "a", Dataset: "d", Objectives: []core.Objective{{Question: "q?"}}},
		{Key: "b", Dataset: "d", Objectives: []core.Objective{{Question: "r?"}}}})
	require.NoError(t, err)

	_, err = s.QueueRollouts(ctx, exp, []RolloutSpec{{TaskID: ids["a"], Policy: "mem1", Model: "m"}, {TaskID: 999, Policy: "mem1", Model: "m"}})
	require.ErrorIs(t, err, ErrNotFound)
	rows, _ := s.Rollouts(ctx, exp)
	assert.Empty(t, rows, "all or nothing")
	rids, err := s.QueueRollouts(ctx, exp, []RolloutSpec{{TaskID: ids["a"], Policy: "mem1", Model: "m"}, {TaskID: ids["b"], Policy: "full", Model: "m"}})
	require.NoError(t, err)
	require.Len(t, rids, 2)

	ok, err := s.ClaimExperiment(ctx, exp, "me", "")
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = s.ClaimExperiment(ctx, exp, "other", "")
	require.NoError(t, err)
	assert.False(t, ok, "held by me")
	require.NoError(t, s.SetExperimentControl(ctx, exp, "pause"))
	control, err := s.TouchExperiment(ctx, exp, "me")
	require.NoError(t, err)
	assert.Equal(t, "pause", control)
	_, err = s.TouchExperiment(ctx, exp, "other")
	assert.Error(t, err)
	require.Error(t, s.SetExperimentControl(ctx, exp, "explode"))

	ok, err = s.ClaimRollout(ctx, rids[0], "gpu-a")
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = s.ClaimRollout(ctx, rids[0], "gpu-b")
	require.NoError(t, err)
	assert.False(t, ok, "claimed once")
	require.NoError(t, s.AppendTurn(ctx, rids[0], core.Turn{Index: 0, Context: "c", Response: "r"}))
	require.NoError(t, s.RecordAttempt(ctx, Attempt{RolloutID: rids[0], Turn: 1, Attempt: 1, Endpoint: "gpu-a", Status: 503,
		Error: "overloaded", Latency: 12 * time.Millisecond}))
	as, err := s.Attempts(ctx, rids[0])
	require.NoError(t, err)
	require.Len(t, as, 1)
	assert.Equal(t, Attempt{RolloutID: rids[0], Turn: 1, Attempt: 1, Endpoint: "gpu-a", Status: 503, Error: "overloaded", Latency: 12 * time.Millisecond}, as[0])

	q, err := s.QueuedRollouts(ctx, exp)
	require.NoError(t, err)
	require.Len(t, q, 1)
	assert.Equal(t, "b", q[0].Task.Key)
	assert.False(t, q[0].HasTurns)
	n, err := s.RequeueInterrupted(ctx, exp)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	turns, err := s.Turns(ctx, rids[0])
	require.NoError(t, err)
	assert.Len(t, turns, 1, "a requeued rollout keeps its turns")
	q, err = s.QueuedRollouts(ctx, exp)
	require.NoError(t, err)
	require.Len(t, q, 2)
	assert.Equal(t, rids[0], q[0].ID)
	assert.True(t, q[0].HasTurns, "the requeued rollout continues from its turns")
	assert.False(t, q[1].HasTurns)
	runs, err := s.RolloutRuns(ctx, exp)
	require.NoError(t, err)
	assert.Equal(t, RolloutRun{ID: rids[0], Status: StatusQueued, Endpoint: "gpu-a", Retries: 1}, runs[0])

	n, err = s.CancelQueued(ctx, exp)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	require.NoError(t, s.ReleaseExperiment(ctx, exp, "me"))
	l, err := s.ExperimentLease(ctx, exp)
	require.NoError(t, err)
	assert.Equal(t, "", l.Owner)
	hs, err := s.ExperimentsByHash(ctx, "h1")
	require.NoError(t, err)
	assert.Equal(t, []int64{exp}, hs)

	require.NoError(t, s.SaveEndpointProfile(ctx, "gpu-a", `{"url":"http://a/v1"}`))
	require.NoError(t, s.SaveEndpointProfile(ctx, "gpu-a", `{"url":"http://b/v1"}`))
	ps, err := s.EndpointProfiles(ctx)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"gpu-a": `{"url":"http://b/v1"}`}, ps)
	require.NoError(t, s.DeleteEndpointProfile(ctx, "gpu-a"))
	ps, _ = s.EndpointProfiles(ctx)
	assert.Empty(t, ps)
	require.NoError(t, s.IntegrityCheck(ctx))
}
