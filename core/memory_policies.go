package core

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Memory policy names (see PolicyWith).
const (
	PolicyClosedBook = "closed-book"
	PolicyReSum      = "resum"
	PolicyMemAgent   = "memagent"
	PolicyMem0       = "mem0"
	PolicyMem0Add    = "mem0:add-only"
	PolicyAMem       = "amem"
	summaryPrefix    = "summary:"
)

// MemoryPolicyNames lists the memory policy names for menus.
func MemoryPolicyNames() []string {
	return []string{PolicyClosedBook, summaryPrefix + "K", PolicyReSum, PolicyMemAgent, PolicyMem0, PolicyMem0Add, PolicyAMem}
}

// MemoryOptions are the knobs of the memory policies; zero fields take the
// defaults given.
type MemoryOptions struct {
	// K is how many memories (amem notes, mem0 facts) enter the actor's
	// context; 0 = 3 (MEM1's AMemClient retrieves k = 3).
	K int
	// NoEvolve turns off amem's memory evolution (the second LLM call that
	// links a new note to its neighbours and updates them).
	NoEvolve bool
	// Similar is how many stored facts mem0 compares each new fact with; 0 = 5.
	Similar int
	// SummaryTokens is the context budget (EstimateTokens) above which
	// summary:K and resum fold exchanges into the summary; 0 = fold every
	// exchange as soon as it leaves summary:K's window, and at every turn for
	// resum.
	SummaryTokens int
	// SummaryEvery, when set, folds at every SummaryEvery-th turn instead
	// (turn index a multiple of it), whatever the context's size.
	SummaryEvery int
	// MemoryTokens bounds memagent's memory; 0 = 1024.
	MemoryTokens int
}

func (o MemoryOptions) k() int {
	if o.K > 0 {
		return o.K
	}
	return 3
}

func (o MemoryOptions) similar() int {
	if o.Similar > 0 {
		return o.Similar
	}
	return 5
}

func (o MemoryOptions) memoryTokens() int {
	if o.MemoryTokens > 0 {
		return o.MemoryTokens
	}
	return 1024
}

// PolicyWith is PolicyByName with the memory policies' knobs:
//   - "closed-book": no retrieval; searches get an information block with the
//     budget hint and ClosedBookNote, the whole history is kept;
//   - "summary:K": prompt + running summary + the last K exchanges; exchanges
//     leaving the window are folded into the summary by one summariser call
//     (once the context passes SummaryTokens, or every SummaryEvery turns,
//     when set);
//   - "resum": ReSum (arXiv 2509.13313): at the threshold every exchange is
//     folded into the summary and the context restarts from prompt + summary;
//   - "memagent": MemAgent's overwritten memory (BytedTsinghua-SIA/MemAgent,
//     recurrent.py): each information block is a chunk, one updater call
//     rewrites the memory (≤ MemoryTokens) from (questions, memory, chunk);
//     the actor sees prompt + memory only;
//   - "mem0", "mem0:add-only": Mem0-style facts (mem0ai/mem0): an extractor
//     call lists facts from each observation, an updater call decides ADD,
//     UPDATE, DELETE or NONE against the Similar most similar stored facts
//     (add-only: every fact is added); the top K facts by embedding go into
//     the system prompt, the context holds the prompt and the last exchange;
//   - "amem": A-MEM as MEM1 ran it (Mem1/inference/models.py AMemClient over
//     agiresearch/A-mem): each observation becomes a note (an extractor call
//     writes keywords, context and tags as JSON), is embedded and may evolve
//     its neighbours (an updater call); before each actor call the top K notes
//     by embedding, then their linked notes up to K, go into the system
//     prompt, and the context holds the prompt and the last exchange.
//
// Other names are PolicyByName's.
func PolicyWith(name string, o MemoryOptions) (Policy, error) {
	if p, ok, err := memoryPolicy(name, o); ok {
		return p, err
	}
	return PolicyByName(name)
}

// memoryPolicy builds a memory policy; ok is false for other names.
func memoryPolicy(name string, o MemoryOptions) (Policy, bool, error) {
	p, err := memoryPolicyErr(name, o)
	if err == errNotMemoryPolicy {
		return nil, false, nil
	}
	return p, true, err
}

