package experiments

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
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
//	paper_peak_tokens               MEM1 eval.py's peak tokens (o200k counts over the
//	                                trajectory text, prompt not counted) under paper_rule;
//	                                empty where eval.py gives None (lenient Exact_match 0)
//	paper_rule                      consolidating | full-history (eval.py's two rules)
//	dependency, compression_ratio   eval.py's, o200k counts; empty for None
//	exact_match_lenient             generate_rollout.py's substring Exact_match count
//	paper_token_source              o200k (empty: not computed)
//	request_peak_tokens             largest request as served (prompt + completion)
//	token_source                    source of request_peak_tokens: server-usage |
//	                                server-tokenize | estimate
//	actor_tokens                    total_tokens less the memory policy's sub-calls
//	subcalls, subcall_tokens, subcall_seconds  the memory policy's sub-calls (0 for others)
//	ROLE_tokens, ROLE_seconds       the same by role: summariser, extractor, updater, embedder
var RolloutColumns = []string{
	"experiment_id", "experiment", "rollout_id", "task_key", "dataset", "objectives", "policy", "model", "status",
	"em", "f1", "em_per_objective", "f1_per_objective", "peak_tokens", "total_tokens", "turns", "seconds",
	"hit_max_turns", "count_mismatch", "no_answer", "unbalanced", "scheme", "answer", "error",
	"started_at", "finished_at",
	"mode", "max_turns", "top_k", "temperature", "top_p", "max_tokens", "compose", "seed", "config_hash",
	"paper_peak_tokens", "paper_rule", "dependency", "compression_ratio", "exact_match_lenient", "paper_token_source",
	"request_peak_tokens", "token_source",
	"actor_tokens", "subcalls", "subcall_tokens", "subcall_seconds",
	"summariser_tokens", "summariser_seconds", "extractor_tokens", "extractor_seconds",
	"updater_tokens", "updater_seconds", "embedder_tokens", "embedder_seconds",
}

// TurnColumns is the header of the turns CSV, one row per stored turn, ordered
// by rollout id then turn:
//
//	experiment_id, rollout_id, task_key, objectives, policy, model, rollout_status
//	turn_index                      0-based
//	action                          search | answer | none
//	prompt_tokens, completion_tokens, tokens  tokens = prompt + completion
//	usage_reported                  0/1: 1 when the counts are the server's usage (see token_source)
//	latency_ms, finish_reason
//	passage_ids                     retrieved passage ids, best first, space-separated
//	query, answer, internal_state   the <search>, <answer> and <think> texts
//	response, information           the raw response and the information text
//	token_source                    server-usage | server-tokenize | estimate
//
// The exact context sent is not a column (it is rebuilt from earlier turns; see
// the trace or the trajectories export).
var TurnColumns = []string{
	"experiment_id", "rollout_id", "task_key", "objectives", "policy", "model", "rollout_status",
	"turn_index", "action", "prompt_tokens", "completion_tokens", "tokens", "usage_reported", "latency_ms",
	"finish_reason", "passage_ids", "query", "answer", "internal_state", "response", "information",
	"token_source",
}

