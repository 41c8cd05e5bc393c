package experiments

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// busyStub is stubServer's reply after latency, counting the time requests
// spend in the handler: Σ handler time / wall time is the mean number of
// requests in flight at the server.
type busyStub struct {
	srv    *httptest.Server
	busyNS atomic.Int64
}

func newBusyStub(latency time.Duration) *busyStub {
	inner := stubServer(0)
	b := &busyStub{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		if latency > 0 {
			time.Sleep(latency)
		}
		inner.Config.Handler.ServeHTTP(w, r)
		b.busyNS.Add(int64(time.Since(began)))
	}))
	b.srv.Config.RegisterOnShutdown(inner.Close)
	return b
}

func (b *busyStub) Close() { b.srv.Close() }

// unbatched hides the store's group commit, so the runner stores each claim,
// turn and result in its own transaction (the commit path before the group
// commit).
type unbatched struct{ RunStore }

// throughputStore is a fresh store with the raw HotpotQA test questions.
func throughputStore(b *testing.B) *storage.Store {
	hotpot := filepath.Join(bundleDir, "raw", "hotpotqa_dev_distractor.rpt-test.jsonl")
	if _, err := os.Stat(hotpot); err != nil {
		if os.Getenv("CI") != "" {
			b.Fatalf("raw HotpotQA file not found: %v", err)
		}
		b.Skipf("raw HotpotQA file not found: %v", err)
	}
	core.O200kTokens("load the tokenizer once, before any timing")
	st, err := storage.Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.ImportHotpotDistractor(context.Background(), hotpot); err != nil {
		b.Fatal(err)
	}
	return st
}

// throughputConfig plays all 500 raw test questions under mem1, full,
// window:1 and window:2 against url: 2,000 rollouts of 4 turns each (8,000
// turns), about 31 rollouts per worker at concurrency 64 and 8 at 256, so
// that the start (every worker's first claim) and the end (the last rollouts
// finishing while other workers have nothing left, which a bare loop of
// single requests never has) are a small part of the run, as in a sweep.
func throughputConfig(url string, concurrency int) RunConfig {
	cfg := DefaultRunConfig()
	cfg.Endpoint, cfg.Model, cfg.Objectives, cfg.Tasks, cfg.Concurrency, cfg.MaxTurns = url+"/v1", "stub", 1, 500, concurrency, 4
	cfg.Policies = []string{"mem1", "full", "window:1", "window:2"}
	return cfg
}

// runStats are one runOnce: its turns, the time from its first model call
// to its last stored result, the process CPU over the whole run, and the
// mean time a model call took as the runner saw it (client side).
type runStats struct {
	turns int
	wall  time.Duration
	cpu   time.Duration
	call  time.Duration
}

// runOnce plays cfg on st (creating the experiment, composing and queueing
// its tasks are left out of the wall time: a sweep pays them once).
func runOnce(b *testing.B, st RunStore, cfg RunConfig) runStats {
	var last Progress
	var began time.Time
	var once sync.Once
	var callNS, calls atomic.Int64
	r := &Runner{Store: st, Env: fixedEnv{}, NewModel: func(c RunConfig) (core.Model, error) {
		m, err := benchModel(c)
		return &firstCall{Model: m, once: &once, at: &began, ns: &callNS, n: &calls}, err
	}}
	cpu0 := processCPU()
	if _, err := r.Run(context.Background(), cfg, func(p Progress) { last = p }); err != nil {
		b.Fatal(err)
	}
	rs := runStats{turns: last.Turns, wall: time.Since(began), cpu: processCPU() - cpu0}
	if n := calls.Load(); n > 0 {
		rs.call = time.Duration(callNS.Load() / n)
	}
	if last.StoreWaitShare > 0 {
		b.ReportMetric(last.StoreWaitShare, "store-wait-share")
	}
	return rs
}

// firstCall notes when the first model call starts, and sums the calls'
// times.
type firstCall struct {
	core.Model
	once *sync.Once
	at   *time.Time
	ns   *atomic.Int64
	n    *atomic.Int64
}

func (f *firstCall) Complete(ctx context.Context, c core.Context, stops []string) (core.Completion, error) {
	began := time.Now()
	f.once.Do(func() { *f.at = began })
	out, err := f.Model.Complete(ctx, c, stops)
	f.ns.Add(int64(time.Since(began)))
	f.n.Add(1)
	return out, err
}

// perTurnMicros is d per turn in µs.
func perTurnMicros(d time.Duration, turns int) float64 {
	return float64(d) / float64(time.Microsecond) / float64(max(turns, 1))
}