func memoryPolicyErr(name string, o MemoryOptions) (Policy, error) {
	switch name {
	case PolicyClosedBook:
		return closedBook{}, nil
	case PolicyReSum:
		return summaryPolicy{name: name, reset: true, o: o}, nil
	case PolicyMemAgent:
		return memAgentPolicy{o: o}, nil
	case PolicyMem0, PolicyMem0Add:
		return mem0Policy{name: name, addOnly: name == PolicyMem0Add, o: o}, nil
	case PolicyAMem:
		return amemPolicy{o: o}, nil
	}
	if rest, ok := strings.CutPrefix(name, summaryPrefix); ok {
		k, err := strconv.Atoi(rest)
		if err != nil || k < 0 {
			return nil, fmt.Errorf("policy %q: K must be a whole number ≥ 0", name)
		}
		return summaryPolicy{name: name, window: k, o: o}, nil
	}
	return nil, errNotMemoryPolicy
}

var errNotMemoryPolicy = fmt.Errorf("not a memory policy")

// memoryPolicyByName is PolicyByName's hook: ok is false for names that are
// not memory policies.
func memoryPolicyByName(name string) (Policy, bool, error) {
	return memoryPolicy(name, MemoryOptions{})
}

// questionsText lists the task's questions, one a line, numbered.
func questionsText(t Task) string {
	var b strings.Builder
	for i, o := range t.Objectives {
		fmt.Fprintf(&b, "%d. %s\n", i+1, o.Question)
	}
	return b.String()
}

// exchangeText is one exchange as memory sees it: the response, then the
// information block.
func exchangeText(e Exchange) string { return e.Response + e.Information }

// withMemory appends a labelled memory block to the task prompt.
func withMemory(prompt, label, memory string) string {
	if memory == "" {
		return prompt
	}
	return prompt + "\n\n" + label + "\n" + memory
}

// ---- closed-book

type closedBook struct{}

func (closedBook) Name() string                       { return PolicyClosedBook }
func (closedBook) Keep(history []Exchange) []Exchange { return slices.Clone(history) }
func (closedBook) Retrieves() bool                    { return false }

// ---- summary:K and resum

type summaryPolicy struct {
	name   string
	window int
	reset  bool
	o      MemoryOptions
}

func (p summaryPolicy) Name() string { return p.name }
func (p summaryPolicy) Keep(history []Exchange) []Exchange {
	if p.reset {
		return nil
	}
	return slices.Clone(history[len(history)-min(len(history), p.window):])
}
func (p summaryPolicy) NewMemory() Memory { return &summaryMemory{p: p} }

type summaryMemory struct {
	p  summaryPolicy
	st struct {
		Summary string `json:"summary"`
		Folded  int    `json:"folded"` // exchanges folded into Summary
	}
}

const summaryLabel = "Summary of your earlier turns:"

func (m *summaryMemory) Restore(s string) error { return restoreJSON(s, &m.st) }
func (m *summaryMemory) State() (string, error) { return stateJSON(m.st) }

func (m *summaryMemory) Prepare(ctx context.Context, calls *SubCalls, s MemoryStep) (Context, string, error) {
	open := s.Exchanges[min(m.st.Folded, len(s.Exchanges)):]
	size := EstimateTokens(withMemory(s.Prompt, summaryLabel, m.st.Summary) + Context{History: open}.Carried())
	due := m.p.o.SummaryTokens == 0 || size > m.p.o.SummaryTokens
	if m.p.o.SummaryEvery > 0 {
		due = s.Turn%m.p.o.SummaryEvery == 0
	}
	fold := 0
	switch {
	case m.p.reset && due:
		fold = len(open)
	case !m.p.reset && len(open) > m.p.window && due:
		fold = len(open) - m.p.window
	}
	if fold > 0 {
		reply, err := calls.Generate(ctx, RoleSummariser, summariserPrompt(s, m.st.Summary, open[:fold]))
		if err != nil {
			return Context{}, "", err
		}
		if strings.TrimSpace(reply) == "" {
			if err := calls.Flag(ctx, "empty summary: the earlier summary is kept"); err != nil {
				return Context{}, "", err
			}
		} else {
			m.st.Summary = strings.TrimSpace(reply)
		}
		m.st.Folded += fold
		open = open[fold:]
	}
	return Context{Prompt: withMemory(s.Prompt, summaryLabel, m.st.Summary), History: slices.Clone(open)}, m.st.Summary, nil
}

