package experiments

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/mem1lab/mem1lab/core"
)

// referenceMaxTurns is how many turn indices MEM1's eval.py reads from a
// trajectory line (for i in range(10)).
const referenceMaxTurns = 10

// Trajectory is one line of a MEM1 reference-pipeline JSONL file
// (Mem1/inference/generate_rollout.py writes them, eval.py scores them).
type Trajectory struct {
	Line  int    // 1-based line number in the file
	Index string // the "index" field as written (number or string), "" when absent
	// Question is the "q" field: the task prompt.
	Question string
	// Text is what eval.py scores: for i = 0, 1, … (at most 10 indices) the
	// fields t{i} (internal state), r{i} (response) and i{i} (information)
	// concatenated in that order, stopping at the first i with none of the three.
	Text string
	// Turns is the number of turn indices read into Text.
	Turns int
	// Steps holds every turn of the line, fields t{i}, r{i} and i{i} for i = 0, 1,
	// … until the first i with none of the three (not bounded by eval.py's 10).
	Steps []TrajectoryStep
	// Gold holds the accepted aliases per objective. A flat "Golden_answer" list
	// of strings is one objective's aliases (eval.py wraps it the same way).
	// nil on an error line whose Golden_answer is not a list (the reference
	// writes "Unknown" there).
	Gold [][]string
	// Hash is the "hash" field ("" when absent).
	Hash string
	// Error is the "error" field of the reference's error lines: generate_rollout.py
	// writes {"index", "hash", "error", "question", "Golden_answer", "Exact_match":
	// false, "Model_estimated_match": false} when a row raised. Such a line has no
	// q and no turns; it is a failed rollout. "" on ordinary lines.
	Error string
	// QuestionField is the "question" field of an error line ("" when absent).
	QuestionField string
	// Policy and Model are mem1lab's extra keys mem1lab_policy and mem1lab_model
	// (an earlier mem1lab export wrote them as policy and model); "" when the
	// line has none. The reference readers ignore them.
	Policy, Model string
	// Settings is mem1lab's extra key mem1lab_settings; nil when absent.
	Settings *TrajectorySettings
	// Ref holds the same turns as Steps with the presence of each key, as
	// eval.py's token metrics read them (core.RefTurn).
	Ref []core.RefTurn
	// ExactMatch is the "Exact_match" field (generate_rollout.py's lenient
	// count; true/false read as 1/0); HasExactMatch is false when absent.
	ExactMatch    float64
	HasExactMatch bool
	// Memories is the A-MEM "memories" list; nil when the key is absent.
	Memories []string
}

// Failed reports whether t is one of the reference's error lines.
func (t Trajectory) Failed() bool { return t.Error != "" }

// TrajectorySettings is the mem1lab_settings object of a trajectories export:
// the settings a rollout ran under, so that import-trajectories restores them.
// Every field is optional (zero = not recorded); the reference tools ignore the
// key.
type TrajectorySettings struct {
	Experiment  string  `json:"experiment,omitempty"`  // the source experiment's name
	ConfigHash  string  `json:"config_hash,omitempty"` // its config hash
	TaskKey     string  `json:"task_key,omitempty"`    // the rollout's task
	Dataset     string  `json:"dataset,omitempty"`     // the task's dataset
	Objectives  int     `json:"objectives,omitempty"`  // questions in the task
	Mode        string  `json:"mode,omitempty"`        // completions | chat
	MaxTurns    int     `json:"max_turns,omitempty"`   // turn budget resolved for the task
	TopK        int     `json:"top_k,omitempty"`       // passages per search
	Temperature float64 `json:"temperature,omitempty"` // sampling
	TopP        float64 `json:"top_p,omitempty"`
	MaxTokens   int     `json:"max_tokens,omitempty"` // per turn
	Scheme      string  `json:"scheme,omitempty"`     // scoring scheme
	Template    string  `json:"template,omitempty"`   // template file ("" = built-in)
	Compose     string  `json:"compose,omitempty"`
	Seed        int64   `json:"seed,omitempty"`
	// PromptSource says where q came from: "stored" (the prompt the rollout
	// sent, kept when it started) or "re-rendered" (a rollout stored before
	// prompts were kept: the experiment's template rendered again at export).
	PromptSource string `json:"prompt_source,omitempty"`
	// Status is the rollout's status on error lines (failed | cancelled).
	Status string `json:"status,omitempty"`
}

