package experiments

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// tracker counts a run's progress and serialises the progress callback
// (emit: one call at a time, never under the tracker's lock).
type tracker struct {
	mu       sync.Mutex
	p        Progress
	fn       func(Progress)
	began    time.Time
	finished int // rollouts finished in this run
	tokens   int
	settings map[settingKey]*settingAcc
	order    []settingKey
	eps      []*endpointState
	gate     *gate
	errs     []error
	writer   *turnWriter // the run's group commit, nil when the store has none
	workers  int         // the run's workers over all endpoints
	cache    ResponseCache
	paper    *paperLane // computes paper figures beside the workers; nil = on the worker
	emitting bool       // a goroutine is calling fn (emit)
	dirty    bool       // progress changed while fn was being called
}

// experiment is the run's experiment id.
func (t *tracker) experiment() int64 { return t.p.Experiment }

// replied counts a rollout that got a model reply (+1) and will hand its
// turn to the group commit, or has done so or never will (-1).
func (t *tracker) replied(d int64) {
	if t != nil && t.writer != nil {
		t.writer.soon.Add(d)
	}
}

type settingKey struct {
	model, policy string
	n             int
}

type settingAcc struct {
	SettingProgress
	sumEM, sumF1, sumPeak, sumPaper float64
}

func newTracker(expID int64, rows []storage.RolloutRow, eps []*endpointState, g *gate, fn func(Progress)) *tracker {
	t := &tracker{fn: fn, began: time.Now(), settings: map[settingKey]*settingAcc{}, eps: eps, gate: g}
	for _, e := range eps {
		t.workers += e.profile.Concurrency
	}
	t.p.Experiment = expID
	t.p.Total = len(rows)
	for _, r := range rows {
		s := t.setting(settingKey{r.Model, r.Policy, r.Objectives})
		s.Total++
		switch r.Status {
		case storage.StatusDone:
			t.p.Done++
			s.add(r.EM, r.F1, r.PeakTokens, paperPeakOf(r.Paper))
		case storage.StatusFailed:
			t.p.Failed++
			s.Failed++
		default:
			// queued, or running/cancelled rollouts requeued by this run
			t.p.Queued++
		}
	}
	return t
}

// add counts a done rollout; paper is its paper peak (nil: none, which
// eval.py leaves out of the mean).
func (s *settingAcc) add(em, f1 float64, peak int, paper *int) {
	s.Done++
	s.sumEM += em
	s.sumF1 += f1
	s.sumPeak += float64(peak)
	n := float64(s.Done)
	s.MeanEM, s.MeanF1, s.MeanPeakTokens = s.sumEM/n, s.sumF1/n, s.sumPeak/n
	if paper != nil {
		s.PaperPeakN++
		s.sumPaper += float64(*paper)
		s.MeanPaperPeakTokens = s.sumPaper / float64(s.PaperPeakN)
	}
}

// paperPeakOf is m's paper peak, nil when m is nil or has none.
func paperPeakOf(m *core.PaperMetrics) *int {
	if m == nil {
		return nil
	}
	return m.PeakTokens
}

func (t *tracker) setting(k settingKey) *settingAcc {
	s := t.settings[k]
	if s == nil {
		s = &settingAcc{SettingProgress: SettingProgress{Model: k.model, Policy: k.policy, Objectives: k.n}}
		t.settings[k] = s
		t.order = append(t.order, k)
	}
	return s
}

// emit sends a snapshot to the progress callback; t.mu must be held, and
// is held again when emit returns. The callback runs without t.mu, on one
// goroutine at a time: when another goroutine is inside it, emit only marks
// the progress changed and returns at once, and that goroutine calls it
// again with the latest snapshot when it is back. So a slow callback (a
// terminal write, a UI update) never holds up a worker's next turn, and the
// last change is always delivered: snapshots in between may be merged.
func (t *tracker) emit() {
	if t.fn == nil {
		return
	}
	if t.emitting {
		t.dirty = true
		return
	}
	t.emitting = true
	// A few passes at most: a callback slower than the changes arriving would
	// otherwise keep this goroutine (a worker, or the heartbeat that reads
	// cancel requests) in here for good. What is left marked changed goes out
	// with the next emit, and the run's end emits once more (flush).
	for pass := 0; ; pass++ {
		t.dirty = false
		p := t.snapshot()
		t.mu.Unlock()
		t.fn(p)
		t.mu.Lock()
		if !t.dirty || pass == maxEmitPasses-1 {
			break
		}
	}
	t.emitting = false
}

