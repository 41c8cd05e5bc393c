package storage

import (
	"context"
	"database/sql"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode"

	porter "github.com/blevesearch/go-porterstemmer"
	sqlite3 "github.com/mattn/go-sqlite3"
	"golang.org/x/text/unicode/norm"

	"github.com/mem1lab/mem1lab/core"
)

// QueryTerms is the word list every retriever searches for a free-text query:
// lower-cased runs of letters and digits, duplicates and stop words dropped (all
// words kept when only stop words are left), at most MaxQueryTerms. It is the
// list Store.Search ORs together, exported so other engines search the same words.
func QueryTerms(q string) []string { return queryTerms(q) }

// TunedOptions configures a TunedSearcher. Zero values take the defaults.
type TunedOptions struct {
	// MaxPostings is the document-frequency cap: a query word found in more
	// passages than this is left out of the MATCH expression while at least one
	// word under the cap remains (the rarest word is always searched). FTS5 scores
	// every passage holding any searched word, so the cap bounds a query's work to
	// about (words × MaxPostings) rows. Default 50,000; negative turns this
	// per-word cap off (MaxQueryPostings still applies unless it is off too).
	MaxPostings int
	// MaxQueryPostings bounds the words of one query together: after the
	// MaxPostings cap, words are taken rarest first while the sum of their
	// document frequencies stays at most this (the rarest word is always
	// searched), so a query scores at most about this many (passage, word)
	// postings. Words left out are the most frequent ones, whose BM25 weight
	// (IDF) is the smallest. Default 150,000; negative disables it.
	MaxQueryPostings int
	// CacheMiB is each read connection's SQLite page cache (PRAGMA cache_size).
	// Default 64.
	CacheMiB int
	// MmapMiB maps that much of the file into memory (PRAGMA mmap_size), shared by
	// all connections through the OS page cache. Default 1024.
	MmapMiB int
}

// TunedSearcher is the FTS5 BM25 retriever with the issue-11 tuning: its own
// read-only connection pool with a larger page cache and memory-mapped I/O, and
// query words pruned by document frequency (TunedOptions.MaxPostings per word,
// MaxQueryPostings per query) read from an fts5vocab table over passages_fts.
// Ranking is the same bm25() as Store.Search; when no word is pruned the top k
// are identical. It satisfies core.Environment and is safe for concurrent use.
type TunedSearcher struct {
	db   *sql.DB
	opts TunedOptions

	mu    sync.Mutex
	stats TunedStats
}

// TunedStats counts what a TunedSearcher pruned.
type TunedStats struct {
	Queries, PrunedTerms int
}

var registerTuned sync.Once

// tunedDriver is the go-sqlite3 driver whose connections get the vocabulary
// table and the pragmas (mmap and cache sizes are set per connection after open).
const tunedDriver = "sqlite3_mem1lab_tuned"

// TunedSearcher opens the tuned FTS5 retriever on this store's file. It works
// on every store that has passages_fts (all schema versions); Close it when done.
func (s *Store) TunedSearcher(opts TunedOptions) (*TunedSearcher, error) {
	if opts.MaxPostings == 0 {
		opts.MaxPostings = 50000
	}
	if opts.MaxQueryPostings == 0 {
		opts.MaxQueryPostings = 150000
	}
	if opts.CacheMiB <= 0 {
		opts.CacheMiB = 64
	}
	if opts.MmapMiB <= 0 {
		opts.MmapMiB = 1024
	}
	registerTuned.Do(func() {
		sql.Register(tunedDriver, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
			// A temp table: it lives in the connection, so the store file is not written.
			_, err := c.Exec(`CREATE VIRTUAL TABLE IF NOT EXISTS temp.passages_vocab USING fts5vocab(main, passages_fts, row)`, nil)
			return err
		}})
	})
	db, err := sql.Open(tunedDriver, fileURI(s.path)+fmt.Sprintf(
		"?mode=ro&_busy_timeout=%d&_cache_size=%d", busyTimeoutMS, -opts.CacheMiB*1024))
	if err != nil {
		return nil, fmt.Errorf("storage: tuned search: %w", err)
	}
	n := 2 * runtime.NumCPU()
	if n < 4 {
		n = 4
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	t := &TunedSearcher{db: db, opts: opts}
	// mmap_size is per connection: set it on every pooled connection up front.
	ctx := context.Background()
	conns := make([]*sql.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := db.Conn(ctx)
		if err != nil {
			db.Close()
			return nil, fmt.Errorf("storage: tuned search: %w", err)
		}
		conns = append(conns, c)
		if _, err := c.ExecContext(ctx, fmt.Sprintf("PRAGMA mmap_size = %d", int64(opts.MmapMiB)<<20)); err != nil {
			db.Close()
			return nil, fmt.Errorf("storage: tuned search: %w", err)
		}
	}
	return t, nil
}