// AggregateColumns is the header of the aggregates CSV, one row per (model,
// policy, objectives) group (see Aggregate; means and standard errors over the
// done rollouts, i.e. over tasks):
//
//	model, policy, objectives, rollouts, done, failed
//	em_mean, em_stderr, f1_mean, f1_stderr                 summed over objectives
//	em_per_objective_mean, em_per_objective_stderr, f1_per_objective_mean, f1_per_objective_stderr
//	peak_tokens_mean, peak_tokens_stderr, seconds_mean, seconds_stderr, turns_mean, turns_stderr
//	                                peak_tokens: the request peak as served
//	paper_peak_tokens_n, paper_peak_tokens_mean, paper_peak_tokens_stderr
//	                                MEM1 eval.py's peak (o200k), averaged as eval.py does:
//	                                rollouts whose lenient Exact_match is 0 left out (n counts the rest)
//	dependency_mean, dependency_stderr, compression_ratio_mean, compression_ratio_stderr
//	                                eval.py's, over rollouts where they are not None
//	em_ci_low, em_ci_high, f1_ci_low, f1_ci_high, em_per_objective_ci_low, em_per_objective_ci_high,
//	f1_per_objective_ci_low, f1_per_objective_ci_high, peak_tokens_ci_low, peak_tokens_ci_high,
//	seconds_ci_low, seconds_ci_high, turns_ci_low, turns_ci_high
//	                                95% t intervals of the means (Stat.CI; empty below 2 done rollouts)
var AggregateColumns = []string{
	"model", "policy", "objectives", "rollouts", "done", "failed",
	"em_mean", "em_stderr", "f1_mean", "f1_stderr",
	"em_per_objective_mean", "em_per_objective_stderr", "f1_per_objective_mean", "f1_per_objective_stderr",
	"peak_tokens_mean", "peak_tokens_stderr", "seconds_mean", "seconds_stderr", "turns_mean", "turns_stderr",
	"paper_peak_tokens_n", "paper_peak_tokens_mean", "paper_peak_tokens_stderr",
	"dependency_mean", "dependency_stderr", "compression_ratio_mean", "compression_ratio_stderr",
	"em_ci_low", "em_ci_high", "f1_ci_low", "f1_ci_high", "em_per_objective_ci_low", "em_per_objective_ci_high",
	"f1_per_objective_ci_low", "f1_per_objective_ci_high", "peak_tokens_ci_low", "peak_tokens_ci_high",
	"seconds_ci_low", "seconds_ci_high", "turns_ci_low", "turns_ci_high",
}

// ci95 formats s's 95% interval as two CSV fields (empty when undefined).
func ci95(s Stat) (string, string) {
	lo, hi := s.CI(0.95)
	return fmtNum(lo), fmtNum(hi)
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
		costs, err := subCallCosts(ctx, st, id)
		if err != nil {
			return err
		}
		err = st.EachRollout(ctx, id, func(r storage.RolloutExport) error {
			n := float64(max(r.Objectives, 1))
			maxTurns := ""
			if cfg.Policy != "" || cfg.MaxTurns > 0 {
				maxTurns = strconv.Itoa(cfg.MaxTurnsFor(r.Objectives))
			}
			return cw.write(append([]string{
				strconv.FormatInt(e.ID, 10), e.Name, strconv.FormatInt(r.ID, 10), r.TaskKey, r.Dataset,
				strconv.Itoa(r.Objectives), r.Policy, r.Model, r.Status,
				fmtFloat(r.EM), fmtFloat(r.F1), fmtFloat(r.EM / n), fmtFloat(r.F1 / n),
				strconv.Itoa(r.PeakTokens), strconv.Itoa(r.TotalTokens), strconv.Itoa(r.Turns), fmtFloat(r.Seconds),
				fmtBool(r.HitMaxTurns), fmtBool(r.Score.CountMismatch), fmtBool(r.Score.NoAnswer), fmtBool(r.Score.Unbalanced),
				r.Score.Scheme, r.Answer, r.Error, r.StartedAt, r.FinishedAt,
				cfg.Mode, maxTurns, optInt(cfg.TopK), optFloat(cfg.Temperature), optFloat(cfg.TopP), optInt(cfg.MaxTokens),
				cfg.Compose, strconv.FormatInt(cfg.Seed, 10), e.ConfigHash,
			}, append(paperCells(r.Paper, r.Policy, r.RequestPeakTokens, r.TokenSource),
				costColumns(r.TotalTokens, costs[r.ID])...)...)...)
		})
		if err != nil {
			return err
		}
	}
	return cw.flush()
}

// paperCells are the cells paper_peak_tokens … token_source of a rollout
// (see RolloutColumns); the paper cells are empty while not computed.
func paperCells(m *core.PaperMetrics, policy string, requestPeak int, source string) []string {
	out := make([]string, 6, 8)
	if m != nil {
		if m.PeakTokens != nil {
			out[0] = strconv.Itoa(*m.PeakTokens)
		}
		out[1] = PaperRuleName(core.PaperRuleFull(policy))
		if m.Dependency != nil {
			out[2] = strconv.Itoa(*m.Dependency)
		}
		if m.CompressionRatio != nil {
			out[3] = fmtFloat(*m.CompressionRatio)
		}
		out[4] = strconv.Itoa(m.ExactMatchLenient)
		out[5] = core.TokenSourceO200k
	}
	rp := ""
	if source != "" {
		rp = strconv.Itoa(requestPeak)
	}
	return append(out, rp, source)
}

