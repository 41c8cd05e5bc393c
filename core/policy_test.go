package core

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func exchanges(n int) []Exchange {
	out := make([]Exchange, n)
	for i := range out {
		out[i] = Exchange{Response: "r" + string(rune('0'+i)), Information: "i" + string(rune('0'+i))}
	}
	return out
}

func TestPolicies(t *testing.T) {
	h := exchanges(5)
	cases := []struct {
		name string
		in   []Exchange
		want []Exchange
	}{
		{"mem1", h, h[4:]},
		{"mem1", nil, nil},
		{"mem1", h[:1], h[:1]},
		{"full", h, h},
		{"full", nil, nil},
		{"window:2", h, h[3:]},
		{"window:2", h[:1], h[:1]},
		{"window:5", h, h},
		{"window:9", h, h},
		{"window:1", h, h[4:]},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := PolicyByName(c.name)
			require.NoError(t, err)
			assert.Equal(t, c.name, p.Name())
			got := p.Keep(c.in)
			assert.Len(t, got, len(c.want))
			if len(c.want) > 0 {
				assert.Equal(t, c.want, got)
			}
		})
	}
}

func TestPolicyKeepDoesNotAlias(t *testing.T) {
	h := exchanges(3)
	p, err := PolicyByName("full")
	require.NoError(t, err)
	got := p.Keep(h)
	got[0].Response = "changed"
	assert.Equal(t, "r0", h[0].Response)
}

func TestPolicyByNameErrors(t *testing.T) {
	for _, name := range []string{"", "MEM1", "window", "window:", "window:0", "window:-1", "window:x", "window:K", "sliding"} {
		t.Run(name, func(t *testing.T) {
			_, err := PolicyByName(name)
			assert.Error(t, err)
		})
	}
}

func TestPolicyNames(t *testing.T) {
	names := PolicyNames()
	assert.Contains(t, names, "mem1")
	assert.Contains(t, names, "full")
	for _, n := range names {
		if n == "window:K" {
			continue
		}
		_, err := PolicyByName(n)
		assert.NoError(t, err, n)
	}
}
