package views

import (
	"strings"
	"unicode"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"github.com/sergi/go-diff/diffmatchpatch"

	"github.com/mem1lab/mem1lab/core"
)

// diffOp says what happened to a run of words between two internal states.
type diffOp int

const (
	diffKept    diffOp = iota // in both states
	diffAdded                 // only in the newer state
	diffDropped               // only in the older state
)

func (o diffOp) String() string {
	switch o {
	case diffAdded:
		return "added"
	case diffDropped:
		return "dropped"
	}
	return "kept"
}

// diffPart is one run of text of a word diff.
type diffPart struct {
	Op   diffOp
	Text string
}

// splitWords cuts s into tokens: runs of non-space characters and runs of
// spaces, so that joining the tokens gives s back.
func splitWords(s string) []string {
	var out []string
	start := 0
	for i, r := range s {
		if i == start {
			continue
		}
		prev, _ := lastRune(s[start:i])
		if unicode.IsSpace(prev) != unicode.IsSpace(r) {
			out = append(out, s[start:i])
			start = i
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}

func lastRune(s string) (rune, bool) {
	rs := []rune(s)
	if len(rs) == 0 {
		return 0, false
	}
	return rs[len(rs)-1], true
}

// wordDiff is the word-level diff of the internal state of turn t (cur) against
// turn t−1 (prev): kept, added and dropped runs in reading order (a dropped run
// comes before the added run that replaced it). Words are runs of non-space
// characters; whitespace runs are tokens too, so the kept and added parts joined
// give cur and the kept and dropped parts joined give prev. The diff is
// Myers' algorithm (diffmatchpatch) over words mapped to single runes, with the
// semantic clean-up that merges tiny equalities.
func wordDiff(prev, cur string) []diffPart {
	index := map[string]rune{}
	encode := func(toks []string) []rune {
		rs := make([]rune, len(toks))
		for i, t := range toks {
			r, ok := index[t]
			if !ok {
				// Private-use and beyond: any rune works, it is never printed.
				r = rune(0xE000 + len(index))
				if r >= 0xF900 {
					r = rune(0xF0000 + len(index) - (0xF900 - 0xE000))
				}
				index[t] = r
			}
			rs[i] = r
		}
		return rs
	}
	pt, ct := splitWords(prev), splitWords(cur)
	pr, cr := encode(pt), encode(ct)
	words := make(map[rune]string, len(index))
	for w, r := range index {
		words[r] = w
	}
	dmp := diffmatchpatch.New()
	dmp.DiffTimeout = 0
	diffs := dmp.DiffMainRunes(pr, cr, false)
	diffs = dmp.DiffCleanupSemantic(diffs)
	var out []diffPart
	for _, d := range diffs {
		var b strings.Builder
		for _, r := range d.Text {
			b.WriteString(words[r])
		}
		op := diffKept
		switch d.Type {
		case diffmatchpatch.DiffInsert:
			op = diffAdded
		case diffmatchpatch.DiffDelete:
			op = diffDropped
		}
		if n := len(out); n > 0 && out[n-1].Op == op {
			out[n-1].Text += b.String()
			continue
		}
		out = append(out, diffPart{Op: op, Text: b.String()})
	}
	return out
}

// diffStyles are the design doc's diff colours: kept normal, added green,
// dropped red and struck through. All monospace, inline.
var diffStyles = map[diffOp]widget.RichTextStyle{
	diffKept: {ColorName: theme.ColorNameForeground, Inline: true, SizeName: theme.SizeNameText,
		TextStyle: fyne.TextStyle{Monospace: true}},
	diffAdded: {ColorName: theme.ColorNameSuccess, Inline: true, SizeName: theme.SizeNameText,
		TextStyle: fyne.TextStyle{Monospace: true}},
	diffDropped: {ColorName: theme.ColorNameError, Inline: true, SizeName: theme.SizeNameText,
		TextStyle: fyne.TextStyle{Monospace: true, Strikethrough: true}},
}

// diffSegments renders a word diff as RichText segments, one per part, with
// diffStyles. Line breaks inside a part start new lines.
//
// A dropped run directly followed by an added run with no space between them
// (a replaced word) gets a space between the two, so they read apart.
func diffSegments(parts []diffPart) []widget.RichTextSegment {
	var segs []widget.RichTextSegment
	for i, p := range parts {
		if i > 0 && p.Op == diffAdded && parts[i-1].Op == diffDropped &&
			!endsWithSpace(parts[i-1].Text) && !startsWithSpace(p.Text) {
			segs = append(segs, &widget.TextSegment{Text: " ", Style: diffStyles[diffKept]})
		}
		lines := strings.Split(p.Text, "\n")
		for i, l := range lines {
			if i > 0 {
				// A non-inline empty segment ends the line.
				segs = append(segs, &widget.TextSegment{Text: "", Style: widget.RichTextStyle{Inline: false,
					ColorName: theme.ColorNameForeground, SizeName: theme.SizeNameText, TextStyle: fyne.TextStyle{Monospace: true}}})
			}
			if l != "" {
				segs = append(segs, &widget.TextSegment{Text: l, Style: diffStyles[p.Op]})
			}
		}
	}
	return segs
}

// diffCounts is how many words each op holds.
func diffCounts(parts []diffPart) (kept, added, dropped int) {
	for _, p := range parts {
		n := len(strings.Fields(p.Text))
		switch p.Op {
		case diffKept:
			kept += n
		case diffAdded:
			added += n
		case diffDropped:
			dropped += n
		}
	}
	return
}

// factsCarried reports, for objective k, whether one of its gold aliases occurs
// in state, compared after the scheme's normalisation (mem1: lower-cased,
// punctuation as spaces) as whole words.
func factsCarried(state string, objs []core.Objective) []bool {
	norm := func(s string) string {
		n, _ := core.Normalize(core.SchemeMEM1, s)
		return " " + n + " "
	}
	st := norm(state)
	out := make([]bool, len(objs))
	for k, o := range objs {
		for _, g := range o.Gold {
			if g := norm(g); strings.TrimSpace(g) != "" && strings.Contains(st, g) {
				out[k] = true
				break
			}
		}
	}
	return out
}

func startsWithSpace(s string) bool {
	for _, r := range s {
		return unicode.IsSpace(r)
	}
	return false
}

func endsWithSpace(s string) bool {
	r, ok := lastRune(s)
	return ok && unicode.IsSpace(r)
}
