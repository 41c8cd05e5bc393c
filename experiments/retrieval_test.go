package experiments

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestHTTPRetriever(t *testing.T) {
	var got map[string]any
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "/retrieve", r.URL.Path)
		assert.Equal(t, http.MethodPost, r.Method)
		require.NoError(t, json.NewDecoder(r.Body).Decode(&got))
		_, _ = w.Write([]byte(`{"result":[[
			{"document":{"id":"0","contents":"\"Evan Morris\"\nEvan Morris Evan L. Morris was a lobbyist.\nSecond line."},"score":1.5},
			{"document":{"id":17,"contents":"No quotes\ntext two"},"score":"0.75"},
			{"document":{"id":"9","contents":"\"Extra\"\nnot asked for"},"score":0.1}
		]]}`))
	}))
	defer srv.Close()

	r := &HTTPRetriever{URL: srv.URL + "/retrieve"}
	ps, err := r.Search(context.Background(), "who was evan morris", 2)
	require.NoError(t, err)
	assert.Equal(t, []any{"who was evan morris"}, got["queries"])
	assert.Equal(t, 2.0, got["topk"])
	assert.Equal(t, true, got["return_scores"])
	require.Len(t, ps, 2)
	assert.Equal(t, "0", ps[0].ID)
	assert.Equal(t, "Evan Morris", ps[0].Title)
	assert.Equal(t, "Evan Morris Evan L. Morris was a lobbyist.\nSecond line.", ps[0].Text)
	assert.Equal(t, 1.5, ps[0].Score)
	assert.Equal(t, 1, ps[0].Rank)
	assert.Equal(t, "17", ps[1].ID)
	assert.Equal(t, "No quotes", ps[1].Title)
	assert.Equal(t, 0.75, ps[1].Score)
	assert.Equal(t, 2, ps[1].Rank)
}

func TestHTTPRetrieverFormats(t *testing.T) {
	// return_scores false: bare documents; separate title/text fields.
	ps, err := parseRetrieveReply([]byte(`{"result":[[{"id":"a","contents":"\"T\"\nx"},{"id":"b","title":"U","text":"y"}]]}`), 3)
	require.NoError(t, err)
	require.Len(t, ps, 2)
	assert.Equal(t, "T", ps[0].Title)
	assert.Equal(t, "U", ps[1].Title)
	assert.Equal(t, "y", ps[1].Text)

	ps, err = parseRetrieveReply([]byte(`{"result":[]}`), 3)
	require.NoError(t, err)
	assert.Empty(t, ps)

	for _, bad := range []string{`nope`, `{"results":[]}`, `{"result":[{"a":1}]}`, `{"result":[[{"document":{"id":"1"}}]]}`} {
		_, err := parseRetrieveReply([]byte(bad), 3)
		assert.Error(t, err, bad)
	}
}

func TestHTTPRetrieverErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "index not loaded", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	_, err := (&HTTPRetriever{URL: srv.URL}).Search(context.Background(), "q", 3)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "503")
	assert.Contains(t, err.Error(), "index not loaded")

	_, err = (&HTTPRetriever{URL: srv.URL}).Search(context.Background(), "q", 0)
	assert.Error(t, err)

	addr := closedAddr(t)
	_, err = (&HTTPRetriever{URL: "http://" + addr + "/retrieve"}).Search(context.Background(), "q", 3)
	assert.Error(t, err)
}
