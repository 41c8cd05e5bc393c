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
// Errors are "path:line: reason": not a JSON object, a t/r/i, q, hash,
// mem1lab_policy or mem1lab_model field that is not a string, a
// mem1lab_settings that is not an object of its fields, or (on lines without
// "error") a missing, empty or malformed Golden_answer. Error lines (see
// Trajectory.Error) are read, not rejected.
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
		for _, f := range []struct {
			p   string
			dst *string
		}{{"t", &step.Think}, {"r", &step.Response}, {"i", &step.Information}} {
			key := f.p + strconv.Itoa(i)
			raw, ok := obj[key]
			if !ok {
				continue
			}
			present = true
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
		if i < referenceMaxTurns {
			text.WriteString(step.Think)
			text.WriteString(step.Response)
			text.WriteString(step.Information)
			t.Turns = i + 1
		}
	}
	t.Text = text.String()
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
