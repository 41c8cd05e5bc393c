// Package assets embeds the app icon and the reference data drawn beside results.
package assets

import (
	_ "embed"

	"fyne.io/fyne/v2"
)

//go:embed icon.png
var iconPNG []byte

// Icon is the application icon (256×256 PNG).
var Icon = fyne.NewStaticResource("icon.png", iconPNG)

// MEM1Table1CSV is Table 1 of "MEM1: Learning to Synergize Memory and Reasoning for
// Efficient Long-Horizon Agents" (Zhou et al., arXiv:2506.15841 v2) as CSV:
// system, objectives, em, f1, peak_tokens, peak_tokens_sd, time_s, time_s_sd,
// collapsed. EM and F1 are summed over objectives; peak tokens are tokens (the
// paper prints ×10²). Cite the paper when drawing these numbers.
//
//go:embed mem1-table1.csv
var MEM1Table1CSV []byte
