package views

import (
	"context"
	"time"

	"fyne.io/fyne/v2"

	"github.com/mem1lab/mem1lab/experiments"
)

// signal is one typed topic of the event bus: screens Subscribe handlers and
// whoever observes the change Emits it. Subscribe and Emit are called on the
// UI thread only (results from goroutines are emitted inside UI.do), so the
// handlers run one at a time and never race the widgets they update.
type signal[T any] struct {
	subs []func(T)
}

// Subscribe adds fn; handlers run in subscription order on every Emit.
func (s *signal[T]) Subscribe(fn func(T)) { s.subs = append(s.subs, fn) }

// Emit calls every handler with v.
func (s *signal[T]) Emit(v T) {
	for _, fn := range s.subs {
		fn(v)
	}
}

// RunEnded says that this UI stopped playing an experiment: how it ended and
// the runner's summary (Summary.Experiment is 0 when the run never created one).
type RunEnded struct {
	Experiment int64
	Summary    experiments.Summary
	Err        error // nil when every rollout ran (some may have failed)
	Cancelled  bool
}

// Events is the UI's event bus. Screens subscribe to what they display and
// emit what they change, instead of calling each other: a screen that starts
// a run emits ExperimentCreated and RunProgress, Runs and Charts listen.
type Events struct {
	// ExperimentCreated carries the id of an experiment this UI just created or resumed.
	ExperimentCreated signal[int64]
	// ExperimentChanged carries the id of an experiment whose status or counts changed
	// (a rollout finished, a pause or cancel took effect).
	ExperimentChanged signal[int64]
	// ExperimentFinished is emitted when this UI stops playing an experiment.
	ExperimentFinished signal[RunEnded]
	// ProfilesChanged is emitted after an endpoint profile was saved or deleted.
	ProfilesChanged signal[struct{}]
	// RunProgress carries each progress snapshot of a run this UI plays.
	RunProgress signal[experiments.Progress]
	// StoreChanged is emitted when another process (the CLI, a second window)
	// committed to the store; lists reload what they show.
	StoreChanged signal[struct{}]
	// ScreenShown carries the name of the screen just shown.
	ScreenShown signal[string]
}

// ChangeWatcher reports a number that changes whenever another connection or
// process commits to the store (*storage.Store has it: SQLite's PRAGMA
// data_version on its writer connection).
type ChangeWatcher interface {
	DataVersion(ctx context.Context) (int64, error)
}

// storeWatchInterval is how often the UI asks the store whether another
// process changed it (0 = never; tests emit StoreChanged themselves or set it).
var storeWatchInterval = time.Second

// watchStore polls w every storeWatchInterval until u.ctx ends and emits
// StoreChanged on the UI thread when the version moves.
func (u *UI) watchStore(w ChangeWatcher) {
	every := storeWatchInterval
	if every <= 0 {
		return
	}
	u.loops.Add(1)
	go func() {
		defer u.loops.Done()
		last, err := w.DataVersion(u.ctx)
		if err != nil {
			last = -1
		}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-u.ctx.Done():
				return
			case <-t.C:
			}
			v, err := w.DataVersion(u.ctx)
			if err != nil || v == last {
				continue
			}
			last = v
			fyne.Do(func() {
				if u.ctx.Err() != nil {
					return
				}
				u.applying.Lock()
				defer u.applying.Unlock()
				u.events.StoreChanged.Emit(struct{}{})
			})
		}
	}()
}
