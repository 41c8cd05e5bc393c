package core

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tiktoken-go/tokenizer"
)

// o200kAlphabet holds characters chosen to meet every branch of o200k_base's
// split pattern at and near a cut: ASCII letters on either side of spaces and
// newlines, apostrophe suffixes (with the long s and Kelvin sign that fold to
// s and k), upper, lower, title-case, modifier and other letters, combining
// marks, decimal and other digits, Unicode spaces (no-break, em, next-line),
// carriage returns, tabs, slashes, punctuation, an invalid UTF-8 byte and the
// special-token texts.
var o200kAlphabet = []string{
	"a", "s", "t", "Z", "x", "q", " ", " ", " ", "\n", "\n\n", "\r", "\r\n", "\t", "'", "'s", "'S", "'ll",
	"'ſ", "'K", "é", "É", "ǅ", "ʰ", "中", "\u0301", "7", "42", "٣", "½", "\u00a0", "\u2003", "\u0085",
	"/", ".", ",", "<", ">", "(", "\"", "-", "\xff", "<|endoftext|>", "<|endofprompt|>", "</information>",
	"<think>", "Doc 1(Title: \"Paris\") ", "  ", " \n", "\n ", "ok", "Hello", "WORLD",
}

// randomO200kText joins n random members of o200kAlphabet.
func randomO200kText(r *rand.Rand, n int) string {
	var b strings.Builder
	for range n {
		b.WriteString(o200kAlphabet[r.IntN(len(o200kAlphabet))])
	}
	return b.String()
}

// TestO200kTokensEqualsLibrary: the piecewise count equals the library's
// count of the whole text, for texts made to hit every kind of neighbour of a
// cut, counted with the piece memory cold and warm; and splitting any text at
// a cut gives two texts whose counts add up (the property the sum rests on).
func TestO200kTokensEqualsLibrary(t *testing.T) {
	lib := libCount(t)
	r := rand.New(rand.NewPCG(1, 2))
	n := 30000
	if testing.Short() {
		n = 3000
	}
	cuts := 0
	for k := range n {
		s := randomO200kText(r, 1+r.IntN(40))
		want := lib(s)
		require.Equal(t, want, O200kTokens(s), "text %d %q", k, s)
		require.Equal(t, want, O200kTokens(s), "text %d %q (warm)", k, s)
		for i := 1; i < len(s); i++ {
			if o200kCut(s, i) {
				cuts++
				require.Equal(t, want, lib(s[:i])+lib(s[i:]), "text %q cut at %d", s, i)
			}
		}
	}
	assert.Greater(t, cuts, n, "the generated texts hold cuts")
}

// TestO200kCutPlaces pins where pieces end: after an ASCII letter, before a
// space or a newline, and nowhere else.
func TestO200kCutPlaces(t *testing.T) {
	var got []string
	s := "Doc 1(Title: \"Paris\") Paris is\nthe capital's  seat. É é\u00a0x\ty"
	for len(s) > 0 {
		i := o200kNextCut(s)
		got = append(got, s[:i])
		s = s[i:]
	}
	assert.Equal(t, []string{"Doc", " 1(Title: \"Paris\") Paris", " is", "\nthe", " capital's", "  seat. É é\u00a0x\ty"}, got)
}

// FuzzO200kTokens: `go test -fuzz FuzzO200kTokens ./core` keeps looking for
// a text whose piecewise count differs from the library's.
func FuzzO200kTokens(f *testing.F) {
	for _, s := range []string{"hello world", "a \nb", "it's  a\r\nb", "x\u00a0 y", "<think>a b</think>\n<search>q</search>", "\xffa b"} {
		f.Add(s)
	}
	c, err := tokenizer.Get(tokenizer.O200kBase)
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, s string) {
		want, err := c.Count(s)
		if err != nil {
			t.Fatal(err)
		}
		if O200kTokens(s) != want {
			t.Fatalf("O200kTokens(%q) = %d, library %d", s, O200kTokens(s), want)
		}
	})
}

// A piece longer than o200kMaxPiece (text with no letter-then-space cut, such
// as CJK) is counted exactly and not remembered.
func TestO200kLongPiecesAreNotKept(t *testing.T) {
	lib := libCount(t)
	long := strings.Repeat("中文的句子，没有空格。", 40)
	require.Greater(t, len(long), o200kMaxPiece)
	before := o200kPieceN.Load()
	assert.Equal(t, lib(long), O200kTokens(long))
	assert.Equal(t, lib("see "+long), O200kTokens("see "+long))
	assert.LessOrEqual(t, o200kPieceN.Load()-before, int64(1), "only the short piece \"see\" is kept")
}
