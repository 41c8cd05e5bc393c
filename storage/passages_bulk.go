package storage

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/mem1lab/mem1lab/core"
)

// passagesInsertTrigger re-creates the FTS insert trigger exactly as the schema
// defines it (migrations.go); ImportBundleBulk drops it for the bulk load.
const passagesInsertTrigger = `CREATE TRIGGER passages_ai AFTER INSERT ON passages BEGIN
	INSERT INTO passages_fts(rowid, title, text) VALUES (new.rowid, new.title, new.text);
END`

// ImportBundleBulk is ImportBundle with the passage index built in one pass:
// when the store holds no passages yet, the FTS insert trigger is dropped for the
// load and the index is built afterwards by FTS5's 'rebuild' command, all in the
// same transaction (so a failure stores nothing, trigger included). On a store
// that already has passages it is exactly ImportBundle. Same validation and
// errors as ImportBundle.
func (s *Store) ImportBundleBulk(ctx context.Context, dir string) (ImportStats, error) {
	n, err := s.CountPassages(ctx)
	if err != nil {
		return ImportStats{}, err
	}
	if n > 0 {
		return s.ImportBundle(ctx, dir)
	}
	corpus, questions, err := bundleFiles(dir)
	if err != nil {
		return ImportStats{}, err
	}
	return s.importFiles(ctx,
		func(im *importer) error {
			// Index maintenance is deferred: the FTS trigger and the content-hash
			// index (random SHA-1 keys, one B-tree page touched per row) are
			// rebuilt once after the load.
			var any int
			if err := im.tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM passages)`).Scan(&any); err != nil {
				return err
			}
			im.fresh = any == 0
			for _, q := range []string{`DROP TRIGGER IF EXISTS passages_ai`, `DROP INDEX IF EXISTS passages_content_hash`,
				fmt.Sprintf(`PRAGMA cache_size = %d`, -bulkCacheKiB),
				// FTS5 flushes its in-memory index to a new segment every
				// 'hashsize' bytes (1 MiB by default): 64 MiB makes the rebuild
				// write fewer, larger segments and merge less.
				fmt.Sprintf(`INSERT INTO passages_fts(passages_fts, rank) VALUES ('hashsize', %d)`, bulkHashBytes)} {
				if _, err := im.tx.ExecContext(ctx, q); err != nil {
					return err
				}
			}
			return nil
		},
		func(im *importer) error { return im.corpus(corpus) },
		func(im *importer) error { return im.questions(questions) },
		func(im *importer) error {
			if _, err := im.tx.ExecContext(ctx, `INSERT INTO passages_fts(passages_fts) VALUES('rebuild')`); err != nil {
				return fmt.Errorf("storage: rebuild passage index: %w", err)
			}
			for _, q := range []string{passagesInsertTrigger, passagesHashIndex, `PRAGMA cache_size = -2000`,
				// Back to FTS5's default (setting it bumps the index's config
				// cookie, so every connection rereads it), then no row at all, as
				// a store that never had a bulk load.
				fmt.Sprintf(`INSERT INTO passages_fts(passages_fts, rank) VALUES ('hashsize', %d)`, 1<<20),
				`DELETE FROM passages_fts_config WHERE k = 'hashsize'`} {
				if _, err := im.tx.ExecContext(ctx, q); err != nil {
					return err
				}
			}
			return nil
		})
}

// bulkCacheKiB is the writer's page cache during a bulk load (256 MiB); it is
// set back to SQLite's default (2,000 KiB) afterwards.
const bulkCacheKiB = 256 << 10

// bulkHashBytes is FTS5's 'hashsize' during a bulk load's index rebuild.
const bulkHashBytes = 64 << 20

// passagesHashIndex re-creates the content-hash index as the schema defines it.
const passagesHashIndex = `CREATE INDEX passages_content_hash ON passages(content_hash)`

// RebuildPassageIndex rebuilds the passage full-text index from the passages
// table (FTS5 'rebuild') in one write transaction. Search results are unchanged
// when the index was consistent; it repairs one that is not.
func (s *Store) RebuildPassageIndex(ctx context.Context) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO passages_fts(passages_fts) VALUES('rebuild')`); err != nil {
			return fmt.Errorf("storage: rebuild passage index: %w", err)
		}
		return nil
	})
}

// PassageFingerprint identifies the corpus as it is now: the passage count and
// the largest rowid. Any import that adds passages changes it; a derived index
// (e.g. a bleve index beside the store) that recorded it is stale when it differs.
func (s *Store) PassageFingerprint(ctx context.Context) (string, error) {
	var n, max int64
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MAX(rowid), 0) FROM passages`).Scan(&n, &max); err != nil {
		return "", fmt.Errorf("storage: passage fingerprint: %w", err)
	}
	return fmt.Sprintf("%d:%d", n, max), nil
}

// EachPassage calls fn with every stored passage in rowid order (Score and Rank
// zero). An error from fn or ctx stops the scan and is returned.
func (s *Store) EachPassage(ctx context.Context, fn func(p core.Passage) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT id, title, text FROM passages ORDER BY rowid`)
	if err != nil {
		return fmt.Errorf("storage: passages: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p core.Passage
		if err := rows.Scan(&p.ID, &p.Title, &p.Text); err != nil {
			return fmt.Errorf("storage: passages: %w", err)
		}
		if err := fn(p); err != nil {
			return err
		}
	}
	return rows.Err()
}

// PassagesByID returns the stored passages with these ids, in the order given;
// ids not stored are skipped.
func (s *Store) PassagesByID(ctx context.Context, ids []string) ([]core.Passage, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	marks := make([]string, len(ids))
	for i, id := range ids {
		args[i] = id
		marks[i] = "?"
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, title, text FROM passages WHERE id IN (`+strings.Join(marks, ",")+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("storage: passages by id: %w", err)
	}
	defer rows.Close()
	byID := make(map[string]core.Passage, len(ids))
	for rows.Next() {
		var p core.Passage
		if err := rows.Scan(&p.ID, &p.Title, &p.Text); err != nil {
			return nil, fmt.Errorf("storage: passages by id: %w", err)
		}
		byID[p.ID] = p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: passages by id: %w", err)
	}
	out := make([]core.Passage, 0, len(ids))
	for _, id := range ids {
		if p, ok := byID[id]; ok {
			out = append(out, p)
		}
	}
	return out, nil
}
