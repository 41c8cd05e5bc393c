package experiments

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// ExportStore is what the exports read (*storage.Store satisfies it). The Each*
// methods stream rows one at a time, so an export's memory does not grow with the
// number of turns stored.
type ExportStore interface {
	Experiment(ctx context.Context, id int64) (storage.ExperimentRow, error)
	Rollouts(ctx context.Context, expID int64) ([]storage.RolloutRow, error)
	Rollout(ctx context.Context, id int64) (storage.RolloutDetail, error)
	EachRollout(ctx context.Context, expID int64, fn func(storage.RolloutExport) error) error
	EachTurn(ctx context.Context, expID int64, fn func(*storage.TurnExport) error) error
}

var _ ExportStore = (*storage.Store)(nil)

// CSV files written here are UTF-8 without a byte-order mark, comma-separated,
// quoted as RFC 4180 says (encoding/csv: fields holding a comma, a quote, a
// newline or leading space are quoted, quotes doubled), lines ending in "\n",
// with one header row. Numbers are plain decimal (shortest exact form for
// floats), booleans are 0/1, missing values are empty. pandas.read_csv reads them
// with no options. The column order below is stable: new columns are only ever
// appended.

// RolloutColumns is the header of the rollouts CSV, one row per rollout:
//
//	experiment_id, experiment       the experiment's id and name
//	rollout_id, task_key, dataset   the rollout and its task
//	objectives                      N questions in the task
//	policy, model, status           as stored (status: queued|running|done|failed|cancelled)
//	em, f1                          summed over objectives (0..N), MEM1's scheme
//	em_per_objective, f1_per_objective  em/N, f1/N
//	peak_tokens, total_tokens       largest and summed context+generation tokens
//	turns, seconds                  turns used, wall seconds of the rollout
//	hit_max_turns, count_mismatch, no_answer, unbalanced  0/1 score flags
//	scheme, answer, error           scoring scheme, final answer text, failure text
//	started_at, finished_at         UTC, 2006-01-02T15:04:05.000Z
//	mode, max_turns, top_k, temperature, top_p, max_tokens, compose, seed, config_hash
//	                                the experiment's settings (max_turns resolved for N)
var RolloutColumns = []string{
	"experiment_id", "experiment", "rollout_id", "task_key", "dataset", "objectives", "policy", "model", "status",
	"em", "f1", "em_per_objective", "f1_per_objective", "peak_tokens", "total_tokens", "turns", "seconds",
	"hit_max_turns", "count_mismatch", "no_answer", "unbalanced", "scheme", "answer", "error",
	"started_at", "finished_at",
	"mode", "max_turns", "top_k", "temperature", "top_p", "max_tokens", "compose", "seed", "config_hash",
}

// TurnColumns is the header of the turns CSV, one row per stored turn, ordered
// by rollout id then turn:
//
//	experiment_id, rollout_id, task_key, objectives, policy, model, rollout_status
//	turn_index                      0-based
//	action                          search | answer | none
//	prompt_tokens, completion_tokens, tokens  tokens = prompt + completion
//	usage_reported                  0/1: 0 when the counts are estimates
//	latency_ms, finish_reason
//	passage_ids                     retrieved passage ids, best first, space-separated
//	query, answer, internal_state   the <search>, <answer> and <think> texts
//	response, information           the raw response and the information text
//
// The exact context sent is not a column (it is rebuilt from earlier turns; see
// the trace or the trajectories export).
var TurnColumns = []string{
	"experiment_id", "rollout_id", "task_key", "objectives", "policy", "model", "rollout_status",
	"turn_index", "action", "prompt_tokens", "completion_tokens", "tokens", "usage_reported", "latency_ms",
	"finish_reason", "passage_ids", "query", "answer", "internal_state", "response", "information",
}

// AggregateColumns is the header of the aggregates CSV, one row per (model,
// policy, objectives) group (see Aggregate; means and standard errors over the
// done rollouts, i.e. over tasks):
//
//	model, policy, objectives, rollouts, done, failed
//	em_mean, em_stderr, f1_mean, f1_stderr                 summed over objectives
//	em_per_objective_mean, em_per_objective_stderr, f1_per_objective_mean, f1_per_objective_stderr
//	peak_tokens_mean, peak_tokens_stderr, seconds_mean, seconds_stderr, turns_mean, turns_stderr
var AggregateColumns = []string{
	"model", "policy", "objectives", "rollouts", "done", "failed",
	"em_mean", "em_stderr", "f1_mean", "f1_stderr",
	"em_per_objective_mean", "em_per_objective_stderr", "f1_per_objective_mean", "f1_per_objective_stderr",
	"peak_tokens_mean", "peak_tokens_stderr", "seconds_mean", "seconds_stderr", "turns_mean", "turns_stderr",
}

func fmtFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

