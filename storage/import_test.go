package storage

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOpenMigratesAndRejectsNewerSchema(t *testing.T) {
	ctx := ctxT(t)
	path := filepath.Join(t.TempDir(), "a", "b", "store.db")
	s, err := Open(path)
	require.NoError(t, err)
	v, err := s.SchemaVersion(ctx)
	require.NoError(t, err)
	assert.Equal(t, LatestSchemaVersion(), v)
	assert.Equal(t, path, s.Path())
	require.NoError(t, s.IntegrityCheck(ctx))
	require.NoError(t, s.Close())

	// Reopening an up-to-date store is a no-op.
	s, err = Open(path)
	require.NoError(t, err)
	require.NoError(t, s.Close())

	db, err := sql.Open("sqlite3", path)
	require.NoError(t, err)
	_, err = db.Exec(fmt.Sprintf("PRAGMA user_version = %d", LatestSchemaVersion()+1))
	require.NoError(t, err)
	require.NoError(t, db.Close())
	_, err = Open(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "newer")
}

func TestOpenPathWithURICharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "we?ird#dir %20", "s.db")
	s, err := Open(path)
	require.NoError(t, err)
	defer s.Close()
	_, err = os.Stat(path)
	require.NoError(t, err, "the file must be created at the literal path")
}

func TestImportRealBundle(t *testing.T) {
	s := sharedBundleStore(t)
	ctx := ctxT(t)
	t.Logf("full bundle import: %d questions, %d passages in %v", bundleStats.Questions, bundleStats.Passages, bundleStats.Elapsed)
	assert.Equal(t, 4280, bundleStats.Questions)
	assert.Equal(t, 19180, bundleStats.Passages)

	n, err := s.CountQuestions(ctx, "")
	require.NoError(t, err)
	assert.Equal(t, 4280, n)
	np, err := s.CountPassages(ctx)
	require.NoError(t, err)
	assert.Equal(t, 19180, np)
	ok, err := s.BundleImported(ctx)
	require.NoError(t, err)
	assert.True(t, ok)

	ds, err := s.Datasets(ctx)
	require.NoError(t, err)
	byName := map[string]DatasetInfo{}
	for _, d := range ds {
		byName[d.Name] = d
	}
	assert.ElementsMatch(t, []string{"hotpotqa", "nq", "musique"}, keys(byName))
	assert.Equal(t, 1525, byName["hotpotqa"].Questions)
	assert.Equal(t, 2655, byName["nq"].Questions)
	assert.Equal(t, 100, byName["musique"].Questions)
	for _, d := range ds {
		assert.Positive(t, d.Passages, d.Name)
	}

	// Seq follows file order within each dataset, 0-based and gapless.
	f, err := os.ReadFile(filepath.Join(bundleDir, "unified", "questions.jsonl"))
	require.NoError(t, err)
	idRe := regexp.MustCompile(`"id": ?"([^"]+)", ?"dataset": ?"([^"]+)"`)
	want := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(f)), "\n") {
		m := idRe.FindStringSubmatch(line)
		require.NotNil(t, m, line[:min(80, len(line))])
		want[m[2]] = append(want[m[2]], m[1])
	}
	for name, ids := range want {
		qs, err := s.Questions(ctx, name, 0, 0)
		require.NoError(t, err)
		require.Len(t, qs, len(ids), name)
		for i, q := range qs {
			require.Equal(t, i, q.Seq)
			require.Equal(t, ids[i], q.ID)
		}
	}

	page, err := s.Questions(ctx, "hotpotqa", 10, 5)
	require.NoError(t, err)
	require.Len(t, page, 5)
	assert.Equal(t, 10, page[0].Seq)
	q := page[0]
	assert.NotEmpty(t, q.Golden)
	assert.NotEmpty(t, q.GoldPassageIDs)
	assert.Subset(t, q.ContextPassageIDs, q.GoldPassageIDs)
	for _, id := range q.GoldPassageIDs {
		p, err := s.Passage(ctx, id)
		require.NoError(t, err)
		assert.NotEmpty(t, p.Text)
	}
	first, err := s.Question(ctx, "hotpotqa:5abf63f15542997ec76fd3ea")
	require.NoError(t, err)
	assert.Equal(t, 0, first.Seq)
	assert.Equal(t, "bridge", first.Type)
	assert.Equal(t, "hard", first.Level)
	assert.Equal(t, []string{"hp-000001", "hp-000008"}, first.GoldPassageIDs)
	assert.Equal(t, "raw/hotpotqa_dev_distractor.rpt-train.jsonl", first.SourceFile)

	require.NoError(t, s.IntegrityCheck(ctx))
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestImportRealBundleBadFileLeavesStoreUnchanged(t *testing.T) {
	s := sharedBundleStore(t)
	ctx := ctxT(t)
	before := counts(t, s)

	// A corpus copy whose last line is broken: everything before it must roll back too.
	dir := t.TempDir()
	corpus, err := os.ReadFile(filepath.Join(bundleDir, "unified", "corpus.jsonl"))
	require.NoError(t, err)
	lines := strings.Split(strings.TrimRight(string(corpus), "\n"), "\n")
	extra := make([]string, 0, len(lines)+2)
	for i, l := range lines[:500] { // renamed ids: new rows that a partial import would leave behind
		extra = append(extra, strings.Replace(l, `"id": "`, fmt.Sprintf(`"id": "copy%d-`, i), 1))
	}
	extra = append(extra, `{"id": "broken", "title": "x", "text": }`)
	path := writeFile(t, dir, "corpus.jsonl", extra...)
	_, err = s.ImportCorpusJSONL(ctx, path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), fmt.Sprintf("%s:%d: ", path, 501))
	var le *LineError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, 501, le.Line)
	assert.Equal(t, before, counts(t, s))

	// A question file referencing a passage that does not exist.
	qpath := writeFile(t, dir, "questions.jsonl",
		`{"id": "hotpotqa:new1", "dataset": "hotpotqa", "question": "q?", "golden_answers": ["a"], "gold_passage_ids": ["hp-000001"], "context_passage_ids": ["hp-000001"]}`,
		`{"id": "hotpotqa:new2", "dataset": "hotpotqa", "question": "q?", "golden_answers": ["a"], "gold_passage_ids": ["hp-999999"], "context_passage_ids": ["hp-999999"]}`)
	_, err = s.ImportQuestionsJSONL(ctx, qpath)
	require.Error(t, err)
	assert.Contains(t, err.Error(), qpath+":2: ")
	assert.Contains(t, err.Error(), "hp-999999")
	assert.Equal(t, before, counts(t, s))
	require.NoError(t, s.IntegrityCheck(ctx))
}

