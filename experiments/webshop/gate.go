package webshop

import (
	"context"
	"sync"
)

// Gate pauses a WebShop play between turns: while it is paused no new turn
// (no model call, no sub-call, no environment step) starts; the turn in
// flight finishes and is stored. The zero Gate is open; a nil *Gate never
// pauses.
type Gate struct {
	mu     sync.Mutex
	paused bool
	open   chan struct{} // closed when the gate opens; nil while open
}

// Set pauses (true) or opens (false) the gate and reports whether that
// changed it.
func (g *Gate) Set(paused bool) (changed bool) {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if paused == g.paused {
		return false
	}
	g.paused = paused
	if paused {
		g.open = make(chan struct{})
	} else {
		close(g.open)
		g.open = nil
	}
	return true
}

// Paused reports whether the gate is paused.
func (g *Gate) Paused() bool {
	if g == nil {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paused
}

// Wait blocks while the gate is paused, or until ctx ends (its error).
func (g *Gate) Wait(ctx context.Context) error {
	if g == nil {
		return ctx.Err()
	}
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	if ch == nil {
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