func fmtBool(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// clean makes s valid UTF-8 (invalid bytes become U+FFFD).
func clean(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// experimentConfig decodes an experiment's stored config (zero values for
// fields it lacks, unknown fields ignored).
func experimentConfig(e storage.ExperimentRow) RunConfig {
	var cfg RunConfig
	_ = json.Unmarshal([]byte(e.ConfigJSON), &cfg)
	return cfg
}

// csvWriter wraps encoding/csv over a buffered writer; rows are cleaned to UTF-8.
type csvWriter struct {
	bw  *bufio.Writer
	cw  *csv.Writer
	row []string
}

func newCSVWriter(w io.Writer, header []string) (*csvWriter, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	c := &csvWriter{bw: bw, cw: csv.NewWriter(bw)}
	return c, c.cw.Write(header)
}

func (c *csvWriter) write(fields ...string) error {
	c.row = c.row[:0]
	for _, f := range fields {
		c.row = append(c.row, clean(f))
	}
	return c.cw.Write(c.row)
}

func (c *csvWriter) flush() error {
	c.cw.Flush()
	if err := c.cw.Error(); err != nil {
		return err
	}
	return c.bw.Flush()
}

// WriteRolloutsCSV writes the rollouts of the experiments expIDs, in that order,
// as CSV with RolloutColumns. An unknown experiment is an error (wrapping
// storage.ErrNotFound) and nothing after it is written.
func WriteRolloutsCSV(ctx context.Context, w io.Writer, st ExportStore, expIDs ...int64) error {
	cw, err := newCSVWriter(w, RolloutColumns)
	if err != nil {
		return err
	}
	for _, id := range expIDs {
		e, err := st.Experiment(ctx, id)
		if err != nil {
			return err
		}
		cfg := experimentConfig(e)
		err = st.EachRollout(ctx, id, func(r storage.RolloutExport) error {
			n := float64(max(r.Objectives, 1))
			maxTurns := ""
			if cfg.Policy != "" || cfg.MaxTurns > 0 {
				maxTurns = strconv.Itoa(cfg.MaxTurnsFor(r.Objectives))
			}
			return cw.write(
				strconv.FormatInt(e.ID, 10), e.Name, strconv.FormatInt(r.ID, 10), r.TaskKey, r.Dataset,
				strconv.Itoa(r.Objectives), r.Policy, r.Model, r.Status,
				fmtFloat(r.EM), fmtFloat(r.F1), fmtFloat(r.EM/n), fmtFloat(r.F1/n),
				strconv.Itoa(r.PeakTokens), strconv.Itoa(r.TotalTokens), strconv.Itoa(r.Turns), fmtFloat(r.Seconds),
				fmtBool(r.HitMaxTurns), fmtBool(r.Score.CountMismatch), fmtBool(r.Score.NoAnswer), fmtBool(r.Score.Unbalanced),
				r.Score.Scheme, r.Answer, r.Error, r.StartedAt, r.FinishedAt,
				cfg.Mode, maxTurns, optInt(cfg.TopK), optFloat(cfg.Temperature), optFloat(cfg.TopP), optInt(cfg.MaxTokens),
				cfg.Compose, strconv.FormatInt(cfg.Seed, 10), e.ConfigHash,
			)
		})
		if err != nil {
			return err
		}
	}
	return cw.flush()
}

func optInt(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func optFloat(x float64) string {
	if x == 0 {
		return ""
	}
	return fmtFloat(x)
}

// WriteTurnsCSV streams every stored turn of the experiments expIDs as CSV with
// TurnColumns. Memory stays bounded: one row is held at a time.
func WriteTurnsCSV(ctx context.Context, w io.Writer, st ExportStore, expIDs ...int64) error {
	cw, err := newCSVWriter(w, TurnColumns)
	if err != nil {
		return err
	}
	for _, id := range expIDs {
		if _, err := st.Experiment(ctx, id); err != nil {
			return err
		}
		err := st.EachTurn(ctx, id, func(t *storage.TurnExport) error {
			return cw.write(
				strconv.FormatInt(t.ExperimentID, 10), strconv.FormatInt(t.RolloutID, 10), t.TaskKey,
				strconv.Itoa(t.Objectives), t.Policy, t.Model, t.RolloutStatus,
				strconv.Itoa(t.Index), t.Action, strconv.Itoa(t.PromptTokens), strconv.Itoa(t.CompletionTokens),
				strconv.Itoa(t.PromptTokens+t.CompletionTokens), fmtBool(t.UsageReported), fmtFloat(t.LatencyMS),
				t.FinishReason, strings.Join(t.PassageIDs, " "), t.Query, t.Answer, t.InternalState, t.Response,
				t.Information,
			)
		})
		if err != nil {
			return err
		}
	}
	return cw.flush()
}

// WriteAggregatesCSV writes aggs as CSV with AggregateColumns, in the given order.
func WriteAggregatesCSV(w io.Writer, aggs []Aggregate) error {
	cw, err := newCSVWriter(w, AggregateColumns)
	if err != nil {
		return err
	}
	for _, a := range aggs {
		emo, f1o := a.EMPerObjective(), a.F1PerObjective()
		err := cw.write(a.Model, a.Policy, strconv.Itoa(a.Objectives), strconv.Itoa(a.Rollouts),
			strconv.Itoa(a.EM.N), strconv.Itoa(a.Failed),
			fmtFloat(a.EM.Mean), fmtFloat(a.EM.StdErr), fmtFloat(a.F1.Mean), fmtFloat(a.F1.StdErr),
			fmtFloat(emo.Mean), fmtFloat(emo.StdErr), fmtFloat(f1o.Mean), fmtFloat(f1o.StdErr),
			fmtFloat(a.PeakTokens.Mean), fmtFloat(a.PeakTokens.StdErr), fmtFloat(a.Seconds.Mean), fmtFloat(a.Seconds.StdErr),
			fmtFloat(a.Turns.Mean), fmtFloat(a.Turns.StdErr))
		if err != nil {
			return err
		}
	}
	return cw.flush()
}

// ExperimentAggregates loads the rollouts of expIDs and aggregates them
// (Aggregates, grouped by model too).
func ExperimentAggregates(ctx context.Context, st interface {
	Rollouts(ctx context.Context, expID int64) ([]storage.RolloutRow, error)
}, byModel bool, expIDs ...int64) ([]Aggregate, error) {
	var rows []storage.RolloutRow
	for _, id := range expIDs {
		rs, err := st.Rollouts(ctx, id)
		if err != nil {
			return nil, err
		}
		rows = append(rows, rs...)
	}
	return Aggregates(rows, byModel), nil
}

// WriteTrajectoriesJSONL writes the finished (done) rollouts of the experiments
// expIDs, one JSON object a line, in the MEM1 reference pipeline's format
// (Mem1/inference/data_pipelines.py and generate_rollout.py), which
// ReadTrajectoriesJSONL and MEM1's eval.py read:
//
//	q              the task prompt (the user message the template renders)
//	t{i}           turn i's internal state as "<think>…</think>", "" when none
//	r{i}           turn i's raw response (absent for a turn with no action, as
//	               the reference pipeline stops there)
//	i{i}           for a search turn, the information block exactly as appended
//	               ("<information>\n…\n</information>", "" when no search ran);
//	               absent for the answer turn
//	index          the rollout id
//	Golden_answer  the gold aliases, one list per objective
//
// plus task_key, policy, model, objectives, em and f1 (mem1lab's fields; the
// reference readers ignore them). Keys are written in that order; HTML characters
// are not escaped. eval.py reads at most 10 turn indices. It returns the number
// of lines written.
func WriteTrajectoriesJSONL(ctx context.Context, w io.Writer, st ExportStore, expIDs ...int64) (int, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	tags := core.DefaultTags()
	n := 0
	for _, id := range expIDs {
		e, err := st.Experiment(ctx, id)
		if err != nil {
			return n, err
		}
		tmpl := core.DefaultTemplate()
		if cfg := experimentConfig(e); cfg.Template != "" {
			if t, err := LoadTemplate(cfg.Template); err == nil {
				tmpl = t
			}
		}
		rows, err := st.Rollouts(ctx, id)
		if err != nil {
			return n, err
		}
		for _, row := range rows {
			if row.Status != storage.StatusDone {
				continue
			}
			d, err := st.Rollout(ctx, row.ID)
			if err != nil {
				return n, err
			}
			if err := writeTrajectory(bw, d, tmpl.RenderWith(d.Task, tags), tags); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, bw.Flush()
}

func writeTrajectory(w *bufio.Writer, d storage.RolloutDetail, prompt string, tags core.Tags) error {
	var b strings.Builder
	first := true
	field := func(key string, v any) error {
		var buf strings.Builder
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("trajectory of rollout %d: %s: %w", d.ID, key, err)
		}
		if !first {
			b.WriteString(", ")
		}
		first = false
		kb, _ := json.Marshal(key)
		b.Write(kb)
		b.WriteString(": ")
		b.WriteString(strings.TrimSuffix(buf.String(), "\n"))
		return nil
	}
	b.WriteString("{")
	if err := field("q", clean(prompt)); err != nil {
		return err
	}
	for _, t := range d.Turns {
		i := strconv.Itoa(t.Index)
		state := ""
		if t.InternalState != "" {
			state = "<think>" + t.InternalState + "</think>"
		}
		if err := field("t"+i, clean(state)); err != nil {
			return err
		}
		if t.Action == core.ActionNone {
			continue
		}
		if err := field("r"+i, clean(t.Response)); err != nil {
			return err
		}
		if t.Action == core.ActionSearch {
			info := ""
			if t.Information != "" {
				info = tags.InformationBlock(t.Information)
			}
			if err := field("i"+i, clean(info)); err != nil {
				return err
			}
		}
	}
	gold := make([][]string, len(d.Task.Objectives))
	for i, o := range d.Task.Objectives {
		gold[i] = o.Gold
		if gold[i] == nil {
			gold[i] = []string{}
		}
	}
	for _, kv := range []struct {
		k string
		v any
	}{{"index", d.ID}, {"Golden_answer", gold}, {"task_key", d.TaskKey}, {"policy", d.Policy},
		{"model", d.Model}, {"objectives", d.Objectives}, {"em", d.EM}, {"f1", d.F1}} {
		if err := field(kv.k, kv.v); err != nil {
			return err
		}
	}
	b.WriteString("}\n")
	_, err := w.WriteString(b.String())
	return err
}
