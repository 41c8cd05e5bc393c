package experiments

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// synthRollout is one rollout of the fixed synthetic store: its group, result
// and the tokens (prompt, completion) of each turn.
type synthRollout struct {
	policy  string
	n       int
	status  string
	em, f1  float64
	peak    int
	seconds float64
	turns   [][2]int
}

// synthRollouts is the synthetic store's content. Hand-computed aggregates are in
// TestAggregatesGolden.
var synthRollouts = []synthRollout{
	{policy: "mem1", n: 2, status: storage.StatusDone, em: 2, f1: 2, peak: 100, seconds: 1, turns: [][2]int{{40, 10}, {80, 20}, {70, 30}}},
	{policy: "mem1", n: 2, status: storage.StatusDone, em: 1, f1: 1.5, peak: 200, seconds: 2, turns: [][2]int{{50, 10}, {150, 50}, {90, 10}}},
	{policy: "mem1", n: 2, status: storage.StatusDone, em: 0, f1: 0.5, peak: 300, seconds: 3, turns: [][2]int{{60, 10}, {200, 100}, {250, 50}, {100, 20}}},
	{policy: "full", n: 2, status: storage.StatusDone, em: 1, f1: 1, peak: 500, seconds: 4, turns: [][2]int{{100, 20}, {480, 20}}},
	{policy: "full", n: 2, status: storage.StatusDone, em: 1, f1: 1, peak: 700, seconds: 6, turns: [][2]int{{100, 20}, {680, 20}}},
	{policy: "full", n: 2, status: storage.StatusFailed, turns: [][2]int{{100, 20}}},
	{policy: "mem1", n: 1, status: storage.StatusDone, em: 1, f1: 1, peak: 90, seconds: 0.5, turns: [][2]int{{60, 10}, {70, 20}}},
}

const synthModel = "Mem-Lab/Qwen2.5-7B-RL-RAG-Q2-EM-Release"

// synthText is a turn text with what CSV must quote: commas, quotes, newlines,
// a leading space and non-ASCII letters.
func synthText(ri, ti int) string {
	return fmt.Sprintf(" rollout %d, turn %d: \"Röntgen\" said\nline two; naïve — 東京", ri, ti)
}

