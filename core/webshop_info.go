package core

import (
	"fmt"
	"strconv"
	"strings"
)

// WebShopInformationParts is a stored WebShop turn's information text split
// back into what WebShopAgent.Run joined: the turn-budget hint, the page
// (the observation), the actions the page offers, and on the turn that ended
// the episode the final reward.
type WebShopInformationParts struct {
	// Hint is the BudgetHint line ("[HINT]…[/HINT]"), "" when there is none
	// (the last turn carries the reward instead).
	Hint string
	// Page is the page text, the observation.
	Page string
	// Actions are the offered actions as the model writes them
	// ("search[<keywords>]", "click[name]", …), in the page's order; nil
	// when the text lists none.
	Actions []string
	// Reward is the final reward in [0, 1] when HasReward.
	Reward    float64
	HasReward bool
}

// Markers WebShopInformation and WebShopAgent.Run write into the information.
const (
	webShopActionsMarker = "\nAvailable actions: "
	webShopRewardPrefix  = "Reward: "
)

// SplitWebShopInformation splits info, as WebShopInformation (mid-episode:
// BudgetHint + "\n" + page + "\nAvailable actions: " + actions) or the last
// turn ("Reward: X\n" + page) write it. The actions list is split at each
// ", " that starts another search[…] or click[…] item, so names with commas
// stay whole. Text with neither form is all page. Errors: a "Reward: " line
// whose value is not a number in [0, 1].
func SplitWebShopInformation(info string) (WebShopInformationParts, error) {
	var p WebShopInformationParts
	rest := info
	if strings.HasPrefix(rest, webShopRewardPrefix) {
		line, after, _ := strings.Cut(rest, "\n")
		v := strings.TrimSpace(strings.TrimPrefix(line, webShopRewardPrefix))
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 0 || r > 1 {
			return WebShopInformationParts{}, fmt.Errorf("webshop information: reward %q: want a number in [0, 1]", v)
		}
		p.Reward, p.HasReward, rest = r, true, after
	} else if strings.HasPrefix(rest, "[HINT]") {
		if i := strings.Index(rest, "[/HINT]"); i >= 0 {
			end := i + len("[/HINT]")
			p.Hint, rest = rest[:end], strings.TrimPrefix(rest[end:], "\n")
		}
	}
	if i := strings.LastIndex(rest, webShopActionsMarker); i >= 0 {
		p.Actions = splitWebShopActions(rest[i+len(webShopActionsMarker):])
		rest = rest[:i]
	} else if s, ok := strings.CutPrefix(rest, strings.TrimPrefix(webShopActionsMarker, "\n")); ok {
		p.Actions, rest = splitWebShopActions(s), "" // an empty page
	}
	p.Page = rest
	return p, nil
}

// splitWebShopActions splits AvailableActions.String's list.
func splitWebShopActions(s string) []string {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if strings.HasPrefix(s[i:], ", ") && (strings.HasPrefix(s[i+2:], "click[") || strings.HasPrefix(s[i+2:], "search[")) {
			out = append(out, s[start:i])
			start = i + 2
			i++
		}
	}
	return append(out, s[start:])
}

// Reasoning is the text of response's first complete Think block, trimmed
// ("" when there is none): what Trace shows as the turn's reasoning.
func (t WebShopTags) Reasoning(response string) string {
	if t == (WebShopTags{}) {
		t = DefaultWebShopTags()
	}
	if s, ok := firstBlock(response, t.Think, 0); ok {
		return pyStrip(s)
	}
	return ""
}
