package experiments

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// TrajectoryStore is what ImportTrajectories needs from the store
// (*storage.Store satisfies it).
type TrajectoryStore interface {
	ImportExperiment(ctx context.Context, e storage.ExperimentImport, each func(add func(storage.ImportedRollout) error) error) (int64, error)
}

var _ TrajectoryStore = (*storage.Store)(nil)

// ImportOptions name what the reference file does not record.
type ImportOptions struct {
	Name    string // experiment name; "" = "import <file name>"
	Policy  string // "" = "mem1"
	Model   string // "" = "imported"
	Dataset string // "" = "imported"
	Scheme  string // scoring scheme; "" = core.SchemeMEM1
}

// ImportResult reports what ImportTrajectories stored.
type ImportResult struct {
	Experiment int64
	Rollouts   int
	Turns      int
	MeanEM     float64
	MeanF1     float64
}

// ImportTrajectories loads a MEM1 reference-pipeline JSONL file (see
// ReadTrajectoriesJSONL: q, t{i}, r{i}, i{i}, Golden_answer, index) into the
// store as one experiment, every line a task with one finished rollout, all in
// one transaction: a bad line is an error "path:line: reason" and nothing is
// stored.
//
// Each line becomes:
//   - a task keyed "import/<index>" ("import/line-<n>" without an index; a
//     repeated index is an error), whose objectives are the questions after the
//     last "Question:"/"Questions:" of q split on ';' when that gives one per
//     Golden_answer entry, else the whole q for every objective;
//   - one turn per step: the response is t{i} + r{i} (what eval.py scores),
//     parsed for internal state, query and answer (t{i} stripped of think tags
//     is the internal state when the response has no think block); the
//     information is i{i} without its information tags;
//   - the file records no contexts or token counts, so each turn's context is
//     rebuilt as MEM1's consolidation builds it (q, then the previous turn's
//     response and information block) and tokens are core.EstimateTokens
//     estimates (UsageReported false);
//   - the score is eval.py's over the line's first 10 turns (ScoreTrajectories);
//   - the paper figures (peak tokens, dependency, compression ratio, lenient
//     exact match) are eval.py's on the line's own fields and Exact_match
//     (Trajectory.PaperMetrics), under the full-history rule when the policy
//     is not "mem1"; the request peak is the estimate (token source
//     "estimate").
func ImportTrajectories(ctx context.Context, st TrajectoryStore, path string, opt ImportOptions) (ImportResult, error) {
	if opt.Scheme == "" {
		opt.Scheme = core.SchemeMEM1
	}
	if opt.Policy == "" {
		opt.Policy = "mem1"
	}
	if opt.Model == "" {
		opt.Model = "imported"
	}
	if opt.Dataset == "" {
		opt.Dataset = "imported"
	}
	if opt.Name == "" {
		opt.Name = "import " + filepath.Base(path)
	}
	ts, err := ReadTrajectoriesJSONL(path)
	if err != nil {
		return ImportResult{}, err
	}
	if len(ts) == 0 {
		return ImportResult{}, fmt.Errorf("%s: no trajectories", path)
	}
	scores, meanEM, meanF1, err := ScoreTrajectories(ts, opt.Scheme)
	if err != nil {
		return ImportResult{}, err
	}
	tasks := make([]core.Task, len(ts))
	seen := map[string]int{}
	for i, t := range ts {
		key := "import/line-" + fmt.Sprint(t.Line)
		if t.Index != "" {
			key = "import/" + t.Index
		}
		if prev, dup := seen[key]; dup {
			return ImportResult{}, fmt.Errorf("%s:%d: index %q already used on line %d", path, t.Line, t.Index, prev)
		}
		seen[key] = t.Line
		tasks[i] = core.Task{Key: key, Dataset: opt.Dataset, Objectives: importObjectives(t)}
	}
	cfg := map[string]any{"source": importSource, "file": path, "policy": opt.Policy, "model": opt.Model,
		"dataset": opt.Dataset, "scheme": opt.Scheme}
	cj, err := json.Marshal(cfg)
	if err != nil {
		return ImportResult{}, err
	}
	sum := sha256.Sum256(cj)
	res := ImportResult{Rollouts: len(ts), MeanEM: meanEM, MeanF1: meanF1}
	tags := core.DefaultTags()
	res.Experiment, err = st.ImportExperiment(ctx, storage.ExperimentImport{Name: opt.Name, ConfigJSON: string(cj),
		ConfigHash: hex.EncodeToString(sum[:]), Status: storage.StatusDone, Tasks: tasks},
		func(add func(storage.ImportedRollout) error) error {
			for i, t := range ts {
				turns := importTurns(t, tags)
				res.Turns += len(turns)
				peak, total := 0, 0
				for _, tu := range turns {
					peak = max(peak, tu.Tokens())
					total += tu.Tokens()
				}
				sc := scores[i].Score
				answer, _ := core.FinalAnswer(opt.Scheme, t.Text)
				// eval.py's figures straight from the line's fields, under the
				// rule of the imported policy.
				pm := t.PaperMetrics(core.PaperRuleFull(opt.Policy))
				r := storage.ImportedRollout{TaskKey: tasks[i].Key, Policy: opt.Policy, Model: opt.Model, Turns: turns,
					Result: storage.RolloutResult{Status: storage.StatusDone, Score: sc, Answer: answer, PeakTokens: peak,
						TotalTokens: total, Turns: len(turns), Paper: &pm, RequestPeakTokens: peak,
						TokenSource: core.TokenSourceEstimate}}
				if err := add(r); err != nil {
					return fmt.Errorf("%s:%d: %w", path, t.Line, err)
				}
			}
			return nil
		})
	if err != nil {
		return ImportResult{}, err
	}
	return res, nil
}

