package experiments

import (
	"context"
	"runtime"
	"sync"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// paperSetter stores a finished rollout's paper figures (*storage.Store has it).
type paperSetter interface {
	SetPaperMetrics(ctx context.Context, id int64, m core.PaperMetrics, requestPeak int, source string) error
}

// paperLane computes finished rollouts' paper token figures (MEM1 eval.py's
// o200k counts over the whole trajectory, the largest CPU cost of a
// rollout) beside the workers, so a worker starts its next rollout at once
// instead of tokenizing the last one. The rollout's result is stored first
// without them (paper_token_source NULL); the lane then stores them. A
// crash in between leaves the rollout to BackfillPaperMetrics, which fills
// in exactly these figures from the stored turns when the store is next
// opened. close waits for every figure, so Run returns with all stored.
// With the run's group commit (tw not nil) the figures join its batches
// (storage.Write.Paper) instead of taking a transaction of their own per
// rollout, and the lane goes on to the next rollout without waiting for
// the commit.
type paperLane struct {
	st      paperSetter
	tw      *turnWriter // nil: SetPaperMetrics, one call per rollout
	tr      *tracker
	jobs    chan paperJob
	wg      sync.WaitGroup // the lane's goroutines
	pending sync.WaitGroup // figures handed to tw and not yet committed
}

type paperJob struct {
	j           storage.PendingRollout
	status      string
	turns       []core.Turn
	tags        core.Tags
	requestPeak int
	source      string
}

// newPaperLane starts a lane storing through tw when it is not nil, else
// through st (one of them must be set).
func newPaperLane(st paperSetter, tw *turnWriter, tr *tracker) *paperLane {
	l := &paperLane{st: st, tw: tw, tr: tr, jobs: make(chan paperJob, 4096)}
	for range max(runtime.GOMAXPROCS(0), 1) {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for job := range l.jobs {
				pm := core.RolloutPaperMetrics(job.j.Task, job.turns, job.tags, job.j.Policy)
				if l.tw != nil {
					l.pending.Add(1)
					l.tw.submit(storage.Write{RolloutID: job.j.ID, Paper: &storage.PaperFigures{Metrics: pm,
						RequestPeak: job.requestPeak, Source: job.source}}, func(o storage.WriteOutcome) {
						defer l.pending.Done()
						l.stored(job, &pm, o.Err)
					})
					continue
				}
				l.stored(job, &pm, l.st.SetPaperMetrics(context.Background(), job.j.ID, pm, job.requestPeak, job.source))
			}
		}()
	}
	return l
}

// stored counts job's figures pm once stored (err nil), else keeps err.
func (l *paperLane) stored(job paperJob, pm *core.PaperMetrics, err error) {
	if err != nil {
		l.tr.storeError(err)
		return
	}
	l.tr.paperFigures(job.j, job.status, pm)
}

// add queues a stored rollout's figures (blocking while 4096 are queued).
func (l *paperLane) add(job paperJob) { l.jobs <- job }

// close waits until every queued rollout's figures are stored (the run's
// group commit must still be open).
func (l *paperLane) close() {
	close(l.jobs)
	l.wg.Wait()
	l.pending.Wait()
}

// paperFigures counts a done rollout's paper peak in its setting's mean once
// the lane has computed it; the next progress snapshot carries it (progress
// is still called only after turns, finished rollouts and pauses).
func (t *tracker) paperFigures(j storage.PendingRollout, status string, pm *core.PaperMetrics) {
	if status != storage.StatusDone {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.setting(settingKey{j.Model, j.Policy, len(j.Task.Objectives)})
	if p := paperPeakOf(pm); p != nil {
		s.PaperPeakN++
		s.sumPaper += float64(*p)
		s.MeanPaperPeakTokens = s.sumPaper / float64(s.PaperPeakN)
	}
}
