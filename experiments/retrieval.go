package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mem1lab/mem1lab/core"
)

// Retriever kinds (RetrieverConfig.Kind).
const (
	// RetrieverBM25 is the store's FTS5 BM25 index over the imported corpus.
	RetrieverBM25 = "bm25"
	// RetrieverHTTP is a MEM1 / Search-R1 `POST /retrieve` server (HTTPRetriever).
	RetrieverHTTP = "http"
	// RetrieverBM25Tuned is the store's FTS5 index searched with rare-word
	// pruning and its own connection pool (retrieval.KindBM25Tuned).
	RetrieverBM25Tuned = "bm25-tuned"
	// RetrieverBleve is a bleve BM25 index beside the store, built on first use
	// (retrieval.KindBleve).
	RetrieverBleve = "bleve"
)

// localRetriever reports whether kind is an engine over the store's own corpus.
func localRetriever(kind string) bool {
	return kind == RetrieverBM25Tuned || kind == RetrieverBleve
}

// DefaultRetrieverTimeout is the per-request limit of an HTTP retriever whose
// timeout is unset.
const DefaultRetrieverTimeout = 30 * time.Second

// RetrieverConfig is the run's retriever, the TOML table
//
//	retriever = {kind = "http", url = "http://127.0.0.1:8013/retrieve", topk = 3, timeout = 30}
//
// Kind is "bm25" (the store's index; url must be empty) or "http" (url is the
// server's full /retrieve address; a bare host gets "/retrieve"). TopK, when
// set, is the passages per search and replaces top_k; Timeout is seconds per
// request (0 = 30). A config without the table, or with only kind = "bm25",
// is the store's index and hashes as before the table existed.
type RetrieverConfig struct {
	Kind    string  `toml:"kind" json:"kind"`
	URL     string  `toml:"url,omitempty" json:"url,omitempty"`
	TopK    int     `toml:"topk,omitempty" json:"topk,omitempty"`
	Timeout float64 `toml:"timeout,omitempty" json:"timeout,omitempty"`
	// APIKeyEnv (kind "serper") names the environment variable holding the
	// web-search API key (default SERPER_API_KEY); APIKeyKeyring names an OS
	// keyring entry used when the variable is unset. The key itself is never
	// stored.
	APIKeyEnv     string `toml:"api_key_env,omitempty" json:"api_key_env,omitempty"`
	APIKeyKeyring string `toml:"api_key_keyring,omitempty" json:"api_key_keyring,omitempty"`
}

// ParseRetriever reads the --retriever flag and the New experiment picker's
// value: "bm25" (or "") is the store's index (nil, the default), "bm25-tuned"
// and "bleve" are engines over the same corpus, "serper" is
// Serper's web search (key from $SERPER_API_KEY), "serper:URL" a
// Serper-compatible service at URL, anything else a /retrieve URL. Errors: a
// URL that is not http(s) with a host.
func ParseRetriever(s string) (*RetrieverConfig, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, RetrieverBM25) {
		return nil, nil
	}
	if strings.EqualFold(s, RetrieverSerper) || strings.HasPrefix(strings.ToLower(s), RetrieverSerper+":") && !strings.HasPrefix(strings.ToLower(s), "serper://") {
		u, err := NormalizeSerperURL(strings.TrimPrefix(s[len(RetrieverSerper):], ":"))
		if err != nil {
			return nil, err
		}
		return &RetrieverConfig{Kind: RetrieverSerper, URL: u}, nil
	}
	if k := strings.ToLower(s); localRetriever(k) {
		return &RetrieverConfig{Kind: k}, nil
	}
	u, err := NormalizeRetrieveURL(s)
	if err != nil {
		return nil, err
	}
	return &RetrieverConfig{Kind: RetrieverHTTP, URL: u}, nil
}

// String is the --retriever form: "bm25", "bm25-tuned", "bleve", the URL,
// "serper" or "serper:URL".
func (rc *RetrieverConfig) String() string {
	switch {
	case rc == nil:
		return RetrieverBM25
	case rc.Kind == RetrieverHTTP:
		return rc.URL
	case localRetriever(rc.Kind):
		return rc.Kind
	case rc.Kind == RetrieverSerper:
		if u, _ := NormalizeSerperURL(rc.URL); u == DefaultSerperURL {
			return RetrieverSerper
		}
		return RetrieverSerper + ":" + rc.URL
	}
	return RetrieverBM25
}

