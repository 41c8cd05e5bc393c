package experiments

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"regexp"

	"github.com/mem1lab/mem1lab/core"
)

// ResponseCache keeps model replies by request (*storage.Store has it): the
// body of a 2xx reply under the hex SHA-256 of the endpoint's base URL, the
// model and the exact request body (ResponseCacheKey).
type ResponseCache interface {
	CachedResponse(ctx context.Context, key string) ([]byte, bool, error)
	PutCachedResponse(ctx context.Context, key, endpoint, model string, body []byte) error
}

// RetrievalCache keeps search results by (retriever, query, k) (*storage.Store has it).
type RetrievalCache interface {
	CachedRetrieval(ctx context.Context, retriever, query string, k int) ([]core.Passage, bool, error)
	PutCachedRetrieval(ctx context.Context, retriever, query string, k int, ps []core.Passage) error
}

type responseCacheCtx struct{}

// WithResponseCache returns ctx whose model calls are answered from c when
// the same request was answered before, and stored in c otherwise.
func WithResponseCache(ctx context.Context, c ResponseCache) context.Context {
	return context.WithValue(ctx, responseCacheCtx{}, c)
}

func responseCacheFrom(ctx context.Context) ResponseCache {
	c, _ := ctx.Value(responseCacheCtx{}).(ResponseCache)
	return c
}

// userField matches the OpenAI "user" member go-openai encodes: the session
// key differs per rollout and is left out of the cache key, so the same
// request from two rollouts (the first turn of mem1 and of full on one task)
// is one entry.
var userField = regexp.MustCompile(`,"user":"[^"\\]*"`)

// ResponseCacheKey is the cache key of a request: hex SHA-256 of the base
// URL, NUL, the model, NUL and the request body (its "user" member removed).
func ResponseCacheKey(baseURL, model string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(baseURL))
	h.Write([]byte{0})
	h.Write([]byte(model))
	h.Write([]byte{0})
	h.Write(userField.ReplaceAll(body, nil))
	return hex.EncodeToString(h.Sum(nil))
}

// cacheLookup answers req from the slot's cache: a stored reply becomes a
// 200 response (and the slot is marked cached); nil means send it. The
// request body is read and replaced.
func cacheLookup(req *http.Request, slot *captureSlot) *http.Response {
	if slot == nil || slot.cache == nil || req.Body == nil || req.Method != http.MethodPost {
		return nil
	}
	body, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	req.Body = io.NopCloser(bytes.NewReader(body))
	req.ContentLength = int64(len(body))
	if err != nil {
		return nil
	}
	slot.cacheKey = ResponseCacheKey(slot.cacheURL, slot.cacheModel, body)
	stored, ok, err := slot.cache.CachedResponse(req.Context(), slot.cacheKey)
	if err != nil || !ok {
		return nil
	}
	slot.cached = true
	return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(bytes.NewReader(stored)),
		ContentLength: int64(len(stored)), Request: req}
}

// cacheStore keeps a 2xx reply body for the slot's request.
func cacheStore(ctx context.Context, slot *captureSlot, body []byte) {
	if slot == nil || slot.cache == nil || slot.cached || slot.cacheKey == "" {
		return
	}
	_ = slot.cache.PutCachedResponse(context.WithoutCancel(ctx), slot.cacheKey, slot.cacheURL, slot.cacheModel, body)
}

// cachedEnv answers searches from a RetrievalCache, asking env on a miss.
type cachedEnv struct {
	env       core.Environment
	cache     RetrievalCache
	retriever string // names the retriever in the cache key
}

func (e *cachedEnv) Search(ctx context.Context, q string, k int) ([]core.Passage, error) {
	if ps, ok, err := e.cache.CachedRetrieval(ctx, e.retriever, q, k); err == nil && ok {
		return ps, nil
	}
	ps, err := e.env.Search(ctx, q, k)
	if err != nil {
		return ps, err
	}
	_ = e.cache.PutCachedRetrieval(context.WithoutCancel(ctx), e.retriever, q, k, ps)
	return ps, nil
}

// retrieverCacheName names cfg's retriever for the retrieval cache: "bm25",
// or "http " and the server's URL.
func retrieverCacheName(cfg RunConfig) string {
	if cfg.Retriever != nil && cfg.Retriever.Kind != "" && cfg.Retriever.Kind != "bm25" {
		return cfg.Retriever.Kind + " " + cfg.Retriever.URL
	}
	return "bm25"
}
