package storage

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