func summariserPrompt(s MemoryStep, summary string, exs []Exchange) string {
	w := s.words()
	var b strings.Builder
	b.WriteString(w.summariserIntro)
	b.WriteString(w.goal)
	b.WriteString("\nNotes so far:\n")
	if summary == "" {
		b.WriteString("(none yet)\n")
	} else {
		b.WriteString(summary + "\n")
	}
	b.WriteString(w.summariserSteps)
	for _, e := range exs {
		b.WriteString(exchangeText(e))
		b.WriteString("\n")
	}
	b.WriteString(w.summariserAsk)
	return b.String()
}

// ---- memagent

type memAgentPolicy struct{ o MemoryOptions }

func (memAgentPolicy) Name() string               { return PolicyMemAgent }
func (memAgentPolicy) Keep([]Exchange) []Exchange { return nil }
func (p memAgentPolicy) NewMemory() Memory        { return &memAgentMemory{p: p} }
func (m *memAgentMemory) Restore(s string) error  { return restoreJSON(s, &m.st) }
func (m *memAgentMemory) State() (string, error)  { return stateJSON(m.st) }

func restoreJSON(s string, v any) error {
	if s == "" {
		return nil
	}
	return json.Unmarshal([]byte(s), v)
}

func stateJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

type memAgentMemory struct {
	p  memAgentPolicy
	st struct {
		Memory string `json:"memory"`
		Seen   int    `json:"seen"` // exchanges read
	}
}

const memAgentLabel = "Your memory of what you found so far:"

func (m *memAgentMemory) Prepare(ctx context.Context, calls *SubCalls, s MemoryStep) (Context, string, error) {
	limit := m.p.o.memoryTokens()
	for _, e := range s.Exchanges[min(m.st.Seen, len(s.Exchanges)):] {
		m.st.Seen++
		if e.Information == "" {
			continue
		}
		reply, err := calls.Generate(ctx, RoleUpdater, memAgentPrompt(s, m.st.Memory, e, limit))
		if err != nil {
			return Context{}, "", err
		}
		mem, cut := TruncateTokens(strings.TrimSpace(reply), limit)
		if cut {
			if err := calls.Flag(ctx, fmt.Sprintf("memory longer than %d tokens: cut", limit)); err != nil {
				return Context{}, "", err
			}
		}
		m.st.Memory = mem
	}
	return Context{Prompt: withMemory(s.Prompt, memAgentLabel, m.st.Memory)}, m.st.Memory, nil
}

func memAgentPrompt(s MemoryStep, memory string, e Exchange, limit int) string {
	w := s.words()
	var b strings.Builder
	b.WriteString(w.memAgentIntro)
	b.WriteString(w.goal)
	b.WriteString("\nYour memory so far:\n")
	if memory == "" {
		b.WriteString("(empty)\n")
	} else {
		b.WriteString(memory + "\n")
	}
	b.WriteString(w.memAgentPiece)
	b.WriteString(exchangeText(e))
	fmt.Fprintf(&b, w.memAgentAsk, limit)
	return b.String()
}

// ---- mem0

type mem0Policy struct {
	name    string
	addOnly bool
	o       MemoryOptions
}

func (p mem0Policy) Name() string { return p.name }
func (p mem0Policy) Keep(h []Exchange) []Exchange {
	return slices.Clone(h[len(h)-min(len(h), 1):])
}
func (p mem0Policy) NewMemory() Memory { return &mem0Memory{p: p} }

// Fact is one stored mem0 fact.
type Fact struct {
	ID   int       `json:"id"`
	Text string    `json:"text"`
	Vec  []float64 `json:"vec"`
}

