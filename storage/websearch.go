package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// CachedWebSearch is the raw JSON reply a web-search API gave for (endpoint,
// query, k), with the time it was fetched; ok is false when none is cached.
// endpoint is the search URL (e.g. "https://google.serper.dev/search"), k the
// results asked for. Errors: the store could not be read.
func (s *Store) CachedWebSearch(ctx context.Context, endpoint, query string, k int) (reply []byte, fetched time.Time, ok bool, err error) {
	var raw, at string
	err = s.r.QueryRowContext(ctx,
		`SELECT reply, fetched_at FROM web_search_cache WHERE endpoint = ? AND query = ? AND k = ?`,
		endpoint, query, k).Scan(&raw, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, time.Time{}, false, nil
	}
	if err != nil {
		return nil, time.Time{}, false, fmt.Errorf("storage: web search cache: %w", err)
	}
	return []byte(raw), parseTime(at), true, nil
}

// PutWebSearch caches reply (a JSON document) for (endpoint, query, k),
// replacing an older entry. Errors: reply is not JSON, k < 1, an empty
// endpoint, a read-only store (ErrReadOnly), or a failed write.
func (s *Store) PutWebSearch(ctx context.Context, endpoint, query string, k int, reply []byte) error {
	if endpoint == "" || k < 1 {
		return fmt.Errorf("storage: web search cache: endpoint %q, k %d: want a URL and k ≥ 1", endpoint, k)
	}
	if !json.Valid(reply) {
		return errors.New("storage: web search cache: reply is not JSON")
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO web_search_cache(endpoint, query, k, reply, fetched_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT(endpoint, query, k) DO UPDATE SET reply = excluded.reply, fetched_at = excluded.fetched_at`,
			endpoint, query, k, string(reply), now())
		if err != nil {
			return fmt.Errorf("storage: web search cache: %w", err)
		}
		return nil
	})
}
