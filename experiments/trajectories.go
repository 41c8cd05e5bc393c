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
	Gold [][]string
}

// TrajectoryStep is one turn of a reference-pipeline line: the fields t{i},
// r{i} and i{i} as written ("" when absent or null).
type TrajectoryStep struct {
	Think, Response, Information string
}

// LineScore is one trajectory's score.
type LineScore struct {
	Line  int
	Index string
	Score core.Score
}

// ReadTrajectoriesJSONL reads a MEM1 trajectory file. Blank lines are skipped.
// Errors are "path:line: reason": bytes that are not UTF-8, not a JSON object, a t/r/i or q field that is
// not a string, or a missing, empty or malformed Golden_answer.
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
// mean F1 over all lines (each line's EM and F1 are sums over its objectives,
// as in MEM1's eval.py; an empty input gives means 0). An unknown scheme is an
// error.
func ScoreTrajectories(ts []Trajectory, scheme string) ([]LineScore, float64, float64, error) {
	out := make([]LineScore, len(ts))
	var em, f1 float64
	for i, t := range ts {
		s, err := core.ScoreTrajectory(scheme, t.Text, t.Gold)
		if err != nil {
			return nil, 0, 0, err
		}
		out[i] = LineScore{Line: t.Line, Index: t.Index, Score: s}
		em += s.EM
		f1 += s.F1
	}
	if len(ts) > 0 {
		em /= float64(len(ts))
		f1 /= float64(len(ts))
	}
	return out, em, f1, nil
}
