package experiments

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments/retrieval"
	"github.com/mem1lab/mem1lab/storage"
)

// RetrieverAttemptEndpoint is the endpoint name under which a run records the
// failed calls of its retriever (storage.Attempt.Endpoint).
const RetrieverAttemptEndpoint = "retriever"

// NewRetriever is the search environment cfg.Retriever selects: an
// HTTPRetriever for kind "http" (timeout retriever.timeout, 30 s when unset),
// an engine over the store's corpus for "bm25-tuned" and "bleve" (store must
// be the *storage.Store; opened on the first search, an io.Closer), a
// SerperRetriever for kind "serper" (its key resolved now; see
// newSerperRetriever), else store (the store's BM25 index). The HTTP and
// Serper retrievers keep one idle connection per rollout that can search at
// once (retrieverWorkers), so a search does not dial a new connection.
// Errors: an invalid
// retriever table, a serper retriever without a key, or kind "bm25" with a nil
// store.
func NewRetriever(cfg RunConfig, store core.Environment) (core.Environment, error) {
	rc := cfg.Retriever
	if errs := rc.validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if rc != nil && rc.Kind == RetrieverHTTP {
		u, _ := NormalizeRetrieveURL(rc.URL)
		timeout := DefaultRetrieverTimeout
		if rc.Timeout > 0 {
			timeout = time.Duration(rc.Timeout * float64(time.Second))
		}
		return &HTTPRetriever{URL: u, Timeout: timeout, Client: retrieverClient(cfg)}, nil
	}
	if rc != nil && rc.Kind == RetrieverSerper {
		s, err := newSerperRetriever(rc)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		if s.Client == nil {
			s.Client = retrieverClient(cfg)
		}
		return s, nil
	}
	if store == nil {
		return nil, errors.New("runner: no environment for the bm25 retriever")
	}
	if rc != nil && localRetriever(rc.Kind) {
		st, ok := store.(*storage.Store)
		if !ok {
			return nil, fmt.Errorf("runner: retriever %q searches the store's corpus, and this run has no store", rc.Kind)
		}
		return &localEngine{kind: rc.Kind, st: st}, nil
	}
	return store, nil
}

// retrieverWorkers is how many of cfg's rollouts can search at once: the
// sum of its endpoints' concurrency, at least 1.
func retrieverWorkers(cfg RunConfig) int {
	n := 0
	for _, p := range cfg.EndpointList() {
		n += max(p.Concurrency, 1)
	}
	return max(n, 1)
}

// retrieverClient is an HTTP client whose pool keeps an idle connection for
// each rollout of cfg that can search at once (http.DefaultClient keeps 2
// per host, so with more rollouts most searches would dial anew).
func retrieverClient(cfg RunConfig) *http.Client {
	return &http.Client{Transport: newPoolTransport(retrieverWorkers(cfg))}
}

// localEngine opens a retriever over the store's corpus (retrieval.Open) on
// its first search, so validating a config builds no index; Close releases it.
type localEngine struct {
	kind string
	st   *storage.Store

	once   sync.Once
	env    core.Environment
	closer io.Closer
	err    error
}

func (e *localEngine) Search(ctx context.Context, query string, k int) ([]core.Passage, error) {
	e.once.Do(func() { e.env, e.closer, e.err = retrieval.Open(ctx, e.kind, e.st) })
	if e.err != nil {
		return nil, fmt.Errorf("retriever %s: %w", e.kind, e.err)
	}
	return e.env.Search(ctx, query, k)
}

// Close releases the engine once it was opened.
func (e *localEngine) Close() error {
	e.once.Do(func() { e.err = errors.New("closed") })
	if e.closer != nil {
		return e.closer.Close()
	}
	return nil
}

// retrieverState is a run's retriever with its circuit breaker, shared by
// every rollout of the run.
type retrieverState struct {
	env core.Environment
	ep  *endpointState
}

func newRetrieverState(env core.Environment, rp retryPolicy) *retrieverState {
	return &retrieverState{env: env, ep: newEndpointState(EndpointProfile{Name: RetrieverAttemptEndpoint}, nil, rp)}
}

// callEnv is the environment one rollout searches: the run's retriever with the
// fault handling of model calls (callModel): it waits for the pause gate and
// the retriever's breaker, retries failures Retryable accepts with the run's
// backoff (honouring Retry-After), and records each failed attempt under the
// turn whose query it was.
type callEnv struct {
	rs    *retrieverState
	model *callModel // the rollout's model: store, gate, retry policy, turn index, tracker
}

func (e *callEnv) Search(ctx context.Context, query string, k int) ([]core.Passage, error) {
	m := e.model
	turn := max(m.turn-1, 0) // the search follows this turn's successful model call
	var ps []core.Passage
	err := retriedCall{gate: m.gate, ep: e.rs.ep, rp: m.rp, store: m.store, tr: m.tr, red: m.red, rolloutID: m.rolloutID,
		turn: turn, endpoint: RetrieverAttemptEndpoint}.do(ctx, func(ctx context.Context) error {
		var err error
		ps, err = e.rs.env.Search(ctx, query, k)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ps, nil
}
