package experiments

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments/memdiag"
	"github.com/mem1lab/mem1lab/storage"
)

// RolloutDiagnostics are the memory diagnostics of one done rollout, computed
// from its stored turns (memdiag): per-turn context composition in tokens
// (nil when the rollout's policy is not one core.PolicyByName knows, as for
// some imported trajectories, or when token counts were not asked for), each
// objective's fact retention, the internal state's growth, and the
// per-objective EM marks (nil when not stored).
type RolloutDiagnostics struct {
	ExperimentID int64                   `json:"experiment_id"`
	RolloutID    int64                   `json:"rollout_id"`
	TaskKey      string                  `json:"task_key"`
	Objectives   int                     `json:"objectives"`
	Policy       string                  `json:"policy"`
	Model        string                  `json:"model"`
	Composition  []memdiag.Composition   `json:"composition"`
	Retention    []memdiag.FactRetention `json:"retention"`
	Growth       memdiag.StateGrowth     `json:"growth"`
	ObjectiveEM  []float64               `json:"objective_em"`
}

// DiagnosticsVersion is the format of cached diagnostics; a cached row of
// another version is recomputed. Bump it when memdiag's results change.
const DiagnosticsVersion = 1

// DiagnosticsCache is where computed diagnostics are kept (*storage.Store
// satisfies it).
type DiagnosticsCache interface {
	ExperimentDiagnostics(ctx context.Context, expID int64) (map[int64]storage.CachedDiagnostics, error)
	SaveDiagnostics(ctx context.Context, id int64, c storage.CachedDiagnostics) error
}

var _ DiagnosticsCache = (*storage.Store)(nil)

// DiagnosticsOptions choose how diagnostics are computed.
type DiagnosticsOptions struct {
	// Encoder counts tokens; nil means memdiag.O200K (the paper's counts),
	// whose results are read from and written to the store's cache when the
	// store is a DiagnosticsCache. Another encoder is never cached.
	Encoder memdiag.Encoder
	// NoTokens skips the composition and the state growth (which need token
	// counts) when they are not cached.
	NoTokens bool
}

// fingerprint identifies the stored figures of a rollout, so a cached row of
// a rollout that was run again is recomputed.
func fingerprint(r storage.RolloutRow) string {
	return fmt.Sprintf("%s|%s|%d|%g|%g|%d|%d|%g", r.Policy, r.Model, r.Turns, r.EM, r.F1, r.PeakTokens, r.TotalTokens, r.Seconds)
}

// EachRolloutDiagnostics computes the diagnostics of every done rollout of
// the experiments expIDs, in order, and hands each to fn. With the default
// encoder, rollouts whose cached diagnostics match (DiagnosticsVersion and
// fingerprint) are not recomputed, and those computed are cached. The context
// of each turn is rebuilt from the stored prompt (re-rendered for rollouts
// stored before prompts were kept) and turns, as the turn loop built it.
// Errors: an unknown experiment (wrapping storage.ErrNotFound), the store's,
// the encoder's, or fn's.
func EachRolloutDiagnostics(ctx context.Context, st ExportStore, opt DiagnosticsOptions, fn func(RolloutDiagnostics) error, expIDs ...int64) error {
	enc := opt.Encoder
	cache, _ := st.(DiagnosticsCache)
	if enc != nil {
		cache = nil
	} else {
		enc = memdiag.O200K
	}
	for _, id := range expIDs {
		e, err := st.Experiment(ctx, id)
		if err != nil {
			return err
		}
		cfg := experimentConfig(e)
		tags := cfg.CoreTags()
		rows, err := st.Rollouts(ctx, id)
		if err != nil {
			return err
		}
		var cached map[int64]storage.CachedDiagnostics
		if cache != nil {
			if cached, err = cache.ExperimentDiagnostics(ctx, id); err != nil {
				return err
			}
		}
		for _, row := range rows {
			if row.Status != storage.StatusDone {
				continue
			}
			fp := fingerprint(row)
			if c, ok := cached[row.ID]; ok && c.Version == DiagnosticsVersion && c.Fingerprint == fp {
				var rd RolloutDiagnostics
				if err := json.Unmarshal([]byte(c.JSON), &rd); err == nil {
					rd.ExperimentID = id
					if err := fn(rd); err != nil {
						return err
					}
					continue
				}
			}
			d, err := st.Rollout(ctx, row.ID)
			if err != nil {
				return err
			}
			rd := RolloutDiagnostics{ExperimentID: id, RolloutID: d.ID, TaskKey: d.TaskKey, Objectives: d.Objectives,
				Policy: d.Policy, Model: d.Model}
			tokens := !opt.NoTokens || cache != nil
			if pol, err := core.PolicyByName(d.Policy); err == nil && tokens {
				prompt := d.Prompt
				if prompt == "" {
					prompt = rerenderPrompt(cfg, d)
				}
				rd.Composition, err = memdiag.Compose(memdiag.ContextSegments(prompt, d.Turns, pol, tags), enc)
				if err != nil {
					return err
				}
			}
			rd.Retention = memdiag.Retention(d.Task, d.Turns, d.Score.Answers)
			if tokens {
				if rd.Growth, err = memdiag.Growth(d.Turns, enc); err != nil {
					return err
				}
			}
			for _, o := range d.Score.PerObjective {
				rd.ObjectiveEM = append(rd.ObjectiveEM, o.EM)
			}
			if cache != nil {
				b, err := json.Marshal(rd)
				if err != nil {
					return err
				}
				if err := cache.SaveDiagnostics(ctx, d.ID, storage.CachedDiagnostics{Version: DiagnosticsVersion, Fingerprint: fp, JSON: string(b)}); err != nil {
					return err
				}
			}
			if err := fn(rd); err != nil {
				return err
			}
		}
	}
	return nil
}

