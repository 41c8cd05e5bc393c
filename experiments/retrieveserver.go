package experiments

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"unicode"

	"github.com/mem1lab/mem1lab/core"
)

// BM25 parameters of RetrieveServer: Pyserini's defaults (k1 = 0.9, b = 0.4),
// which Search-R1's bm25 retriever uses through Pyserini.
const (
	bm25K1 = 0.9
	bm25B  = 0.4
)

// RetrieveServer is a MEM1 / Search-R1 retrieval server over an in-memory
// corpus, scored with Okapi BM25 (Robertson et al.; Lucene's idf
// ln(1 + (N − df + 0.5)/(df + 0.5)), k1 = 0.9, b = 0.4) over lower-cased
// letter/digit runs of title + text. It serves `mem1lab retrieve-server` and the
// tests of HTTPRetriever.
//
// Protocol (Search-R1 search_r1/search/retrieval_server.py, as MEM1 calls it):
//
//	POST /retrieve  {"queries": ["q", …], "topk": 3, "return_scores": true}
//	→ 200 {"result": [[{"document": {"id": "…", "contents": "\"Title\"\ntext"}, "score": 12.5}, …], …]}
//
// one list per query, best first. topk absent, null or 0 takes DefaultTopK.
// Like the reference, a request without "return_scores": true fails with 500
// "Internal Server Error" (the reference unpacks scores that were not
// computed). A body that is not that JSON object, or without "queries", is
// answered 422 {"detail": "…"} as FastAPI does; another method 405, another
// path 404.
type RetrieveServer struct {
	// DefaultTopK is the passages per query when a request gives no topk (3 if 0).
	DefaultTopK int

	docs     []serverDoc
	postings map[string][]posting
	avgLen   float64
	requests atomic.Int64
}

type serverDoc struct {
	id, contents string
	length       int
}

type posting struct {
	doc int32
	tf  int32
}

// NewRetrieveServer indexes passages (ID, Title, Text; a passage with TitleLine
// keeps that line as its contents' first line, else `"Title"`).
func NewRetrieveServer(passages []core.Passage) *RetrieveServer {
	s := &RetrieveServer{postings: map[string][]posting{}}
	total := 0
	for i, p := range passages {
		line := p.TitleLine
		if line == "" {
			line = `"` + p.Title + `"`
		}
		tf := map[string]int32{}
		n := 0
		for _, w := range bm25Terms(p.Title + " " + p.Text) {
			tf[w]++
			n++
		}
		for w, c := range tf {
			s.postings[w] = append(s.postings[w], posting{doc: int32(i), tf: c})
		}
		s.docs = append(s.docs, serverDoc{id: p.ID, contents: line + "\n" + p.Text, length: n})
		total += n
	}
	if len(s.docs) > 0 {
		s.avgLen = float64(total) / float64(len(s.docs))
	}
	return s
}

// LoadCorpusJSONL reads a corpus file, one JSON object a line: the bundle's
// {"id", "title", "text"} or wiki-18's {"id", "contents"} (`"Title"\ntext`).
// Blank lines are skipped. Errors name the file and line.
func LoadCorpusJSONL(path string) ([]core.Passage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var out []core.Passage
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(strings.TrimSpace(string(b))) == 0 {
			continue
		}
		var d wireDoc
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		p := core.Passage{ID: rawIDString(d.ID), Title: d.Title, Text: d.Text}
		if d.Contents != "" {
			p.Title, p.Text = SplitContents(d.Contents)
			first, _, _ := strings.Cut(d.Contents, "\n")
			p.TitleLine = titleLine(first, p.Title)
		}
		if p.ID == "" || p.ID == "null" {
			return nil, fmt.Errorf("%s:%d: passage has no id", path, line)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no passages", path)
	}
	return out, nil
}

// Len is the number of passages indexed.
func (s *RetrieveServer) Len() int { return len(s.docs) }

// Requests counts the /retrieve requests answered so far (failed ones included).
func (s *RetrieveServer) Requests() int { return int(s.requests.Load()) }

// Search returns the top k passages for query as HTTPRetriever reads them from
// this server's reply (best first, ties by corpus order, 1-based ranks; no
// passage scores 0 or less). It makes the server a core.Environment too.
func (s *RetrieveServer) Search(_ context.Context, query string, k int) ([]core.Passage, error) {
	hits := s.search(query, k)
	out := make([]core.Passage, len(hits))
	for i, h := range hits {
		d := s.docs[h.doc]
		title, text := SplitContents(d.contents)
		line, _, _ := strings.Cut(d.contents, "\n")
		out[i] = core.Passage{ID: d.id, Title: title, Text: text, TitleLine: titleLine(line, title), Score: h.score, Rank: i + 1}
	}
	return out, nil
}

type scored struct {
	doc   int32
	score float64
}

func (s *RetrieveServer) search(query string, k int) []scored {
	if k <= 0 || len(s.docs) == 0 {
		return nil
	}
	n := float64(len(s.docs))
	acc := map[int32]float64{}
	seen := map[string]bool{}
	for _, w := range bm25Terms(query) {
		if seen[w] {
			continue
		}
		seen[w] = true
		ps := s.postings[w]
		if len(ps) == 0 {
			continue
		}
		df := float64(len(ps))
		idf := math.Log(1 + (n-df+0.5)/(df+0.5))
		for _, p := range ps {
			tf := float64(p.tf)
			norm := bm25K1 * (1 - bm25B + bm25B*float64(s.docs[p.doc].length)/s.avgLen)
			acc[p.doc] += idf * tf * (bm25K1 + 1) / (tf + norm)
		}
	}
	hits := make([]scored, 0, len(acc))
	for d, sc := range acc {
		if sc > 0 {
			hits = append(hits, scored{d, sc})
		}
	}
	sort.Slice(hits, func(i, j int) bool {
		if hits[i].score != hits[j].score {
			return hits[i].score > hits[j].score
		}
		return hits[i].doc < hits[j].doc
	})
	if len(hits) > k {
		hits = hits[:k]
	}
	return hits
}

// bm25Terms is the server's analyzer: lower-cased runs of letters and digits.
func bm25Terms(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

func (s *RetrieveServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/retrieve" {
		writeJSON(w, http.StatusNotFound, map[string]string{"detail": "Not Found"})
		return
	}
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"detail": "Method Not Allowed"})
		return
	}
	s.requests.Add(1)
	var req struct {
		Queries      []string `json:"queries"`
		TopK         *int     `json:"topk"`
		ReturnScores *bool    `json:"return_scores"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20))
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"detail": "request body: " + err.Error()})
		return
	}
	if req.Queries == nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"detail": "queries: field required"})
		return
	}
	if req.ReturnScores == nil || !*req.ReturnScores {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("Internal Server Error"))
		return
	}
	k := s.DefaultTopK
	if req.TopK != nil && *req.TopK > 0 {
		k = *req.TopK
	}
	if k <= 0 {
		k = 3
	}
	type doc struct {
		ID       string `json:"id"`
		Contents string `json:"contents"`
	}
	type hit struct {
		Document doc     `json:"document"`
		Score    float64 `json:"score"`
	}
	result := make([][]hit, len(req.Queries))
	for i, q := range req.Queries {
		result[i] = []hit{}
		for _, h := range s.search(q, k) {
			d := s.docs[h.doc]
			result[i] = append(result[i], hit{Document: doc{ID: d.id, Contents: d.contents}, Score: h.score})
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": result})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
