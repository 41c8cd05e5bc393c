package storage

import (
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestContentHashIsSHA1OfCollapsedText: the streaming hash equals the hex SHA-1
// of title, NUL, then the text's fields joined by single spaces (strings.Fields,
// so Unicode spaces and invalid bytes count as Fields counts them).
func TestContentHashIsSHA1OfCollapsedText(t *testing.T) {
	for _, c := range [][2]string{
		{"Paris", "Paris is the capital of France."},
		{"", ""},
		{"T", "   "},
		{"T", "  lead and trail  "},
		{"T", "tabs\tand\nnewlines\r\n\v\fmixed"},
		{"Röntgen", "non\u00a0breaking\u2003em\u3000ideographic\u0085next"},
		{"T", "one"},
		{"T", "bad \xff byte\xfe"},
		{"T", "x  y   z"},
	} {
		h := sha1.Sum([]byte(c[0] + "\x00" + strings.Join(strings.Fields(c[1]), " ")))
		assert.Equal(t, hex.EncodeToString(h[:]), contentHash(c[0], c[1]), "%q", c[1])
	}
}

// TestImportBundleBulkRefusesRepeatedIDs: the bulk path skips the per-row
// lookup on an empty store, so a repeated id inside the file must still be a
// file:line error that stores nothing; the FTS5 hashsize used for the load is
// not left in the index's configuration, whether the load fails or succeeds.
func TestImportBundleBulkRefusesRepeatedIDs(t *testing.T) {
	ctx := ctxT(t)
	dir := t.TempDir()
	writeFile(t, dir, "unified/corpus.jsonl", `{"id":"x1","title":"X","text":"first"}`,
		`{"id":"x2","title":"Y","text":"second"}`, `{"id":"x1","title":"Z","text":"again"}`)
	writeFile(t, dir, "unified/questions.jsonl", `{"id":"q","dataset":"d","question":"q?","golden_answers":["a"]}`)
	s := newStore(t)
	before := counts(t, s)
	_, err := s.ImportBundleBulk(ctx, dir)
	var le *LineError
	require.ErrorAs(t, err, &le)
	assert.Equal(t, 3, le.Line)
	assert.Equal(t, before, counts(t, s))
	// The failed load rolled back whole: trigger, content-hash index and FTS5
	// configuration as before it.
	var objs, cfg int
	require.NoError(t, s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master
		WHERE name IN ('passages_ai', 'passages_content_hash')`).Scan(&objs))
	assert.Equal(t, 2, objs)
	require.NoError(t, s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM passages_fts_config WHERE k = 'hashsize'`).Scan(&cfg))
	assert.Zero(t, cfg)

	st, err := s.ImportBundleBulk(ctx, smallBundle(t))
	require.NoError(t, err)
	assert.Equal(t, 3, st.Passages)
	var n int
	require.NoError(t, s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM passages_fts_config WHERE k = 'hashsize'`).Scan(&n))
	assert.Zero(t, n)
	require.NoError(t, s.IntegrityCheck(ctx))
	got, err := s.Search(ctx, "Germany", 3)
	require.NoError(t, err)
	assert.Equal(t, []string{"p2"}, passageIDs(got))
}
