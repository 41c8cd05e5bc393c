package app

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRunWithRetrieveServer starts `mem1lab retrieve-server` over the bundle
// corpus and runs an experiment with `--retriever URL` against it: the turns
// store that server's passages (issue 8, acceptance 4).
func TestRunWithRetrieveServer(t *testing.T) {
	corpus := filepath.Join(filepath.Dir(rawDir), "unified", "corpus.jsonl")
	needRaw(t, filepath.Join("..", "unified", "corpus.jsonl"))
	db, url := oracleEndpoint(t)

	ctx, cancel := context.WithCancel(context.Background())
	var logs syncBuffer
	srvDone := make(chan error, 1)
	go func() {
		c := &CLI{Stdout: &logs, Stderr: &logs}
		srvDone <- c.cmdRetrieveServer(ctx, []string{"--corpus", corpus, "--addr", "127.0.0.1:0"})
	}()
	defer func() {
		cancel()
		assert.NoError(t, <-srvDone)
	}()
	listening := regexp.MustCompile(`listening on (http://\S+/retrieve)`)
	var retrieveURL string
	require.Eventually(t, func() bool {
		if m := listening.FindStringSubmatch(logs.String()); m != nil {
			retrieveURL = m[1]
			return true
		}
		return false
	}, 2*time.Minute, 10*time.Millisecond, "server never listened: %s", logs.String())

	code, out, errOut := run(t, "run", "--db", db, "--endpoint", url, "--model", oracle.ModelName,
		"--dataset", "hotpotqa", "--objectives", "2", "--tasks", "2", "--retriever", retrieveURL, "--json", "--quiet")
	require.Equal(t, 0, code, errOut)
	var sum experiments.Summary
	require.NoError(t, json.Unmarshal([]byte(out), &sum))

	st, err := storage.Open(db)
	require.NoError(t, err)
	defer st.Close()
	e, err := st.Experiment(context.Background(), sum.Experiment)
	require.NoError(t, err)
	assert.Contains(t, e.ConfigJSON, `"retriever":{"kind":"http","url":"`+retrieveURL+`"}`)
	rows, err := st.Rollouts(context.Background(), sum.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	direct := &experiments.HTTPRetriever{URL: retrieveURL}
	searches := 0
	for _, row := range rows {
		turns, err := st.Turns(context.Background(), row.ID)
		require.NoError(t, err)
		for _, tu := range turns {
			if tu.Action != core.ActionSearch || tu.Information == "" {
				continue
			}
			searches++
			want, err := direct.Search(context.Background(), tu.Query, 3)
			require.NoError(t, err)
			assert.Equal(t, want, tu.Passages, "query %q", tu.Query)
		}
	}
	assert.Positive(t, searches)

	code, _, errOut = run(t, "run", "--db", db, "--endpoint", url, "--retriever", "ftp://nowhere")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "retriever URL")
}
