//go:build soak

package experiments

// The fault soak (`make soak`, not part of `make test`): a 200-rollout run
// against a scripted server that fails 30% of its generations in every way a
// hostile or broken server can.

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

// soakFaults are the injected faults, each drawn with probability 30%/7.
var soakFaults = []string{"500", "429", "hang", "reset", "10MB", "malformed", "empty"}

// soakServer serves the oracle agent and, on 30% of generation requests
// (drawn from a seeded source), one of soakFaults instead.
type soakServer struct {
	next     http.Handler
	mu       sync.Mutex
	rng      *rand.Rand
	injected map[string]*atomic.Int64
}

func newSoakServer(next http.Handler) *soakServer {
	s := &soakServer{next: next, rng: rand.New(rand.NewPCG(7, 9)), injected: map[string]*atomic.Int64{}}
	for _, f := range soakFaults {
		s.injected[f] = &atomic.Int64{}
	}
	return s
}

func (s *soakServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "completions") {
		s.next.ServeHTTP(w, r)
		return
	}
	s.mu.Lock()
	draw, pick, withLength := s.rng.Float64(), s.rng.IntN(len(soakFaults)), s.rng.IntN(2) == 0
	s.mu.Unlock()
	if draw >= 0.3 {
		s.next.ServeHTTP(w, r)
		return
	}
	fault := soakFaults[pick]
	s.injected[fault].Add(1)
	w.Header().Set("Content-Type", "application/json")
	switch fault {
	case "500":
		// A large HTML error page, as a proxy in front of a crashed server sends.
		w.WriteHeader(http.StatusInternalServerError)
		writeRepeated(w, "<p>Internal Server Error</p>\n", 2<<20)
	case "429":
		w.Header().Set("Retry-After", "0.05")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"message":"rate limited","type":"rate_limit","param":null,"code":null}}`))
	case "hang":
		// Until the client's timeout gives up (the server notices the closed
		// connection only once the request body is read).
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(time.Minute):
		}
	case "reset":
		w.Header().Set("Content-Length", "4096")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"id":"x","object":"text_completion","choices":[{"text":"<think>`))
		w.(http.Flusher).Flush()
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			_ = conn.Close()
		}
	case "10MB":
		const size = 10 << 20
		if withLength {
			w.Header().Set("Content-Length", strconv.Itoa(size))
		}
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"id":"x","object":"text_completion","choices":[{"text":"`))
		writeRepeated(w, "all work and no play ", size-80)
		_, _ = w.Write([]byte(`"}]}`))
	case "malformed":
		_, _ = w.Write([]byte(`{"id":"x","object":"text_completion","choices":[{"text":"<think>cut`))
	case "empty":
		_, _ = w.Write([]byte(`{"id":"x","object":"text_completion","choices":[]}`))
	}
}

// writeRepeated writes about n bytes of unit, 64 KiB at a time.
func writeRepeated(w http.ResponseWriter, unit string, n int) {
	chunk := []byte(strings.Repeat(unit, (64<<10)/len(unit)))
	for written := 0; written < n; written += len(chunk) {
		if _, err := w.Write(chunk[:min(len(chunk), n-written)]); err != nil {
			return
		}
	}
}

// storeBytes is the store's logical size: the pages in use as a reader sees
// them (the file plus the WAL's committed pages, less the free list).
func storeBytes(t *testing.T, db *sql.DB) int64 {
	t.Helper()
	var pages, free, size int64
	require.NoError(t, db.QueryRow(`PRAGMA page_count`).Scan(&pages))
	require.NoError(t, db.QueryRow(`PRAGMA freelist_count`).Scan(&free))
	require.NoError(t, db.QueryRow(`PRAGMA page_size`).Scan(&size))
	return (pages - free) * size
}