// PaperRuleName names eval.py's peak-token rule: "full-history" for its
// non-compression functions, "consolidating" for its compression ones.
func PaperRuleName(full bool) string {
	if full {
		return "full-history"
	}
	return "consolidating"
}

// optStat formats a statistic over n values, empty when n is 0 (eval.py
// would divide by zero).
func optStat(x float64, n int) string {
	if n == 0 {
		return ""
	}
	return fmtFloat(x)
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
				t.Information, t.TokenSource,
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
		fields := []string{a.Model, a.Policy, strconv.Itoa(a.Objectives), strconv.Itoa(a.Rollouts),
			strconv.Itoa(a.EM.N), strconv.Itoa(a.Failed),
			fmtFloat(a.EM.Mean), fmtFloat(a.EM.StdErr), fmtFloat(a.F1.Mean), fmtFloat(a.F1.StdErr),
			fmtFloat(emo.Mean), fmtFloat(emo.StdErr), fmtFloat(f1o.Mean), fmtFloat(f1o.StdErr),
			fmtFloat(a.PeakTokens.Mean), fmtFloat(a.PeakTokens.StdErr), fmtFloat(a.Seconds.Mean), fmtFloat(a.Seconds.StdErr),
			fmtFloat(a.Turns.Mean), fmtFloat(a.Turns.StdErr),
			strconv.Itoa(a.PaperPeakTokens.N), optStat(a.PaperPeakTokens.Mean, a.PaperPeakTokens.N),
			optStat(a.PaperPeakTokens.StdErr, a.PaperPeakTokens.N),
			optStat(a.Dependency.Mean, a.Dependency.N), optStat(a.Dependency.StdErr, a.Dependency.N),
			optStat(a.CompressionRatio.Mean, a.CompressionRatio.N), optStat(a.CompressionRatio.StdErr, a.CompressionRatio.N)}
		for _, s := range []Stat{a.EM, a.F1, emo, f1o, a.PeakTokens, a.Seconds, a.Turns} {
			lo, hi := ci95(s)
			fields = append(fields, lo, hi)
		}
		err := cw.write(fields...)
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
// expIDs in the MEM1 reference pipeline's format; it is WriteTrajectories with
// no options and returns the number of lines written.
func WriteTrajectoriesJSONL(ctx context.Context, w io.Writer, st ExportStore, expIDs ...int64) (int, error) {
	n, err := WriteTrajectories(ctx, w, st, TrajectoryExportOptions{}, expIDs...)
	return n.Lines, err
}

// TrajectoryExportOptions choose what WriteTrajectories writes.
type TrajectoryExportOptions struct {
	// Errors adds a line for each failed or cancelled rollout in the shape of the
	// reference's error lines (see WriteTrajectories). eval.py cannot read
	// those (it needs "q"), so they are off by default.
	Errors bool
}

// TrajectoryExportCounts counts what WriteTrajectories wrote and left out.
type TrajectoryExportCounts struct {
	Lines      int // lines written
	Done       int // done rollouts written
	Errors     int // error lines written (failed or cancelled rollouts)
	LeftOut    int // failed or cancelled rollouts left out (Errors off), plus queued or running ones
	ReRendered int // done rollouts stored before prompts were kept: q re-rendered
}

// WriteTrajectories writes the rollouts of the experiments expIDs, one JSON
// object a line, as MEM1's Mem1/inference/generate_rollout.py writes them (its
// results_dict after Mem1Pipeline.run_llm_loop in data_pipelines.py), so that
// MEM1's eval.py and ReadTrajectoriesJSONL read the file unchanged. Each done
// rollout is one line, keys in this order:
//
//	q              the task prompt the rollout sent (the user message; stored
//	               when it started, re-rendered from the experiment's template
//	               for rollouts stored before that, marked in mem1lab_settings)
//	t{i}           turn i's internal state as "<think>…</think>" (first think
//	               block, stripped), "" when none
//	r{i}           turn i's response as generated, closing tag restored (absent
//	               for a turn with no action: the reference stops there)
//	i{i}           for a search turn, the information block exactly as appended
//	               ("<information>\n…\n</information>"; "" on the last turn,
//	               which retrieves nothing); absent for the answer turn
//	index          the rollout id (the reference writes its data-frame row)
//	hash           hex SHA-256 of q (the reference hashes Python's str() of
//	               its parquet prompt cell, which mem1lab does not hold; it
//	               uses the hash only to skip done rows on resume)
//	Golden_answer  the gold aliases, one list per objective (the reference's
//	               multi-objective shape, reward_model.ground_truth.target)
//	Exact_match    generate_rollout.py's lenient count (ReferenceExactMatch),
//	               an integer as its multi-objective branch writes it
//	Model_estimated_match  1, what the released reference writes for every
//	               answered row: its judge call is commented out and
//	               model_estimated_match returns 1, so eval.py's "MBE" is no
//	               measurement
//	mem1lab_policy, mem1lab_model, mem1lab_settings  the rollout's policy,
//	               model and settings (TrajectorySettings), which the reference
//	               tools ignore and ImportTrajectories restores
//
// A rollout of a memory policy also gets A-MEM's "memories" key: the memory
// payload of each turn (core.Memories), which eval.py adds to peak tokens (its
// longest entry); other rollouts never have it. With
// opt.Errors each failed or cancelled rollout is a line like the reference's
// error lines: index, hash, error, question (the questions joined),
// Golden_answer, Exact_match false, Model_estimated_match false, then the
// mem1lab keys (settings.status says failed or cancelled). Queued and running
// rollouts are never written. JSON is written as Python's json.dump(…,
// ensure_ascii=False) spaces it (", " and ": "), HTML characters unescaped,
// invalid UTF-8 replaced by U+FFFD. eval.py reads at most 10 turn indices.
func WriteTrajectories(ctx context.Context, w io.Writer, st ExportStore, opt TrajectoryExportOptions, expIDs ...int64) (TrajectoryExportCounts, error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	var n TrajectoryExportCounts
	for _, id := range expIDs {
		e, err := st.Experiment(ctx, id)
		if err != nil {
			return n, err
		}
		cfg := experimentConfig(e)
		rows, err := st.Rollouts(ctx, id)
		if err != nil {
			return n, err
		}
		for _, row := range rows {
			failed := row.Status == storage.StatusFailed || row.Status == storage.StatusCancelled
			switch {
			case row.Status == storage.StatusDone:
			case failed && opt.Errors:
			default:
				n.LeftOut++
				continue
			}
			d, err := st.Rollout(ctx, row.ID)
			if err != nil {
				return n, err
			}
			prompt, source := d.Prompt, "stored"
			if prompt == "" {
				prompt, source = rerenderPrompt(cfg, d), "re-rendered"
			}
			set := trajectorySettings(e, cfg, d)
			var line string
			if failed {
				set.Status = d.Status
				line, err = errorLine(d, prompt, set)
				n.Errors++
			} else {
				set.PromptSource = source
				if source != "stored" {
					n.ReRendered++
				}
				line, err = trajectoryLine(d, prompt, set, cfg.CoreTags())
				n.Done++
			}
			if err != nil {
				return n, err
			}
			if _, err := bw.WriteString(line); err != nil {
				return n, err
			}
			n.Lines++
		}
	}
	return n, bw.Flush()
}

// rerenderPrompt renders the task prompt of a rollout stored before prompts
// were kept: the experiment's template for the rollout's policy, or the
// built-in template when that no longer loads.
func rerenderPrompt(cfg RunConfig, d storage.RolloutDetail) string {
	cfg.Policy = d.Policy
	if acfg, err := agentConfig(cfg); err == nil {
		if p, err := acfg.Prompt(d.Task); err == nil {
			return p
		}
	}
	return core.DefaultTemplate().RenderWith(d.Task, cfg.CoreTags())
}

// trajectorySettings is what mem1lab_settings records for rollout d.
func trajectorySettings(e storage.ExperimentRow, cfg RunConfig, d storage.RolloutDetail) TrajectorySettings {
	mode := cfg.Mode
	for _, p := range cfg.EndpointList() {
		if p.Model == d.Model {
			mode = p.Mode
			break
		}
	}
	set := TrajectorySettings{Experiment: e.Name, ConfigHash: e.ConfigHash, TaskKey: d.TaskKey, Dataset: d.Dataset,
		Objectives: d.Objectives, Mode: mode, TopK: cfg.TopK, Temperature: cfg.Temperature, TopP: cfg.TopP,
		MaxTokens: cfg.MaxTokens, Scheme: d.Score.Scheme, Template: cfg.Template, Compose: cfg.Compose, Seed: cfg.Seed}
	if cfg.Policy != "" || cfg.MaxTurns > 0 || len(cfg.Policies) > 0 {
		set.MaxTurns = cfg.MaxTurnsFor(d.Objectives)
	}
	if set.Scheme == "" {
		set.Scheme = cfg.Scheme
	}
	return set
}

// jsonLine builds one JSON object with keys in the given order, spaced as
// Python's json.dump.
type jsonLine struct {
	b     strings.Builder
	first bool
	id    int64
}

func newJSONLine(id int64) *jsonLine {
	l := &jsonLine{first: true, id: id}
	l.b.WriteString("{")
	return l
}

func (l *jsonLine) field(key string, v any) error {
	text, err := spacedJSON(v)
	if err != nil {
		return fmt.Errorf("trajectory of rollout %d: %s: %w", l.id, key, err)
	}
	if !l.first {
		l.b.WriteString(", ")
	}
	l.first = false
	kb, _ := json.Marshal(key)
	l.b.Write(kb)
	l.b.WriteString(": ")
	l.b.WriteString(text)
	return nil
}

func (l *jsonLine) fields(kvs ...any) error {
	for i := 0; i+1 < len(kvs); i += 2 {
		if err := l.field(kvs[i].(string), kvs[i+1]); err != nil {
			return err
		}
	}
	return nil
}

func (l *jsonLine) String() string { return l.b.String() + "}\n" }

// spacedJSON encodes v (HTML characters unescaped) and spaces it as Python's
// json.dumps does: ", " and ": " outside strings.
func spacedJSON(v any) (string, error) {
	var buf strings.Builder
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	var out strings.Builder
	inStr, esc := false, false
	for _, c := range strings.TrimSuffix(buf.String(), "\n") {
		out.WriteRune(c)
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case !inStr && (c == ',' || c == ':'):
			out.WriteByte(' ')
		}
	}
	return out.String(), nil
}