type mem0Memory struct {
	p  mem0Policy
	st struct {
		Facts  []Fact `json:"facts"`
		NextID int    `json:"next_id"`
		Seen   int    `json:"seen"`
	}
}

func (m *mem0Memory) Restore(s string) error { return restoreJSON(s, &m.st) }
func (m *mem0Memory) State() (string, error) { return stateJSON(m.st) }

func (m *mem0Memory) Prepare(ctx context.Context, calls *SubCalls, s MemoryStep) (Context, string, error) {
	for _, e := range s.Exchanges[min(m.st.Seen, len(s.Exchanges)):] {
		m.st.Seen++
		if err := m.fold(ctx, calls, s, e); err != nil {
			return Context{}, "", err
		}
	}
	c := Context{Prompt: s.Prompt, History: m.p.Keep(s.Exchanges)}
	if len(m.st.Facts) == 0 || len(s.Exchanges) == 0 {
		return c, "", nil
	}
	q, err := calls.Embed(ctx, []string{exchangeText(s.Exchanges[len(s.Exchanges)-1])})
	if err != nil {
		return Context{}, "", err
	}
	vecs := make([][]float64, len(m.st.Facts))
	for i, f := range m.st.Facts {
		vecs[i] = f.Vec
	}
	top, err := RankCosine(q[0], vecs, m.p.o.k())
	if err != nil {
		return Context{}, "", err
	}
	var b strings.Builder
	for _, r := range top {
		b.WriteString("- " + m.st.Facts[r.Index].Text + "\n")
	}
	payload := b.String()
	c.System = s.words().mem0System + "\n" + payload
	return c, payload, nil
}

// fold extracts facts from one exchange and merges them into the store.
func (m *mem0Memory) fold(ctx context.Context, calls *SubCalls, s MemoryStep, e Exchange) error {
	reply, err := calls.Generate(ctx, RoleExtractor, mem0ExtractPrompt(s, e))
	if err != nil {
		return err
	}
	var ex struct {
		Facts []string `json:"facts"`
	}
	if err := decodeJSONReply(reply, &ex); err != nil {
		return calls.Flag(ctx, err.Error()+"; no facts taken from this turn")
	}
	var facts []string
	for _, f := range ex.Facts {
		if f = strings.TrimSpace(f); f != "" {
			facts = append(facts, f)
		}
	}
	if len(facts) == 0 {
		return nil
	}
	vecs, err := calls.Embed(ctx, facts)
	if err != nil {
		return err
	}
	if m.p.addOnly || len(m.st.Facts) == 0 {
		for i, f := range facts {
			m.add(f, vecs[i])
		}
		return nil
	}
	// The stored facts most similar to any new fact, by id.
	old := make([][]float64, len(m.st.Facts))
	for i, f := range m.st.Facts {
		old[i] = f.Vec
	}
	near := map[int]bool{}
	for _, v := range vecs {
		top, err := RankCosine(v, old, m.p.o.similar())
		if err != nil {
			return err
		}
		for _, r := range top {
			near[r.Index] = true
		}
	}
	var cands []Fact
	for i, f := range m.st.Facts {
		if near[i] {
			cands = append(cands, f)
		}
	}
	reply, err = calls.Generate(ctx, RoleUpdater, mem0UpdatePrompt(cands, facts))
	if err != nil {
		return err
	}
	var up struct {
		Memory []struct {
			ID    json.RawMessage `json:"id"`
			Text  string          `json:"text"`
			Event string          `json:"event"`
		} `json:"memory"`
	}
	if err := decodeJSONReply(reply, &up); err != nil {
		if ferr := calls.Flag(ctx, err.Error()+"; the new facts are added as they are"); ferr != nil {
			return ferr
		}
		for i, f := range facts {
			m.add(f, vecs[i])
		}
		return nil
	}
	newVec := map[string][]float64{}
	for i, f := range facts {
		newVec[f] = vecs[i]
	}
	var problems []string
	var toEmbed []int // indices into m.st.Facts whose text changed
	for _, op := range up.Memory {
		text := strings.TrimSpace(op.Text)
		id, idErr := strconv.Atoi(strings.Trim(string(op.ID), `"`))
		switch strings.ToUpper(op.Event) {
		case "ADD":
			if text == "" {
				problems = append(problems, "ADD without text")
				continue
			}
			m.add(text, newVec[text])
			if newVec[text] == nil {
				toEmbed = append(toEmbed, len(m.st.Facts)-1)
			}
		case "UPDATE":
			i := m.index(id)
			if idErr != nil || i < 0 || text == "" {
				problems = append(problems, fmt.Sprintf("UPDATE of unknown id %s", op.ID))
				continue
			}
			if m.st.Facts[i].Text != text {
				m.st.Facts[i].Text, m.st.Facts[i].Vec = text, newVec[text]
				if m.st.Facts[i].Vec == nil {
					toEmbed = append(toEmbed, i)
				}
			}
		case "DELETE":
			i := m.index(id)
			if idErr != nil || i < 0 {
				problems = append(problems, fmt.Sprintf("DELETE of unknown id %s", op.ID))
				continue
			}
			m.st.Facts = slices.Delete(m.st.Facts, i, i+1)
			for j := range toEmbed {
				if toEmbed[j] > i {
					toEmbed[j]--
				} else if toEmbed[j] == i {
					toEmbed[j] = -1
				}
			}
		case "NONE":
		default:
			problems = append(problems, fmt.Sprintf("unknown event %q", op.Event))
		}
	}
	if len(problems) > 0 {
		if err := calls.Flag(ctx, "update: "+strings.Join(problems, "; ")); err != nil {
			return err
		}
	}
	var texts []string
	var idx []int
	for _, i := range toEmbed {
		if i >= 0 {
			texts = append(texts, m.st.Facts[i].Text)
			idx = append(idx, i)
		}
	}
	vs, err := calls.Embed(ctx, texts)
	if err != nil {
		return err
	}
	for j, i := range idx {
		m.st.Facts[i].Vec = vs[j]
	}
	return nil
}

