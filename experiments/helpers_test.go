package experiments

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/internal/fixture"
	"github.com/mem1lab/mem1lab/storage"
)

// bundleDir is the shared QA bundle, ../shared/data/qa-bundle from the repo root.
var bundleDir = filepath.Join("..", "..", "shared", "data", "qa-bundle")

var (
	bundleOnce sync.Once
	bundleSt   *storage.Store
	bundleErr  error
	bundleTmp  string
)

// bundleStore returns a store with the real bundle imported, shared by the
// package's tests (imported once). Tests that need it are skipped when the
// bundle is absent, and fail when env CI is set.
func bundleStore(t *testing.T) *storage.Store {
	t.Helper()
	requireBundleFile(t, filepath.Join("unified", "questions.jsonl"))

	bundleOnce.Do(func() {
		bundleTmp, bundleErr = os.MkdirTemp("", "mem1lab-experiments-")
		if bundleErr != nil {
			return
		}
		bundleSt, bundleErr = storage.Open(filepath.Join(bundleTmp, "lab.db"))
		if bundleErr != nil {
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
		if err := bundleSt.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "closing store:", err)
		}
	}
	if bubbleDB != "" {
		_ = os.RemoveAll(filepath.Dir(bubbleDB))
	}
	if bundleTmp != "" {
		_ = os.RemoveAll(bundleTmp)
	}
	os.Exit(code)
}

// requireBundleFile returns the path of rel inside the shared bundle; when it
// is missing the test fails under env CI and is skipped otherwise.
func requireBundleFile(t *testing.T, rel string) string {
	t.Helper()
	p := filepath.Join(bundleDir, rel)
	if _, err := os.Stat(p); err != nil {
		fixture.Missing(t, "qa-bundle not found at %s: %v", bundleDir, err)
	}
	return p
}
