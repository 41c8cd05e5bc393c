package app

import (
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
)

// memoryFlags binds the [memory] table's keys (experiments.MemoryConfig) to
// flags; the table is created only when one of them is given, so runs without
// them keep their config hash.
func memoryFlags(fs *flag.FlagSet, cfg *experiments.RunConfig) {
	str := func(name, usage string, field func(*experiments.MemoryConfig) *string) {
		fs.Var(memoryFlag{cfg: cfg, get: func(m *experiments.MemoryConfig) string { return *field(m) },
			set: func(m *experiments.MemoryConfig, s string) error { *field(m) = s; return nil }}, name, usage)
	}
	num := func(name, usage string, field func(*experiments.MemoryConfig) *int) {
		fs.Var(memoryFlag{cfg: cfg, get: func(m *experiments.MemoryConfig) string { return strconv.Itoa(*field(m)) },
			set: func(m *experiments.MemoryConfig, s string) error {
				n, err := strconv.Atoi(s)
				if err != nil {
					return fmt.Errorf("%q is not a whole number", s)
				}
				*field(m) = n
				return nil
			}}, name, usage)
	}
	str("memory-url", "memory policies: base URL of the endpoint for sub-calls (default: the agent's own)", func(m *experiments.MemoryConfig) *string { return &m.URL })
	str("memory-model", "memory policies: model name of --memory-url", func(m *experiments.MemoryConfig) *string { return &m.Model })
	str("memory-mode", "memory policies: chat (default) or completions for --memory-url", func(m *experiments.MemoryConfig) *string { return &m.Mode })
	str("memory-api-key-env", "memory policies: environment variable holding --memory-url's key", func(m *experiments.MemoryConfig) *string { return &m.APIKeyEnv })
	str("embeddings-url", "memory policies: base URL of the /v1/embeddings endpoint (default: the memory endpoint)", func(m *experiments.MemoryConfig) *string { return &m.EmbeddingsURL })
	str("embeddings-model", "memory policies: embeddings model name", func(m *experiments.MemoryConfig) *string { return &m.EmbeddingsModel })
	num("memory-k", "amem, mem0: memories in the actor's context (0 = 3)", func(m *experiments.MemoryConfig) *int { return &m.K })
	num("memory-similar", "mem0: stored facts compared with each new fact (0 = 5)", func(m *experiments.MemoryConfig) *int { return &m.Similar })
	num("summary-tokens", "summary:K, resum: context budget before folding (0 = fold at once)", func(m *experiments.MemoryConfig) *int { return &m.SummaryTokens })
	num("summary-every", "summary:K, resum: fold every M turns instead of by budget (0 = off)", func(m *experiments.MemoryConfig) *int { return &m.SummaryEvery })
	num("memory-tokens", "memagent: bound of the memory in tokens (0 = 1024)", func(m *experiments.MemoryConfig) *int { return &m.MemoryTokens })
	fs.Var(memoryFlag{cfg: cfg, get: func(m *experiments.MemoryConfig) string { return strconv.FormatBool(m.Evolve == nil || *m.Evolve) },
		set: func(m *experiments.MemoryConfig, s string) error {
			b, err := strconv.ParseBool(s)
			if err != nil {
				return fmt.Errorf("%q: want true or false", s)
			}
			m.Evolve = &b
			return nil
		}}, "memory-evolve", "amem: memory evolution on (true) or off (false)")
}

type memoryFlag struct {
	cfg *experiments.RunConfig
	get func(*experiments.MemoryConfig) string
	set func(*experiments.MemoryConfig, string) error
}

func (f memoryFlag) String() string {
	if f.cfg == nil || f.cfg.Memory == nil {
		return ""
	}
	return f.get(f.cfg.Memory)
}

func (f memoryFlag) Set(s string) error {
	m := experiments.MemoryConfig{}
	if f.cfg.Memory != nil {
		m = *f.cfg.Memory
	}
	if err := f.set(&m, s); err != nil {
		return err
	}
	f.cfg.Memory = &m
	return nil
}

// writeMemory prints a memory policy's turn for `mem1lab show`: one line per
// sub-call (role, endpoint, tokens, latency, error) and the memory payload.
func writeMemory(w io.Writer, t core.Turn) {
	for _, c := range t.SubCalls {
		line := fmt.Sprintf("  sub-call %d  %s  %s  %d tokens  %s", c.Seq+1, c.Role, c.Endpoint, c.Tokens(), c.Latency.Round(time.Millisecond))
		if c.Error != "" {
			line += "  error: " + c.Error
		}
		fmt.Fprintln(w, line)
	}
	section(w, "memory", t.Memory)
}
