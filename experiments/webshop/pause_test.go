package webshop

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
)

// fakeClock advances by step at every reading; jump moves it further.
type fakeClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

func (c *fakeClock) jump(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// countingModel is the scripted shopper counting its calls.
type countingModel struct {
	mu sync.Mutex
	n  int
}

func (m *countingModel) Complete(ctx context.Context, c core.Context, stops []string) (core.Completion, error) {
	m.mu.Lock()
	m.n++
	m.mu.Unlock()
	return Scripted{}.Complete(ctx, c, stops)
}

func (m *countingModel) calls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}

// TestGatePausesBetweenTurns: a paused gate holds the play before its next
// turn (no model call is made while held, and the reports say paused); once
// opened the episode goes on and buys as before, and the time held (100 s on
// an injected clock) is not in the episode's seconds.
func TestGatePausesBetweenTurns(t *testing.T) {
	srv := httptest.NewServer(NewFakeServer())
	defer srv.Close()
	st := testStore(t)
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0), step: time.Millisecond}
	gate := experiments.NewPauseGate()
	gate.Set(true)
	m := &countingModel{}
	var mu sync.Mutex
	var pausedReports, callsWhenHeld []int
	r := &Runner{Store: st, Model: m, Clock: clock.now, Gate: gate}
	r.Report = func(pr experiments.Progress) {
		if !pr.Paused || pr.Running != 1 {
			return
		}
		mu.Lock()
		pausedReports = append(pausedReports, pr.Turns)
		callsWhenHeld = append(callsWhenHeld, m.calls())
		n := len(pausedReports)
		mu.Unlock()
		// The first is the rollout's start, the second the hold before its
		// first turn: 100 s pass while held, then the gate opens.
		if n == 2 {
			clock.jump(100 * time.Second)
			go gate.Set(false)
		}
	}
	sum, err := r.Run(context.Background(), "paused", Config{EnvURL: srv.URL, Goals: []int{2}, Model: ScriptedModelName})
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Done)
	assert.Equal(t, 100.0, sum.Reward100)
	require.Len(t, pausedReports, 2, "paused when the rollout started and when the hold began")
	assert.Equal(t, []int{0, 0}, callsWhenHeld, "no model call while the gate held the first turn")
	assert.Less(t, sum.Seconds, 100.0, "the 100 s held are not the episode's time")
	assert.False(t, gate.Paused())

	// A cancel while held ends the rollout as cancelled, its stored turns kept.
	gate.Set(true)
	ctx, cancel := context.WithCancel(context.Background())
	r2 := &Runner{Store: st, Model: m, Gate: gate, Report: func(pr experiments.Progress) {
		if pr.Paused && pr.Running == 1 {
			cancel()
		}
	}}
	sum, err = r2.Run(ctx, "cancelled while paused", Config{EnvURL: srv.URL, Goals: []int{2}, Model: ScriptedModelName})
	require.NoError(t, err)
	rows, err := st.Rollouts(context.Background(), sum.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, "cancelled", rows[0].Status)
}