// Extra keys of a trajectories export, ignored by the reference tools.
const (
	KeyPolicy   = "mem1lab_policy"
	KeyModel    = "mem1lab_model"
	KeySettings = "mem1lab_settings"
)

// TrajectoryStep is one turn of a reference-pipeline line: the fields t{i},
// r{i} and i{i} as written ("" when absent or null).
type TrajectoryStep struct {
	Think, Response, Information string
}

// LineScore is one trajectory's score. Failed lines (the reference's error
// lines) have a zero Score and Error set.
type LineScore struct {
	Line  int
	Index string
	Score core.Score
	Error string
}

// ReadTrajectoriesJSONL reads a MEM1 trajectory file. Blank lines are skipped.
// Errors are "path:line: reason": bytes that are not UTF-8, not a JSON
// object, a t/r/i, q, hash, mem1lab_policy or mem1lab_model field that is not
// a string, a mem1lab_settings that is not an object of its fields, or (on
// lines without "error") a missing, empty or malformed Golden_answer. Error
// lines (see Trajectory.Error) are read, not rejected.
func ReadTrajectoriesJSONL(path string) ([]Trajectory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rd := bufio.NewReader(f)
	var out []Trajectory
	for line := 1; ; line++ {
		data, rerr := rd.ReadBytes('\n')
		if _, bad := core.InvalidUTF8Line(string(data)); bad {
			return nil, fmt.Errorf("%s:%d: not valid UTF-8", path, line)
		}
		if len(bytes.TrimSpace(data)) > 0 {
			t, err := parseTrajectory(data)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, line, err)
			}
			t.Line = line
			out = append(out, t)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, rerr)
		}
	}
	return out, nil
}

