package core

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Slots a template may contain. Render replaces every occurrence in a single
// pass, so text inserted for one slot (a question that happens to contain
// "{answer}", say) is never substituted again.
const (
	// QuestionsSlot is replaced by the task's questions joined with JoinQuestions.
	// Every template must contain it.
	QuestionsSlot = "{questions}"
	// ThinkSlot, SearchSlot, InformationSlot and AnswerSlot are replaced by the
	// configured tag names (Tags), so a template can write "<{think}>" and follow
	// whatever names an experiment uses. They are optional.
	ThinkSlot       = "{think}"
	SearchSlot      = "{search}"
	InformationSlot = "{information}"
	AnswerSlot      = "{answer}"
)

// Template is a task prompt: the user message the agent receives every turn.
// Name labels it in experiments and exports; Text holds the prompt with the
// slots above.
type Template struct {
	Name string `json:"name"`
	Text string `json:"text"`
}

// defaultTemplateText is the built-in prompt. It asks for MEM1's protocol
// (arXiv 2506.15841): a <think> block that is the agent's only memory, one
// search per turn, information coming back in its own tag, and one final
// answer listing the answers in question order separated by ';'.
const defaultTemplateText = `You are a research agent answering several questions with the help of a search engine. You work in turns.

Start every reply with <{think}> ... </{think}>. This block is your internal state: after each turn your earlier replies and the search results are removed, and this block is the only thing you carry into the next turn. Use it to
- copy over every fact from the latest results that could help with any of the questions,
- note which questions are already solved and what their answers are,
- list the searches you have made, so you do not repeat them,
- keep track of how many turns you have left (each search result tells you).

Then finish the reply with exactly one action:
- <{search}> one query </{search}> to look something up. Ask about one thing at a time. The results come back to you inside <{information}> ... </{information}>.
- <{answer}> answer to question 1; answer to question 2; ... </{answer}> once you are done or out of turns. Give only the short answers, no explanations, one per question, in the same order as the questions, separated by semicolons.

So a reply is either <{think}>...</{think}><{search}>...</{search}> or <{think}>...</{think}><{answer}>...</{answer}>, nothing else.

Questions: {questions}
`

// DefaultTemplate returns the built-in MEM1-style prompt (name "mem1-default").
func DefaultTemplate() Template {
	return Template{Name: "mem1-default", Text: defaultTemplateText}
}

// ParseTemplate checks text and returns it as a Template. It fails when text
// does not contain QuestionsSlot or is not valid UTF-8 (a JSON request could not
// carry it byte for byte; the error names the first bad line, see
// InvalidUTF8Line). The text is kept byte for byte. Reading a template file is
// the caller's job (experiments.LoadTemplate): core touches no files.
func ParseTemplate(name, text string) (Template, error) {
	if line, bad := InvalidUTF8Line(text); bad {
		return Template{}, fmt.Errorf("template %q: line %d is not valid UTF-8, which a request cannot carry byte for byte", name, line)
	}
	if !strings.Contains(text, QuestionsSlot) {
		return Template{}, fmt.Errorf("template %q: missing the %s slot", name, QuestionsSlot)
	}
	return Template{Name: name, Text: text}, nil
}

// InvalidUTF8Line returns the 1-based line (counting "\n") of the first byte of
// text that is not valid UTF-8, and whether there is one.
func InvalidUTF8Line(text string) (int, bool) {
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		if r == utf8.RuneError && size <= 1 {
			return 1 + strings.Count(text[:i], "\n"), true
		}
		i += size
	}
	return 0, false
}

// Render fills the template for task with the default tag names (DefaultTags).
// It is RenderWith(task, DefaultTags()).
func (t Template) Render(task Task) string {
	return t.RenderWith(task, DefaultTags())
}

// RenderWith fills the template for task: QuestionsSlot becomes
// JoinQuestions of the objectives' questions and the tag slots become the names
// in tags. Everything else is copied byte for byte (line endings, whitespace,
// byte order marks included). Tag names are not validated here; the turn loop
// validates them before rendering.
func (t Template) RenderWith(task Task, tags Tags) string {
	questions := make([]string, len(task.Objectives))
	for i, o := range task.Objectives {
		questions[i] = o.Question
	}
	return fillSlots(t.Text, [][2]string{
		{QuestionsSlot, JoinQuestions(questions)},
		{ThinkSlot, tags.Think},
		{SearchSlot, tags.Search},
		{InformationSlot, tags.Information},
		{AnswerSlot, tags.Answer},
	})
}

// fillSlots replaces every occurrence of each slot[0] in text by its slot[1],
// left to right, without re-reading replaced text: what strings.NewReplacer
// does for slots of which none is a prefix of another (each starts with "{"
// and ends at its only "}"), without building a replacer for every rollout.
func fillSlots(text string, slots [][2]string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(text, '{')
		if i < 0 {
			break
		}
		b.WriteString(text[:i])
		text = text[i:]
		n := 1
		for _, sl := range slots {
			if strings.HasPrefix(text, sl[0]) {
				b.WriteString(sl[1])
				n = len(sl[0])
				break
			}
		}
		if n == 1 {
			b.WriteByte('{')
		}
		text = text[n:]
	}
	b.WriteString(text)
	return b.String()
}

// JoinQuestions joins the questions of a task byte for byte as MEM1 builds its
// multi-objective prompts (Mem1/gen_data/data_process/
// qa_search_test_merge_multi.py, process_batch): "?" is appended to a question
// whose last character is not "?", nothing is trimmed (so "… ? " becomes
// "… ? ?" and leading spaces stay), and the questions are joined with "; ".
// The reference fails on an empty question (it reads question[-1]); here an
// empty question becomes "?", and Agent.Run refuses a task that has one.
func JoinQuestions(questions []string) string {
	parts := make([]string, len(questions))
	for i, q := range questions {
		if !strings.HasSuffix(q, "?") {
			q += "?"
		}
		parts[i] = q
	}
	return strings.Join(parts, "; ")
}

// errEmptyTemplate is returned by AgentConfig.Normalized for a template whose
// text lacks the questions slot.
var errEmptyTemplate = errors.New("template has no " + QuestionsSlot + " slot")
