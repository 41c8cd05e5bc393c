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
	PolicyMEM1   = "mem1"
	PolicyFull   = "full"
	windowPrefix = "window:"
)

// PolicyNames lists the policy names for menus: "mem1", "full" and the pattern
// "window:K", where K is a positive whole number of exchanges.
func PolicyNames() []string {
	return []string{PolicyMEM1, PolicyFull, windowPrefix + "K"}
}

// PolicyByName returns the policy with that name:
//   - "mem1": consolidation (MEM1, arXiv 2506.15841): only the last exchange —
//     the last response (whose think block is the internal state) and its
//     information — is carried;
//   - "full": the whole history (the usual ReAct-style baseline);
//   - "window:K": the last K exchanges, K ≥ 1;
//   - the memory policies of PolicyWith, with default knobs.
//
// Any other name, or a K that is not a positive integer, is an error.
func PolicyByName(name string) (Policy, error) {
	switch name {
	case PolicyMEM1:
		return lastN{name: PolicyMEM1, n: 1}, nil
	case PolicyFull:
		return lastN{name: PolicyFull, n: -1}, nil
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

// lastN keeps the last n exchanges; n < 0 keeps all.
type lastN struct {
	name string
	n    int
}

func (p lastN) Name() string { return p.name }

func (p lastN) Keep(history []Exchange) []Exchange {
	if p.n >= 0 && len(history) > p.n {
		history = history[len(history)-p.n:]
	}
	return slices.Clone(history)
}
