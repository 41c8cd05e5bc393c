package core

import (
	"errors"
	"fmt"
	"strings"
)

// Tags are the names of the four tags of MEM1's protocol, without angle
// brackets: the model's internal state, its search query, the environment's
// information and its final answer.
type Tags struct {
	Think       string `json:"think"`
	Search      string `json:"search"`
	Information string `json:"information"`
	Answer      string `json:"answer"`
}

// DefaultTags returns MEM1's names: think, search, information, answer.
func DefaultTags() Tags {
	return Tags{Think: "think", Search: "search", Information: "information", Answer: "answer"}
}

// Validate reports an error when a name is empty, contains anything but ASCII
// letters, digits, '_' or '-', or two names are equal.
func (t Tags) Validate() error {
	named := []struct{ role, name string }{
		{"think", t.Think}, {"search", t.Search}, {"information", t.Information}, {"answer", t.Answer},
	}
	seen := map[string]string{}
	var errs []error
	for _, n := range named {
		if n.name == "" {
			errs = append(errs, fmt.Errorf("tags: %s tag name is empty", n.role))
			continue
		}
		for i := 0; i < len(n.name); i++ {
			if !isTagNameByte(n.name[i]) {
				errs = append(errs, fmt.Errorf("tags: %s tag name %q: only ASCII letters, digits, '_' and '-' are allowed", n.role, n.name))
				break
			}
		}
		if other, dup := seen[n.name]; dup {
			errs = append(errs, fmt.Errorf("tags: %s and %s tags are both named %q", other, n.role, n.name))
		}
		seen[n.name] = n.role
	}
	return errors.Join(errs...)
}

func isTagNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func openTag(name string) string  { return "<" + name + ">" }
func closeTag(name string) string { return "</" + name + ">" }

// Parsed is what one response contains.
type Parsed struct {
	// InternalState is the text of the first complete think block, trimmed;
	// "" when there is none.
	InternalState string
	// Action is the first complete search or answer block; ActionNone when the
	// response has neither.
	Action Action
	// Query is the trimmed search text when Action is ActionSearch, else "".
	Query string
	// Answer is the trimmed answer text when Action is ActionAnswer, else "".
	Answer string
}

// Parse reads a response. Behaviour (MEM1, Mem1/train/rollout/llm_agent/
// generation_think.py postprocess_predictions and extract_summary):
//   - the action is the complete <search>…</search> or <answer>…</answer> block
//     that starts first in the text; a block's content runs to the first closing
//     tag of the same name (so "<search>a<search>b</search>" queries
//     "a<search>b"); an opening tag with no closing tag after it is skipped;
//   - the internal state is the first complete think block. Later think blocks
//     are ignored, as MEM1's pipelines keep only the first;
//   - contents are trimmed of surrounding whitespace, so Query and Answer are
//     always substrings of response.
//
// Parse never panics; it works on bytes, so invalid UTF-8 passes through.
func (t Tags) Parse(response string) Parsed {
	var p Parsed
	if s, ok := firstBlock(response, t.Think, 0); ok {
		p.InternalState = pyStrip(s)
	}
	action, content := firstAction(response, t.Search, t.Answer)
	switch action {
	case ActionSearch:
		p.Action, p.Query = ActionSearch, pyStrip(content)
	case ActionAnswer:
		p.Action, p.Answer = ActionAnswer, pyStrip(content)
	}
	return p
}

// firstBlock returns the content of the first <name>…</name> starting at or
// after from whose closing tag exists.
func firstBlock(s, name string, from int) (string, bool) {
	if name == "" {
		return "", false
	}
	open, cls := openTag(name), closeTag(name)
	i := indexFrom(s, open, from)
	if i < 0 {
		return "", false
	}
	start := i + len(open)
	j := indexFrom(s, cls, start)
	if j < 0 {
		// No closing tag after the first opening tag means none after any later one.
		return "", false
	}
	return s[start:j], true
}

