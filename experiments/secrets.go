package experiments

import (
	"encoding/json"
	"regexp"
	"strings"

	"github.com/mem1lab/mem1lab/core"
)

// redactedMark replaces a secret in stored text.
const redactedMark = "[redacted]"

// minSecretLen is the shortest value treated as a secret: shorter ones (an
// empty password, a user name such as "u") would blank out ordinary words.
const minSecretLen = 4

var (
	// authHeaderRE matches an Authorization header and its value as it
	// appears in echoed requests, logs or JSON ("Authorization: Bearer x",
	// "authorization":"Basic x").
	authHeaderRE = regexp.MustCompile(`(?i)((?:proxy-)?authorization["']?\s*[:=]\s*["']?)(?:(?:bearer|basic|token)\s+)?[^\s"',;}]+`)
	// bearerRE matches a bare "Bearer <token>".
	bearerRE = regexp.MustCompile(`(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}`)
	// userinfoRE matches the user:password@ of a URL.
	userinfoRE = regexp.MustCompile(`(?i)\b(https?://)[^/@\s"']+@`)
)

// redactor removes secrets from text before it is stored: the run's API key
// values and URL userinfo, Authorization headers, bearer tokens and any URL's
// userinfo. The zero value still removes the patterns.
type redactor struct {
	secrets []string
}

// newRedactor collects the secrets of cfg's endpoints: each key as the
// profile resolves it and each URL's user name and password.
func newRedactor(cfg RunConfig, extra ...string) *redactor {
	r := &redactor{}
	for _, s := range extra {
		r.add(s)
	}
	for _, p := range cfg.EndpointList() {
		if k, err := ResolveKey(p.APIKeyEnv, p.APIKeyKeyring); err == nil {
			r.add(k)
		}
		for _, s := range userinfoSecrets(p.URL) {
			r.add(s)
		}
	}
	return r
}

// add makes s a secret unless it is too short to be one, and also its
// form inside a JSON string when that differs (json.Marshal escapes quotes,
// backslashes, control characters and <, >, &): memory states and
// embeddings requests are stored as JSON.
func (r *redactor) add(s string) {
	if len(s) < minSecretLen || contains(r.secrets, s) {
		return
	}
	r.secrets = append(r.secrets, s)
	if b, err := json.Marshal(s); err == nil {
		if esc := string(b[1 : len(b)-1]); esc != s && !contains(r.secrets, esc) {
			r.secrets = append(r.secrets, esc)
		}
	}
}

// values is s with every secret value replaced by redactedMark.
func (r *redactor) values(s string) string {
	if r == nil || s == "" {
		return s
	}
	for _, sec := range r.secrets {
		if strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, redactedMark)
		}
	}
	return s
}

// text is s (an error message) with every secret value, Authorization
// header, bearer token and URL userinfo replaced.
func (r *redactor) text(s string) string {
	if s == "" {
		return s
	}
	s = r.values(s)
	if strings.Contains(s, "@") {
		s = userinfoRE.ReplaceAllString(s, "${1}")
	}
	low := strings.ToLower(s)
	if strings.Contains(low, "authorization") {
		s = authHeaderRE.ReplaceAllString(s, "${1}"+redactedMark)
	}
	if strings.Contains(low, "bearer") {
		s = bearerRE.ReplaceAllString(s, "${1} "+redactedMark)
	}
	return s
}

// turn is t with the secret values removed from its text fields (model text
// is not pattern-redacted: only the configured values are known secrets).
func (r *redactor) turn(t core.Turn) core.Turn {
	if r == nil || len(r.secrets) == 0 {
		return t
	}
	t.Context = r.values(t.Context)
	t.Response = r.values(t.Response)
	t.InternalState = r.values(t.InternalState)
	t.Query = r.values(t.Query)
	t.Answer = r.values(t.Answer)
	t.Information = r.values(t.Information)
	t.RawResponse = r.values(t.RawResponse)
	t.Memory = r.values(t.Memory)           // built from sub-call replies
	t.MemoryState = r.values(t.MemoryState) // JSON: the mark has no quote to break it
	return t
}

// Redactor is the runner's secret filter for plays outside Runner (the
// WebShop runner), with its rules: a configured secret value is removed
// from every stored text, and error texts also lose Authorization headers,
// bearer tokens and URL userinfo. A nil *Redactor knows no secret values
// but still applies the patterns to error texts.
type Redactor struct{ r *redactor }

// NewRedactor knows the secrets values (each of 4 bytes or more) and the
// user name and password of each of urls.
func NewRedactor(values []string, urls ...string) *Redactor {
	r := &redactor{}
	for _, v := range values {
		r.add(v)
	}
	for _, u := range urls {
		for _, s := range userinfoSecrets(u) {
			r.add(s)
		}
	}
	return &Redactor{r: r}
}

func (x *Redactor) inner() *redactor {
	if x == nil {
		return nil
	}
	return x.r
}

// Text is an error text with the secrets and the secret patterns removed.
func (x *Redactor) Text(s string) string { return x.inner().text(s) }

// Turn is t with the secret values removed from its text fields.
func (x *Redactor) Turn(t core.Turn) core.Turn { return x.inner().turn(t) }

// Values is s with the secret values replaced (model text: no patterns).
func (x *Redactor) Values(s string) string { return x.inner().values(s) }

// SubCall is c as it may be stored: the secret values out of its request
// (built from earlier model text) and response, its error text redacted.
func (x *Redactor) SubCall(c core.SubCall) core.SubCall {
	r := x.inner()
	c.Request, c.Response, c.Error = r.values(c.Request), r.values(c.Response), r.text(c.Error)
	return c
}

// WithoutCredentials is c with the userinfo stripped from every endpoint URL:
// the form that is stored, hashed, logged and exported. The key travels only
// in memory (as an Authorization header).
func (c RunConfig) WithoutCredentials() RunConfig {
	c.Endpoint = StripUserinfo(c.Endpoint)
	if len(c.Endpoints) > 0 {
		eps := make([]EndpointProfile, len(c.Endpoints))
		for i, p := range c.Endpoints {
			p.URL = StripUserinfo(p.URL)
			eps[i] = p
		}
		c.Endpoints = eps
	}
	return c
}
