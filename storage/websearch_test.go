package storage

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWebSearchCache(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	st, err := Open(path)
	require.NoError(t, err)
	const ep = "http://127.0.0.1:1/search"

	_, _, ok, err := st.CachedWebSearch(ctx, ep, "q", 3)
	require.NoError(t, err)
	assert.False(t, ok)

	require.NoError(t, st.PutWebSearch(ctx, ep, "q", 3, []byte(`{"organic":[]}`)))
	require.NoError(t, st.PutWebSearch(ctx, ep, "q", 5, []byte(`{"organic":[1]}`)))
	got, at, ok, err := st.CachedWebSearch(ctx, ep, "q", 3)
	require.NoError(t, err)
	require.True(t, ok)
	assert.JSONEq(t, `{"organic":[]}`, string(got))
	assert.False(t, at.IsZero())
	got, _, _, _ = st.CachedWebSearch(ctx, ep, "q", 5)
	assert.JSONEq(t, `{"organic":[1]}`, string(got), "k is part of the key")
	_, _, ok, _ = st.CachedWebSearch(ctx, "http://other/search", "q", 3)
	assert.False(t, ok, "the endpoint is part of the key")

	require.NoError(t, st.PutWebSearch(ctx, ep, "q", 3, []byte(`{"organic":[2]}`)))
	got, _, _, _ = st.CachedWebSearch(ctx, ep, "q", 3)
	assert.JSONEq(t, `{"organic":[2]}`, string(got), "a newer reply replaces the old one")

	assert.Error(t, st.PutWebSearch(ctx, ep, "q", 3, []byte(`not json`)))
	assert.Error(t, st.PutWebSearch(ctx, ep, "q", 0, []byte(`{}`)))
	require.NoError(t, st.Close())

	ro, err := OpenReadOnly(path)
	require.NoError(t, err)
	defer ro.Close()
	got, _, ok, err = ro.CachedWebSearch(ctx, ep, "q", 3)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.JSONEq(t, `{"organic":[2]}`, string(got))
	assert.ErrorIs(t, ro.PutWebSearch(ctx, ep, "q", 3, []byte(`{}`)), ErrReadOnly)
}
