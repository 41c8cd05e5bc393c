package storage

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/mem1lab/mem1lab/core"
)

// BenchmarkApplyWritesTurns: the group commit's cost per turn (µs/turn), for
// batches of 16 turns of MEM1-sized text (a 2 KB prompt carried in every
// context, a 300-byte response, three 500-byte passages and their
// information block, the raw reply), spread over 256 rollouts in play.
func BenchmarkApplyWritesTurns(b *testing.B) {
	s := newStore(b)
	ctx := context.Background()
	const rollouts, batch = 256, 16
	ids := make([]int64, rollouts)
	for i := range ids {
		ids[i] = newRollout(b, s, "mem1")
		if _, err := s.ClaimRollout(ctx, ids[i], "ep"); err != nil {
			b.Fatal(err)
		}
	}
	prompt := strings.Repeat("Answer the questions step by step and search when needed. ", 35)
	passage := strings.Repeat("word ", 100)
	passages := []core.Passage{{ID: "a", Title: "A", Text: passage}, {ID: "b", Title: "B", Text: passage}, {ID: "c", Title: "C", Text: passage}}
	info := core.DefaultTags().InformationBlock(core.RenderPassages(passages))
	next := make([]int, rollouts)
	b.ResetTimer()
	n := 0
	for b.Loop() {
		ws := make([]Write, batch)
		for k := range ws {
			r := n % rollouts
			n++
			resp := fmt.Sprintf("<think>turn %d of rollout %d: %s</think>\n<search>query %d</search>", next[r], r, strings.Repeat("x", 200), n)
			t := core.Turn{Index: next[r], Context: prompt + resp + info, Response: resp, InternalState: "turn", Action: core.ActionSearch,
				Query: fmt.Sprintf("query %d", n), Information: info, Passages: passages, PromptTokens: 900, CompletionTokens: 80,
				UsageReported: true, RawResponse: `{"choices":[{"text":"` + resp + `"}]}`}
			next[r]++
			ws[k] = Write{RolloutID: ids[r], Turn: &t}
		}
		for _, o := range s.ApplyWrites(ctx, ws) {
			if o.Err != nil {
				b.Fatal(o.Err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(n), "µs/turn")
}