func goldLists(task core.Task) [][]string {
	gold := make([][]string, len(task.Objectives))
	for i, o := range task.Objectives {
		gold[i] = o.Gold
		if gold[i] == nil {
			gold[i] = []string{}
		}
	}
	return gold
}

func promptHash(prompt string) string {
	sum := sha256.Sum256([]byte(prompt))
	return hex.EncodeToString(sum[:])
}

// trajectoryLine is the line of a done rollout (see WriteTrajectories).
func trajectoryLine(d storage.RolloutDetail, prompt string, set TrajectorySettings, tags core.Tags) (string, error) {
	l := newJSONLine(d.ID)
	prompt = clean(prompt)
	if err := l.field("q", prompt); err != nil {
		return "", err
	}
	var answer *string
	for _, t := range d.Turns {
		i := strconv.Itoa(t.Index)
		state := ""
		if t.InternalState != "" {
			state = "<" + tags.Think + ">" + t.InternalState + "</" + tags.Think + ">"
		}
		if err := l.field("t"+i, clean(state)); err != nil {
			return "", err
		}
		if t.Action == core.ActionNone {
			continue
		}
		if err := l.field("r"+i, clean(t.Response)); err != nil {
			return "", err
		}
		switch t.Action {
		case core.ActionSearch:
			info := ""
			if t.Information != "" {
				info = tags.InformationBlock(t.Information)
			}
			if err := l.field("i"+i, clean(info)); err != nil {
				return "", err
			}
		case core.ActionAnswer:
			a := t.Answer
			answer = &a
		}
	}
	if mems := core.Memories(d.Turns); mems != nil {
		for i := range mems {
			mems[i] = clean(mems[i])
		}
		if err := l.field("memories", mems); err != nil {
			return "", err
		}
	}
	gold := goldLists(d.Task)
	if err := l.fields("index", d.ID, "hash", promptHash(prompt), "Golden_answer", gold,
		"Exact_match", ReferenceExactMatch(answer, gold), "Model_estimated_match", 1,
		KeyPolicy, d.Policy, KeyModel, d.Model, KeySettings, set); err != nil {
		return "", err
	}
	return l.String(), nil
}

