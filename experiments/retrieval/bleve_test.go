package retrieval

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

func ids(ps []core.Passage) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

// hasGold reports whether any of ps is one of the question's gold passages.
func hasGold(q storage.Question, ps []core.Passage) bool {
	for _, p := range ps {
		for _, g := range q.GoldPassageIDs {
			if p.ID == g {
				return true
			}
		}
	}
	return false
}

// answered reports whether a golden answer occurs, as whole words and in any
// case, in the passages' titles or texts: what the oracle agent needs to answer
// a one-objective task from one search (experiments/oracle).
func answered(q storage.Question, ps []core.Passage) bool {
	for _, p := range ps {
		for _, a := range q.Golden {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			re := regexp.MustCompile(`(?i)(^|\W)` + regexp.QuoteMeta(a) + `($|\W)`)
			if re.MatchString(p.Title) || re.MatchString(p.Text) {
				return true
			}
		}
	}
	return false
}

// overlap is |a ∩ b| (ids).
func overlap(a, b []core.Passage) int {
	n := 0
	for _, x := range a {
		for _, y := range b {
			if x.ID == y.ID {
				n++
				break
			}
		}
	}
	return n
}

// TestBleveFindsGoldNearlyAsOftenAsFTS5 compares the top 3 of bleve and of
// today's FTS5 search over a sample of the real bundle questions that have gold
// passages, and reports the two rankings' top-3 overlap and the oracle agent's
// one-objective EM under each. Measured (every 6th question, 715): gold in top 3
// FTS5 89.5%, bleve 87.4%, overlap 75.6%; bleve's disjunction multiplies the
// BM25 sum by the share of query words matched (coord), which FTS5 does not.
// bleve must stay within 3 points of FTS5 (not at or above it: it is not).
func TestBleveFindsGoldNearlyAsOftenAsFTS5(t *testing.T) {
	st := bundleStore(t)
	ctx := ctxT(t)
	b, err := OpenBleve(ctx, st, BleveOptions{Path: filepath.Join(t.TempDir(), "idx.bleve")})
	require.NoError(t, err)
	defer b.Close()
	n, err := st.CountPassages(ctx)
	require.NoError(t, err)
	require.Equal(t, n, b.Built().Passages, "a fresh index holds every passage")

	envs := map[string]core.Environment{"bleve": b, "bleve-pruned": b.WithMaxPostings(2000)}
	var asked, goldFTS, goldBleve, shared int
	oracleEM := map[string]int{}
	for _, q := range sampleQuestions(t, st, 6) {
		if len(q.GoldPassageIDs) == 0 {
			continue
		}
		want, err := st.Search(ctx, q.Question, 3)
		require.NoError(t, err)
		if answered(q, want) {
			oracleEM["bm25"]++
		}
		for name, env := range envs {
			ps, err := env.Search(ctx, q.Question, 3)
			require.NoError(t, err)
			if answered(q, ps) {
				oracleEM[name]++
			}
		}
		got, err := b.Search(ctx, q.Question, 3)
		require.NoError(t, err)
		require.LessOrEqual(t, len(got), 3)
		for i, p := range got {
			require.Equal(t, i+1, p.Rank)
			require.NotEmpty(t, p.Text, "text is read back from the store")
			if i > 0 {
				require.LessOrEqual(t, p.Score, got[i-1].Score, "best first")
			}
		}
		asked++
		if hasGold(q, want) {
			goldFTS++
		}
		if hasGold(q, got) {
			goldBleve++
		}
		shared += overlap(want, got)
	}
	require.Greater(t, asked, 300)
	t.Logf("%d questions: gold in top 3: FTS5 %d (%.1f%%), bleve %d (%.1f%%); top-3 overlap %.1f%%",
		asked, goldFTS, 100*float64(goldFTS)/float64(asked), goldBleve, 100*float64(goldBleve)/float64(asked),
		100*float64(shared)/float64(3*asked))
	t.Logf("oracle EM (a golden answer in the top 3): %v", oracleEM)
	assert.GreaterOrEqual(t, float64(goldBleve), float64(goldFTS)-0.03*float64(asked))
	assert.GreaterOrEqual(t, float64(shared), 0.7*float64(3*asked), "top-3 overlap with today's ranking")
}

