// Package retrieval holds retrievers (core.Environment implementations) other
// than the store's built-in FTS5 one: a bleve index kept beside the store, and
// the names a run configuration uses to pick one.
package retrieval

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
	uni "unicode"

	"github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/analysis/analyzer/custom"
	"github.com/blevesearch/bleve/v2/analysis/char/asciifolding"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/token/porter"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/whitespace"
	"github.com/blevesearch/bleve/v2/index/scorch"
	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search/query"
	index "github.com/blevesearch/bleve_index_api"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// KindBleve is the retriever name for the bleve BM25 index ("bleve").
const KindBleve = "bleve"

// KindBM25 is the retriever name for the store's own FTS5 bm25() search
// (Store.Search), the default ("bm25").
const KindBM25 = "bm25"

// KindBM25Tuned is the retriever name for storage.TunedSearcher ("bm25-tuned").
const KindBM25Tuned = "bm25-tuned"

const (
	analyzerName   = "mem1lab"
	bodyField      = "body"
	fingerprintKey = "mem1lab:passages"
	batchSize      = 5000
)

// BleveIndexPath is where the bleve index of the store at dbPath lives: beside
// it, "<dbPath>.bleve" (a directory).
func BleveIndexPath(dbPath string) string { return dbPath + ".bleve" }

// BleveOptions configures OpenBleve. Zero values take the defaults.
type BleveOptions struct {
	// Path of the index directory; "" = BleveIndexPath(store.Path()).
	Path string
	// MaxPostings prunes query words found in more passages than this (the rarest
	// word is always kept), as storage.TunedOptions does. 0 or negative: no
	// pruning (bleve scores every passage holding any word).
	MaxPostings int
	// Progress, when set, is called after each indexed batch with the passages
	// indexed so far.
	Progress func(done int)
}

// Bleve is a core.Environment over a bleve (scorch) index of the store's
// passages, ranked by bleve's BM25 (k1 = 1.2, b = 0.75; bleve's saturation term
// is tf·k1 / (tf + k1·(1 − b + b·len/avglen)), which orders documents as the
// textbook tf·(k1+1) form does) with bleve's own top-k collector. Each passage
// is one field, title and text split into words as passages_fts splits them
// (see words), ASCII-folded, lower-cased and Porter-stemmed; a query searches the
// words storage.QueryTerms keeps, OR-ed. Passage text is read back from the
// store. Safe for concurrent use.
type Bleve struct {
	st          *storage.Store
	idx         bleve.Index
	maxPostings int

	mu    sync.Mutex
	built BuildStats
}

// BuildStats reports an index build (zero when an existing index was opened).
type BuildStats struct {
	Passages int
	Elapsed  time.Duration
}

// Rate is passages indexed per second.
func (b BuildStats) Rate() float64 {
	if b.Elapsed <= 0 {
		return 0
	}
	return float64(b.Passages) / b.Elapsed.Seconds()
}

var _ core.Environment = (*Bleve)(nil)

// words re-spaces text the way FTS5's unicode61 tokenizer splits it: runs of
// letters and digits (combining marks kept inside a word) joined by single
// spaces, so bleve's whitespace tokenizer sees exactly the words
// storage.QueryTerms makes of a query (bleve's own Unicode tokenizer keeps
// "o'brien" or "3.5" whole, which the query side never does).
func words(text string) string {
	var b strings.Builder
	b.Grow(len(text))
	in := false
	for _, r := range text {
		switch {
		case uni.IsLetter(r) || uni.IsDigit(r) || uni.IsNumber(r) || (in && uni.IsMark(r)):
			if !in && b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.WriteRune(r)
			in = true
		default:
			in = false
		}
	}
	return b.String()
}

