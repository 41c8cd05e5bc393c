package experiments

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/mem1lab/mem1lab/core"
)

// endpointState is one endpoint of a running experiment: its model, its rate
// limit and its circuit breaker. Its concurrency is enforced by the runner,
// which binds that many workers to it.
type endpointState struct {
	inFlight atomic.Int64 // model calls under way
	profile  EndpointProfile
	model    core.Model
	limiter  *rate.Limiter // nil = no cap

	mu        sync.Mutex
	failRun   int       // failed calls in a row
	openUntil time.Time // breaker open (endpoint paused) until then
	threshold int
	cooldown  time.Duration
	patience  int   // breaker pauses in a row that declare the endpoint down (0 = never)
	trips     int   // breaker pauses since the last success
	down      error // set once the endpoint is declared down
	requests  int   // calls sent
	failures  int   // calls failed
	cacheHits int   // calls answered by the response cache (not in requests)
}

// cacheHit moves a call that the response cache answered out of requests.
func (e *endpointState) cacheHit() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.requests--
	e.cacheHits++
}

// errEndpointDown is wrapped by the error of an endpoint declared down.
var errEndpointDown = errors.New("endpoint down")

func newEndpointState(p EndpointProfile, m core.Model, rp retryPolicy) *endpointState {
	e := &endpointState{profile: p, model: m, threshold: rp.breakerFailures, cooldown: rp.cooldown, patience: rp.patience}
	if p.RequestsPerSecond > 0 {
		// Burst 1: requests are spaced evenly, so the rate holds over any window.
		e.limiter = rate.NewLimiter(rate.Limit(p.RequestsPerSecond), 1)
	}
	return e
}

// acquire waits until the endpoint may be sent a request: its breaker closed
// (or its cooldown over) and a rate-limit token available.
func (e *endpointState) acquire(ctx context.Context) error {
	for {
		e.mu.Lock()
		wait, down := time.Until(e.openUntil), e.down
		e.mu.Unlock()
		if down != nil {
			return down
		}
		if wait <= 0 {
			break
		}
		if err := sleepCtx(ctx, wait); err != nil {
			return err
		}
	}
	if e.limiter != nil {
		if err := e.limiter.Wait(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("endpoint %s: rate limit: %w", e.profile.Name, err)
		}
	}
	e.mu.Lock()
	e.requests++
	e.mu.Unlock()
	return nil
}

// report feeds a call's outcome (err == nil: success) to the circuit breaker:
// threshold failures in a row pause the endpoint for the cooldown; after it,
// each further failure in the same run pauses it again, and one success closes
// the breaker. A failure that opens a closed breaker is a trip; more than
// patience trips without a success declare the endpoint down (for good in this
// run: acquire then fails at once with the reason).
func (e *endpointState) report(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err == nil {
		e.failRun, e.trips = 0, 0
		return
	}
	e.failures++
	e.failRun++
	if e.threshold > 0 && e.failRun >= e.threshold {
		now := time.Now()
		if !now.Before(e.openUntil) {
			e.trips++
		}
		e.openUntil = now.Add(e.cooldown)
		if e.patience > 0 && e.trips > e.patience && e.down == nil {
			e.down = fmt.Errorf("%w: endpoint %s (%s) failed %d calls in a row through %d breaker pauses; last error: %w",
				errEndpointDown, e.profile.Name, StripUserinfo(e.profile.URL), e.failRun, e.patience, err)
		}
	}
}

// downErr is the reason the endpoint was declared down, nil while it is not.
func (e *endpointState) downErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.down
}

// EndpointStats is one endpoint's share of a run so far.
type EndpointStats struct {
	Name     string
	Requests int
	Failures int
	Paused   bool // its circuit breaker is open
	// InFlight is the number of model calls to it under way at the snapshot.
	InFlight int
	// CacheHits counts calls the response cache answered (not in Requests).
	CacheHits int
}

func (e *endpointState) stats() EndpointStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	return EndpointStats{Name: e.profile.Name, Requests: e.requests, Failures: e.failures, Paused: time.Now().Before(e.openUntil),
		InFlight: int(e.inFlight.Load()), CacheHits: e.cacheHits}
}

// gate pauses a run: while closed, workers take no new rollout and rollouts in
// flight wait before their next model call.
type gate struct {
	mu     sync.Mutex
	paused bool
	open   chan struct{}    // closed while not paused
	now    func() time.Time // measures the time waiters are held (nil: time.Now)
}

// heldTime sums the time one rollout's calls were held by a paused gate, so
// that its latencies and seconds leave the pause out (core.Agent.Held).
type heldTime struct{ ns atomic.Int64 }

// total is the time summed so far (0 for nil h).
func (h *heldTime) total() time.Duration {
	if h == nil {
		return 0
	}
	return time.Duration(h.ns.Load())
}

type heldKey struct{}

// heldFrom is ctx's heldTime (nil: none).
func heldFrom(ctx context.Context) *heldTime {
	h, _ := ctx.Value(heldKey{}).(*heldTime)
	return h
}

// heldSoFar is the time ctx's rollout has been held by a pause so far (0
// when ctx carries no heldTime).
func heldSoFar(ctx context.Context) time.Duration { return heldFrom(ctx).total() }

// withHeld returns ctx whose gate waits are summed into h.
func withHeld(ctx context.Context, h *heldTime) context.Context {
	return context.WithValue(ctx, heldKey{}, h)
}

func newGate() *gate {
	g := &gate{open: make(chan struct{})}
	close(g.open)
	return g
}