func TestImportSmallBundleIdempotentAndSeq(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	dir := smallBundle(t)
	st, err := s.ImportBundle(ctx, dir)
	require.NoError(t, err)
	assert.Equal(t, 2, st.Questions)
	assert.Equal(t, 3, st.Passages)
	assert.Len(t, st.Files, 2)
	before := counts(t, s)

	st, err = s.ImportBundle(ctx, dir)
	require.NoError(t, err)
	assert.Zero(t, st.Questions)
	assert.Zero(t, st.Passages)
	assert.Equal(t, before, counts(t, s))

	// New questions append after the dataset's last seq; an existing one keeps its seq.
	more := writeFile(t, t.TempDir(), "more.jsonl",
		`{"id": "toy:3", "dataset": "toy", "question": "capital of Germany?", "golden_answers": ["Berlin"], "gold_passage_ids": ["p2"], "context_passage_ids": ["p2"]}`,
		`{"id": "toy:1", "dataset": "toy", "question": "What is the capital of France?", "golden_answers": ["Paris", "Paris, France"], "gold_passage_ids": ["p1"], "context_passage_ids": ["p1"]}`,
		`{"id": "other:1", "dataset": "other", "question": "Rome?", "golden_answers": ["Italy"]}`)
	st, err = s.ImportQuestionsJSONL(ctx, more)
	require.NoError(t, err)
	assert.Equal(t, 2, st.Questions)
	qs, err := s.Questions(ctx, "toy", 0, 10)
	require.NoError(t, err)
	require.Len(t, qs, 3)
	assert.Equal(t, []string{"toy:1", "toy:2", "toy:3"}, []string{qs[0].ID, qs[1].ID, qs[2].ID})
	assert.Equal(t, []int{0, 1, 2}, []int{qs[0].Seq, qs[1].Seq, qs[2].Seq})
	assert.Equal(t, "What is the capital of France?", qs[0].Question)
	assert.Equal(t, []string{"Paris", "Paris, France"}, qs[0].Golden)
	assert.Equal(t, "easy", qs[1].Level)
	assert.Equal(t, "", qs[1].Type)
	o, err := s.Question(ctx, "other:1")
	require.NoError(t, err)
	assert.Equal(t, 0, o.Seq)
	assert.Empty(t, o.GoldPassageIDs)

	obj := qs[2].Objective()
	assert.Equal(t, "toy:3", obj.QuestionID)
	assert.Equal(t, []string{"p2"}, obj.GoldPassageIDs)

	ds, err := s.Datasets(ctx)
	require.NoError(t, err)
	assert.Equal(t, []DatasetInfo{{Name: "other", Questions: 1, Passages: 1}, {Name: "toy", Questions: 3, Passages: 3}}, ds)
}

