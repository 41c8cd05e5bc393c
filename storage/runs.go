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
	s.contexts.drop(id) // as a claim does (previousContext)
	t := now()
	return s.updateOne(ctx, fmt.Sprintf("rollout %d", id),
		`UPDATE rollouts SET status = ?, started_at = ?, heartbeat_at = ?, finished_at = NULL WHERE id = ?`,
		StatusRunning, t, t, id)
}

// SetRolloutPrompt records the task prompt a rollout's model calls carry (the
// user message the template rendered for its task; RolloutDetail.Prompt reads it
// back). The runner calls it when it claims the rollout, before the first model
// call. An unknown rollout wraps ErrNotFound.
func (s *Store) SetRolloutPrompt(ctx context.Context, id int64, prompt string) error {
	return s.updateOne(ctx, fmt.Sprintf("rollout %d", id), `UPDATE rollouts SET prompt = ? WHERE id = ?`, prompt, id)
}

// Heartbeat refreshes a running rollout's heartbeat time (AppendTurn does it too).
func (s *Store) Heartbeat(ctx context.Context, id int64) error {
	return s.updateOne(ctx, fmt.Sprintf("rollout %d", id), `UPDATE rollouts SET heartbeat_at = ? WHERE id = ?`, now(), id)
}

// ResetRollout puts a rollout back in the queue for a retry or a resume after a
// crash: its turns are deleted and its result fields cleared, in one transaction.
func (s *Store) ResetRollout(ctx context.Context, id int64) error {
	s.contexts.drop(id)
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE rollouts SET status = ?, em = 0, f1 = 0, score_json = '', answer = '',
			peak_tokens = 0, total_tokens = 0, turns = 0, seconds = 0, hit_max_turns = 0, error = '',
			paper_peak_tokens = NULL, dependency = NULL, compression_ratio = NULL, exact_match_lenient = NULL,
			paper_token_source = NULL, request_peak_tokens = NULL, token_source = NULL,
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
		return resetMemoryTx(ctx, tx, id)
	})
}

// AppendTurn stores one turn of a rollout in its own short transaction (so a crash
// loses at most the turn in flight) and refreshes the rollout's heartbeat. A turn
// index already stored for the rollout is an error wrapping ErrDuplicate; an
// unknown rollout wraps ErrNotFound.
func (s *Store) AppendTurn(ctx context.Context, rolloutID int64, t core.Turn) error {
	return s.ApplyWrites(ctx, []Write{{RolloutID: rolloutID, Turn: &t}})[0].Err
}

// TurnWrite is one turn of a rollout, for AppendTurns.
type TurnWrite struct {
	RolloutID int64
	Turn      core.Turn
}

// AppendTurns stores turns of several rollouts in one transaction (a group
// commit) and returns one error per write, nil for each stored turn; see
// ApplyWrites.
func (s *Store) AppendTurns(ctx context.Context, ws []TurnWrite) []error {
	writes := make([]Write, len(ws))
	for i := range ws {
		writes[i] = Write{RolloutID: ws[i].RolloutID, Turn: &ws[i].Turn}
	}
	errs := make([]error, len(ws))
	for i, o := range s.ApplyWrites(ctx, writes) {
		errs[i] = o.Err
	}
	return errs
}

