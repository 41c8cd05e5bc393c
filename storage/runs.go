package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/mem1lab/mem1lab/core"
)

// CreateExperiment records a new experiment (status queued) and returns its id.
// configJSON is the experiment's canonical config, configHash its hash.
func (s *Store) CreateExperiment(ctx context.Context, name, configJSON, configHash string) (int64, error) {
	if strings.TrimSpace(name) == "" {
		return 0, errors.New("storage: create experiment: empty name")
	}
	res, err := s.w.ExecContext(ctx,
		`INSERT INTO experiments(name, created_at, config_json, config_hash, status) VALUES (?, ?, ?, ?, ?)`,
		name, now(), configJSON, configHash, StatusQueued)
	if err != nil {
		return 0, fmt.Errorf("storage: create experiment %q: %w", name, err)
	}
	return res.LastInsertId()
}

// SetExperimentStatus sets an experiment's status (one of the Status constants, or
// another non-empty word the runner uses). Unknown id → ErrNotFound.
func (s *Store) SetExperimentStatus(ctx context.Context, id int64, status string) error {
	if status == "" {
		return errors.New("storage: empty experiment status")
	}
	return s.updateOne(ctx, fmt.Sprintf("experiment %d", id),
		`UPDATE experiments SET status = ? WHERE id = ?`, status, id)
}

// updateOne runs a single-row UPDATE on the writer and maps "no row" to ErrNotFound.
func (s *Store) updateOne(ctx context.Context, what, q string, args ...any) error {
	res, err := s.w.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("storage: update %s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("storage: update %s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("storage: %s: %w", what, ErrNotFound)
	}
	return nil
}

// AddTasks stores the tasks of experiment expID in one transaction and returns
// task key → task id. A key already stored with identical content keeps its id (so
// a resumed run can add its tasks again); the same key with other content is an
// error wrapping ErrDuplicate, and nothing is stored.
func (s *Store) AddTasks(ctx context.Context, expID int64, tasks []core.Task) (map[string]int64, error) {
	ids := make(map[string]int64, len(tasks))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM experiments WHERE id = ?`, expID).Scan(&one); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("storage: add tasks: experiment %d: %w", expID, ErrNotFound)
			}
			return fmt.Errorf("storage: add tasks: %w", err)
		}
		get, err := tx.PrepareContext(ctx, `SELECT id, task_json FROM tasks WHERE experiment_id = ? AND key = ?`)
		if err != nil {
			return fmt.Errorf("storage: add tasks: %w", err)
		}
		ins, err := tx.PrepareContext(ctx,
			`INSERT INTO tasks(experiment_id, key, dataset, objectives, task_json) VALUES (?, ?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("storage: add tasks: %w", err)
		}
		for _, t := range tasks {
			if t.Key == "" {
				return errors.New("storage: add tasks: task with empty key")
			}
			b, err := json.Marshal(t)
			if err != nil {
				return fmt.Errorf("storage: add tasks: task %q: %w", t.Key, err)
			}
			var id int64
			var old string
			err = get.QueryRowContext(ctx, expID, t.Key).Scan(&id, &old)
			switch {
			case err == nil:
				if old != string(b) {
					return fmt.Errorf("storage: add tasks: task %q of experiment %d is stored with other content: %w", t.Key, expID, ErrDuplicate)
				}
			case errors.Is(err, sql.ErrNoRows):
				res, err := ins.ExecContext(ctx, expID, t.Key, t.Dataset, len(t.Objectives), string(b))
				if err != nil {
					return fmt.Errorf("storage: add tasks: task %q: %w", t.Key, err)
				}
				if id, err = res.LastInsertId(); err != nil {
					return err
				}
			default:
				return fmt.Errorf("storage: add tasks: %w", err)
			}
			ids[t.Key] = id
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// CreateRollout queues a rollout of task taskID (which must belong to experiment
// expID, else ErrNotFound) under policy and model, and returns its id.
func (s *Store) CreateRollout(ctx context.Context, expID, taskID int64, policy, model string) (int64, error) {
	res, err := s.w.ExecContext(ctx, `
		INSERT INTO rollouts(experiment_id, task_id, policy, model, status)
		SELECT experiment_id, id, ?, ?, ? FROM tasks WHERE id = ? AND experiment_id = ?`,
		policy, model, StatusQueued, taskID, expID)
	if err != nil {
		return 0, fmt.Errorf("storage: create rollout: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, fmt.Errorf("storage: create rollout: task %d of experiment %d: %w", taskID, expID, ErrNotFound)
	}
	return res.LastInsertId()
}

// StartRollout marks a rollout running and sets its start and heartbeat times.
func (s *Store) StartRollout(ctx context.Context, id int64) error {
	t := now()
	return s.updateOne(ctx, fmt.Sprintf("rollout %d", id),
		`UPDATE rollouts SET status = ?, started_at = ?, heartbeat_at = ?, finished_at = NULL WHERE id = ?`,
		StatusRunning, t, t, id)
}

// Heartbeat refreshes a running rollout's heartbeat time (AppendTurn does it too).
func (s *Store) Heartbeat(ctx context.Context, id int64) error {
	return s.updateOne(ctx, fmt.Sprintf("rollout %d", id), `UPDATE rollouts SET heartbeat_at = ? WHERE id = ?`, now(), id)
}

// ResetRollout puts a rollout back in the queue for a retry or a resume after a
// crash: its turns are deleted and its result fields cleared, in one transaction.
func (s *Store) ResetRollout(ctx context.Context, id int64) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE rollouts SET status = ?, em = 0, f1 = 0, score_json = '', answer = '',
			peak_tokens = 0, total_tokens = 0, turns = 0, seconds = 0, hit_max_turns = 0, error = '',
			started_at = NULL, finished_at = NULL, heartbeat_at = NULL WHERE id = ?`, StatusQueued, id)
		if err != nil {
			return fmt.Errorf("storage: reset rollout %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("storage: rollout %d: %w", id, ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM turns WHERE rollout_id = ?`, id); err != nil {
			return fmt.Errorf("storage: reset rollout %d: %w", id, err)
		}
		return nil
	})
}