// NormalizeRetrieveURL checks a /retrieve address: http or https with a host;
// an empty path becomes "/retrieve" (the reference's route).
func NormalizeRetrieveURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", errors.New("retriever URL: empty (want e.g. http://127.0.0.1:8013/retrieve)")
	}
	return serviceURL("retriever URL", raw, " (or use bm25 for the store's index)", "/retrieve")
}

// serviceURL checks raw (trimmed, not empty) as the address of an HTTP
// service (a retriever, a web-search API): http or https with a host; an
// empty path becomes route. Errors start with label and the quoted raw;
// schemeHint follows the bad-scheme message.
func serviceURL(label, raw, schemeHint, route string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", label, raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%s %q: scheme must be http or https%s", label, raw, schemeHint)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%s %q: no host", label, raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = route
	}
	return u.String(), nil
}

// validate reports the table's bad keys, each named "retriever.KEY".
func (rc *RetrieverConfig) validate() []error {
	if rc == nil {
		return nil
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("retriever.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch rc.Kind {
	case RetrieverBM25:
		if rc.URL != "" {
			bad("url", "set with kind = %q: leave it out, or use kind = %q", RetrieverBM25, RetrieverHTTP)
		}
	case RetrieverHTTP:
		if _, err := NormalizeRetrieveURL(rc.URL); err != nil {
			bad("url", "%v", err)
		}
	case RetrieverBM25Tuned, RetrieverBleve:
		if rc.URL != "" {
			bad("url", "set with kind = %q: leave it out, or use kind = %q", rc.Kind, RetrieverHTTP)
		}
	case RetrieverSerper:
		if _, err := NormalizeSerperURL(rc.URL); err != nil {
			bad("url", "%v", err)
		}
	default:
		bad("kind", "%q: want %q, %q, %q, %q or %q", rc.Kind, RetrieverBM25, RetrieverBM25Tuned, RetrieverBleve, RetrieverHTTP, RetrieverSerper)
	}
	if rc.Kind != RetrieverSerper && (rc.APIKeyEnv != "" || rc.APIKeyKeyring != "") {
		bad("api_key_env", "only a %q retriever takes an API key", RetrieverSerper)
	}
	if rc.TopK < 0 || rc.TopK > 100 {
		bad("topk", "%d: want 1..100 (0 = top_k)", rc.TopK)
	}
	if math.IsNaN(rc.Timeout) || rc.Timeout < 0 {
		bad("timeout", "%g: want ≥ 0 seconds (0 = 30)", rc.Timeout)
	}
	return errs
}

// canonical is the table as the config hash sees it: nil for the store's
// index without a topk (the same as no table).
func (rc *RetrieverConfig) canonical() *RetrieverConfig {
	if rc == nil || rc.Kind == RetrieverBM25 && rc.URL == "" && rc.TopK == 0 && rc.Timeout == 0 {
		return nil
	}
	return rc
}

// HTTPRetriever is a core.Environment backed by a MEM1 / Search-R1 retrieval
// server. It sends
//
//	POST {URL}  {"queries":[query],"topk":k,"return_scores":true}
//
// and reads {"result":[[{"document":{"id","contents"},"score"}, …]]}, where
// contents is the wiki-18 form `"Title"\ntext` (first line the title, the rest
// the text; Mem1/inference/data_pipelines.py batch_search). return_scores is
// always sent: the reference server (Search-R1 retrieval_server.py) fails with
// a 500 without it. Hits without the document/score wrapper and documents with
// separate "title"/"text" fields are accepted too. URL is the full endpoint,
// e.g. "http://127.0.0.1:8013/retrieve".
//
// Failures are *CallError values as model calls give them (HTTP status,
// Retry-After, Timeout when the per-request limit fired), so Retryable
// classifies them the same way; a reply that is not the format above is a
// plain error (not retried).
type HTTPRetriever struct {
	URL string
	// Timeout limits each request (0 = none beyond ctx).
	Timeout time.Duration
	// Client is the HTTP client; nil = http.DefaultClient.
	Client *http.Client
}

var _ core.Environment = (*HTTPRetriever)(nil)

// Close lets go of the client's idle connections (the run's pool is its own);
// the retriever can still search afterwards, dialling anew. Never fails.
func (r *HTTPRetriever) Close() error {
	if r.Client != nil {
		r.Client.CloseIdleConnections()
	}
	return nil
}

// Search returns the top k passages for query, best first, with 1-based ranks.
// Errors: transport failures, a non-2xx status (with the start of the body), or
// a reply not in the format above.
func (r *HTTPRetriever) Search(ctx context.Context, query string, k int) ([]core.Passage, error) {
	if k <= 0 {
		return nil, fmt.Errorf("retrieve: top k %d: want ≥ 1", k)
	}
	body, err := json.Marshal(map[string]any{"queries": []string{query}, "topk": k, "return_scores": true})
	if err != nil {
		return nil, err
	}
	req, timedOut, cancel, err := newJSONPost(ctx, r.Timeout, r.URL, body)
	if err != nil {
		return nil, fmt.Errorf("retrieve %s: %w", r.URL, err)
	}
	defer cancel()
	client := r.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, &CallError{Timeout: timedOut(), Err: fmt.Errorf("retrieve %s: %w", r.URL, err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		raw, dropped, _ := boundedBody(resp)
		msg := fmt.Sprintf("retrieve %s: %s: %s", r.URL, resp.Status, clip(string(raw), 300))
		if dropped > 0 {
			msg += fmt.Sprintf(" [error body cut; %s dropped]", byteSize(dropped))
		}
		return nil, &CallError{Status: resp.StatusCode, RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()),
			Err: errors.New(msg)}
	}
	raw, err := readReply(resp, "retrieve "+r.URL, timedOut)
	if err != nil {
		return nil, err
	}
	ps, err := parseRetrieveReply(raw, k)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.URL, err)
	}
	return ps, nil
}

