package core

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestEstimateTokens(t *testing.T) {
	cases := []struct {
		in   string
		want int
	}{
		{"", 0},
		{"a", 1},
		{"abcd", 1},
		{"abcde", 2},
		{strings.Repeat("x", 400), 100},
		{"é", 1},
		{"日本語", 3},
		{"ab日本", 3},
		{"\xff\xfe", 2},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, EstimateTokens(c.in), "%q", c.in)
	}
	assert.Less(t, EstimateTokens("short"), EstimateTokens(strings.Repeat("a longer text ", 20)))
}
