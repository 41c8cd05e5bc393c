package storage

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

var _ core.Environment = (*Store)(nil)

func TestSearchRanksBestFirst(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	_, err := s.ImportBundle(ctx, smallBundle(t))
	require.NoError(t, err)

	ps, err := s.Search(ctx, "What is the capital of France?", 3)
	require.NoError(t, err)
	require.NotEmpty(t, ps)
	assert.Equal(t, "p1", ps[0].ID)
	assert.Equal(t, "Paris", ps[0].Title)
	for i, p := range ps {
		assert.Equal(t, i+1, p.Rank)
		if i > 0 {
			assert.LessOrEqual(t, p.Score, ps[i-1].Score)
		}
	}
	assert.Positive(t, ps[0].Score)

	ps, err = s.Search(ctx, "capital", 1)
	require.NoError(t, err)
	assert.Len(t, ps, 1, "k bounds the result")
	ps, err = s.Search(ctx, "capital", 0)
	require.NoError(t, err)
	assert.Empty(t, ps)

	// Porter stemming: "founding" matches "founded".
	ps, err = s.Search(ctx, "founding", 3)
	require.NoError(t, err)
	require.Len(t, ps, 1)
	assert.Equal(t, "p3", ps[0].ID)
}

func TestSearchFoldsDiacritics(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	path := writeFile(t, t.TempDir(), "c.jsonl",
		`{"id": "n1", "title": "Nobel", "text": "The first Nobel Prize in Physics went to Wilhelm Conrad Röntgen.", "datasets": ["nq"]}`,
		`{"id": "n2", "title": "Other", "text": "Something else entirely.", "datasets": ["nq"]}`)
	_, err := s.ImportCorpusJSONL(ctx, path)
	require.NoError(t, err)
	for _, q := range []string{"Rontgen", "RÖNTGEN", "röntgen"} {
		ps, err := s.Search(ctx, q, 3)
		require.NoError(t, err)
		require.Len(t, ps, 1, q)
		assert.Equal(t, "n1", ps[0].ID)
	}
}

func TestSearchQueryCannotBreakFTS5(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	_, err := s.ImportBundle(ctx, smallBundle(t))
	require.NoError(t, err)

	empty := []string{"", "   ", `"`, `""`, "*", "^", "-", "(", ")", "()", ":", "!?.,;", "\x00", "\x00\x00 \t\n", "“”‘’…", "🙂🙂"}
	for _, q := range empty {
		ps, err := s.Search(ctx, q, 5)
		require.NoError(t, err, "%q", q)
		assert.Empty(t, ps, "%q", q)
	}
	weird := []string{
		`a" OR "b`, `NEAR(x y)`, `NEAR(capital France, 2)`, `title:foo`, `title:Paris`, `text : capital`,
		`*capital*`, `capit*`, `^x`, `^Paris`, `-x`, `-capital`, `AND OR NOT`, `capital AND`, `NOT capital`,
		`(capital`, `capital)`, `{title text}: capital`, `"capital`, `capital"`, `'capital'`, `capital\x00France`,
		"capital\x00France", `+capital`, `capital + France`, `passages_fts`, `rank:1`, `bm25(passages_fts)`,
		`Ｐａｒｉｓ`, "Köln Zürich São Paulo 東京 Москва قاهرة", "𞤀𞤁 ꙮ", "e\u0301cole", "\u0301\u0301",
		"\xff\xfe invalid utf8 capital", strings.Repeat("capital France ", 5000), strings.Repeat("x", 100000),
		strings.Repeat("(", 1000) + "capital" + strings.Repeat(")", 1000),
	}
	for _, q := range weird {
		_, err := s.Search(ctx, q, 5)
		require.NoError(t, err, "%.60q", q)
	}
	// The words still count: operators are ordinary words, column filters are not applied.
	ps, err := s.Search(ctx, `title:Paris`, 5)
	require.NoError(t, err)
	require.NotEmpty(t, ps)
	assert.Equal(t, "p1", ps[0].ID)
	ps, err = s.Search(ctx, "capital\x00France", 5)
	require.NoError(t, err)
	require.NotEmpty(t, ps)
	assert.Equal(t, "p1", ps[0].ID)
	ps, err = s.Search(ctx, `-capital`, 5)
	require.NoError(t, err)
	assert.Len(t, ps, 3, "a leading minus is not negation")
}

func TestQueryTerms(t *testing.T) {
	assert.Equal(t, []string{"capital", "france"}, queryTerms("What is the capital of France?"))
	assert.Equal(t, []string{"the", "of"}, queryTerms("The of the"), "stop words kept when nothing else is left")
	assert.Equal(t, []string{"x", "y"}, queryTerms(`x" OR "y`))
	assert.Equal(t, []string{"b"}, queryTerms(`a" OR "b`), "a and or are stop words")
	assert.Equal(t, []string{"near", "x", "y"}, queryTerms("NEAR(x y)"))
	assert.Empty(t, queryTerms(`"*^-():`))
	assert.Len(t, queryTerms(strings.Repeat("w", 10)+" "+strings.Join(slices.Repeat([]string{"a1 b2 c3 d4 e5 f6 g7 h8 i9 j10"}, 20), " ")+" "+makeWords(200)), MaxQueryTerms)
	assert.Equal(t, `"capital" OR "france"`, ftsQuery("capital, France"))
	assert.Equal(t, "", ftsQuery("?!"))
}

func makeWords(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("w")
		b.WriteString(strings.Repeat("z", i%7))
		b.WriteByte(byte('a' + i%26))
		b.WriteString(strings.Repeat("q", i/26))
		b.WriteByte(' ')
	}
	return b.String()
}

// BM25 over the real corpus finds a gold passage of most HotpotQA and NQ questions
// in the top 5 (the bundle README reports 94.8% and 83.5% for a plain BM25).
func TestSearchBundleGoldInTop5(t *testing.T) {
	s := sharedBundleStore(t)
	ctx := ctxT(t)
	for _, tc := range []struct {
		dataset string
		min     float64
	}{{"hotpotqa", 0.85}, {"nq", 0.7}} {
		qs, err := s.Questions(ctx, tc.dataset, 0, 0)
		require.NoError(t, err)
		hit, n := 0, 0
		for i := 0; i < len(qs); i += 7 { // a spread-out sample
			q := qs[i]
			ps, err := s.Search(ctx, q.Question, 5)
			require.NoError(t, err)
			n++
			for _, p := range ps {
				if slices.Contains(q.GoldPassageIDs, p.ID) {
					hit++
					break
				}
			}
		}
		rate := float64(hit) / float64(n)
		t.Logf("%s: gold passage in top 5 for %d of %d sampled questions (%.1f%%)", tc.dataset, hit, n, 100*rate)
		assert.GreaterOrEqual(t, rate, tc.min, tc.dataset)
	}
}

func BenchmarkSearch(b *testing.B) {
	requireBundle(b)
	s := newStore(b)
	ctx := ctxT(b)
	_, err := s.ImportBundle(ctx, bundleDir)
	require.NoError(b, err)
	b.ResetTimer()
	for b.Loop() {
		_, err := s.Search(ctx, "Which band released the debut album Tinted Windows and where did they first perform?", 3)
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkImportBundle(b *testing.B) {
	requireBundle(b)
	for b.Loop() {
		s := newStore(b)
		if _, err := s.ImportBundle(context.Background(), bundleDir); err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
