package webshop

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
)

// Env is one goal's episode on a WebShop server, as core.WebShopAgent steps
// it (core.StepEnvironment). It creates its environment index on the first
// Reset and keeps the actions applied since, so that when the server has
// forgotten the index (ErrEnvExpired) it creates a new one, resets the same
// goal, replays the actions and sends the failed request again (once per
// call). Failures experiments.Retryable accepts are retried up to Retries
// times, Backoff(attempt) apart; each failed attempt is passed to OnFailure
// (may be nil) with the operation's name.
type Env struct {
	Client  *Client
	Goal    int // the session id: the goal's index (< 500: the test split)
	Retries int
	Backoff func(attempt int) time.Duration
	// OnFailure is told of every failed request (retried or not).
	OnFailure func(op string, attempt int, err error)

	idx     int
	created bool
	log     []string
}

var _ core.StepEnvironment = (*Env)(nil)

// Index is the server's environment index (valid after Reset).
func (e *Env) Index() int { return e.idx }

// Reset starts the goal's episode and returns its first page.
func (e *Env) Reset(ctx context.Context) (core.Observation, error) {
	e.log = nil
	if err := e.retry(ctx, "reset", func() error { return e.reset(ctx) }); err != nil {
		return core.Observation{}, err
	}
	var o core.Observation
	err := e.withRecovery(ctx, "observation", func() error {
		var err error
		o, err = e.page(ctx, "")
		return err
	})
	return o, err
}

// Step applies action and returns the new page with the reward and done.
func (e *Env) Step(ctx context.Context, action string) (core.StepResult, error) {
	var r core.StepResult
	err := e.withRecovery(ctx, "step", func() error {
		state, reward, done, err := e.Client.Step(ctx, e.idx, action)
		if err != nil {
			return err
		}
		r = core.StepResult{Reward: reward, Done: done}
		if done {
			r.Text = state
			return nil
		}
		r.Observation, err = e.page(ctx, state)
		return err
	})
	if err == nil {
		e.log = append(e.log, action)
	}
	return r, err
}

// Close frees the server's index (errors are ignored: the index may be gone).
func (e *Env) Close(ctx context.Context) {
	if e.created {
		_ = e.Client.Close(ctx, e.idx)
		e.created = false
	}
}

// page reads the current page's actions and instruction; state, when not
// empty, is the page text (the step's state), else GET /observation.
func (e *Env) page(ctx context.Context, state string) (core.Observation, error) {
	var o core.Observation
	var err error
	if state == "" {
		if state, err = e.Client.Observation(ctx, e.idx); err != nil {
			return o, err
		}
	}
	o.Text = state
	if o.Actions, err = e.Client.AvailableActions(ctx, e.idx); err != nil {
		return o, err
	}
	o.Instruction, err = e.Client.InstructionText(ctx, e.idx)
	return o, err
}

func (e *Env) reset(ctx context.Context) error {
	if !e.created {
		idx, err := e.Client.Create(ctx)
		if err != nil {
			return err
		}
		e.idx, e.created = idx, true
	}
	err := e.Client.Reset(ctx, e.idx, e.Goal)
	if errors.Is(err, ErrEnvExpired) {
		e.created = false
	}
	return err
}

// withRecovery runs fn with retries; when the index expired it rebuilds the
// episode (create, reset, replay) and runs fn once more.
func (e *Env) withRecovery(ctx context.Context, op string, fn func() error) error {
	err := e.retry(ctx, op, fn)
	if !errors.Is(err, ErrEnvExpired) {
		return err
	}
	e.created = false
	log := e.log
	if rerr := e.retry(ctx, "reset", func() error { return e.reset(ctx) }); rerr != nil {
		return fmt.Errorf("%w; recreating the environment: %w", err, rerr)
	}
	for i, a := range log {
		if rerr := e.retry(ctx, "replay", func() error { _, _, _, err := e.Client.Step(ctx, e.idx, a); return err }); rerr != nil {
			return fmt.Errorf("%w; replaying action %d %q: %w", err, i+1, a, rerr)
		}
	}
	return e.retry(ctx, op, fn)
}

func (e *Env) retry(ctx context.Context, op string, fn func() error) error {
	return retry(ctx, e.Retries, e.Backoff, func(attempt int, err error) {
		if e.OnFailure != nil {
			e.OnFailure(op, attempt, err)
		}
	}, fn)
}

// retry runs fn until it succeeds, up to retries more times for a failure
// experiments.Retryable accepts, waiting the failure's Retry-After or
// backoff(attempt) (nil: no wait) in between; failed(attempt, err) is told
// of each failed attempt (1-based). The last failure notes "(gave up after N
// attempts)" when N > 1; a cancelled ctx ends it (a call cut short by the
// cancel is no failed attempt).
func retry(ctx context.Context, retries int, backoff func(int) time.Duration, failed func(int, error), fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err // cancelled: not a failed attempt
		}
		failed(attempt, err)
		if !experiments.Retryable(err) || attempt > retries {
			if attempt > 1 {
				err = fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
			}
			return err
		}
		var wait time.Duration
		var ce *experiments.CallError
		if errors.As(err, &ce) && ce.RetryAfter > 0 {
			wait = ce.RetryAfter
		} else if backoff != nil {
			wait = backoff(attempt)
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
	}
}
