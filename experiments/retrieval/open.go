package retrieval

import (
	"context"
	"fmt"
	"io"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// Kinds lists the retriever names Open accepts, default first.
var Kinds = []string{KindBM25, KindBM25Tuned, KindBleve}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// Open returns the retriever named kind over the passages of st, and what to
// close when done (never nil; closing it leaves st open):
//   - "bm25" (or ""): st itself, FTS5 bm25() over every query word (Store.Search);
//   - "bm25-tuned": storage.TunedSearcher with default options;
//   - "bleve": the bleve index beside the store (BleveIndexPath), built on first
//     use or when the corpus changed (see OpenBleve).
//
// Errors: an unknown kind (listing the known ones), or the engine's open error.
func Open(ctx context.Context, kind string, st *storage.Store) (core.Environment, io.Closer, error) {
	switch kind {
	case "", KindBM25:
		return st, nopCloser{}, nil
	case KindBM25Tuned:
		t, err := st.TunedSearcher(storage.TunedOptions{})
		if err != nil {
			return nil, nil, err
		}
		return t, t, nil
	case KindBleve:
		b, err := OpenBleve(ctx, st, BleveOptions{})
		if err != nil {
			return nil, nil, err
		}
		return b, b, nil
	}
	return nil, nil, fmt.Errorf("retrieval: unknown retriever %q (known: %v)", kind, Kinds)
}
