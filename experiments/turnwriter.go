package experiments

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// batchWriteStore commits several writes in one transaction (*storage.Store has it).
type batchWriteStore interface {
	ApplyWrites(ctx context.Context, ws []storage.Write) []storage.WriteOutcome
}

const (
	// maxWriteBatch bounds one group commit.
	maxWriteBatch = 256
	// groupCommitWait is how long a group commit waits for more writes after
	// the first one arrives, unless every rollout in play has already handed
	// one in or the batch is full.
	groupCommitWait = time.Millisecond
)

// turnWriter is a run's group commit: rollouts hand it their claims, finished
// turns and results and wait until they are stored. After the first write of
// a batch it gathers more for up to groupCommitWait while some rollout has a
// model reply whose turn is on its way, and commits at once when the batch is
// full or no such turn is left (then waiting would only add latency); writes
// that arrive while a batch commits form the next one. So concurrent
// rollouts share one transaction instead of queueing for the single writer
// one by one. A write is acknowledged only
// once committed, so a crash loses at most the turns in flight.
type turnWriter struct {
	store batchWriteStore
	reqs  chan writeReq
	done  chan struct{}
	wait  time.Duration

	playing atomic.Int64 // rollouts in play (each may hand in one write at a time)
	soon    atomic.Int64 // rollouts that got a model reply and have not handed in its turn yet, and workers about to claim after a result
	waiting atomic.Int64 // writes handed in and not yet acknowledged
	waitNS  atomic.Int64 // total time writers waited for their commit
}

type writeReq struct {
	w    storage.Write
	out  chan storage.WriteOutcome  // do: the outcome goes here
	done func(storage.WriteOutcome) // submit: called with the outcome instead
}

func newTurnWriter(st batchWriteStore) *turnWriter { return newTurnWriterWait(st, groupCommitWait) }

// newTurnWriterWait is newTurnWriter gathering for up to wait.
func newTurnWriterWait(st batchWriteStore, wait time.Duration) *turnWriter {
	tw := &turnWriter{store: st, reqs: make(chan writeReq, maxWriteBatch), done: make(chan struct{}), wait: wait}
	go tw.loop()
	return tw
}