func TestImportBadLines(t *testing.T) {
	good := `{"id": "toy:9", "dataset": "toy", "question": "q?", "golden_answers": ["a"], "gold_passage_ids": ["p1"], "context_passage_ids": ["p1"]}`
	cases := []struct {
		name, line, reason string
		corpus             bool
	}{
		{"invalid json", `{"id": "toy:9", "dataset": `, "invalid JSON", false},
		{"not an object", `[1, 2]`, "invalid JSON", false},
		{"trailing data", good + ` {}`, "extra data", false},
		{"missing id", `{"dataset": "toy", "question": "q?", "golden_answers": ["a"]}`, `"id"`, false},
		{"missing dataset", `{"id": "x", "question": "q?", "golden_answers": ["a"]}`, `"dataset"`, false},
		{"empty question", `{"id": "x", "dataset": "toy", "question": " ", "golden_answers": ["a"]}`, `"question"`, false},
		{"no answers", `{"id": "x", "dataset": "toy", "question": "q?", "golden_answers": []}`, `"golden_answers"`, false},
		{"wrong type", `{"id": "x", "dataset": "toy", "question": "q?", "golden_answers": "a"}`, "invalid JSON", false},
		{"missing gold passage", `{"id": "x", "dataset": "toy", "question": "q?", "golden_answers": ["a"], "gold_passage_ids": ["nope"]}`, `"nope"`, false},
		{"missing context passage", `{"id": "x", "dataset": "toy", "question": "q?", "golden_answers": ["a"], "context_passage_ids": ["p1", "nope2"]}`, `"nope2"`, false},
		{"dataset change", `{"id": "toy:1", "dataset": "other", "question": "q?", "golden_answers": ["a"]}`, "already stored in dataset", false},
		{"corpus missing text", `{"id": "p9", "title": "T"}`, `"text"`, true},
		{"corpus missing id", `{"title": "T", "text": "x"}`, `"id"`, true},
		{"corpus missing title", `{"id": "p9", "text": "x"}`, `"title"`, true},
		{"corpus bad json", `{"id": "p9", "title": "T", "text": "x"`, "invalid JSON", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			ctx := ctxT(t)
			_, err := s.ImportBundle(ctx, smallBundle(t))
			require.NoError(t, err)
			before := counts(t, s)
			var path string
			if tc.corpus {
				path = writeFile(t, t.TempDir(), "c.jsonl",
					`{"id": "p8", "title": "New", "text": "a new passage", "datasets": ["fresh"]}`, "", tc.line)
				_, err = s.ImportCorpusJSONL(ctx, path)
			} else {
				path = writeFile(t, t.TempDir(), "q.jsonl", good, "   ", tc.line)
				_, err = s.ImportQuestionsJSONL(ctx, path)
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), path+":3: ")
			assert.Contains(t, err.Error(), tc.reason)
			assert.Equal(t, before, counts(t, s))
		})
	}
}

func TestImportBundleNeedsBothFiles(t *testing.T) {
	s := newStore(t)
	ctx := ctxT(t)
	dir := t.TempDir()
	writeFile(t, dir, "unified/corpus.jsonl", `{"id": "p1", "title": "T", "text": "x"}`)
	_, err := s.ImportBundle(ctx, dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "questions.jsonl")
	_, err = s.ImportBundle(ctx, t.TempDir())
	require.Error(t, err)
	ok, err := s.BundleImported(ctx)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Equal(t, "questions=0 passages=0 datasets=0 fts(the)=0", counts(t, s))
}

