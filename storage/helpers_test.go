package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/internal/fixture"
)

// bundleDir is the shared qa-bundle, beside the repository.
var bundleDir = filepath.Join("..", "..", "shared", "data", "qa-bundle")

var (
	bundleOnce    sync.Once
	bundleStore   *Store
	bundleStats   ImportStats
	bundleErr     error
	bundleTempDir string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if bundleStore != nil {
		bundleStore.Close()
	}
	if bundleTempDir != "" {
		os.RemoveAll(bundleTempDir)
	}
	os.Exit(code)
}

// requireBundle skips when the shared bundle is absent.
func requireBundle(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(bundleDir, "unified", "questions.jsonl")); err != nil {
		fixture.Missing(t, "qa-bundle not found at %s (expected ../shared/data/qa-bundle beside the repo): %v", bundleDir, err)
	}
}

// sharedBundleStore imports the real bundle once per test binary into a temp store.
// Tests using it must leave its data as they found it.
func sharedBundleStore(t *testing.T) *Store {
	t.Helper()
	requireBundle(t)
	bundleOnce.Do(func() {
		bundleTempDir, bundleErr = os.MkdirTemp("", "mem1lab-storage-bundle-")
		if bundleErr != nil {
			return
		}
		bundleStore, bundleErr = Open(filepath.Join(bundleTempDir, "bundle.db"))
		if bundleErr != nil {
			return
		}
		bundleStats, bundleErr = bundleStore.ImportBundle(context.Background(), bundleDir)
	})
	require.NoError(t, bundleErr)
	return bundleStore
}

// newStore opens a fresh store in a test temp dir.
func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "sub", "mem1lab.db"))
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// writeFile writes lines joined by newlines into dir/name and returns the path.
func writeFile(t testing.TB, dir, name string, lines ...string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	return p
}

// smallBundle writes a tiny valid bundle (3 passages, 2 questions) and returns its dir.
func smallBundle(t testing.TB) string {
	dir := t.TempDir()
	writeFile(t, dir, "unified/corpus.jsonl",
		`{"id": "p1", "title": "Paris", "text": "Paris is the capital of France.", "datasets": ["toy"]}`,
		`{"id": "p2", "title": "Berlin", "text": "Berlin is the capital of Germany.", "datasets": ["toy"]}`,
		`{"id": "p3", "title": "Rome", "text": "Rome is the capital of Italy and was founded long ago.", "datasets": ["toy", "other"]}`)
	writeFile(t, dir, "unified/questions.jsonl",
		`{"id": "toy:1", "dataset": "toy", "question": "capital of France?", "golden_answers": ["Paris"], "gold_passage_ids": ["p1"], "context_passage_ids": ["p1", "p2"], "type": "bridge", "level": null, "source_file": "toy.jsonl"}`,
		`{"id": "toy:2", "dataset": "toy", "question": "capital of Italy?", "golden_answers": ["Rome"], "gold_passage_ids": ["p3"], "context_passage_ids": ["p3"], "type": null, "level": "easy", "source_file": "toy.jsonl"}`)
	return dir
}

// counts is a snapshot of row counts for comparing before/after a failed import.
func counts(t testing.TB, s *Store) string {
	t.Helper()
	var q, p, d, f int
	ctx := ctxT(t)
	require.NoError(t, s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM questions`).Scan(&q))
	require.NoError(t, s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM passages`).Scan(&p))
	require.NoError(t, s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM datasets`).Scan(&d))
	require.NoError(t, s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM passages_fts WHERE passages_fts MATCH '"the"'`).Scan(&f))
	return fmt.Sprintf("questions=%d passages=%d datasets=%d fts(the)=%d", q, p, d, f)
}
