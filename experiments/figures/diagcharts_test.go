package figures

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments/memdiag"
)

func TestDiagnosticCharts(t *testing.T) {
	dd := DiagnosticData{
		Retention: []RetentionSeries{{Label: "mem1", Points: []memdiag.CurvePoint{{K: 1, N: 4, Share: 0.75}, {K: 2, N: 2, Share: 0.5}}}},
		Positions: []PositionSeries{{Label: "mem1, n=2", Points: []memdiag.PositionAccuracy{
			{Objectives: 2, Position: 1, N: 3, EM: 1}, {Objectives: 2, Position: 2, N: 3, EM: 1.0 / 3, StdErr: 1.0 / 3}}}},
		Composition: []CompositionSeries{
			{Label: "full, n=2", Turns: []CompositionTurn{{Turn: 1, N: 2, Total: 100, Parts: map[string]float64{"prompt": 100}},
				{Turn: 2, N: 2, Total: 300, Parts: map[string]float64{"prompt": 100, "state": 50, "information": 150}}}},
			{Label: "mem1, n=2", Turns: []CompositionTurn{{Turn: 1, N: 2, Total: 100, Parts: map[string]float64{"prompt": 100}}}},
		},
	}
	f, err := BuildDiagnostic(dd, Options{Kind: Composition})
	require.NoError(t, err)
	assert.Equal(t, []string{"prompt", "state", "information"}, f.Labels, "parts with tokens, in context order")
	assert.Contains(t, f.Plot.Title.Text, "full, n=2")
	assert.InDelta(t, 300*1.12, f.Plot.Y.Max, 1e-9, "room above the peak of 300 at turn 2")
	f, err = BuildDiagnostic(dd, Options{Kind: Composition, Series: "mem1, n=2"})
	require.NoError(t, err)
	assert.Contains(t, f.Plot.Title.Text, "mem1, n=2")
	assert.Equal(t, 1, f.Points)

	f, err = BuildDiagnostic(dd, Options{Kind: Retention})
	require.NoError(t, err)
	assert.Equal(t, []string{"mem1"}, f.Labels)
	assert.Equal(t, 2, f.Points)

	f, err = BuildDiagnostic(dd, Options{Kind: Positions})
	require.NoError(t, err)
	assert.Equal(t, 2, f.Points)
	assert.Contains(t, f.Caption, "95% CI")

	f, err = BuildDiagnostic(DiagnosticData{}, Options{Kind: Composition})
	require.NoError(t, err)
	assert.Contains(t, f.Plot.Title.Text, "no finished rollouts")
	_, err = BuildDiagnostic(dd, Options{Kind: Accuracy})
	assert.ErrorIs(t, err, ErrUnknownKind)
	k, err := ParseKind("retention")
	require.NoError(t, err)
	assert.True(t, IsDiagnostic(k))
}
