package storage

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mem1lab/mem1lab/core"
)

// Sizes of the benchmark store: 100k rollouts over 4 experiments, 1M turns.
const (
	benchExperiments = 4
	benchRollouts    = 100_000
)

// benchTurns is how many turns rollout i of the benchmark store has: 10 on
// average (5, 15, 8, 12 repeating), with every thousandth rollout 20 turns long
// so the open-a-20-turn-rollout benchmark has some, balanced to 1M turns in all.
func benchTurns(i int) int {
	switch i % 1000 {
	case 0:
		return 20
	case 1:
		return 5
	case 2:
		return 3
	}
	return []int{5, 15, 8, 12}[i%4]
}

var (
	benchOnce  sync.Once
	benchStore *Store
	benchErr   error
	benchRID20 int64 // a rollout with 20 turns
)

// benchWords is a made-up vocabulary; "zebra" is rare (about one state in 500).
func benchWords(r *rand.Rand, n int) string {
	ws := make([]string, n)
	for i := range ws {
		if r.Intn(500) == 0 {
			ws[i] = "zebra"
			continue
		}
		ws[i] = fmt.Sprintf("w%03d", r.Intn(3000))
	}
	return strings.Join(ws, " ")
}

// openBenchStore returns the 100k-rollout / 1M-turn store, generating it once
// per machine under the temp dir (named by schema version, reused by later runs;
// MEM1LAB_BENCH_FRESH=1 regenerates it). Generation goes through
// ImportExperiment: one transaction per experiment, prepared statements.
func openBenchStore(b *testing.B) (*Store, int64) {
	b.Helper()
	benchOnce.Do(func() {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("mem1lab-bench-v%d-100k.db", LatestSchemaVersion()))
		if os.Getenv("MEM1LAB_BENCH_FRESH") != "" {
			for _, suf := range []string{"", "-wal", "-shm"} {
				os.Remove(path + suf)
			}
		}
		benchStore, benchErr = Open(path)
		if benchErr != nil {
			return
		}
		ctx := context.Background()
		var n int
		if benchErr = benchStore.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM rollouts`).Scan(&n); benchErr != nil {
			return
		}
		if n != benchRollouts {
			if n != 0 {
				benchErr = fmt.Errorf("%s holds %d rollouts, not %d: delete it or set MEM1LAB_BENCH_FRESH=1", path, n, benchRollouts)
				return
			}
			start := time.Now()
			turns := 0
			turns, benchErr = generateBenchStore(ctx, benchStore)
			if benchErr != nil {
				return
			}
			_, _ = benchStore.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
			fmt.Fprintf(os.Stderr, "generated %s: %d rollouts, %d turns in %s\n", path, benchRollouts, turns, time.Since(start).Round(time.Millisecond))
		}
		benchErr = benchStore.r.QueryRowContext(ctx, `SELECT id FROM rollouts WHERE turns = 20 ORDER BY id LIMIT 1 OFFSET 7`).Scan(&benchRID20)
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchStore, benchRID20
}

// generateBenchStore writes the benchmark experiments and returns the turn count.
func generateBenchStore(ctx context.Context, s *Store) (int, error) {
	r := rand.New(rand.NewSource(1))
	per := benchRollouts / benchExperiments
	policies := []string{"mem1", "full"}
	models := []string{"Mem-Lab/Qwen2.5-7B-RL-RAG-Q2-EM-Release", "Qwen/Qwen2.5-7B-Instruct"}
	turnsTotal := 0
	for e := 0; e < benchExperiments; e++ {
		tasks := make([]core.Task, per)
		for i := range tasks {
			n := 1 + i%4
			objs := make([]core.Objective, n)
			for k := range objs {
				objs[k] = core.Objective{QuestionID: fmt.Sprintf("q%d-%d", i, k), Question: benchWords(r, 8) + "?",
					Gold: []string{fmt.Sprintf("w%03d", r.Intn(3000))}}
			}
			tasks[i] = core.Task{Key: fmt.Sprintf("bench/n%d/%06d", n, i), Dataset: "hotpotqa", Objectives: objs}
		}
		policy, model := policies[e%2], models[e/2%2]
		_, err := s.ImportExperiment(ctx, ExperimentImport{Name: fmt.Sprintf("bench %s %d", policy, e), ConfigJSON: "{}", Tasks: tasks},
			func(add func(ImportedRollout) error) error {
				for i, t := range tasks {
					g := e*per + i
					nt := benchTurns(g)
					turns := make([]core.Turn, nt)
					peak, total := 0, 0
					for k := range turns {
						st := benchWords(r, 14)
						tu := core.Turn{Index: k, Context: "<|im_start|>user\nbench prompt " + t.Key + "<|im_end|>\n<|im_start|>assistant\n",
							InternalState: st, PromptTokens: 300 + r.Intn(900), CompletionTokens: 40 + r.Intn(80), UsageReported: true,
							Latency: time.Duration(200+r.Intn(800)) * time.Millisecond, FinishReason: "stop"}
						if k == nt-1 {
							tu.Action, tu.Answer = core.ActionAnswer, benchWords(r, len(t.Objectives))
							tu.Response = "<think>" + st + "</think>\n<answer>" + tu.Answer + "</answer>"
						} else {
							tu.Action, tu.Query = core.ActionSearch, benchWords(r, 4)
							tu.Response = "<think>" + st + "</think>\n<search>" + tu.Query + "</search>"
							tu.Information = "[HINT] Doc 1(Title: \"T\") bench passage text"
						}
						turns[k] = tu
						peak = max(peak, tu.Tokens())
						total += tu.Tokens()
					}
					turnsTotal += nt
					em := float64(r.Intn(len(t.Objectives) + 1))
					status := StatusDone
					if g%97 == 0 {
						status, em = StatusFailed, 0
					}
					res := RolloutResult{Status: status, Score: core.Score{Scheme: "mem1", EM: em, F1: em, CountMismatch: g%13 == 0},
						PeakTokens: peak, TotalTokens: total, Turns: nt, Seconds: float64(nt) * 0.7, HitMaxTurns: nt >= 15}
					if status == StatusFailed {
						res.Error = "model: 503 Service Unavailable"
					}
					if err := add(ImportedRollout{TaskKey: t.Key, Policy: policy, Model: model, Turns: turns, Result: res}); err != nil {
						return err
					}
				}
				return nil
			})
		if err != nil {
			return 0, err
		}
	}
	return turnsTotal, nil
}

func benchBrowse(b *testing.B, q RolloutQuery) {
	s, _ := openBenchStore(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		p, err := s.BrowseRollouts(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Rows) == 0 {
			b.Fatal("empty page")
		}
	}
}

// BenchmarkBrowseFirstPage: the browser's first page (200 rows by id) with the
// total count, over 100k rollouts. Target < 200 ms.
func BenchmarkBrowseFirstPage(b *testing.B) { benchBrowse(b, RolloutQuery{}) }

// BenchmarkBrowseFilterChange: a filter change: wrong only, one policy, sorted by
// peak tokens, descending. Target < 200 ms.
func BenchmarkBrowseFilterChange(b *testing.B) {
	benchBrowse(b, RolloutQuery{Policy: "mem1", WrongOnly: true, Sort: SortPeakTokens, Desc: true})
}

// BenchmarkBrowseSortEM: first page sorted by EM, descending (an indexed sort).
func BenchmarkBrowseSortEM(b *testing.B) { benchBrowse(b, RolloutQuery{Sort: SortEM, Desc: true}) }

// BenchmarkBrowseTextSearch: a text filter (a rare word) over 1M turns' internal
// states, queries and answers and 100k tasks' questions.
func BenchmarkBrowseTextSearch(b *testing.B) { benchBrowse(b, RolloutQuery{Text: "zebra"}) }

// BenchmarkBrowseTextSearchCommon: a text filter on a word found in about 1 turn
// in 200 and a prefix search.
func BenchmarkBrowseTextSearchCommon(b *testing.B) { benchBrowse(b, RolloutQuery{Text: "w12"}) }

// BenchmarkOpenRollout20: loading a 20-turn rollout with its task and score
// (what Trace does when it opens one). Target < 20 ms.
func BenchmarkOpenRollout20(b *testing.B) {
	s, id := openBenchStore(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		d, err := s.Rollout(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if len(d.Turns) != 20 {
			b.Fatalf("rollout %d has %d turns", id, len(d.Turns))
		}
	}
}

// BenchmarkFacets: the browser's filter choices (distinct policies, models,
// datasets, statuses) over 100k rollouts.
func BenchmarkFacets(b *testing.B) {
	s, _ := openBenchStore(b)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Facets(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