// parseRetrieveReply decodes a /retrieve reply for one query.
func parseRetrieveReply(raw []byte, k int) ([]core.Passage, error) {
	var wire struct {
		Result []json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(raw, &wire); err != nil {
		return nil, fmt.Errorf("retrieve: reply is not JSON: %w", err)
	}
	if wire.Result == nil {
		return nil, fmt.Errorf("retrieve: reply has no \"result\": %s", clip(string(raw), 200))
	}
	if len(wire.Result) == 0 {
		return nil, nil
	}
	var hits []json.RawMessage
	if err := json.Unmarshal(wire.Result[0], &hits); err != nil {
		return nil, fmt.Errorf("retrieve: result[0] is not a list: %w", err)
	}
	out := make([]core.Passage, 0, len(hits))
	for i, h := range hits {
		if len(out) == k {
			break
		}
		p, err := parseHit(h)
		if err != nil {
			return nil, fmt.Errorf("retrieve: result[0][%d]: %w", i, err)
		}
		p.Rank = len(out) + 1
		out = append(out, p)
	}
	return out, nil
}

type wireDoc struct {
	ID       json.RawMessage `json:"id"`
	Contents string          `json:"contents"`
	Title    string          `json:"title"`
	Text     string          `json:"text"`
}

func parseHit(h json.RawMessage) (core.Passage, error) {
	var wrapped struct {
		Document *wireDoc        `json:"document"`
		Score    json.RawMessage `json:"score"`
	}
	if err := json.Unmarshal(h, &wrapped); err != nil {
		return core.Passage{}, err
	}
	doc := wrapped.Document
	if doc == nil { // return_scores false: the hit is the document itself
		doc = &wireDoc{}
		if err := json.Unmarshal(h, doc); err != nil {
			return core.Passage{}, err
		}
	}
	p := core.Passage{ID: rawIDString(doc.ID)}
	if doc.Contents != "" {
		p.Title, p.Text = SplitContents(doc.Contents)
		line, _, _ := strings.Cut(doc.Contents, "\n")
		p.TitleLine = titleLine(line, p.Title)
	} else {
		p.Title, p.Text = doc.Title, doc.Text
	}
	if p.Title == "" && p.Text == "" {
		return core.Passage{}, fmt.Errorf("document has neither contents nor title/text")
	}
	if len(wrapped.Score) > 0 {
		var f float64
		var s string
		switch {
		case json.Unmarshal(wrapped.Score, &f) == nil:
			p.Score = f
		case json.Unmarshal(wrapped.Score, &s) == nil:
			p.Score, _ = strconv.ParseFloat(s, 64)
		}
	}
	return p, nil
}

// rawIDString renders a JSON id (string or number) as text.
func rawIDString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(raw))
}

