package views

import (
	"fmt"
	"image/color"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"
)

// textView shows read-only monospace text (a rendered prompt) in the theme's
// normal foreground colour, wrapped and scrolled, at least rows lines tall.
// Text is what it shows.
type textView struct {
	Text    string
	rich    *widget.RichText
	content fyne.CanvasObject
}

func newTextView(rows int) *textView {
	v := &textView{rich: widget.NewRichText()}
	v.rich.Wrapping = fyne.TextWrapWord
	room := canvas.NewRectangle(color.Transparent)
	room.SetMinSize(fyne.NewSize(0, float32(rows)*20))
	v.content = container.NewStack(room, container.NewVScroll(v.rich))
	return v
}

// SetText replaces the text shown.
func (v *textView) SetText(s string) {
	v.Text = s
	v.rich.Segments = []widget.RichTextSegment{&widget.TextSegment{Text: s, Style: widget.RichTextStyleCodeBlock}}
	v.rich.Refresh()
}

// hint is a form field's explanation under it: wrapped, never cut off (a
// FormItem's HintText is one unwrapped line).
func hint(field fyne.CanvasObject, text string) fyne.CanvasObject {
	l := widget.NewLabel(text)
	l.Wrapping = fyne.TextWrapWord
	l.Importance = widget.LowImportance
	l.TextStyle.Italic = true
	return container.NewVBox(field, l)
}

// plural is "1 experiment" or "3 experiments": n with the word that agrees.
func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
