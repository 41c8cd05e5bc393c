package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mem1lab/mem1lab/core"
)

// RetrieverSerper is a web-search API speaking Serper's shape (SerperRetriever):
// MEM1's open-domain web QA setting.
const RetrieverSerper = "serper"

// DefaultSerperURL is Serper's search endpoint; any service answering the same
// request and reply shape can replace it (retriever.url).
const DefaultSerperURL = "https://google.serper.dev/search"

// DefaultSerperKeyEnv is the environment variable a serper retriever reads its
// API key from when retriever.api_key_env is unset.
const DefaultSerperKeyEnv = "SERPER_API_KEY"

// NormalizeSerperURL checks a Serper-compatible search address: http or https
// with a host; an empty path becomes "/search" (Serper's route).
func NormalizeSerperURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return DefaultSerperURL, nil
	}
	return serviceURL("web search URL", raw, "", "/search")
}

// WebSearchCache keeps a web-search API's raw replies per (endpoint, query, k)
// so that a rerun costs no API calls (*storage.Store has it:
// web_search_cache).
type WebSearchCache interface {
	CachedWebSearch(ctx context.Context, endpoint, query string, k int) ([]byte, time.Time, bool, error)
	PutWebSearch(ctx context.Context, endpoint, query string, k int, reply []byte) error
}

// SerperRetriever is a core.Environment backed by a web-search API in Serper's
// shape. It sends
//
//	POST {URL}  X-API-KEY: {Key}  {"q": query, "num": k}
//
// and reads {"answerBox": {"title","snippet"|"answer","link"}, "organic":
// [{"title","snippet","link"}, …]}. The passages are those MEM1's web-search
// server builds (Search-R1's serp search server, `"title"\nsnippet` contents
// rendered as `Doc k(Title: "title") snippet`): the answer box first when the
// reply has one, then the first k organic results; a missing title is
// "No title." and a missing snippet "No snippet available." as there. The
// answer box's text is its snippet, else its answer.
//
// Our choice against the reference: MEM1's server reads SerpAPI's snake_case
// keys (answer_box, organic_results), which a Serper reply does not have, so
// it never shows the answer box. We read Serper's keys, so the answer box is
// shown as the server means it to be; a search with an answer box therefore
// gives k+1 passages.
//
// With Cache set, a cached reply for (URL, query, k) is used instead of a
// call, and each fresh reply is cached; a failed cache write does not fail
// the search (CacheErrors counts them). Failures are *CallError values (HTTP
// status, Retry-After, Timeout) that Retryable classifies like model calls;
// a reply that is not JSON or lacks "organic" is a plain error (not retried).
// The key is only held in memory and never appears in errors.
type SerperRetriever struct {
	URL string
	Key string
	// Timeout limits each request (0 = none beyond ctx).
	Timeout time.Duration
	Client  *http.Client
	Cache   WebSearchCache

	calls, cacheErrors atomic.Int64
}

var _ core.Environment = (*SerperRetriever)(nil)

// Close lets go of the client's idle connections, as HTTPRetriever.Close.
func (r *SerperRetriever) Close() error {
	if r.Client != nil {
		r.Client.CloseIdleConnections()
	}
	return nil
}

// Calls is the number of HTTP requests sent so far (cache hits send none).
func (r *SerperRetriever) Calls() int64 { return r.calls.Load() }

// CacheErrors is the number of cache reads or writes that failed so far.
func (r *SerperRetriever) CacheErrors() int64 { return r.cacheErrors.Load() }

// Search returns the passages for query as described on SerperRetriever, with
// 1-based ranks. Errors: k < 1, transport failures, a non-2xx status (with the
// start of the body), or a reply not in Serper's shape.
func (r *SerperRetriever) Search(ctx context.Context, query string, k int) ([]core.Passage, error) {
	if k <= 0 {
		return nil, fmt.Errorf("web search: top k %d: want ≥ 1", k)
	}
	if r.Cache != nil {
		raw, _, ok, err := r.Cache.CachedWebSearch(ctx, r.URL, query, k)
		if err != nil {
			r.cacheErrors.Add(1)
		} else if ok {
			ps, err := ParseSerperReply(raw, k)
			if err == nil {
				return ps, nil
			}
			r.cacheErrors.Add(1) // a bad cached reply: ask again
		}
	}
	raw, err := r.fetch(ctx, query, k)
	if err != nil {
		return nil, err
	}
	ps, err := ParseSerperReply(raw, k)
	if err != nil {
		return nil, fmt.Errorf("web search %s: %w", r.URL, err)
	}
	if r.Cache != nil {
		if err := r.Cache.PutWebSearch(context.WithoutCancel(ctx), r.URL, query, k, raw); err != nil {
			r.cacheErrors.Add(1)
		}
	}
	return ps, nil
}

