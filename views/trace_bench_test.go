package views

import (
	"fmt"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/storage"
)

// benchRollout20 is a 20-turn rollout whose internal state grows and changes a
// little every turn, as MEM1's consolidated states do.
func benchRollout20() storage.RolloutDetail {
	d := finishedRollout()
	d.ID = 99
	base := sampleTurns()
	d.Turns = nil
	state := "facts so far:"
	for i := 0; i < 20; i++ {
		t := base[i%2]
		t.Index = i
		state = strings.Replace(state, fmt.Sprintf("searching %d", i-1), "", 1) + fmt.Sprintf(" fact %d: value %d; searching %d", i, i*7, i)
		t.InternalState = state
		t.Context = strings.Repeat(t.Context, 1+i%3)
		if i == 19 {
			t.Action, t.Answer, t.Passages, t.Information = core.ActionAnswer, "a; b", nil, ""
		}
		d.Turns = append(d.Turns, t)
	}
	return d
}

// BenchmarkTraceStepTurn: rendering one turn of a 20-turn rollout in Trace (word
// diff, passages with gold marks, facts carried, context, token strip marker).
func BenchmarkTraceStepTurn(b *testing.B) {
	test.NewTempApp(b)
	st := newFakeStore()
	d := benchRollout20()
	st.details[d.ID] = d
	u := NewUI(Deps{Store: st})
	u.wait()
	u.trace.open(d.ID, nil)
	u.wait()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		u.trace.turn = i % 20
		u.trace.show()
		i++
	}
}

// BenchmarkTraceOpen20: Trace opening a 20-turn rollout from a store that answers
// at once (the view's own cost; the store's is storage.BenchmarkOpenRollout20).
func BenchmarkTraceOpen20(b *testing.B) {
	test.NewTempApp(b)
	st := newFakeStore()
	d := benchRollout20()
	st.details[d.ID] = d
	u := NewUI(Deps{Store: st})
	u.wait()
	b.ResetTimer()
	for b.Loop() {
		u.trace.open(d.ID, nil)
		u.wait()
	}
}
