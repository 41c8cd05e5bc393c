package core

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Policy decides which finished exchanges go into the next turn's context.
// Keep receives every exchange of the rollout so far, oldest first, and returns
// those to carry, oldest first. It must not modify history.
type Policy interface {
	Name() string
	Keep(history []Exchange) []Exchange
}

// Policy names understood by PolicyByName.
const (
	PolicyMEM1 = "mem1"
	// PolicyFull is the full-history baseline laid out as MEM1's reference ran
	// it (inference_type "normal"): see PolicyByName.
	PolicyFull = "full"
	// PolicyFullMessages is the full history sent as alternating chat messages
	// with the last turn stopping only at the closing answer tag (mem1lab's
	// layout before it followed the reference).
	PolicyFullMessages = "full:messages"
	windowPrefix       = "window:"
)

// PolicyNames lists the policy names for menus: "mem1", "full",
// "full:messages" and the pattern "window:K", where K is a positive whole
// number of exchanges.
func PolicyNames() []string {
	return []string{PolicyMEM1, PolicyFull, PolicyFullMessages, windowPrefix + "K"}
}

// OneMessage reports whether p wants its context sent as ONE user turn: the
// prompt followed by every kept response and information block, concatenated
// (Context.OneMessage). Only "full" does.
func OneMessage(p Policy) bool {
	o, ok := p.(interface{ OneMessage() bool })
	return ok && o.OneMessage()
}

// SearchStopOnLastTurn reports whether p keeps the closing search tag among
// the stops of the last turn (Tags.Stops). Only "full" does: MEM1's reference
// sends the same two stops on every turn of its "normal" pipeline
// (Mem1/inference/models.py, VLLMOpenAIClient.generate_response).
func SearchStopOnLastTurn(p Policy) bool {
	o, ok := p.(interface{ SearchStopOnLastTurn() bool })
	return ok && o.SearchStopOnLastTurn()
}

// PolicyByName returns the policy with that name:
//   - "mem1": consolidation (MEM1, arXiv 2506.15841): only the last exchange —
//     the last response (whose think block is the internal state) and its
//     information — is carried;
//   - "full": the whole history, as MEM1's reference runs its full-history
//     baseline (Mem1/inference/data_pipelines.py, inference_type "normal"):
//     ONE growing user message, prompt + r0 + i0 + r1 + i1 + …, with the
//     stops "</search>" and "</answer>" on every turn, the last included
//     (Mem1/inference/models.py, VLLMOpenAIClient.generate_response). In
//     completions mode that one user message goes into the user turn of the
//     Qwen prefix and the assistant turn opens empty, which is what a vLLM
//     chat endpoint renders from the reference's request;
//   - "full:messages": the whole history as alternating assistant/user
//     messages (information as user turns; the carried text continues the open
//     assistant turn in completions mode), last turn stopping at "</answer>"
//     only;
//   - "window:K": the last K exchanges, K ≥ 1;
//   - the memory policies of PolicyWith, with default knobs.
//
// Any other name, or a K that is not a positive integer, is an error.
func PolicyByName(name string) (Policy, error) {
	switch name {
	case PolicyMEM1:
		return lastN{name: PolicyMEM1, n: 1}, nil
	case PolicyFull:
		return lastN{name: PolicyFull, n: -1, oneMessage: true, searchStopLast: true}, nil
	case PolicyFullMessages:
		return lastN{name: PolicyFullMessages, n: -1}, nil
	}
	if rest, ok := strings.CutPrefix(name, windowPrefix); ok {
		k, err := strconv.Atoi(rest)
		if err != nil || k < 1 {
			return nil, fmt.Errorf("policy %q: K must be a positive integer", name)
		}
		return lastN{name: name, n: k}, nil
	}
	if p, ok, err := memoryPolicyByName(name); ok {
		return p, err
	}
	return nil, fmt.Errorf("unknown policy %q (known: %s)", name, strings.Join(append(PolicyNames(), MemoryPolicyNames()...), ", "))
}

// lastN keeps the last n exchanges; n < 0 keeps all. oneMessage and
// searchStopLast select the reference's full-history layout.
type lastN struct {
	name           string
	n              int
	oneMessage     bool
	searchStopLast bool
}

func (p lastN) Name() string { return p.name }

func (p lastN) OneMessage() bool { return p.oneMessage }

func (p lastN) SearchStopOnLastTurn() bool { return p.searchStopLast }

func (p lastN) Keep(history []Exchange) []Exchange {
	if p.n >= 0 && len(history) > p.n {
		history = history[len(history)-p.n:]
	}
	return slices.Clone(history)
}