func (tw *turnWriter) loop() {
	defer close(tw.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for req := range tw.reqs {
		batch := []writeReq{req}
		closed := false
		timer.Reset(tw.wait)
	gather:
		for len(batch) < maxWriteBatch && tw.more() {
			select {
			case r, ok := <-tw.reqs:
				if !ok {
					closed = true
					break gather
				}
				batch = append(batch, r)
			case <-timer.C:
				break gather
			}
		}
		timer.Stop()
		// Writes already queued join the batch without waiting.
	drain:
		for !closed && len(batch) < maxWriteBatch {
			select {
			case r, ok := <-tw.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		ws := make([]storage.Write, len(batch))
		for i, r := range batch {
			ws[i] = r.w
		}
		outs := tw.store.ApplyWrites(context.Background(), ws)
		for i, r := range batch {
			if r.done != nil {
				r.done(outs[i])
				continue
			}
			r.out <- outs[i]
		}
	}
}

// more reports whether a batch should wait for more writes: some rollout
// has a model reply whose turn is on its way to the store, or some worker
// handed in a result and is about to claim its next rollout.
func (tw *turnWriter) more() bool { return tw.soon.Load() > 0 }

// do hands w to the group commit and returns its outcome once committed.
func (tw *turnWriter) do(w storage.Write) storage.WriteOutcome {
	began := time.Now()
	tw.waiting.Add(1)
	ch := make(chan storage.WriteOutcome, 1)
	tw.reqs <- writeReq{w: w, out: ch}
	o := <-ch
	tw.waiting.Add(-1)
	tw.waitNS.Add(int64(time.Since(began)))
	return o
}

// submit hands w to the group commit without waiting for it (blocking only
// while the queue is full): done is called with its outcome, on the
// writer's goroutine, once the batch holding it is committed, so done must
// be quick and must not write through tw. Its time is not a worker's wait
// (storeWait).
func (tw *turnWriter) submit(w storage.Write, done func(storage.WriteOutcome)) {
	tw.reqs <- writeReq{w: w, done: done}
}

// append stores one turn and returns once it is committed.
func (tw *turnWriter) append(rolloutID int64, t core.Turn) error {
	return tw.do(storage.Write{RolloutID: rolloutID, Turn: &t}).Err
}

// appendLater hands one turn to the group commit and returns at once; the
// returned func waits until it is committed and returns its error (call it
// once). The time spent waiting in it counts as store wait (storeWait).
func (tw *turnWriter) appendLater(rolloutID int64, t core.Turn) func() error {
	return tw.later(storage.Write{RolloutID: rolloutID, Turn: &t})
}

// later hands w to the group commit and returns at once; the returned func
// waits until it is committed and returns its error (call it once), the
// time spent waiting counted as store wait.
func (tw *turnWriter) later(w storage.Write) func() error {
	wait := tw.laterOutcome(w, true)
	return func() error { return wait().Err }
}

// laterOutcome is later returning the whole outcome; counted says whether
// the wait is a worker's (store wait) or a helper's, off any worker's path.
func (tw *turnWriter) laterOutcome(w storage.Write, counted bool) func() storage.WriteOutcome {
	tw.waiting.Add(1)
	ch := make(chan storage.WriteOutcome, 1)
	tw.reqs <- writeReq{w: w, out: ch}
	return func() storage.WriteOutcome {
		began := time.Now()
		o := <-ch
		tw.waiting.Add(-1)
		if counted {
			tw.waitNS.Add(int64(time.Since(began)))
		}
		return o
	}
}

// claimLater is ClaimRollout plus SetRolloutPrompt, handed to the group
// commit without waiting: the returned func waits for its commit (call it
// once). That wait is not store wait: the runner waits for a claim off the
// worker's path and counts only the time a worker is held up by it
// (rolloutWrites.waited).
func (tw *turnWriter) claimLater(rolloutID int64, endpoint, prompt string) func() (bool, error) {
	wait := tw.laterOutcome(storage.Write{RolloutID: rolloutID, Claim: &storage.Claim{Endpoint: endpoint, Prompt: prompt}}, false)
	return func() (bool, error) {
		o := wait()
		return o.Claimed, o.Err
	}
}

// finish is FinishRollout in the group commit.
func (tw *turnWriter) finish(rolloutID int64, res storage.RolloutResult) error {
	return tw.do(storage.Write{RolloutID: rolloutID, Finish: &res}).Err
}

// storeWait is the total time writers have waited for their commits.
func (tw *turnWriter) storeWait() time.Duration { return time.Duration(tw.waitNS.Load()) }

// close stops the writer after the writes handed to it are stored.
func (tw *turnWriter) close() {
	close(tw.reqs)
	<-tw.done
}

// rolloutWrites are the writes a rollout makes while it plays: through the
// run's group commit when the store has one, else one by one.
type rolloutWrites struct {
	// claimFn hands in a claim (with the rollout's prompt) and returns a func
	// that waits for it: whether it holds, and its errors (the claim's
	// first, then any that do not undo it).
	claimFn func(ctx context.Context, id int64, endpoint, prompt string) (wait func() (bool, []error))
	// appendTurn starts storing a turn and returns a func that waits until
	// it is stored and returns its error: through the group commit the
	// rollout goes on (its next model call) while the turn commits; one by
	// one it is stored before appendTurn returns.
	appendTurn func(ctx context.Context, id int64, t core.Turn) (wait func() error)
	finishFn   func(ctx context.Context, id int64, res storage.RolloutResult) error
	// finishLater is finishFn handed in without waiting (the worker claims
	// its next rollout meanwhile, so both share a commit), with the
	// rollout's last turn when last is not nil (through the group commit
	// both in one write: stored together or not at all): wait waits for the
	// commit and returns its error; release tells the group commit that the
	// worker's next claim is being handed in, or that none will be (until
	// then a batch holding the result waits for it).
	finishLater func(ctx context.Context, id int64, last *core.Turn, res storage.RolloutResult) (wait func() error, release func())
	begin, end  func() // a rollout enters and leaves play
	pipelined   bool   // appendTurn returns before the turn is stored
	// waited counts time a worker was held up by a write it did not wait
	// for itself (a claim waited for off its path) as store wait.
	waited func(time.Duration)
}

// errNotClaimed stops a rollout whose claim did not hold (store failure, or
// no longer queued): nothing of it is stored.
var errNotClaimed = errors.New("runner: the rollout could not be claimed")

// claimLater hands in the claim of rollout id for endpoint, with its prompt,
// and returns a func that waits for it and reports whether it holds (call it
// once); errors that do not undo the claim (the prompt's) go to tr. Through
// the group commit it returns at once; one by one the claim is made first.
func (w rolloutWrites) claimLater(ctx context.Context, id int64, endpoint, prompt string, tr *tracker) func() (bool, error) {
	wait := w.claimFn(ctx, id, endpoint, prompt)
	return func() (bool, error) {
		ok, errs := wait()
		if len(errs) > 1 {
			for _, e := range errs[1:] {
				tr.storeError(e)
			}
		}
		if len(errs) > 0 {
			return ok, errs[0]
		}
		return ok, nil
	}
}

func (w rolloutWrites) finish(ctx context.Context, id int64, res storage.RolloutResult) error {
	if err := w.finishFn(ctx, id, res); err != nil {
		return fmt.Errorf("runner: rollout %d: %w", id, err)
	}
	return nil
}

// pendingResult is a rollout's result handed to the store and not yet
// waited for: release (any number of times) when the worker's next claim is
// about to be handed in or none will be, then settle once.
type pendingResult struct {
	release func()
	settle  func() // waits for the result's commit and counts it
}

// finishAsync starts storing a result (with the rollout's last turn when
// last is not nil); wait waits until it is stored and
// returns finish's error; release is finishLater's, callable more than once.
func (w rolloutWrites) finishAsync(ctx context.Context, id int64, last *core.Turn, res storage.RolloutResult) (wait func() error, release func()) {
	waitFn, rel := w.finishLater(ctx, id, last, res)
	released := false
	return func() error {
			if err := waitFn(); err != nil {
				return fmt.Errorf("runner: rollout %d: %w", id, err)
			}
			return nil
		}, func() {
			if !released {
				released = true
				rel()
			}
		}
}

// directWrites writes through the RunStore's own methods, one call each.
func (r *Runner) directWrites() rolloutWrites {
	return rolloutWrites{
		claimFn: func(ctx context.Context, id int64, endpoint, prompt string) func() (bool, []error) {
			ok, errs := func() (bool, []error) {
				ok, err := r.Store.ClaimRollout(ctx, id, endpoint)
				if err != nil || !ok {
					return ok, []error{err}
				}
				if prompt != "" {
					if err := r.Store.SetRolloutPrompt(context.WithoutCancel(ctx), id, prompt); err != nil {
						return true, []error{nil, err}
					}
				}
				return true, nil
			}()
			return func() (bool, []error) { return ok, errs }
		},
		appendTurn: func(ctx context.Context, id int64, t core.Turn) func() error {
			err := r.Store.AppendTurn(ctx, id, t)
			return func() error { return err }
		},
		finishFn: r.Store.FinishRollout,
		finishLater: func(ctx context.Context, id int64, last *core.Turn, res storage.RolloutResult) (func() error, func()) {
			var err error
			if last != nil {
				err = r.Store.AppendTurn(ctx, id, *last)
			}
			if err == nil {
				err = r.Store.FinishRollout(ctx, id, res)
			}
			return func() error { return err }, func() {}
		},
		begin:  func() {},
		end:    func() {},
		waited: func(time.Duration) {},
	}
}

// groupWrites writes through tw.
func groupWrites(tw *turnWriter) rolloutWrites {
	return rolloutWrites{
		claimFn: func(_ context.Context, id int64, endpoint, prompt string) func() (bool, []error) {
			wait := tw.claimLater(id, endpoint, prompt)
			return func() (bool, []error) {
				ok, err := wait()
				if err != nil {
					return ok, []error{err}
				}
				return ok, nil
			}
		},
		appendTurn: func(_ context.Context, id int64, t core.Turn) func() error { return tw.appendLater(id, t) },
		finishFn:   func(_ context.Context, id int64, res storage.RolloutResult) error { return tw.finish(id, res) },
		finishLater: func(_ context.Context, id int64, last *core.Turn, res storage.RolloutResult) (func() error, func()) {
			tw.soon.Add(1) // the worker's next claim is on its way
			// Waited for off the worker's path (with the next claim), so not
			// store wait.
			wait := tw.laterOutcome(storage.Write{RolloutID: id, Turn: last, Finish: &res}, false)
			return func() error { return wait().Err }, func() { tw.soon.Add(-1) }
		},
		begin:     func() { tw.playing.Add(1) },
		end:       func() { tw.playing.Add(-1) },
		pipelined: true,
		waited:    func(d time.Duration) { tw.waitNS.Add(int64(d)) },
	}
}