func parseTrajectory(data []byte) (Trajectory, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return Trajectory{}, fmt.Errorf("not a JSON object: %w", err)
	}
	var t Trajectory
	if raw, ok := obj["q"]; ok {
		if err := json.Unmarshal(raw, &t.Question); err != nil {
			return Trajectory{}, fmt.Errorf("field q: not a string")
		}
	}
	strField := func(key string, dst *string) error {
		if raw, ok := obj[key]; ok && string(raw) != "null" {
			if err := json.Unmarshal(raw, dst); err != nil {
				return fmt.Errorf("field %s: not a string", key)
			}
		}
		return nil
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"hash", &t.Hash}, {"error", &t.Error}, {"question", &t.QuestionField},
		{KeyPolicy, &t.Policy}, {KeyModel, &t.Model}} {
		if f.key == "question" {
			// The reference writes row.get('question', 'Unknown'): keep strings only.
			if raw, ok := obj[f.key]; ok {
				_ = json.Unmarshal(raw, f.dst)
			}
			continue
		}
		if raw, ok := obj[f.key]; ok && f.key == "error" && string(raw) != "null" {
			if json.Unmarshal(raw, f.dst) != nil {
				*f.dst = string(raw) // not a string: keep the JSON text as the message
			}
			continue
		}
		if err := strField(f.key, f.dst); err != nil {
			return Trajectory{}, err
		}
	}
	if t.Policy == "" && t.Model == "" {
		// Earlier mem1lab exports wrote these without the prefix.
		_ = strField("policy", &t.Policy)
		_ = strField("model", &t.Model)
	}
	if raw, ok := obj[KeySettings]; ok && string(raw) != "null" {
		var set TrajectorySettings
		if err := json.Unmarshal(raw, &set); err != nil {
			return Trajectory{}, fmt.Errorf("field %s: %v", KeySettings, err)
		}
		t.Settings = &set
	}
	if raw, ok := obj["error"]; ok && string(raw) != "null" && t.Error == "" {
		t.Error = "error (no message)"
	}
	if raw, ok := obj["index"]; ok && string(raw) != "null" {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			t.Index = s
		} else {
			var n json.Number
			if err := json.Unmarshal(raw, &n); err != nil {
				return Trajectory{}, fmt.Errorf("field index: want a number or a string")
			}
			t.Index = n.String()
		}
	}
	var text bytes.Buffer
	for i := 0; ; i++ {
		present := false
		var step TrajectoryStep
		var ref core.RefTurn
		for _, f := range []struct {
			p   string
			dst *string
			has *bool
		}{{"t", &step.Think, &ref.HasT}, {"r", &step.Response, &ref.HasR}, {"i", &step.Information, &ref.HasI}} {
			key := f.p + strconv.Itoa(i)
			raw, ok := obj[key]
			if !ok {
				continue
			}
			present = true
			*f.has = true
			if string(raw) == "null" {
				continue
			}
			if err := json.Unmarshal(raw, f.dst); err != nil {
				return Trajectory{}, fmt.Errorf("field %s: not a string", key)
			}
		}
		if !present {
			break
		}
		t.Steps = append(t.Steps, step)
		ref.T, ref.R, ref.I = step.Think, step.Response, step.Information
		t.Ref = append(t.Ref, ref)
		if i < referenceMaxTurns {
			text.WriteString(step.Think)
			text.WriteString(step.Response)
			text.WriteString(step.Information)
			t.Turns = i + 1
		}
	}
	t.Text = text.String()
	if raw, ok := obj["Exact_match"]; ok && string(raw) != "null" {
		var b bool
		if json.Unmarshal(raw, &b) == nil {
			t.HasExactMatch = true
			if b {
				t.ExactMatch = 1
			}
		} else if err := json.Unmarshal(raw, &t.ExactMatch); err != nil {
			return Trajectory{}, fmt.Errorf("field Exact_match: want a number or a boolean")
		} else {
			t.HasExactMatch = true
		}
	}
	if raw, ok := obj["memories"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &t.Memories); err != nil {
			return Trajectory{}, fmt.Errorf("field memories: want a list of strings")
		}
		if t.Memories == nil {
			t.Memories = []string{}
		}
	}
	raw, ok := obj["Golden_answer"]
	if t.Failed() {
		// The reference's error lines carry whatever row.get found, often "Unknown".
		if ok {
			if gold, err := parseGold(raw); err == nil {
				t.Gold = gold
			}
		}
		return t, nil
	}
	if !ok {
		return Trajectory{}, errors.New("no Golden_answer field")
	}
	gold, err := parseGold(raw)
	if err != nil {
		return Trajectory{}, fmt.Errorf("field Golden_answer: %w", err)
	}
	t.Gold = gold
	return t, nil
}

// parseGold accepts a list of alias lists (one per objective) or a flat list of
// aliases (one objective).
func parseGold(raw json.RawMessage) ([][]string, error) {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, errors.New("want a list of alias lists or a list of aliases")
	}
	if len(items) == 0 {
		return nil, errors.New("empty list")
	}
	var first string
	if json.Unmarshal(items[0], &first) == nil { // flat: one objective
		aliases := make([]string, len(items))
		for i, it := range items {
			if err := json.Unmarshal(it, &aliases[i]); err != nil {
				return nil, fmt.Errorf("item %d: want a string like item 0", i)
			}
		}
		return [][]string{aliases}, nil
	}
	gold := make([][]string, len(items))
	for i, it := range items {
		if err := json.Unmarshal(it, &gold[i]); err != nil {
			return nil, fmt.Errorf("item %d: want a list of strings", i)
		}
	}
	return gold, nil
}

