package storage

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

func passageIDs(ps []core.Passage) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

// TestTunedSearchSameTop3AsSearchOnBundle: on the real bundle (19k passages, no
// word near the 50k cap) the tuned searcher returns exactly today's top 3, with
// the same scores, for every second bundle question (2,140 of 4,280).
func TestTunedSearchSameTop3AsSearchOnBundle(t *testing.T) {
	s := sharedBundleStore(t)
	ctx := ctxT(t)
	ts, err := s.TunedSearcher(TunedOptions{})
	require.NoError(t, err)
	defer ts.Close()
	asked := 0
	for _, ds := range []string{"hotpotqa", "nq", "musique"} {
		qs, err := s.Questions(ctx, ds, 0, 0)
		require.NoError(t, err)
		for i := 0; i < len(qs); i += 2 {
			want, err := s.Search(ctx, qs[i].Question, 3)
			require.NoError(t, err)
			got, err := ts.Search(ctx, qs[i].Question, 3)
			require.NoError(t, err)
			require.Equal(t, passageIDs(want), passageIDs(got), qs[i].Question)
			for j := range want {
				require.InDelta(t, want[j].Score, got[j].Score, 1e-9)
				require.Equal(t, want[j].Rank, got[j].Rank)
			}
			asked++
		}
	}
	require.Greater(t, asked, 2000)
	st := ts.Stats()
	assert.Equal(t, asked, st.Queries)
	assert.Zero(t, st.PrunedTerms)
}

// TestTunedSearchPrunesFrequentWords: a word (here a stemmed one, "films" →
// "film") in more passages than MaxPostings is left out; the rarest word is
// always kept; negative MaxPostings searches every word.
func TestTunedSearchPrunesFrequentWords(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i := 0; i < 12; i++ {
		lines = append(lines, fmt.Sprintf(`{"id":"f%02d","title":"Film %d","text":"A film about trains."}`, i, i))
	}
	lines = append(lines, `{"id":"g","title":"Glacier","text":"A glacier, and no moving pictures."}`)
	p := writeFile(t, dir, "corpus.jsonl", lines...)
	s := newStore(t)
	ctx := ctxT(t)
	_, err := s.ImportCorpusJSONL(ctx, p)
	require.NoError(t, err)

	ts, err := s.TunedSearcher(TunedOptions{MaxPostings: 5})
	require.NoError(t, err)
	defer ts.Close()
	got, err := ts.Search(ctx, "Which films show a glacier?", 3)
	require.NoError(t, err)
	assert.Equal(t, []string{"g"}, passageIDs(got), "film (12 passages) pruned, glacier kept")
	assert.Equal(t, 1, ts.Stats().PrunedTerms)

	got, err = ts.Search(ctx, "films trains", 3)
	require.NoError(t, err)
	assert.Len(t, got, 3, "both words over the cap: the rarest is still searched")

	all, err := s.TunedSearcher(TunedOptions{MaxPostings: -1})
	require.NoError(t, err)
	defer all.Close()
	got, err = all.Search(ctx, "Which films show a glacier?", 3)
	require.NoError(t, err)
	want, err := s.Search(ctx, "Which films show a glacier?", 3)
	require.NoError(t, err)
	assert.Equal(t, passageIDs(want), passageIDs(got))
	assert.Zero(t, all.Stats().PrunedTerms)

	got, err = ts.Search(ctx, `"* OR NEAR(`, 3)
	require.NoError(t, err)
	assert.Empty(t, got)
}

func TestIndexedFormMatchesFTS5Tokens(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	p := writeFile(t, t.TempDir(), "c.jsonl",
		`{"id":"a","title":"Röntgen","text":"He was directing films and running races, happily."}`)
	_, err := s.ImportCorpusJSONL(ctx, p)
	require.NoError(t, err)
	ts, err := s.TunedSearcher(TunedOptions{})
	require.NoError(t, err)
	defer ts.Close()
	for _, w := range []string{"röntgen", "directing", "films", "running", "races", "happily", "he"} {
		var n int
		require.NoError(t, ts.db.QueryRowContext(ctx, `SELECT doc FROM temp.passages_vocab WHERE term = ?`, indexedForm(w)).Scan(&n), w+" → "+indexedForm(w))
		assert.Equal(t, 1, n, w)
	}
}

