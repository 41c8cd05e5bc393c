package storage

import (
	"context"
	"fmt"
)

// CachedDiagnostics is a rollout's stored memory diagnostics: their format
// version, the fingerprint of the rollout they were computed from, and the
// JSON itself (the caller's format).
type CachedDiagnostics struct {
	Version     int
	Fingerprint string
	JSON        string
}

// ExperimentDiagnostics returns the cached diagnostics of experiment expID's
// rollouts by rollout id (rollouts without a cached row are absent).
func (s *Store) ExperimentDiagnostics(ctx context.Context, expID int64) (map[int64]CachedDiagnostics, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT d.rollout_id, d.version, d.fingerprint, d.diagnostics_json
		FROM rollout_diagnostics d JOIN rollouts r ON r.id = d.rollout_id WHERE r.experiment_id = ?`, expID)
	if err != nil {
		return nil, fmt.Errorf("storage: diagnostics of experiment %d: %w", expID, err)
	}
	defer rows.Close()
	out := map[int64]CachedDiagnostics{}
	for rows.Next() {
		var id int64
		var c CachedDiagnostics
		if err := rows.Scan(&id, &c.Version, &c.Fingerprint, &c.JSON); err != nil {
			return nil, fmt.Errorf("storage: diagnostics of experiment %d: %w", expID, err)
		}
		out[id] = c
	}
	return out, rows.Err()
}

// SaveDiagnostics stores (or replaces) rollout id's cached diagnostics. The
// JSON must be valid; an unknown rollout is an error. On a store opened
// read-only it keeps nothing and returns nil: the cache is only a cache, so
// readers (plot, export) recompute instead.
func (s *Store) SaveDiagnostics(ctx context.Context, id int64, c CachedDiagnostics) error {
	if s.readOnly {
		return nil
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO rollout_diagnostics(rollout_id, version, fingerprint, diagnostics_json, computed_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT(rollout_id) DO UPDATE SET version = excluded.version,
		fingerprint = excluded.fingerprint, diagnostics_json = excluded.diagnostics_json, computed_at = excluded.computed_at`,
		id, c.Version, c.Fingerprint, c.JSON, now())
	if err != nil {
		return fmt.Errorf("storage: save diagnostics of rollout %d: %w", id, err)
	}
	return nil
}