// TestBleveRebuildsWhenTheCorpusChanges: an index is reused while the store's
// passages are unchanged and rebuilt once passages are added.
func TestBleveRebuildsWhenTheCorpusChanges(t *testing.T) {
	ctx := ctxT(t)
	st, err := storage.Open(filepath.Join(t.TempDir(), "lab.db"))
	require.NoError(t, err)
	defer st.Close()
	_, err = st.ImportBundle(ctx, writeBundle(t, []string{
		`{"id":"a","title":"Aardvark","text":"The aardvark digs burrows at night."}`,
		`{"id":"b","title":"Badger","text":"A badger also digs, by day."}`,
	}, "a"))
	require.NoError(t, err)
	path := BleveIndexPath(st.Path())
	assert.Equal(t, st.Path()+".bleve", path)

	b, err := OpenBleve(ctx, st, BleveOptions{})
	require.NoError(t, err)
	assert.Equal(t, 2, b.Built().Passages)
	got, err := b.Search(ctx, "who digs burrows?", 3)
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b"}, ids(got), "burrows only in a; digs in both")
	require.NoError(t, b.Close())
	_, err = os.Stat(path + ".tmp")
	assert.True(t, os.IsNotExist(err), "no build left behind")

	b, err = OpenBleve(ctx, st, BleveOptions{})
	require.NoError(t, err)
	assert.Zero(t, b.Built().Passages, "unchanged corpus: the index is reused")
	require.NoError(t, b.Close())

	f := filepath.Join(t.TempDir(), "more.jsonl")
	require.NoError(t, os.WriteFile(f, []byte(`{"id":"c","title":"Cassowary","text":"The cassowary never digs burrows."}`+"\n"), 0o644))
	_, err = st.ImportCorpusJSONL(ctx, f)
	require.NoError(t, err)
	b, err = OpenBleve(ctx, st, BleveOptions{})
	require.NoError(t, err)
	defer b.Close()
	assert.Equal(t, 3, b.Built().Passages, "changed corpus: rebuilt")
	got, err = b.Search(ctx, "cassowary", 3)
	require.NoError(t, err)
	require.Equal(t, []string{"c"}, ids(got))
	got, err = b.Search(ctx, "?!", 3)
	require.NoError(t, err)
	assert.Empty(t, got, "no words, no passages")
}

// TestBlevePruningKeepsTheRarestWord: with MaxPostings 1, a word in both
// passages is dropped and only the rare word is searched.
func TestBlevePruningKeepsTheRarestWord(t *testing.T) {
	ctx := ctxT(t)
	st, err := storage.Open(filepath.Join(t.TempDir(), "lab.db"))
	require.NoError(t, err)
	defer st.Close()
	_, err = st.ImportBundle(ctx, writeBundle(t, []string{
		`{"id":"a","title":"One","text":"films films films films about rivers"}`,
		`{"id":"b","title":"Two","text":"a film about a glacier"}`,
	}, "a"))
	require.NoError(t, err)
	for _, tc := range []struct {
		max  int
		want []string
	}{{0, []string{"a", "b"}}, {1, []string{"b"}}} {
		b, err := OpenBleve(ctx, st, BleveOptions{MaxPostings: tc.max})
		require.NoError(t, err)
		got, err := b.Search(ctx, "film glacier", 3)
		require.NoError(t, err)
		// Unpruned, "a" leads on its four "films" (stemmed to film) hits? No:
		// the glacier hit is rarer, so b ranks first; a still matches.
		assert.ElementsMatch(t, tc.want, ids(got), "MaxPostings %d", tc.max)
		require.NoError(t, b.Close())
	}
}

func TestOpenKinds(t *testing.T) {
	ctx := ctxT(t)
	st, err := storage.Open(filepath.Join(t.TempDir(), "lab.db"))
	require.NoError(t, err)
	defer st.Close()
	_, err = st.ImportBundle(ctx, writeBundle(t, []string{`{"id":"a","title":"Quokka","text":"The quokka smiles."}`}, "a"))
	require.NoError(t, err)
	for _, k := range append([]string{""}, Kinds...) {
		env, c, err := Open(ctx, k, st)
		require.NoError(t, err, k)
		got, err := env.Search(ctx, "quokka", 3)
		require.NoError(t, err, k)
		assert.Equal(t, []string{"a"}, ids(got), k)
		require.NoError(t, c.Close())
	}
	_, _, err = Open(ctx, "grep", st)
	require.ErrorContains(t, err, `unknown retriever "grep"`)
	require.ErrorContains(t, err, "bleve")
}