// TestImportBundleBulkSameAsImportBundle: the bulk import gives the same rows
// and search results as ImportBundle, passes the integrity check, and leaves
// the insert trigger in place (later imports are indexed). A bad line stores
// nothing and also leaves the trigger.
func TestImportBundleBulkSameAsImportBundle(t *testing.T) {
	ctx := ctxT(t)
	dir := smallBundle(t)
	a, b := newStore(t), newStore(t)
	sa, err := a.ImportBundle(ctx, dir)
	require.NoError(t, err)
	sb, err := b.ImportBundleBulk(ctx, dir)
	require.NoError(t, err)
	assert.Equal(t, sa.Passages, sb.Passages)
	assert.Equal(t, sa.Questions, sb.Questions)
	assert.Equal(t, counts(t, a), counts(t, b))
	require.NoError(t, b.IntegrityCheck(ctx))
	schema := func(s *Store) string {
		var out string
		require.NoError(t, s.r.QueryRowContext(ctx, `SELECT group_concat(type || ' ' || name || ': ' || sql, char(10))
			FROM (SELECT * FROM sqlite_master WHERE tbl_name = 'passages' ORDER BY name)`).Scan(&out))
		return out
	}
	assert.Equal(t, schema(a), schema(b), "trigger and content-hash index re-created as the schema has them")
	for _, q := range []string{"capital of France", "Rome founded", "Germany"} {
		x, err := a.Search(ctx, q, 3)
		require.NoError(t, err)
		y, err := b.Search(ctx, q, 3)
		require.NoError(t, err)
		assert.Equal(t, x, y, q)
	}
	more := writeFile(t, t.TempDir(), "more.jsonl", `{"id":"p9","title":"Oslo","text":"Oslo is the capital of Norway."}`)
	_, err = b.ImportCorpusJSONL(ctx, more)
	require.NoError(t, err)
	got, err := b.Search(ctx, "Norway", 3)
	require.NoError(t, err)
	assert.Equal(t, []string{"p9"}, passageIDs(got), "trigger restored after the bulk load")
	// On a store with passages, bulk is the ordinary import (nothing new here).
	again, err := b.ImportBundleBulk(ctx, dir)
	require.NoError(t, err)
	assert.Zero(t, again.Passages)
	require.NoError(t, b.IntegrityCheck(ctx))

	bad := t.TempDir()
	writeFile(t, bad, "unified/corpus.jsonl", `{"id":"x1","title":"X","text":"fine"}`, `{"id":"x2","title":"Y"}`)
	writeFile(t, bad, "unified/questions.jsonl", `{"id":"q","dataset":"d","question":"q?","golden_answers":["a"]}`)
	c := newStore(t)
	before := counts(t, c)
	_, err = c.ImportBundleBulk(ctx, bad)
	var le *LineError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, 2, le.Line)
	assert.Equal(t, before, counts(t, c))
	_, err = c.ImportCorpusJSONL(ctx, filepath.Join(dir, "unified", "corpus.jsonl"))
	require.NoError(t, err)
	got, err = c.Search(ctx, "France", 3)
	require.NoError(t, err)
	assert.Equal(t, []string{"p1"}, passageIDs(got), "failed bulk import left the trigger")
	_, err = c.ImportBundleBulk(ctx, filepath.Join(bad, "nope"))
	require.ErrorContains(t, err, "not a qa-bundle")
}

func TestPassageFingerprintAndScans(t *testing.T) {
	ctx := ctxT(t)
	s := newStore(t)
	fp0, err := s.PassageFingerprint(ctx)
	require.NoError(t, err)
	assert.Equal(t, "0:0", fp0)
	_, err = s.ImportBundle(ctx, smallBundle(t))
	require.NoError(t, err)
	fp1, err := s.PassageFingerprint(ctx)
	require.NoError(t, err)
	assert.Equal(t, "3:3", fp1)
	var seen []string
	require.NoError(t, s.EachPassage(ctx, func(p core.Passage) error { seen = append(seen, p.ID); return nil }))
	assert.Equal(t, []string{"p1", "p2", "p3"}, seen)
	ps, err := s.PassagesByID(ctx, []string{"p3", "missing", "p1"})
	require.NoError(t, err)
	assert.Equal(t, []string{"p3", "p1"}, passageIDs(ps))
	assert.Equal(t, "Rome", ps[0].Title)
}

