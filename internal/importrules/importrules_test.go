package importrules

import (
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pkg is what `go list -json` says about one package.
type pkg struct {
	ImportPath string
	Imports    []string // direct imports of its non-test files
	Deps       []string // every package it depends on, transitively
}

const module = "github.com/mem1lab/mem1lab"

// list runs `go list -deps=false -json` on patterns from the module root.
func list(t *testing.T, patterns ...string) []pkg {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	cmd := exec.Command("go", append([]string{"list", "-tags", "sqlite_fts5", "-json=ImportPath,Imports,Deps"}, patterns...)...)
	cmd.Dir = root
	out, err := cmd.Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Fatalf("go list: %v\n%s", err, ee.Stderr)
	}
	require.NoError(t, err)
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []pkg
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		pkgs = append(pkgs, p)
	}
	require.NotEmpty(t, pkgs)
	return pkgs
}

// forbidden returns the paths in imports that match a rule: an exact path, or
// a prefix ending in "/".
func forbidden(imports []string, rules ...string) []string {
	var bad []string
	for _, imp := range imports {
		for _, r := range rules {
			if imp == r || (strings.HasSuffix(r, "/") && strings.HasPrefix(imp, r)) || imp == strings.TrimSuffix(r, "/") {
				bad = append(bad, imp)
				break
			}
		}
	}
	return bad
}

func TestForbidden(t *testing.T) {
	got := forbidden([]string{"os", "os/exec", "fmt", "net/http", "netip", "database/sql", "fyne.io/fyne/v2", "strings"},
		"os", "os/", "net", "net/", "database/", "fyne.io/")
	assert.Equal(t, []string{"os", "os/exec", "net/http", "database/sql", "fyne.io/fyne/v2"}, got)
}

func TestImportRules(t *testing.T) {
	for _, p := range list(t, module+"/core/...") {
		assert.Empty(t, forbidden(p.Imports, "os", "os/", "net", "net/", "database/", "fyne.io/"),
			"%s: core touches no files, network, database or GUI", p.ImportPath)
	}
	for _, p := range list(t, module+"/views/...") {
		assert.Empty(t, forbidden(p.Deps, "fyne.io/fyne/v2/app"),
			"%s: views must not depend on fyne.io/fyne/v2/app (app wires the driver)", p.ImportPath)
	}
	for _, p := range list(t, module+"/experiments/...", module+"/assets") {
		assert.Empty(t, forbidden(p.Deps, "fyne.io/"),
			"%s: headless code must not link Fyne", p.ImportPath)
	}
}