// DiagnosticKinds are the memory-diagnostics CSVs WriteDiagnosticsCSV writes.
var DiagnosticKinds = []string{"composition", "retention", "retention-curves", "positions", "state-growth"}

// CompositionColumns: one row per turn of each done rollout. tokens is the
// o200k count of the context rebuilt for the turn (prompt + what the policy
// carried); prompt, state, responses, information, memory are its parts
// (memdiag.Parts) and sum to tokens.
var CompositionColumns = []string{"experiment_id", "rollout_id", "task_key", "objectives", "policy", "model", "turn",
	"tokens", "prompt", "state", "responses", "information", "memory"}

// RetentionColumns: one row per objective of each done rollout
// (memdiag.FactRetention): objective (1-based position), retrieved (1-based
// turn its gold alias first came in an information block, 0 never), in_state
// (0/1 for each later turn, space-separated), forgetting (turns it left the
// state, space-separated), forgetting_events (their count), answered (0/1).
var RetentionColumns = []string{"experiment_id", "rollout_id", "task_key", "objectives", "policy", "model", "objective",
	"retrieved", "in_state", "forgetting", "forgetting_events", "answered"}

// RetentionCurveColumns: one row per (model, policy, objectives, k): of n
// retrieved gold facts whose rollout went on k more turns, share were still in
// the internal state k turns after the retrieval (memdiag.RetentionCurve).
var RetentionCurveColumns = []string{"model", "policy", "objectives", "k", "n", "share"}

// PositionColumns: one row per (model, policy, objectives, position): mean EM
// of the objective at that 1-based position over n tasks, its standard error
// and 95% t interval (memdiag.AccuracyByPosition; Stat.CI).
var PositionColumns = []string{"model", "policy", "objectives", "position", "n", "em", "stderr", "ci_low", "ci_high"}

// StateGrowthColumns: one row per done rollout: state_tokens are the o200k
// tokens of each turn's internal state (space-separated, turn order), slope
// their least-squares slope in tokens per turn (memdiag.Growth).
var StateGrowthColumns = []string{"experiment_id", "rollout_id", "task_key", "objectives", "policy", "model", "turns",
	"state_tokens", "slope"}

func joinInts(xs []int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.Itoa(x)
	}
	return strings.Join(parts, " ")
}