// ScoreTrajectories scores each trajectory's Text against its Gold under scheme
// (core.ScoreTrajectory) and returns the per-line scores with the mean EM and
// mean F1 over the lines that are not error lines (each line's EM and F1 are
// sums over its objectives, as in MEM1's eval.py; no such line gives means 0).
// Error lines (Trajectory.Failed) get a zero score with LineScore.Error set and
// are left out of the means, as mem1lab leaves failed rollouts out of its
// means (eval.py itself cannot read them: it needs "q"). An unknown scheme is
// an error.
func ScoreTrajectories(ts []Trajectory, scheme string) ([]LineScore, float64, float64, error) {
	if _, err := core.ScoreTrajectory(scheme, "", nil); err != nil {
		return nil, 0, 0, err
	}
	out := make([]LineScore, len(ts))
	var em, f1 float64
	n := 0
	for i, t := range ts {
		if t.Failed() {
			out[i] = LineScore{Line: t.Line, Index: t.Index, Score: core.Score{Scheme: scheme}, Error: t.Error}
			continue
		}
		s, err := core.ScoreTrajectory(scheme, t.Text, t.Gold)
		if err != nil {
			return nil, 0, 0, err
		}
		out[i] = LineScore{Line: t.Line, Index: t.Index, Score: s}
		em += s.EM
		f1 += s.F1
		n++
	}
	if n > 0 {
		em /= float64(n)
		f1 /= float64(n)
	}
	return out, em, f1, nil
}

// LenientExactMatch is the trajectory's lenient exact-match count as eval.py
// reads it: the "Exact_match" field when present; otherwise it is recomputed
// with core.LenientExactMatch from the answer of the last turn (the first
// complete answer block of its response, stripped, as the reference pipeline's
// act takes it; no answer block: the reference's "None").
func (t Trajectory) LenientExactMatch() float64 {
	if t.HasExactMatch {
		return t.ExactMatch
	}
	ans, ok := "", false
	if n := len(t.Steps); n > 0 {
		p := core.DefaultTags().Parse(t.Steps[n-1].Response)
		ans, ok = p.Answer, p.Action == core.ActionAnswer
	}
	return float64(core.LenientExactMatch(ans, ok, t.Gold))
}

// PaperMetrics computes eval.py's token metrics of the trajectory with o200k
// counts: the consolidating rule (compute_peak_token_compression,
// compute_dependency_compression) or, with full, the full-history rule
// (compute_peak_token_non_compression, compute_dependency_non_compression),
// and compute_compression_ratio. The peak is gated on LenientExactMatch; nil
// pointers are eval.py's None.
func (t Trajectory) PaperMetrics(full bool) core.PaperMetrics {
	em := t.LenientExactMatch()
	count := core.MemoCounter(core.O200kTokens)
	m := core.PaperMetrics{ExactMatchLenient: int(em), Full: full}
	var peak, dep int
	var okP, okD bool
	if full {
		peak, okP = core.PeakTokensFullHistory(t.Ref, em, t.Memories, count)
		dep, okD = core.DependencyFullHistory(t.Ref, count)
	} else {
		peak, okP = core.PeakTokensConsolidating(t.Ref, em, t.Memories, count)
		dep, okD = core.DependencyConsolidating(t.Ref, count)
	}
	if okP {
		m.PeakTokens = &peak
	}
	if okD {
		m.Dependency = &dep
	}
	if r, ok := core.CompressionRatio(t.Ref, count); ok {
		m.CompressionRatio = &r
	}
	return m
}

// PaperMeans are eval.py's printed means over trajectories: each figure
// averaged over the trajectories where it is not None (so a peak is averaged
// over trajectories whose lenient Exact_match is not 0). N counts the values
// averaged; a mean with N 0 is eval.py's division by zero, reported as 0.
type PaperMeans struct {
	PeakTokens, Dependency, CompressionRatio    float64
	PeakTokensN, DependencyN, CompressionRatioN int
}

// MeanPaperMetrics averages per-trajectory figures as eval.py does.
func MeanPaperMetrics(ms []core.PaperMetrics) PaperMeans {
	var p PaperMeans
	for _, m := range ms {
		if m.PeakTokens != nil {
			p.PeakTokens += float64(*m.PeakTokens)
			p.PeakTokensN++
		}
		if m.Dependency != nil {
			p.Dependency += float64(*m.Dependency)
			p.DependencyN++
		}
		if m.CompressionRatio != nil {
			p.CompressionRatio += *m.CompressionRatio
			p.CompressionRatioN++
		}
	}
	if p.PeakTokensN > 0 {
		p.PeakTokens /= float64(p.PeakTokensN)
	}
	if p.DependencyN > 0 {
		p.Dependency /= float64(p.DependencyN)
	}
	if p.CompressionRatioN > 0 {
		p.CompressionRatio /= float64(p.CompressionRatioN)
	}
	return p
}