// errorLine is the line of a failed or cancelled rollout, in the shape of the
// reference's error lines (see WriteTrajectories).
func errorLine(d storage.RolloutDetail, prompt string, set TrajectorySettings) (string, error) {
	l := newJSONLine(d.ID)
	qs := make([]string, len(d.Task.Objectives))
	for i, o := range d.Task.Objectives {
		qs[i] = o.Question
	}
	msg := d.Error
	if msg == "" {
		msg = d.Status
	}
	if err := l.fields("index", d.ID, "hash", promptHash(clean(prompt)), "error", clean(msg),
		"question", clean(core.JoinQuestions(qs)), "Golden_answer", goldLists(d.Task), "Exact_match", false,
		"Model_estimated_match", false, KeyPolicy, d.Policy, KeyModel, d.Model, KeySettings, set); err != nil {
		return "", err
	}
	return l.String(), nil
}

// ReferenceExactMatch is the lenient "Exact_match" that MEM1's
// Mem1/inference/generate_rollout.py writes for multi-objective data: answer
// (the final <answer> text, nil when the rollout gave none, which Python
// renders "None") is split on ";" and objective k counts when its k-th part
// and the objective's first gold alias, both lower-cased and stripped, contain
// one another. A missing part (fewer answers than objectives) makes the whole
// count 0, as the reference's IndexError handler does. An objective with no
// alias compares with "". The result is 0..len(gold). eval.py leaves a
// trajectory out of its peak-token means when this is 0.
func ReferenceExactMatch(answer *string, gold [][]string) int {
	a := "None"
	if answer != nil {
		a = *answer
	}
	parts := strings.Split(a, ";")
	n := 0
	for k, aliases := range gold {
		if k >= len(parts) {
			return 0
		}
		gt := ""
		if len(aliases) > 0 {
			gt = aliases[0]
		}
		p := strings.TrimSpace(strings.ToLower(parts[k]))
		g := strings.TrimSpace(strings.ToLower(gt))
		if strings.Contains(g, p) || strings.Contains(p, g) {
			n++
		}
	}
	return n
}

