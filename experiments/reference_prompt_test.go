package experiments

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// referencePromptPath is MEM1's training prompt kept as test data
// (../shared/reference/README.md says where it comes from).
var referencePromptPath = filepath.Join("..", "..", "shared", "reference", "mem1-prompt.txt")

// requireShared fails (CI set) or skips when a shared fixture is missing.
func requireShared(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("fixture %s missing: %v", path, err)
		}
		t.Skipf("fixture %s missing: %v", path, err)
	}
}

// refMakePrefix transcribes make_prefix (template_type "base") of
// Mem1/gen_data/data_process/qa_search_test_merge_multi.py: the f-string's
// text before {questions}, the joined questions, and the "\n" the f-string
// ends with. head is the prompt's text before its slot.
func refMakePrefix(head, questionsStr string) string {
	return head + questionsStr + "\n"
}

// refProcessBatchJoin transcribes process_batch's question handling: append
// "?" when question[-1] (the last code point) is not "?", no stripping, join
// with "; ".
func refProcessBatchJoin(questions []string) string {
	out := make([]string, 0, len(questions))
	for _, q := range questions {
		last, _ := utf8.DecodeLastRuneInString(q)
		if last != '?' {
			q += "?"
		}
		out = append(out, q)
	}
	return strings.Join(out, "; ")
}

// refComposeByDataset transcribes the script's main loop for one data source:
// the questions in file order, the last len % n dropped, then consecutive
// batches of n. It reads the bundle's questions file itself (not the store).
func refComposeByDataset(t *testing.T, dataset string, n int) [][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(bundleDir, "unified", "questions.jsonl"))
	require.NoError(t, err)
	defer f.Close()
	var qs []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var row struct {
			Dataset  string `json:"dataset"`
			Question string `json:"question"`
		}
		require.NoError(t, json.Unmarshal(sc.Bytes(), &row))
		if row.Dataset == dataset {
			qs = append(qs, row.Question)
		}
	}
	require.NoError(t, sc.Err())
	qs = qs[:len(qs)-len(qs)%n]
	var batches [][]string
	for i := 0; i < len(qs); i += n {
		batches = append(batches, qs[i:i+n])
	}
	return batches
}

// Acceptance: composing the bundle with MEM1's training prompt gives, for every
// dataset and N, exactly the prompts make_prefix builds.
func TestReferencePromptEqualsMakePrefix(t *testing.T) {
	requireShared(t, referencePromptPath)
	requireShared(t, filepath.Join(bundleDir, "unified", "questions.jsonl"))
	raw, err := os.ReadFile(referencePromptPath)
	require.NoError(t, err)
	text := string(raw)
	// The file holds the f-string with its slot left as is and its closing "\n".
	require.Equal(t, 1, strings.Count(text, core.QuestionsSlot))
	head, tail, _ := strings.Cut(text, core.QuestionsSlot)
	require.Equal(t, "\n", tail)
	require.True(t, strings.HasSuffix(head, "Answer the following questions: "))

	tmpl, err := LoadTemplate(referencePromptPath)
	require.NoError(t, err)
	// The store path: a template imported once and picked by name renders the same.
	st := bundleStore(t)
	ctx := context.Background()
	stored, err := st.SaveTemplate(ctx, "mem1-train-test", text, referencePromptPath)
	require.NoError(t, err)
	assert.Equal(t, storage.TemplateHash(text), stored.SHA256)
	named, err := core.ParseTemplate(stored.Name, stored.Text)
	require.NoError(t, err)

	for _, dataset := range []string{"hotpotqa", "nq", "musique"} {
		qs, err := st.Questions(ctx, dataset, 0, 0)
		require.NoError(t, err)
		for _, n := range []int{1, 2, 3, 4, 8, 16} {
			want := refComposeByDataset(t, dataset, n)
			tasks := ComposeConsecutive(dataset, qs, n)
			require.Len(t, tasks, len(want), "%s n%d", dataset, n)
			for i, task := range tasks {
				expect := refMakePrefix(head, refProcessBatchJoin(want[i]))
				got := tmpl.RenderWith(task, core.DefaultTags())
				if got != expect {
					t.Fatalf("%s n%d task %d: rendered prompt differs from make_prefix\n got: %q\nwant: %q", dataset, n, i, got, expect)
				}
				require.Equal(t, expect, named.RenderWith(task, core.DefaultTags()))
			}
		}
	}
	// MEM1's rule over all HotpotQA files together: 1525 questions → 190 tasks of 8.
	hp, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	assert.Len(t, ComposeConsecutive("hotpotqa", hp, 8), 190)
}

func TestReferenceJoinKeepsWhitespace(t *testing.T) {
	// A bundle question with a trailing " ?" and one with a leading space show
	// the reference's join; core.JoinQuestions must agree on them.
	for _, qs := range [][]string{
		{"ends with space ? ", " leading space", "ok?"},
		{"ünïcode…", "tab\t"},
	} {
		assert.Equal(t, refProcessBatchJoin(qs), core.JoinQuestions(qs))
	}
	assert.Equal(t, "ends with space ? ?;  leading space?; ok?", core.JoinQuestions([]string{"ends with space ? ", " leading space", "ok?"}))
}