// firstAction finds the leftmost complete search or answer block.
func firstAction(s, search, answer string) (Action, string) {
	type kind struct {
		action    Action
		open, cls string
		dead      bool
	}
	kinds := []*kind{
		{action: ActionSearch, open: openTag(search), cls: closeTag(search), dead: search == ""},
		{action: ActionAnswer, open: openTag(answer), cls: closeTag(answer), dead: answer == ""},
	}
	pos := 0
	for {
		var best *kind
		bestAt := -1
		for _, k := range kinds {
			if k.dead {
				continue
			}
			at := indexFrom(s, k.open, pos)
			if at < 0 {
				k.dead = true
				continue
			}
			if bestAt < 0 || at < bestAt {
				best, bestAt = k, at
			}
		}
		if best == nil {
			return ActionNone, ""
		}
		start := bestAt + len(best.open)
		if end := indexFrom(s, best.cls, start); end >= 0 {
			return best.action, s[start:end]
		}
		// This kind is never closed from here on; try the other one.
		best.dead = true
		pos = bestAt + 1
	}
}

// indexFrom is strings.Index(s[from:], sub) shifted back to s's offsets.
func indexFrom(s, sub string, from int) int {
	if from > len(s) {
		return -1
	}
	i := strings.Index(s[from:], sub)
	if i < 0 {
		return -1
	}
	return from + i
}

// Stops returns the stop strings for a turn: the closing search and answer
// tags, or only the closing answer tag on the last turn (MEM1 inference stops
// generation at "</search>" and "</answer>").
func (t Tags) Stops(last bool) []string {
	if last {
		return []string{closeTag(t.Answer)}
	}
	return []string{closeTag(t.Search), closeTag(t.Answer)}
}

// InformationBlock wraps inner (the budget hint and rendered passages, see
// InformationText) into the block appended right after a search response:
// "<information>\n" + inner + "\n</information>", with no separator before it.
// This is the spacing of MEM1's inference pipeline (Mem1/inference/
// data_pipelines.py, Mem1Pipeline.run_llm_loop).
func (t Tags) InformationBlock(inner string) string {
	return openTag(t.Information) + "\n" + inner + "\n" + closeTag(t.Information)
}

// Exchanges rebuilds the exchanges carried into later contexts from stored
// turns: each turn's response, and InformationBlock(turn.Information) when the
// turn has information ("" otherwise). The turn loop builds its exchanges the
// same way, so a resumed rollout sees the same contexts.
func (t Tags) Exchanges(turns []Turn) []Exchange {
	out := make([]Exchange, len(turns))
	for i, tu := range turns {
		out[i] = Exchange{Response: tu.Response}
		if tu.Information != "" {
			out[i].Information = t.InformationBlock(tu.Information)
		}
	}
	return out
}

// InvalidActionNote is a ready-made text for AgentConfig.InvalidNote, written
// with these tag names. MEM1 itself ends the rollout on an invalid action.
func (t Tags) InvalidActionNote() string {
	return "Your last reply had no complete action. End each reply with either " +
		openTag(t.Search) + "query" + closeTag(t.Search) + " or " +
		openTag(t.Answer) + "answers" + closeTag(t.Answer) + "."
}

// RestoreClosingTag puts back the stop string that ended generation, since
// OpenAI-compatible servers cut it from the text:
//   - finishReason "length": text is returned unchanged (generation ran out of
//     tokens, nothing fired);
//   - stopReason is one of stops: it is appended (unless text already ends with
//     it), as MEM1's client does with vLLM's stop_reason;
//   - otherwise, when finishReason is "stop", the most recent opening tag in
//     text whose closing tag is one of stops and that is not closed after it gets
//     its closing tag appended (servers that do not say which stop fired).
//
// Anything else returns text unchanged.
func RestoreClosingTag(text, finishReason, stopReason string, stops []string) string {
	if finishReason == "length" {
		return text
	}
	for _, s := range stops {
		if s != "" && s == stopReason {
			if strings.HasSuffix(text, s) {
				return text
			}
			return text + s
		}
	}
	if finishReason != "stop" {
		return text
	}
	bestAt, best := -1, ""
	for _, s := range stops {
		if len(s) < 4 || !strings.HasPrefix(s, "</") || !strings.HasSuffix(s, ">") {
			continue
		}
		open := "<" + s[2:]
		at := strings.LastIndex(text, open)
		if at < 0 || strings.Contains(text[at+len(open):], s) {
			continue
		}
		if at > bestAt {
			bestAt, best = at, s
		}
	}
	return text + best
}