// syntheticStore builds a store with one experiment holding synthRollouts; it
// returns the store and the experiment id.
func syntheticStore(t testing.TB) (*storage.Store, int64) {
	t.Helper()
	st, err := storage.Open(filepath.Join(t.TempDir(), "synth.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	cfg := DefaultRunConfig()
	cfg.Name = "synthetic, \"golden\""
	cj, err := json.Marshal(cfg)
	require.NoError(t, err)
	exp, err := st.CreateExperiment(ctx, cfg.Name, string(cj), cfg.Hash())
	require.NoError(t, err)
	for ri, r := range synthRollouts {
		task := core.Task{Key: fmt.Sprintf("hotpotqa/n%d/%04d", r.n, ri), Dataset: "hotpotqa"}
		for o := 0; o < r.n; o++ {
			task.Objectives = append(task.Objectives, core.Objective{QuestionID: fmt.Sprintf("q%d-%d", ri, o),
				Question: fmt.Sprintf("Question %d of task %d?", o, ri), Gold: []string{fmt.Sprintf("gold %d.%d", ri, o), "alias"}})
		}
		ids, err := st.AddTasks(ctx, exp, []core.Task{task})
		require.NoError(t, err)
		rid, err := st.CreateRollout(ctx, exp, ids[task.Key], r.policy, synthModel)
		require.NoError(t, err)
		require.NoError(t, st.StartRollout(ctx, rid))
		for ti, tok := range r.turns {
			last := ti == len(r.turns)-1
			tu := core.Turn{Index: ti, Context: "ctx", InternalState: synthText(ri, ti), PromptTokens: tok[0],
				CompletionTokens: tok[1], UsageReported: true, Latency: time.Duration(ti+1) * 250 * time.Millisecond,
				FinishReason: "stop"}
			if last && r.status == storage.StatusDone {
				tu.Action, tu.Answer = core.ActionAnswer, strings.Repeat("gold; ", r.n)
				tu.Response = "<think>" + tu.InternalState + "</think>\n<answer>" + tu.Answer + "</answer>"
			} else {
				tu.Action, tu.Query = core.ActionSearch, fmt.Sprintf("query %d,%d", ri, ti)
				tu.Response = "<think>" + tu.InternalState + "</think>\n<search>" + tu.Query + "</search>"
				tu.Information = "[HINT]You have 3 turns left.[/HINT]\nDoc 1(Title: \"T\") text"
				tu.Passages = []core.Passage{{ID: fmt.Sprintf("p%d", ti), Title: "T", Text: "text", Rank: 1}, {ID: "p-x", Rank: 2}}
			}
			require.NoError(t, st.AppendTurn(ctx, rid, tu))
		}
		res := storage.RolloutResult{Status: r.status, Score: core.Score{Scheme: "mem1", EM: r.em, F1: r.f1},
			Answer: "gold", PeakTokens: r.peak, Turns: len(r.turns), Seconds: r.seconds}
		if r.status == storage.StatusFailed {
			res.Error = "model: connection refused"
		}
		require.NoError(t, st.FinishRollout(ctx, rid, res))
	}
	return st, exp
}

func statOf(n int, mean, se float64) Stat { return Stat{N: n, Mean: mean, StdErr: se} }

func assertStat(t *testing.T, want, got Stat, what string) {
	t.Helper()
	assert.Equal(t, want.N, got.N, what+" n")
	assert.InDelta(t, want.Mean, got.Mean, 1e-9, what+" mean")
	assert.InDelta(t, want.StdErr, got.StdErr, 1e-9, what+" stderr")
}

func TestAggregatesGolden(t *testing.T) {
	st, exp := syntheticStore(t)
	aggs, err := ExperimentAggregates(context.Background(), st, true, exp)
	require.NoError(t, err)
	require.Len(t, aggs, 3)
	// Sorted by model, policy, objectives: full n2, mem1 n1, mem1 n2.
	full, m1, m2 := aggs[0], aggs[1], aggs[2]
	assert.Equal(t, GroupKey{synthModel, "full", 2}, full.GroupKey)
	assert.Equal(t, GroupKey{synthModel, "mem1", 1}, m1.GroupKey)
	assert.Equal(t, GroupKey{synthModel, "mem1", 2}, m2.GroupKey)

	// mem1, 2 objectives: EM 2,1,0 → mean 1, sd 1, se 1/√3.
	assert.Equal(t, 3, m2.Rollouts)
	assert.Equal(t, 0, m2.Failed)
	assertStat(t, statOf(3, 1, 1/math.Sqrt(3)), m2.EM, "mem1 n2 EM")
	// F1 2, 1.5, 0.5 → mean 4/3; squared deviations 4/9 + 1/36 + 25/36 = 7/6; var 7/12.
	assertStat(t, statOf(3, 4.0/3, math.Sqrt(7.0/12)/math.Sqrt(3)), m2.F1, "mem1 n2 F1")
	assertStat(t, statOf(3, 200, 100/math.Sqrt(3)), m2.PeakTokens, "mem1 n2 peak")
	assertStat(t, statOf(3, 2, 1/math.Sqrt(3)), m2.Seconds, "mem1 n2 seconds")
	// Turns 3, 3, 4 → mean 10/3; deviations −1/3, −1/3, 2/3 → var (1/9+1/9+4/9)/2 = 1/3.
	assertStat(t, statOf(3, 10.0/3, math.Sqrt(1.0/3)/math.Sqrt(3)), m2.Turns, "mem1 n2 turns")
	assertStat(t, statOf(3, 0.5, 0.5/math.Sqrt(3)), m2.EMPerObjective(), "mem1 n2 EM per objective")

	// full, 2 objectives: the failed rollout counts in Rollouts and Failed only.
	assert.Equal(t, 3, full.Rollouts)
	assert.Equal(t, 1, full.Failed)
	assertStat(t, statOf(2, 1, 0), full.EM, "full EM")
	// Peak 500, 700 → mean 600, sd √20000, se 100.
	assertStat(t, statOf(2, 600, 100), full.PeakTokens, "full peak")
	assertStat(t, statOf(2, 5, 1), full.Seconds, "full seconds")

	// One rollout: no spread.
	assertStat(t, statOf(1, 1, 0), m1.EM, "mem1 n1 EM")
	assertStat(t, statOf(1, 90, 0), m1.PeakTokens, "mem1 n1 peak")

	// Pooling models changes only the key.
	pooled, err := ExperimentAggregates(context.Background(), st, false, exp)
	require.NoError(t, err)
	require.Len(t, pooled, 3)
	assert.Equal(t, GroupKey{"", "full", 2}, pooled[0].GroupKey)
	assert.Equal(t, m2.EM, pooled[2].EM)
}

func TestContextCurvesGolden(t *testing.T) {
	st, exp := syntheticStore(t)
	b := NewCurveBuilder(false)
	require.NoError(t, st.EachTurnTokens(context.Background(), []int64{exp}, b.Add))
	curves := b.Curves()
	require.Len(t, curves, 3)
	full, m1, m2 := curves[0], curves[1], curves[2]
	assert.Equal(t, GroupKey{"", "mem1", 2}, m2.GroupKey)
	require.Len(t, m2.Points, 4)
	// Turn 1: 50, 60, 70 → mean 60, se 10/√3.
	assert.Equal(t, 1, m2.Points[0].Turn)
	assertStat(t, statOf(3, 60, 10/math.Sqrt(3)), m2.Points[0].Tokens, "mem1 n2 turn 1")
	// Turn 2: 100, 200, 300.
	assertStat(t, statOf(3, 200, 100/math.Sqrt(3)), m2.Points[1].Tokens, "mem1 n2 turn 2")
	// Turn 4: only the third rollout got there.
	assert.Equal(t, 4, m2.Points[3].Turn)
	assertStat(t, statOf(1, 120, 0), m2.Points[3].Tokens, "mem1 n2 turn 4")
	// The failed full rollout's turn is left out: turn 1 is 120, 120.
	assertStat(t, statOf(2, 120, 0), full.Points[0].Tokens, "full turn 1")
	assertStat(t, statOf(2, 600, 100), full.Points[1].Tokens, "full turn 2")
	assert.Len(t, m1.Points, 2)
}

// readCSV parses a whole CSV and checks that every record has the header's width.
func readCSV(t *testing.T, b []byte) ([]string, []map[string]string) {
	t.Helper()
	require.True(t, utf8Valid(b), "CSV is not UTF-8")
	r := csv.NewReader(bytes.NewReader(b))
	recs, err := r.ReadAll()
	require.NoError(t, err)
	require.NotEmpty(t, recs)
	head := recs[0]
	var rows []map[string]string
	for _, rec := range recs[1:] {
		m := map[string]string{}
		for i, h := range head {
			m[h] = rec[i]
		}
		rows = append(rows, m)
	}
	return head, rows
}

func utf8Valid(b []byte) bool { return strings.ToValidUTF8(string(b), "\uFFFD") == string(b) }

func TestRolloutsCSVRoundTrip(t *testing.T) {
	st, exp := syntheticStore(t)
	ctx := context.Background()
	var buf bytes.Buffer
	require.NoError(t, WriteRolloutsCSV(ctx, &buf, st, exp))
	head, rows := readCSV(t, buf.Bytes())
	assert.Equal(t, RolloutColumns, head)
	require.Len(t, rows, len(synthRollouts))
	stored, err := st.Rollouts(ctx, exp)
	require.NoError(t, err)
	e, err := st.Experiment(ctx, exp)
	require.NoError(t, err)
	for i, r := range rows {
		want, s := stored[i], synthRollouts[i]
		assert.Equal(t, strconv.FormatInt(exp, 10), r["experiment_id"])
		assert.Equal(t, e.Name, r["experiment"])
		assert.Equal(t, strconv.FormatInt(want.ID, 10), r["rollout_id"])
		assert.Equal(t, want.TaskKey, r["task_key"])
		assert.Equal(t, "hotpotqa", r["dataset"])
		assert.Equal(t, strconv.Itoa(s.n), r["objectives"])
		assert.Equal(t, s.policy, r["policy"])
		assert.Equal(t, synthModel, r["model"])
		assert.Equal(t, s.status, r["status"])
		for col, v := range map[string]float64{"em": s.em, "f1": s.f1, "em_per_objective": s.em / float64(s.n),
			"f1_per_objective": s.f1 / float64(s.n), "seconds": s.seconds} {
			got, err := strconv.ParseFloat(r[col], 64)
			require.NoError(t, err, col)
			assert.Equal(t, v, got, "row %d %s", i, col)
		}
		assert.Equal(t, strconv.Itoa(s.peak), r["peak_tokens"])
		assert.Equal(t, strconv.Itoa(len(s.turns)), r["turns"])
		assert.Equal(t, "0", r["hit_max_turns"])
		assert.Equal(t, "mem1", r["scheme"])
		assert.Equal(t, want.Error, r["error"])
		assert.Equal(t, "completions", r["mode"])
		assert.Equal(t, strconv.Itoa(core.DefaultMaxTurns(s.n)), r["max_turns"])
		assert.Equal(t, "3", r["top_k"])
		assert.Equal(t, "0.01", r["temperature"])
		assert.Equal(t, e.ConfigHash, r["config_hash"])
		_, err := time.Parse("2006-01-02T15:04:05.000Z", r["finished_at"])
		assert.NoError(t, err, "finished_at %q", r["finished_at"])
	}
	// An unknown experiment is a clear error.
	err = WriteRolloutsCSV(ctx, &bytes.Buffer{}, st, exp+100)
	assert.ErrorIs(t, err, storage.ErrNotFound)
}

func TestTurnsCSVRoundTrip(t *testing.T) {
	st, exp := syntheticStore(t)
	ctx := context.Background()
	var buf bytes.Buffer
	require.NoError(t, WriteTurnsCSV(ctx, &buf, st, exp))
	head, rows := readCSV(t, buf.Bytes())
	assert.Equal(t, TurnColumns, head)
	stored, err := st.Rollouts(ctx, exp)
	require.NoError(t, err)
	i := 0
	for ri, ro := range stored {
		turns, err := st.Turns(ctx, ro.ID)
		require.NoError(t, err)
		for _, tu := range turns {
			require.Less(t, i, len(rows))
			r := rows[i]
			i++
			assert.Equal(t, strconv.FormatInt(ro.ID, 10), r["rollout_id"])
			assert.Equal(t, ro.TaskKey, r["task_key"])
			assert.Equal(t, strconv.Itoa(ro.Objectives), r["objectives"])
			assert.Equal(t, ro.Policy, r["policy"])
			assert.Equal(t, ro.Status, r["rollout_status"])
			assert.Equal(t, strconv.Itoa(tu.Index), r["turn_index"])
			assert.Equal(t, tu.Action.String(), r["action"])
			assert.Equal(t, strconv.Itoa(tu.PromptTokens), r["prompt_tokens"])
			assert.Equal(t, strconv.Itoa(tu.CompletionTokens), r["completion_tokens"])
			assert.Equal(t, strconv.Itoa(tu.Tokens()), r["tokens"])
			assert.Equal(t, "1", r["usage_reported"])
			assert.Equal(t, strconv.FormatFloat(float64(tu.Latency)/float64(time.Millisecond), 'g', -1, 64), r["latency_ms"])
			assert.Equal(t, "stop", r["finish_reason"])
			var ids []string
			for _, p := range tu.Passages {
				ids = append(ids, p.ID)
			}
			assert.Equal(t, strings.Join(ids, " "), r["passage_ids"])
			assert.Equal(t, tu.Query, r["query"])
			assert.Equal(t, tu.Answer, r["answer"])
			assert.Equal(t, synthText(ri, tu.Index), r["internal_state"], "quoting must keep the text byte for byte")
			assert.Equal(t, tu.Response, r["response"])
			assert.Equal(t, tu.Information, r["information"])
		}
	}
	assert.Equal(t, i, len(rows))
}

func TestAggregatesCSVRoundTrip(t *testing.T) {
	st, exp := syntheticStore(t)
	aggs, err := ExperimentAggregates(context.Background(), st, true, exp)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, WriteAggregatesCSV(&buf, aggs))
	head, rows := readCSV(t, buf.Bytes())
	assert.Equal(t, AggregateColumns, head)
	require.Len(t, rows, len(aggs))
	num := func(s string) float64 {
		v, err := strconv.ParseFloat(s, 64)
		require.NoError(t, err)
		return v
	}
	for i, a := range aggs {
		r := rows[i]
		assert.Equal(t, a.Model, r["model"])
		assert.Equal(t, a.Policy, r["policy"])
		assert.Equal(t, strconv.Itoa(a.Objectives), r["objectives"])
		assert.Equal(t, strconv.Itoa(a.Rollouts), r["rollouts"])
		assert.Equal(t, strconv.Itoa(a.EM.N), r["done"])
		assert.Equal(t, strconv.Itoa(a.Failed), r["failed"])
		for col, s := range map[string]Stat{"em": a.EM, "f1": a.F1, "em_per_objective": a.EMPerObjective(),
			"f1_per_objective": a.F1PerObjective(), "peak_tokens": a.PeakTokens, "seconds": a.Seconds, "turns": a.Turns} {
			assert.Equal(t, s.Mean, num(r[col+"_mean"]), col)
			assert.Equal(t, s.StdErr, num(r[col+"_stderr"]), col)
		}
	}
	// The hand-computed mem1 n2 EM stderr survives the text form exactly.
	assert.InDelta(t, 1/math.Sqrt(3), num(rows[2]["em_stderr"]), 1e-15)
}

func TestTrajectoriesJSONLRoundTrip(t *testing.T) {
	st, exp := syntheticStore(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "traj.jsonl")
	f, err := os.Create(path)
	require.NoError(t, err)
	n, err := WriteTrajectoriesJSONL(ctx, f, st, exp)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	assert.Equal(t, 6, n, "done rollouts only")

	ts, err := ReadTrajectoriesJSONL(path)
	require.NoError(t, err)
	require.Len(t, ts, n)
	rows, err := st.Rollouts(ctx, exp)
	require.NoError(t, err)
	var done []storage.RolloutRow
	for _, r := range rows {
		if r.Status == storage.StatusDone {
			done = append(done, r)
		}
	}
	for i, tr := range ts {
		d, err := st.Rollout(ctx, done[i].ID)
		require.NoError(t, err)
		assert.Equal(t, strconv.FormatInt(d.ID, 10), tr.Index)
		assert.Equal(t, core.DefaultTemplate().Render(d.Task), tr.Question)
		assert.Equal(t, len(d.Turns), tr.Turns)
		require.Len(t, tr.Gold, len(d.Task.Objectives))
		for o, obj := range d.Task.Objectives {
			assert.Equal(t, obj.Gold, tr.Gold[o])
		}
		// Text is t{i} r{i} i{i} concatenated: the state, the response and the block.
		var want strings.Builder
		for _, tu := range d.Turns {
			want.WriteString("<think>" + tu.InternalState + "</think>")
			want.WriteString(tu.Response)
			if tu.Action == core.ActionSearch {
				want.WriteString(core.DefaultTags().InformationBlock(tu.Information))
			}
		}
		assert.Equal(t, want.String(), tr.Text)
	}
	// Key order follows the reference pipeline: q first, then t0 r0 i0 ….
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	first := strings.SplitN(string(b), "\n", 2)[0]
	assert.True(t, strings.HasPrefix(first, `{"q": `), first[:20])
	assert.Less(t, strings.Index(first, `"t0"`), strings.Index(first, `"r0"`))
	assert.Less(t, strings.Index(first, `"r0"`), strings.Index(first, `"i0"`))
	assert.Less(t, strings.Index(first, `"i0"`), strings.Index(first, `"t1"`))
}

// TestRolloutsCSVPaperColumns: the paper columns are empty until computed,
// then hold the stored figures (empty for eval.py's None), the rule of the
// policy, and the request peak with its source.
func TestRolloutsCSVPaperColumns(t *testing.T) {
	st, exp := syntheticStore(t)
	ctx := context.Background()
	var buf bytes.Buffer
	require.NoError(t, WriteRolloutsCSV(ctx, &buf, st, exp))
	_, rows := readCSV(t, buf.Bytes())
	for _, r := range rows {
		assert.Equal(t, "", r["paper_peak_tokens"])
		assert.Equal(t, "", r["paper_token_source"])
		assert.Equal(t, "", r["token_source"])
	}
	n, err := BackfillPaperMetrics(ctx, st)
	require.NoError(t, err)
	assert.Equal(t, len(synthRollouts), n)

	buf.Reset()
	require.NoError(t, WriteRolloutsCSV(ctx, &buf, st, exp))
	head, rows := readCSV(t, buf.Bytes())
	assert.Equal(t, RolloutColumns, head)
	stored, err := st.Rollouts(ctx, exp)
	require.NoError(t, err)
	require.Len(t, rows, len(stored))
	for i, r := range rows {
		want, s := stored[i], synthRollouts[i]
		require.NotNil(t, want.Paper)
		if s.status == storage.StatusFailed {
			// The failed rollout never answered: the reference's "None" matches no gold.
			assert.Equal(t, "0", r["exact_match_lenient"])
			assert.Equal(t, "", r["paper_peak_tokens"], "eval.py's None")
		} else {
			// "gold" is inside each objective's first alias "gold i.o".
			assert.Equal(t, strconv.Itoa(s.n), r["exact_match_lenient"])
			require.NotNil(t, want.Paper.PeakTokens)
			assert.Equal(t, strconv.Itoa(*want.Paper.PeakTokens), r["paper_peak_tokens"])
			assert.Positive(t, *want.Paper.PeakTokens)
		}
		require.NotNil(t, want.Paper.Dependency)
		assert.Equal(t, strconv.Itoa(*want.Paper.Dependency), r["dependency"])
		ratio, err := strconv.ParseFloat(r["compression_ratio"], 64)
		require.NoError(t, err)
		assert.Equal(t, *want.Paper.CompressionRatio, ratio)
		assert.Equal(t, "o200k", r["paper_token_source"])
		wantRule := "consolidating"
		if s.policy == "full" {
			wantRule = "full-history"
		}
		assert.Equal(t, wantRule, r["paper_rule"])
		peak := 0
		for _, tk := range s.turns {
			peak = max(peak, tk[0]+tk[1])
		}
		assert.Equal(t, strconv.Itoa(peak), r["request_peak_tokens"], "max prompt+completion over turns")
		assert.Equal(t, "server-usage", r["token_source"])
	}

	// The turns CSV names each turn's source.
	buf.Reset()
	require.NoError(t, WriteTurnsCSV(ctx, &buf, st, exp))
	_, trows := readCSV(t, buf.Bytes())
	require.NotEmpty(t, trows)
	for _, r := range trows {
		assert.Equal(t, "server-usage", r["token_source"])
	}
}