// importObjectives names one objective per Golden_answer entry.
func importObjectives(t Trajectory) []core.Objective {
	qs := splitQuestions(t.Question, len(t.Gold))
	objs := make([]core.Objective, len(t.Gold))
	for k, g := range t.Gold {
		objs[k] = core.Objective{QuestionID: fmt.Sprintf("line%d-%d", t.Line, k+1), Question: qs[k], Gold: g}
	}
	return objs
}

// splitQuestions finds n questions in a task prompt: the text after the last
// "Question:" or "Questions:" (to the end of that line), split on ';' as
// core.JoinQuestions joins them. When that does not give n parts, every
// objective gets that text whole (or the whole prompt when it has no marker).
func splitQuestions(q string, n int) []string {
	text := strings.TrimSpace(q)
	for _, m := range []string{"Questions:", "Question:"} {
		if i := strings.LastIndex(q, m); i >= 0 {
			rest := q[i+len(m):]
			if j := strings.IndexAny(rest, "\n<"); j >= 0 {
				rest = rest[:j]
			}
			text = strings.TrimSpace(rest)
			break
		}
	}
	out := make([]string, n)
	parts := strings.Split(text, ";")
	if len(parts) == n {
		for k, p := range parts {
			out[k] = strings.TrimSpace(p)
		}
		return out
	}
	for k := range out {
		out[k] = text
	}
	return out
}

// importTurns turns a line's steps into stored turns (see ImportTrajectories).
func importTurns(t Trajectory, tags core.Tags) []core.Turn {
	turns := make([]core.Turn, 0, len(t.Steps))
	var prev core.Exchange
	for i, s := range t.Steps {
		resp := s.Think + s.Response
		p := tags.Parse(resp)
		tu := core.Turn{Index: i, Response: resp, InternalState: p.InternalState, Action: p.Action, Query: p.Query, Answer: p.Answer}
		if tu.InternalState == "" && strings.TrimSpace(s.Think) != "" {
			st := strings.TrimSpace(s.Think)
			st = strings.TrimPrefix(st, "<"+tags.Think+">")
			st = strings.TrimSuffix(st, "</"+tags.Think+">")
			tu.InternalState = strings.TrimSpace(st)
		}
		info := strings.TrimSpace(s.Information)
		info = strings.TrimPrefix(info, "<"+tags.Information+">")
		info = strings.TrimSuffix(info, "</"+tags.Information+">")
		tu.Information = strings.Trim(info, "\n")
		tu.Context = t.Question
		if i > 0 {
			tu.Context += prev.Response + prev.Information
		}
		tu.PromptTokens = core.EstimateTokens(tu.Context)
		tu.CompletionTokens = core.EstimateTokens(resp)
		tu.TokenSource = core.TokenSourceEstimate
		tu.Passages = parsePassages(tu.Information)
		prev = core.Exchange{Response: resp}
		if tu.Information != "" {
			prev.Information = tags.InformationBlock(tu.Information)
		}
		turns = append(turns, tu)
	}
	return turns
}

// parsePassages reads the passages of a rendered information block: lines
// "Doc k(Title: "T") text" (MEM1's rendering), rank k. Ids are unknown ("").
func parsePassages(info string) []core.Passage {
	var out []core.Passage
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "Doc ") {
			continue
		}
		var rank int
		if _, err := fmt.Sscanf(line, "Doc %d(Title:", &rank); err != nil {
			continue
		}
		rest := line[strings.Index(line, "(Title:")+len("(Title:"):]
		rest = strings.TrimSpace(rest)
		title, text := "", rest
		if strings.HasPrefix(rest, `"`) {
			if j := strings.Index(rest[1:], `")`); j >= 0 {
				title, text = rest[1:1+j], strings.TrimSpace(rest[1+j+2:])
			}
		}
		out = append(out, core.Passage{Title: title, Text: text, Rank: rank})
	}
	return out
}
