package views

import (
	"context"

	"github.com/mem1lab/mem1lab/storage"
)

// Streaming reads of the fake store (Charts and its exports), built from the
// fake's rollout rows and details.

func (s *fakeStore) EachRollout(ctx context.Context, expID int64, fn func(storage.RolloutExport) error) error {
	rows, err := s.Rollouts(ctx, expID)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if err := fn(storage.RolloutExport{RolloutRow: r}); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeStore) EachTurn(ctx context.Context, expID int64, fn func(*storage.TurnExport) error) error {
	rows, err := s.Rollouts(ctx, expID)
	if err != nil {
		return err
	}
	for _, r := range rows {
		d, err := s.Rollout(ctx, r.ID)
		if err != nil {
			continue
		}
		for _, t := range d.Turns {
			te := storage.TurnExport{ExperimentID: expID, RolloutID: r.ID, TaskKey: r.TaskKey, Objectives: r.Objectives,
				Policy: r.Policy, Model: r.Model, RolloutStatus: r.Status, Index: t.Index, Action: t.Action.String(),
				Query: t.Query, Answer: t.Answer, InternalState: t.InternalState, Response: t.Response,
				Information: t.Information, PromptTokens: t.PromptTokens, CompletionTokens: t.CompletionTokens,
				UsageReported: t.UsageReported, FinishReason: t.FinishReason}
			if err := fn(&te); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *fakeStore) EachTurnTokens(ctx context.Context, expIDs []int64, fn func(storage.TurnTokens) error) error {
	for _, id := range expIDs {
		rows, err := s.Rollouts(ctx, id)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.Status != storage.StatusDone {
				continue
			}
			d, err := s.Rollout(ctx, r.ID)
			if err != nil {
				continue
			}
			for _, t := range d.Turns {
				if err := fn(storage.TurnTokens{Dataset: r.Dataset, Model: r.Model, Policy: r.Policy, Objectives: r.Objectives, RolloutID: r.ID,
					Index: t.Index, PromptTokens: t.PromptTokens, CompletionTokens: t.CompletionTokens}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
