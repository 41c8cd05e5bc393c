package storage

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are applied in order; migration i (0-based) takes the schema from
// version i to version i+1, recorded in PRAGMA user_version. Never edit a released
// entry: append a new one.
var migrations = []string{
	// 1: corpus, questions, experiments, tasks, rollouts, turns.
	`
CREATE TABLE datasets (
	name TEXT PRIMARY KEY NOT NULL CHECK (name <> '')
) WITHOUT ROWID;

-- passages: the retrieval corpus. content_hash is the hex SHA-1 of
-- title + NUL + whitespace-collapsed text; raw imports use it to reuse a passage
-- that is already stored under another id.
CREATE TABLE passages (
	rowid        INTEGER PRIMARY KEY,
	id           TEXT NOT NULL UNIQUE CHECK (id <> ''),
	title        TEXT NOT NULL,
	text         TEXT NOT NULL,
	datasets     TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(datasets)),
	content_hash TEXT NOT NULL
);
CREATE INDEX passages_content_hash ON passages(content_hash);

-- External-content FTS5 index over passages(title, text). Tokenizer: porter
-- stemming on top of unicode61 with diacritics folded (see search.go).
CREATE VIRTUAL TABLE passages_fts USING fts5(
	title, text,
	content = 'passages', content_rowid = 'rowid',
	tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER passages_ai AFTER INSERT ON passages BEGIN
	INSERT INTO passages_fts(rowid, title, text) VALUES (new.rowid, new.title, new.text);
END;
CREATE TRIGGER passages_ad AFTER DELETE ON passages BEGIN
	INSERT INTO passages_fts(passages_fts, rowid, title, text) VALUES ('delete', old.rowid, old.title, old.text);
END;
CREATE TRIGGER passages_au AFTER UPDATE OF title, text ON passages BEGIN
	INSERT INTO passages_fts(passages_fts, rowid, title, text) VALUES ('delete', old.rowid, old.title, old.text);
	INSERT INTO passages_fts(rowid, title, text) VALUES (new.rowid, new.title, new.text);
END;

CREATE TABLE questions (
	id                  TEXT PRIMARY KEY NOT NULL CHECK (id <> ''),
	dataset             TEXT NOT NULL REFERENCES datasets(name),
	seq                 INTEGER NOT NULL CHECK (seq >= 0),
	question            TEXT NOT NULL,
	golden              TEXT NOT NULL CHECK (json_valid(golden)),
	gold_passage_ids    TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(gold_passage_ids)),
	context_passage_ids TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(context_passage_ids)),
	type                TEXT,
	level               TEXT,
	source_file         TEXT NOT NULL DEFAULT '',
	UNIQUE (dataset, seq)
);

CREATE TABLE experiments (
	id          INTEGER PRIMARY KEY,
	name        TEXT NOT NULL,
	created_at  TEXT NOT NULL,
	config_json TEXT NOT NULL,
	config_hash TEXT NOT NULL,
	status      TEXT NOT NULL
);

CREATE TABLE tasks (
	id            INTEGER PRIMARY KEY,
	experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
	key           TEXT NOT NULL,
	dataset       TEXT NOT NULL,
	objectives    INTEGER NOT NULL,
	task_json     TEXT NOT NULL CHECK (json_valid(task_json)),
	UNIQUE (experiment_id, key)
);

CREATE TABLE rollouts (
	id            INTEGER PRIMARY KEY,
	experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
	task_id       INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
	policy        TEXT NOT NULL,
	model         TEXT NOT NULL,
	status        TEXT NOT NULL,
	em            REAL NOT NULL DEFAULT 0,
	f1            REAL NOT NULL DEFAULT 0,
	score_json    TEXT NOT NULL DEFAULT '',
	answer        TEXT NOT NULL DEFAULT '',
	peak_tokens   INTEGER NOT NULL DEFAULT 0,
	total_tokens  INTEGER NOT NULL DEFAULT 0,
	turns         INTEGER NOT NULL DEFAULT 0,
	seconds       REAL NOT NULL DEFAULT 0,
	hit_max_turns INTEGER NOT NULL DEFAULT 0,
	error         TEXT NOT NULL DEFAULT '',
	started_at    TEXT,
	finished_at   TEXT,
	heartbeat_at  TEXT
);
CREATE INDEX rollouts_experiment ON rollouts(experiment_id, status);
CREATE INDEX rollouts_task ON rollouts(task_id);
CREATE INDEX rollouts_status ON rollouts(status);

CREATE TABLE turns (
	id                INTEGER PRIMARY KEY,
	rollout_id        INTEGER NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,
	idx               INTEGER NOT NULL CHECK (idx >= 0),
	context           TEXT NOT NULL,
	response          TEXT NOT NULL,
	internal_state    TEXT NOT NULL,
	action            TEXT NOT NULL,
	query             TEXT NOT NULL,
	answer            TEXT NOT NULL,
	information       TEXT NOT NULL,
	passages          TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(passages)),
	prompt_tokens     INTEGER NOT NULL,
	completion_tokens INTEGER NOT NULL,
	usage_reported    INTEGER NOT NULL,
	latency_ms        REAL NOT NULL,
	finish_reason     TEXT NOT NULL,
	created_at        TEXT NOT NULL,
	UNIQUE (rollout_id, idx)
);
`,
	// 2: trace search (FTS5 over turns' internal state, query and answer, and over
	// tasks' questions) and indexes for the rollout browser and Compare.
	`
-- turns_fts is contentless: it only answers "which turns hold these words". Its
-- rowid is rollout_id << 16 | idx, so a match names its rollout without reading
-- the (large) turns table (turn indices stay far below 65536). The triggers give
-- it each turn's text.
CREATE VIRTUAL TABLE turns_fts USING fts5(
	internal_state, query, answer,
	content = '',
	tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER turns_fts_ai AFTER INSERT ON turns BEGIN
	INSERT INTO turns_fts(rowid, internal_state, query, answer)
		VALUES ((new.rollout_id << 16) | new.idx, new.internal_state, new.query, new.answer);
END;
CREATE TRIGGER turns_fts_ad AFTER DELETE ON turns BEGIN
	INSERT INTO turns_fts(turns_fts, rowid, internal_state, query, answer)
		VALUES ('delete', (old.rollout_id << 16) | old.idx, old.internal_state, old.query, old.answer);
END;
CREATE TRIGGER turns_fts_au AFTER UPDATE OF rollout_id, idx, internal_state, query, answer ON turns BEGIN
	INSERT INTO turns_fts(turns_fts, rowid, internal_state, query, answer)
		VALUES ('delete', (old.rollout_id << 16) | old.idx, old.internal_state, old.query, old.answer);
	INSERT INTO turns_fts(rowid, internal_state, query, answer)
		VALUES ((new.rollout_id << 16) | new.idx, new.internal_state, new.query, new.answer);
END;
INSERT INTO turns_fts(rowid, internal_state, query, answer)
	SELECT (rollout_id << 16) | idx, internal_state, query, answer FROM turns;

-- tasks_fts holds, under the task's id, its objectives' questions joined by spaces.
CREATE VIRTUAL TABLE tasks_fts USING fts5(
	questions,
	tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER tasks_fts_ai AFTER INSERT ON tasks BEGIN
	INSERT INTO tasks_fts(rowid, questions)
		SELECT new.id, COALESCE(group_concat(json_extract(j.value, '$.question'), ' '), '')
		FROM json_each(new.task_json, '$.objectives') AS j;
END;
CREATE TRIGGER tasks_fts_ad AFTER DELETE ON tasks BEGIN
	DELETE FROM tasks_fts WHERE rowid = old.id;
END;
CREATE TRIGGER tasks_fts_au AFTER UPDATE OF task_json ON tasks BEGIN
	DELETE FROM tasks_fts WHERE rowid = old.id;
	INSERT INTO tasks_fts(rowid, questions)
		SELECT new.id, COALESCE(group_concat(json_extract(j.value, '$.question'), ' '), '')
		FROM json_each(new.task_json, '$.objectives') AS j;
END;
INSERT INTO tasks_fts(rowid, questions)
	SELECT t.id, COALESCE((SELECT group_concat(json_extract(j.value, '$.question'), ' ')
	                       FROM json_each(t.task_json, '$.objectives') AS j), '')
	FROM tasks t;

CREATE INDEX tasks_key ON tasks(key);
CREATE INDEX tasks_dataset ON tasks(dataset);
CREATE INDEX rollouts_em ON rollouts(em);
CREATE INDEX rollouts_peak ON rollouts(peak_tokens);
CREATE INDEX rollouts_policy ON rollouts(policy);
CREATE INDEX rollouts_model ON rollouts(model);
`,
	// 3: run control. experiments.owner/owner_at are the lease of the process
	// running the experiment ("host|pid|nonce", heartbeat time); control is a
	// request from another process or screen ("" | "pause" | "cancel").
	// rollouts.endpoint names the endpoint that played it, rollouts.retries counts
	// its failed model calls; attempts keeps each failed call; endpoint_profiles
	// keeps the Endpoints screen's profiles (no API keys: only where to find one).
	`
ALTER TABLE experiments ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE experiments ADD COLUMN owner_at TEXT;
ALTER TABLE experiments ADD COLUMN control TEXT NOT NULL DEFAULT '';
ALTER TABLE rollouts ADD COLUMN endpoint TEXT NOT NULL DEFAULT '';
ALTER TABLE rollouts ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
CREATE INDEX experiments_hash ON experiments(config_hash);

CREATE TABLE attempts (
	id         INTEGER PRIMARY KEY,
	rollout_id INTEGER NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,
	turn_idx   INTEGER NOT NULL CHECK (turn_idx >= 0),
	attempt    INTEGER NOT NULL CHECK (attempt >= 1),
	endpoint   TEXT NOT NULL,
	status     INTEGER NOT NULL DEFAULT 0,
	error      TEXT NOT NULL,
	latency_ms REAL NOT NULL,
	created_at TEXT NOT NULL
);
CREATE INDEX attempts_rollout ON attempts(rollout_id, turn_idx);

CREATE TABLE endpoint_profiles (
	name         TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),
	profile_json TEXT NOT NULL CHECK (json_valid(profile_json)),
	updated_at   TEXT NOT NULL
) WITHOUT ROWID;
`,
	// rollouts.prompt: the task prompt (the user message the template rendered)
	// that the rollout's model calls carried, stored when the rollout starts, so
	// the trajectories export writes what was sent rather than a re-rendering.
	// '' for rollouts stored before this column (exports then re-render it and
	// say so).
	`
ALTER TABLE rollouts ADD COLUMN prompt TEXT NOT NULL DEFAULT '';
`,
	// retriever: turns.retrieval_ms is the part of latency_ms the turn's search
	// took (0 for turns stored before, and for turns without a search).
	`
ALTER TABLE turns ADD COLUMN retrieval_ms REAL NOT NULL DEFAULT 0;
`,
	// paper token metrics (MEM1 eval.py) per rollout, and the source of every
	// token figure. The figures are NULL where eval.py gives None;
	// paper_token_source is NULL until they are computed (existing rows are
	// recomputed from their stored turns by experiments.BackfillPaperMetrics).
	// token_source is the source of request_peak_tokens and, on turns, of the
	// turn's prompt/completion counts ('' on old turns: read from
	// usage_reported).
	`
ALTER TABLE rollouts ADD COLUMN paper_peak_tokens INTEGER;
ALTER TABLE rollouts ADD COLUMN dependency INTEGER;
ALTER TABLE rollouts ADD COLUMN compression_ratio REAL;
ALTER TABLE rollouts ADD COLUMN exact_match_lenient INTEGER;
ALTER TABLE rollouts ADD COLUMN paper_token_source TEXT;
ALTER TABLE rollouts ADD COLUMN request_peak_tokens INTEGER;
ALTER TABLE rollouts ADD COLUMN token_source TEXT;
ALTER TABLE turns ADD COLUMN token_source TEXT NOT NULL DEFAULT '';
`,
	// turns.raw_response keeps each generation as the server returned it
	// (turns.response is stripped and has its closing tag restored, as MEM1's
	// reference carries it); templates keeps named prompt templates imported
	// once from a file, addressed by name and by the SHA-256 of their text.
	`
ALTER TABLE turns ADD COLUMN raw_response TEXT NOT NULL DEFAULT '';

CREATE TABLE templates (
	name        TEXT PRIMARY KEY NOT NULL CHECK (name <> ''),
	text        TEXT NOT NULL,
	sha256      TEXT NOT NULL,
	source      TEXT NOT NULL DEFAULT '',
	imported_at TEXT NOT NULL
) WITHOUT ROWID;
`,
	// turn contexts as deltas (see contexts.go): context now holds what follows
	// the first ctx_prefix bytes of turn ctx_base's full context (ctx_base NULL:
	// context is the whole text, as on every row written before this migration,
	// which keep it); ctx_sha256 is the hex SHA-256 of the full context, '' on
	// those older rows.
	`
ALTER TABLE turns ADD COLUMN ctx_base INTEGER CHECK (ctx_base IS NULL OR ctx_base >= 0);
ALTER TABLE turns ADD COLUMN ctx_prefix INTEGER NOT NULL DEFAULT 0 CHECK (ctx_prefix >= 0);
ALTER TABLE turns ADD COLUMN ctx_sha256 TEXT NOT NULL DEFAULT '';
`,
	// turns_fts keyed by turns.id: the rollout_id << 16 | idx rowid credited a
	// match at turn 65,536 or later to another rollout. The index is rebuilt.
	`
DROP TRIGGER turns_fts_ai;
DROP TRIGGER turns_fts_ad;
DROP TRIGGER turns_fts_au;
DROP TABLE turns_fts;
CREATE VIRTUAL TABLE turns_fts USING fts5(
	internal_state, query, answer,
	content = '',
	tokenize = 'porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER turns_fts_ai AFTER INSERT ON turns BEGIN
	INSERT INTO turns_fts(rowid, internal_state, query, answer)
		VALUES (new.id, new.internal_state, new.query, new.answer);
END;
CREATE TRIGGER turns_fts_ad AFTER DELETE ON turns BEGIN
	INSERT INTO turns_fts(turns_fts, rowid, internal_state, query, answer)
		VALUES ('delete', old.id, old.internal_state, old.query, old.answer);
END;
CREATE TRIGGER turns_fts_au AFTER UPDATE OF id, internal_state, query, answer ON turns BEGIN
	INSERT INTO turns_fts(turns_fts, rowid, internal_state, query, answer)
		VALUES ('delete', old.id, old.internal_state, old.query, old.answer);
	INSERT INTO turns_fts(rowid, internal_state, query, answer)
		VALUES (new.id, new.internal_state, new.query, new.answer);
END;
INSERT INTO turns_fts(rowid, internal_state, query, answer)
	SELECT id, internal_state, query, answer FROM turns;
`,
	// rollout_diagnostics: the memory diagnostics computed from a rollout's
	// stored turns (experiments.RolloutDiagnostics as JSON), a cache: version
	// is the diagnostics' format, fingerprint the rollout's figures when they
	// were computed; a row that no longer matches is recomputed.
	`
CREATE TABLE rollout_diagnostics (
	rollout_id       INTEGER PRIMARY KEY REFERENCES rollouts(id) ON DELETE CASCADE,
	version          INTEGER NOT NULL,
	fingerprint      TEXT NOT NULL,
	diagnostics_json TEXT NOT NULL CHECK (json_valid(diagnostics_json)),
	computed_at      TEXT NOT NULL
);
`,
	// memory policies: subcalls are the extra model and embeddings calls a
	// memory policy made for a turn (committed one by one as they complete, so
	// a resumed turn replays them instead of sending them again); turn_memory
	// is each turn's memory payload (the memory text that entered the actor's
	// context) and the policy's memory state (JSON) after the turn's memory
	// step, from which resume rebuilds the memory.
	`
CREATE TABLE subcalls (
	id                INTEGER PRIMARY KEY,
	rollout_id        INTEGER NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,
	turn_idx          INTEGER NOT NULL CHECK (turn_idx >= 0),
	seq               INTEGER NOT NULL CHECK (seq >= 0),
	role              TEXT NOT NULL CHECK (role <> ''),
	endpoint          TEXT NOT NULL,
	request           TEXT NOT NULL,
	response          TEXT NOT NULL,
	prompt_tokens     INTEGER NOT NULL DEFAULT 0,
	completion_tokens INTEGER NOT NULL DEFAULT 0,
	usage_reported    INTEGER NOT NULL DEFAULT 0,
	latency_ms        REAL NOT NULL DEFAULT 0,
	error             TEXT NOT NULL DEFAULT '',
	created_at        TEXT NOT NULL,
	UNIQUE (rollout_id, turn_idx, seq)
);
CREATE TABLE turn_memory (
	rollout_id INTEGER NOT NULL REFERENCES rollouts(id) ON DELETE CASCADE,
	idx        INTEGER NOT NULL CHECK (idx >= 0),
	payload    TEXT NOT NULL,
	state      TEXT NOT NULL,
	PRIMARY KEY (rollout_id, idx)
) WITHOUT ROWID;
`,
	// the trace full-text index off the commit path: a new turn only queues its
	// id in turns_fts_pending (one integer insert in the turn's transaction); the
	// store's indexer moves queued turns into turns_fts in batches, and every
	// trace search first indexes what is still queued (see fts_index.go). A
	// deleted or edited turn changes turns_fts only when it was indexed.
	`
DROP TRIGGER turns_fts_ai;
DROP TRIGGER turns_fts_ad;
DROP TRIGGER turns_fts_au;
CREATE TABLE turns_fts_pending (id INTEGER PRIMARY KEY);
CREATE TRIGGER turns_fts_ai AFTER INSERT ON turns BEGIN
	INSERT INTO turns_fts_pending(id) VALUES (new.id);
END;
CREATE TRIGGER turns_fts_ad AFTER DELETE ON turns BEGIN
	INSERT INTO turns_fts(turns_fts, rowid, internal_state, query, answer)
		SELECT 'delete', old.id, old.internal_state, old.query, old.answer
		WHERE NOT EXISTS (SELECT 1 FROM turns_fts_pending WHERE id = old.id);
	DELETE FROM turns_fts_pending WHERE id = old.id;
END;
CREATE TRIGGER turns_fts_au AFTER UPDATE OF id, internal_state, query, answer ON turns
WHEN NOT EXISTS (SELECT 1 FROM turns_fts_pending WHERE id = old.id) BEGIN
	INSERT INTO turns_fts(turns_fts, rowid, internal_state, query, answer)
		VALUES ('delete', old.id, old.internal_state, old.query, old.answer);
	INSERT INTO turns_fts(rowid, internal_state, query, answer)
		VALUES (new.id, new.internal_state, new.query, new.answer);
END;
`,
	// the response cache (experiments' cache = true): a reply body under the
	// hex SHA-256 of the endpoint's base URL, the model and the exact request
	// body; the retrieval cache: a search's passages under (retriever, query,
	// k); turns.cached marks a turn whose generation came from the cache.
	`
CREATE TABLE response_cache (
	key        TEXT PRIMARY KEY NOT NULL,
	endpoint   TEXT NOT NULL,
	model      TEXT NOT NULL,
	body       BLOB NOT NULL,
	created_at TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE retrieval_cache (
	retriever  TEXT NOT NULL,
	query      TEXT NOT NULL,
	k          INTEGER NOT NULL,
	passages   TEXT NOT NULL CHECK (json_valid(passages)),
	created_at TEXT NOT NULL,
	PRIMARY KEY (retriever, query, k)
) WITHOUT ROWID;
ALTER TABLE turns ADD COLUMN cached INTEGER NOT NULL DEFAULT 0;
`,
	// web_search_cache: a web-search API's raw replies (websearch.go), one per
	// (endpoint, query, k), so a rerun of a web-QA experiment costs no API
	// calls. endpoint is the search URL; no API key is ever stored.
	`
CREATE TABLE web_search_cache (
	endpoint   TEXT NOT NULL CHECK (endpoint <> ''),
	query      TEXT NOT NULL,
	k          INTEGER NOT NULL CHECK (k > 0),
	reply      TEXT NOT NULL CHECK (json_valid(reply)),
	fetched_at TEXT NOT NULL,
	PRIMARY KEY (endpoint, query, k)
) WITHOUT ROWID;
`,
}

// LatestSchemaVersion is the schema version this build writes.
func LatestSchemaVersion() int { return len(migrations) }

// SchemaVersion reads the store's schema version (PRAGMA user_version).
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("storage: read schema version: %w", err)
	}
	return v, nil
}

// migrate applies every pending migration, each in its own transaction that also
// bumps user_version, so a failed migration leaves the previous version intact.
func (s *Store) migrate(ctx context.Context) error {
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("storage: %s has schema version %d but this build knows only up to %d; use a newer mem1lab to open it",
			s.path, v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			// Re-read inside the write lock: another process may have migrated meanwhile.
			var cur int
			if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&cur); err != nil {
				return err
			}
			if cur != i {
				return nil
			}
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("storage: migration %d of %s: %w", i+1, s.path, err)
		}
	}
	return nil
}
