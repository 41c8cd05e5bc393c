package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

var (
	corpusOnce   sync.Once
	corpusServer *RetrieveServer
	corpusErr    error
)

// bundleRetrieveServer is a RetrieveServer over the bundle's corpus (built once).
func bundleRetrieveServer(t *testing.T) *RetrieveServer {
	t.Helper()
	path := requireBundleFile(t, "unified/corpus.jsonl")
	corpusOnce.Do(func() {
		var ps []core.Passage
		if ps, corpusErr = LoadCorpusJSONL(path); corpusErr == nil {
			corpusServer = NewRetrieveServer(ps)
		}
	})
	require.NoError(t, corpusErr)
	return corpusServer
}

// post sends body to url and returns the status and reply.
func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestRetrieveServerProtocolOverBundle(t *testing.T) {
	rs := bundleRetrieveServer(t)
	srv := httptest.NewServer(rs)
	defer srv.Close()
	url := srv.URL + "/retrieve"

	// The reference shape: one list per query, document {id, contents} and a score.
	code, body := post(t, url, `{"queries":["Socialist Revolutionary Party Russia","zzzqqq"],"topk":2,"return_scores":true}`)
	require.Equal(t, http.StatusOK, code, body)
	var reply struct {
		Result [][]struct {
			Document struct {
				ID       string `json:"id"`
				Contents string `json:"contents"`
			} `json:"document"`
			Score float64 `json:"score"`
		} `json:"result"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &reply))
	require.Len(t, reply.Result, 2)
	require.Len(t, reply.Result[0], 2)
	assert.Empty(t, reply.Result[1], "a query matching nothing gets an empty list")
	top := reply.Result[0][0]
	assert.Equal(t, "hp-000001", top.Document.ID)
	assert.True(t, strings.HasPrefix(top.Document.Contents, "\"Socialist Revolutionary Party\"\nThe Socialist Revolutionary Party, or Party"), top.Document.Contents)
	assert.Greater(t, top.Score, reply.Result[0][1].Score)

	// topk absent takes the default 3.
	code, body = post(t, url, `{"queries":["Russian Revolution"],"return_scores":true}`)
	require.Equal(t, http.StatusOK, code)
	require.NoError(t, json.Unmarshal([]byte(body), &reply))
	assert.Len(t, reply.Result[0], 3)

	// Without return_scores the reference server fails; so does this one.
	for _, b := range []string{`{"queries":["Russian Revolution"],"topk":3}`, `{"queries":["x"],"topk":3,"return_scores":false}`} {
		code, body = post(t, url, b)
		assert.Equal(t, http.StatusInternalServerError, code, b)
		assert.Equal(t, "Internal Server Error", body)
	}
	code, _ = post(t, url, `{"topk":3,"return_scores":true}`)
	assert.Equal(t, http.StatusUnprocessableEntity, code)
	code, _ = post(t, url, `{"queries":`)
	assert.Equal(t, http.StatusUnprocessableEntity, code)
	code, _ = post(t, srv.URL+"/search", `{}`)
	assert.Equal(t, http.StatusNotFound, code)
	resp, err := http.Get(url)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	// The client reads exactly what the server ranks, and always sends return_scores.
	ps, err := (&HTTPRetriever{URL: url}).Search(context.Background(), "Socialist Revolutionary Party Russia", 3)
	require.NoError(t, err)
	want, _ := rs.Search(context.Background(), "Socialist Revolutionary Party Russia", 3)
	assert.Equal(t, want, ps)
	assert.Equal(t, "Socialist Revolutionary Party", ps[0].Title)
	assert.Empty(t, ps[0].TitleLine, "a quoted title renders as the store's passages do")
}

// referencePassages2String transcribes MEM1's passages2string
// (Mem1/inference/data_pipelines.py) over raw contents values.
func referencePassages2String(contents []string) string {
	var b strings.Builder
	for i, c := range contents {
		parts := strings.Split(c, "\n")
		fmt.Fprintf(&b, "Doc %d(Title: %s) %s\n", i+1, parts[0], strings.Join(parts[1:], "\n"))
	}
	return b.String()
}

func TestRetrievedPassagesRenderAsTheReference(t *testing.T) {
	contents := []string{
		"\"Evan Morris\"\nEvan L. Morris was a lobbyist.",
		"\"Two lines\"\nfirst\nsecond",
		"No quotes\nplain title",
		" \"Spaced\" \ntext",
		"\"Only a title\"",
		"\"He said \"hi\"\"\nquotes inside",
	}
	var hits []string
	for i, c := range contents {
		b, err := json.Marshal(map[string]any{"document": map[string]any{"id": fmt.Sprint(i), "contents": c}, "score": float64(10 - i)})
		require.NoError(t, err)
		hits = append(hits, string(b))
	}
	ps, err := parseRetrieveReply([]byte(`{"result":[[`+strings.Join(hits, ",")+`]]}`), len(contents))
	require.NoError(t, err)
	assert.Equal(t, referencePassages2String(contents), core.RenderPassages(ps))
	assert.Equal(t, "Evan Morris", ps[0].Title)
	assert.Equal(t, "first\nsecond", ps[1].Text)
	assert.Equal(t, "No quotes", ps[2].TitleLine)

	// The server gives back what it was given, so a round trip renders the same.
	rs := NewRetrieveServer(ps)
	srv := httptest.NewServer(rs)
	defer srv.Close()
	_, err = (&HTTPRetriever{URL: srv.URL}).Search(context.Background(), "plain title", 1)
	require.ErrorContains(t, err, "404", "a bare host is not rewritten by the client itself")
	u, err := NormalizeRetrieveURL(srv.URL)
	require.NoError(t, err)
	got, err := (&HTTPRetriever{URL: u}).Search(context.Background(), "plain title", 1)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, "Doc 1(Title: No quotes) plain title\n", core.RenderPassages(got))
}

// TestHTTPRetrieverFaults checks how each failure of a /retrieve server is
// classified: the same rule as model calls (Retryable).
func TestHTTPRetrieverFaults(t *testing.T) {
	cases := []struct {
		name      string
		handler   http.HandlerFunc
		retryable bool
		status    int
		check     func(t *testing.T, ce *CallError)
	}{
		{"503", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "2")
			http.Error(w, "index loading", http.StatusServiceUnavailable)
		}, true, 503, func(t *testing.T, ce *CallError) { assert.Equal(t, 2*time.Second, ce.RetryAfter) }},
		{"429", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "slow down", http.StatusTooManyRequests) }, true, 429, nil},
		{"422", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"detail":"queries: field required"}`, http.StatusUnprocessableEntity)
		}, false, 422, nil},
		{"timeout", hang, true, 0,
			func(t *testing.T, ce *CallError) { assert.True(t, ce.Timeout) }},
		{"cut short", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "500")
			_, _ = w.Write([]byte(`{"result":[[`))
		}, true, 0, nil},
		{"malformed JSON", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`<html>proxy error</html>`)) }, false, -1, nil},
		{"wrong shape", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"result":"index not loaded","error":true}`))
		}, false, -1, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			r := &HTTPRetriever{URL: srv.URL + "/retrieve"}
			if tc.name == "timeout" {
				r.Timeout = 100 * time.Millisecond
			}
			_, err := r.Search(context.Background(), "q", 3)
			require.Error(t, err)
			assert.Equal(t, tc.retryable, Retryable(err), "%v", err)
			var ce *CallError
			if tc.status < 0 {
				assert.False(t, errors.As(err, &ce), "a bad reply is no call failure: %v", err)
				return
			}
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.status, ce.Status)
			if tc.check != nil {
				tc.check(t, ce)
			}
		})
	}
	_, err := (&HTTPRetriever{URL: "http://" + closedAddr(t) + "/retrieve"}).Search(context.Background(), "q", 3)
	assert.True(t, Retryable(err), "connection refused is retried: %v", err)
}

// hang answers nothing until the client gives up. The body is read first:
// only then does the server notice the client closing the connection.
func hang(_ http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(30 * time.Second):
	}
}

// faultyRetriever injects failures into the first /retrieve requests: a 503
// with Retry-After, a dropped connection and a hang past the client's timeout;
// later requests reach next.
type faultyRetriever struct {
	next http.Handler
	n    atomic.Int64
}

func (f *faultyRetriever) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch f.n.Add(1) {
	case 1:
		w.Header().Set("Retry-After", "0")
		http.Error(w, "index loading", http.StatusServiceUnavailable)
	case 3:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	case 5:
		hang(w, r)
	default:
		f.next.ServeHTTP(w, r)
	}
}

// TestRunWithHTTPRetrieverStoresServerPassages is issue 8's acceptance 4: a run
// whose retriever is a /retrieve server (over the bundle corpus, with faults)
// stores that server's passages, retries its failures like model calls and
// keeps each turn's retrieval latency.
func TestRunWithHTTPRetrieverStoresServerPassages(t *testing.T) {
	st := bundleStore(t)
	rs := bundleRetrieveServer(t)
	ctx := context.Background()
	qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	model := httptest.NewServer(oracle.New(qs))
	defer model.Close()
	faulty := &faultyRetriever{next: rs}
	retr := httptest.NewServer(faulty)
	defer retr.Close()

	cfg := DefaultRunConfig()
	cfg.Endpoint, cfg.Model = model.URL+"/v1", oracle.ModelName
	cfg.Objectives, cfg.Tasks, cfg.Concurrency, cfg.RetryBaseSeconds = 2, 3, 1, 0.001
	cfg.Retriever = &RetrieverConfig{Kind: RetrieverHTTP, URL: retr.URL + "/retrieve", Timeout: 2}
	// One tick per clock read: a search spans exactly one tick.
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Millisecond)
		return now
	}
	before := rs.Requests()
	// No bm25 environment at all: every passage must come from the server.
	sum, err := (&Runner{Store: st, Clock: clock}).Run(ctx, cfg, nil)
	require.NoError(t, err)

	rows, err := st.Rollouts(ctx, sum.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 3)
	searches, retrieverAttempts := 0, 0
	for _, row := range rows {
		require.Equal(t, storage.StatusDone, row.Status, row.Error)
		turns, err := st.Turns(ctx, row.ID)
		require.NoError(t, err)
		for _, tu := range turns {
			if tu.Action != core.ActionSearch || tu.Information == "" {
				assert.Zero(t, tu.RetrievalLatency)
				continue
			}
			searches++
			want, _ := rs.Search(ctx, tu.Query, 3)
			require.NotEmpty(t, want, tu.Query)
			assert.Equal(t, want, tu.Passages, "turn %d of rollout %d", tu.Index, row.ID)
			assert.Contains(t, tu.Information, core.RenderPassages(want))
			assert.Equal(t, time.Millisecond, tu.RetrievalLatency)
		}
		atts, err := st.Attempts(ctx, row.ID)
		require.NoError(t, err)
		for _, a := range atts {
			if a.Endpoint == RetrieverAttemptEndpoint {
				retrieverAttempts++
			}
		}
	}
	assert.Positive(t, searches)
	assert.Equal(t, searches, rs.Requests()-before, "one answered request per stored search")
	assert.Equal(t, 3, retrieverAttempts, "the 503, the dropped connection and the timeout are recorded and retried")

	var stored RunConfig
	e, err := st.Experiment(ctx, sum.Experiment)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal([]byte(e.ConfigJSON), &stored))
	assert.Equal(t, cfg.Retriever, stored.Retriever, "the retriever is part of the stored config")
	assert.Equal(t, cfg.Hash(), e.ConfigHash)
}

// TestRunWithUnreachableRetrieverFailsRollouts: a retriever that never
// answers fails each rollout with its error after the retries, like an
// endpoint that keeps failing, and the store keeps the turns before it.
func TestRunWithUnreachableRetrieverFailsRollouts(t *testing.T) {
	st := bundleStore(t)
	ctx := context.Background()
	qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	model := httptest.NewServer(oracle.New(qs))
	defer model.Close()
	var hits atomic.Int64
	retr := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer retr.Close()
	cfg := DefaultRunConfig()
	cfg.Endpoint, cfg.Model = model.URL+"/v1", oracle.ModelName
	cfg.Objectives, cfg.Tasks, cfg.Concurrency, cfg.Retries, cfg.RetryBaseSeconds = 1, 2, 1, 2, 0.001
	cfg.BreakerFailures = 100
	cfg.Retriever = &RetrieverConfig{Kind: RetrieverHTTP, URL: retr.URL}
	sum, err := (&Runner{Store: st}).Run(ctx, cfg, nil)
	require.NoError(t, err)
	rows, err := st.Rollouts(ctx, sum.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	for _, row := range rows {
		assert.Equal(t, storage.StatusFailed, row.Status)
		assert.Contains(t, row.Error, "search")
		assert.Contains(t, row.Error, "502")
		assert.Contains(t, row.Error, "gave up after 3 attempts")
	}
	assert.EqualValues(t, 6, hits.Load(), "three attempts per rollout")
}
