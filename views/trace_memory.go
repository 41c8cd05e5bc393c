package views

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/mem1lab/mem1lab/core"
)

// memorySection is Trace's view of a memory policy's turn: the memory payload
// that entered the actor's context, what changed in the memory (notes or
// facts added, updated or dropped), and the sub-calls, one collapsible item
// each (role, tokens, latency, request and response text).
type memorySection struct {
	box      *fyne.Container
	summary  *widget.Label
	payload  *widget.RichText
	changes  *widget.RichText
	subcalls *widget.Accordion
}

func newMemorySection() *memorySection {
	m := &memorySection{summary: widget.NewLabel(""), payload: widget.NewRichText(), changes: widget.NewRichText(), subcalls: widget.NewAccordion()}
	m.summary.Wrapping = fyne.TextWrapWord
	m.payload.Wrapping, m.changes.Wrapping = fyne.TextWrapWord, fyne.TextWrapWord
	m.subcalls.MultiOpen = true
	m.box = container.NewVBox(
		widget.NewLabelWithStyle("Memory kept by the policy (sub-calls)", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}), m.summary,
		m.payload, m.changes, m.subcalls)
	m.box.Hide()
	return m
}

// show fills the section for turn t (prev is the turn before, nil for the
// first); a turn without memory hides it.
func (m *memorySection) show(t core.Turn, prev *core.Turn) {
	if t.MemoryState == "" && t.Memory == "" && len(t.SubCalls) == 0 {
		m.box.Hide()
		m.subcalls.Items = nil
		return
	}
	tokens, secs := 0, 0.0
	for _, c := range t.SubCalls {
		tokens += c.Tokens()
		secs += c.Latency.Seconds()
	}
	m.summary.SetText(fmt.Sprintf("%d sub-calls · %d tokens · %.2f s", len(t.SubCalls), tokens, secs))
	setMono(m.payload, orDash(t.Memory, "(no memory entered the context this turn)"))
	prevState := ""
	if prev != nil {
		prevState = prev.MemoryState
	}
	changes := memoryChanges(prevState, t.MemoryState)
	setMono(m.changes, orDash(strings.Join(changes, "\n"), "(memory unchanged)"))
	m.subcalls.Items = nil
	for _, c := range t.SubCalls {
		title := fmt.Sprintf("%d · %s · %s · %d tokens · %.2f s", c.Seq+1, c.Role, c.Endpoint, c.Tokens(), c.Latency.Seconds())
		if c.Error != "" {
			title += " · ⚠ " + c.Error
		}
		text := widget.NewRichText()
		text.Wrapping = fyne.TextWrapWord
		setMono(text, "request:\n"+c.Request+"\n\nresponse:\n"+c.Response)
		m.subcalls.Append(widget.NewAccordionItem(title, text))
	}
	m.subcalls.Refresh()
	m.box.Show()
}

// memoryChanges compares two memory states (core's policy state JSON) and
// lists what changed: "+ " added, "~ " updated, "- " dropped notes or facts
// (by id), and rewritten summaries or memories. Unreadable states give a
// line saying so.
func memoryChanges(prev, cur string) []string {
	type item struct {
		ID      int    `json:"id"`
		Text    string `json:"text"`
		Content string `json:"content"`
		Context string `json:"context"`
		Links   []int  `json:"links"`
	}
	type state struct {
		Facts   []item `json:"facts"`
		Notes   []item `json:"notes"`
		Summary string `json:"summary"`
		Memory  string `json:"memory"`
	}
	var a, b state
	if prev != "" && json.Unmarshal([]byte(prev), &a) != nil || cur != "" && json.Unmarshal([]byte(cur), &b) != nil {
		return []string{"(memory state unreadable)"}
	}
	var out []string
	diff := func(kind string, old, now []item) {
		before := map[int]item{}
		for _, it := range old {
			before[it.ID] = it
		}
		seen := map[int]bool{}
		for _, it := range now {
			seen[it.ID] = true
			o, ok := before[it.ID]
			text := it.Text + it.Content
			switch {
			case !ok:
				out = append(out, fmt.Sprintf("+ %s %d: %s", kind, it.ID, clipLine(text)))
			case o.Text != it.Text || o.Content != it.Content || o.Context != it.Context || fmt.Sprint(o.Links) != fmt.Sprint(it.Links):
				out = append(out, fmt.Sprintf("~ %s %d: %s", kind, it.ID, clipLine(text)))
			}
		}
		var gone []int
		for id := range before {
			if !seen[id] {
				gone = append(gone, id)
			}
		}
		sort.Ints(gone)
		for _, id := range gone {
			out = append(out, fmt.Sprintf("- %s %d: %s", kind, id, clipLine(before[id].Text+before[id].Content)))
		}
	}
	diff("fact", a.Facts, b.Facts)
	diff("note", a.Notes, b.Notes)
	if a.Summary != b.Summary {
		out = append(out, "~ summary rewritten")
	}
	if a.Memory != b.Memory {
		out = append(out, "~ memory rewritten")
	}
	return out
}

func clipLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 120 {
		return string(r[:120]) + "…"
	}
	return s
}
