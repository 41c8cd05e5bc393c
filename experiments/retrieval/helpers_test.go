package retrieval

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

	"github.com/mem1lab/mem1lab/storage"
)

// bundleDir is the shared QA bundle, ../shared/data/qa-bundle from the repo root.
var bundleDir = filepath.Join("..", "..", "..", "shared", "data", "qa-bundle")

var (
	bundleOnce sync.Once
	bundleSt   *storage.Store
	bundleErr  error
	bundleTmp  string
)

// needBundle skips (fails when CI is set) when the shared bundle is absent.
func needBundle(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(bundleDir, "unified", "questions.jsonl")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("qa-bundle not found at %s: %v", bundleDir, err)
		}
		t.Skipf("qa-bundle not found at %s: %v", bundleDir, err)
	}
}

// bundleStore returns a store with the real bundle imported (once per binary).
func bundleStore(t testing.TB) *storage.Store {
	t.Helper()
	needBundle(t)
	bundleOnce.Do(func() {
		if bundleTmp, bundleErr = os.MkdirTemp("", "mem1lab-retrieval-"); bundleErr != nil {
			return
		}
		if bundleSt, bundleErr = storage.Open(filepath.Join(bundleTmp, "lab.db")); bundleErr != nil {
			return
		}
		_, bundleErr = bundleSt.ImportBundle(context.Background(), bundleDir)
	})
	require.NoError(t, bundleErr)
	return bundleSt
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bundleSt != nil {
		bundleSt.Close()
	}
	if bundleTmp != "" {
		os.RemoveAll(bundleTmp)
	}
	os.Exit(code)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// writeBundle writes a qa-bundle folder with these corpus lines and one
// question per gold passage id given.
func writeBundle(t testing.TB, corpus []string, gold ...string) string {
	t.Helper()
	dir := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "unified"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "unified", "corpus.jsonl"), []byte(strings.Join(corpus, "\n")+"\n"), 0o644))
	var qs []string
	for i, g := range gold {
		qs = append(qs, fmt.Sprintf(`{"id":"toy:%d","dataset":"toy","question":"question about %s?","golden_answers":["x"],"gold_passage_ids":[%q]}`, i, g, g))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "unified", "questions.jsonl"), []byte(strings.Join(qs, "\n")+"\n"), 0o644))
	return dir
}

// sampleQuestions returns every step-th question of every dataset of st.
func sampleQuestions(t testing.TB, st *storage.Store, step int) []storage.Question {
	t.Helper()
	ctx := ctxT(t)
	infos, err := st.Datasets(ctx)
	require.NoError(t, err)
	var out []storage.Question
	for _, d := range infos {
		qs, err := st.Questions(ctx, d.Name, 0, 0)
		require.NoError(t, err)
		for i := 0; i < len(qs); i += step {
			out = append(out, qs[i])
		}
	}
	return out
}
