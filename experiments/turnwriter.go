package experiments

import (
	"context"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// batchTurnStore stores several turns in one transaction (*storage.Store has it).
type batchTurnStore interface {
	AppendTurns(ctx context.Context, ws []storage.TurnWrite) []error
}

// maxTurnBatch bounds one group commit.
const maxTurnBatch = 64

// turnWriter is a run's group commit: rollouts hand it their finished turns and
// wait until they are stored; it writes every turn waiting at that moment in
// one transaction, so concurrent rollouts share commits instead of queueing for
// the single writer one by one. A turn is acknowledged only once committed.
type turnWriter struct {
	store batchTurnStore
	reqs  chan turnReq
	done  chan struct{}
}

type turnReq struct {
	w   storage.TurnWrite
	err chan error
}

func newTurnWriter(st batchTurnStore) *turnWriter {
	tw := &turnWriter{store: st, reqs: make(chan turnReq), done: make(chan struct{})}
	go tw.loop()
	return tw
}

func (tw *turnWriter) loop() {
	defer close(tw.done)
	for req := range tw.reqs {
		batch := []turnReq{req}
	gather:
		for len(batch) < maxTurnBatch {
			select {
			case r, ok := <-tw.reqs:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			default:
				break gather
			}
		}
		ws := make([]storage.TurnWrite, len(batch))
		for i, r := range batch {
			ws[i] = r.w
		}
		errs := tw.store.AppendTurns(context.Background(), ws)
		for i, r := range batch {
			r.err <- errs[i]
		}
	}
}

// append stores one turn and returns once it is committed.
func (tw *turnWriter) append(rolloutID int64, t core.Turn) error {
	ch := make(chan error, 1)
	tw.reqs <- turnReq{w: storage.TurnWrite{RolloutID: rolloutID, Turn: t}, err: ch}
	return <-ch
}

// close stops the writer after the turns handed to it are stored.
func (tw *turnWriter) close() {
	close(tw.reqs)
	<-tw.done
}
