package experiments

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/mem1lab/mem1lab/core"
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
