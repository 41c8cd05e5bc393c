package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mem1lab/mem1lab/core"
)

// CachedResponse returns the reply body stored under key (the hex SHA-256
// the caller computes over endpoint base URL, model and request body), and
// whether there is one. Errors: store failures.
func (s *Store) CachedResponse(ctx context.Context, key string) ([]byte, bool, error) {
	var body []byte
	err := s.r.QueryRowContext(ctx, `SELECT body FROM response_cache WHERE key = ?`, key).Scan(&body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("storage: response cache: %w", err)
	}
	return body, true, nil
}

// PutCachedResponse stores a reply body under key; a key already stored
// keeps its first body.
func (s *Store) PutCachedResponse(ctx context.Context, key, endpoint, model string, body []byte) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO response_cache(key, endpoint, model, body, created_at)
			VALUES (?, ?, ?, ?, ?)`, key, endpoint, model, body, now())
		if err != nil {
			return fmt.Errorf("storage: response cache: %w", err)
		}
		return nil
	})
}

// CachedRetrieval returns the passages stored for (retriever, query, k) and
// whether there are any.
func (s *Store) CachedRetrieval(ctx context.Context, retriever, query string, k int) ([]core.Passage, bool, error) {
	var pj string
	err := s.r.QueryRowContext(ctx, `SELECT passages FROM retrieval_cache WHERE retriever = ? AND query = ? AND k = ?`,
		retriever, query, k).Scan(&pj)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("storage: retrieval cache: %w", err)
	}
	var ps []core.Passage
	if err := json.Unmarshal([]byte(pj), &ps); err != nil {
		return nil, false, fmt.Errorf("storage: retrieval cache: %w", err)
	}
	return ps, true, nil
}

// PutCachedRetrieval stores a search's passages under (retriever, query, k);
// an entry already stored is kept.
func (s *Store) PutCachedRetrieval(ctx context.Context, retriever, query string, k int, ps []core.Passage) error {
	if ps == nil {
		ps = []core.Passage{}
	}
	pj, err := json.Marshal(ps)
	if err != nil {
		return fmt.Errorf("storage: retrieval cache: %w", err)
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO retrieval_cache(retriever, query, k, passages, created_at)
			VALUES (?, ?, ?, ?, ?)`, retriever, query, k, string(pj), now())
		if err != nil {
			return fmt.Errorf("storage: retrieval cache: %w", err)
		}
		return nil
	})
}
