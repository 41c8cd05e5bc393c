package experiments

import (
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
	add := func(s string) {
		if len(s) >= minSecretLen && !contains(r.secrets, s) {
			r.secrets = append(r.secrets, s)
		}
	}
	for _, s := range extra {
		add(s)
	}
	for _, p := range cfg.EndpointList() {
		if k, err := ResolveKey(p.APIKeyEnv, p.APIKeyKeyring); err == nil {
			add(k)
		}
		for _, s := range userinfoSecrets(p.URL) {
			add(s)
		}
	}
	return r
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
	return t
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
