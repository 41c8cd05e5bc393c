package storage

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"time"

	"github.com/mem1lab/mem1lab/core"
)

// AppendSubCall commits one sub-call of a rollout's memory policy in its own
// transaction (core.SubCall: turn, seq, role, endpoint, request, response,
// usage, latency, error) and refreshes the rollout's heartbeat. A call stored
// again under the same (turn, seq) replaces the earlier row (a retried turn
// after a failed call). An unknown rollout wraps ErrNotFound.
func (s *Store) AppendSubCall(ctx context.Context, rolloutID int64, c core.SubCall) error {
	if c.Turn < 0 || c.Seq < 0 {
		return fmt.Errorf("storage: append sub-call: negative turn %d or seq %d", c.Turn, c.Seq)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		ts := now()
		res, err := tx.ExecContext(ctx, `UPDATE rollouts SET heartbeat_at = ? WHERE id = ?`, ts, rolloutID)
		if err != nil {
			return fmt.Errorf("storage: append sub-call to rollout %d: %w", rolloutID, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("storage: append sub-call: rollout %d: %w", rolloutID, ErrNotFound)
		}
		_, err = tx.ExecContext(ctx, `INSERT OR REPLACE INTO subcalls(rollout_id, turn_idx, seq, role, endpoint, request,
			response, prompt_tokens, completion_tokens, usage_reported, latency_ms, error, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, rolloutID, c.Turn, c.Seq, c.Role, c.Endpoint, c.Request,
			c.Response, c.Usage.PromptTokens, c.Usage.CompletionTokens, c.Usage.Reported,
			float64(c.Latency)/float64(time.Millisecond), c.Error, ts)
		if err != nil {
			return fmt.Errorf("storage: append sub-call %d/%d to rollout %d: %w", c.Turn, c.Seq, rolloutID, err)
		}
		return nil
	})
}

// FlagSubCall sets the error text of a stored sub-call (its reply could not
// be used). An unknown sub-call wraps ErrNotFound.
func (s *Store) FlagSubCall(ctx context.Context, rolloutID int64, turn, seq int, msg string) error {
	return s.updateOne(ctx, fmt.Sprintf("sub-call %d/%d of rollout %d", turn, seq, rolloutID),
		`UPDATE subcalls SET error = ? WHERE rollout_id = ? AND turn_idx = ? AND seq = ?`, msg, rolloutID, turn, seq)
}

// DropSubCalls deletes a rollout's stored sub-calls of turn from seq on: a
// resumed turn that went another way than before the crash drops what no
// longer belongs to it.
func (s *Store) DropSubCalls(ctx context.Context, rolloutID int64, turn, seq int) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM subcalls WHERE rollout_id = ? AND turn_idx = ? AND seq >= ?`, rolloutID, turn, seq); err != nil {
			return fmt.Errorf("storage: drop sub-calls of rollout %d turn %d: %w", rolloutID, turn, err)
		}
		return nil
	})
}

// SubCalls returns every stored sub-call of a rollout by turn then seq,
// including those of a turn that was never stored (a crash or failure after
// them).
func (s *Store) SubCalls(ctx context.Context, rolloutID int64) ([]core.SubCall, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT turn_idx, seq, role, endpoint, request, response, prompt_tokens,
		completion_tokens, usage_reported, latency_ms, error FROM subcalls WHERE rollout_id = ? ORDER BY turn_idx, seq`, rolloutID)
	if err != nil {
		return nil, fmt.Errorf("storage: sub-calls of rollout %d: %w", rolloutID, err)
	}
	defer rows.Close()
	var out []core.SubCall
	for rows.Next() {
		var c core.SubCall
		var ms float64
		if err := rows.Scan(&c.Turn, &c.Seq, &c.Role, &c.Endpoint, &c.Request, &c.Response, &c.Usage.PromptTokens,
			&c.Usage.CompletionTokens, &c.Usage.Reported, &ms, &c.Error); err != nil {
			return nil, fmt.Errorf("storage: sub-calls of rollout %d: %w", rolloutID, err)
		}
		c.Latency = time.Duration(math.Round(ms * float64(time.Millisecond)))
		out = append(out, c)
	}
	return out, rows.Err()
}

// appendTurnMemoryTx stores a memory policy's payload and state for turn t
// (nothing for a turn without them).
func appendTurnMemoryTx(ctx context.Context, tx *sql.Tx, rolloutID int64, t core.Turn) error {
	if t.Memory == "" && t.MemoryState == "" {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO turn_memory(rollout_id, idx, payload, state) VALUES (?, ?, ?, ?)`,
		rolloutID, t.Index, t.Memory, t.MemoryState); err != nil {
		return fmt.Errorf("storage: memory of turn %d of rollout %d: %w", t.Index, rolloutID, err)
	}
	return nil
}

