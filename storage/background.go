package storage

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// The commit path keeps to the turn's own rows; two chores that used to ride on
// whichever commit happened to trigger them run beside it instead:
//
//   - WAL checkpoints. The writer has wal_autocheckpoint off, so no commit pays
//     for copying the log back into the database file; a separate connection
//     runs a PASSIVE checkpoint every checkpointEvery (it never waits on the
//     writer or on readers), and Close runs a TRUNCATE checkpoint.
//   - The trace full-text index. A turn's transaction only queues its id in
//     turns_fts_pending; the indexer moves queued turns into turns_fts in
//     batches of indexBatch, soon after they are committed (within
//     indexEvery), when the store is opened (catching up on what a crashed
//     process left queued) and before every trace search, so a search finds
//     every committed turn.
//
// Durability is unchanged: a turn is in the database file's log once its
// commit returns, and SQLite replays the log after a crash whether or not a
// checkpoint ran.
const (
	checkpointEvery = time.Second
	indexEvery      = 200 * time.Millisecond
	indexBatch      = 2048
	// closeCheckpointWait bounds how long Close waits on other processes'
	// readers for its final checkpoint.
	closeCheckpointWait = time.Second
)

// background runs the checkpoints and the indexer for a writable store.
type background struct {
	ck      *sql.DB // its own connection: checkpoints never queue behind the writer's pool
	stop    chan struct{}
	done    sync.WaitGroup
	queued  atomic.Int64 // turns this process queued for the index and not yet indexed (a hint)
	wake    chan struct{}
	indexMu sync.Mutex // one indexing pass at a time
}

// startBackground opens the checkpoint connection and starts both loops.
func (s *Store) startBackground(uri string) error {
	ck, err := sql.Open("sqlite3", uri+fmt.Sprintf("?_busy_timeout=%d", busyTimeoutMS))
	if err != nil {
		return fmt.Errorf("storage: open checkpoint connection: %w", err)
	}
	ck.SetMaxOpenConns(1)
	ck.SetMaxIdleConns(1)
	ck.SetConnMaxLifetime(0)
	ck.SetConnMaxIdleTime(0)
	if err := ck.Ping(); err != nil {
		ck.Close()
		return fmt.Errorf("storage: open checkpoint connection: %w", err)
	}
	bg := &background{ck: ck, stop: make(chan struct{}), wake: make(chan struct{}, 1)}
	s.bg = bg
	bg.done.Add(2)
	go func() {
		defer bg.done.Done()
		t := time.NewTicker(checkpointEvery)
		defer t.Stop()
		for {
			select {
			case <-bg.stop:
				return
			case <-t.C:
				_, _ = ck.Exec("PRAGMA wal_checkpoint(PASSIVE)")
			}
		}
	}()
	go func() {
		defer bg.done.Done()
		t := time.NewTicker(indexEvery)
		defer t.Stop()
		for {
			select {
			case <-bg.stop:
				return
			case <-t.C:
			case <-bg.wake:
			}
			if bg.queued.Load() > 0 {
				_ = s.IndexQueuedTurns(context.Background())
			}
		}
	}()
	return nil
}

// stopBackground stops both loops, indexes what is still queued and
// truncates the log (errors are returned; the store is closing either way).
func (s *Store) stopBackground() error {
	bg := s.bg
	if bg == nil {
		return nil
	}
	close(bg.stop)
	bg.done.Wait()
	err := s.IndexQueuedTurns(context.Background())
	// A TRUNCATE checkpoint waits for every reader to leave the log, and another
	// process may be reading for as long as it likes: closing (quitting the app,
	// ending a CLI command) waits at most closeCheckpointWait for them, then
	// leaves the log for the next checkpoint, whoever runs it. Nothing is lost
	// either way: the log is part of the database until it is checkpointed.
	_, _ = bg.ck.Exec(fmt.Sprintf("PRAGMA busy_timeout = %d", closeCheckpointWait.Milliseconds()))
	if _, cerr := bg.ck.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); cerr != nil && err == nil {
		err = fmt.Errorf("storage: checkpoint: %w", cerr)
	}
	if cerr := bg.ck.Close(); cerr != nil && err == nil {
		err = cerr
	}
	s.bg = nil
	return err
}

// turnsQueued tells the indexer that n more turns wait in turns_fts_pending.
func (s *Store) turnsQueued(n int) {
	if s.bg == nil || n == 0 {
		return
	}
	if s.bg.queued.Add(int64(n)) >= indexBatch {
		select {
		case s.bg.wake <- struct{}{}:
		default:
		}
	}
}

// IndexQueuedTurns moves every turn queued in turns_fts_pending into the trace
// full-text index, indexBatch turns per transaction. It is a no-op on a
// read-only store (the writing process indexes its turns within ~200 ms).
// Errors: store failures.
func (s *Store) IndexQueuedTurns(ctx context.Context) error {
	if s.readOnly {
		return nil
	}
	if s.bg != nil {
		s.bg.indexMu.Lock()
		defer s.bg.indexMu.Unlock()
	}
	for {
		var upto sql.NullInt64
		if err := s.r.QueryRowContext(ctx, `SELECT max(id) FROM (SELECT id FROM turns_fts_pending ORDER BY id LIMIT ?)`,
			indexBatch).Scan(&upto); err != nil {
			return fmt.Errorf("storage: index turns: %w", err)
		}
		if !upto.Valid {
			if s.bg != nil {
				s.bg.queued.Store(0)
			}
			return nil
		}
		var n int64
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, `INSERT INTO turns_fts(rowid, internal_state, query, answer)
				SELECT t.id, t.internal_state, t.query, t.answer
				FROM turns_fts_pending p JOIN turns t ON t.id = p.id WHERE p.id <= ? ORDER BY p.id`, upto.Int64); err != nil {
				return err
			}
			res, err := tx.ExecContext(ctx, `DELETE FROM turns_fts_pending WHERE id <= ?`, upto.Int64)
			if err != nil {
				return err
			}
			n, _ = res.RowsAffected()
			return nil
		})
		if err != nil {
			return fmt.Errorf("storage: index turns: %w", err)
		}
		if s.bg != nil {
			if s.bg.queued.Add(-n) < 0 {
				s.bg.queued.Store(0)
			}
		}
	}
}

// syncTurnIndex indexes queued turns before a trace search (cheap when none
// are queued: one indexed read).
func (s *Store) syncTurnIndex(ctx context.Context) error {
	if s.readOnly {
		return nil
	}
	var any int
	if err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM turns_fts_pending)`).Scan(&any); err != nil {
		return fmt.Errorf("storage: trace search: %w", err)
	}
	if any == 0 {
		return nil
	}
	return s.IndexQueuedTurns(ctx)
}
