package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/mem1lab/mem1lab/core"
)

// Tokenizer choice (passages_fts): "porter unicode61 remove_diacritics 2".
// unicode61 splits on Unicode spaces and punctuation and case-folds beyond ASCII;
// remove_diacritics 2 folds accents so a model typing "Rontgen" finds "Röntgen";
// porter stems English (films/film, directed/director share stems) which helps the
// paraphrased follow-up queries an agent writes over an English Wikipedia corpus.
// Ranking is FTS5's bm25() (k1 = 1.2, b = 0.75, fixed in SQLite).

// MaxQueryTerms bounds how many distinct words of a query are searched.
const MaxQueryTerms = 64

// stopWords are dropped from queries (unless nothing else is left): they match
// most passages and only slow BM25 down without changing the top hits much.
var stopWords = map[string]bool{
	"a": true, "an": true, "and": true, "are": true, "as": true, "at": true, "be": true, "by": true,
	"did": true, "do": true, "does": true, "for": true, "from": true, "had": true, "has": true,
	"have": true, "he": true, "her": true, "his": true, "how": true, "in": true, "is": true, "it": true,
	"its": true, "of": true, "on": true, "or": true, "she": true, "that": true, "the": true,
	"their": true, "this": true, "to": true, "was": true, "were": true, "what": true, "when": true,
	"where": true, "which": true, "who": true, "whom": true, "whose": true, "why": true, "with": true,
}

// queryTerms splits free text into lower-cased words: runs of letters and digits
// (combining marks kept inside a word). Nothing else survives, so no FTS5 operator,
// quote, column filter, prefix star or NUL byte can reach the MATCH expression.
func queryTerms(q string) []string {
	var terms []string
	seen := map[string]bool{}
	var b strings.Builder
	flush := func() {
		if b.Len() == 0 {
			return
		}
		w := b.String()
		b.Reset()
		if !seen[w] {
			seen[w] = true
			terms = append(terms, w)
		}
	}
	for _, r := range strings.ToLower(q) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsNumber(r):
			b.WriteRune(r)
		case unicode.IsMark(r) && b.Len() > 0:
			b.WriteRune(r)
		default:
			flush()
		}
	}
	flush()
	kept := terms[:0:0]
	for _, t := range terms {
		if !stopWords[t] {
			kept = append(kept, t)
		}
	}
	if len(kept) == 0 {
		kept = terms
	}
	if len(kept) > MaxQueryTerms {
		kept = kept[:MaxQueryTerms]
	}
	return kept
}

// ftsQuery turns free text into an FTS5 MATCH expression: every word as a quoted
// string, OR-ed together. It returns "" when the text has no words.
func ftsQuery(q string) string {
	return matchTerms(queryTerms(q))
}

// matchTerms joins words (as queryTerms returns them) into an FTS5 MATCH
// expression: each word as a quoted string, OR-ed together; "" for no words.
func matchTerms(terms []string) string {
	quoted := make([]string, len(terms))
	for i, t := range terms {
		quoted[i] = `"` + t + `"` // words hold no '"', so quoting is exact
	}
	return strings.Join(quoted, " OR ")
}

// Search returns the k passages that best match the free-text query under BM25,
// best first: Score = -bm25() (higher is better), Rank 1-based. Any text is a valid
// query; one without words (empty, punctuation only) returns no passages and no
// error. Store therefore satisfies core.Environment.
func (s *Store) Search(ctx context.Context, query string, k int) ([]core.Passage, error) {
	if k <= 0 {
		return nil, nil
	}
	match := ftsQuery(query)
	if match == "" {
		return nil, nil
	}
	return searchMatch(ctx, s.r, query, match, k)
}

// searchMatch runs one bm25-ranked MATCH on db (shared by Store.Search and TunedSearcher.Search):
// Score = -bm25(), Rank 1-based, at most k rows.
func searchMatch(ctx context.Context, db *sql.DB, query, match string, k int) ([]core.Passage, error) {
	rows, err := db.QueryContext(ctx, `
		SELECT p.id, p.title, p.text, f.score
		FROM (SELECT rowid, bm25(passages_fts) AS score FROM passages_fts
		      WHERE passages_fts MATCH ? ORDER BY score, rowid LIMIT ?) AS f
		JOIN passages p ON p.rowid = f.rowid
		ORDER BY f.score, p.rowid`, match, k)
	if err != nil {
		return nil, fmt.Errorf("storage: search %q: %w", query, err)
	}
	defer rows.Close()
	var out []core.Passage
	for rows.Next() {
		var p core.Passage
		var bm float64
		if err := rows.Scan(&p.ID, &p.Title, &p.Text, &bm); err != nil {
			return nil, fmt.Errorf("storage: search: %w", err)
		}
		p.Score = -bm
		p.Rank = len(out) + 1
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: search %q: %w", query, err)
	}
	return out, nil
}