// TestTunedSearchBoundsQueryPostings: words are admitted rarest first while
// their document frequencies sum to at most MaxQueryPostings; the result is
// exactly Store.Search over the words kept, and the rarest word is searched
// even when it alone is over the bound.
func TestTunedSearchBoundsQueryPostings(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	add := func(id, text string) {
		lines = append(lines, fmt.Sprintf(`{"id":%q,"title":"T %s","text":%q}`, id, id, text))
	}
	add("a1", "alpha beta gamma")
	add("a2", "alpha quiet")
	for i := 0; i < 3; i++ {
		add(fmt.Sprintf("b%d", i), "beta gamma river")
	}
	for i := 0; i < 4; i++ {
		add(fmt.Sprintf("g%d", i), "gamma stone")
	}
	s := newStore(t)
	ctx := ctxT(t)
	_, err := s.ImportCorpusJSONL(ctx, writeFile(t, dir, "corpus.jsonl", lines...))
	require.NoError(t, err)
	// Document frequencies: alpha 2, beta 4, gamma 8.
	for _, c := range []struct {
		budget int
		same   string
		pruned int
	}{
		{6, "beta alpha", 1},        // 2 + 4 fit, + 8 does not
		{5, "alpha", 2},             // only alpha fits
		{1, "alpha", 2},             // nothing fits: the rarest is kept
		{14, "gamma beta alpha", 0}, // all fit
		{-1, "gamma beta alpha", 0}, // no bound
	} {
		ts, err := s.TunedSearcher(TunedOptions{MaxPostings: -1, MaxQueryPostings: c.budget})
		require.NoError(t, err)
		got, err := ts.Search(ctx, "gamma beta alpha", 10)
		require.NoError(t, err)
		want, err := s.Search(ctx, c.same, 10)
		require.NoError(t, err)
		require.Equal(t, passageIDs(want), passageIDs(got), "budget %d", c.budget)
		for j := range want {
			assert.InDelta(t, want[j].Score, got[j].Score, 1e-9)
		}
		assert.Equal(t, c.pruned, ts.Stats().PrunedTerms, "budget %d", c.budget)
		require.NoError(t, ts.Close())
	}
}

func TestSelectTerms(t *testing.T) {
	terms := []string{"w0", "w1", "w2", "w3", "w4"}
	dfs := []int{30, 5, 5, 100, 0}
	df := func(i int) int { return dfs[i] }
	for _, c := range []struct {
		cap, budget int
		want        []string
	}{
		{-1, -1, terms},
		{50, -1, []string{"w0", "w1", "w2", "w4"}},
		{50, 10, []string{"w1", "w2", "w4"}}, // 0 + 5 + 5; ties keep query order
		{50, 9, []string{"w1", "w4"}},        // 0 + 5, the second 5 would pass 9
		{-1, 140, terms},                     // 0+5+5+30+100 = 140
		{-1, 139, []string{"w0", "w1", "w2", "w4"}},
		{1, 0, []string{"w4"}}, // w4 (df 0) fits any bound
	} {
		got, dropped := selectTerms(terms, df, c.cap, c.budget)
		assert.Equal(t, c.want, got, "cap %d budget %d", c.cap, c.budget)
		assert.Equal(t, len(terms)-len(c.want), dropped)
	}
	// Every word over both limits: the rarest alone.
	got, dropped := selectTerms([]string{"x", "y"}, func(i int) int { return []int{9, 7}[i] }, 1, 1)
	assert.Equal(t, []string{"y"}, got)
	assert.Equal(t, 1, dropped)
}

// TestTunedSearchPrunesNothingOnBundle: for every one of the bundle's questions
// (all datasets) the tuned searcher's default limits keep every query word, so
// on the bundle bm25-tuned searches exactly what bm25 searches and the oracle
// agent's EM cannot change with the retriever choice.
func TestTunedSearchPrunesNothingOnBundle(t *testing.T) {
	s := sharedBundleStore(t)
	ctx := ctxT(t)
	ts, err := s.TunedSearcher(TunedOptions{})
	require.NoError(t, err)
	defer ts.Close()
	n, err := s.CountQuestions(ctx, "")
	require.NoError(t, err)
	infos, err := s.Datasets(ctx)
	require.NoError(t, err)
	asked := 0
	for _, d := range infos {
		qs, err := s.Questions(ctx, d.Name, 0, 0)
		require.NoError(t, err)
		for _, q := range qs {
			terms := queryTerms(q.Question)
			kept, pruned, err := ts.pruneTerms(ctx, terms)
			require.NoError(t, err)
			require.Zero(t, pruned, q.Question)
			require.Equal(t, terms, kept)
			asked++
		}
	}
	assert.Equal(t, n, asked)
	assert.Greater(t, asked, 4000)
}