// indexMapping is the mapping every mem1lab bleve index uses.
func indexMapping() (*mapping.IndexMappingImpl, error) {
	im := bleve.NewIndexMapping()
	im.ScoringModel = index.BM25Scoring
	if err := im.AddCustomAnalyzer(analyzerName, map[string]any{
		"type":          custom.Name,
		"char_filters":  []any{asciifolding.Name},
		"tokenizer":     whitespace.Name,
		"token_filters": []any{lowercase.Name, porter.Name},
	}); err != nil {
		return nil, err
	}
	im.DefaultAnalyzer = analyzerName
	body := bleve.NewTextFieldMapping()
	body.Analyzer = analyzerName
	body.Store = false
	body.IncludeInAll = false
	body.IncludeTermVectors = false
	body.DocValues = false
	doc := bleve.NewDocumentStaticMapping()
	doc.AddFieldMappingsAt(bodyField, body)
	im.DefaultMapping = doc
	im.StoreDynamic = false
	im.IndexDynamic = false
	im.DocValuesDynamic = false
	return im, nil
}

// OpenBleve opens the bleve index of st, building it first when it is missing
// or was built from a different corpus (its recorded storage.PassageFingerprint
// differs): a build reads every passage, writes a new index to "<path>.tmp" and
// renames it into place, so an interrupted build leaves no index that looks
// complete. Close it when done. Errors: the store's, or bleve's (an unreadable
// index directory, a full disk).
func OpenBleve(ctx context.Context, st *storage.Store, opts BleveOptions) (*Bleve, error) {
	path := opts.Path
	if path == "" {
		path = BleveIndexPath(st.Path())
	}
	fp, err := st.PassageFingerprint(ctx)
	if err != nil {
		return nil, err
	}
	b := &Bleve{st: st, maxPostings: opts.MaxPostings}
	if idx, err := bleve.Open(path); err == nil {
		got, gerr := idx.GetInternal([]byte(fingerprintKey))
		if gerr == nil && string(got) == fp {
			b.idx = idx
			return b, nil
		}
		idx.Close()
	}
	stats, err := buildBleve(ctx, st, path, fp, opts.Progress)
	if err != nil {
		return nil, err
	}
	idx, err := bleve.Open(path)
	if err != nil {
		return nil, fmt.Errorf("retrieval: open bleve index %s: %w", path, err)
	}
	b.idx = idx
	b.built = stats
	return b, nil
}