// WriteDiagnosticsCSV writes one memory-diagnostics table (kind, one of
// DiagnosticKinds) of the experiments expIDs as CSV; enc counts tokens (nil:
// memdiag.O200K with the store's cache, see EachRolloutDiagnostics). The
// per-rollout tables stream; the aggregated ones (retention-curves,
// positions) are grouped by (model, policy, objectives) and sorted.
func WriteDiagnosticsCSV(ctx context.Context, w io.Writer, st ExportStore, kind string, enc memdiag.Encoder, expIDs ...int64) error {
	header := map[string][]string{"composition": CompositionColumns, "retention": RetentionColumns,
		"retention-curves": RetentionCurveColumns, "positions": PositionColumns, "state-growth": StateGrowthColumns}[kind]
	if header == nil {
		return errUnknownKind(kind)
	}
	cw, err := newCSVWriter(w, header)
	if err != nil {
		return err
	}
	type group struct {
		model, policy string
		objectives    int
	}
	facts := map[group][]memdiag.FactRetention{}
	marks := map[group][][]float64{}
	err = EachRolloutDiagnostics(ctx, st, DiagnosticsOptions{Encoder: enc}, func(d RolloutDiagnostics) error {
		id := []string{strconv.FormatInt(d.ExperimentID, 10), strconv.FormatInt(d.RolloutID, 10), d.TaskKey,
			strconv.Itoa(d.Objectives), d.Policy, d.Model}
		g := group{d.Model, d.Policy, d.Objectives}
		switch kind {
		case "composition":
			for _, c := range d.Composition {
				row := append(append([]string{}, id...), strconv.Itoa(c.Turn), strconv.Itoa(c.Tokens))
				for _, p := range memdiag.Parts {
					row = append(row, strconv.Itoa(c.Parts[p]))
				}
				if err := cw.write(row...); err != nil {
					return err
				}
			}
		case "retention":
			for _, f := range d.Retention {
				in := make([]int, len(f.InState))
				for i, b := range f.InState {
					if b {
						in[i] = 1
					}
				}
				row := append(append([]string{}, id...), strconv.Itoa(f.Objective), strconv.Itoa(f.Retrieved),
					joinInts(in), joinInts(f.Forgetting), strconv.Itoa(len(f.Forgetting)), fmtBool(f.Answered))
				if err := cw.write(row...); err != nil {
					return err
				}
			}
		case "state-growth":
			row := append(append([]string{}, id...), strconv.Itoa(len(d.Growth.Tokens)), joinInts(d.Growth.Tokens),
				fmtFloat(d.Growth.Slope))
			if err := cw.write(row...); err != nil {
				return err
			}
		case "retention-curves":
			facts[g] = append(facts[g], d.Retention...)
		case "positions":
			if len(d.ObjectiveEM) > 0 {
				marks[g] = append(marks[g], d.ObjectiveEM)
			}
		}
		return nil
	}, expIDs...)
	if err != nil {
		return err
	}
	var keys []group
	for k := range facts {
		keys = append(keys, k)
	}
	for k := range marks {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		return GroupKey{a.model, a.policy, a.objectives}.less(GroupKey{b.model, b.policy, b.objectives})
	})
	for _, g := range keys {
		lead := []string{g.model, g.policy, strconv.Itoa(g.objectives)}
		for _, p := range memdiag.RetentionCurve(facts[g]) {
			if err := cw.write(append(append([]string{}, lead...), strconv.Itoa(p.K), strconv.Itoa(p.N), fmtFloat(p.Share))...); err != nil {
				return err
			}
		}
		for _, p := range memdiag.AccuracyByPosition(marks[g]) {
			lo, hi := Stat{N: p.N, Mean: p.EM, StdErr: p.StdErr}.CI(0.95)
			if err := cw.write(append(append([]string{}, lead...), strconv.Itoa(p.Position), strconv.Itoa(p.N),
				fmtFloat(p.EM), fmtFloat(p.StdErr), fmtNum(lo), fmtNum(hi))...); err != nil {
				return err
			}
		}
	}
	return cw.flush()
}

type errUnknownKind string

func (e errUnknownKind) Error() string {
	return "unknown diagnostics table " + strconv.Quote(string(e)) + " (want one of " + strings.Join(DiagnosticKinds, ", ") + ")"
}

// RolloutComposition is the per-turn context composition of one stored
// rollout d (memdiag.Compose over memdiag.ContextSegments), with configJSON
// its experiment's stored config (tags and, for rollouts stored without
// their prompt, the template to re-render it); enc nil means memdiag.O200K.
// An unknown policy is an error.
func RolloutComposition(d storage.RolloutDetail, configJSON string, enc memdiag.Encoder) ([]memdiag.Composition, error) {
	if enc == nil {
		enc = memdiag.O200K
	}
	cfg := experimentConfig(storage.ExperimentRow{ConfigJSON: configJSON})
	pol, err := core.PolicyByName(d.Policy)
	if err != nil {
		return nil, err
	}
	prompt := d.Prompt
	if prompt == "" {
		prompt = rerenderPrompt(cfg, d)
	}
	return memdiag.Compose(memdiag.ContextSegments(prompt, d.Turns, pol, cfg.CoreTags()), enc)
}