func (g *gate) set(paused bool) (changed bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if paused == g.paused {
		return false
	}
	g.paused = paused
	if paused {
		g.open = make(chan struct{})
	} else {
		close(g.open)
	}
	return true
}

func (g *gate) isPaused() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.paused
}

// wait blocks while the gate is paused.
func (g *gate) wait(ctx context.Context) error { return g.waitIdle(ctx, nil) }

// waitIdle is wait, calling idle (may be nil) first when the gate is
// paused, before it blocks.
func (g *gate) waitIdle(ctx context.Context, idle func()) error {
	g.mu.Lock()
	ch := g.open
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	default:
	}
	if idle != nil {
		idle()
	}
	g.mu.Lock()
	ch, now := g.open, g.now
	g.mu.Unlock()
	if now == nil {
		now = time.Now
	}
	if h := heldFrom(ctx); h != nil {
		began := now()
		defer func() { h.ns.Add(int64(now().Sub(began))) }()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PauseGate is the Runner's pause gate for plays that run outside it (the
// WebShop runner holds its episodes on one between turns). Set pauses or
// opens it, Paused tells, Wait blocks while it is paused. A nil *PauseGate
// never pauses; NewPauseGate makes an open one.
type PauseGate struct{ g *gate }

// NewPauseGate is an open gate.
func NewPauseGate() *PauseGate { return &PauseGate{g: newGate()} }

// Set pauses (true) or opens (false) the gate and reports whether that
// changed it.
func (p *PauseGate) Set(paused bool) (changed bool) { return p != nil && p.g.set(paused) }

// Paused reports whether the gate is paused.
func (p *PauseGate) Paused() bool { return p != nil && p.g.isPaused() }

// Wait blocks while the gate is paused; it returns ctx's error when ctx ends
// first (or has ended).
func (p *PauseGate) Wait(ctx context.Context) error {
	if p == nil {
		return ctx.Err()
	}
	if err := p.g.wait(ctx); err != nil {
		return err
	}
	return ctx.Err()
}

// DefaultSessionHeader is the header that carries a rollout's session key
// when an endpoint names none.
const DefaultSessionHeader = "X-Session-ID"

type sessionKeyCtx struct{}

// WithSessionKey returns ctx carrying a session key: every model call made
// with it sends the key in the endpoint's session header (and, with
// session_user, as the OpenAI "user" field), so a sticky or prefix-aware
// router keeps one rollout's turns on the replica holding its prefix.
func WithSessionKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, sessionKeyCtx{}, key)
}

// SessionKey is ctx's session key ("" = none).
func SessionKey(ctx context.Context) string {
	k, _ := ctx.Value(sessionKeyCtx{}).(string)
	return k
}

// RolloutSessionKey is the session key of a rollout: stable across its
// turns, retries and resumes (it names the experiment and the rollout's row).
func RolloutSessionKey(expID, rolloutID int64) string {
	return fmt.Sprintf("mem1lab-e%d-r%d", expID, rolloutID)
}

func sessionHeaderName(h string) string {
	switch h {
	case "":
		return DefaultSessionHeader
	case "-":
		return ""
	}
	return h
}

// RouterPreset is an endpoint set up for a router that spreads requests over
// several model replicas. Each keeps a rollout's requests together by its
// session key (so the replica that holds the rollout's prefix in its KV cache
// serves its next turn) and is driven at the concurrency of many GPUs.
type RouterPreset struct {
	Name        string
	Description string
	URL         string // the router's usual local address
	Mode        string
	Concurrency int
	// SessionHeader and SessionUser as in EndpointProfile.
	SessionHeader string
	SessionUser   bool
}

// RouterPresets are the routers users put in front of vLLM and SGLang
// replicas. The header must match what the router is told to read (vLLM's
// production-stack router: --routing-logic session --session-key X-Session-ID;
// LiteLLM reads the "user" field for its per-user routing and spend).
var RouterPresets = []RouterPreset{
	{Name: "vllm-router", Description: "vLLM router (session routing on X-Session-ID)",
		URL: "http://127.0.0.1:8000/v1", Mode: ModeCompletions, Concurrency: 256, SessionHeader: DefaultSessionHeader, SessionUser: true},
	{Name: "sglang-router", Description: "SGLang gateway (cache-aware routing on the prompt prefix)",
		URL: "http://127.0.0.1:30000/v1", Mode: ModeCompletions, Concurrency: 256, SessionHeader: DefaultSessionHeader, SessionUser: true},
	{Name: "litellm-proxy", Description: "LiteLLM proxy (OpenAI user field; chat API)",
		URL: "http://127.0.0.1:4000/v1", Mode: ModeChat, Concurrency: 128, SessionHeader: DefaultSessionHeader, SessionUser: true},
}

// RouterPresetByName finds a preset of RouterPresets.
func RouterPresetByName(name string) (RouterPreset, bool) {
	for _, p := range RouterPresets {
		if p.Name == name {
			return p, true
		}
	}
	return RouterPreset{}, false
}

// Profile is the preset as an endpoint profile named name serving model
// (url "" keeps the preset's address).
func (p RouterPreset) Profile(name, url, model string) EndpointProfile {
	if url == "" {
		url = p.URL
	}
	return EndpointProfile{Name: name, URL: url, Model: model, Mode: p.Mode, Concurrency: p.Concurrency,
		SessionHeader: p.SessionHeader, SessionUser: p.SessionUser}
}
