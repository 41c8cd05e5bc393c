package experiments

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultMaxResponseBytes bounds the body of a successful reply when the run
// sets no max_response_bytes (8 MiB; a 1024-token turn is a few KiB).
const DefaultMaxResponseBytes = 8 << 20

// maxErrorBody is how much of an error reply's body is read (64 KiB); the rest
// is dropped unread and its size noted.
const maxErrorBody = 64 << 10

// maxDrain is how much of an over-long error body is read past maxErrorBody to
// learn its size (and keep the connection) when the server sent no length.
const maxDrain = 256 << 10

// maxSummary bounds the text of one failed call as it is stored (2 KiB).
const maxSummary = 2 << 10

// ErrResponseTooLarge is wrapped when a reply's body exceeds the endpoint's
// MaxResponseBytes.
var ErrResponseTooLarge = errors.New("response too large")

// summaryError is an error whose text is a bounded summary of its cause.
type summaryError struct {
	msg   string
	cause error
}

func (e *summaryError) Error() string { return e.msg }
func (e *summaryError) Unwrap() error { return e.cause }

// boundText cuts s to at most n bytes (on a rune boundary), noting how many
// bytes were cut.
func boundText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && cut < len(s) && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return fmt.Sprintf("%s… [%d bytes cut]", s[:cut], len(s)-cut)
}

// byteSize renders n bytes readably (B, KiB, MiB).
func byteSize(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// splitUserinfo returns raw without its userinfo (user:password@) and the
// Authorization header value ("Basic …") that carries it instead; raw is
// returned unchanged with "" when it has none or does not parse.
func splitUserinfo(raw string) (clean, auth string) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.User == nil {
		return raw, ""
	}
	pass, _ := u.User.Password()
	auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(u.User.Username()+":"+pass))
	u.User = nil
	return u.String(), auth
}

// StripUserinfo removes user:password@ from a URL, so that it can be stored,
// logged or exported; anything that is not a URL with userinfo is returned
// unchanged.
func StripUserinfo(raw string) string {
	clean, _ := splitUserinfo(raw)
	return clean
}

// userinfoSecrets lists the user name and password of a URL (the parts that
// must never be stored); nil when it has none.
func userinfoSecrets(raw string) []string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.User == nil {
		return nil
	}
	out := []string{u.User.Username()}
	if p, ok := u.User.Password(); ok {
		out = append(out, p)
	}
	return out
}

// boundedBody reads an error reply's body: at most maxErrorBody bytes are
// kept; of the rest, the size is learnt from Content-Length or by reading up
// to maxDrain more (discarded). dropped is the number of bytes not kept (a
// lower bound when atLeast).
func boundedBody(resp *http.Response) (kept []byte, dropped int64, atLeast bool) {
	kept, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if int64(len(kept)) < maxErrorBody {
		return kept, 0, false
	}
	if resp.ContentLength > int64(len(kept)) {
		return kept, resp.ContentLength - int64(len(kept)), false
	}
	n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain+1))
	if n > maxDrain {
		return kept, n, true
	}
	return kept, n, false
}

// newJSONPost is a POST of the JSON body to rawURL (Content-Type set) under
// ctx, limited to timeout when it is > 0 (HTTPRetriever, SerperRetriever).
// timedOut reports whether that limit, not ctx, ended the request; cancel
// releases the limit and must be called once the reply is read. err is
// http.NewRequestWithContext's (nothing to cancel then).
func newJSONPost(ctx context.Context, timeout time.Duration, rawURL string, body []byte) (req *http.Request, timedOut func() bool, cancel context.CancelFunc, err error) {
	reqCtx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		reqCtx, cancel = context.WithTimeout(ctx, timeout)
	}
	req, err = http.NewRequestWithContext(reqCtx, http.MethodPost, rawURL, bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	timedOut = func() bool { return ctx.Err() == nil && errors.Is(reqCtx.Err(), context.DeadlineExceeded) }
	return req, timedOut, cancel, nil
}