// resetMemoryTx drops a rollout's sub-calls and memory rows (ResetRollout).
func resetMemoryTx(ctx context.Context, tx *sql.Tx, id int64) error {
	for _, q := range []string{`DELETE FROM subcalls WHERE rollout_id = ?`, `DELETE FROM turn_memory WHERE rollout_id = ?`} {
		if _, err := tx.ExecContext(ctx, q, id); err != nil {
			return fmt.Errorf("storage: reset rollout %d: %w", id, err)
		}
	}
	return nil
}

// fillMemory sets the stored turns' memory payload, state and sub-calls.
func (s *Store) fillMemory(ctx context.Context, rolloutID int64, turns []core.Turn) ([]core.Turn, error) {
	if len(turns) == 0 {
		return turns, nil
	}
	byIdx := map[int]*core.Turn{}
	for i := range turns {
		byIdx[turns[i].Index] = &turns[i]
	}
	rows, err := s.r.QueryContext(ctx, `SELECT idx, payload, state FROM turn_memory WHERE rollout_id = ?`, rolloutID)
	if err != nil {
		return nil, fmt.Errorf("storage: memory of rollout %d: %w", rolloutID, err)
	}
	for rows.Next() {
		var idx int
		var payload, state string
		if err := rows.Scan(&idx, &payload, &state); err != nil {
			rows.Close()
			return nil, fmt.Errorf("storage: memory of rollout %d: %w", rolloutID, err)
		}
		if t := byIdx[idx]; t != nil {
			t.Memory, t.MemoryState = payload, state
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	calls, err := s.SubCalls(ctx, rolloutID)
	if err != nil {
		return nil, err
	}
	for _, c := range calls {
		if t := byIdx[c.Turn]; t != nil {
			t.SubCalls = append(t.SubCalls, c)
		}
	}
	return turns, nil
}

// RoleCost is what one role's sub-calls of a rollout cost: calls, tokens
// (prompt + completion) and seconds (summed latencies).
type RoleCost struct {
	Role    string
	Calls   int
	Tokens  int
	Seconds float64
}

// SubCallCosts sums experiment expID's sub-calls by rollout and role (every
// committed sub-call, including those of a turn that was never stored);
// roles of a rollout are in name order. Rollouts without sub-calls are absent.
func (s *Store) SubCallCosts(ctx context.Context, expID int64) (map[int64][]RoleCost, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT s.rollout_id, s.role, COUNT(*), SUM(s.prompt_tokens + s.completion_tokens),
		SUM(s.latency_ms) FROM subcalls s JOIN rollouts r ON r.id = s.rollout_id WHERE r.experiment_id = ?
		GROUP BY s.rollout_id, s.role ORDER BY s.rollout_id, s.role`, expID)
	if err != nil {
		return nil, fmt.Errorf("storage: sub-call costs of experiment %d: %w", expID, err)
	}
	defer rows.Close()
	out := map[int64][]RoleCost{}
	for rows.Next() {
		var id int64
		var c RoleCost
		var ms float64
		if err := rows.Scan(&id, &c.Role, &c.Calls, &c.Tokens, &ms); err != nil {
			return nil, fmt.Errorf("storage: sub-call costs of experiment %d: %w", expID, err)
		}
		c.Seconds = ms / 1000
		out[id] = append(out[id], c)
	}
	return out, rows.Err()
}

// SortSubCallTokens orders the rollout browser by the rollouts' sub-call
// tokens (memory policies' extra calls).
const SortSubCallTokens = "subcall_tokens"

// subCallTokensExpr and subCallSecondsExpr are a browsed rollout's sub-call
// tokens and seconds (0 without sub-calls); the subcalls unique index on
// (rollout_id, turn_idx, seq) answers them.
const (
	subCallTokensExpr  = `(SELECT COALESCE(SUM(sc.prompt_tokens + sc.completion_tokens), 0) FROM subcalls sc WHERE sc.rollout_id = r.id)`
	subCallSecondsExpr = `(SELECT COALESCE(SUM(sc.latency_ms), 0) / 1000.0 FROM subcalls sc WHERE sc.rollout_id = r.id)`
)

func init() { sortColumns[SortSubCallTokens] = subCallTokensExpr }
