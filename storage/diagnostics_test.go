package storage

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDiagnosticsCache(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	e1, err := s.CreateExperiment(ctx, "one", `{}`, "h1")
	require.NoError(t, err)
	ids, err := s.AddTasks(ctx, e1, sampleTasks())
	require.NoError(t, err)
	r1, err := s.CreateRollout(ctx, e1, ids["hotpotqa/n2/0000"], "mem1", "qwen")
	require.NoError(t, err)

	got, err := s.ExperimentDiagnostics(ctx, e1)
	require.NoError(t, err)
	assert.Empty(t, got)
	require.NoError(t, s.SaveDiagnostics(ctx, r1, CachedDiagnostics{Version: 1, Fingerprint: "f1", JSON: `{"a":1}`}))
	require.NoError(t, s.SaveDiagnostics(ctx, r1, CachedDiagnostics{Version: 2, Fingerprint: "f2", JSON: `{"a":2}`}))
	got, err = s.ExperimentDiagnostics(ctx, e1)
	require.NoError(t, err)
	assert.Equal(t, map[int64]CachedDiagnostics{r1: {Version: 2, Fingerprint: "f2", JSON: `{"a":2}`}}, got, "replaced")

	assert.Error(t, s.SaveDiagnostics(ctx, r1, CachedDiagnostics{JSON: "not json"}))
	assert.Error(t, s.SaveDiagnostics(ctx, 9999, CachedDiagnostics{JSON: "{}"}), "unknown rollout")
	got, err = s.ExperimentDiagnostics(ctx, e1)
	require.NoError(t, err)
	assert.Equal(t, `{"a":2}`, got[r1].JSON, "a failed save loses nothing stored")
}
