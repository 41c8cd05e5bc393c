package app

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// toyBundle writes a three-passage bundle and returns its folder.
func toyBundle(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "unified"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "unified", "corpus.jsonl"), []byte(strings.Join([]string{
		`{"id":"p1","title":"Paris","text":"Paris is the capital of France.","datasets":["toy"]}`,
		`{"id":"p2","title":"Berlin","text":"Berlin is the capital of Germany.","datasets":["toy"]}`,
		`{"id":"p3","title":"Lyon","text":"Lyon is a city in France on the Rhône.","datasets":["toy"]}`,
	}, "\n")+"\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "unified", "questions.jsonl"), []byte(
		`{"id":"toy:1","dataset":"toy","question":"What is the capital of Germany?","golden_answers":["Berlin"],"gold_passage_ids":["p2"]}`+"\n"), 0o644))
	return dir
}

func TestSearchCommandTableAndJSON(t *testing.T) {
	db := filepath.Join(t.TempDir(), "lab.db")
	code, out, errOut := run(t, "import", "--db", db, "--bundle", toyBundle(t), "--bleve")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "built the bleve index of 3 passages")

	for _, kind := range []string{"bm25", "bm25-tuned", "bleve"} {
		code, out, errOut := run(t, "search", "--db", db, "--retriever", kind, "--json", "--questions", "5", "capital", "of", "France")
		require.Equal(t, 0, code, errOut)
		var rep searchReport
		require.NoError(t, json.Unmarshal([]byte(out), &rep), out)
		assert.Equal(t, kind, rep.Retriever)
		assert.Equal(t, 3, rep.K)
		assert.Equal(t, 3, rep.Passages)
		require.Len(t, rep.Queries, 2, "the query and the one stored question")
		assert.Equal(t, "capital of France", rep.Queries[0].Query)
		first := rep.Queries[0].Passages
		require.Len(t, first, 3, kind)
		assert.Equal(t, "p1", first[0].ID, "%s: only Paris has capital and France", kind)
		assert.Equal(t, 1, first[0].Rank)
		assert.Equal(t, "Paris is the capital of France.", first[0].Text)
		assert.Equal(t, "What is the capital of Germany?", rep.Queries[1].Query)
		assert.Equal(t, "p2", rep.Queries[1].Passages[0].ID, kind)
		assert.GreaterOrEqual(t, rep.P95MS, rep.P50MS)
		assert.Greater(t, rep.Queries[0].MS, 0.0)
	}
	_, err := os.Stat(db + ".bleve")
	assert.NoError(t, err, "the bleve index lives beside the store")

	code, out, errOut = run(t, "search", "--db", db, "Rhône")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "retriever bm25 over 3 passages")
	assert.Contains(t, out, `query "Rhône": 1 passages in`)
	assert.Regexp(t, `(?m)^1 +[0-9.]+ +p3 +Lyon +Lyon is a city in France on the Rhône\.$`, out)
	assert.Contains(t, out, "1 queries: p50 ")

	code, out, _ = run(t, "search", "--db", db, "--json", "?!")
	require.Equal(t, 0, code)
	assert.Contains(t, out, `"passages": []`, "no words: no passages, not null")

	code, _, errOut = run(t, "search", "--db", db)
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "nothing to search")
	code, _, errOut = run(t, "search", "--db", db, "--retriever", "grep", "x")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, `unknown retriever "grep"`)
	code, _, errOut = run(t, "search", "--db", filepath.Join(t.TempDir(), "missing.db"), "x")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "missing.db")
	code, _, errOut = run(t, "search", "--db", db, "--k", "0", "x")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "--k 0")
}
