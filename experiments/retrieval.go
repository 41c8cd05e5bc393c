package experiments

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/mem1lab/mem1lab/core"
)

// HTTPRetriever is a core.Environment backed by a MEM1 / Search-R1 retrieval
// server. It sends
//
//	POST {URL}  {"queries":[query],"topk":k,"return_scores":true}
//
// and reads {"result":[[{"document":{"id","contents"},"score"}, …]]}, where
// contents is the wiki-18 form `"Title"\ntext` (first line the quoted title,
// the rest the text). Hits without the document/score wrapper (return_scores
// false) and documents with separate "title"/"text" fields are accepted too.
// URL is the full endpoint, e.g. "http://127.0.0.1:8000/retrieve".
type HTTPRetriever struct {
	URL string
	// Client is the HTTP client; nil = http.DefaultClient.
	Client *http.Client
}

var _ core.Environment = (*HTTPRetriever)(nil)

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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("retrieve %s: %w", r.URL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	client := r.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("retrieve %s: %w", r.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		raw, dropped, _ := boundedBody(resp)
		if dropped > 0 {
			return nil, fmt.Errorf("retrieve %s: %s: %s [error body cut; %s dropped]", r.URL, resp.Status, clip(string(raw), 300), byteSize(dropped))
		}
		return nil, fmt.Errorf("retrieve %s: %s: %s", r.URL, resp.Status, clip(string(raw), 300))
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, DefaultMaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("retrieve %s: reading reply: %w", r.URL, err)
	}
	if len(raw) > DefaultMaxResponseBytes {
		return nil, fmt.Errorf("retrieve %s: %w: more than %s", r.URL, ErrResponseTooLarge, byteSize(DefaultMaxResponseBytes))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("retrieve %s: %s: %s", r.URL, resp.Status, clip(string(raw), 300))
	}
	return parseRetrieveReply(raw, k)
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

// SplitContents splits a wiki-18 `contents` value into title and text: the first
// line is the title (surrounding double quotes removed), the remaining lines the
// text (MEM1's inference/data_pipelines.py reads it the same way).
func SplitContents(contents string) (title, text string) {
	title, text, _ = strings.Cut(contents, "\n")
	title = strings.TrimSpace(title)
	if len(title) >= 2 && strings.HasPrefix(title, `"`) && strings.HasSuffix(title, `"`) {
		title = title[1 : len(title)-1]
	}
	return title, text
}

func clip(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