// buildBleve writes a fresh index of every passage at path (via path.tmp).
func buildBleve(ctx context.Context, st *storage.Store, path, fp string, progress func(int)) (BuildStats, error) {
	start := time.Now()
	tmp := path + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return BuildStats{}, fmt.Errorf("retrieval: %w", err)
	}
	im, err := indexMapping()
	if err != nil {
		return BuildStats{}, fmt.Errorf("retrieval: bleve mapping: %w", err)
	}
	// (scorch's "unsafe_batch" would skip waiting for each batch to persist, but
	// Close then drops what is not yet persisted.)
	idx, err := bleve.NewUsing(tmp, im, scorch.Name, scorch.Name, nil)
	if err != nil {
		return BuildStats{}, fmt.Errorf("retrieval: create bleve index %s: %w", tmp, err)
	}
	fail := func(err error) (BuildStats, error) {
		idx.Close()
		os.RemoveAll(tmp)
		return BuildStats{}, err
	}
	batch := idx.NewBatch()
	n := 0
	flush := func() error {
		if batch.Size() == 0 {
			return nil
		}
		if err := idx.Batch(batch); err != nil {
			return fmt.Errorf("retrieval: bleve batch: %w", err)
		}
		batch.Reset()
		if progress != nil {
			progress(n)
		}
		return nil
	}
	err = st.EachPassage(ctx, func(p core.Passage) error {
		if err := batch.Index(p.ID, map[string]any{bodyField: words(p.Title + " " + p.Text)}); err != nil {
			return fmt.Errorf("retrieval: bleve index passage %s: %w", p.ID, err)
		}
		n++
		if batch.Size() >= batchSize {
			if err := ctx.Err(); err != nil {
				return err
			}
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = idx.SetInternal([]byte(fingerprintKey), []byte(fp))
	}
	if err != nil {
		return fail(err)
	}
	if err := idx.Close(); err != nil {
		os.RemoveAll(tmp)
		return BuildStats{}, fmt.Errorf("retrieval: close bleve index: %w", err)
	}
	if err := os.RemoveAll(path); err != nil {
		return BuildStats{}, fmt.Errorf("retrieval: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return BuildStats{}, fmt.Errorf("retrieval: %w", err)
	}
	return BuildStats{Passages: n, Elapsed: time.Since(start)}, nil
}

// Built reports the build OpenBleve ran (zero when it opened an existing index).
func (b *Bleve) Built() BuildStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.built
}

// Close closes the index (not the store).
func (b *Bleve) Close() error { return b.idx.Close() }

// Search returns the k best passages for query, best first: Score is bleve's
// BM25 score (higher is better), Rank 1-based. Text without words returns no
// passages and no error.
func (b *Bleve) Search(ctx context.Context, q string, k int) ([]core.Passage, error) {
	if k <= 0 {
		return nil, nil
	}
	terms := storage.QueryTerms(q)
	if len(terms) == 0 {
		return nil, nil
	}
	mq, err := b.query(ctx, terms)
	if err != nil {
		return nil, err
	}
	req := bleve.NewSearchRequestOptions(mq, k, 0, false)
	res, err := b.idx.SearchInContext(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("retrieval: bleve search %q: %w", q, err)
	}
	ids := make([]string, len(res.Hits))
	for i, h := range res.Hits {
		ids[i] = h.ID
	}
	ps, err := b.st.PassagesByID(ctx, ids)
	if err != nil {
		return nil, err
	}
	if len(ps) != len(ids) {
		return nil, errors.New("retrieval: bleve index names passages the store does not hold (rebuild it: delete " + BleveIndexPath(b.st.Path()) + ")")
	}
	for i := range ps {
		ps[i].Score = res.Hits[i].Score
		ps[i].Rank = i + 1
	}
	return ps, nil
}

// query builds the disjunction searched for these words: one term query per
// analysed token found in the index, tokens in more than maxPostings passages
// left out (the rarest kept).
func (b *Bleve) query(ctx context.Context, terms []string) (query.Query, error) {
	adv, err := b.idx.Advanced()
	if err != nil {
		return nil, err
	}
	r, err := adv.Reader()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	an := b.idx.Mapping().AnalyzerNamed(analyzerName)
	type term struct {
		tok string
		df  uint64
	}
	var kept []term
	var rarest *term
	for _, w := range terms {
		for _, tok := range an.Analyze([]byte(w)) {
			tfr, err := r.TermFieldReader(ctx, tok.Term, bodyField, false, false, false)
			if err != nil {
				return nil, err
			}
			t := term{string(tok.Term), tfr.Count()}
			tfr.Close()
			if t.df == 0 {
				continue
			}
			if b.maxPostings <= 0 || t.df <= uint64(b.maxPostings) {
				kept = append(kept, t)
			}
			if rarest == nil || t.df < rarest.df {
				rarest = &term{t.tok, t.df}
			}
		}
	}
	if len(kept) == 0 && rarest != nil {
		kept = []term{*rarest}
	}
	if len(kept) == 0 {
		return query.NewMatchNoneQuery(), nil
	}
	qs := make([]query.Query, 0, len(kept))
	seen := map[string]bool{}
	for _, t := range kept {
		if seen[t.tok] {
			continue
		}
		seen[t.tok] = true
		tq := query.NewTermQuery(t.tok)
		tq.SetField(bodyField)
		qs = append(qs, tq)
	}
	return query.NewDisjunctionQuery(qs), nil
}

// WithMaxPostings returns a retriever over the same open index that prunes
// query words as BleveOptions.MaxPostings does (n ≤ 0: no pruning). It needs
// no closing of its own; it stops working when b is closed.
func (b *Bleve) WithMaxPostings(n int) core.Environment {
	return &Bleve{st: b.st, idx: b.idx, maxPostings: n}
}
