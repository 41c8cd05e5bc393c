package experiments

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPauseGate: an open gate lets Wait through, a paused one holds it until
// opened or the context ends; Set says whether it changed; a nil gate never
// pauses.
func TestPauseGate(t *testing.T) {
	g := NewPauseGate()
	require.NoError(t, g.Wait(t.Context()))
	assert.True(t, g.Set(true))
	assert.False(t, g.Set(true), "already paused")
	assert.True(t, g.Paused())
	synctest.Test(t, func(t *testing.T) {
		g := NewPauseGate()
		g.Set(true)
		done := make(chan error, 1)
		go func() { done <- g.Wait(context.Background()) }()
		synctest.Wait() // the waiter is blocked for good, or has returned
		select {
		case err := <-done:
			t.Fatalf("Wait returned %v while paused", err)
		default:
		}
		assert.True(t, g.Set(false))
		require.NoError(t, <-done)
		assert.False(t, g.Paused())
	})
	g.Set(false)

	g.Set(true)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	assert.ErrorIs(t, g.Wait(ctx), context.Canceled)

	var none *PauseGate
	assert.False(t, none.Set(true))
	assert.False(t, none.Paused())
	require.NoError(t, none.Wait(t.Context()))
}
