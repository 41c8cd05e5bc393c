package views

import (
	"fmt"
	"strconv"
	"strings"

	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"github.com/mem1lab/mem1lab/experiments"
)

// summaryChoice is the Policies check box of summary:K; K comes from the
// memory form's window entry.
const summaryChoice = "summary:K"

// memoryForm is New experiment's row for the memory policies: where their
// sub-calls and embeddings go (empty = the agent's own endpoint) and their
// knobs (experiments.MemoryConfig).
type memoryForm struct {
	url, model, embURL, embModel        *widget.Entry
	k, window, summaryTokens, memTokens *widget.Entry
	evolve                              *widget.Check
	loaded                              *experiments.MemoryConfig // keys the form does not show
}

func newMemoryForm(def *experiments.MemoryConfig) *memoryForm {
	entry := func(place string) *widget.Entry {
		e := widget.NewEntry()
		e.SetPlaceHolder(place)
		return e
	}
	f := &memoryForm{
		url: entry("memory URL"), model: entry("memory model"),
		embURL: entry("embeddings URL"), embModel: entry("embeddings model"),
		k: entry("k (3)"), window: entry("summary K"), summaryTokens: entry("summary budget"),
		memTokens: entry("memagent tokens"), evolve: widget.NewCheck("amem evolution", nil),
	}
	f.set(def, 2)
	return f
}

func (f *memoryForm) item() *widget.FormItem {
	return widget.NewFormItem("Memory policies", hint(container.NewVBox(
		container.NewGridWithColumns(2, f.url, f.model),
		container.NewGridWithColumns(2, f.embURL, f.embModel),
		container.NewGridWithColumns(2, f.k, f.window),
		container.NewGridWithColumns(2, f.summaryTokens, f.memTokens),
		f.evolve), "empty URLs: the agent's endpoint"))
}

// set shows m (nil = defaults) and summary:K's K.
func (f *memoryForm) set(m *experiments.MemoryConfig, window int) {
	f.loaded = m
	if m == nil {
		m = &experiments.MemoryConfig{}
	}
	num := func(v int) string {
		if v == 0 {
			return ""
		}
		return strconv.Itoa(v)
	}
	f.url.SetText(m.URL)
	f.model.SetText(m.Model)
	f.embURL.SetText(m.EmbeddingsURL)
	f.embModel.SetText(m.EmbeddingsModel)
	f.k.SetText(num(m.K))
	f.summaryTokens.SetText(num(m.SummaryTokens))
	f.memTokens.SetText(num(m.MemoryTokens))
	f.window.SetText(strconv.Itoa(window))
	f.evolve.SetChecked(m.Evolve == nil || *m.Evolve)
}

// policies maps the checked choices to policy names (summary:K with the K
// entry); a loaded summary:N sets the entry through setPolicies.
func (f *memoryForm) policies(checked []string, bad func(string, ...any)) []string {
	out := make([]string, 0, len(checked))
	for _, c := range checked {
		if c == summaryChoice {
			k, err := strconv.Atoi(strings.TrimSpace(f.window.Text))
			if err != nil || k < 0 {
				bad("Memory policies: summary K %q is not a whole number ≥ 0", f.window.Text)
				continue
			}
			c = fmt.Sprintf("summary:%d", k)
		}
		out = append(out, c)
	}
	return out
}

// checks is the inverse of policies: summary:N checks summary:K and shows N.
func (f *memoryForm) checks(policies []string) []string {
	out := make([]string, 0, len(policies))
	for _, p := range policies {
		if rest, ok := strings.CutPrefix(p, "summary:"); ok {
			f.window.SetText(rest)
			p = summaryChoice
		}
		out = append(out, p)
	}
	return out
}

// config reads the row into a MemoryConfig; nil when every field is at its
// default and none was loaded (so the config hash stays as without it).
func (f *memoryForm) config(bad func(string, ...any)) *experiments.MemoryConfig {
	m := experiments.MemoryConfig{}
	if f.loaded != nil {
		m = *f.loaded
	}
	num := func(label string, e *widget.Entry) int {
		s := strings.TrimSpace(e.Text)
		if s == "" {
			return 0
		}
		v, err := strconv.Atoi(s)
		if err != nil || v < 0 {
			bad("Memory policies: %s %q is not a whole number ≥ 0", label, s)
			return 0
		}
		return v
	}
	m.URL, m.Model = strings.TrimSpace(f.url.Text), strings.TrimSpace(f.model.Text)
	m.EmbeddingsURL, m.EmbeddingsModel = strings.TrimSpace(f.embURL.Text), strings.TrimSpace(f.embModel.Text)
	m.K, m.SummaryTokens, m.MemoryTokens = num("k", f.k), num("summary budget", f.summaryTokens), num("memagent tokens", f.memTokens)
	m.Evolve = nil
	if !f.evolve.Checked {
		off := false
		m.Evolve = &off
	} else if f.loaded != nil && f.loaded.Evolve != nil {
		on := true
		m.Evolve = &on
	}
	if f.loaded == nil && m == (experiments.MemoryConfig{}) {
		return nil
	}
	return &m
}