// subCallCosts reads experiment id's sub-call costs by rollout when the store
// keeps sub-calls (none otherwise).
func subCallCosts(ctx context.Context, st ExportStore, id int64) (map[int64][]storage.RoleCost, error) {
	cs, ok := st.(interface {
		SubCallCosts(ctx context.Context, expID int64) (map[int64][]storage.RoleCost, error)
	})
	if !ok {
		return nil, nil
	}
	return cs.SubCallCosts(ctx, id)
}

// costColumns are the rollouts CSV's cost columns from actor_tokens on.
func costColumns(total int, costs []storage.RoleCost) []string {
	calls, tokens, secs := 0, 0, 0.0
	by := map[string]storage.RoleCost{}
	for _, c := range costs {
		calls, tokens, secs = calls+c.Calls, tokens+c.Tokens, secs+c.Seconds
		by[c.Role] = c
	}
	out := []string{strconv.Itoa(total - tokens), strconv.Itoa(calls), strconv.Itoa(tokens), fmtFloat(secs)}
	for _, role := range []string{core.RoleSummariser, core.RoleExtractor, core.RoleUpdater, core.RoleEmbedder} {
		out = append(out, strconv.Itoa(by[role].Tokens), fmtFloat(by[role].Seconds))
	}
	return out
}
