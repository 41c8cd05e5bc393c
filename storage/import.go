package storage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// LineError is an import error tied to one line of a data file. Error() reads
// "path:line: reason"; Line is 1-based.
type LineError struct {
	Path string
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// maxLine is the longest JSONL line accepted (bytes).
const maxLine = 64 << 20

// eachLine calls fn with every non-blank line of the file at path (1-based line
// numbers); an error from fn is returned as a *LineError. A line that is not
// valid UTF-8 is a *LineError naming the byte offset, and a file with no
// non-blank line is an error: nothing in it could be imported.
func eachLine(ctx context.Context, path string, fn func(line int, data []byte) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), maxLine)
	n, records := 0, 0
	for sc.Scan() {
		n++
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		data := sc.Bytes()
		if n == 1 {
			data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
		}
		if !utf8.Valid(data) {
			return &LineError{Path: path, Line: n, Err: fmt.Errorf("not valid UTF-8 (first bad byte at column %d)", invalidUTF8At(data)+1)}
		}
		if len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		records++
		if err := fn(n, data); err != nil {
			return &LineError{Path: path, Line: n, Err: err}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return &LineError{Path: path, Line: n + 1, Err: fmt.Errorf("line longer than %d bytes", maxLine)}
		}
		return fmt.Errorf("storage: read %s: %w", path, err)
	}
	if records == 0 {
		return fmt.Errorf("storage: %s: %w", path, ErrEmptyFile)
	}
	return nil
}

// ErrEmptyFile is wrapped when a data file is empty or holds only blank lines.
var ErrEmptyFile = errors.New("no records: the file is empty or holds only blank lines")

// invalidUTF8At is the byte offset of the first invalid UTF-8 sequence in b.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// decodeLine decodes exactly one JSON value from data into v.
func decodeLine(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("invalid JSON: extra data after the object")
	}
	return nil
}

// importer holds the prepared statements of one import transaction.
type importer struct {
	ctx      context.Context
	tx       *sql.Tx
	stats    ImportStats
	nextSeq  map[string]int
	datasets map[string]bool
	// firstLine maps kind NUL id (kind "question" or "passage") to where this
	// import first read that id, to refuse a second line with it.
	firstLine map[string]fileLine
	// fresh: the store had no passages when this import's transaction began, so
	// every passage id is new unless once() refuses it (no per-row lookup).
	fresh bool

	passageByID   *sql.Stmt
	passageByHash *sql.Stmt
	insPassage    *sql.Stmt
	updPassage    *sql.Stmt
	passageExists *sql.Stmt
	questionByID  *sql.Stmt
	insQuestion   *sql.Stmt
	updQuestion   *sql.Stmt
}

func newImporter(ctx context.Context, tx *sql.Tx) (*importer, error) {
	im := &importer{ctx: ctx, tx: tx, nextSeq: map[string]int{}, datasets: map[string]bool{}, firstLine: map[string]fileLine{}}
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&im.passageByID, `SELECT title, text, datasets FROM passages WHERE id = ?`},
		{&im.passageByHash, `SELECT id, datasets FROM passages WHERE content_hash = ? AND title = ? ORDER BY rowid LIMIT 1`},
		{&im.insPassage, `INSERT INTO passages(id, title, text, datasets, content_hash) VALUES (?, ?, ?, ?, ?)`},
		{&im.updPassage, `UPDATE passages SET title = ?, text = ?, datasets = ?, content_hash = ? WHERE id = ?`},
		{&im.passageExists, `SELECT 1 FROM passages WHERE id = ?`},
		{&im.questionByID, `SELECT dataset FROM questions WHERE id = ?`},
		{&im.insQuestion, `INSERT INTO questions(id, dataset, seq, question, golden, gold_passage_ids, context_passage_ids, type, level, source_file)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`},
		{&im.updQuestion, `UPDATE questions SET question = ?, golden = ?, gold_passage_ids = ?, context_passage_ids = ?, type = ?, level = ?, source_file = ?
			WHERE id = ?`},
	} {
		st, err := tx.PrepareContext(ctx, p.q)
		if err != nil {
			return nil, fmt.Errorf("storage: prepare: %w", err)
		}
		*p.dst = st
	}
	return im, nil
}