// Passage returns the stored passage with this id (Score and Rank zero), or an
// error wrapping ErrNotFound.
func (s *Store) Passage(ctx context.Context, id string) (core.Passage, error) {
	p := core.Passage{ID: id}
	err := s.r.QueryRowContext(ctx, `SELECT title, text FROM passages WHERE id = ?`, id).Scan(&p.Title, &p.Text)
	if errors.Is(err, sql.ErrNoRows) {
		return core.Passage{}, fmt.Errorf("storage: passage %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return core.Passage{}, fmt.Errorf("storage: passage %q: %w", id, err)
	}
	return p, nil
}

// CountPassages is the number of passages in the corpus.
func (s *Store) CountPassages(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM passages`).Scan(&n); err != nil {
		return 0, fmt.Errorf("storage: count passages: %w", err)
	}
	return n, nil
}

// Datasets lists every dataset by name with its question and passage counts.
func (s *Store) Datasets(ctx context.Context) ([]DatasetInfo, error) {
	rows, err := s.r.QueryContext(ctx, `
		SELECT d.name,
		       (SELECT COUNT(*) FROM questions q WHERE q.dataset = d.name),
		       (SELECT COUNT(*) FROM passages p, json_each(p.datasets) j WHERE j.value = d.name)
		FROM datasets d ORDER BY d.name`)
	if err != nil {
		return nil, fmt.Errorf("storage: datasets: %w", err)
	}
	defer rows.Close()
	var out []DatasetInfo
	for rows.Next() {
		var d DatasetInfo
		if err := rows.Scan(&d.Name, &d.Questions, &d.Passages); err != nil {
			return nil, fmt.Errorf("storage: datasets: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

const questionCols = `id, dataset, seq, question, golden, gold_passage_ids, context_passage_ids,
	COALESCE(type, ''), COALESCE(level, ''), source_file`

func scanQuestion(sc interface{ Scan(...any) error }) (Question, error) {
	var q Question
	var golden, gold, cids string
	if err := sc.Scan(&q.ID, &q.Dataset, &q.Seq, &q.Question, &golden, &gold, &cids, &q.Type, &q.Level, &q.SourceFile); err != nil {
		return Question{}, err
	}
	for _, f := range []struct {
		src string
		dst *[]string
	}{{golden, &q.Golden}, {gold, &q.GoldPassageIDs}, {cids, &q.ContextPassageIDs}} {
		if err := json.Unmarshal([]byte(f.src), f.dst); err != nil {
			return Question{}, fmt.Errorf("question %s: %w", q.ID, err)
		}
	}
	return q, nil
}

// Questions returns up to limit questions of dataset ordered by seq, skipping the
// first offset. limit <= 0 means no limit.
func (s *Store) Questions(ctx context.Context, dataset string, offset, limit int) ([]Question, error) {
	if limit <= 0 {
		limit = -1
	}
	if offset < 0 {
		offset = 0
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+questionCols+` FROM questions WHERE dataset = ?
		ORDER BY seq LIMIT ? OFFSET ?`, dataset, limit, offset)
	if err != nil {
		return nil, fmt.Errorf("storage: questions of %q: %w", dataset, err)
	}
	defer rows.Close()
	var out []Question
	for rows.Next() {
		q, err := scanQuestion(rows)
		if err != nil {
			return nil, fmt.Errorf("storage: questions of %q: %w", dataset, err)
		}
		out = append(out, q)
	}
	return out, rows.Err()
}

// Question returns one question by id, or an error wrapping ErrNotFound.
func (s *Store) Question(ctx context.Context, id string) (Question, error) {
	q, err := scanQuestion(s.r.QueryRowContext(ctx, `SELECT `+questionCols+` FROM questions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Question{}, fmt.Errorf("storage: question %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return Question{}, fmt.Errorf("storage: question %q: %w", id, err)
	}
	return q, nil
}

// CountQuestions is the number of questions in dataset ("" counts all datasets).
func (s *Store) CountQuestions(ctx context.Context, dataset string) (int, error) {
	var n int
	var err error
	if dataset == "" {
		err = s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM questions`).Scan(&n)
	} else {
		err = s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM questions WHERE dataset = ?`, dataset).Scan(&n)
	}
	if err != nil {
		return 0, fmt.Errorf("storage: count questions: %w", err)
	}
	return n, nil
}