func TestImportRawHotpotDistractor(t *testing.T) {
	requireBundle(t)
	s := newStore(t)
	ctx := ctxT(t)
	raw := filepath.Join(bundleDir, "raw", "hotpotqa_dev_distractor.rpt-dev.jsonl")
	st, err := s.ImportHotpotDistractor(ctx, raw)
	require.NoError(t, err)
	assert.Equal(t, 300, st.Questions)
	assert.Positive(t, st.Passages)
	assert.LessOrEqual(t, st.Passages, 3000)

	qs, err := s.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	require.Len(t, qs, 300)
	assert.Equal(t, "hotpotqa:5a8ce55f554299441c6b9f62", qs[0].ID)
	assert.Equal(t, []string{"Tulsa"}, qs[0].Golden)
	assert.Equal(t, "bridge", qs[0].Type)
	assert.Equal(t, "hard", qs[0].Level)
	require.Len(t, qs[0].ContextPassageIDs, 10)
	// Supporting titles "Tinted Windows (album)" (4th paragraph) and "Tinted Windows (band)" (10th).
	assert.Equal(t, []string{qs[0].ContextPassageIDs[3], qs[0].ContextPassageIDs[9]}, qs[0].GoldPassageIDs)
	p, err := s.Passage(ctx, qs[0].GoldPassageIDs[0])
	require.NoError(t, err)
	assert.Equal(t, "Tinted Windows (album)", p.Title)
	assert.Equal(t, HotpotPassageID(p.Title, p.Text), p.ID)
	assert.True(t, strings.HasPrefix(p.ID, "hpx-"))
	for _, q := range qs {
		assert.Len(t, q.GoldPassageIDs, 2, q.ID)
		assert.Subset(t, q.ContextPassageIDs, q.GoldPassageIDs, q.ID)
	}
	before := counts(t, s)
	st, err = s.ImportHotpotDistractor(ctx, raw)
	require.NoError(t, err)
	assert.Zero(t, st.Questions)
	assert.Zero(t, st.Passages)
	assert.Equal(t, before, counts(t, s))

	bad := writeFile(t, t.TempDir(), "bad.jsonl",
		`{"id": "x1", "question": "q?", "answer": "a", "supporting_facts": {"title": ["A"], "sent_id": [0]}, "context": {"title": ["A", "B"], "sentences": [["a."]]}}`)
	_, err = s.ImportHotpotDistractor(ctx, bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad+":1: ")
	bad = writeFile(t, t.TempDir(), "bad2.jsonl",
		`{"id": "x2", "question": "q?", "answer": "a", "supporting_facts": {"title": ["C"], "sent_id": [0]}, "context": {"title": ["A"], "sentences": [["a."]]}}`)
	_, err = s.ImportHotpotDistractor(ctx, bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad+":1: ")
	assert.Contains(t, err.Error(), `"C"`)
	assert.Equal(t, before, counts(t, s))
}

func TestImportRawNQOpen(t *testing.T) {
	requireBundle(t)
	s := newStore(t)
	ctx := ctxT(t)
	raw := filepath.Join(bundleDir, "raw", "NQ-open.dev.jsonl")
	st, err := s.ImportNQOpen(ctx, raw)
	require.NoError(t, err)
	assert.Equal(t, 3610, st.Questions)
	assert.Zero(t, st.Passages)
	q, err := s.Question(ctx, "nq:dev-0000")
	require.NoError(t, err)
	assert.Equal(t, "when was the last time anyone was on the moon", q.Question)
	assert.Equal(t, []string{"14 December 1972 UTC", "December 1972"}, q.Golden)
	assert.Equal(t, 0, q.Seq)
	assert.Empty(t, q.GoldPassageIDs)
	_, err = s.Question(ctx, "nq:dev-0")
	require.ErrorIs(t, err, ErrNotFound)
	last, err := s.Question(ctx, "nq:dev-3609")
	require.NoError(t, err)
	assert.Equal(t, 3609, last.Seq)

	bad := writeFile(t, t.TempDir(), "nq.jsonl", `{"question": "a", "answer": ["b"]}`, `{"question": "c"}`)
	_, err = s.ImportNQOpen(ctx, bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), bad+":2: ")
	n, err := s.CountQuestions(ctx, "nq")
	require.NoError(t, err)
	assert.Equal(t, 3610, n)
}

// Raw files imported over the bundle reuse its passages and keep its questions.
func TestImportRawOverBundle(t *testing.T) {
	if testing.Short() {
		t.Skip("imports the full bundle a second time")
	}
	requireBundle(t)
	s := newStore(t)
	ctx := ctxT(t)
	_, err := s.ImportBundle(ctx, bundleDir)
	require.NoError(t, err)
	hp, err := s.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)

	st, err := s.ImportHotpotDistractor(ctx, filepath.Join(bundleDir, "raw", "hotpotqa_dev_distractor.rpt-test.jsonl"))
	require.NoError(t, err)
	assert.Zero(t, st.Questions, "every RPT row is already in the bundle")
	assert.Zero(t, st.Passages, "every RPT paragraph is already in the bundle corpus")
	after, err := s.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	require.Equal(t, len(hp), len(after))
	for i := range hp {
		require.Equal(t, hp[i].GoldPassageIDs, after[i].GoldPassageIDs, hp[i].ID)
		require.Equal(t, hp[i].ContextPassageIDs, after[i].ContextPassageIDs, hp[i].ID)
		require.Equal(t, hp[i].Seq, after[i].Seq)
	}

	st, err = s.ImportNQOpen(ctx, filepath.Join(bundleDir, "raw", "NQ-open.dev.jsonl"))
	require.NoError(t, err)
	assert.Equal(t, 3610-2655, st.Questions)
	n, err := s.CountQuestions(ctx, "nq")
	require.NoError(t, err)
	assert.Equal(t, 3610, n)
	qs, err := s.Questions(ctx, "nq", 0, 1)
	require.NoError(t, err)
	assert.NotEmpty(t, qs[0].GoldPassageIDs, "bundle questions keep their gold passages")
	require.NoError(t, s.IntegrityCheck(ctx))
}
