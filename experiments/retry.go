package experiments

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mem1lab/mem1lab/storage"
)

// CallError is a failed model call as the go-openai adapter reports it: the
// HTTP status (0 when no response arrived), the server's Retry-After (0 when
// none), whether the per-request timeout fired, and the wrapped error.
type CallError struct {
	Status     int
	RetryAfter time.Duration
	Timeout    bool
	// Kind is the failure's kind (one of the Kind constants; "" = ErrorKind's
	// guess from the other fields).
	Kind string
	// Transient marks a failure worth retrying whatever its status (a
	// malformed or empty 2xx reply, one over max_response_bytes).
	Transient bool
	Err       error
}

// Failure kinds, as counted on `mem1lab run`'s stderr, in the soak figures
// and as the prefix of a failed rollout's stored error.
const (
	KindHTTP429      = "http_429"       // rate limited
	KindHTTP5xx      = "http_5xx"       // server error
	KindHTTP4xx      = "http_4xx"       // request refused (bad request, unknown model, context too long)
	KindTimeout      = "timeout"        // the per-request timeout fired
	KindConnection   = "connection"     // refused, reset or cut-short connection
	KindMalformed    = "malformed_json" // a 2xx reply that is not the expected JSON
	KindEmptyChoices = "empty_choices"  // a 2xx reply with no choices
	KindTooLarge     = "too_large"      // a reply over max_response_bytes
	KindEndpointDown = "endpoint_down"  // the endpoint stayed dead past the breaker's patience
	KindOther        = "other"          // anything else (retrieval, store, protocol)
)

// Kinds lists every failure kind.
var Kinds = []string{KindHTTP429, KindHTTP5xx, KindHTTP4xx, KindTimeout, KindConnection, KindMalformed,
	KindEmptyChoices, KindTooLarge, KindEndpointDown, KindOther}

// ErrorKind classifies a failed call or rollout error (one of Kinds).
func ErrorKind(err error) string {
	if err == nil {
		return ""
	}
	if errors.Is(err, errEndpointDown) {
		return KindEndpointDown
	}
	var ce *CallError
	if errors.As(err, &ce) {
		switch {
		case ce.Kind != "":
			return ce.Kind
		case ce.Timeout:
			return KindTimeout
		case ce.Status == http.StatusTooManyRequests:
			return KindHTTP429
		case ce.Status >= 500:
			return KindHTTP5xx
		case ce.Status >= 400:
			return KindHTTP4xx
		}
	}
	if errors.Is(err, ErrResponseTooLarge) {
		return KindTooLarge
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return KindTimeout
	}
	if Retryable(err) {
		return KindConnection
	}
	return KindOther
}

// FailureKind reads the kind back from a stored rollout error (the runner
// stores "kind: message"); KindOther when it carries none.
func FailureKind(stored string) string {
	if k, _, ok := strings.Cut(stored, ": "); ok {
		for _, kind := range Kinds {
			if k == kind {
				return k
			}
		}
	}
	return KindOther
}

func (e *CallError) Error() string { return e.Err.Error() }
func (e *CallError) Unwrap() error { return e.Err }

// Retryable reports whether a failed model call is worth sending again: HTTP 408,
// 429 and 5xx, a per-request timeout, and transport failures (refused or reset
// connections, a reply cut short). Other 4xx replies (a bad request, an unknown
// model, a context too long) and a cancelled run are final.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ce *CallError
	if errors.As(err, &ce) {
		if ce.Timeout || ce.Transient {
			return true
		}
		switch {
		case ce.Status == http.StatusRequestTimeout, ce.Status == http.StatusTooManyRequests, ce.Status >= 500:
			return true
		case ce.Status >= 400:
			return false
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection reset", "connection refused", "EOF", "broken pipe", "server closed"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date
// (0 when empty, unreadable or in the past).
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(h, 64); err == nil && s > 0 {
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// retryPolicy is the resolved retry and circuit-breaker settings of a run.
type retryPolicy struct {
	retries         int           // retries after the first attempt
	base, max       time.Duration // first backoff and its cap
	breakerFailures int           // failures in a row that open an endpoint's breaker
	cooldown        time.Duration // how long an open breaker pauses its endpoint
	patience        int           // breaker pauses in a row that declare an endpoint down (0 = never)
}

// backoff is the wait before retry number attempt (1-based): "full jitter"
// exponential backoff, a uniform draw in [d/2, d] with d = base·2^(attempt−1)
// capped at max, and never shorter than the server's Retry-After.
func (rp retryPolicy) backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := rp.base
	for i := 1; i < attempt && d < rp.max; i++ {
		d *= 2
	}
	d = min(d, rp.max)
	if d > 0 {
		d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	}
	if retryAfter > d {
		d = min(retryAfter, 5*time.Minute)
	}
	return d
}

// sleepCtx waits d or until ctx ends (then returns ctx.Err()).
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retriedCall is how a rollout retries a call that is not its model's turn (a
// retriever search, a memory sub-call; callModel.Complete has its own loop
// with the in-flight count and the down check): the pause gate, the
// endpoint's breaker and rate limit, and its retry policy, with each failed
// attempt stored under the rollout's turn and endpoint name.
type retriedCall struct {
	gate      *gate
	ep        *endpointState
	rp        retryPolicy
	store     RunStore
	tr        *tracker
	red       *redactor // the stored error text is redacted
	rolloutID int64
	turn      int    // the turn the attempts are stored under
	endpoint  string // the endpoint name the attempts are stored under
}

// do runs fn until it succeeds: before each attempt it waits for the gate and
// the endpoint (acquire); each outcome is reported to the endpoint; a failure
// is stored as a storage.Attempt (1-based attempt, the *CallError's status or
// 0, the redacted error, the attempt's latency; a store failure is counted on
// the tracker, not returned) and counted as a retry, then retried when
// Retryable accepts it and fewer than rp.retries retries were made, after
// rp.backoff (honouring Retry-After). Errors: ctx's (also fn's error
// unrecorded when ctx ended during it), or the last failure, noting "(gave up
// after N attempts)" when N > 1.
func (c retriedCall) do(ctx context.Context, fn func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		if err := c.gate.wait(ctx); err != nil {
			return err
		}
		if err := c.ep.acquire(ctx); err != nil {
			return err
		}
		start := time.Now()
		err := fn(ctx)
		if err == nil {
			c.ep.report(nil)
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		c.ep.report(err)
		var ce *CallError
		status, retryAfter := 0, time.Duration(0)
		if errors.As(err, &ce) {
			status, retryAfter = ce.Status, ce.RetryAfter
		}
		if rerr := c.store.RecordAttempt(context.WithoutCancel(ctx), storage.Attempt{RolloutID: c.rolloutID, Turn: c.turn,
			Attempt: attempt, Endpoint: c.endpoint, Status: status, Error: c.red.text(err.Error()), Latency: time.Since(start)}); rerr != nil {
			c.tr.storeError(rerr)
		}
		c.tr.retry()
		if !Retryable(err) || attempt > c.rp.retries {
			if attempt > 1 {
				err = fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
			}
			return err
		}
		if err := sleepCtx(ctx, c.rp.backoff(attempt, retryAfter)); err != nil {
			return err
		}
	}
}
