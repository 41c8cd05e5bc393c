package experiments

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

const fakeSerperKey = "sk-test-serper-0123456789"

// fakeSerper answers POST /search in Serper's shape: num organic results made
// from the query, and an answerBox when the query mentions "who". It checks
// the method, path, content type and X-API-KEY header (401 otherwise), and
// fails the first `faults` requests with 429 then 502.
type fakeSerper struct {
	requests atomic.Int64
	faults   int64
	lastNum  atomic.Int64
}

func (f *fakeSerper) reply(q string, num int) map[string]any {
	organic := []map[string]any{}
	for i := 1; i <= num; i++ {
		organic = append(organic, map[string]any{"title": fmt.Sprintf("%s — page %d", q, i), "link": fmt.Sprintf("https://example.org/%d", i),
			"snippet": fmt.Sprintf("Snippet %d about %s.", i, q), "position": i})
	}
	out := map[string]any{"searchParameters": map[string]any{"q": q, "type": "search", "num": num}, "organic": organic}
	if strings.Contains(strings.ToLower(q), "who") {
		out["answerBox"] = map[string]any{"title": "Answer for " + q, "answer": "George Orwell", "link": "https://example.org/box"}
	}
	return out
}

func (f *fakeSerper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.requests.Add(1)
	if r.Method != http.MethodPost || r.URL.Path != "/search" || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad request line", http.StatusBadRequest)
		return
	}
	if r.Header.Get("X-API-KEY") != fakeSerperKey {
		http.Error(w, `{"message":"Unauthorized."}`, http.StatusUnauthorized)
		return
	}
	var body struct {
		Q   string `json:"q"`
		Num int    `json:"num"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Num < 1 {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	f.lastNum.Store(int64(body.Num))
	switch {
	case n <= f.faults && n%2 == 1:
		w.Header().Set("Retry-After", "0")
		http.Error(w, `{"message":"Too many requests"}`, http.StatusTooManyRequests)
		return
	case n <= f.faults:
		http.Error(w, "bad gateway", http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(f.reply(body.Q, body.Num))
}

// A recorded-shape Serper reply (fields as Serper sends them, values made up).
const recordedSerper = `{
  "searchParameters": {"q": "who wrote nineteen eighty-four", "type": "search", "num": 3, "engine": "google"},
  "answerBox": {"title": "Nineteen Eighty-Four / Author", "answer": "George Orwell", "link": "https://en.wikipedia.org/wiki/Nineteen_Eighty-Four"},
  "knowledgeGraph": {"title": "Nineteen Eighty-Four", "type": "Novel"},
  "organic": [
    {"title": "Nineteen Eighty-Four - Wikipedia", "link": "https://en.wikipedia.org/wiki/Nineteen_Eighty-Four", "snippet": "Nineteen Eighty-Four is a dystopian novel by George Orwell.", "position": 1},
    {"title": "1984 (novel) summary", "link": "https://example.com/1984", "position": 2},
    {"link": "https://example.com/x", "snippet": "An untitled result.", "position": 3},
    {"title": "Fourth", "link": "https://example.com/4", "snippet": "Beyond k.", "position": 4}
  ],
  "peopleAlsoAsk": [{"question": "Why did Orwell write 1984?", "snippet": "…"}],
  "credits": 1
}`

func TestParseSerperReplyRendersAsMEM1WebServer(t *testing.T) {
	ps, err := ParseSerperReply([]byte(recordedSerper), 3)
	require.NoError(t, err)
	require.Len(t, ps, 4, "the answer box, then the top 3 organic results")
	assert.Equal(t, core.Passage{ID: "https://en.wikipedia.org/wiki/Nineteen_Eighty-Four", Title: "Nineteen Eighty-Four / Author", Text: "George Orwell", Rank: 1}, ps[0])
	assert.Equal(t, "Nineteen Eighty-Four is a dystopian novel by George Orwell.", ps[1].Text)
	assert.Equal(t, "No snippet available.", ps[2].Text)
	assert.Equal(t, "No title.", ps[3].Title)
	assert.Equal(t, 4, ps[3].Rank)
	assert.Equal(t, "Doc 1(Title: \"Nineteen Eighty-Four / Author\") George Orwell\n"+
		"Doc 2(Title: \"Nineteen Eighty-Four - Wikipedia\") Nineteen Eighty-Four is a dystopian novel by George Orwell.\n"+
		"Doc 3(Title: \"1984 (novel) summary\") No snippet available.\n"+
		"Doc 4(Title: \"No title.\") An untitled result.\n", core.RenderPassages(ps))

	// The answer box's snippet wins over its answer; no box, no extra passage.
	ps, err = ParseSerperReply([]byte(`{"answerBox":{"title":"B","snippet":"S","answer":"A"},"organic":[]}`), 3)
	require.NoError(t, err)
	require.Len(t, ps, 1)
	assert.Equal(t, "S", ps[0].Text)
	ps, err = ParseSerperReply([]byte(`{"organic":[{"title":"a","snippet":"b"}]}`), 3)
	require.NoError(t, err)
	assert.Equal(t, []core.Passage{{Title: "a", Text: "b", Rank: 1}}, ps)

	for _, bad := range []string{`<html>`, `{"answer_box":{},"organic_results":[]}`, `{"organic":{"a":1}}`, `{"organic":null}`, `{"organic":[1]}`} {
		_, err := ParseSerperReply([]byte(bad), 3)
		assert.Error(t, err, bad)
	}
}

func TestSerperRetrieverProtocolAndFaults(t *testing.T) {
	fs := &fakeSerper{}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	ctx := context.Background()

	r := &SerperRetriever{URL: srv.URL + "/search", Key: fakeSerperKey}
	ps, err := r.Search(ctx, "who wrote it", 3)
	require.NoError(t, err)
	require.Len(t, ps, 4)
	assert.Equal(t, "George Orwell", ps[0].Text)
	assert.EqualValues(t, 3, fs.lastNum.Load(), "num is k")

	_, err = (&SerperRetriever{URL: srv.URL + "/search", Key: "wrong"}).Search(ctx, "q", 3)
	var ce *CallError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, 401, ce.Status)
	assert.False(t, Retryable(err), "a bad key is final")
	assert.NotContains(t, err.Error(), "wrong")

	cases := []struct {
		name      string
		handler   http.HandlerFunc
		retryable bool
		status    int // -1: not a call failure
	}{
		{"500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "internal", 500) }, true, 500},
		{"429", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "3")
			http.Error(w, "rate limited", http.StatusTooManyRequests)
		}, true, 429},
		{"timeout", hang, true, 0},
		{"malformed JSON", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"organic": [`)) }, false, -1},
		{"SerpAPI shape", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"organic_results":[]}`)) }, false, -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := httptest.NewServer(tc.handler)
			defer s.Close()
			r := &SerperRetriever{URL: s.URL + "/search", Key: fakeSerperKey}
			if tc.name == "timeout" {
				r.Timeout = 100 * time.Millisecond
			}
			_, err := r.Search(ctx, "q", 3)
			require.Error(t, err)
			assert.Equal(t, tc.retryable, Retryable(err), "%v", err)
			assert.NotContains(t, err.Error(), fakeSerperKey)
			var ce *CallError
			if tc.status < 0 {
				assert.False(t, errors.As(err, &ce), "%v", err)
				return
			}
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.status, ce.Status)
			if tc.name == "429" {
				assert.Equal(t, 3*time.Second, ce.RetryAfter)
			}
			if tc.name == "timeout" {
				assert.True(t, ce.Timeout)
			}
		})
	}
}

func TestSerperRetrieverConfig(t *testing.T) {
	rc, err := ParseRetriever("serper")
	require.NoError(t, err)
	assert.Equal(t, &RetrieverConfig{Kind: RetrieverSerper, URL: DefaultSerperURL}, rc)
	assert.Equal(t, "serper", rc.String())
	rc, err = ParseRetriever("serper:http://127.0.0.1:9/")
	require.NoError(t, err)
	assert.Equal(t, "http://127.0.0.1:9/search", rc.URL)
	assert.Equal(t, "serper:http://127.0.0.1:9/search", rc.String())
	_, err = ParseRetriever("serper:ftp://x")
	assert.Error(t, err)

	// --retriever keeps the config file's key variable and timeout.
	old := &RetrieverConfig{Kind: RetrieverSerper, URL: DefaultSerperURL, APIKeyEnv: "MY_KEY", Timeout: 5, TopK: 4}
	rc, err = ReplaceRetriever(old, "serper:http://127.0.0.1:9")
	require.NoError(t, err)
	assert.Equal(t, &RetrieverConfig{Kind: RetrieverSerper, URL: "http://127.0.0.1:9/search", APIKeyEnv: "MY_KEY", Timeout: 5, TopK: 4}, rc)

	assert.NotEmpty(t, (&RetrieverConfig{Kind: RetrieverHTTP, URL: "http://h/retrieve", APIKeyEnv: "X"}).validate())
	assert.Empty(t, (&RetrieverConfig{Kind: RetrieverSerper, APIKeyEnv: "X"}).validate())

	const env = "MEM1LAB_TEST_SERPER_KEY_UNSET"
	require.NoError(t, os.Unsetenv(env))
	_, err = NewRetriever(RunConfig{Retriever: &RetrieverConfig{Kind: RetrieverSerper, APIKeyEnv: env}}, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "$"+env+" is not set")
	t.Setenv(env, fakeSerperKey)
	got, err := NewRetriever(RunConfig{Retriever: &RetrieverConfig{Kind: RetrieverSerper, APIKeyEnv: env}}, nil)
	require.NoError(t, err)
	assert.Equal(t, fakeSerperKey, got.(*SerperRetriever).Key)
	assert.Equal(t, DefaultSerperURL, got.(*SerperRetriever).URL)
}

// TestRunWithSerperCachesAndStoresPassages: a run through the runner with the
// oracle agent against a fake Serper (its first requests fail with 429 and
// 502) stores the web passages each turn saw, retries the failures, never
// stores the key, and a second run of the same config is answered from the
// store's cache without one API call.
func TestRunWithSerperCachesAndStoresPassages(t *testing.T) {
	st := bundleStore(t)
	ctx := context.Background()
	qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	model := httptest.NewServer(oracle.New(qs))
	defer model.Close()
	fs := &fakeSerper{faults: 2}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	const env = "MEM1LAB_TEST_SERPER_KEY"
	t.Setenv(env, fakeSerperKey)

	cfg := DefaultRunConfig()
	cfg.Endpoint, cfg.Model = model.URL+"/v1", oracle.ModelName
	cfg.Objectives, cfg.Tasks, cfg.Concurrency, cfg.RetryBaseSeconds = 2, 3, 1, 0.001
	cfg.Retriever = &RetrieverConfig{Kind: RetrieverSerper, URL: srv.URL, APIKeyEnv: env, Timeout: 5}
	sum, err := (&Runner{Store: st}).Run(ctx, cfg, nil)
	require.NoError(t, err)

	check := func(expID int64) (searches int, infos []string) {
		rows, err := st.Rollouts(ctx, expID)
		require.NoError(t, err)
		require.Len(t, rows, 3)
		for _, row := range rows {
			require.Equal(t, storage.StatusDone, row.Status, row.Error)
			turns, err := st.Turns(ctx, row.ID)
			require.NoError(t, err)
			for _, tu := range turns {
				if tu.Action != core.ActionSearch || tu.Information == "" {
					continue
				}
				searches++
				raw, _ := json.Marshal(fs.reply(tu.Query, 3))
				want, err := ParseSerperReply(raw, 3)
				require.NoError(t, err)
				assert.Equal(t, want, tu.Passages, "turn %d of rollout %d", tu.Index, row.ID)
				assert.Contains(t, tu.Information, core.RenderPassages(want))
				infos = append(infos, tu.Information)
			}
		}
		return searches, infos
	}
	searches, infos := check(sum.Experiment)
	require.Positive(t, searches)
	first := fs.requests.Load()
	assert.LessOrEqual(t, first, int64(searches)+2, "one answered request per distinct search, plus the two faults")

	rows, _ := st.Rollouts(ctx, sum.Experiment)
	var retried int
	for _, row := range rows {
		atts, err := st.Attempts(ctx, row.ID)
		require.NoError(t, err)
		for _, a := range atts {
			if a.Endpoint == RetrieverAttemptEndpoint {
				retried++
				assert.NotContains(t, a.Error, fakeSerperKey)
			}
		}
	}
	assert.Equal(t, 2, retried, "the 429 and the 502 are recorded and retried")
	e, err := st.Experiment(ctx, sum.Experiment)
	require.NoError(t, err)
	assert.NotContains(t, e.ConfigJSON, fakeSerperKey)
	assert.Contains(t, e.ConfigJSON, env, "the config keeps the variable's name")

	// The same config again: every search comes from the cache.
	sum2, err := (&Runner{Store: st}).Run(ctx, cfg, nil)
	require.NoError(t, err)
	searches2, infos2 := check(sum2.Experiment)
	assert.Equal(t, searches, searches2)
	assert.Equal(t, infos, infos2)
	assert.Equal(t, first, fs.requests.Load(), "a rerun costs no API calls")

	raw, err := os.ReadFile(st.Path())
	require.NoError(t, err)
	assert.NotContains(t, string(raw), fakeSerperKey, "the key never reaches the store file")
}

func TestProbeSerperRetriever(t *testing.T) {
	fs := &fakeSerper{}
	srv := httptest.NewServer(fs)
	defer srv.Close()
	const env = "MEM1LAB_TEST_SERPER_PROBE_KEY"
	t.Setenv(env, fakeSerperKey)
	p, err := ProbeRetriever(context.Background(), &RetrieverConfig{Kind: RetrieverSerper, URL: srv.URL, APIKeyEnv: env}, 3)
	require.NoError(t, err)
	assert.Equal(t, 4, p.Passages, "answer box plus three results")
	assert.Equal(t, "Answer for "+RetrieverProbeQuery, p.FirstTitle)
	assert.EqualValues(t, 1, fs.requests.Load())
}

func TestStoredConfigRefusesOtherFamilies(t *testing.T) {
	st, err := storage.Open(t.TempDir() + "/l.db")
	require.NoError(t, err)
	defer st.Close()
	ctx := context.Background()
	id, err := st.CreateExperiment(ctx, "ws", `{"family":"webshop","goals":[1]}`, "h")
	require.NoError(t, err)
	_, err = (&Runner{Store: st}).StoredConfig(ctx, id)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "webshop-run --resume")
	_, err = (&Runner{Store: st}).Resume(ctx, id, nil)
	assert.Error(t, err)
	id, err = st.CreateExperiment(ctx, "qa", `{"family":"qa","dataset":"hotpotqa"}`, "h2")
	require.NoError(t, err)
	cfg, err := (&Runner{Store: st}).StoredConfig(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, "hotpotqa", cfg.Dataset)
}

func TestRunWithoutSerperKeyFailsBeforeStarting(t *testing.T) {
	st, err := storage.Open(t.TempDir() + "/l.db")
	require.NoError(t, err)
	defer st.Close()
	const env = "MEM1LAB_TEST_SERPER_NO_KEY"
	t.Setenv(env, "")
	cfg := DefaultRunConfig()
	cfg.Endpoint, cfg.Model = "http://127.0.0.1:1/v1", "m"
	cfg.Retriever = &RetrieverConfig{Kind: RetrieverSerper, APIKeyEnv: env}
	_, err = (&Runner{Store: st}).Run(context.Background(), cfg, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "$"+env+" is not set")
	exps, err := st.Experiments(context.Background())
	require.NoError(t, err)
	assert.Empty(t, exps, "nothing is stored")
}

func TestSerperRetrieverTOML(t *testing.T) {
	path := t.TempDir() + "/run.toml"
	require.NoError(t, os.WriteFile(path, []byte(`endpoint = "http://127.0.0.1:8000/v1"
