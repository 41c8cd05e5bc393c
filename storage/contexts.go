package storage

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"
)

// Turn contexts are stored as deltas so that a rollout's storage stays linear in
// its trajectory (under the full policy every context repeats the one before
// it). A turn row holds:
//
//	ctx_base    the index of an earlier turn of the same rollout, or NULL
//	ctx_prefix  how many bytes of that turn's full context come first
//	context     the bytes that follow them (the whole text when ctx_base is NULL)
//	ctx_sha256  hex SHA-256 of the full context ('' on rows written before the
//	            delta migration, which all hold the whole text)
//
// The base chosen is always the rollout's previous stored turn and the prefix
// is the longest common prefix of the two contexts (cut back to a UTF-8
// boundary), so the stored suffix is what the turn adds: under full the last
// response and information and the chat template's tail, under mem1 the same.

// minSharedPrefix is the shortest shared prefix worth a reference; below it the
// whole context is stored.
const minSharedPrefix = 64

// ErrContextHash is wrapped when a reconstructed context does not match the
// SHA-256 stored with its turn (a damaged store).
var ErrContextHash = errors.New("context does not match its stored SHA-256")

// contextHash is the hex SHA-256 of a full context, as stored in ctx_sha256.
func contextHash(c string) string {
	h := sha256.Sum256([]byte(c))
	return hex.EncodeToString(h[:])
}

// contextDelta is how one turn's context is stored.
type contextDelta struct {
	base   sql.NullInt64 // index of the base turn; invalid: suffix is the whole text
	prefix int           // bytes of the base's full context before suffix
	suffix string
	hash   string
}

// encodeContext stores full relative to prev, the full context of turn
// prevIdx (prevIdx < 0: no earlier turn).
func encodeContext(full string, prevIdx int, prev string) contextDelta {
	d := contextDelta{suffix: full, hash: contextHash(full)}
	if prevIdx < 0 {
		return d
	}
	n := min(len(full), len(prev))
	p := 0
	for p < n && full[p] == prev[p] {
		p++
	}
	for p > 0 && p < len(full) && !utf8.RuneStart(full[p]) {
		p--
	}
	if p < minSharedPrefix {
		return d
	}
	d.base = sql.NullInt64{Int64: int64(prevIdx), Valid: true}
	d.prefix = p
	d.suffix = full[p:]
	return d
}

// contextDecoder rebuilds full contexts from a rollout's rows read in index
// order. It keeps a full context only while a later row still refers to it
// (lastUse maps a base index to the last row index that uses it; nil keeps all).
type contextDecoder struct {
	rolloutID int64
	full      map[int]string
	lastUse   map[int]int
}

func newContextDecoder(rolloutID int64, lastUse map[int]int) *contextDecoder {
	return &contextDecoder{rolloutID: rolloutID, full: map[int]string{}, lastUse: lastUse}
}

// next returns the full context of row idx and checks it against hash (when set).
func (d *contextDecoder) next(idx int, suffix string, base sql.NullInt64, prefix int, hash string) (string, error) {
	full := suffix
	if base.Valid {
		b := int(base.Int64)
		bc, ok := d.full[b]
		switch {
		case !ok || b >= idx:
			return "", fmt.Errorf("storage: turn %d of rollout %d: context refers to turn %d, which is not before it or not stored",
				idx, d.rolloutID, b)
		case prefix < 0 || prefix > len(bc):
			return "", fmt.Errorf("storage: turn %d of rollout %d: context takes %d bytes of turn %d's %d",
				idx, d.rolloutID, prefix, b, len(bc))
		}
		full = bc[:prefix] + suffix
		if d.lastUse != nil && d.lastUse[b] <= idx {
			delete(d.full, b)
		}
	}
	if hash != "" && contextHash(full) != hash {
		return "", fmt.Errorf("storage: turn %d of rollout %d: %w", idx, d.rolloutID, ErrContextHash)
	}
	if d.lastUse == nil {
		d.full[idx] = full
	} else if _, used := d.lastUse[idx]; used {
		d.full[idx] = full
	}
	return full, nil
}