// readReply reads a 2xx reply's body of a JSON service (HTTPRetriever,
// SerperRetriever), at most DefaultMaxResponseBytes. label starts each error
// ("retrieve URL"). Errors are *CallError values: a failed read (Timeout when
// timedOut reports the per-request limit fired), or a body over the bound
// (Transient, KindTooLarge, wrapping ErrResponseTooLarge).
func readReply(resp *http.Response, label string, timedOut func() bool) ([]byte, error) {
	raw, err := readSized(io.LimitReader(resp.Body, DefaultMaxResponseBytes+1), resp.ContentLength)
	if err != nil {
		return nil, &CallError{Timeout: timedOut(), Err: fmt.Errorf("%s: reading reply: %w", label, err)}
	}
	if len(raw) > DefaultMaxResponseBytes {
		return nil, &CallError{Transient: true, Kind: KindTooLarge,
			Err: fmt.Errorf("%s: %w: more than %s", label, ErrResponseTooLarge, byteSize(DefaultMaxResponseBytes))}
	}
	return raw, nil
}

// readSized is io.ReadAll of r (the same bytes and the same errors: a body
// cut short keeps its io.ErrUnexpectedEOF) into a buffer sized for n bytes,
// a body's ContentLength (n ≤ 0 when unknown), so a body of known size is
// read with one allocation.
func readSized(r io.Reader, n int64) ([]byte, error) {
	if n <= 0 || n > 1<<30 {
		return io.ReadAll(r)
	}
	b := make([]byte, 0, n+1) // one byte more: the read that finds the end needs no growth
	for {
		k, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+k]
		if err != nil {
			if err == io.EOF { // the end, as io.ReadAll: a wrapped EOF is an error
				err = nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)] // longer than announced: let append grow it
		}
	}
}

// captureTransport bounds and captures reply bodies. A non-2xx body is cut to
// maxErrorBody (what go-openai then reads, so it never holds more) and noted in
// the request's captureSlot; a 2xx body over limit fails the request with
// ErrResponseTooLarge before go-openai decodes it, and one within it is kept in
// the slot so fields go-openai does not decode (vLLM's stop_reason) can be
// read. auth, when set, is sent as the Authorization header of requests that
// carry none (the endpoint URL's userinfo).
type captureTransport struct {
	base  http.RoundTripper
	limit int64
	auth  string
}

func (t *captureTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := dropStreamFalse(req); err != nil {
		return nil, err
	}
	slot, _ := req.Context().Value(captureKey{}).(*captureSlot)
	if t.auth != "" && req.Header.Get("Authorization") == "" || slot != nil && slot.sessionHeader != "" {
		req = req.Clone(req.Context())
		if t.auth != "" && req.Header.Get("Authorization") == "" {
			req.Header.Set("Authorization", t.auth)
		}
		if slot != nil && slot.sessionHeader != "" {
			req.Header.Set(slot.sessionHeader, slot.sessionKey) // the rollout's key for a sticky router
		}
	}
	var resp *http.Response
	var err error
	if hit := cacheLookup(req, slot); hit != nil {
		resp = hit // the response cache answered: no request is sent
	} else {
		resp, err = t.base.RoundTrip(req)
	}
	if err != nil {
		return resp, err
	}
	if slot != nil {
		slot.status = resp.StatusCode
		slot.retryAfter = resp.Header.Get("Retry-After")
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		kept, dropped, atLeast := boundedBody(resp)
		_ = resp.Body.Close()
		if slot != nil {
			slot.errBody, slot.errDropped, slot.errAtLeast = kept, dropped, atLeast
		}
		resp.Body = io.NopCloser(bytes.NewReader(kept))
		resp.ContentLength = int64(len(kept))
		return resp, nil
	}
	limit := t.limit
	if limit <= 0 {
		limit = DefaultMaxResponseBytes
	}
	if resp.ContentLength > limit {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("%w: %s announced, max_response_bytes is %s", ErrResponseTooLarge, byteSize(resp.ContentLength), byteSize(limit))
	}
	body, rerr := readSized(io.LimitReader(resp.Body, limit+1), resp.ContentLength)
	_ = resp.Body.Close()
	if rerr != nil {
		return nil, fmt.Errorf("reading reply: %w", rerr)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%w: more than %s, max_response_bytes is %s", ErrResponseTooLarge, byteSize(limit), byteSize(limit))
	}
	if slot != nil {
		slot.body = body
		cacheStore(req.Context(), slot, body)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}