// Close closes the searcher's connections.
func (t *TunedSearcher) Close() error { return t.db.Close() }

// Stats returns the counts so far.
func (t *TunedSearcher) Stats() TunedStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// indexedForm is the token FTS5's "porter unicode61 remove_diacritics 2" stores
// for a lower-cased query word: diacritics removed, then Porter-stemmed (FTS5
// stems tokens of 3 to 64 bytes). It is used only to look up document
// frequencies; a word it gets wrong is simply never pruned.
func indexedForm(w string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(w) {
		if !unicode.Is(unicode.Mn, r) {
			b.WriteRune(r)
		}
	}
	w = b.String()
	if len(w) < 3 || len(w) > 64 {
		return w
	}
	return porter.StemString(w)
}

// pruneTerms drops the words whose document frequency is over the cap, then the
// most frequent of the rest while their frequencies sum to more than
// MaxQueryPostings, keeping at least the rarest word; the words kept stay in
// query order. It returns the words kept and how many were dropped.
func (t *TunedSearcher) pruneTerms(ctx context.Context, terms []string) ([]string, int, error) {
	if (t.opts.MaxPostings < 0 && t.opts.MaxQueryPostings < 0) || len(terms) < 2 {
		return terms, 0, nil
	}
	forms := make([]any, len(terms))
	marks := make([]string, len(terms))
	for i, w := range terms {
		forms[i] = indexedForm(w)
		marks[i] = "?"
	}
	rows, err := t.db.QueryContext(ctx, `SELECT term, doc FROM temp.passages_vocab WHERE term IN (`+strings.Join(marks, ",")+`)`, forms...)
	if err != nil {
		return nil, 0, fmt.Errorf("storage: tuned search: document frequencies: %w", err)
	}
	df := map[string]int{}
	for rows.Next() {
		var term string
		var n int
		if err := rows.Scan(&term, &n); err != nil {
			rows.Close()
			return nil, 0, err
		}
		df[term] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	kept, dropped := selectTerms(terms, func(i int) int { return df[forms[i].(string)] },
		t.opts.MaxPostings, t.opts.MaxQueryPostings)
	return kept, dropped, nil
}

// selectTerms is pruneTerms' rule over words with document frequencies df(i):
// a word over maxPostings is dropped, then words are admitted rarest first (ties
// in query order) while the admitted frequencies sum to at most maxQuery; the
// rarest word is always kept. A negative limit is no limit. The words kept are
// returned in query order with the number dropped.
func selectTerms(terms []string, df func(i int) int, maxPostings, maxQuery int) ([]string, int) {
	order := make([]int, 0, len(terms))
	rarest := 0
	for i := range terms {
		if df(i) < df(rarest) {
			rarest = i
		}
		if maxPostings < 0 || df(i) <= maxPostings {
			order = append(order, i)
		}
	}
	keep := make([]bool, len(terms))
	if maxQuery < 0 {
		for _, i := range order {
			keep[i] = true
		}
	} else {
		sort.SliceStable(order, func(a, b int) bool { return df(order[a]) < df(order[b]) })
		sum := 0
		for _, i := range order {
			if sum+df(i) > maxQuery {
				break
			}
			sum += df(i)
			keep[i] = true
		}
	}
	keep[rarest] = keep[rarest] || !slices.Contains(keep, true)
	kept := make([]string, 0, len(terms))
	for i, w := range terms {
		if keep[i] {
			kept = append(kept, w)
		}
	}
	return kept, len(terms) - len(kept)
}

// Search returns the k best passages for query under FTS5 bm25() over the words
// kept after pruning, best first (Score = -bm25(), Rank 1-based). Like
// Store.Search, text without words returns nothing and no error.
func (t *TunedSearcher) Search(ctx context.Context, query string, k int) ([]core.Passage, error) {
	if k <= 0 {
		return nil, nil
	}
	terms := queryTerms(query)
	if len(terms) == 0 {
		return nil, nil
	}
	kept, pruned, err := t.pruneTerms(ctx, terms)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.stats.Queries++
	t.stats.PrunedTerms += pruned
	t.mu.Unlock()
	return searchMatch(ctx, t.db, query, matchTerms(kept), k)
}
