package storage

import (
	"context"
	"fmt"
)

// DataVersion is SQLite's PRAGMA data_version read on the store's writer
// connection: a number that changes whenever another connection — in practice
// another process such as `mem1lab run` on the same file — commits a change,
// and stays the same for this Store's own writes. The GUI polls it (about once
// a second) to learn that lists it shows went stale. The value itself means
// nothing; only a change does.
func (s *Store) DataVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.w.QueryRowContext(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("storage: data_version: %w", err)
	}
	return v, nil
}
