package core

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTagsValidate(t *testing.T) {
	require.NoError(t, DefaultTags().Validate())
	require.NoError(t, Tags{Think: "mem_1", Search: "q-x", Information: "Info", Answer: "A2"}.Validate())

	cases := []struct {
		name string
		tags Tags
		msg  string
	}{
		{"empty", Tags{Think: "", Search: "s", Information: "i", Answer: "a"}, "think tag name is empty"},
		{"bracket", Tags{Think: "t", Search: "<s>", Information: "i", Answer: "a"}, "search tag name"},
		{"space", Tags{Think: "t", Search: "s", Information: "in fo", Answer: "a"}, "information tag name"},
		{"slash", Tags{Think: "t", Search: "s", Information: "i", Answer: "a/b"}, "answer tag name"},
		{"duplicate", Tags{Think: "x", Search: "s", Information: "i", Answer: "x"}, `both named "x"`},
		{"non-ascii", Tags{Think: "dénk", Search: "s", Information: "i", Answer: "a"}, "think tag name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.tags.Validate()
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.msg)
		})
	}
}

func TestParse(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want Parsed
	}{
		{"search", "<think>need capital</think>\n<search> capital of france </search>",
			Parsed{InternalState: "need capital", Action: ActionSearch, Query: "capital of france"}},
		{"answer", "<think>\n done \n</think><answer>Paris; 1889</answer>",
			Parsed{InternalState: "done", Action: ActionAnswer, Answer: "Paris; 1889"}},
		{"search before answer wins", "<search>q</search><answer>a</answer>",
			Parsed{Action: ActionSearch, Query: "q"}},
		{"answer before search wins", "<answer>a</answer><search>q</search>",
			Parsed{Action: ActionAnswer, Answer: "a"}},
		{"unclosed search falls through to answer", "<search>q <answer>a</answer>",
			Parsed{Action: ActionAnswer, Answer: "a"}},
		{"unclosed answer falls through to later search", "<answer>a <search>q</search>",
			Parsed{Action: ActionSearch, Query: "q"}},
		{"nested runs to first close", "<search>a<search>b</search>c</search>",
			Parsed{Action: ActionSearch, Query: "a<search>b"}},
		{"close before open", "</search><search>x</search>",
			Parsed{Action: ActionSearch, Query: "x"}},
		{"no tags", "I think the answer is Paris.", Parsed{}},
		{"only opening tags", "<think>a<search>b<answer>c", Parsed{}},
		{"first of several thinks", "<think>one</think><think>two</think><search>q</search>",
			Parsed{InternalState: "one", Action: ActionSearch, Query: "q"}},
		{"unclosed think", "<think>abc <search>q</search>", Parsed{Action: ActionSearch, Query: "q"}},
		{"empty query", "<think>x</think><search></search>", Parsed{InternalState: "x", Action: ActionSearch}},
		{"empty answer", "<answer>  </answer>", Parsed{Action: ActionAnswer}},
		{"invalid utf8", "\xff<think>\xfe</think><search>\xc3q\xff</search>",
			Parsed{InternalState: "\xfe", Action: ActionSearch, Query: "\xc3q\xff"}},
		{"upper-case tags are not tags", "<SEARCH>q</SEARCH>", Parsed{}},
		{"unicode whitespace trimmed", "<answer>\u00a0Zürich\u3000</answer>", Parsed{Action: ActionAnswer, Answer: "Zürich"}},
		{"empty input", "", Parsed{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, DefaultTags().Parse(c.in))
		})
	}
}

func TestParseCustomTags(t *testing.T) {
	tags := Tags{Think: "memo", Search: "lookup", Information: "docs", Answer: "final"}
	got := tags.Parse("<think>x</think><memo>kept</memo><search>no</search><lookup>yes</lookup>")
	assert.Equal(t, Parsed{InternalState: "kept", Action: ActionSearch, Query: "yes"}, got)
	assert.Equal(t, ActionAnswer, tags.Parse("<final>f</final>").Action)
}

func TestStops(t *testing.T) {
	assert.Equal(t, []string{"</search>", "</answer>"}, DefaultTags().Stops(false))
	assert.Equal(t, []string{"</answer>"}, DefaultTags().Stops(true))
	custom := Tags{Think: "t", Search: "q", Information: "i", Answer: "a"}
	assert.Equal(t, []string{"</q>", "</a>"}, custom.Stops(false))
	assert.Equal(t, []string{"</a>"}, custom.Stops(true))
}

func TestInformationBlock(t *testing.T) {
	// MEM1 inference appends "<information>\n{hint}\n{docs}\n</information>",
	// where every doc line ends in "\n".
	inner := InformationText(3, []Passage{{Title: "Eiffel Tower", Text: "A tower in Paris."}, {Title: "Paris", Text: "Capital\nof France."}})
	want := "<information>\n[HINT]You have 3 turns left.[/HINT]\n" +
		"Doc 1(Title: \"Eiffel Tower\") A tower in Paris.\n" +
		"Doc 2(Title: \"Paris\") Capital\nof France.\n" +
		"\n</information>"
	assert.Equal(t, want, DefaultTags().InformationBlock(inner))
	assert.Equal(t, "<docs>\nx\n</docs>", Tags{Information: "docs"}.InformationBlock("x"))
}

