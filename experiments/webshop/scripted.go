package webshop

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/mem1lab/mem1lab/core"
)

// ScriptedModelName is the model name stored for the scripted shopper.
const ScriptedModelName = "mem1lab-scripted-shopper"

// Scripted is a scripted WebShop agent (a core.Model, no language model): it
// reads the customer request and the latest page's available actions from
// its context and writes well-formed MEM1 WebShop turns — <think>, then a
// <summary> that carries the request and the options chosen so far (its
// only memory under the mem1 policy), then the action in <answer>:
//   - a search bar: search[the request's words before ", and price"];
//   - a results page: click the first product;
//   - an item page: click the next option value the request names that is
//     not chosen yet, then buy now.
//
// It is for driving rollouts end to end without a GPU, as the QA oracle is.
type Scripted struct{}

func (Scripted) Complete(_ context.Context, c core.Context, stops []string) (core.Completion, error) {
	text := c.Prompt + c.Carried()
	request := between(c.Prompt, "Customer request: ", "\n")
	if request == "" && stops == nil && len(c.History) == 0 {
		return core.Completion{Text: scriptedMemory(c.Prompt), FinishReason: "stop"}, nil
	}
	if request == "" {
		return core.Completion{}, fmt.Errorf("scripted shopper: no \"Customer request:\" line in the prompt")
	}
	var chosen []string
	if s := lastBetween(text, "<summary>", "</summary>"); s != "" {
		if _, after, ok := strings.Cut(s, "chosen: "); ok && strings.TrimSpace(after) != "" {
			chosen = strings.Split(strings.TrimSpace(after), ", ")
		}
	}
	actions := lastBetween(text, "Available actions: ", "\n")
	if actions == "" {
		actions = text[strings.LastIndex(text, "Available actions: ")+len("Available actions: "):]
	}
	var clicks []string
	hasSearch := false
	for _, a := range strings.Split(actions, ", ") {
		a = strings.TrimSpace(strings.Split(a, "\n")[0])
		switch {
		case a == "search[<keywords>]":
			hasSearch = true
		case strings.HasPrefix(a, "click[") && strings.HasSuffix(a, "]"):
			clicks = append(clicks, a[len("click["):len(a)-1])
		}
	}
	var think, action string
	switch {
	case hasSearch:
		kw, _, _ := strings.Cut(request, ", and price")
		kw = strings.TrimPrefix(kw, "i need ")
		think, action = "The page has a search bar; search for the request.", "search["+kw+"]"
		chosen = nil
	case contains(clicks, "buy now"):
		think, action = "All options the request names are chosen; buy.", "click[buy now]"
		for _, cl := range clicks {
			if isOption(cl) && strings.Contains(request, ": "+cl) && !contains(chosen, cl) {
				think, action = "Choose the option "+cl+".", "click["+cl+"]"
				chosen = append(chosen, cl)
				break
			}
		}
	default:
		for _, cl := range clicks {
			if cl != "back to search" && cl != "< prev" && cl != "next >" && cl != "search" {
				think, action = "Open the first result.", "click["+cl+"]"
				break
			}
		}
		if action == "" {
			think, action = "Nothing to open; search again.", "click[back to search]"
		}
	}
	summary := "request: " + request + "; chosen: " + strings.Join(chosen, ", ")
	out := "<think>" + think + "</think>\n<summary>" + summary + "</summary>\n<answer>" + action
	return core.Completion{Text: out, FinishReason: "stop", StopReason: "</answer>"}, nil
}

// scriptedMemory answers a memory policy's sub-call (a prompt without the
// shopper's "Customer request:" line, sent with no stops): the JSON the
// extractor and updater prompts ask for, carrying the last <summary> block
// the prompt shows as the one fact (mem0) or an empty decision (amem); and
// for the summariser and memagent, notes made of that block and the last
// "Available actions:" line, which is all the scripted shopper reads, so it
// can go on from memory alone.
func scriptedMemory(prompt string) string {
	summary := lastBetween(prompt, "<summary>", "</summary>")
	switch {
	case strings.Contains(prompt, `{"facts": [`):
		if summary == "" {
			return `{"facts": []}`
		}
		b, _ := json.Marshal(map[string][]string{"facts": {summary}})
		return string(b)
	case strings.Contains(prompt, `{"memory": [`):
		return `{"memory": []}`
	case strings.Contains(prompt, `{"keywords": [`):
		return `{"keywords": ["shopping"], "context": "a step of a WebShop episode", "tags": ["webshop"]}`
	case strings.Contains(prompt, `{"should_evolve": `):
		return `{"should_evolve": false, "actions": []}`
	}
	notes := "no step yet"
	if summary != "" {
		notes = "<summary>" + summary + "</summary>"
	}
	if actions := lastBetween(prompt, "Available actions: ", "\n"); actions != "" {
		notes += "\nAvailable actions: " + actions
	}
	return notes
}

// Embed makes the scripted shopper an embedder for mem0 and amem: each text
// is a 64-dimensional vector of hashed word counts (FNV-1a of each
// lower-cased word, modulo 64), so texts sharing words are near.
func (Scripted) Embed(_ context.Context, texts []string) ([][]float64, core.Usage, error) {
	out := make([][]float64, len(texts))
	n := 0
	for i, t := range texts {
		v := make([]float64, 64)
		for _, w := range strings.Fields(strings.ToLower(t)) {
			h := fnv.New32a()
			_, _ = h.Write([]byte(w))
			v[h.Sum32()%64]++
			n++
		}
		out[i] = v
	}
	return out, core.Usage{PromptTokens: n}, nil
}

func isOption(cl string) bool {
	switch cl {
	case "back to search", "< prev", "description", "features", "reviews", "buy now":
		return false
	}
	return true
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// between is the trimmed text after the first a in s, up to the next b (or
// the end); "" when s has no a. lastBetween starts at the last a instead.
func between(s, a, b string) string { return textAfter(s, a, b, strings.Index(s, a)) }

func lastBetween(s, a, b string) string { return textAfter(s, a, b, strings.LastIndex(s, a)) }

func textAfter(s, a, b string, i int) string {
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	if j := strings.Index(s, b); j >= 0 {
		s = s[:j]
	}
	return strings.TrimSpace(s)
}