model = "m"
retriever = {kind = "serper", url = "https://search.example.org", api_key_env = "MY_SEARCH_KEY", timeout = 10}
`), 0o644))
	cfg, err := LoadRunConfig(path)
	require.NoError(t, err)
	assert.Equal(t, &RetrieverConfig{Kind: RetrieverSerper, URL: "https://search.example.org", APIKeyEnv: "MY_SEARCH_KEY", Timeout: 10}, cfg.Retriever)
	require.NoError(t, cfg.Validate())
	before := cfg.Hash()
	cfg.Retriever.APIKeyEnv = "OTHER"
	assert.NotEqual(t, before, cfg.Hash(), "the key's variable name is part of the config")
	toml, err := cfg.CanonicalTOML()
	require.NoError(t, err)
	assert.Contains(t, string(toml), `api_key_env = "OTHER"`)
}

// TestSerperServerOverTheStore: the local Serper-shaped server over the
// bundle's BM25 index answers the retriever, which renders the store's own
// passages; bad keys and bodies are refused.
func TestSerperServerOverTheStore(t *testing.T) {
	st := bundleStore(t)
	ctx := context.Background()
	srv := httptest.NewServer(&SerperServer{Env: st, Key: fakeSerperKey})
	defer srv.Close()
	const q = "Who wrote the novel Nineteen Eighty-Four?"
	want, err := st.Search(ctx, q, 3)
	require.NoError(t, err)
	require.NotEmpty(t, want)
	got, err := (&SerperRetriever{URL: srv.URL + "/search", Key: fakeSerperKey}).Search(ctx, q, 3)
	require.NoError(t, err)
	require.Len(t, got, len(want))
	for i := range want {
		assert.Equal(t, want[i].Title, got[i].Title)
		assert.Equal(t, want[i].Text, got[i].Text)
		assert.Equal(t, "passage:"+want[i].ID, got[i].ID)
	}
	_, err = (&SerperRetriever{URL: srv.URL + "/search", Key: "nope"}).Search(ctx, q, 3)
	var ce *CallError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, 401, ce.Status)
	for _, body := range []string{`{"num": 3}`, `not json`, `{"q": "x", "num": 1000}`} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/search", strings.NewReader(body))
		req.Header.Set("X-API-KEY", fakeSerperKey)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 400, resp.StatusCode, body)
	}
}
