package storage

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A question id on two lines of a bundle is a file:line error naming the first
// line; nothing of the bundle is stored. The same holds for a corpus passage id.
func TestImportDuplicateIDs(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	dir := smallBundle(t)
	qpath := filepath.Join(dir, "unified", "questions.jsonl")
	writeFile(t, dir, "unified/questions.jsonl",
		`{"id": "toy:1", "dataset": "toy", "question": "capital of France?", "golden_answers": ["Paris"]}`,
		``,
		`{"id": "toy:2", "dataset": "toy", "question": "capital of Italy?", "golden_answers": ["Rome"]}`,
		`{"id": "toy:1", "dataset": "toy", "question": "capital of Spain?", "golden_answers": ["Madrid"]}`)
	_, err := s.ImportBundle(ctx, dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), qpath+`:4: duplicate question id "toy:1": first on line 1`)
	var le *LineError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, 4, le.Line)
	assert.Equal(t, "questions=0 passages=0 datasets=0 fts(the)=0", counts(t, s), "all or nothing")

	dir2 := smallBundle(t)
	cpath := writeFile(t, dir2, "unified/corpus.jsonl",
		`{"id": "p1", "title": "Paris", "text": "Paris is the capital of France.", "datasets": ["toy"]}`,
		`{"id": "p1", "title": "Lyon", "text": "Lyon is in France.", "datasets": ["toy"]}`)
	_, err = s.ImportBundle(ctx, dir2)
	require.Error(t, err)
	assert.Contains(t, err.Error(), cpath+`:2: duplicate passage id "p1": first on line 1`)
	assert.Equal(t, "questions=0 passages=0 datasets=0 fts(the)=0", counts(t, s))

	// The identical bundle imported twice is still a no-op the second time.
	good := smallBundle(t)
	st, err := s.ImportBundle(ctx, good)
	require.NoError(t, err)
	assert.Equal(t, 2, st.Questions)
	before := counts(t, s)
	st, err = s.ImportBundle(ctx, good)
	require.NoError(t, err)
	assert.Zero(t, st.Questions)
	assert.Equal(t, before, counts(t, s))
}

func TestImportHotpotDuplicateID(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	row := func(id, q string) string {
		return `{"id": "` + id + `", "question": "` + q + `", "answer": "a", "supporting_facts": {"title": ["A"], "sent_id": [0]}, "context": {"title": ["A"], "sentences": [["a fact."]]}}`
	}
	p := writeFile(t, t.TempDir(), "hp.jsonl", row("x1", "first?"), row("x2", "second?"), row("x1", "third?"))
	_, err := s.ImportHotpotDistractor(ctx, p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), p+`:3: duplicate question id "hotpotqa:x1": first on line 1`)
	assert.Equal(t, "questions=0 passages=0 datasets=0 fts(the)=0", counts(t, s))
}

// An empty file, or one of blank lines only, is an error for every importer.
func TestImportEmptyFiles(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.jsonl")
	require.NoError(t, os.WriteFile(empty, nil, 0o644))
	blank := filepath.Join(dir, "blank.jsonl")
	require.NoError(t, os.WriteFile(blank, []byte("\n   \n\t\n"), 0o644))
	for _, p := range []string{empty, blank} {
		for name, imp := range map[string]func() (ImportStats, error){
			"corpus":    func() (ImportStats, error) { return s.ImportCorpusJSONL(ctx, p) },
			"questions": func() (ImportStats, error) { return s.ImportQuestionsJSONL(ctx, p) },
			"hotpot":    func() (ImportStats, error) { return s.ImportHotpotDistractor(ctx, p) },
			"nq":        func() (ImportStats, error) { return s.ImportNQOpen(ctx, p) },
		} {
			_, err := imp()
			require.ErrorIs(t, err, ErrEmptyFile, "%s %s", name, p)
			assert.Contains(t, err.Error(), p)
		}
	}
	b := smallBundle(t)
	writeFile(t, b, "unified/questions.jsonl", "")
	_, err := s.ImportBundle(ctx, b)
	require.ErrorIs(t, err, ErrEmptyFile)
	assert.Equal(t, "questions=0 passages=0 datasets=0 fts(the)=0", counts(t, s))
}

// Bytes that are not UTF-8 are a file:line error, never replaced with U+FFFD.
func TestImportInvalidUTF8(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	_, err := s.ImportBundle(ctx, smallBundle(t))
	require.NoError(t, err)
	before := counts(t, s)
	p := filepath.Join(t.TempDir(), "q.jsonl")
	body := `{"id": "toy:7", "dataset": "toy", "question": "caf` + "\xc3\xa9" + `?", "golden_answers": ["a"]}` + "\n" +
		`{"id": "toy:8", "dataset": "toy", "question": "bad ` + "\xff\xfe" + ` here?", "golden_answers": ["a"]}` + "\n"
	require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
	_, err = s.ImportQuestionsJSONL(ctx, p)
	require.Error(t, err)
	assert.Contains(t, err.Error(), p+":2: not valid UTF-8 (first bad byte at column 52)")
	assert.Equal(t, before, counts(t, s))
	_, err = s.Question(ctx, "toy:7")
	require.ErrorIs(t, err, ErrNotFound, "all or nothing")
}
