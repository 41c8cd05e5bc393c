package experiments

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
)

func TestLoadTemplateRendersByteForByte(t *testing.T) {
	dir := t.TempDir()
	prefix := "\ufeffHead\r\n\t  spaced   \r\n🙂 Ünïcödé — ok\r\nQuestions:\t"
	suffix := "\r\n\r\n  trailing \t \r\n"
	path := filepath.Join(dir, "odd.prompt.txt")
	require.NoError(t, os.WriteFile(path, []byte(prefix+core.QuestionsSlot+suffix), 0o600))

	tpl, err := LoadTemplate(path)
	require.NoError(t, err)
	assert.Equal(t, "odd.prompt", tpl.Name)
	task := core.Task{Key: "t/n2", Objectives: []core.Objective{{Question: "first one"}, {Question: "second one?"}}}
	assert.Equal(t, prefix+"first one?; second one?"+suffix, tpl.Render(task))
}

func TestLoadTemplateErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := LoadTemplate(filepath.Join(dir, "missing.txt"))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "missing.txt")

	path := filepath.Join(dir, "noslot.txt")
	require.NoError(t, os.WriteFile(path, []byte("no slot here"), 0o600))
	_, err = LoadTemplate(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path)

	// A Latin-1 file is refused with the line of its first bad byte.
	path = filepath.Join(dir, "latin1.txt")
	require.NoError(t, os.WriteFile(path, []byte("Head\nQuestions: {questions}\ncaf\xe9\n"), 0o600))
	_, err = LoadTemplate(path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), path+":3: template is not valid UTF-8")
}
