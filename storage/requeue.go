package storage

import (
	"context"
	"fmt"
)

// RequeueFailed puts experiment expID's failed rollouts back in the queue
// (their error cleared, their stored turns kept, so a resume continues each
// from its last stored turn) and returns how many. Done rollouts are not
// touched.
func (s *Store) RequeueFailed(ctx context.Context, expID int64) (int, error) {
	res, err := s.w.ExecContext(ctx, `UPDATE rollouts SET status = ?, error = '', finished_at = NULL
		WHERE experiment_id = ? AND status = ?`, StatusQueued, expID, StatusFailed)
	if err != nil {
		return 0, fmt.Errorf("storage: requeue failed rollouts of experiment %d: %w", expID, err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}