// maxEmitPasses bounds how many snapshots one emit delivers.
const maxEmitPasses = 4

// flush delivers a change still marked when the run's goroutines have all
// stopped (nothing else would emit it).
func (t *tracker) flush() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dirty && !t.emitting {
		t.emit()
	}
}

// snapshot is the progress now; t.mu must be held.
func (t *tracker) snapshot() Progress {
	p := t.p
	p.Paused = t.gate != nil && t.gate.isPaused()
	p.Elapsed = time.Since(t.began)
	if secs := p.Elapsed.Seconds(); secs > 0 {
		p.TurnsPerSecond = float64(p.Turns) / secs
		p.TokensPerSecond = float64(t.tokens) / secs
	}
	if left := p.Queued + p.Running; t.finished > 0 && left > 0 {
		p.ETA = time.Duration(float64(p.Elapsed) / float64(t.finished) * float64(left))
	}
	p.Settings = make([]SettingProgress, len(t.order))
	for i, k := range t.order {
		p.Settings[i] = t.settings[k].SettingProgress
	}
	for _, e := range t.eps {
		st := e.stats()
		p.Endpoints = append(p.Endpoints, st)
		p.InFlight += st.InFlight
	}
	if t.writer != nil && t.workers > 0 && p.Elapsed > 0 {
		p.StoreWaitShare = float64(t.writer.storeWait()) / (float64(p.Elapsed) * float64(t.workers))
	}
	return p
}

func (t *tracker) start(j storage.PendingRollout) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.Running++
	if t.p.Queued > 0 {
		t.p.Queued--
	}
	t.setting(settingKey{j.Model, j.Policy, len(j.Task.Objectives)}).Running++
}

func (t *tracker) turn(tu core.Turn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.Turns++
	t.tokens += tu.Tokens()
	t.emit()
}

func (t *tracker) retry() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.p.Retries++
}

func (t *tracker) changed() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.emit()
}

// finish records a rollout's end. A rollout that never started is taken off
// the queued count instead of the running one.
func (t *tracker) finish(j storage.PendingRollout, status string, out core.Outcome, paper *core.PaperMetrics, storeErr error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if storeErr != nil {
		t.errs = append(t.errs, storeErr)
	}
	s := t.setting(settingKey{j.Model, j.Policy, len(j.Task.Objectives)})
	if s.Running > 0 {
		s.Running--
		t.p.Running--
	} else if t.p.Queued > 0 {
		t.p.Queued--
	}
	t.finished++
	switch status {
	case storage.StatusDone:
		t.p.Done++
		s.add(out.Score.EM, out.Score.F1, out.PeakTokens, paperPeakOf(paper))
	case storage.StatusCancelled:
		t.p.Cancelled++
		t.p.Queued++ // it will be played again on resume
		t.finished--
	default:
		t.p.Failed++
		s.Failed++
	}
	t.emit()
}

func (t *tracker) storeError(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.errs = append(t.errs, err)
}

func (t *tracker) storeErrors() []error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]error(nil), t.errs...)
}

// newOwner names this process for an experiment lease: "host|pid|nonce".
func newOwner() string {
	host, _ := os.Hostname()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s|%d|%s", strings.ReplaceAll(host, "|", "_"), os.Getpid(), hex.EncodeToString(b))
}

// ownerProcessAlive reports whether an owner's process may still run: false
// only when it ran on this host and that process is gone.
func ownerProcessAlive(owner string) bool {
	parts := strings.Split(owner, "|")
	if len(parts) != 3 {
		return true
	}
	host, _ := os.Hostname()
	if parts[0] != strings.ReplaceAll(host, "|", "_") {
		return true
	}
	pid, err := strconv.Atoi(parts[1])
	if err != nil {
		return true
	}
	if pid == os.Getpid() {
		return true
	}
	return processAlive(pid)
}
