package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mem1lab/mem1lab/core"
)

// ExperimentImport describes an experiment written whole by ImportExperiment.
type ExperimentImport struct {
	Name       string
	ConfigJSON string
	ConfigHash string
	Status     string // "" = StatusDone
	Tasks      []core.Task
}

// ImportedRollout is one finished rollout written by ImportExperiment: the key of
// its task (one of ExperimentImport.Tasks), its policy and model, its turns by
// index and its result.
type ImportedRollout struct {
	TaskKey string
	Policy  string
	Model   string
	Turns   []core.Turn
	Result  RolloutResult
	// Prompt is the task prompt the rollout carried ("" when unknown).
	Prompt string
}

// ImportExperiment writes an experiment, its tasks, and the rollouts that each
// calls add for, in ONE write transaction with prepared statements: either all of
// it is stored or, on any error (from each, a bad rollout, ctx or the store),
// nothing is. It returns the new experiment's id.
//
// Errors: an empty name, a task with an empty or repeated key, a rollout whose
// TaskKey is not a task, whose Result.Status is not done, failed or cancelled, or
// whose turns' indices are not 0, 1, 2, ….
func (s *Store) ImportExperiment(ctx context.Context, e ExperimentImport, each func(add func(ImportedRollout) error) error) (int64, error) {
	if e.Name == "" {
		return 0, errors.New("storage: import experiment: empty name")
	}
	status := e.Status
	if status == "" {
		status = StatusDone
	}
	var expID int64
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ts := now()
		res, err := tx.ExecContext(ctx, `INSERT INTO experiments(name, created_at, config_json, config_hash, status) VALUES (?, ?, ?, ?, ?)`,
			e.Name, ts, e.ConfigJSON, e.ConfigHash, status)
		if err != nil {
			return fmt.Errorf("storage: import experiment %q: %w", e.Name, err)
		}
		if expID, err = res.LastInsertId(); err != nil {
			return err
		}
		insTask, err := tx.PrepareContext(ctx, `INSERT INTO tasks(experiment_id, key, dataset, objectives, task_json) VALUES (?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("storage: import experiment: %w", err)
		}
		defer insTask.Close()
		taskIDs := make(map[string]int64, len(e.Tasks))
		for _, t := range e.Tasks {
			if t.Key == "" {
				return errors.New("storage: import experiment: task with empty key")
			}
			if _, dup := taskIDs[t.Key]; dup {
				return fmt.Errorf("storage: import experiment: task key %q repeated: %w", t.Key, ErrDuplicate)
			}
			b, err := json.Marshal(t)
			if err != nil {
				return fmt.Errorf("storage: import experiment: task %q: %w", t.Key, err)
			}
			res, err := insTask.ExecContext(ctx, expID, t.Key, t.Dataset, len(t.Objectives), string(b))
			if err != nil {
				return fmt.Errorf("storage: import experiment: task %q: %w", t.Key, err)
			}
			if taskIDs[t.Key], err = res.LastInsertId(); err != nil {
				return err
			}
		}
		insRollout, err := tx.PrepareContext(ctx, `INSERT INTO rollouts(experiment_id, task_id, policy, model, status, em, f1,
			score_json, answer, peak_tokens, total_tokens, turns, seconds, hit_max_turns, error, started_at, finished_at, heartbeat_at,
			prompt, paper_peak_tokens, dependency, compression_ratio, exact_match_lenient, paper_token_source,
			request_peak_tokens, token_source)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("storage: import experiment: %w", err)
		}
		defer insRollout.Close()
		insTurn, err := tx.PrepareContext(ctx, `INSERT INTO turns(rollout_id, idx, context, ctx_base, ctx_prefix, ctx_sha256,
			response, internal_state, action,
			query, answer, information, passages, prompt_tokens, completion_tokens, usage_reported, latency_ms,
			finish_reason, created_at, token_source, raw_response) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("storage: import experiment: %w", err)
		}
		defer insTurn.Close()
		n := 0
		add := func(r ImportedRollout) error {
			n++
			if n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			taskID, ok := taskIDs[r.TaskKey]
			if !ok {
				return fmt.Errorf("storage: import experiment: rollout %d: no task %q: %w", n, r.TaskKey, ErrNotFound)
			}
			switch r.Result.Status {
			case StatusDone, StatusFailed, StatusCancelled:
			default:
				return fmt.Errorf("storage: import experiment: rollout %d: status %q is not done, failed or cancelled", n, r.Result.Status)
			}
			sj, err := json.Marshal(r.Result.Score)
			if err != nil {
				return fmt.Errorf("storage: import experiment: rollout %d: %w", n, err)
			}
			args := append([]any{expID, taskID, r.Policy, r.Model, r.Result.Status, r.Result.Score.EM,
				r.Result.Score.F1, string(sj), r.Result.Answer, r.Result.PeakTokens, r.Result.TotalTokens, r.Result.Turns,
				r.Result.Seconds, r.Result.HitMaxTurns, r.Result.Error, ts, ts, ts, r.Prompt}, paperArgs(r.Result.Paper)...)
			res, err := insRollout.ExecContext(ctx, append(args, r.Result.RequestPeakTokens, nullString(r.Result.TokenSource))...)
			if err != nil {
				return fmt.Errorf("storage: import experiment: rollout %d: %w", n, err)
			}
			rid, err := res.LastInsertId()
			if err != nil {
				return err
			}
			for i, t := range r.Turns {
				if t.Index != i {
					return fmt.Errorf("storage: import experiment: rollout %d: turn %d has index %d", n, i, t.Index)
				}
				pj := []byte("[]")
				if len(t.Passages) > 0 {
					if pj, err = json.Marshal(t.Passages); err != nil {
						return fmt.Errorf("storage: import experiment: rollout %d turn %d: %w", n, i, err)
					}
				}
				prev := ""
				if i > 0 {
					prev = r.Turns[i-1].Context
				}
				cd := encodeContext(t.Context, i-1, prev)
				if _, err := insTurn.ExecContext(ctx, rid, t.Index, cd.suffix, cd.base, cd.prefix, cd.hash, t.Response, t.InternalState, t.Action.String(),
					t.Query, t.Answer, t.Information, string(pj), t.PromptTokens, t.CompletionTokens, t.UsageReported,
					float64(t.Latency)/float64(time.Millisecond), t.FinishReason, ts, t.TokenSource, t.RawResponse); err != nil {
					return fmt.Errorf("storage: import experiment: rollout %d turn %d: %w", n, i, err)
				}
			}
			return nil
		}
		if each != nil {
			return each(add)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return expID, nil
}
