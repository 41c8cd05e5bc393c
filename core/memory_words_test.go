package core

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var updateGolden = flag.Bool("update-golden", false, "rewrite core/testdata golden files")

// echoSub answers every generation sub-call with the same reply, embeds
// each text as a vector made from its length, and records every request.
type echoSub struct {
	reply string
	log   []string
}

func (e *echoSub) Generate(_ context.Context, c SubCall, prompt string) (SubCall, error) {
	e.log = append(e.log, fmt.Sprintf("generate %d/%d %s:\n%s", c.Turn, c.Seq, c.Role, prompt))
	c.Request, c.Response = prompt, e.reply
	return c, nil
}

func (e *echoSub) Embed(_ context.Context, c SubCall, texts []string) (SubCall, [][]float64, error) {
	out := make([][]float64, len(texts))
	for i, t := range texts {
		out[i] = []float64{float64(len(t) % 7), float64(len(t) % 5), 1}
	}
	b, _ := json.Marshal(texts)
	e.log = append(e.log, fmt.Sprintf("embed %d/%d: %s", c.Turn, c.Seq, b))
	c.Request = string(b)
	return c, out, nil
}

func (e *echoSub) Flag(_ context.Context, c SubCall, msg string) error {
	e.log = append(e.log, fmt.Sprintf("flag %d/%d: %s", c.Turn, c.Seq, msg))
	return nil
}

// TestMemoryPromptsQAPinned pins every sub-call request and actor context
// the memory policies produce on a QA rollout to a golden file written
// before the prompts learned WebShop's wording: QA's prompts did not change
// by a byte. Rewrite it with -update-golden only for a deliberate change.
func TestMemoryPromptsQAPinned(t *testing.T) {
	task := Task{Key: "k", Objectives: []Objective{{Question: "Who wrote Q one?", Gold: []string{"a"}}, {Question: "Where is Q two?", Gold: []string{"b"}}}}
	script := []string{"<think>s1</think>\n<search>x</search>", "<think>s2</think>\n<search>y</search>", "<think>s3</think>\n<answer>a; b</answer>"}
	env := envFunc(func(q string) []Passage { return []Passage{{ID: q, Title: "T " + q, Text: "doc about " + q}} })
	reply := `{"facts": ["fact from the step"], "keywords": ["k1"], "context": "ctx", "tags": ["t1"], "memory": [{"id": "0", "text": "fact from the step", "event": "ADD"}], "should_evolve": false, "actions": []}`
	var got strings.Builder
	for _, name := range []string{"summary:1", "resum", "memagent", "mem0", "mem0:add-only", "amem"} {
		pol, err := PolicyWith(name, MemoryOptions{})
		require.NoError(t, err)
		sub := &echoSub{reply: reply}
		model := &scriptModel{texts: append([]string(nil), script...)}
		_, err = (&Agent{Model: model, Env: env, Config: AgentConfig{Policy: pol}, Sub: sub}).Run(context.Background(), task, nil, nil)
		require.NoError(t, err, name)
		fmt.Fprintf(&got, "=== %s\n", name)
		for _, l := range sub.log {
			got.WriteString(l + "\n---\n")
		}
		for i, p := range model.prompts {
			fmt.Fprintf(&got, "actor %d:\n%s\n---\n", i, p)
		}
	}
	path := filepath.Join("testdata", "memory-prompts-qa.golden")
	if *updateGolden {
		require.NoError(t, os.WriteFile(path, []byte(got.String()), 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, string(want), got.String())
}