func (m *mem0Memory) add(text string, vec []float64) {
	m.st.Facts = append(m.st.Facts, Fact{ID: m.st.NextID, Text: text, Vec: vec})
	m.st.NextID++
}

func (m *mem0Memory) index(id int) int {
	return slices.IndexFunc(m.st.Facts, func(f Fact) bool { return f.ID == id })
}

func mem0ExtractPrompt(s MemoryStep, e Exchange) string {
	w := s.words()
	var b strings.Builder
	b.WriteString(w.extractIntro)
	b.WriteString(w.goal)
	b.WriteString(w.extractStep)
	b.WriteString(exchangeText(e))
	b.WriteString(w.extractAsk)
	b.WriteString(`Reply with JSON only, in the form {"facts": ["...", "..."]}; use an empty list when there is nothing useful.`)
	return b.String()
}

func mem0UpdatePrompt(old []Fact, facts []string) string {
	var b strings.Builder
	b.WriteString("You maintain a store of facts. Stored facts that resemble the new ones:\n")
	for _, f := range old {
		fmt.Fprintf(&b, "- id %d: %s\n", f.ID, f.Text)
	}
	b.WriteString("\nNew facts:\n")
	for _, f := range facts {
		b.WriteString("- " + f + "\n")
	}
	b.WriteString("\nDecide, for each new fact, whether to ADD it, UPDATE a stored fact with it (same subject, better or newer content), ")
	b.WriteString("DELETE a stored fact it contradicts, or do NONE (already known). ")
	b.WriteString(`Reply with JSON only: {"memory": [{"id": <stored id, or null for ADD>, "text": "<fact text>", "event": "ADD|UPDATE|DELETE|NONE"}]}.`)
	return b.String()
}

// ---- amem

type amemPolicy struct{ o MemoryOptions }

func (amemPolicy) Name() string { return PolicyAMem }
func (amemPolicy) Keep(h []Exchange) []Exchange {
	return slices.Clone(h[len(h)-min(len(h), 1):])
}
func (p amemPolicy) NewMemory() Memory { return &amemMemory{p: p} }