func TestExchanges(t *testing.T) {
	turns := []Turn{
		{Index: 0, Response: "r0", Information: "i0"},
		{Index: 1, Response: "r1"},
	}
	got := DefaultTags().Exchanges(turns)
	assert.Equal(t, []Exchange{
		{Response: "r0", Information: "<information>\ni0\n</information>"},
		{Response: "r1"},
	}, got)
}

func TestRestoreClosingTag(t *testing.T) {
	stops := []string{"</search>", "</answer>"}
	cases := []struct {
		name, text, finish, stop string
		stops                    []string
		want                     string
	}{
		{"stop reason search", "<think>x</think><search>q", "stop", "</search>", stops, "<think>x</think><search>q</search>"},
		{"stop reason answer", "<answer>a", "stop", "</answer>", stops, "<answer>a</answer>"},
		{"stop reason already present", "<search>q</search>", "stop", "</search>", stops, "<search>q</search>"},
		{"stop reason not a stop", "<search>q", "stop", "</think>", stops, "<search>q</search>"},
		{"no stop reason, open search", "<think>a</think><search>q", "stop", "", stops, "<think>a</think><search>q</search>"},
		{"no stop reason, latest open wins", "<answer>x <search>q", "stop", "", stops, "<answer>x <search>q</search>"},
		{"no stop reason, closed search then open answer", "<search>q</search><answer>a", "stop", "", stops, "<search>q</search><answer>a</answer>"},
		{"no stop reason, everything closed", "<search>q</search>", "stop", "", stops, "<search>q</search>"},
		{"no stop reason, no tags", "plain text", "stop", "", stops, "plain text"},
		{"length never restores", "<search>q", "length", "", stops, "<search>q"},
		{"length ignores stop reason", "<search>q", "length", "</search>", stops, "<search>q"},
		{"last turn only answer", "<search>q", "stop", "", []string{"</answer>"}, "<search>q"},
		{"other finish reason", "<search>q", "content_filter", "", stops, "<search>q"},
		{"empty finish reason with stop reason", "<answer>a", "", "</answer>", stops, "<answer>a</answer>"},
		{"non-tag stops ignored in inference", "<search>q", "stop", "", []string{"\n\n", "</search>"}, "<search>q</search>"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, RestoreClosingTag(c.text, c.finish, c.stop, c.stops))
		})
	}
}

func TestInvalidActionNoteUsesTags(t *testing.T) {
	n := Tags{Think: "t", Search: "look", Information: "i", Answer: "fin"}.InvalidActionNote()
	assert.Contains(t, n, "<look>")
	assert.Contains(t, n, "</fin>")
}

// actionRE is the reference pipeline's action pattern written for RE2 (no
// back-references): leftmost match, first alternative preferred.
var actionRE = regexp.MustCompile(`(?s)<search>(.*?)</search>|<answer>(.*?)</answer>`)
var thinkRE = regexp.MustCompile(`(?s)<think>(.*?)</think>`)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"<think>a</think><search>q</search>",
		"<search>q <answer>a</answer>",
		"\xff<answer>\xfe</answer>",
	} {
		f.Add(s)
	}
	tags := DefaultTags()
	f.Fuzz(func(t *testing.T, in string) {
		p := tags.Parse(in)
		if !strings.Contains(in, p.Query) || !strings.Contains(in, p.Answer) || !strings.Contains(in, p.InternalState) {
			t.Fatalf("fields must be substrings of the input: %+v", p)
		}
		switch p.Action {
		case ActionSearch:
			if p.Answer != "" {
				t.Fatalf("search with an answer: %+v", p)
			}
		case ActionAnswer:
			if p.Query != "" {
				t.Fatalf("answer with a query: %+v", p)
			}
		case ActionNone:
			if p.Query != "" || p.Answer != "" {
				t.Fatalf("no action but fields set: %+v", p)
			}
		default:
			t.Fatalf("unknown action %d", p.Action)
		}
		// Differential check against the regular expression.
		want := Parsed{}
		if m := actionRE.FindStringSubmatchIndex(in); m != nil {
			if m[2] >= 0 {
				want.Action, want.Query = ActionSearch, pyStrip(in[m[2]:m[3]])
			} else {
				want.Action, want.Answer = ActionAnswer, pyStrip(in[m[4]:m[5]])
			}
		}
		if m := thinkRE.FindStringSubmatchIndex(in); m != nil {
			want.InternalState = pyStrip(in[m[2]:m[3]])
		}
		if want != p {
			t.Fatalf("Parse(%q) = %+v, regexp says %+v", in, p, want)
		}
		// Restoring never removes text.
		r := RestoreClosingTag(in, "stop", "", tags.Stops(false))
		if !strings.HasPrefix(r, in) {
			t.Fatalf("restore changed the text")
		}
	})
}
