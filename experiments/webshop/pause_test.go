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
	"github.com/mem1lab/mem1lab/storage"
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

// pausingModel is the scripted shopper counting its calls; its first call
// pauses gate (as Runs would while the turn is in flight).
type pausingModel struct {
	gate *experiments.PauseGate
	mu   sync.Mutex
	n    int
}

func (m *pausingModel) Complete(ctx context.Context, c core.Context, stops []string) (core.Completion, error) {
	m.mu.Lock()
	m.n++
	if m.n == 1 && m.gate != nil {
		m.gate.Set(true)
	}
	m.mu.Unlock()
	return Scripted{}.Complete(ctx, c, stops)
}

func (m *pausingModel) calls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.n
}

// TestGatePausesBetweenTurns: a pause asked for while a turn is in flight
// lets that turn finish and be stored, then holds the episode before its next
// turn (no model call while held; the reports say paused); once the gate
// opens the episode goes on and buys as before, and the 100 s held (on an
// injected clock) are not in the episode's seconds. A cancel while held ends
// the rollout as cancelled with its stored turn kept.
func TestGatePausesBetweenTurns(t *testing.T) {
	srv := httptest.NewServer(NewFakeServer())
	defer srv.Close()
	st := testStore(t)
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0), step: time.Millisecond}
	gate := experiments.NewPauseGate()
	m := &pausingModel{gate: gate}
	var mu sync.Mutex
	var held []int // model calls made when each paused report came
	r := &Runner{Store: st, Model: m, Clock: clock.now, Gate: gate}
	r.Report = func(pr experiments.Progress) {
		if !pr.Paused {
			return
		}
		mu.Lock()
		held = append(held, m.calls())
		n := len(held)
		mu.Unlock()
		assert.Equal(t, 1, pr.Turns, "held after the turn in flight was stored")
		// The first is the stored turn's report (the pause already asked),
		// the second the hold's before the next turn: 100 s pass while held,
		// then the gate opens.
		if n == 2 {
			clock.jump(100 * time.Second)
			go gate.Set(false)
		}
	}
	sum, err := r.Run(context.Background(), "paused", Config{EnvURL: srv.URL, Goals: []int{2}, Model: ScriptedModelName})
	require.NoError(t, err)
	assert.Equal(t, 1, sum.Done)
	assert.Equal(t, 100.0, sum.Reward100)
	assert.Equal(t, []int{1, 1}, held, "no model call while held")
	assert.Less(t, sum.Seconds, 100.0, "the 100 s held are not the episode's time")
	assert.False(t, gate.Paused())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m2 := &pausingModel{gate: gate}
	paused := 0
	r2 := &Runner{Store: st, Model: m2, Gate: gate, Report: func(pr experiments.Progress) {
		if pr.Paused {
			if paused++; paused == 2 { // the hold's report: cancel while held
				cancel()
			}
		}
	}}
	sum, err = r2.Run(ctx, "cancelled while paused", Config{EnvURL: srv.URL, Goals: []int{2}, Model: ScriptedModelName})
	require.NoError(t, err)
	rows, err := st.Rollouts(context.Background(), sum.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, storage.StatusCancelled, rows[0].Status)
	turns, err := st.Turns(context.Background(), rows[0].ID)
	require.NoError(t, err)
	assert.Len(t, turns, 1, "the turn stored before the pause is kept")
	assert.Equal(t, 1, m2.calls())
	gate.Set(false)
}

// TestGateHoldsRolloutStarts: while paused, no rollout starts — nothing is
// reset or replayed, no model call is made, the rollouts stay queued — and
// the play goes on when the gate opens.
func TestGateHoldsRolloutStarts(t *testing.T) {
	srv := httptest.NewServer(NewFakeServer())
	defer srv.Close()
	st := testStore(t)
	gate := experiments.NewPauseGate()
	gate.Set(true)
	m := &pausingModel{}
	var once sync.Once
	var queuedWhileHeld, callsWhileHeld int
	r := &Runner{Store: st, Model: m, Gate: gate}
	r.Report = func(pr experiments.Progress) {
		if pr.Paused && pr.Experiment != 0 {
			once.Do(func() {
				rows, err := st.Rollouts(context.Background(), pr.Experiment)
				require.NoError(t, err)
				for _, row := range rows {
					if row.Status == storage.StatusQueued {
						queuedWhileHeld++
					}
				}
				callsWhileHeld = m.calls()
				go gate.Set(false)
			})
		}
	}
	sum, err := r.Run(context.Background(), "held start", Config{EnvURL: srv.URL, Goals: []int{0, 1}, Model: ScriptedModelName})
	require.NoError(t, err)
	assert.Equal(t, 2, sum.Done)
	assert.Equal(t, 2, queuedWhileHeld, "no rollout started while paused")
	assert.Zero(t, callsWhileHeld)
}
