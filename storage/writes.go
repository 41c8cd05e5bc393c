package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mem1lab/mem1lab/core"
)

// writeStmts are the statements of the runner's commit path, prepared once on
// the writer connection (each transaction reuses them through Tx.StmtContext).
type writeStmts struct {
	heartbeat, insertTurn, prevTurn, claim, claimPrompt, finish, paper *sql.Stmt
}

const (
	sqlHeartbeat  = `UPDATE rollouts SET heartbeat_at = ? WHERE id = ?`
	sqlInsertTurn = `INSERT INTO turns(rollout_id, idx, context, ctx_base, ctx_prefix, ctx_sha256,
		response, internal_state, action,
		query, answer, information, passages, prompt_tokens, completion_tokens, usage_reported, latency_ms,
		finish_reason, created_at, retrieval_ms, token_source, raw_response, cached) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlPrevTurn = `SELECT idx, ctx_sha256 FROM turns WHERE rollout_id = ? AND idx < ?
		ORDER BY idx DESC LIMIT 1`
	sqlClaim = `UPDATE rollouts SET status = ?, endpoint = ?, heartbeat_at = ?,
		started_at = COALESCE(started_at, ?), finished_at = NULL WHERE id = ? AND status = ?`
	sqlClaimPrompt = `UPDATE rollouts SET prompt = ? WHERE id = ?`
	sqlFinish      = `UPDATE rollouts SET status = ?, em = ?, f1 = ?,
		score_json = ?, answer = ?, peak_tokens = ?, total_tokens = ?, turns = ?, seconds = ?, hit_max_turns = ?,
		error = ?, finished_at = ?, heartbeat_at = ?,
		paper_peak_tokens = ?, dependency = ?, compression_ratio = ?, exact_match_lenient = ?, paper_token_source = ?,
		request_peak_tokens = ?, token_source = ? WHERE id = ?`
	sqlPaper = `UPDATE rollouts SET paper_peak_tokens = ?, dependency = ?,
		compression_ratio = ?, exact_match_lenient = ?, paper_token_source = ?, request_peak_tokens = ?, token_source = ?
		WHERE id = ?`
)

func prepareWriteStmts(w *sql.DB) (*writeStmts, error) {
	st := &writeStmts{}
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{{&st.heartbeat, sqlHeartbeat}, {&st.insertTurn, sqlInsertTurn}, {&st.prevTurn, sqlPrevTurn},
		{&st.claim, sqlClaim}, {&st.claimPrompt, sqlClaimPrompt}, {&st.finish, sqlFinish}, {&st.paper, sqlPaper}} {
		stmt, err := w.Prepare(p.q)
		if err != nil {
			_ = st.close()
			return nil, fmt.Errorf("storage: prepare: %w", err)
		}
		*p.dst = stmt
	}
	return st, nil
}

func (st *writeStmts) close() error {
	var errs []error
	for _, s := range []*sql.Stmt{st.heartbeat, st.insertTurn, st.prevTurn, st.claim, st.claimPrompt, st.finish, st.paper} {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

// Write is one write of the runner's group commit (ApplyWrites): a turn
// (Turn set), a claim (Claim set), a rollout's result (Finish set) or a
// finished rollout's paper figures (Paper set) of the rollout RolloutID.
// Exactly one of Turn, Claim, Finish and Paper is set, except that a
// rollout's last turn may carry its result (Turn and Finish set): both are
// stored, the turn first, or neither.
type Write struct {
	RolloutID int64
	Turn      *core.Turn
	Claim     *Claim
	Finish    *RolloutResult
	Paper     *PaperFigures
}

// PaperFigures is a SetPaperMetrics carried in a group commit: the paper's
// token figures of a finished rollout, its served request peak (tokens) and
// that peak's token source.
type PaperFigures struct {
	Metrics     core.PaperMetrics
	RequestPeak int
	Source      string
}

// Claim is a ClaimRollout carried in a group commit: the endpoint that plays
// the rollout and, when not empty, the task prompt its calls carry
// (SetRolloutPrompt), stored only when the claim succeeds.
type Claim struct {
	Endpoint string
	Prompt   string
}

// WriteOutcome is the result of one Write: Claimed reports, for a claim,
// whether the rollout was queued (ClaimRollout's bool).
type WriteOutcome struct {
	Claimed bool
	Err     error
}

// ApplyWrites commits ws in one transaction (a group commit: the runner's
// writer gathers the turns, claims and results that arrive together) and
// returns one outcome per write. When a write fails, the transaction is
// rolled back and each write is applied on its own, so every write gets its
// own outcome and the failing one changes nothing. Errors are those of
// AppendTurn, ClaimRollout, FinishRollout and SetPaperMetrics.
func (s *Store) ApplyWrites(ctx context.Context, ws []Write) []WriteOutcome {
	out := make([]WriteOutcome, len(ws))
	queued := 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		for i, w := range ws {
			o, err := s.applyWriteTx(ctx, tx, w)
			if err != nil {
				return err
			}
			out[i] = o
			if w.Turn != nil {
				queued++
			}
		}
		return nil
	})
	if err == nil {
		s.turnsQueued(queued)
		return out
	}
	// The batch rolled back: the contexts its turns remembered were never
	// stored (previousContext trusts them).
	for _, w := range ws {
		if w.Turn != nil {
			s.contexts.drop(w.RolloutID)
		}
	}
	if len(ws) == 1 {
		return []WriteOutcome{{Err: err}}
	}
	for i, w := range ws {
		out[i] = s.applyOne(ctx, w)
	}
	return out
}

func (s *Store) applyOne(ctx context.Context, w Write) WriteOutcome {
	var o WriteOutcome
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		o, err = s.applyWriteTx(ctx, tx, w)
		return err
	})
	if err != nil {
		if w.Turn != nil {
			s.contexts.drop(w.RolloutID) // rolled back: not stored
		}
		return WriteOutcome{Err: err}
	}
	if w.Turn != nil {
		s.turnsQueued(1)
	}
	return o
}

func (s *Store) applyWriteTx(ctx context.Context, tx *sql.Tx, w Write) (WriteOutcome, error) {
	switch {
	case w.Turn != nil:
		if w.Turn.Index < 0 {
			return WriteOutcome{}, fmt.Errorf("storage: append turn: negative index %d", w.Turn.Index)
		}
		if w.Claim != nil || w.Paper != nil {
			return WriteOutcome{}, errors.New("storage: a turn write carries a claim or paper figures")
		}
		if err := s.appendTurnTx(ctx, tx, w.RolloutID, *w.Turn); err != nil || w.Finish == nil {
			return WriteOutcome{}, err
		}
		return WriteOutcome{}, s.finishTx(ctx, tx, w.RolloutID, *w.Finish)
	case w.Claim != nil:
		ok, err := s.claimTx(ctx, tx, w.RolloutID, *w.Claim)
		return WriteOutcome{Claimed: ok}, err
	case w.Finish != nil:
		return WriteOutcome{}, s.finishTx(ctx, tx, w.RolloutID, *w.Finish)
	case w.Paper != nil:
		return WriteOutcome{}, s.paperTx(ctx, tx, w.RolloutID, *w.Paper)
	}
	return WriteOutcome{}, errors.New("storage: empty write")
}

// claimTx is ClaimRollout (plus the prompt) inside tx.
func (s *Store) claimTx(ctx context.Context, tx *sql.Tx, id int64, c Claim) (bool, error) {
	s.contexts.drop(id) // another process may have played it since (previousContext)
	t := now()
	res, err := tx.StmtContext(ctx, s.stmts.claim).
		ExecContext(ctx, StatusRunning, c.Endpoint, t, t, id, StatusQueued)
	if err != nil {
		return false, fmt.Errorf("storage: claim rollout %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return false, nil
	}
	if c.Prompt != "" {
		if _, err := tx.StmtContext(ctx, s.stmts.claimPrompt).
			ExecContext(ctx, c.Prompt, id); err != nil {
			return false, fmt.Errorf("storage: rollout %d prompt: %w", id, err)
		}
	}
	return true, nil
}

// finishTx is FinishRollout inside tx.
func (s *Store) finishTx(ctx context.Context, tx *sql.Tx, id int64, r RolloutResult) error {
	s.contexts.drop(id)
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
	pa := paperArgs(r.Paper)
	res, err := tx.StmtContext(ctx, s.stmts.finish).ExecContext(ctx,
		append(append([]any{r.Status, r.Score.EM, r.Score.F1, string(sj), r.Answer, r.PeakTokens, r.TotalTokens, r.Turns, r.Seconds,
			r.HitMaxTurns, clipErrorText(r.Error), t, t}, pa...), r.RequestPeakTokens, nullString(r.TokenSource), id)...)
	if err != nil {
		return fmt.Errorf("storage: update rollout %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("storage: rollout %d: %w", id, ErrNotFound)
	}
	return nil
}

// paperTx is SetPaperMetrics inside tx.
func (s *Store) paperTx(ctx context.Context, tx *sql.Tx, id int64, p PaperFigures) error {
	res, err := tx.StmtContext(ctx, s.stmts.paper).ExecContext(ctx,
		append(paperArgs(&p.Metrics), p.RequestPeak, nullString(p.Source), id)...)
	if err != nil {
		return fmt.Errorf("storage: update rollout %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("storage: rollout %d: %w", id, ErrNotFound)
	}
	return nil
}