// Note is one A-MEM memory note.
type Note struct {
	ID       int       `json:"id"`
	Content  string    `json:"content"`
	Keywords []string  `json:"keywords"`
	Context  string    `json:"context"`
	Tags     []string  `json:"tags"`
	Links    []int     `json:"links,omitempty"`
	Vec      []float64 `json:"vec"`
}

// text is what is embedded for a note: its content and its metadata.
func (n Note) text() string {
	return n.Content + "\nkeywords: " + strings.Join(n.Keywords, ", ") + "\ncontext: " + n.Context + "\ntags: " + strings.Join(n.Tags, ", ")
}

type amemMemory struct {
	p  amemPolicy
	st struct {
		Notes []Note `json:"notes"`
		Seen  int    `json:"seen"`
	}
}

func (m *amemMemory) Restore(s string) error { return restoreJSON(s, &m.st) }
func (m *amemMemory) State() (string, error) { return stateJSON(m.st) }

func (m *amemMemory) Prepare(ctx context.Context, calls *SubCalls, s MemoryStep) (Context, string, error) {
	c := Context{Prompt: s.Prompt, History: m.p.Keep(s.Exchanges)}
	payload := ""
	// 1. Retrieve for the current observation from the notes of earlier ones.
	if len(m.st.Notes) > 0 && len(s.Exchanges) > 0 {
		q, err := calls.Embed(ctx, []string{exchangeText(s.Exchanges[len(s.Exchanges)-1])})
		if err != nil {
			return Context{}, "", err
		}
		picked, err := m.search(q[0], m.p.o.k())
		if err != nil {
			return Context{}, "", err
		}
		var b strings.Builder
		for _, n := range picked {
			b.WriteString("- " + n.Content + "\n")
		}
		payload = b.String()
	}
	// 2. The unseen observations become notes.
	for _, e := range s.Exchanges[min(m.st.Seen, len(s.Exchanges)):] {
		m.st.Seen++
		if err := m.addNote(ctx, calls, exchangeText(e)); err != nil {
			return Context{}, "", err
		}
	}
	if payload != "" {
		c.System = s.words().amemSystem + "\n" + payload
	}
	return c, payload, nil
}

// search is A-MEM's search_agentic: the top k notes by cosine, then notes
// they link to, until k notes are picked.
func (m *amemMemory) search(q []float64, k int) ([]Note, error) {
	vecs := make([][]float64, len(m.st.Notes))
	for i, n := range m.st.Notes {
		vecs[i] = n.Vec
	}
	top, err := RankCosine(q, vecs, k)
	if err != nil {
		return nil, err
	}
	seen := map[int]bool{}
	var out []Note
	for _, r := range top {
		out = append(out, m.st.Notes[r.Index])
		seen[m.st.Notes[r.Index].ID] = true
	}
	for _, r := range top {
		for _, id := range m.st.Notes[r.Index].Links {
			if len(out) >= k {
				return out, nil
			}
			if i := m.index(id); i >= 0 && !seen[id] {
				seen[id] = true
				out = append(out, m.st.Notes[i])
			}
		}
	}
	return out, nil
}

func (m *amemMemory) index(id int) int {
	return slices.IndexFunc(m.st.Notes, func(n Note) bool { return n.ID == id })
}

func (m *amemMemory) addNote(ctx context.Context, calls *SubCalls, content string) error {
	n := Note{ID: len(m.st.Notes), Content: content}
	if len(m.st.Notes) > 0 {
		n.ID = m.st.Notes[len(m.st.Notes)-1].ID + 1
	}
	reply, err := calls.Generate(ctx, RoleExtractor, amemNotePrompt(content))
	if err != nil {
		return err
	}
	var meta struct {
		Keywords []string `json:"keywords"`
		Context  string   `json:"context"`
		Tags     []string `json:"tags"`
	}
	if err := decodeJSONReply(reply, &meta); err != nil {
		if err := calls.Flag(ctx, err.Error()+"; the note is stored without keywords, context or tags"); err != nil {
			return err
		}
	} else {
		n.Keywords, n.Context, n.Tags = meta.Keywords, meta.Context, meta.Tags
	}
	v, err := calls.Embed(ctx, []string{n.text()})
	if err != nil {
		return err
	}
	n.Vec = v[0]
	if !m.p.o.NoEvolve && len(m.st.Notes) > 0 {
		if err := m.evolve(ctx, calls, &n); err != nil {
			return err
		}
	}
	m.st.Notes = append(m.st.Notes, n)
	return nil
}

