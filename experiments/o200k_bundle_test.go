package experiments

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/tiktoken-go/tokenizer"

	"github.com/mem1lab/mem1lab/core"
)

// TestO200kTokensOverTheBundle: core.O200kTokens (pieces counted apart and
// remembered) equals tiktoken-go's count of the whole text for every text a
// QA run counts: each passage of the shared corpus, each question under the
// MEM1 prompt, and information blocks of three passages as the environment
// renders them, joined two by two the way eval.py joins turns, each counted
// twice (the second time from remembered pieces).
func TestO200kTokensOverTheBundle(t *testing.T) {
	codec, err := tokenizer.Get(tokenizer.O200kBase)
	require.NoError(t, err)
	lib := func(s string) int {
		n, err := codec.Count(s)
		require.NoError(t, err)
		return n
	}
	check := func(what, s string) {
		t.Helper()
		want := lib(s)
		require.Equal(t, want, core.O200kTokens(s), "%s: %.80q", what, s)
		require.Equal(t, want, core.O200kTokens(s), "%s (remembered): %.80q", what, s)
	}

	passages, err := LoadCorpusJSONL(requireBundleFile(t, filepath.Join("unified", "corpus.jsonl")))
	require.NoError(t, err)
	require.Greater(t, len(passages), 10000)
	step := 1
	if testing.Short() {
		step = 10
	}
	tags := core.DefaultTags()
	prev := ""
	for i := 0; i+3 <= len(passages); i += 3 * step {
		for _, p := range passages[i : i+3] {
			check("passage "+p.ID, p.Text)
		}
		info := tags.InformationBlock(core.RenderPassages(passages[i : i+3]))
		check("information at "+passages[i].ID, info)
		turn := "<think>Now I look up " + passages[i].Title + ".</think>\n<search>" + passages[i].Title + "</search>" + info
		check("turns before "+passages[i].ID, prev+turn)
		prev = turn
	}

	prompt, err := os.ReadFile(filepath.Join("..", "..", "shared", "reference", "mem1-prompt.txt"))
	require.NoError(t, err)
	qf, err := os.Open(requireBundleFile(t, filepath.Join("unified", "questions.jsonl")))
	require.NoError(t, err)
	defer qf.Close()
	sc := bufio.NewScanner(qf)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	n := 0
	for sc.Scan() {
		var q struct{ Question string }
		require.NoError(t, json.Unmarshal(sc.Bytes(), &q))
		if n%step == 0 {
			check("question", strings.ReplaceAll(string(prompt), "{question}", q.Question))
		}
		n++
	}
	require.NoError(t, sc.Err())
	assert.Greater(t, n, 1000)
}
