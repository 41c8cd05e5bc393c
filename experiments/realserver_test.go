package experiments

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/internal/fixture"
	"github.com/mem1lab/mem1lab/storage"
)

var listenRE = regexp.MustCompile(`listening on (http://[0-9.:\[\]a-z]+)`)

// startTinyServer starts ../shared/llm/serve on a free port and returns its base
// URL and a stop function that SIGTERMs it and waits for it (and the stderr
// drain) to end. It skips the test when node is not installed.
func startTinyServer(t *testing.T, ctxLen string, env ...string) (string, func()) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		fixture.Missing(t, "node is not installed: the tiny model server needs it")
	}
	serve := filepath.Join("..", "..", "shared", "llm", "serve")
	if _, err := os.Stat(serve); err != nil {
		fixture.Missing(t, "tiny model server not found at %s", serve)
	}
	cmd := exec.Command(serve, "--port", "0", "--ctx", ctxLen)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	urlCh := make(chan string, 1)
	drained := make(chan struct{})
	var logTail []string
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if len(logTail) < 50 {
				logTail = append(logTail, line)
			}
			if m := listenRE.FindStringSubmatch(line); m != nil && !sent {
				urlCh <- m[1]
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		<-drained
	}
	var base string
	select {
	case base = <-urlCh:
	case <-drained:
		stop()
		t.Fatalf("tiny model server exited before listening: %v", logTail)
	case <-time.After(90 * time.Second):
		stop()
		t.Fatalf("tiny model server did not start: %v", logTail)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(base + "/health")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("tiny model server never healthy: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	client.CloseIdleConnections()
	return base, stop
}

func servedModel(t *testing.T, base string) string {
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get(base + "/v1/models")
	require.NoError(t, err)
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&list))
	require.NotEmpty(t, list.Data)
	return list.Data[0].ID
}

// TestTinyModelServer runs real (story-telling) model output through the whole
// pipeline: every turn is stored, malformed output scores 0, rollouts end done,
// and serving errors end rollouts as failed with the server's message.
func TestTinyModelServer(t *testing.T) {
	st := bundleStore(t) // opened before the leak baseline: the shared store lives on
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	began := time.Now()
	base, stop := startTinyServer(t, "4096")
	t.Logf("server healthy after %s", time.Since(began).Round(time.Millisecond))
	defer stop()
	model := servedModel(t, base)
	ctx := context.Background()
	// A short prompt template: the tiny model's prefill of MEM1's long built-in
	// prompt takes seconds on one thread, and this test is about the plumbing.
	tmpl := filepath.Join(t.TempDir(), "short.txt")
	require.NoError(t, os.WriteFile(tmpl, []byte("Answer with <{think}>, then <{search}> or <{answer}>. Questions: {questions}\n"), 0o644))

	for _, mode := range []string{ModeCompletions, ModeChat} {
		cfg := DefaultRunConfig()
		cfg.Endpoint, cfg.Model, cfg.Mode = base+"/v1", model, mode
		cfg.Objectives, cfg.Tasks, cfg.MaxTokens, cfg.Concurrency = 2, 8, 48, 2
		cfg.Temperature = 0
		cfg.TimeoutSeconds = 60
		cfg.Template = tmpl
		began := time.Now()
		sum, err := (&Runner{Store: st, Env: st}).Run(ctx, cfg, nil)
		require.NoError(t, err, mode)
		t.Logf("%s: 8 rollouts in %s", mode, time.Since(began).Round(time.Millisecond))
		require.Len(t, sum.Groups, 1)
		assert.Equal(t, 8, sum.Groups[0].Rollouts)
		assert.Equal(t, 0, sum.Groups[0].Failed)
		assert.Equal(t, 0.0, sum.Groups[0].MeanEM)
		rows, err := st.Rollouts(ctx, sum.Experiment)
		require.NoError(t, err)
		require.Len(t, rows, 8)
		for _, row := range rows {
			assert.Equal(t, storage.StatusDone, row.Status, row.Error)
			d, err := st.Rollout(ctx, row.ID)
			require.NoError(t, err)
			require.NotEmpty(t, d.Turns)
			assert.Contains(t, d.Turns[0].Context, "Questions: "+core.JoinQuestions([]string{d.Task.Objectives[0].Question}))
			assert.Equal(t, row.Turns, len(d.Turns))
			for i, tu := range d.Turns {
				assert.Equal(t, i, tu.Index)
				assert.NotEmpty(t, tu.Response, "the model wrote something")
				assert.True(t, tu.UsageReported)
				assert.Positive(t, tu.PromptTokens)
				assert.Positive(t, tu.CompletionTokens)
				assert.LessOrEqual(t, tu.CompletionTokens, 48)
			}
			assert.Equal(t, 0.0, d.Score.EM)
			assert.Equal(t, 0.0, d.Score.F1)
			assert.Equal(t, 0.0, row.EM)
			assert.Positive(t, row.PeakTokens)
		}
	}

	// context_length_exceeded: prompt + max_tokens over the server's context.
	cfg := DefaultRunConfig()
	cfg.Endpoint, cfg.Model, cfg.Mode = base+"/v1", model, ModeCompletions
	cfg.Objectives, cfg.Tasks, cfg.MaxTokens, cfg.Concurrency = 2, 2, 8000, 2
	sum, err := (&Runner{Store: st, Env: st}).Run(ctx, cfg, nil)
	require.NoError(t, err, "failed rollouts do not fail the run")
	assertAllFailed(t, st, sum, "context_length_exceeded", "400")

	// A closed port.
	cfg.Endpoint, cfg.MaxTokens = "http://"+closedAddr(t)+"/v1", 16
	sum, err = (&Runner{Store: st, Env: st}).Run(ctx, cfg, nil)
	require.NoError(t, err)
	assertAllFailed(t, st, sum, "connection refused")
}

