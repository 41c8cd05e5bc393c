package core

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tiktoken-go/tokenizer"
)

// O200kTokens counts the tokens of s with tiktoken's o200k_base encoding (the
// encoding of gpt-4o-mini, which MEM1's eval.py counts with). The counts come
// from github.com/tiktoken-go/tokenizer, a pure-Go library that embeds the
// vocabulary, so counting touches no network or file and core may use it.
// Special-token text such as "<|endoftext|>" is counted as ordinary text
// (Python's tiktoken would refuse it). Safe for concurrent use; "" gives 0.
//
// The result is always the library's own count of s. To make counting the
// same passages and prompts again cheap (eval.py's formulas count overlapping
// concatenations of every turn, and a sweep retrieves the same passages for
// many rollouts), s is cut into pieces where o200kCut allows, the library
// counts each piece once and it is remembered, and the pieces' counts are
// summed. The sum is exact because of how o200k_base works: its split
// pattern cuts the text into pre-tokens and BPE merges happen only inside a
// pre-token, so a text's count is the sum over its pre-tokens, and the cuts
// are only made where the pattern always cuts whatever surrounds them (see
// o200kCut).
func O200kTokens(s string) int {
	if s == "" {
		return 0
	}
	n := 0
	for len(s) > 0 {
		i := o200kNextCut(s)
		n += o200kPieceCount(s[:i])
		s = s[i:]
	}
	return n
}

// o200kNextCut is the end of the first piece of s (len(s) when s has no cut
// past its first byte).
func o200kNextCut(s string) int {
	for i := 1; i < len(s); i++ {
		if o200kCut(s, i) {
			return i
		}
	}
	return len(s)
}

// o200kCut reports whether a text may be counted as s[:i] and s[i:] apart:
// s[i-1] is an ASCII letter and s[i] a space or a newline. o200k_base's split
// pattern (tiktoken's, alternatives in order: (1) an optional non-letter,
// non-digit, non-newline, then upper/title/modifier/other letters or marks,
// then lower/modifier/other letters or marks, then an optional 's 't 're 've
// 'm 'll 'd; (2) the same with at least one upper letter and any lower ones;
// (3) one to three digits; (4) an optional space, then non-space
// non-letter non-digit runs, then newlines or slashes; (5) spaces ending in
// newlines; (6) spaces not followed by a non-space; (7) spaces) cuts there
// whatever comes before or after:
//   - no alternative matches a letter followed by whitespace: a letter is
//     only matched by (1) or (2) after their optional first character (which
//     is never a letter), and what they allow after a letter is letters,
//     marks and the apostrophe suffixes;
//   - so the pre-token holding s[i-1] ends at i and the next one starts at i,
//     and a match starting at i reads nothing before it (the pattern has no
//     look-behind or anchors), so the pre-tokens from i on are those of s[i:];
//   - the pre-tokens before i are those of s[:i]: only alternative (6) looks
//     past its match, at one character after a whitespace run, and s[i-1] is
//     a letter, so no look-ahead inside s[:i] reaches i, and every other
//     alternative's first match inside s[:i] is also its first match in s.
//
// Both bytes are ASCII, so a cut never splits a UTF-8 sequence (an invalid
// byte stays in its piece, where the library treats it as in the whole text).
// TestO200kTokensEqualsLibrary checks the sum against the library's count of
// the whole text over the QA bundle and generated texts, and FuzzO200kTokens
// keeps checking it.
func o200kCut(s string, i int) bool {
	c := s[i-1]
	return (s[i] == ' ' || s[i] == '\n') && ('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z')
}

var (
	o200kOnce  sync.Once
	o200kCodec tokenizer.Codec

	// o200kPieces remembers pieces' counts (string → int); o200kPieceN is
	// about how many it holds. It is emptied when it passes o200kMaxPieces.
	o200kPieces sync.Map
	o200kPieceN atomic.Int64
)

// o200kMaxPieces bounds the piece memory (a piece is mostly one word with
// what precedes it, at most o200kMaxPiece bytes: about 20 MiB when full of
// word-sized pieces, under 50 MiB at worst). The bundle's corpus has fewer
// distinct pieces than that.
const o200kMaxPieces = 1 << 17

// o200kMaxPiece is the longest piece remembered: a piece is cut only after
// an ASCII letter before a space or newline, so text without that (CJK,
// tables of numbers, JSON, URLs) makes long pieces that seldom come back;
// they are counted each time instead.
const o200kMaxPiece = 256

// o200kPieceCount is the library's count of one piece, remembered when it is
// short.
func o200kPieceCount(p string) int {
	if len(p) > o200kMaxPiece {
		return o200kLibraryCount(p)
	}
	if n, ok := o200kPieces.Load(p); ok {
		return n.(int)
	}
	n := o200kLibraryCount(p)
	if o200kPieceN.Add(1) > o200kMaxPieces {
		o200kPieces.Clear()
		o200kPieceN.Store(1)
	}
	// Clone: p is usually a slice of a much longer text.
	o200kPieces.Store(strings.Clone(p), n)
	return n
}

// o200kLibraryCount is tiktoken-go's count of s, with no pieces.
func o200kLibraryCount(s string) int {
	o200kOnce.Do(func() {
		c, err := tokenizer.Get(tokenizer.O200kBase)
		if err != nil {
			panic("core: o200k_base tokenizer: " + err.Error()) // embedded; cannot happen
		}
		o200kCodec = c
	})
	n, err := o200kCodec.Count(s)
	if err != nil {
		// Only invalid UTF-8 in strict mode errs; the default mode keeps it.
		return EstimateTokens(s)
	}
	return n
}