// SplitContents splits a wiki-18 `contents` value as the reference does
// (Mem1/inference/data_pipelines.py passages2string): the title line is
// everything before the first "\n", the text everything after it ("" when there
// is no newline). title is the title line without its surrounding double
// quotes; the reference shows the line itself, so RenderPassages needs
// TitleLine when the line is not exactly `"title"` (see titleLine).
func SplitContents(contents string) (title, text string) {
	line, text, _ := strings.Cut(contents, "\n")
	title = line
	if len(line) >= 2 && strings.HasPrefix(line, `"`) && strings.HasSuffix(line, `"`) {
		title = line[1 : len(line)-1]
	}
	return title, text
}

// titleLine is the Passage.TitleLine of a contents title line: "" when
// RenderPassages' `"title"` gives the line back byte for byte, else the line.
func titleLine(line, title string) string {
	if `"`+title+`"` == line {
		return ""
	}
	return line
}

func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ReplaceRetriever is old with its target set from s ("bm25" or a /retrieve
// URL, as ParseRetriever reads it), keeping old's topk and, for a URL, its
// timeout: what --retriever and the New experiment picker do to a loaded
// config.
func ReplaceRetriever(old *RetrieverConfig, s string) (*RetrieverConfig, error) {
	rc, err := ParseRetriever(s)
	if err != nil || old == nil {
		return rc, err
	}
	if old.TopK > 0 {
		if rc == nil {
			rc = &RetrieverConfig{Kind: RetrieverBM25}
		}
		rc.TopK = old.TopK
	}
	if rc != nil && rc.Kind != RetrieverBM25 {
		rc.Timeout = old.Timeout
	}
	if rc != nil && rc.Kind == RetrieverSerper && old.Kind == RetrieverSerper {
		rc.APIKeyEnv, rc.APIKeyKeyring = old.APIKeyEnv, old.APIKeyKeyring
	}
	return rc, nil
}

// RetrieverProbeQuery is the query the retriever Test button sends.
const RetrieverProbeQuery = "Who wrote the novel Nineteen Eighty-Four?"

// RetrieverProbe is what one test search found: how many passages, the first
// one's title, and how long the call took.
type RetrieverProbe struct {
	Passages   int
	FirstTitle string
	Latency    time.Duration
}

// ProbeRetriever sends RetrieverProbeQuery, top k, to the /retrieve server or
// the web search rc names (kind "http" or "serper", uncached) and reports what
// came back. Errors: rc is bm25, a serper retriever has no key, or the search
// failed (see HTTPRetriever.Search, SerperRetriever.Search).
func ProbeRetriever(ctx context.Context, rc *RetrieverConfig, k int) (RetrieverProbe, error) {
	if rc == nil || rc.Kind != RetrieverHTTP && rc.Kind != RetrieverSerper {
		return RetrieverProbe{}, errors.New("retriever: only a /retrieve server or a web search can be tested (bm25 is the store's own index)")
	}
	env, err := NewRetriever(RunConfig{Retriever: rc}, nil)
	if err != nil {
		return RetrieverProbe{}, err
	}
	if c, ok := env.(io.Closer); ok {
		defer c.Close() // each Test click builds its own pool
	}
	start := time.Now()
	ps, err := env.Search(ctx, RetrieverProbeQuery, max(k, 1))
	p := RetrieverProbe{Latency: time.Since(start), Passages: len(ps)}
	if len(ps) > 0 {
		p.FirstTitle = ps[0].Title
	}
	return p, err
}
