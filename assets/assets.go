// Package assets embeds the app icon and the reference data drawn beside results.
// It exposes bytes only and imports no Fyne, so headless packages (figures,
// exports) can use it without linking the GUI toolkit; app wraps the icon in a
// fyne.Resource.
package assets

import (
	_ "embed"
)

// IconPNG is the application icon, a 256×256 PNG file named IconName.
//
//go:embed icon.png
var IconPNG []byte

// IconName is the icon's file name, for the resource that wraps IconPNG.
const IconName = "icon.png"

// MEM1Table1CSV is Table 1 of "MEM1: Learning to Synergize Memory and Reasoning for
// Efficient Long-Horizon Agents" (Zhou et al., arXiv:2506.15841 v2) as CSV:
// system, objectives, em, f1, peak_tokens, peak_tokens_sd, time_s, time_s_sd,
// collapsed. EM and F1 are summed over objectives; peak tokens are tokens (the
// paper prints ×10²). Cite the paper when drawing these numbers.
//
//go:embed mem1-table1.csv
var MEM1Table1CSV []byte

// MEM1Table2CSV is the WebShop rows of Table 2 of the same paper
// (arXiv:2506.15841) as CSV after '#' comment lines: system, reward (final
// reward ×100), peak_tokens (tokens; the paper prints ×10³), dependency
// (the paper prints ×10⁶), time_s (seconds per trajectory). Only the rows
// transcribed in the file; cite the paper when drawing these numbers.
//
//go:embed mem1-table2.csv
var MEM1Table2CSV []byte
