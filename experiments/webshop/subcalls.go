package webshop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// SubCallEndpoint is the endpoint name stored on a WebShop rollout's
// sub-calls: they go to the run's one model endpoint.
const SubCallEndpoint = "agent"

// subCalls is the core.SubCaller of one WebShop rollout under a memory
// policy: generation sub-calls go to the runner's model (the prompt as one
// user message, no stops), embeddings to its embedder, and each finished
// call is stored at once, without the run's credentials. Calls stored for a turn whose turn row was never
// stored (a crash or cancel in the middle of the turn) are replayed from the
// store, not sent again, when the resumed turn makes the same call (same
// turn, seq, role and request); a call that differs drops the stored calls
// of that turn from its seq on.
type subCalls struct {
	store     *storage.Store
	rolloutID int64
	model     retryingModel        // its retries serve the embeddings calls too
	emb       experiments.Embedder // nil: embeddings fail
	journal   *experiments.SubCallJournal
	red       *experiments.Redactor
}

// newSubCalls loads the rollout's stored calls of turns ≥ next for replay.
// model is the retrying model the turns use; its retries apply to the
// embeddings calls too.
func newSubCalls(ctx context.Context, st *storage.Store, rolloutID int64, next int, model retryingModel, emb experiments.Embedder, red *experiments.Redactor) (*subCalls, error) {
	j, err := experiments.NewSubCallJournal(ctx, st, rolloutID, next, red)
	if err != nil {
		return nil, err
	}
	return &subCalls{store: st, rolloutID: rolloutID, model: model, emb: emb, journal: j, red: red}, nil
}

func (s *subCalls) commit(ctx context.Context, call core.SubCall) error {
	if err := s.store.AppendSubCall(context.WithoutCancel(ctx), s.rolloutID, s.red.SubCall(call)); err != nil {
		return fmt.Errorf("storing sub-call: %w", err)
	}
	return nil
}

// Generate implements core.SubCaller.
func (s *subCalls) Generate(ctx context.Context, call core.SubCall, prompt string) (core.SubCall, error) {
	if j, ok, err := s.journal.Replay(ctx, call, prompt); err != nil || ok {
		return j, err
	}
	call.Request, call.Endpoint = prompt, SubCallEndpoint
	start := time.Now()
	comp, err := s.model.Complete(ctx, core.Context{Prompt: prompt}, nil)
	if err != nil {
		return call, err
	}
	call.Response, call.Usage, call.Latency = comp.Text, comp.Usage, time.Since(start)
	if !comp.Usage.Reported {
		call.Usage = core.Usage{PromptTokens: core.EstimateTokens(prompt), CompletionTokens: core.EstimateTokens(comp.Text)}
	}
	return call, s.commit(ctx, call)
}

// Embed implements core.SubCaller.
func (s *subCalls) Embed(ctx context.Context, call core.SubCall, texts []string) (core.SubCall, [][]float64, error) {
	if s.emb == nil {
		return call, nil, errors.New("the model endpoint cannot embed (mem0 and amem need POST /v1/embeddings)")
	}
	req, j, stored, ok, err := s.journal.ReplayEmbed(ctx, call, texts)
	if err != nil || ok {
		return j, stored, err
	}
	call.Request, call.Endpoint = req, SubCallEndpoint
	start := time.Now()
	var vecs [][]float64
	var usage core.Usage
	err = retry(ctx, s.model.retries, s.model.backoff, s.model.failed, func() error {
		var err error
		vecs, usage, err = s.emb.Embed(ctx, texts)
		return err
	})
	if err != nil {
		return call, nil, err
	}
	call.Usage, call.Latency = usage, time.Since(start)
	resp, err := json.Marshal(vecs)
	if err != nil {
		return call, nil, err
	}
	call.Response = string(resp)
	return call, vecs, s.commit(ctx, call)
}

// Flag implements core.SubCaller.
func (s *subCalls) Flag(ctx context.Context, call core.SubCall, msg string) error {
	return s.store.FlagSubCall(context.WithoutCancel(ctx), s.rolloutID, call.Turn, call.Seq, s.red.Text(msg))
}

// ModelAttemptEndpoint is the endpoint name under which failed model calls
// (turns and sub-calls) are recorded (storage.Attempt.Endpoint).
const ModelAttemptEndpoint = SubCallEndpoint

// retryingModel sends each model call again after a failure that
// experiments.Retryable accepts (HTTP 408, 429, 5xx, timeouts, dropped
// connections), up to retries more times, as the environment's requests
// are; failed is told of each failed attempt.
type retryingModel struct {
	m       core.Model
	retries int
	backoff func(int) time.Duration
	failed  func(attempt int, err error)
}

func (r retryingModel) Complete(ctx context.Context, c core.Context, stops []string) (core.Completion, error) {
	var out core.Completion
	err := retry(ctx, r.retries, r.backoff, r.failed, func() error {
		var err error
		out, err = r.m.Complete(ctx, c, stops)
		return err
	})
	return out, err
}
