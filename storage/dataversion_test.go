package storage

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// A second Store on the same file stands for another process: its commits move
// the first one's DataVersion, the first one's own commits do not.
func TestDataVersionSeesOtherConnectionsCommits(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	a, err := Open(path)
	require.NoError(t, err)
	defer a.Close()
	b, err := Open(path)
	require.NoError(t, err)
	defer b.Close()

	v0, err := a.DataVersion(ctx)
	require.NoError(t, err)
	require.NoError(t, a.SaveEndpointProfile(ctx, "own", `{"name":"own"}`))
	v1, err := a.DataVersion(ctx)
	require.NoError(t, err)
	require.Equal(t, v0, v1, "the store's own commit is not a change by another process")

	require.NoError(t, b.SaveEndpointProfile(ctx, "other", `{"name":"other"}`))
	v2, err := a.DataVersion(ctx)
	require.NoError(t, err)
	require.NotEqual(t, v1, v2, "a commit by another connection moves data_version")
}