func (r *SerperRetriever) fetch(ctx context.Context, query string, k int) ([]byte, error) {
	body, err := json.Marshal(map[string]any{"q": query, "num": k})
	if err != nil {
		return nil, err
	}
	req, timedOut, cancel, err := newJSONPost(ctx, r.Timeout, r.URL, body)
	if err != nil {
		return nil, fmt.Errorf("web search %s: %w", r.URL, err)
	}
	defer cancel()
	req.Header.Set("X-API-KEY", r.Key)
	client := r.Client
	if client == nil {
		client = http.DefaultClient
	}
	r.calls.Add(1)
	resp, err := client.Do(req)
	if err != nil {
		return nil, &CallError{Timeout: timedOut(), Err: fmt.Errorf("web search %s: %w", r.URL, scrubKey(err, r.Key))}
	}
	defer resp.Body.Close()
	var raw []byte
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		raw, _, _ = boundedBody(resp) // an error page is read to maxErrorBody at most
	} else {
		if raw, err = readReply(resp, "web search "+r.URL, timedOut); err != nil {
			return nil, err
		}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := clip(string(raw), 300)
		if r.Key != "" {
			msg = strings.ReplaceAll(msg, r.Key, "[key]")
		}
		return nil, &CallError{Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
			Err: fmt.Errorf("web search %s: %s: %s", r.URL, resp.Status, msg)}
	}
	return raw, nil
}

// scrubKey is err with every occurrence of key replaced (transport errors may
// quote a request).
func scrubKey(err error, key string) error {
	if key == "" || !strings.Contains(err.Error(), key) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), key, "[key]"))
}

// ParseSerperReply decodes a Serper-shaped reply into passages: the answer
// box (when present) then the first k organic results, ranks 1-based, each
// result's link as its ID. Errors: not JSON, no "organic" list, or an entry
// that is not an object.
func ParseSerperReply(raw []byte, k int) ([]core.Passage, error) {
	type hit struct {
		Title   *string `json:"title"`
		Snippet *string `json:"snippet"`
		Answer  *string `json:"answer"`
		Link    string  `json:"link"`
	}
	var wire struct {
		AnswerBox *hit            `json:"answerBox"`
		Organic   json.RawMessage `json:"organic"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil {
		return nil, fmt.Errorf("web search: reply is not JSON: %w", err)
	}
	if len(wire.Organic) == 0 || string(wire.Organic) == "null" {
		return nil, fmt.Errorf("web search: reply has no \"organic\" results list: %s", clip(string(raw), 200))
	}
	var organic []hit
	if err := json.Unmarshal(wire.Organic, &organic); err != nil {
		return nil, fmt.Errorf("web search: \"organic\" is not a list of results: %w", err)
	}
	str := func(p *string, def string) string {
		if p == nil || *p == "" {
			return def
		}
		return *p
	}
	var out []core.Passage
	add := func(h hit, text string) {
		out = append(out, core.Passage{ID: h.Link, Title: str(h.Title, "No title."), Text: text, Rank: len(out) + 1})
	}
	if b := wire.AnswerBox; b != nil {
		text := str(b.Snippet, "")
		if text == "" {
			text = str(b.Answer, "No snippet available.")
		}
		add(*b, text)
	}
	for i, h := range organic {
		if i == k {
			break
		}
		add(h, str(h.Snippet, "No snippet available."))
	}
	return out, nil
}

// newSerperRetriever builds the serper retriever rc names, resolving its key
// from api_key_env (default SERPER_API_KEY) or the OS keyring entry
// api_key_keyring. Errors: no key found.
func newSerperRetriever(rc *RetrieverConfig) (*SerperRetriever, error) {
	u, _ := NormalizeSerperURL(rc.URL)
	env := rc.APIKeyEnv
	if env == "" && rc.APIKeyKeyring == "" {
		env = DefaultSerperKeyEnv
	}
	key, err := ResolveKey(env, rc.APIKeyKeyring)
	if err != nil {
		return nil, fmt.Errorf("retriever: serper API key: %w", err)
	}
	if key == "" {
		return nil, fmt.Errorf("retriever: serper API key: $%s is not set (retriever.api_key_env names the variable; or set retriever.api_key_keyring)", env)
	}
	timeout := DefaultRetrieverTimeout
	if rc.Timeout > 0 {
		timeout = time.Duration(rc.Timeout * float64(time.Second))
	}
	return &SerperRetriever{URL: u, Key: key, Timeout: timeout}, nil
}

// retriever is NewRetriever(cfg, r.Env) with the run's store as the cache of a
// web-search retriever (when the store keeps one).
func (r *Runner) retriever(cfg RunConfig) (core.Environment, error) {
	env, err := NewRetriever(cfg, r.Env)
	if err != nil {
		return nil, err
	}
	if s, ok := env.(*SerperRetriever); ok && s.Cache == nil {
		if c, ok := r.Store.(WebSearchCache); ok {
			s.Cache = c
		}
	}
	return env, err
}

// qaFamilyConfig reports an error when a stored config belongs to another
// task family than qa (its "family" key, e.g. a WebShop experiment), which
// this runner cannot play.
func qaFamilyConfig(expID int64, configJSON string) error {
	var f struct {
		Family string `json:"family"`
	}
	if json.Unmarshal([]byte(configJSON), &f) == nil && f.Family != "" && f.Family != core.FamilyQA {
		return fmt.Errorf("runner: experiment %d is a %s experiment (resume it with `mem1lab %s-run --resume %d`)", expID, f.Family, f.Family, expID)
	}
	return nil
}
