package app

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/storage"
)

// Issue 14: a WebShop prompt is kept in the store like the QA one
// (`template import --family webshop`) and picked by name; a QA template, or a
// WebShop file without its slot, is refused with the reason.
func TestWebShopTemplateStoredAndUsed(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "lab.db")
	shop := filepath.Join(dir, "shop.txt")
	require.NoError(t, os.WriteFile(shop, []byte("MARKER-7731 You are shopping.\nCustomer request: {instruction}\nFirst page: {observation}\n"), 0o644))
	code, out, errs := run(t, "template", "import", shop, "--db", db, "--family", "webshop")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, `template "shop"`)

	noSlot := filepath.Join(dir, "qa.txt")
	require.NoError(t, os.WriteFile(noSlot, []byte("Answer {questions}\n"), 0o644))
	code, _, errs = run(t, "template", "import", noSlot, "--db", db, "--family", "webshop")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errs, "no {instruction} slot")
	code, _, errs = run(t, "template", "import", noSlot, "--db", db, "--family", "shopping")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errs, `--family "shopping"`)
	code, _, errs = run(t, "template", "import", noSlot, "--db", db, "--name", "qa")
	require.Equal(t, 0, code, errs)

	code, _, errs = run(t, "run", "--db", db, "--family", "webshop", "--env", "demo", "--endpoint", "scripted",
		"--goals", "0-1", "--template-name", "shop", "--quiet")
	require.Equal(t, 0, code, errs)
	st, err := storage.OpenReadOnly(db)
	require.NoError(t, err)
	rows, err := st.Rollouts(t.Context(), 1)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	for _, r := range rows {
		ts, err := st.Turns(t.Context(), r.ID)
		require.NoError(t, err)
		require.NotEmpty(t, ts)
		assert.Contains(t, ts[0].Context, "MARKER-7731 You are shopping.\nCustomer request: ", "the stored template is the prompt")
		assert.NotContains(t, ts[0].Context, "{instruction}")
	}
	require.NoError(t, st.Close())

	code, _, errs = run(t, "run", "--db", db, "--family", "webshop", "--env", "demo", "--endpoint", "scripted",
		"--goals", "0", "--template-name", "qa", "--quiet")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errs, `template "qa" has no {instruction} slot`)
	code, _, errs = run(t, "run", "--db", db, "--family", "webshop", "--env", "demo", "--endpoint", "scripted",
		"--goals", "0", "--template-name", "missing", "--quiet")
	assert.NotEqual(t, 0, code)
	assert.Contains(t, errs, `template_name "missing"`)
}