// AppendTurn stores one turn of a rollout in its own short transaction (so a crash
// loses at most the turn in flight) and refreshes the rollout's heartbeat. A turn
// index already stored for the rollout is an error wrapping ErrDuplicate; an
// unknown rollout wraps ErrNotFound.
func (s *Store) AppendTurn(ctx context.Context, rolloutID int64, t core.Turn) error {
	if t.Index < 0 {
		return fmt.Errorf("storage: append turn: negative index %d", t.Index)
	}
	passages := t.Passages
	if passages == nil {
		passages = []core.Passage{}
	}
	pj, err := json.Marshal(passages)
	if err != nil {
		return fmt.Errorf("storage: append turn: %w", err)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		ts := now()
		res, err := tx.ExecContext(ctx, `UPDATE rollouts SET heartbeat_at = ? WHERE id = ?`, ts, rolloutID)
		if err != nil {
			return fmt.Errorf("storage: append turn to rollout %d: %w", rolloutID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("storage: append turn: rollout %d: %w", rolloutID, ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO turns(rollout_id, idx, context, response, internal_state, action,
			query, answer, information, passages, prompt_tokens, completion_tokens, usage_reported, latency_ms,
			finish_reason, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			rolloutID, t.Index, t.Context, t.Response, t.InternalState, t.Action.String(), t.Query, t.Answer,
			t.Information, string(pj), t.PromptTokens, t.CompletionTokens, t.UsageReported,
			float64(t.Latency)/float64(time.Millisecond), t.FinishReason, ts)
		var se sqlite3.Error
		if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique {
			return fmt.Errorf("storage: append turn: rollout %d already has turn %d: %w", rolloutID, t.Index, ErrDuplicate)
		}
		if err != nil {
			return fmt.Errorf("storage: append turn %d to rollout %d: %w", t.Index, rolloutID, err)
		}
		return nil
	})
}

// FinishRollout writes a rollout's result and finish time. r.Status must be
// StatusDone, StatusFailed or StatusCancelled.
func (s *Store) FinishRollout(ctx context.Context, id int64, r RolloutResult) error {
	switch r.Status {
	case StatusDone, StatusFailed, StatusCancelled:
	default:
		return fmt.Errorf("storage: finish rollout %d: status %q is not done, failed or cancelled", id, r.Status)
	}
	sj, err := json.Marshal(r.Score)
	if err != nil {
		return fmt.Errorf("storage: finish rollout %d: %w", id, err)
	}
	t := now()
	return s.updateOne(ctx, fmt.Sprintf("rollout %d", id), `UPDATE rollouts SET status = ?, em = ?, f1 = ?,
		score_json = ?, answer = ?, peak_tokens = ?, total_tokens = ?, turns = ?, seconds = ?, hit_max_turns = ?,
		error = ?, finished_at = ?, heartbeat_at = ? WHERE id = ?`,
		r.Status, r.Score.EM, r.Score.F1, string(sj), r.Answer, r.PeakTokens, r.TotalTokens, r.Turns, r.Seconds,
		r.HitMaxTurns, r.Error, t, t, id)
}

const experimentSelect = `
	SELECT e.id, e.name, e.created_at, e.config_json, e.config_hash, e.status,
	       COUNT(r.id),
	       COALESCE(SUM(r.status = 'done'), 0),
	       COALESCE(SUM(r.status = 'failed'), 0),
	       COALESCE(SUM(r.status = 'running'), 0),
	       COALESCE(AVG(CASE WHEN r.status = 'done' THEN r.em END), 0),
	       COALESCE(AVG(CASE WHEN r.status = 'done' THEN r.f1 END), 0)
	FROM experiments e LEFT JOIN rollouts r ON r.experiment_id = e.id`

func scanExperiment(sc interface{ Scan(...any) error }) (ExperimentRow, error) {
	var e ExperimentRow
	var created string
	err := sc.Scan(&e.ID, &e.Name, &created, &e.ConfigJSON, &e.ConfigHash, &e.Status,
		&e.Rollouts, &e.Done, &e.Failed, &e.Running, &e.MeanEM, &e.MeanF1)
	e.CreatedAt = parseTime(created)
	return e, err
}

// Experiments lists every experiment, newest first, with its rollout counts and
// the mean EM and F1 over its done rollouts (0 when none is done).
func (s *Store) Experiments(ctx context.Context) ([]ExperimentRow, error) {
	rows, err := s.r.QueryContext(ctx, experimentSelect+` GROUP BY e.id ORDER BY e.id DESC`)
	if err != nil {
		return nil, fmt.Errorf("storage: experiments: %w", err)
	}
	defer rows.Close()
	var out []ExperimentRow
	for rows.Next() {
		e, err := scanExperiment(rows)
		if err != nil {
			return nil, fmt.Errorf("storage: experiments: %w", err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Experiment returns one experiment with its counts, or an error wrapping ErrNotFound.
func (s *Store) Experiment(ctx context.Context, id int64) (ExperimentRow, error) {
	e, err := scanExperiment(s.r.QueryRowContext(ctx, experimentSelect+` WHERE e.id = ? GROUP BY e.id`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return ExperimentRow{}, fmt.Errorf("storage: experiment %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return ExperimentRow{}, fmt.Errorf("storage: experiment %d: %w", id, err)
	}
	return e, nil
}

const (
	rolloutCols = `r.id, r.experiment_id, t.key, t.dataset, r.policy, r.model, t.objectives, r.status, r.em, r.f1,
	       r.peak_tokens, r.total_tokens, r.turns, r.seconds, r.error`
	rolloutFrom   = ` FROM rollouts r JOIN tasks t ON t.id = r.task_id`
	rolloutSelect = `SELECT ` + rolloutCols + rolloutFrom
)

func scanRollout(sc interface{ Scan(...any) error }, extra ...any) (RolloutRow, error) {
	var r RolloutRow
	dst := []any{&r.ID, &r.ExperimentID, &r.TaskKey, &r.Dataset, &r.Policy, &r.Model, &r.Objectives, &r.Status,
		&r.EM, &r.F1, &r.PeakTokens, &r.TotalTokens, &r.Turns, &r.Seconds, &r.Error}
	err := sc.Scan(append(dst, extra...)...)
	return r, err
}

// Rollouts lists the rollouts of experiment expID (0: of every experiment) by id.
func (s *Store) Rollouts(ctx context.Context, expID int64) ([]RolloutRow, error) {
	var rows *sql.Rows
	var err error
	if expID == 0 {
		rows, err = s.r.QueryContext(ctx, rolloutSelect+` ORDER BY r.id`)
	} else {
		rows, err = s.r.QueryContext(ctx, rolloutSelect+` WHERE r.experiment_id = ? ORDER BY r.id`, expID)
	}
	if err != nil {
		return nil, fmt.Errorf("storage: rollouts: %w", err)
	}
	defer rows.Close()
	var out []RolloutRow
	for rows.Next() {
		r, err := scanRollout(rows)
		if err != nil {
			return nil, fmt.Errorf("storage: rollouts: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Rollout returns one rollout with its task, its turns by index and its decoded
// score (zero while unfinished), or an error wrapping ErrNotFound.
func (s *Store) Rollout(ctx context.Context, id int64) (RolloutDetail, error) {
	var taskJSON, scoreJSON string
	row, err := scanRollout(s.r.QueryRowContext(ctx,
		`SELECT `+rolloutCols+`, t.task_json, r.score_json`+rolloutFrom+` WHERE r.id = ?`, id),
		&taskJSON, &scoreJSON)
	if errors.Is(err, sql.ErrNoRows) {
		return RolloutDetail{}, fmt.Errorf("storage: rollout %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return RolloutDetail{}, fmt.Errorf("storage: rollout %d: %w", id, err)
	}
	d := RolloutDetail{RolloutRow: row}
	if err := json.Unmarshal([]byte(taskJSON), &d.Task); err != nil {
		return RolloutDetail{}, fmt.Errorf("storage: rollout %d: task: %w", id, err)
	}
	if scoreJSON != "" {
		if err := json.Unmarshal([]byte(scoreJSON), &d.Score); err != nil {
			return RolloutDetail{}, fmt.Errorf("storage: rollout %d: score: %w", id, err)
		}
	}
	if d.Turns, err = s.Turns(ctx, id); err != nil {
		return RolloutDetail{}, err
	}
	return d, nil
}

// Turns returns the stored turns of a rollout ordered by index (none for an
// unknown rollout).
func (s *Store) Turns(ctx context.Context, rolloutID int64) ([]core.Turn, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT idx, context, response, internal_state, action, query, answer,
		information, passages, prompt_tokens, completion_tokens, usage_reported, latency_ms, finish_reason
		FROM turns WHERE rollout_id = ? ORDER BY idx`, rolloutID)
	if err != nil {
		return nil, fmt.Errorf("storage: turns of rollout %d: %w", rolloutID, err)
	}
	defer rows.Close()
	var out []core.Turn
	for rows.Next() {
		var t core.Turn
		var action, pj string
		var ms float64
		if err := rows.Scan(&t.Index, &t.Context, &t.Response, &t.InternalState, &action, &t.Query, &t.Answer,
			&t.Information, &pj, &t.PromptTokens, &t.CompletionTokens, &t.UsageReported, &ms, &t.FinishReason); err != nil {
			return nil, fmt.Errorf("storage: turns of rollout %d: %w", rolloutID, err)
		}
		t.Action = core.ParseAction(action)
		t.Latency = time.Duration(math.Round(ms * float64(time.Millisecond)))
		if err := json.Unmarshal([]byte(pj), &t.Passages); err != nil {
			return nil, fmt.Errorf("storage: turn %d of rollout %d: passages: %w", t.Index, rolloutID, err)
		}
		if len(t.Passages) == 0 {
			t.Passages = nil
		}
		out = append(out, t)
	}
	return out, rows.Err()
}
