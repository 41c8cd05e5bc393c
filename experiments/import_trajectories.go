package experiments

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
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

// ImportOptions name what the file does not record, or override what it does.
type ImportOptions struct {
	Name string // experiment name; "" = "import <file name>"
	// Policy, when set, is every rollout's policy; "" = each line's
	// mem1lab_policy, else "mem1".
	Policy string
	// Model, when set, is every rollout's model; "" = each line's
	// mem1lab_model, else "imported".
	Model string
	// Dataset, when set, names every task's dataset; "" = each line's
	// mem1lab_settings.dataset, else "imported".
	Dataset string
	// Scheme is the scoring scheme; "" = the scheme every line's
	// mem1lab_settings records, else core.SchemeMEM1.
	Scheme string
}

// ImportResult reports what ImportTrajectories stored.
type ImportResult struct {
	Experiment int64
	Rollouts   int // every line
	Failed     int // error lines, stored as failed (or cancelled) rollouts
	Turns      int
	MeanEM     float64 // over the done rollouts
	MeanF1     float64
	// Warnings say what the file did not record and what was assumed instead
	// (no policy or model: rollouts stored as mem1/imported), for the CLI and
	// the GUI to show.
	Warnings []string
}

// ImportTrajectories loads a MEM1 reference-pipeline JSONL file (see
// ReadTrajectoriesJSONL: q, t{i}, r{i}, i{i}, Golden_answer, index, error
// lines, mem1lab's extra keys) into the store as one experiment, every line one
// rollout, all in one transaction: a bad line is an error "path:line: reason"
// and nothing is stored.
//
// Each line becomes:
//   - a rollout under the line's policy and model (ImportOptions; a file with
//     no mem1lab_policy/mem1lab_model gets "mem1"/"imported" and a warning);
//   - of a task keyed mem1lab_settings.task_key when the line records one
//     (lines of one task share it), else "import/<index>" ("import/line-<n>"
//     without an index; a repeated index is then an error). Its objectives are
//     the questions of q (SplitQuestions: after the last "questions:" or
//     "question:", any case, split as the questions were joined) when that gives
//     one per Golden_answer entry, else the whole q for every objective;
//   - one turn per step: the response is r{i} (the reference writes the whole
//     generation there, think block included), t{i} + r{i} when r{i} has no
//     think block; the internal state is parsed from it (t{i} stripped of its
//     tags when the response has none); the information is i{i} without its
//     tags;
//   - the file records no contexts or token counts, so each turn's context is
//     rebuilt as the line's policy builds it (q, then the exchanges the policy
//     keeps; mem1 for an unknown policy) and tokens are core.EstimateTokens
//     estimates (UsageReported false);
//   - the score is eval.py's over the line's first 10 turns (ScoreTrajectories);
//   - an error line of the reference ({"index", "hash", "error", …}) is a
//     failed rollout (cancelled when mem1lab_settings.status says so) with the
//     error text, no turns and no score; its task comes from its "question" and
//     Golden_answer when they are usable.
//   - the paper figures (peak tokens, dependency, compression ratio, lenient
//     exact match) are eval.py's on the line's own fields and Exact_match
//     (Trajectory.PaperMetrics), under the full-history rule when the policy
//     is not "mem1"; the request peak is the estimate (token source
//     "estimate").
//
// The experiment's config records the file, the scheme, the policies and
// models, and the settings every line's mem1lab_settings agrees on.
func ImportTrajectories(ctx context.Context, st TrajectoryStore, path string, opt ImportOptions) (ImportResult, error) {
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
	shared, agree := sharedSettings(ts)
	if opt.Scheme == "" {
		opt.Scheme = core.SchemeMEM1
		if agree && shared.Scheme != "" {
			opt.Scheme = shared.Scheme
		}
	}
	scores, meanEM, meanF1, err := ScoreTrajectories(ts, opt.Scheme)
	if err != nil {
		return ImportResult{}, err
	}
	res := ImportResult{Rollouts: len(ts), MeanEM: meanEM, MeanF1: meanF1}

	// Who made each line, and which task it belongs to.
	type lineInfo struct {
		policy, model, task string
	}
	infos := make([]lineInfo, len(ts))
	var tasks []core.Task
	taskAt := map[string]int{} // key → index in tasks
	seenIndex := map[string]int{}
	var policies, models []string
	noPolicy, reRendered := 0, 0
	for i, t := range ts {
		in := lineInfo{policy: opt.Policy, model: opt.Model}
		if in.policy == "" {
			in.policy = t.Policy
		}
		if in.model == "" {
			in.model = t.Model
		}
		if t.Policy == "" {
			noPolicy++
		}
		if in.policy == "" {
			in.policy = core.PolicyMEM1
		}
		if in.model == "" {
			in.model = "imported"
		}
		if t.Settings != nil && t.Settings.PromptSource == "re-rendered" {
			reRendered++
		}
		dataset := opt.Dataset
		if dataset == "" && t.Settings != nil {
			dataset = t.Settings.Dataset
		}
		if dataset == "" {
			dataset = "imported"
		}
		task := core.Task{Dataset: dataset, Objectives: importObjectives(t)}
		if t.Settings != nil && t.Settings.TaskKey != "" {
			task.Key = t.Settings.TaskKey
			if k, ok := taskAt[task.Key]; ok && !sameQuestions(tasks[k], task) {
				task.Key = fmt.Sprintf("%s@line-%d", task.Key, t.Line) // same key, other questions
			}
		} else {
			task.Key = "import/line-" + fmt.Sprint(t.Line)
			if t.Index != "" {
				task.Key = "import/" + t.Index
			}
			if prev, dup := seenIndex[task.Key]; dup {
				return ImportResult{}, fmt.Errorf("%s:%d: index %q already used on line %d", path, t.Line, t.Index, prev)
			}
			seenIndex[task.Key] = t.Line
		}
		if _, ok := taskAt[task.Key]; !ok {
			taskAt[task.Key] = len(tasks)
			tasks = append(tasks, task)
		}
		in.task = task.Key
		infos[i] = in
		if !slices.Contains(policies, in.policy) {
			policies = append(policies, in.policy)
		}
		if !slices.Contains(models, in.model) {
			models = append(models, in.model)
		}
	}
	if opt.Policy == "" && noPolicy > 0 {
		if noPolicy == len(ts) {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%s records no %s, %s or %s (a file of the reference pipeline "+
				"or of an older mem1lab): every rollout is stored as policy %s, model %s; give the policy and model when they differ",
				filepath.Base(path), KeyPolicy, KeyModel, KeySettings, infos[0].policy, infos[0].model))
		} else {
			res.Warnings = append(res.Warnings, fmt.Sprintf("%d of %d lines record no %s: they are stored as policy %s",
				noPolicy, len(ts), KeyPolicy, core.PolicyMEM1))
		}
	}
	if reRendered > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d lines' q was re-rendered at export (rollouts stored before "+
			"mem1lab kept the prompt sent), not the prompt those rollouts sent", reRendered))
	}

	cfg := map[string]any{"source": "mem1-reference-jsonl", "file": path, "scheme": opt.Scheme}
	if len(policies) == 1 {
		cfg["policy"] = policies[0]
	} else {
		cfg["policies"] = policies
	}
	cfg["model"] = models[0]
	if len(models) > 1 {
		cfg["models"] = models
	}
	if len(tasks) > 0 {
		cfg["dataset"] = tasks[0].Dataset
	}
	if agree {
		for k, v := range map[string]string{"mode": shared.Mode, "template": shared.Template, "compose": shared.Compose,
			"source_experiment": shared.Experiment, "source_config_hash": shared.ConfigHash} {
			if v != "" {
				cfg[k] = v
			}
		}
		for k, v := range map[string]int{"max_turns": shared.MaxTurns, "top_k": shared.TopK, "max_tokens": shared.MaxTokens} {
			if v != 0 {
				cfg[k] = v
			}
		}
		for k, v := range map[string]float64{"temperature": shared.Temperature, "top_p": shared.TopP} {
			if v != 0 {
				cfg[k] = v
			}
		}
		if shared.Seed != 0 {
			cfg["seed"] = shared.Seed
		}
	}
	cj, err := json.Marshal(cfg)
	if err != nil {
		return ImportResult{}, err
	}
	sum := sha256.Sum256(cj)
	tags := core.DefaultTags()
	res.Experiment, err = st.ImportExperiment(ctx, storage.ExperimentImport{Name: opt.Name, ConfigJSON: string(cj),
		ConfigHash: hex.EncodeToString(sum[:]), Status: storage.StatusDone, Tasks: tasks},
		func(add func(storage.ImportedRollout) error) error {
			for i, t := range ts {
				in := infos[i]
				r := storage.ImportedRollout{TaskKey: in.task, Policy: in.policy, Model: in.model}
				if t.Failed() {
					res.Failed++
					status := storage.StatusFailed
					if t.Settings != nil && t.Settings.Status == storage.StatusCancelled {
						status = storage.StatusCancelled
					}
					r.Result = storage.RolloutResult{Status: status, Error: t.Error, Score: core.Score{Scheme: opt.Scheme}}
				} else {
					pol, perr := core.PolicyByName(in.policy)
					if perr != nil {
						pol, _ = core.PolicyByName(core.PolicyMEM1)
					}
					turns := importTurns(t, tags, pol)
					res.Turns += len(turns)
					peak, total := 0, 0
					for _, tu := range turns {
						peak = max(peak, tu.Tokens())
						total += tu.Tokens()
					}
					answer, _ := core.FinalAnswer(opt.Scheme, t.Text)
					r.Turns, r.Prompt = turns, t.Question
					// eval.py's figures straight from the line's fields, under the
					// rule of the imported policy.
					pm := t.PaperMetrics(core.PaperRuleFull(in.policy))
					r.Result = storage.RolloutResult{Status: storage.StatusDone, Score: scores[i].Score, Answer: answer,
						PeakTokens: peak, TotalTokens: total, Turns: len(turns), Paper: &pm, RequestPeakTokens: peak,
						TokenSource: core.TokenSourceEstimate}
				}
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

// sharedSettings is the settings every line records, when they agree (task,
// dataset, objectives, prompt source, status and turn budget may differ per
// line; a differing turn budget is dropped). ok is false when no line records
// settings or two lines disagree.
func sharedSettings(ts []Trajectory) (TrajectorySettings, bool) {
	var first *TrajectorySettings
	maxTurns := 0
	for _, t := range ts {
		if t.Settings == nil {
			return TrajectorySettings{}, false
		}
		s := *t.Settings
		s.TaskKey, s.Dataset, s.Objectives, s.PromptSource, s.Status = "", "", 0, "", ""
		mt := s.MaxTurns
		s.MaxTurns = 0
		if first == nil {
			first, maxTurns = &s, mt
			continue
		}
		if s != *first {
			return TrajectorySettings{}, false
		}
		if mt != maxTurns {
			maxTurns = 0
		}
	}
	out := *first
	out.MaxTurns = maxTurns
	return out, true
}

// sameQuestions reports whether two tasks ask the same questions.
func sameQuestions(a, b core.Task) bool {
	if len(a.Objectives) != len(b.Objectives) {
		return false
	}
	for i := range a.Objectives {
		if a.Objectives[i].Question != b.Objectives[i].Question {
			return false
		}
	}
	return true
}

// importObjectives names one objective per Golden_answer entry. An error line
// takes its questions from its "question" field; with no usable
// Golden_answer it has one objective with no gold.
func importObjectives(t Trajectory) []core.Objective {
	q := t.Question
	if t.Failed() {
		q = "questions: " + t.QuestionField
	}
	gold := t.Gold
	if len(gold) == 0 {
		gold = [][]string{nil}
	}
	qs := SplitQuestions(q, len(gold))
	objs := make([]core.Objective, len(gold))
	for k, g := range gold {
		objs[k] = core.Objective{QuestionID: fmt.Sprintf("line%d-%d", t.Line, k+1), Question: qs[k], Gold: g}
	}
	return objs
}

// SplitQuestions finds n questions in a task prompt q. The questions are the
// text after the last "questions:" marker, or else the last "question:", in
// any case (the reference prompt ends "Answer the following questions:
// {questions}", mem1lab's built-in one has "Questions: {questions}"), up to the
// end of that line or the first chat-markup token ("<|"), trimmed. It is split on "; " (how the reference and
// core.JoinQuestions join questions) when that gives n parts, else on ";" with
// each part trimmed when that does. When neither gives n parts, every
// objective gets that text whole (or the whole trimmed prompt when it has no
// marker).
func SplitQuestions(q string, n int) []string {
	text := strings.TrimSpace(q)
	for _, m := range []string{"questions:", "question:"} {
		if i := lastIndexFold(q, m); i >= 0 {
			rest := q[i+len(m):]
			if j := strings.IndexByte(rest, '\n'); j >= 0 {
				rest = rest[:j]
			}
			if j := strings.Index(rest, "<|"); j >= 0 { // chat markup after the questions
				rest = rest[:j]
			}
			text = strings.TrimSpace(rest)
			break
		}
	}
	out := make([]string, n)
	if parts := strings.Split(text, "; "); len(parts) == n {
		copy(out, parts)
		return out
	}
	if parts := strings.Split(text, ";"); len(parts) == n {
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

// lastIndexFold is the byte offset of the last occurrence of the ASCII string
// marker in s, matched without regard to ASCII case, or -1.
func lastIndexFold(s, marker string) int {
	for i := len(s) - len(marker); i >= 0; i-- {
		match := true
		for j := 0; j < len(marker); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != marker[j] {
				match = false
				break
			}
		}
		if match {
			return i
		}
	}
	return -1
}

// importTurns turns a line's steps into stored turns (see ImportTrajectories).
func importTurns(t Trajectory, tags core.Tags, pol core.Policy) []core.Turn {
	turns := make([]core.Turn, 0, len(t.Steps))
	var exchanges []core.Exchange
	for i, s := range t.Steps {
		resp := s.Response
		if !strings.Contains(resp, "<"+tags.Think+">") {
			resp = s.Think + s.Response
		}
		p := tags.Parse(resp)
		tu := core.Turn{Index: i, Response: resp, InternalState: p.InternalState, Action: p.Action, Query: p.Query, Answer: p.Answer}
		if tu.InternalState == "" && strings.TrimSpace(s.Think) != "" {
			st := strings.TrimSpace(s.Think)
			st = strings.TrimPrefix(st, "<"+tags.Think+">")
			st = strings.TrimSuffix(st, "</"+tags.Think+">")
			tu.InternalState = strings.TrimSpace(st)
		}
		open, closing := "<"+tags.Information+">\n", "\n</"+tags.Information+">"
		if inner, ok := strings.CutPrefix(s.Information, open); ok && strings.HasSuffix(inner, closing) {
			// The block as core.Tags.InformationBlock (and the reference) writes it:
			// keep the inner text byte for byte, so the block rebuilds exactly.
			tu.Information = strings.TrimSuffix(inner, closing)
		} else {
			info := strings.TrimSpace(s.Information)
			info = strings.TrimPrefix(info, "<"+tags.Information+">")
			info = strings.TrimSuffix(info, "</"+tags.Information+">")
			tu.Information = strings.Trim(info, "\n")
		}
		c := core.Context{Prompt: t.Question, History: pol.Keep(exchanges)}
		tu.Context = c.Prompt + c.Carried()
		tu.PromptTokens = core.EstimateTokens(tu.Context)
		tu.CompletionTokens = core.EstimateTokens(resp)
		tu.TokenSource = core.TokenSourceEstimate
		tu.Passages = parsePassages(tu.Information)
		turns = append(turns, tu)
		exchanges = append(exchanges, tags.Exchanges([]core.Turn{tu})...)
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
