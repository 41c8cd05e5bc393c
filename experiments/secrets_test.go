package experiments

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

func TestRedactorRemovesKeysHeadersAndUserinfo(t *testing.T) {
	t.Setenv("MEM1LAB_REDACT_KEY", "sk-live-abcdef")
	cfg := DefaultRunConfig()
	cfg.APIKeyEnv = "MEM1LAB_REDACT_KEY"
	cfg.Endpoints = []EndpointProfile{{Name: "a", URL: "http://carol:pw-9876@h/v1", Model: "m", Mode: ModeChat, Concurrency: 1, APIKeyEnv: "MEM1LAB_REDACT_KEY"}}
	r := newRedactor(cfg)
	got := r.text(`echo sk-live-abcdef; pw-9876; "Authorization": "Bearer zzzzzzzzzz"; authorization=Basic Y2Fyb2w6cHc=; ` +
		`token Bearer abcdefghijkl; see https://dave:hunter22@other/x`)
	for _, s := range []string{"sk-live-abcdef", "pw-9876", "zzzzzzzzzz", "Y2Fyb2w6cHc=", "abcdefghijkl", "hunter22", "dave"} {
		assert.NotContains(t, got, s)
	}
	assert.Contains(t, got, "https://other/x")
	tu := r.turn(core.Turn{Response: "<think>the key is sk-live-abcdef</think>", Context: "pw-9876"})
	assert.Equal(t, "<think>the key is [redacted]</think>", tu.Response)
	assert.Equal(t, "[redacted]", tu.Context)
	// Ordinary prose is left alone.
	assert.Equal(t, "basic facts about the bearer of the title", r.text("basic facts about the bearer of the title"))

	assert.Equal(t, "http://h/v1", StripUserinfo("http://carol:pw-9876@h/v1"))
	assert.Equal(t, "http://h/v1", StripUserinfo("http://h/v1"))
	clean := cfg.WithoutCredentials()
	assert.Equal(t, "http://h/v1", clean.Endpoints[0].URL)
	assert.Equal(t, "http://carol:pw-9876@h/v1", cfg.Endpoints[0].URL, "the original is not changed")
	withKey := DefaultRunConfig()
	withKey.Endpoint = "http://u:k-1234@127.0.0.1:8000/v1"
	assert.Equal(t, DefaultRunConfig().Hash(), withKey.Hash(), "the key is not part of the config's identity")
}

func TestURLErrorsNeverShowTheKey(t *testing.T) {
	for _, raw := range []string{"ftp://u:sk-hidden-77@h/v1", "http://u:sk-hidden-77@/v1", "http://u:sk-hidden-77@h:bad port/v1"} {
		_, err := normalizeBaseURL(raw)
		if assert.Error(t, err, raw) {
			assert.NotContains(t, err.Error(), "sk-hidden-77", raw)
		}
	}
	ok, err := normalizeBaseURL("http://u:sk-hidden-77@h:8000")
	assert.NoError(t, err)
	assert.Equal(t, "http://u:sk-hidden-77@h:8000/v1", ok, "the adapter still gets the key, to send it as a header")
}

// TestRedactorFacadeAndSubCalls: the exported Redactor (for runners outside
// Runner) removes the secret values from every text a turn or a sub-call
// stores — the request built from earlier model text included — and a
// sub-call journal still replays a committed call whose request held a
// secret (it compares the redacted forms).
func TestRedactorFacadeAndSubCalls(t *testing.T) {
	red := NewRedactor([]string{"sk-abc-123", "no"}, "http://ann:pw-4321@h/v1")
	tu := red.Turn(core.Turn{RawResponse: "raw sk-abc-123", Memory: "mem pw-4321", MemoryState: `{"summary":"sk-abc-123"}`, Answer: "no"})
	assert.Equal(t, "raw [redacted]", tu.RawResponse)
	assert.Equal(t, "mem [redacted]", tu.Memory)
	assert.Equal(t, `{"summary":"[redacted]"}`, tu.MemoryState, "still JSON")
	assert.Equal(t, "no", tu.Answer, "values under 4 bytes are no secrets")
	c := red.SubCall(core.SubCall{Request: "notes: sk-abc-123", Response: "pw-4321", Error: "401 Authorization: Bearer abcdefghijk"})
	assert.Equal(t, "notes: [redacted]", c.Request)
	assert.Equal(t, "[redacted]", c.Response)
	assert.NotContains(t, c.Error, "abcdefghijk")
	amp := NewRedactor([]string{`p&ss"word`})
	assert.Equal(t, `{"memory":"[redacted]"}`, amp.Values(`{"memory":"p\u0026ss\"word"}`), "a secret escaped inside JSON is found too")
	assert.Equal(t, "x [redacted] y", amp.Values(`x p&ss"word y`))
	var none *Redactor
	assert.Equal(t, "sk-abc-123", none.Values("sk-abc-123"))
	assert.NotContains(t, none.Text("Authorization: Bearer abcdefghijk"), "abcdefghijk", "the patterns still apply")

	st, err := storage.Open(filepath.Join(t.TempDir(), "lab.db"))
	require.NoError(t, err)
	defer st.Close()
	e, err := st.CreateExperiment(t.Context(), "redact", `{}`, "h")
	require.NoError(t, err)
	ids, err := st.AddTasks(t.Context(), e, []core.Task{{Key: "k", Dataset: "hotpotqa", Objectives: []core.Objective{{QuestionID: "q", Question: "Q?", Gold: []string{"a"}}}}})
	require.NoError(t, err)
	id, err := st.CreateRollout(t.Context(), e, ids["k"], "summary:1", "m")
	require.NoError(t, err)
	committed := red.SubCall(core.SubCall{Turn: 2, Seq: 0, Role: core.RoleSummariser, Request: "fold sk-abc-123", Response: "ok"})
	require.NoError(t, st.AppendSubCall(t.Context(), id, committed))
	j, err := NewSubCallJournal(t.Context(), st, id, 2, red)
	require.NoError(t, err)
	got, ok, err := j.Replay(t.Context(), core.SubCall{Turn: 2, Seq: 0, Role: core.RoleSummariser}, "fold sk-abc-123")
	require.NoError(t, err)
	assert.True(t, ok, "the same call, its secret redacted in the store")
	assert.True(t, got.Replayed)
	assert.Equal(t, "ok", got.Response)
}