// evolve is A-MEM's memory evolution: the new note's nearest notes are shown
// to the updater, which may link the note to some of them ("strengthen") and
// rewrite their context and tags ("update_neighbor").
func (m *amemMemory) evolve(ctx context.Context, calls *SubCalls, n *Note) error {
	vecs := make([][]float64, len(m.st.Notes))
	for i, o := range m.st.Notes {
		vecs[i] = o.Vec
	}
	top, err := RankCosine(n.Vec, vecs, m.p.o.k())
	if err != nil {
		return err
	}
	near := make([]Note, len(top))
	for i, r := range top {
		near[i] = m.st.Notes[r.Index]
	}
	reply, err := calls.Generate(ctx, RoleUpdater, amemEvolvePrompt(*n, near))
	if err != nil {
		return err
	}
	var ev struct {
		ShouldEvolve bool       `json:"should_evolve"`
		Actions      []string   `json:"actions"`
		Connections  []int      `json:"suggested_connections"`
		Tags         []string   `json:"tags_to_update"`
		NewContexts  []string   `json:"new_context_neighborhood"`
		NewTags      [][]string `json:"new_tags_neighborhood"`
	}
	if err := decodeJSONReply(reply, &ev); err != nil {
		return calls.Flag(ctx, err.Error()+"; no evolution this turn")
	}
	if !ev.ShouldEvolve {
		return nil
	}
	var problems []string
	for _, a := range ev.Actions {
		switch a {
		case "strengthen":
			for _, id := range ev.Connections {
				if m.index(id) < 0 {
					problems = append(problems, fmt.Sprintf("link to unknown note %d", id))
					continue
				}
				if !slices.Contains(n.Links, id) {
					n.Links = append(n.Links, id)
				}
			}
			if len(ev.Tags) > 0 {
				n.Tags = ev.Tags
			}
		case "update_neighbor":
			for i, o := range near {
				j := m.index(o.ID)
				if i < len(ev.NewContexts) && ev.NewContexts[i] != "" {
					m.st.Notes[j].Context = ev.NewContexts[i]
				}
				if i < len(ev.NewTags) && len(ev.NewTags[i]) > 0 {
					m.st.Notes[j].Tags = ev.NewTags[i]
				}
			}
		default:
			problems = append(problems, fmt.Sprintf("unknown action %q", a))
		}
	}
	if len(problems) > 0 {
		return calls.Flag(ctx, "evolution: "+strings.Join(problems, "; "))
	}
	return nil
}

func amemNotePrompt(content string) string {
	return "Index this memory for later search. Memory:\n" + content +
		"\n\nGive the few keywords that carry its meaning (most important first), one sentence on what it is about and why it matters, and some broad tags. " +
		`Reply with JSON only: {"keywords": ["..."], "context": "...", "tags": ["..."]}.`
}

func amemEvolvePrompt(n Note, near []Note) string {
	var b strings.Builder
	b.WriteString("A new memory was stored:\n" + n.text() + "\n\nIts closest stored memories:\n")
	for i, o := range near {
		fmt.Fprintf(&b, "%d) id %d: %s\n", i+1, o.ID, strings.ReplaceAll(o.text(), "\n", " | "))
	}
	b.WriteString("\nDecide whether these memories should evolve. You may link the new memory to some of them (action \"strengthen\", giving their ids and, if useful, better tags for the new memory) ")
	b.WriteString("and/or refresh the context and tags of the listed memories in their order (action \"update_neighbor\"). ")
	b.WriteString(`Reply with JSON only: {"should_evolve": true|false, "actions": ["strengthen", "update_neighbor"], "suggested_connections": [ids], "tags_to_update": ["..."], "new_context_neighborhood": ["...", ...], "new_tags_neighborhood": [["..."], ...]}.`)
	return b.String()
}