// bareLoop sends n completions from concurrency goroutines through go-openai
// with the connection settings the runner's adapter uses for cfg (its own
// transport), and returns the wall time.
func bareLoop(b *testing.B, cfg RunConfig, n int) time.Duration {
	m, err := benchModel(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	c := openai.DefaultConfig("")
	c.BaseURL = cfg.Endpoint
	c.HTTPClient = &http.Client{Transport: m.transport}
	client := openai.NewClientWithConfig(c)
	prompt := RenderQwenPrefix("", core.Context{Prompt: "Answer the questions."})
	var next atomic.Int64
	began := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				if _, err := client.CreateCompletion(context.Background(), openai.CompletionRequest{Model: "stub",
					Prompt: prompt, MaxTokens: 1024, Temperature: 0.01, TopP: 0.95, Stop: []string{"</search>", "</answer>"}}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(began)
}

// benchModel is the adapter for cfg with its connection pool holding one
// idle connection per rollout in flight (MaxIdleConnsPerHost = concurrency),
// so neither the runner nor the bare loop dials per request and the figures
// show the runner's own overhead. The bare loop uses the same transport.
func benchModel(cfg RunConfig) (*OpenAIModel, error) {
	m, err := NewOpenAIModel(cfg.EndpointConfig())
	if err != nil {
		return nil, err
	}
	m.transport.MaxIdleConnsPerHost = max(cfg.Concurrency, m.transport.MaxIdleConnsPerHost)
	m.transport.MaxIdleConns = max(cfg.Concurrency, m.transport.MaxIdleConns)
	return m, nil
}

// BenchmarkThroughputLatency measures, at 20 ms and 50 ms of server latency
// and concurrency 64 and 256, the runner's mean requests in flight (as a
// share of the concurrency: target ≥ 0.95) and its turns/s as a share of a
// bare go-openai loop with the same connection settings sending the same
// number of requests (target ≥ 0.9), and both sides' process CPU per turn
// (the in-process stub's included on both) and the runner's mean
// client-side call time (the server takes the latency). Reported, not
// asserted.
func BenchmarkThroughputLatency(b *testing.B) {
	for _, lat := range []time.Duration{20 * time.Millisecond, 50 * time.Millisecond} {
		for _, conc := range []int{64, 256} {
			b.Run(fmt.Sprintf("latency=%s/concurrency=%d", lat, conc), func(b *testing.B) {
				st := throughputStore(b)
				defer st.Close()
				stub := newBusyStub(lat)
				defer stub.Close()
				cfg := throughputConfig(stub.srv.URL, conc)
				var rt, bt, rInFlight, bInFlight, rCPU, bCPU, callMS float64
				for i := 0; i < b.N; i++ {
					cfg.Name = fmt.Sprintf("bench %d", i)
					busy0 := stub.busyNS.Load()
					rs := runOnce(b, st, cfg)
					turns, wall := rs.turns, rs.wall
					rt += float64(turns) / wall.Seconds()
					rInFlight += float64(stub.busyNS.Load()-busy0) / float64(wall)
					rCPU += perTurnMicros(rs.cpu, turns)
					callMS += float64(rs.call) / float64(time.Millisecond)
					busy0 = stub.busyNS.Load()
					cpu0 := processCPU()
					bw := bareLoop(b, cfg, turns)
					bCPU += perTurnMicros(processCPU()-cpu0, turns)
					bt += float64(turns) / bw.Seconds()
					bInFlight += float64(stub.busyNS.Load()-busy0) / float64(bw)
				}
				n := float64(b.N)
				if rCPU > 0 {
					b.ReportMetric(rCPU/n, "runner-cpu-µs/turn")
					b.ReportMetric(bCPU/n, "bare-cpu-µs/turn")
				}
				b.ReportMetric(callMS/n, "runner-call-ms")
				b.ReportMetric(rt/n, "runner-turns/s")
				b.ReportMetric(bt/n, "bare-turns/s")
				b.ReportMetric(rt/bt, "turns-ratio")
				b.ReportMetric(rInFlight/n, "runner-in-flight")
				b.ReportMetric(bInFlight/n, "bare-in-flight")
				b.ReportMetric(rInFlight/n/float64(conc), "in-flight/concurrency")
			})
		}
	}
}

// BenchmarkThroughputDurable measures durable turns/s at zero server
// latency and concurrency 64 (every claim, turn and result committed to
// SQLite before the runner goes on), with the group commit and with every
// write in its own transaction (the ratio between them is the group
// commit's gain), and a bare go-openai loop sending as many requests.
func BenchmarkThroughputDurable(b *testing.B) {
	st := throughputStore(b)
	defer st.Close()
	stub := newBusyStub(0)
	defer stub.Close()
	cfg := throughputConfig(stub.srv.URL, 64)
	var gt, ut, bt, gCPU, bCPU float64
	for i := 0; i < b.N; i++ {
		cfg.Name = fmt.Sprintf("group %d", i)
		rs := runOnce(b, st, cfg)
		gt += float64(rs.turns) / rs.wall.Seconds()
		gCPU += perTurnMicros(rs.cpu, rs.turns)
		cfg.Name = fmt.Sprintf("unbatched %d", i)
		rs = runOnce(b, unbatched{st}, cfg)
		ut += float64(rs.turns) / rs.wall.Seconds()
		cpu0 := processCPU()
		bt += float64(rs.turns) / bareLoop(b, cfg, rs.turns).Seconds()
		bCPU += perTurnMicros(processCPU()-cpu0, rs.turns)
	}
	n := float64(b.N)
	if gCPU > 0 {
		b.ReportMetric(gCPU/n, "durable-cpu-µs/turn")
		b.ReportMetric(bCPU/n, "bare-cpu-µs/turn")
	}
	b.ReportMetric(gt/n, "durable-turns/s")
	b.ReportMetric(ut/n, "unbatched-turns/s")
	b.ReportMetric(bt/n, "bare-turns/s")
	b.ReportMetric(gt/ut, "ratio-vs-unbatched")
	b.ReportMetric(gt/bt, "ratio-vs-bare")
}
