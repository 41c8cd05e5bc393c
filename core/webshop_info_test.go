package core

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSplitWebShopInformationRoundTrip: what WebShopInformation joins,
// SplitWebShopInformation takes apart again, names with commas included.
func TestSplitWebShopInformationRoundTrip(t *testing.T) {
	o := Observation{Text: "WebShop [SEP] Results [SEP] B01 [SEP] Shoes, black",
		Actions: AvailableActions{HasSearchBar: true, Clickables: []string{"back to search", "shoes, black, size 8", "< prev"}}}
	p, err := SplitWebShopInformation(WebShopInformation(3, o))
	require.NoError(t, err)
	assert.Equal(t, BudgetHint(3), p.Hint)
	assert.Equal(t, o.Text, p.Page)
	assert.Equal(t, []string{"search[<keywords>]", "click[back to search]", "click[shoes, black, size 8]", "click[< prev]"}, p.Actions)
	assert.False(t, p.HasReward)

	p, err = SplitWebShopInformation(WebShopInformation(1, Observation{Text: "page\nwith two lines"}))
	require.NoError(t, err)
	assert.Equal(t, BudgetHint(1), p.Hint)
	assert.Equal(t, "page\nwith two lines", p.Page)
	assert.Nil(t, p.Actions, "a page offering nothing lists no actions")
}

func TestSplitWebShopInformationFinalTurn(t *testing.T) {
	p, err := SplitWebShopInformation("Reward: 0.75\nThank you for shopping [SEP] Purchased")
	require.NoError(t, err)
	assert.True(t, p.HasReward)
	assert.InDelta(t, 0.75, p.Reward, 1e-12)
	assert.Equal(t, "Thank you for shopping [SEP] Purchased", p.Page)
	assert.Empty(t, p.Hint)
	assert.Nil(t, p.Actions)

	for _, bad := range []string{"Reward: lots\npage", "Reward: 1.5\npage", "Reward: -0.1\npage"} {
		_, err := SplitWebShopInformation(bad)
		assert.ErrorContains(t, err, "want a number in [0, 1]", bad)
	}
}

func TestSplitWebShopInformationPlainText(t *testing.T) {
	p, err := SplitWebShopInformation("Doc 1(Title: \"T\") text")
	require.NoError(t, err)
	assert.Equal(t, WebShopInformationParts{Page: "Doc 1(Title: \"T\") text"}, p, "text of neither form is all page")
}

func TestWebShopReasoning(t *testing.T) {
	tags := DefaultWebShopTags()
	r := "<think> the black ones are cheapest </think><summary>want black shoes</summary><answer>click[b01]</answer>"
	assert.Equal(t, "the black ones are cheapest", tags.Reasoning(r))
	assert.Equal(t, "the black ones are cheapest", WebShopTags{}.Reasoning(r), "zero tags are the defaults")
	assert.Empty(t, tags.Reasoning("<summary>s</summary><answer>click[x]</answer>"))
	assert.Empty(t, tags.Reasoning("<think>never closed"))
}
