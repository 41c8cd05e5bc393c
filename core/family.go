package core

import (
	"context"
	"fmt"
	"strings"
)

// Task families: the domains MEM1 evaluates (arXiv 2506.15841, §5). A family
// fixes how a task's prompt is rendered, how a response is parsed into an
// action, what the environment does with the action, which tag is the
// internal state (the memory), the stop strings, the turn budget and the
// scoring.
const (
	// FamilyQA is multi-objective retrieval QA (and open-domain web QA, which
	// differs only in its retriever): <think> is the memory, <search> queries
	// an Environment, <answer> ends the rollout; EM/F1 summed over
	// objectives. Agent.Run plays it.
	FamilyQA = "qa"
	// FamilyWebShop is multi-turn web shopping (WebShop, the paper's Table 2):
	// <summary> is the memory and <think> is pruned from carried contexts,
	// the action search[keywords] or click[name] is written inside <answer>
	// and sent to a StepEnvironment, and the final reward in [0, 1] is the
	// score. WebShopAgent.Run plays it.
	FamilyWebShop = "webshop"
)

// Family describes one task family for the screens and the runner.
type Family struct {
	Name string
	// MemoryTag is the tag whose content is the internal state carried as
	// memory; PrunedTags are removed from responses carried into later
	// contexts under the mem1 policy.
	MemoryTag  string
	PrunedTags []string
	// ActionTags are the tags an action is written in.
	ActionTags []string
	// ObservationTag wraps what the environment answers.
	ObservationTag string
	// Metric names the family's score: "EM/F1" (summed over objectives) or
	// "reward" (the environment's final reward in [0, 1]; reported ×100).
	Metric string
}

// Families lists the known families: qa, webshop.
func Families() []Family {
	return []Family{
		{Name: FamilyQA, MemoryTag: "think", ActionTags: []string{"search", "answer"}, ObservationTag: "information", Metric: "EM/F1"},
		{Name: FamilyWebShop, MemoryTag: "summary", PrunedTags: []string{"think"}, ActionTags: []string{"answer"}, ObservationTag: "information", Metric: "reward"},
	}
}

// FamilyByName finds a family; "" is qa. Errors: an unknown name.
func FamilyByName(name string) (Family, error) {
	if name == "" {
		name = FamilyQA
	}
	for _, f := range Families() {
		if f.Name == name {
			return f, nil
		}
	}
	return Family{}, fmt.Errorf("unknown task family %q (want qa or webshop)", name)
}

// AvailableActions is what a step environment offers on its current page
// (AgentGym's GET /available_actions: {has_search_bar, clickables}).
type AvailableActions struct {
	HasSearchBar bool     `json:"has_search_bar"`
	Clickables   []string `json:"clickables"`
}

// String lists the actions as the model writes them: "search[<keywords>]"
// when there is a search bar, then click[name] for each clickable, joined by
// ", ".
func (a AvailableActions) String() string {
	var parts []string
	if a.HasSearchBar {
		parts = append(parts, "search[<keywords>]")
	}
	for _, c := range a.Clickables {
		parts = append(parts, "click["+c+"]")
	}
	return strings.Join(parts, ", ")
}

// Observation is a step environment's page: its text, the instruction of the
// goal, and the actions it offers.
type Observation struct {
	Text        string
	Instruction string
	Actions     AvailableActions
}

// StepResult is what one action did: the new page, the reward (WebShop: 0
// until the purchase, then in [0, 1]) and whether the episode is over.
type StepResult struct {
	Observation
	Reward float64
	Done   bool
}

// StepEnvironment is an episodic environment: Reset starts the episode of
// the task (session) and returns the first page; Step applies one action.
// Implementations return errors for transport and server failures; an
// action the page does not offer is not an error (the page stays, as
// WebShop does).
type StepEnvironment interface {
	Reset(ctx context.Context) (Observation, error)
	Step(ctx context.Context, action string) (StepResult, error)
}