// appendTurnTx inserts one turn and refreshes its rollout's heartbeat inside tx.
// The context is stored as a delta on the previous stored turn (contexts.go).
func (s *Store) appendTurnTx(ctx context.Context, tx *sql.Tx, rolloutID int64, t core.Turn) error {
	passages := t.Passages
	if passages == nil {
		passages = []core.Passage{}
	}
	pj, err := json.Marshal(passages)
	if err != nil {
		return fmt.Errorf("storage: append turn: %w", err)
	}
	ts := now()
	res, err := tx.StmtContext(ctx, s.stmts.heartbeat).ExecContext(ctx, ts, rolloutID)
	if err != nil {
		return fmt.Errorf("storage: append turn to rollout %d: %w", rolloutID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("storage: append turn: rollout %d: %w", rolloutID, ErrNotFound)
	}
	prevIdx, prev, err := s.previousContext(ctx, tx, rolloutID, t.Index)
	if err != nil {
		return err
	}
	cd := encodeContext(t.Context, prevIdx, prev)
	_, err = tx.StmtContext(ctx, s.stmts.insertTurn).ExecContext(ctx,
		rolloutID, t.Index, cd.suffix, cd.base, cd.prefix, cd.hash, t.Response, t.InternalState, t.Action.String(), t.Query, t.Answer,
		t.Information, string(pj), t.PromptTokens, t.CompletionTokens, t.UsageReported,
		float64(t.Latency)/float64(time.Millisecond), t.FinishReason, ts, float64(t.RetrievalLatency)/float64(time.Millisecond), t.TokenSource, t.RawResponse, t.Cached)
	var se sqlite3.Error
	if errors.As(err, &se) && se.ExtendedCode == sqlite3.ErrConstraintUnique {
		return fmt.Errorf("storage: append turn: rollout %d already has turn %d: %w", rolloutID, t.Index, ErrDuplicate)
	}
	if err != nil {
		return fmt.Errorf("storage: append turn %d to rollout %d: %w", t.Index, rolloutID, err)
	}
	if err := appendTurnMemoryTx(ctx, tx, rolloutID, t); err != nil {
		return err
	}
	// Before the commit: a batch that rolls back forgets it again (ApplyWrites).
	s.contexts.put(rolloutID, cachedContext{idx: t.Index, hash: cd.hash, full: t.Context})
	return nil
}

// FinishRollout writes a rollout's result and finish time. r.Status must be
// StatusDone, StatusFailed or StatusCancelled; an error text over
// MaxErrorText bytes is cut (noting the size).
func (s *Store) FinishRollout(ctx context.Context, id int64, r RolloutResult) error {
	return s.ApplyWrites(ctx, []Write{{RolloutID: id, Finish: &r}})[0].Err
}

// paperArgs are the SQL values of paper_peak_tokens, dependency,
// compression_ratio, exact_match_lenient and paper_token_source (all NULL for
// nil m; a figure that is eval.py's None is NULL).
func paperArgs(m *core.PaperMetrics) []any {
	if m == nil {
		return []any{nil, nil, nil, nil, nil}
	}
	var peak, dep, ratio any
	if m.PeakTokens != nil {
		peak = *m.PeakTokens
	}
	if m.Dependency != nil {
		dep = *m.Dependency
	}
	if m.CompressionRatio != nil {
		ratio = *m.CompressionRatio
	}
	return []any{peak, dep, ratio, m.ExactMatchLenient, core.TokenSourceO200k}
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// PaperBackfills lists the finished rollouts (done, failed or cancelled) whose
// paper figures were never computed, by id.
func (s *Store) PaperBackfills(ctx context.Context) ([]PaperBackfill, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT r.id, r.policy, e.config_json, t.task_json
		FROM rollouts r JOIN tasks t ON t.id = r.task_id JOIN experiments e ON e.id = r.experiment_id
		WHERE r.paper_token_source IS NULL AND r.status IN ('done', 'failed', 'cancelled') ORDER BY r.id`)
	if err != nil {
		return nil, fmt.Errorf("storage: rollouts to backfill: %w", err)
	}
	defer rows.Close()
	var out []PaperBackfill
	for rows.Next() {
		var b PaperBackfill
		var tj string
		if err := rows.Scan(&b.ID, &b.Policy, &b.ConfigJSON, &tj); err != nil {
			return nil, fmt.Errorf("storage: rollouts to backfill: %w", err)
		}
		if err := json.Unmarshal([]byte(tj), &b.Task); err != nil {
			return nil, fmt.Errorf("storage: rollout %d: task: %w", b.ID, err)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// SetPaperMetrics writes a finished rollout's paper figures and its request
// peak with that figure's source (a backfill from stored turns); the other
// result fields are left as they are. An unknown rollout wraps ErrNotFound.
func (s *Store) SetPaperMetrics(ctx context.Context, id int64, m core.PaperMetrics, requestPeak int, source string) error {
	return s.updateOne(ctx, fmt.Sprintf("rollout %d", id), `UPDATE rollouts SET paper_peak_tokens = ?, dependency = ?,
		compression_ratio = ?, exact_match_lenient = ?, paper_token_source = ?, request_peak_tokens = ?, token_source = ?
		WHERE id = ?`, append(paperArgs(&m), requestPeak, nullString(source), id)...)
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
	       r.peak_tokens, r.total_tokens, r.turns, r.seconds, r.error,
	       r.paper_peak_tokens, r.dependency, r.compression_ratio, r.exact_match_lenient, r.paper_token_source,
	       COALESCE(r.request_peak_tokens, r.peak_tokens), COALESCE(r.token_source, '')`
	rolloutFrom   = ` FROM rollouts r JOIN tasks t ON t.id = r.task_id`
	rolloutSelect = `SELECT ` + rolloutCols + rolloutFrom
)

func scanRollout(sc interface{ Scan(...any) error }, extra ...any) (RolloutRow, error) {
	var r RolloutRow
	x := rolloutScan{r: &r}
	err := sc.Scan(append(x.dst(), extra...)...)
	if err == nil {
		x.done()
	}
	return r, err
}

// rolloutScan scans rolloutCols into a RolloutRow: dst gives the scan
// destinations, done decodes the nullable paper figures.
type rolloutScan struct {
	r             *RolloutRow
	peak, dep, em sql.NullInt64
	ratio         sql.NullFloat64
	psrc          sql.NullString
}

func (x *rolloutScan) dst() []any {
	r := x.r
	return []any{&r.ID, &r.ExperimentID, &r.TaskKey, &r.Dataset, &r.Policy, &r.Model, &r.Objectives, &r.Status,
		&r.EM, &r.F1, &r.PeakTokens, &r.TotalTokens, &r.Turns, &r.Seconds, &r.Error,
		&x.peak, &x.dep, &x.ratio, &x.em, &x.psrc, &r.RequestPeakTokens, &r.TokenSource}
}

func (x *rolloutScan) done() {
	if !x.psrc.Valid {
		return
	}
	m := &core.PaperMetrics{ExactMatchLenient: int(x.em.Int64), Full: core.PaperRuleFull(x.r.Policy)}
	if x.peak.Valid {
		v := int(x.peak.Int64)
		m.PeakTokens = &v
	}
	if x.dep.Valid {
		v := int(x.dep.Int64)
		m.Dependency = &v
	}
	if x.ratio.Valid {
		v := x.ratio.Float64
		m.CompressionRatio = &v
	}
	x.r.Paper = m
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
	var taskJSON, scoreJSON, prompt string
	row, err := scanRollout(s.r.QueryRowContext(ctx,
		`SELECT `+rolloutCols+`, t.task_json, r.score_json, r.prompt`+rolloutFrom+` WHERE r.id = ?`, id),
		&taskJSON, &scoreJSON, &prompt)
	if errors.Is(err, sql.ErrNoRows) {
		return RolloutDetail{}, fmt.Errorf("storage: rollout %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return RolloutDetail{}, fmt.Errorf("storage: rollout %d: %w", id, err)
	}
	d := RolloutDetail{RolloutRow: row, Prompt: prompt}
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
// unknown rollout). Each Context is rebuilt byte for byte from its stored delta
// (contexts.go) and checked against its stored SHA-256; a mismatch is an error
// wrapping ErrContextHash.
func (s *Store) Turns(ctx context.Context, rolloutID int64) ([]core.Turn, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT idx, context, ctx_base, ctx_prefix, ctx_sha256, response,
		internal_state, action, query, answer,
		information, passages, prompt_tokens, completion_tokens, usage_reported, latency_ms, finish_reason, retrieval_ms, token_source, raw_response, cached
		FROM turns WHERE rollout_id = ? ORDER BY idx`, rolloutID)
	if err != nil {
		return nil, fmt.Errorf("storage: turns of rollout %d: %w", rolloutID, err)
	}
	defer rows.Close()
	var out []core.Turn
	dec := newContextDecoder(rolloutID, nil)
	for rows.Next() {
		var t core.Turn
		var action, pj, suffix, hash string
		var base sql.NullInt64
		var prefix int
		var ms, rms float64
		if err := rows.Scan(&t.Index, &suffix, &base, &prefix, &hash, &t.Response, &t.InternalState, &action, &t.Query, &t.Answer,
			&t.Information, &pj, &t.PromptTokens, &t.CompletionTokens, &t.UsageReported, &ms, &t.FinishReason, &rms, &t.TokenSource, &t.RawResponse, &t.Cached); err != nil {
			return nil, fmt.Errorf("storage: turns of rollout %d: %w", rolloutID, err)
		}
		if t.Context, err = dec.next(t.Index, suffix, base, prefix, hash); err != nil {
			return nil, err
		}
		t.Action = core.ParseAction(action)
		t.Latency = time.Duration(math.Round(ms * float64(time.Millisecond)))
		t.RetrievalLatency = time.Duration(math.Round(rms * float64(time.Millisecond)))
		if err := json.Unmarshal([]byte(pj), &t.Passages); err != nil {
			return nil, fmt.Errorf("storage: turn %d of rollout %d: passages: %w", t.Index, rolloutID, err)
		}
		if len(t.Passages) == 0 {
			t.Passages = nil
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return s.fillMemory(ctx, rolloutID, out)
}

// RolloutSpec is one rollout to queue: a stored task under a policy and model.
type RolloutSpec struct {
	TaskID int64
	Policy string
	Model  string
}

// QueueRollouts queues every spec for experiment expID in one transaction and
// returns the new rollout ids in spec order. A task that is not the
// experiment's is an error wrapping ErrNotFound and nothing is queued.
func (s *Store) QueueRollouts(ctx context.Context, expID int64, specs []RolloutSpec) ([]int64, error) {
	ids := make([]int64, len(specs))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, `
			INSERT INTO rollouts(experiment_id, task_id, policy, model, status)
			SELECT experiment_id, id, ?, ?, ? FROM tasks WHERE id = ? AND experiment_id = ?`)
		if err != nil {
			return fmt.Errorf("storage: queue rollouts: %w", err)
		}
		defer ins.Close()
		for i, sp := range specs {
			res, err := ins.ExecContext(ctx, sp.Policy, sp.Model, StatusQueued, sp.TaskID, expID)
			if err != nil {
				return fmt.Errorf("storage: queue rollouts: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return fmt.Errorf("storage: queue rollouts: task %d of experiment %d: %w", sp.TaskID, expID, ErrNotFound)
			}
			if ids[i], err = res.LastInsertId(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}

// Lease is who runs an experiment and what was asked of it.
type Lease struct {
	Owner   string    // "" when no process holds the experiment
	At      time.Time // the owner's last heartbeat (zero when none)
	Control string    // "", "pause" or "cancel"
	Status  string    // the experiment's status
}

// ExperimentLease reads experiment id's lease, control request and status.
func (s *Store) ExperimentLease(ctx context.Context, id int64) (Lease, error) {
	var l Lease
	var at sql.NullString
	err := s.w.QueryRowContext(ctx, `SELECT owner, owner_at, control, status FROM experiments WHERE id = ?`, id).
		Scan(&l.Owner, &at, &l.Control, &l.Status)
	if errors.Is(err, sql.ErrNoRows) {
		return Lease{}, fmt.Errorf("storage: experiment %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Lease{}, fmt.Errorf("storage: experiment %d lease: %w", id, err)
	}
	if at.Valid {
		l.At = parseTime(at.String)
	}
	return l, nil
}

// ClaimExperiment makes owner the holder of experiment id when its current
// holder is prev (compare and swap) and reports whether it did. A claim also
// clears the control request.
func (s *Store) ClaimExperiment(ctx context.Context, id int64, owner, prev string) (bool, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE experiments SET owner = ?, owner_at = ?, control = '' WHERE id = ? AND owner = ?`,
		owner, now(), id, prev)
	if err != nil {
		return false, fmt.Errorf("storage: claim experiment %d: %w", id, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// TouchExperiment is the owner's heartbeat: it refreshes the lease and the
// heartbeat of the experiment's running rollouts, and returns the control
// request. A lease held by another owner is an error.
func (s *Store) TouchExperiment(ctx context.Context, id int64, owner string) (string, error) {
	var control string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ts := now()
		res, err := tx.ExecContext(ctx, `UPDATE experiments SET owner_at = ? WHERE id = ? AND owner = ?`, ts, id, owner)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("storage: experiment %d is no longer held by %s", id, owner)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE rollouts SET heartbeat_at = ? WHERE experiment_id = ? AND status = ?`,
			ts, id, StatusRunning); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT control FROM experiments WHERE id = ?`, id).Scan(&control)
	})
	if err != nil {
		return "", fmt.Errorf("storage: heartbeat of experiment %d: %w", id, err)
	}
	return control, nil
}

// ReleaseExperiment gives up owner's lease on experiment id (no-op when another holds it).
func (s *Store) ReleaseExperiment(ctx context.Context, id int64, owner string) error {
	_, err := s.w.ExecContext(ctx, `UPDATE experiments SET owner = '', owner_at = NULL WHERE id = ? AND owner = ?`, id, owner)
	if err != nil {
		return fmt.Errorf("storage: release experiment %d: %w", id, err)
	}
	return nil
}

// SetExperimentControl records a control request ("", "pause" or "cancel") for
// whoever runs experiment id.
func (s *Store) SetExperimentControl(ctx context.Context, id int64, control string) error {
	switch control {
	case "", "pause", "cancel":
	default:
		return fmt.Errorf("storage: control %q: want \"\", \"pause\" or \"cancel\"", control)
	}
	return s.updateOne(ctx, fmt.Sprintf("experiment %d", id), `UPDATE experiments SET control = ? WHERE id = ?`, control, id)
}

// RequeueInterrupted puts the experiment's running and cancelled rollouts back
// in the queue, keeping their stored turns (a resumed rollout continues from its
// last stored turn), and returns how many it requeued. Only the experiment's
// lease holder may call it.
func (s *Store) RequeueInterrupted(ctx context.Context, expID int64) (int, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE rollouts SET status = ?, error = '', finished_at = NULL
		WHERE experiment_id = ? AND status IN (?, ?)`, StatusQueued, expID, StatusRunning, StatusCancelled)
	if err != nil {
		return 0, fmt.Errorf("storage: requeue rollouts of experiment %d: %w", expID, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// CancelQueued marks the experiment's queued rollouts cancelled and returns how many.
func (s *Store) CancelQueued(ctx context.Context, expID int64) (int, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE rollouts SET status = ?, error = 'cancelled before it started', finished_at = ?
		WHERE experiment_id = ? AND status = ?`, StatusCancelled, now(), expID, StatusQueued)
	if err != nil {
		return 0, fmt.Errorf("storage: cancel rollouts of experiment %d: %w", expID, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// PendingRollout is a queued rollout with its task, ready to play.
type PendingRollout struct {
	ID     int64
	Task   core.Task
	Policy string
	Model  string
	// HasTurns: the rollout had stored turns when it was listed (it was
	// interrupted and continues from them); false: it starts from turn 0.
	HasTurns bool
}

// QueuedRollouts lists experiment expID's queued rollouts by id with their
// tasks and whether each has stored turns.
func (s *Store) QueuedRollouts(ctx context.Context, expID int64) ([]PendingRollout, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT r.id, r.policy, r.model, t.task_json,
		EXISTS (SELECT 1 FROM turns WHERE rollout_id = r.id) FROM rollouts r
		JOIN tasks t ON t.id = r.task_id WHERE r.experiment_id = ? AND r.status = ? ORDER BY r.id`, expID, StatusQueued)
	if err != nil {
		return nil, fmt.Errorf("storage: queued rollouts: %w", err)
	}
	defer rows.Close()
	var out []PendingRollout
	for rows.Next() {
		var p PendingRollout
		var tj string
		if err := rows.Scan(&p.ID, &p.Policy, &p.Model, &tj, &p.HasTurns); err != nil {
			return nil, fmt.Errorf("storage: queued rollouts: %w", err)
		}
		if err := json.Unmarshal([]byte(tj), &p.Task); err != nil {
			return nil, fmt.Errorf("storage: rollout %d: task: %w", p.ID, err)
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// ClaimRollout marks a queued rollout running on endpoint and reports whether it
// was queued (a rollout is started at most once at a time).
func (s *Store) ClaimRollout(ctx context.Context, id int64, endpoint string) (bool, error) {
	o := s.ApplyWrites(ctx, []Write{{RolloutID: id, Claim: &Claim{Endpoint: endpoint}}})[0]
	return o.Claimed, o.Err
}

// Attempt is one failed model call of a turn.
type Attempt struct {
	RolloutID int64
	Turn      int // 0-based turn index
	Attempt   int // 1-based
	Endpoint  string
	Status    int // HTTP status, 0 when the call failed before one arrived
	Error     string
	Latency   time.Duration
}

// RecordAttempt stores a failed model call and counts it in the rollout's
// retries. An error text over MaxErrorText bytes is cut (noting the size).
func (s *Store) RecordAttempt(ctx context.Context, a Attempt) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		ts := now()
		res, err := tx.ExecContext(ctx, `UPDATE rollouts SET retries = retries + 1, heartbeat_at = ? WHERE id = ?`, ts, a.RolloutID)
		if err != nil {
			return fmt.Errorf("storage: record attempt: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("storage: record attempt: rollout %d: %w", a.RolloutID, ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO attempts(rollout_id, turn_idx, attempt, endpoint, status, error, latency_ms, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, a.RolloutID, a.Turn, a.Attempt, a.Endpoint, a.Status, clipErrorText(a.Error),
			float64(a.Latency)/float64(time.Millisecond), ts)
		if err != nil {
			return fmt.Errorf("storage: record attempt: %w", err)
		}
		return nil
	})
}

// Attempts returns a rollout's failed model calls by turn then attempt.
func (s *Store) Attempts(ctx context.Context, rolloutID int64) ([]Attempt, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT turn_idx, attempt, endpoint, status, error, latency_ms FROM attempts
		WHERE rollout_id = ? ORDER BY turn_idx, attempt, id`, rolloutID)
	if err != nil {
		return nil, fmt.Errorf("storage: attempts of rollout %d: %w", rolloutID, err)
	}
	defer rows.Close()
	var out []Attempt
	for rows.Next() {
		a := Attempt{RolloutID: rolloutID}
		var ms float64
		if err := rows.Scan(&a.Turn, &a.Attempt, &a.Endpoint, &a.Status, &a.Error, &ms); err != nil {
			return nil, fmt.Errorf("storage: attempts of rollout %d: %w", rolloutID, err)
		}
		a.Latency = time.Duration(ms * float64(time.Millisecond))
		out = append(out, a)
	}
	return out, rows.Err()
}

// RolloutRun is what the run monitor needs of each rollout: where it stands and
// which endpoint played it.
type RolloutRun struct {
	ID       int64
	Status   string
	Endpoint string
	Retries  int
	Error    string
}

// RolloutRuns lists experiment expID's rollouts by id with status, endpoint,
// retries and error.
func (s *Store) RolloutRuns(ctx context.Context, expID int64) ([]RolloutRun, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, status, endpoint, retries, error FROM rollouts
		WHERE experiment_id = ? ORDER BY id`, expID)
	if err != nil {
		return nil, fmt.Errorf("storage: rollout runs: %w", err)
	}
	defer rows.Close()
	var out []RolloutRun
	for rows.Next() {
		var r RolloutRun
		if err := rows.Scan(&r.ID, &r.Status, &r.Endpoint, &r.Retries, &r.Error); err != nil {
			return nil, fmt.Errorf("storage: rollout runs: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// ExperimentsByHash lists the ids of experiments whose config hash is hash, newest first.
func (s *Store) ExperimentsByHash(ctx context.Context, hash string) ([]int64, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM experiments WHERE config_hash = ? ORDER BY id DESC`, hash)
	if err != nil {
		return nil, fmt.Errorf("storage: experiments by hash: %w", err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// SaveEndpointProfile stores (or replaces) a named endpoint profile as JSON.
// The profile must hold no secret: only where to find the API key (a
// user:password@ in its "url" is removed before it is stored).
func (s *Store) SaveEndpointProfile(ctx context.Context, name, profileJSON string) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("storage: endpoint profile: empty name")
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO endpoint_profiles(name, profile_json, updated_at) VALUES (?, ?, ?)
		ON CONFLICT(name) DO UPDATE SET profile_json = excluded.profile_json, updated_at = excluded.updated_at`,
		name, withoutUserinfo(profileJSON), now())
	if err != nil {
		return fmt.Errorf("storage: save endpoint profile %q: %w", name, err)
	}
	return nil
}

// DeleteEndpointProfile removes a named endpoint profile (no-op when absent).
func (s *Store) DeleteEndpointProfile(ctx context.Context, name string) error {
	_, err := s.w.ExecContext(ctx, `DELETE FROM endpoint_profiles WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("storage: delete endpoint profile %q: %w", name, err)
	}
	return nil
}

// EndpointProfiles returns name → profile JSON for every stored profile.
func (s *Store) EndpointProfiles(ctx context.Context) (map[string]string, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, profile_json FROM endpoint_profiles ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("storage: endpoint profiles: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var n, j string
		if err := rows.Scan(&n, &j); err != nil {
			return nil, err
		}
		out[n] = j
	}
	return out, rows.Err()
}
