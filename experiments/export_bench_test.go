package experiments

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mem1lab/mem1lab/storage"
)

const (
	benchRollouts        = 10000
	benchTurnsPerRollout = 100 // 1,000,000 turns
)

// bigTurnStore builds a store with one experiment of benchRollouts rollouts ×
// benchTurnsPerRollout turns, each turn with a few hundred bytes of text, in a
// temporary directory removed when the benchmark ends. Rows are inserted in one
// transaction straight through the SQLite driver, since AppendTurn's one
// transaction per turn would take minutes; the store is opened with storage.Open
// first so the schema is current.
func bigTurnStore(b *testing.B) (*storage.Store, int64) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "big.db")
	st, err := storage.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	exp, err := st.CreateExperiment(ctx, "bench 1M turns", `{"policy":"mem1"}`, DefaultRunConfig().Hash())
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_synchronous=OFF")
	if err != nil {
		b.Fatal(err)
	}
	err = fillTurns(db, exp)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
	if st, err = storage.Open(path); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st, exp
}

func fillTurns(db *sql.DB, exp int64) error {
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	insTask, err := tx.Prepare(`INSERT INTO tasks(id, experiment_id, key, dataset, objectives, task_json) VALUES (?, ?, ?, 'hotpotqa', 4, '{}')`)
	if err != nil {
		return err
	}
	insRollout, err := tx.Prepare(`INSERT INTO rollouts(id, experiment_id, task_id, policy, model, status, em, f1, peak_tokens, turns, seconds)
		VALUES (?, ?, ?, 'mem1', 'bench-model', 'done', 1, 1.5, 900, ?, 3.5)`)
	if err != nil {
		return err
	}
	insTurn, err := tx.Prepare(`INSERT INTO turns(rollout_id, idx, context, response, internal_state, action, query, answer,
		information, passages, prompt_tokens, completion_tokens, usage_reported, latency_ms, finish_reason, created_at)
		VALUES (?, ?, '', ?, ?, 'search', ?, '', ?, '[{"id":"wiki-1"},{"id":"wiki-2"},{"id":"wiki-3"}]', ?, ?, 1, 812.5, 'stop', '2026-01-01T00:00:00.000Z')`)
	if err != nil {
		return err
	}
	state := strings.Repeat("the capital of the country, \"quoted\" ", 3)
	info := "[HINT]You have 3 turns left.[/HINT]\nDoc 1(Title: \"A\") " + strings.Repeat("passage text ", 10)
	for r := 1; r <= benchRollouts; r++ {
		if _, err := insTask.Exec(r, exp, "hotpotqa/n4/"+strconv.Itoa(r)); err != nil {
			return err
		}
		if _, err := insRollout.Exec(r, exp, r, benchTurnsPerRollout); err != nil {
			return err
		}
		for i := 0; i < benchTurnsPerRollout; i++ {
			q := fmt.Sprintf("query %d of rollout %d", i, r)
			resp := "<think>" + state + "</think>\n<search>" + q + "</search>"
			if _, err := insTurn.Exec(r, i, resp, state, q, info, 400+i, 60); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

// countingWriter counts bytes and discards them.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

// peakRSSKB reads the process's peak resident set (VmHWM) in KiB, 0 when unknown.
func peakRSSKB() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// resetPeakRSS asks Linux to restart the VmHWM count (clear_refs "5").
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// heapSampler records the largest live Go heap seen while running.
type heapSampler struct {
	stop chan struct{}
	done chan uint64
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan uint64, 1)}
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-h.stop:
				h.done <- peak
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) peak() uint64 { close(h.stop); return <-h.done }

// BenchmarkTurnsCSV1M streams one experiment of 1,000,000 turns to CSV and
// reports the peak RSS (VmHWM after a reset) and the peak live Go heap during
// the export, in MB (target < 100 MB RSS). Reported, never asserted.
func BenchmarkTurnsCSV1M(b *testing.B) {
	st, exp := bigTurnStore(b)
	ctx := context.Background()
	runtime.GC()
	b.ResetTimer()
	var bytes int64
	var peakHeap uint64
	var peakRSS int64
	for i := 0; i < b.N; i++ {
		reset := resetPeakRSS()
		h := sampleHeap()
		w := &countingWriter{}
		if err := WriteTurnsCSV(ctx, io.Writer(w), st, exp); err != nil {
			b.Fatal(err)
		}
		peakHeap = max(peakHeap, h.peak())
		if reset {
			peakRSS = max(peakRSS, peakRSSKB())
		}
		bytes = w.n
	}
	b.StopTimer()
	b.SetBytes(bytes)
	b.ReportMetric(float64(benchRollouts*benchTurnsPerRollout), "turns")
	b.ReportMetric(float64(peakHeap)/1e6, "peak-heap-MB")
	if peakRSS > 0 {
		b.ReportMetric(float64(peakRSS)*1024/1e6, "peak-RSS-MB")
	}
	b.ReportMetric(float64(bytes)/1e6, "csv-MB")
}