// queryer is what reconstructing a context needs: the read pool or a write
// transaction.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// turnContext reconstructs the full context of turn idx of a rollout, reading
// only the rows its chain of bases needs to go through (holding one full context
// at a time for the chain appendTurn writes).
func turnContext(ctx context.Context, q queryer, rolloutID int64, idx int) (string, error) {
	rows, err := q.QueryContext(ctx, `SELECT idx, ctx_base FROM turns WHERE rollout_id = ? AND idx <= ? ORDER BY idx`,
		rolloutID, idx)
	if err != nil {
		return "", fmt.Errorf("storage: context of turn %d of rollout %d: %w", idx, rolloutID, err)
	}
	lastUse := map[int]int{idx: idx + 1}
	for rows.Next() {
		var i int
		var b sql.NullInt64
		if err := rows.Scan(&i, &b); err != nil {
			rows.Close()
			return "", fmt.Errorf("storage: context of turn %d of rollout %d: %w", idx, rolloutID, err)
		}
		if b.Valid {
			lastUse[int(b.Int64)] = max(lastUse[int(b.Int64)], i)
		}
	}
	if err := rows.Close(); err != nil {
		return "", fmt.Errorf("storage: context of turn %d of rollout %d: %w", idx, rolloutID, err)
	}
	rows, err = q.QueryContext(ctx, `SELECT idx, context, ctx_base, ctx_prefix, ctx_sha256 FROM turns
		WHERE rollout_id = ? AND idx <= ? ORDER BY idx`, rolloutID, idx)
	if err != nil {
		return "", fmt.Errorf("storage: context of turn %d of rollout %d: %w", idx, rolloutID, err)
	}
	defer rows.Close()
	dec := newContextDecoder(rolloutID, lastUse)
	found := false
	var out string
	for rows.Next() {
		var i, prefix int
		var suffix, hash string
		var b sql.NullInt64
		if err := rows.Scan(&i, &suffix, &b, &prefix, &hash); err != nil {
			return "", fmt.Errorf("storage: context of turn %d of rollout %d: %w", idx, rolloutID, err)
		}
		full, err := dec.next(i, suffix, b, prefix, hash)
		if err != nil {
			return "", err
		}
		if i == idx {
			out, found = full, true
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("storage: context of turn %d of rollout %d: %w", idx, rolloutID, err)
	}
	if !found {
		return "", fmt.Errorf("storage: turn %d of rollout %d: %w", idx, rolloutID, ErrNotFound)
	}
	return out, nil
}

// lastContexts remembers, per rollout, the full context of the last turn this
// process appended, so that appending the next turn need not rebuild it (nor,
// for the next index, read the store: see previousContext). A claim, a result
// and a reset forget the rollout's entry; an entry for another index is used
// only when the stored previous turn has its index and SHA-256, so a
// rolled-back batch cannot mislead it.
type lastContexts struct {
	mu sync.Mutex
	m  map[int64]cachedContext
}

type cachedContext struct {
	idx  int
	hash string
	full string
}

// maxCachedContexts bounds lastContexts (one entry per rollout in flight).
const maxCachedContexts = 512

func (c *lastContexts) get(rolloutID int64) (cachedContext, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[rolloutID]
	return e, ok
}

func (c *lastContexts) put(rolloutID int64, e cachedContext) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedContexts {
		c.m = map[int64]cachedContext{}
	}
	c.m[rolloutID] = e
}

func (c *lastContexts) drop(rolloutID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, rolloutID)
}

// previousContext returns the index and full context of the rollout's stored
// turn just before idx (-1 and "" when there is none).
//
// The context this process stored last for the rollout is used without
// reading the store when it is turn idx−1: from a claim (which forgets the
// rollout's entry) to its result, only the claim's holder writes the
// rollout's turns (the experiment's lease), and a turn that fails to store
// stops its rollout. Otherwise the stored previous turn's index and SHA-256
// are read and must match the entry.
func (s *Store) previousContext(ctx context.Context, tx *sql.Tx, rolloutID int64, idx int) (int, string, error) {
	if idx == 0 {
		return -1, "", nil // indices start at 0: nothing can be before it
	}
	if e, ok := s.contexts.get(rolloutID); ok && e.idx == idx-1 && e.idx >= 0 {
		return e.idx, e.full, nil
	}
	var prevIdx int
	var prevHash string
	err := tx.StmtContext(ctx, s.stmts.prevTurn).QueryRowContext(ctx, rolloutID, idx).Scan(&prevIdx, &prevHash)
	if errors.Is(err, sql.ErrNoRows) {
		return -1, "", nil
	}
	if err != nil {
		return 0, "", fmt.Errorf("storage: append turn %d to rollout %d: %w", idx, rolloutID, err)
	}
	if e, ok := s.contexts.get(rolloutID); ok && e.idx == prevIdx && prevHash != "" && e.hash == prevHash {
		return prevIdx, e.full, nil
	}
	full, err := turnContext(ctx, tx, rolloutID, prevIdx)
	if err != nil {
		return 0, "", err
	}
	return prevIdx, full, nil
}