func TestSoak(t *testing.T) {
	if _, err := os.Stat(filepath.Join(bundleDir, "unified", "questions.jsonl")); err != nil {
		t.Fatalf("the soak needs the QA bundle at %s: %v", bundleDir, err)
	}
	ctx := context.Background()
	dbPath := filepath.Join(t.TempDir(), "soak.db")
	st, err := storage.Open(dbPath)
	require.NoError(t, err)
	defer st.Close()
	_, err = st.ImportBundle(ctx, bundleDir)
	require.NoError(t, err)
	qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	srv := newSoakServer(oracle.New(qs))
	hs := httptest.NewServer(srv)
	defer hs.Close()

	cfg := DefaultRunConfig()
	cfg.Name = "soak"
	cfg.Endpoint, cfg.Model = hs.URL+"/v1", oracle.ModelName
	tasks := 100 // 200 rollouts; SOAK_TASKS makes a shorter soak while debugging
	if n, err := strconv.Atoi(os.Getenv("SOAK_TASKS")); err == nil && n > 0 {
		tasks = n
	}
	cfg.Objectives, cfg.Tasks, cfg.Policies, cfg.Concurrency = 2, tasks, []string{"mem1", "full"}, 8
	cfg.TimeoutSeconds = 0.5
	cfg.Retries, cfg.RetryBaseSeconds = 8, 0.01
	cfg.BreakerFailures, cfg.BreakerCooldownSeconds = 8, 0.2
	total := 2 * tasks

	probe, err := sql.Open("sqlite3", "file:"+dbPath+"?mode=ro")
	require.NoError(t, err)
	defer probe.Close()
	probe.SetMaxOpenConns(1)
	base := storeBytes(t, probe)
	resetPeakRSS()
	var mu sync.Mutex
	sizes := map[int]int64{} // store growth after 50, 100, 150, 200 finished rollouts
	began := time.Now()
	sum, err := (&Runner{Store: st, Env: st}).Run(ctx, cfg, func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		if f := p.Done + p.Failed; f > 0 && f%(total/4) == 0 && sizes[f*200/total] == 0 {
			f = f * 200 / total
			sizes[f] = storeBytes(t, probe) - base
		}
	})
	elapsed := time.Since(began)
	require.NoError(t, err)
	peakKB := peakRSSKB()

	rows := assertSettled(t, st, sum.Experiment, total)
	done, failed := 0, 0
	for _, r := range rows {
		if r.Status == storage.StatusDone {
			done++
		} else {
			failed++
		}
	}
	retries, attempts := retriesOf(t, st, sum.Experiment)
	byKind := map[string]int{}
	longest := 0
	for _, a := range attempts {
		k, _, _ := strings.Cut(a.Error, ": ")
		byKind[k]++
		longest = max(longest, len(a.Error))
	}
	assert.LessOrEqual(t, longest, maxSummary+64, "every attempt is stored as a bounded summary")
	for _, k := range []string{KindHTTP5xx, KindHTTP429, KindTimeout, KindConnection, KindTooLarge, KindMalformed, KindEmptyChoices} {
		assert.Positive(t, byKind[k], "a %s failure was injected and recorded", k)
	}
	assert.Less(t, peakKB, int64(300<<10), "peak RSS stays under 300 MB")
	mu.Lock()
	// Linear growth: each quarter of the rollouts adds about what the first
	// did (a factor 2 of slack for B-tree splits and the mix of policies).
	require.Len(t, sizes, 4, "store size sampled at each quarter")
	prev := int64(0)
	for _, q := range []int{50, 100, 150, 200} {
		assert.Positive(t, sizes[q]-prev, "quarter %d adds to the store", q)
		assert.LessOrEqual(t, sizes[q]-prev, 2*sizes[50], "store growth per quarter: %v", sizes)
		prev = sizes[q]
	}
	mu.Unlock()

	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var kb strings.Builder
	for _, k := range kinds {
		fmt.Fprintf(&kb, " %s=%d", k, byKind[k])
	}
	var ib strings.Builder
	for _, f := range soakFaults {
		fmt.Fprintf(&ib, " %s=%d", f, srv.injected[f].Load())
	}
	fmt.Printf("\nsoak: %d rollouts (%d done, %d failed) in %s\n", total, done, failed, elapsed.Round(time.Millisecond))
	fmt.Printf("soak: peak RSS %.1f MB\n", float64(peakKB)/1024)
	fmt.Printf("soak: store growth after 50/100/150/200 rollouts: %.2f / %.2f / %.2f / %.2f MB (store %.1f MB)\n",
		mb(sizes[50]), mb(sizes[100]), mb(sizes[150]), mb(sizes[200]), mb(storeBytes(t, probe)))
	fmt.Printf("soak: injected faults:%s\n", ib.String())
	fmt.Printf("soak: %d retries by kind:%s\n", retries, kb.String())
}

func mb(n int64) float64 { return float64(n) / (1 << 20) }
