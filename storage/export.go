package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mem1lab/mem1lab/core"
)

// Streaming read queries for exports and charts. Each walks its rows on one
// read-only connection and hands them to a callback one at a time, so memory stays
// bounded however many turns an experiment holds. A callback error stops the walk
// and is returned as is.

// RolloutExport is one rollout with everything the rollouts CSV holds: the listed
// row, its final answer, whether it hit the turn limit, its decoded score
// (per-objective marks; zero while unfinished) and its start/finish times as
// stored (UTC "2006-01-02T15:04:05.000Z", "" when unset).
type RolloutExport struct {
	RolloutRow
	Answer      string
	HitMaxTurns bool
	Score       ScoreFlags
	StartedAt   string
	FinishedAt  string
}

// ScoreFlags are the score fields beside EM/F1 that exports report, and the
// per-objective marks (in objective order; nil for scores stored without them)
// that paired comparisons need.
type ScoreFlags struct {
	Scheme        string                `json:"scheme"`
	CountMismatch bool                  `json:"count_mismatch"`
	NoAnswer      bool                  `json:"no_answer"`
	Unbalanced    bool                  `json:"unbalanced"`
	PerObjective  []core.ObjectiveScore `json:"per_objective"`
}

// EachRollout calls fn for every rollout of experiment expID in id order. An
// unknown experiment yields no call (check with Experiment first).
func (s *Store) EachRollout(ctx context.Context, expID int64, fn func(RolloutExport) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT `+rolloutCols+`, r.answer, r.hit_max_turns, r.score_json,
		COALESCE(r.started_at, ''), COALESCE(r.finished_at, '')`+rolloutFrom+`
		WHERE r.experiment_id = ? ORDER BY r.id`, expID)
	if err != nil {
		return fmt.Errorf("storage: rollouts of experiment %d: %w", expID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var e RolloutExport
		var scoreJSON string
		e.RolloutRow, err = scanRollout(rows, &e.Answer, &e.HitMaxTurns, &scoreJSON, &e.StartedAt, &e.FinishedAt)
		if err != nil {
			return fmt.Errorf("storage: rollouts of experiment %d: %w", expID, err)
		}
		if scoreJSON != "" {
			if err := json.Unmarshal([]byte(scoreJSON), &e.Score); err != nil {
				return fmt.Errorf("storage: rollout %d: score: %w", e.ID, err)
			}
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return rows.Err()
}

// TurnExport is one stored turn with the rollout fields that identify it. It
// carries no Context (the exact text sent is in the trace and the trajectories
// export); PassageIDs are the retrieved passage ids, best first.
type TurnExport struct {
	ExperimentID     int64
	RolloutID        int64
	TaskKey          string
	Objectives       int
	Policy           string
	Model            string
	RolloutStatus    string
	Index            int // 0-based
	Action           string
	Query            string
	Answer           string
	InternalState    string
	Response         string
	Information      string
	PassageIDs       []string
	PromptTokens     int
	CompletionTokens int
	UsageReported    bool
	LatencyMS        float64
	FinishReason     string
	// TokenSource is where the counts come from (core.TurnTokenSource).
	TokenSource string
}

// eachTurnQuery walks the rollouts table in id order (NOT INDEXED: with the
// experiment index SQLite would sort every turn in a temporary B-tree before
// the first row) and each rollout's turns through the (rollout_id, idx) index,
// so rows stream out in order with no sort.
const eachTurnQuery = `SELECT r.id, t.key, t.objectives, r.policy, r.model, r.status,
		tu.idx, tu.action, tu.query, tu.answer, tu.internal_state, tu.response, tu.information, tu.passages,
		tu.prompt_tokens, tu.completion_tokens, tu.usage_reported, tu.latency_ms, tu.finish_reason, tu.token_source
		FROM rollouts r NOT INDEXED JOIN tasks t ON t.id = r.task_id JOIN turns tu ON tu.rollout_id = r.id
		WHERE r.experiment_id = ? ORDER BY r.id, tu.idx`

// EachTurn calls fn for every stored turn of experiment expID, ordered by rollout
// id then turn index. The turn value is reused between calls: fn must copy what
// it keeps.
func (s *Store) EachTurn(ctx context.Context, expID int64, fn func(*TurnExport) error) error {
	rows, err := s.r.QueryContext(ctx, eachTurnQuery, expID)
	if err != nil {
		return fmt.Errorf("storage: turns of experiment %d: %w", expID, err)
	}
	defer rows.Close()
	var te TurnExport
	var pj sql.RawBytes
	type passageID struct {
		ID string `json:"id"`
	}
	var ps []passageID
	for rows.Next() {
		te.ExperimentID = expID
		if err := rows.Scan(&te.RolloutID, &te.TaskKey, &te.Objectives, &te.Policy, &te.Model, &te.RolloutStatus,
			&te.Index, &te.Action, &te.Query, &te.Answer, &te.InternalState, &te.Response, &te.Information, &pj,
			&te.PromptTokens, &te.CompletionTokens, &te.UsageReported, &te.LatencyMS, &te.FinishReason, &te.TokenSource); err != nil {
			return fmt.Errorf("storage: turns of experiment %d: %w", expID, err)
		}
		te.TokenSource = core.TurnTokenSource(core.Turn{TokenSource: te.TokenSource, UsageReported: te.UsageReported})
		ps = ps[:0]
		if len(pj) > 0 && string(pj) != "[]" {
			if err := json.Unmarshal(pj, &ps); err != nil {
				return fmt.Errorf("storage: turn %d of rollout %d: passages: %w", te.Index, te.RolloutID, err)
			}
		}
		te.PassageIDs = te.PassageIDs[:0]
		for _, p := range ps {
			te.PassageIDs = append(te.PassageIDs, p.ID)
		}
		if err := fn(&te); err != nil {
			return err
		}
	}
	return rows.Err()
}

// TurnTokens is the token count of one turn of a finished rollout, what the
// per-turn context-size curves are drawn from.
type TurnTokens struct {
	Dataset          string
	Model            string
	Policy           string
	Objectives       int
	RolloutID        int64
	Index            int // 0-based
	PromptTokens     int
	CompletionTokens int
}

// turnTokensQuery selects the token columns of done rollouts' turns for n
// experiment ids, in the same order as eachTurnQuery.
func turnTokensQuery(n int) string {
	return `SELECT t.dataset, r.model, r.policy, t.objectives, r.id, tu.idx, tu.prompt_tokens, tu.completion_tokens
		FROM rollouts r NOT INDEXED JOIN tasks t ON t.id = r.task_id JOIN turns tu ON tu.rollout_id = r.id
		WHERE r.status = 'done' AND r.experiment_id IN (?` + strings.Repeat(", ?", n-1) + `)
		ORDER BY r.id, tu.idx`
}

// EachTurnTokens calls fn for every turn of the done rollouts of the given
// experiments, ordered by rollout id then turn index. Only small columns are read.
func (s *Store) EachTurnTokens(ctx context.Context, expIDs []int64, fn func(TurnTokens) error) error {
	if len(expIDs) == 0 {
		return nil
	}
	args := make([]any, len(expIDs))
	for i, id := range expIDs {
		args[i] = id
	}
	rows, err := s.r.QueryContext(ctx, turnTokensQuery(len(expIDs)), args...)
	if err != nil {
		return fmt.Errorf("storage: turn tokens: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t TurnTokens
		if err := rows.Scan(&t.Dataset, &t.Model, &t.Policy, &t.Objectives, &t.RolloutID, &t.Index, &t.PromptTokens, &t.CompletionTokens); err != nil {
			return fmt.Errorf("storage: turn tokens: %w", err)
		}
		if err := fn(t); err != nil {
			return err
		}
	}
	return rows.Err()
}