func assertAllFailed(t *testing.T, st *storage.Store, sum Summary, wants ...string) {
	t.Helper()
	ctx := context.Background()
	exp, err := st.Experiment(ctx, sum.Experiment)
	require.NoError(t, err)
	assert.Equal(t, storage.StatusFailed, exp.Status, "every rollout failed")
	rows, err := st.Rollouts(ctx, sum.Experiment)
	require.NoError(t, err)
	require.NotEmpty(t, rows)
	for _, row := range rows {
		assert.Equal(t, storage.StatusFailed, row.Status)
		for _, w := range wants {
			assert.Contains(t, row.Error, w)
		}
	}
	require.Len(t, sum.Groups, 1)
	assert.Equal(t, len(rows), sum.Groups[0].Failed)
}

// TestTinyModelServerInjectedFailures: FAIL_RATE=1 answers every generation with
// a 500; the experiment still finishes with the server's message recorded.
func TestTinyModelServerInjectedFailures(t *testing.T) {
	st := bundleStore(t)
	base, stop := startTinyServer(t, "512", "FAIL_RATE=1")
	defer stop()
	cfg := DefaultRunConfig()
	cfg.Endpoint, cfg.Model, cfg.Mode = base+"/v1", servedModel(t, base), ModeChat
	cfg.Tasks, cfg.MaxTokens = 3, 16
	sum, err := (&Runner{Store: st, Env: st}).Run(context.Background(), cfg, nil)
	require.NoError(t, err)
	assertAllFailed(t, st, sum, "500")
	rows, _ := st.Rollouts(context.Background(), sum.Experiment)
	for _, row := range rows {
		assert.True(t, strings.Contains(row.Error, "injected") || strings.Contains(row.Error, "fail"), row.Error)
	}
}

// TestRunCancel: cancelling mid-run ends in-flight rollouts as cancelled, keeps
// unlaunched ones queued, stores the turns already made and leaves no goroutine.
func TestRunCancel(t *testing.T) {
	st := bundleStore(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := &blockingModel{started: make(chan struct{}, 16)}
	cfg := DefaultRunConfig()
	cfg.Tasks, cfg.Concurrency = 6, 2
	r := &Runner{Store: st, Env: st, NewModel: func(RunConfig) (core.Model, error) { return m, nil }}
	go func() {
		<-m.started
		<-m.started
		cancel()
	}()
	sum, err := r.Run(ctx, cfg, nil)
	require.ErrorIs(t, err, context.Canceled)
	exp, err := st.Experiment(context.Background(), sum.Experiment)
	require.NoError(t, err)
	assert.Equal(t, storage.StatusCancelled, exp.Status)
	rows, err := st.Rollouts(context.Background(), sum.Experiment)
	require.NoError(t, err)
	counts := map[string]int{}
	for _, row := range rows {
		counts[row.Status]++
		if row.Status == storage.StatusCancelled {
			assert.Contains(t, row.Error, "context canceled")
		}
	}
	assert.Equal(t, 2, counts[storage.StatusCancelled], counts)
	assert.Equal(t, 4, counts[storage.StatusQueued], counts)
}

// blockingModel answers nothing until its context ends.
type blockingModel struct{ started chan struct{} }

func (m *blockingModel) Complete(ctx context.Context, c core.Context, stops []string) (core.Completion, error) {
	m.started <- struct{}{}
	<-ctx.Done()
	return core.Completion{}, errors.Join(errors.New("model call ended"), ctx.Err())
}