// fileLine is a place in a data file.
type fileLine struct {
	path string
	line int
}

// once records that id (of kind "question" or "passage") is on path:line and
// fails when an earlier line of this import already had it: the second would
// silently overwrite the first.
func (im *importer) once(kind, id, path string, line int) error {
	key := kind + "\x00" + id
	if first, ok := im.firstLine[key]; ok {
		where := fmt.Sprintf("line %d", first.line)
		if first.path != path {
			where = fmt.Sprintf("%s:%d", first.path, first.line)
		}
		return fmt.Errorf("duplicate %s id %q: first on %s", kind, id, where)
	}
	im.firstLine[key] = fileLine{path, line}
	return nil
}

// ensureDataset inserts the dataset row once per import.
func (im *importer) ensureDataset(name string) error {
	if im.datasets[name] {
		return nil
	}
	if _, err := im.tx.ExecContext(im.ctx, `INSERT OR IGNORE INTO datasets(name) VALUES (?)`, name); err != nil {
		return err
	}
	im.datasets[name] = true
	return nil
}

// collapse joins the whitespace-separated fields of s with single spaces.
func collapse(s string) string { return strings.Join(strings.Fields(s), " ") }

// contentHash identifies a passage by its title and whitespace-collapsed text:
// hex SHA-1 of title, a NUL byte, then collapse(text), built in one buffer
// (fields of text found as strings.Fields finds them, joined by single spaces).
func contentHash(title, text string) string {
	buf := make([]byte, 0, len(title)+1+len(text))
	buf = append(buf, title...)
	buf = append(buf, 0)
	mark := len(buf) // where the next field goes; a space first after the first field
	start := -1
	for i, r := range text {
		if unicode.IsSpace(r) {
			if start >= 0 {
				if len(buf) > mark {
					buf = append(buf, ' ')
				}
				buf = append(buf, text[start:i]...)
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		if len(buf) > mark {
			buf = append(buf, ' ')
		}
		buf = append(buf, text[start:]...)
	}
	sum := sha1.Sum(buf)
	return hex.EncodeToString(sum[:])
}

// mergeDatasets returns the sorted union of the JSON list old and add, and
// whether it differs from old.
func mergeDatasets(old string, add []string) (string, bool, error) {
	var cur []string
	if err := json.Unmarshal([]byte(old), &cur); err != nil {
		return "", false, fmt.Errorf("stored datasets list: %w", err)
	}
	merged := append(slices.Clone(cur), add...)
	slices.Sort(merged)
	merged = slices.Compact(merged)
	changed := !slices.Equal(merged, cur)
	b, _ := json.Marshal(merged)
	return string(b), changed, nil
}

// putPassage inserts the passage or, when its id exists, updates it (the dataset
// tags are merged). It reports whether a new row was added.
func (im *importer) putPassage(id, title, text string, datasets []string) (bool, error) {
	for _, d := range datasets {
		if d == "" {
			return false, errors.New("empty dataset name in datasets")
		}
		if err := im.ensureDataset(d); err != nil {
			return false, err
		}
	}
	hash := contentHash(title, text)
	var oldTitle, oldText, oldDS string
	err := sql.ErrNoRows
	if !im.fresh {
		err = im.passageByID.QueryRowContext(im.ctx, id).Scan(&oldTitle, &oldText, &oldDS)
	}
	if errors.Is(err, sql.ErrNoRows) {
		ds := slices.Clone(datasets)
		slices.Sort(ds)
		ds = slices.Compact(ds)
		if ds == nil {
			ds = []string{}
		}
		b, _ := json.Marshal(ds)
		if _, err := im.insPassage.ExecContext(im.ctx, id, title, text, string(b), hash); err != nil {
			return false, err
		}
		im.stats.Passages++
		return true, nil
	}
	if err != nil {
		return false, err
	}
	ds, changed, err := mergeDatasets(oldDS, datasets)
	if err != nil {
		return false, err
	}
	if !changed && oldTitle == title && oldText == text {
		return false, nil
	}
	if _, err := im.updPassage.ExecContext(im.ctx, title, text, ds, hash, id); err != nil {
		return false, err
	}
	return false, nil
}

// questionRow is a question as an importer writes it.
type questionRow struct {
	ID, Dataset, Question string
	Golden                []string
	Gold, Context         []string
	Type, Level           *string
	SourceFile            string
}

// putQuestion inserts q with the next seq of its dataset or, when its id exists,
// updates it in place (seq kept) unless keepExisting is set. Every referenced
// passage id must already be stored.
func (im *importer) putQuestion(q questionRow, keepExisting bool) error {
	for _, list := range [][]string{q.Gold, q.Context} {
		for _, pid := range list {
			var one int
			err := im.passageExists.QueryRowContext(im.ctx, pid).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("question %q references passage %q, which is not in the corpus", q.ID, pid)
			}
			if err != nil {
				return err
			}
		}
	}
	if err := im.ensureDataset(q.Dataset); err != nil {
		return err
	}
	golden, _ := json.Marshal(q.Golden)
	gold, _ := json.Marshal(nonNil(q.Gold))
	cids, _ := json.Marshal(nonNil(q.Context))
	var oldDataset string
	err := im.questionByID.QueryRowContext(im.ctx, q.ID).Scan(&oldDataset)
	switch {
	case err == nil:
		if oldDataset != q.Dataset {
			return fmt.Errorf("question %q is already stored in dataset %q, not %q", q.ID, oldDataset, q.Dataset)
		}
		if keepExisting {
			return nil
		}
		_, err = im.updQuestion.ExecContext(im.ctx, q.Question, string(golden), string(gold), string(cids), q.Type, q.Level, q.SourceFile, q.ID)
		return err
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	seq, ok := im.nextSeq[q.Dataset]
	if !ok {
		if err := im.tx.QueryRowContext(im.ctx, `SELECT COALESCE(MAX(seq) + 1, 0) FROM questions WHERE dataset = ?`, q.Dataset).Scan(&seq); err != nil {
			return err
		}
	}
	if _, err := im.insQuestion.ExecContext(im.ctx, q.ID, q.Dataset, seq, q.Question, string(golden), string(gold), string(cids), q.Type, q.Level, q.SourceFile); err != nil {
		return err
	}
	im.nextSeq[q.Dataset] = seq + 1
	im.stats.Questions++
	return nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// importFiles runs steps in one write transaction; any error rolls all of it back.
func (s *Store) importFiles(ctx context.Context, steps ...func(im *importer) error) (ImportStats, error) {
	start := time.Now()
	var stats ImportStats
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		im, err := newImporter(ctx, tx)
		if err != nil {
			return err
		}
		for _, step := range steps {
			if err := step(im); err != nil {
				return err
			}
		}
		stats = im.stats
		return nil
	})
	if err != nil {
		return ImportStats{}, err
	}
	stats.Elapsed = time.Since(start)
	return stats, nil
}

// corpusLine is one line of unified/corpus.jsonl.
type corpusLine struct {
	ID       *string  `json:"id"`
	Title    *string  `json:"title"`
	Text     *string  `json:"text"`
	Datasets []string `json:"datasets"`
}

func (im *importer) corpus(path string) error {
	im.stats.Files = append(im.stats.Files, path)
	return eachLine(im.ctx, path, func(line int, data []byte) error {
		var c corpusLine
		if err := decodeLine(data, &c); err != nil {
			return err
		}
		switch {
		case c.ID == nil || *c.ID == "":
			return errors.New(`missing or empty "id"`)
		case c.Title == nil:
			return errors.New(`missing "title"`)
		case c.Text == nil || strings.TrimSpace(*c.Text) == "":
			return errors.New(`missing or empty "text"`)
		}
		if err := im.once("passage", *c.ID, path, line); err != nil {
			return err
		}
		_, err := im.putPassage(*c.ID, *c.Title, *c.Text, c.Datasets)
		return err
	})
}

// questionLine is one line of unified/questions.jsonl.
type questionLine struct {
	ID                *string  `json:"id"`
	Dataset           *string  `json:"dataset"`
	Question          *string  `json:"question"`
	GoldenAnswers     []string `json:"golden_answers"`
	GoldPassageIDs    []string `json:"gold_passage_ids"`
	ContextPassageIDs []string `json:"context_passage_ids"`
	Type              *string  `json:"type"`
	Level             *string  `json:"level"`
	SourceFile        string   `json:"source_file"`
}

func (im *importer) questions(path string) error {
	im.stats.Files = append(im.stats.Files, path)
	return eachLine(im.ctx, path, func(line int, data []byte) error {
		var q questionLine
		if err := decodeLine(data, &q); err != nil {
			return err
		}
		switch {
		case q.ID == nil || *q.ID == "":
			return errors.New(`missing or empty "id"`)
		case q.Dataset == nil || *q.Dataset == "":
			return errors.New(`missing or empty "dataset"`)
		case q.Question == nil || strings.TrimSpace(*q.Question) == "":
			return errors.New(`missing or empty "question"`)
		case len(q.GoldenAnswers) == 0:
			return errors.New(`missing or empty "golden_answers"`)
		}
		if err := im.once("question", *q.ID, path, line); err != nil {
			return err
		}
		return im.putQuestion(questionRow{
			ID: *q.ID, Dataset: *q.Dataset, Question: *q.Question, Golden: q.GoldenAnswers,
			Gold: q.GoldPassageIDs, Context: q.ContextPassageIDs, Type: q.Type, Level: q.Level,
			SourceFile: q.SourceFile,
		}, false)
	})
}

// ImportCorpusJSONL imports passages from a unified/corpus.jsonl file
// ({"id","title","text","datasets"} per line) in one transaction. Existing ids are
// updated in place (dataset tags merged), so re-importing a file changes nothing.
// A malformed line aborts the whole import with a *LineError and stores nothing.
func (s *Store) ImportCorpusJSONL(ctx context.Context, path string) (ImportStats, error) {
	return s.importFiles(ctx, func(im *importer) error { return im.corpus(path) })
}

// ImportQuestionsJSONL imports questions from a unified/questions.jsonl file in one
// transaction. id, dataset, question and golden_answers are required; every id in
// gold_passage_ids and context_passage_ids must already be in the corpus. New
// questions get the next seq of their dataset; existing ids are updated in place
// and keep their seq. A bad line aborts the import with a *LineError.
func (s *Store) ImportQuestionsJSONL(ctx context.Context, path string) (ImportStats, error) {
	return s.importFiles(ctx, func(im *importer) error { return im.questions(path) })
}

// Bundle file locations inside a qa-bundle directory.
const (
	BundleCorpus    = "unified/corpus.jsonl"
	BundleQuestions = "unified/questions.jsonl"
)

// bundleFiles returns the corpus and questions paths of the qa-bundle dir
// (BundleCorpus, BundleQuestions under it). Errors: either is missing or is a
// directory ("storage: DIR is not a qa-bundle: …").
func bundleFiles(dir string) (corpus, questions string, err error) {
	corpus = filepath.Join(dir, filepath.FromSlash(BundleCorpus))
	questions = filepath.Join(dir, filepath.FromSlash(BundleQuestions))
	for _, p := range []string{corpus, questions} {
		if st, err := os.Stat(p); err != nil {
			return "", "", fmt.Errorf("storage: %s is not a qa-bundle: %w", dir, err)
		} else if st.IsDir() {
			return "", "", fmt.Errorf("storage: %s is not a qa-bundle: %s is a directory", dir, p)
		}
	}
	return corpus, questions, nil
}

// ImportBundle imports dir/unified/corpus.jsonl and then dir/unified/questions.jsonl
// in a single transaction. It fails, storing nothing, when either file is missing
// or empty (ErrEmptyFile) or any line is bad: not valid UTF-8, malformed, or a
// second line with a question (or passage) id already read (a *LineError naming
// the first line). Importing the same bundle again changes nothing.
func (s *Store) ImportBundle(ctx context.Context, dir string) (ImportStats, error) {
	corpus, questions, err := bundleFiles(dir)
	if err != nil {
		return ImportStats{}, err
	}
	return s.importFiles(ctx,
		func(im *importer) error { return im.corpus(corpus) },
		func(im *importer) error { return im.questions(questions) })
}

// hotpotRow is one row of the Hugging Face hotpot_qa "distractor" config.
type hotpotRow struct {
	ID              string  `json:"id"`
	Question        string  `json:"question"`
	Answer          *string `json:"answer"`
	Type            *string `json:"type"`
	Level           *string `json:"level"`
	SupportingFacts struct {
		Title []string `json:"title"`
	} `json:"supporting_facts"`
	Context struct {
		Title     []string   `json:"title"`
		Sentences [][]string `json:"sentences"`
	} `json:"context"`
}

// HotpotPassageID is the id given to a raw HotpotQA paragraph that is not already
// stored: "hpx-" and the first 16 hex digits of contentHash(title, text), so the
// same paragraph gets the same id in every store and every file.
func HotpotPassageID(title, text string) string { return "hpx-" + contentHash(title, text)[:16] }

// ImportHotpotDistractor imports raw rows of the Hugging Face hotpot_qa distractor
// config (JSONL) in one transaction. Each row becomes question "hotpotqa:<id>"
// (dataset "hotpotqa", golden [answer]); each context paragraph becomes a passage
// with text "".join(sentences), whitespace-collapsed. A paragraph whose title and
// text are already stored (under any id, e.g. the bundle's "hp-…") is reused;
// otherwise its id is HotpotPassageID. Gold passages are the paragraphs whose
// title is a supporting-fact title; context ids keep the row's paragraph order.
func (s *Store) ImportHotpotDistractor(ctx context.Context, path string) (ImportStats, error) {
	source := filepath.Base(path)
	return s.importFiles(ctx, func(im *importer) error {
		im.stats.Files = append(im.stats.Files, path)
		return eachLine(ctx, path, func(line int, data []byte) error {
			var r hotpotRow
			if err := decodeLine(data, &r); err != nil {
				return err
			}
			switch {
			case r.ID == "":
				return errors.New(`missing or empty "id"`)
			case strings.TrimSpace(r.Question) == "":
				return errors.New(`missing or empty "question"`)
			case r.Answer == nil || *r.Answer == "":
				return errors.New(`missing or empty "answer"`)
			case len(r.Context.Title) == 0:
				return errors.New(`no paragraphs in "context"`)
			case len(r.Context.Title) != len(r.Context.Sentences):
				return fmt.Errorf(`"context" has %d titles but %d sentence lists`, len(r.Context.Title), len(r.Context.Sentences))
			case len(r.SupportingFacts.Title) == 0:
				return errors.New(`no "supporting_facts" titles`)
			}
			if err := im.once("question", "hotpotqa:"+r.ID, path, line); err != nil {
				return err
			}
			supporting := map[string]bool{}
			for _, t := range r.SupportingFacts.Title {
				supporting[t] = true
			}
			var ctxIDs, gold []string
			goldTitles := map[string]bool{}
			for i, title := range r.Context.Title {
				text := collapse(strings.Join(r.Context.Sentences[i], ""))
				if text == "" {
					return fmt.Errorf("paragraph %d (%q) has no text", i, title)
				}
				id, err := im.hotpotPassage(title, text)
				if err != nil {
					return err
				}
				if slices.Contains(ctxIDs, id) {
					continue
				}
				ctxIDs = append(ctxIDs, id)
				if supporting[title] {
					gold = append(gold, id)
					goldTitles[title] = true
				}
			}
			for t := range supporting {
				if !goldTitles[t] {
					return fmt.Errorf("supporting-fact title %q is not among the context paragraphs", t)
				}
			}
			return im.putQuestion(questionRow{
				ID: "hotpotqa:" + r.ID, Dataset: "hotpotqa", Question: r.Question, Golden: []string{*r.Answer},
				Gold: gold, Context: ctxIDs, Type: r.Type, Level: r.Level, SourceFile: source,
			}, false)
		})
	})
}

// hotpotPassage returns the id of the stored passage with this title and text,
// adding it (as HotpotPassageID) when absent, and tags it with "hotpotqa".
func (im *importer) hotpotPassage(title, text string) (string, error) {
	var id, ds string
	err := im.passageByHash.QueryRowContext(im.ctx, contentHash(title, text), title).Scan(&id, &ds)
	if err == nil {
		merged, changed, err := mergeDatasets(ds, []string{"hotpotqa"})
		if err != nil || !changed {
			return id, err
		}
		if err := im.ensureDataset("hotpotqa"); err != nil {
			return "", err
		}
		_, err = im.tx.ExecContext(im.ctx, `UPDATE passages SET datasets = ? WHERE id = ?`, merged, id)
		return id, err
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", err
	}
	id = HotpotPassageID(title, text)
	var t, x, d string
	switch err := im.passageByID.QueryRowContext(im.ctx, id).Scan(&t, &x, &d); {
	case err == nil:
		return "", fmt.Errorf("passage id %s (from title %q) is already used by another passage", id, title)
	case !errors.Is(err, sql.ErrNoRows):
		return "", err
	}
	if _, err := im.putPassage(id, title, text, []string{"hotpotqa"}); err != nil {
		return "", err
	}
	return id, nil
}

// nqOpenRow is one line of NQ-open.dev.jsonl.
type nqOpenRow struct {
	Question *string  `json:"question"`
	Answer   []string `json:"answer"`
}

// ImportNQOpen imports raw NQ-open JSONL ({"question", "answer":[...]}) in one
// transaction. Line n (1-based) becomes question "nq:dev-NNNN" (n-1, zero-padded
// to 4 digits as in the bundle's unified/questions.jsonl) in dataset "nq" with no
// passages. Questions already stored (e.g. from the bundle, which carries
// their gold passages) are left untouched.
func (s *Store) ImportNQOpen(ctx context.Context, path string) (ImportStats, error) {
	source := filepath.Base(path)
	return s.importFiles(ctx, func(im *importer) error {
		im.stats.Files = append(im.stats.Files, path)
		return eachLine(ctx, path, func(line int, data []byte) error {
			var r nqOpenRow
			if err := decodeLine(data, &r); err != nil {
				return err
			}
			switch {
			case r.Question == nil || strings.TrimSpace(*r.Question) == "":
				return errors.New(`missing or empty "question"`)
			case len(r.Answer) == 0:
				return errors.New(`missing or empty "answer"`)
			}
			return im.putQuestion(questionRow{
				ID: fmt.Sprintf("nq:dev-%04d", line-1), Dataset: "nq", Question: *r.Question, Golden: r.Answer,
				SourceFile: source,
			}, true)
		})
	})
}

// BundleImported reports whether the store holds any questions and passages, i.e.
// whether a bundle (or other data) has been imported.
func (s *Store) BundleImported(ctx context.Context) (bool, error) {
	var ok bool
	err := s.r.QueryRowContext(ctx,
		`SELECT EXISTS(SELECT 1 FROM questions) AND EXISTS(SELECT 1 FROM passages)`).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("storage: %w", err)
	}
	return ok, nil
}
