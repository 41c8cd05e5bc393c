package experiments

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/internal/fixture"
)

func TestLaunchArgs(t *testing.T) {
	s := LaunchSpec{Engine: EngineVLLM, Model: "Mem-Lab/Qwen2.5-7B-RL-RAG-Q2-EM-Release", Port: 8014, MaxModelLen: 32768,
		GPUMemory: 0.9, ExtraArgs: `--served-model-name "mem1 7b" --dtype bfloat16`}
	args, err := s.Args()
	require.NoError(t, err)
	assert.Equal(t, []string{"vllm", "serve", "Mem-Lab/Qwen2.5-7B-RL-RAG-Q2-EM-Release", "--host", "127.0.0.1", "--port", "8014",
		"--max-model-len", "32768", "--gpu-memory-utilization", "0.9", "--served-model-name", "mem1 7b", "--dtype", "bfloat16"}, args)
	s.MaxModelLen, s.GPUMemory, s.ExtraArgs = 0, 0, ""
	args, err = s.Args()
	require.NoError(t, err)
	assert.Equal(t, []string{"vllm", "serve", "Mem-Lab/Qwen2.5-7B-RL-RAG-Q2-EM-Release", "--host", "127.0.0.1", "--port", "8014"}, args,
		"unset values drop their flags")
	s.Engine = EngineSGLang
	args, _ = s.Args()
	assert.Equal(t, []string{"python", "-m", "sglang.launch_server", "--model-path", "Mem-Lab/Qwen2.5-7B-RL-RAG-Q2-EM-Release",
		"--host", "127.0.0.1", "--port", "8014"}, args)
	err = LaunchSpec{Port: 0, GPUMemory: 2, ExtraArgs: `"open`}.Validate()
	require.Error(t, err)
	for _, want := range []string{"model: empty", "port: 0", "GPU memory utilisation: 2", "unclosed quote"} {
		assert.Contains(t, err.Error(), want)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestLocalServerWithFakeVLLM starts a fake `vllm` (a wrapper that serves the
// API with ../shared/llm/serve), streams its log, waits for /health, tests the
// connection, fetches its models, and stops it.
func TestLocalServerWithFakeVLLM(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		fixture.Missing(t, "node is not installed: the tiny model server needs it")
	}
	serve, err := filepath.Abs(filepath.Join("..", "..", "shared", "llm", "serve"))
	require.NoError(t, err)
	if _, err := os.Stat(serve); err != nil {
		fixture.Missing(t, "tiny model server not found at %s", serve)
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "vllm")
	// `vllm serve MODEL --port N …`: keep the port, serve the tiny model under any name.
	script := "#!/bin/sh\necho \"fake vllm: $*\"\nport=8000\nwhile [ $# -gt 0 ]; do\n  if [ \"$1\" = --port ]; then port=$2; fi\n  shift\ndone\n" +
		"ANY_MODEL=1 exec " + serve + " --port \"$port\"\n"
	require.NoError(t, os.WriteFile(fake, []byte(script), 0o755))

	port := freePort(t)
	var mu sync.Mutex
	var log []string
	spec := LaunchSpec{Engine: EngineVLLM, Command: fake + " serve {model} --port {port} --max-model-len {max_len} {extra}",
		Model: "mem1-tiny", Port: port, MaxModelLen: 512, ExtraArgs: "--enforce-eager"}
	s, err := StartLocalServer(spec, func(line string) {
		mu.Lock()
		log = append(log, line)
		mu.Unlock()
	})
	require.NoError(t, err)
	defer s.Stop(5 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	require.NoError(t, s.WaitHealthy(ctx))
	mu.Lock()
	assert.Contains(t, strings.Join(log, "\n"), "fake vllm: serve mem1-tiny --port")
	assert.Contains(t, strings.Join(log, "\n"), "--max-model-len 512 --enforce-eager")
	mu.Unlock()

	p := EndpointProfile{Name: "local", URL: s.URL, Model: "mem1-tiny", Mode: ModeCompletions, Concurrency: 1}
	models, err := FetchModels(ctx, p, nil)
	require.NoError(t, err)
	assert.NotEmpty(t, models)
	rep, err := TestConnection(ctx, p, nil)
	require.NoError(t, err)
	assert.Positive(t, rep.Latency)
	assert.LessOrEqual(t, rep.Usage.CompletionTokens, 1, "a one-token request")

	s.Stop(5 * time.Second)
	select {
	case <-s.Done():
	default:
		t.Fatal("the server is still running after Stop")
	}
	_, err = http.Get(s.URL + "/models")
	assert.Error(t, err, "nothing listens after Stop")
}

func TestLocalServerThatDiesReportsItsLog(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "vllm")
	require.NoError(t, os.WriteFile(fake, []byte("#!/bin/sh\necho 'CUDA out of memory' >&2\nexit 3\n"), 0o755))
	s, err := StartLocalServer(LaunchSpec{Command: fake + " {model}", Model: "m", Port: freePort(t)}, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = s.WaitHealthy(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "CUDA out of memory")
	assert.Contains(t, err.Error(), "exit status 3")
}

// TestProbeErrorsCarryTheServersText: a failing test connection shows the
// server's message and status; the API key is sent but never echoed.
func TestProbeErrorsCarryTheServersText(t *testing.T) {
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"error":{"message":"The model 'x' does not exist.","type":"NotFoundError","param":null,"code":404}}`))
	}))
	defer srv.Close()
	t.Setenv("MEM1LAB_TEST_KEY", "sk-secret-123")
	p := EndpointProfile{Name: "r", URL: srv.URL + "/v1", Model: "x", Mode: ModeChat, Concurrency: 1, APIKeyEnv: "MEM1LAB_TEST_KEY"}
	_, err := TestConnection(context.Background(), p, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "does not exist")
	assert.NotContains(t, err.Error(), "sk-secret-123")
	assert.Equal(t, "Bearer sk-secret-123", gotAuth)
	_, err = FetchModels(context.Background(), p, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "HTTP 404")
	assert.Contains(t, err.Error(), "does not exist")

	ok := httptest.NewServer(oracle.New(nil))
	defer ok.Close()
	models, err := FetchModels(context.Background(), EndpointProfile{URL: ok.URL}, nil)
	require.NoError(t, err)
	assert.Equal(t, []string{oracle.ModelName}, models)
}

// TestAPIKeyNeverStored: a run with a key in the environment stores the name of
// the variable, never the key, in the experiment, its rollouts and turns.
func TestAPIKeyNeverStored(t *testing.T) {
	st := bundleStore(t)
	ctx := context.Background()
	qs, err := st.Questions(ctx, "hotpotqa", 0, 0)
	require.NoError(t, err)
	var sawKey bool
	ag := oracle.New(qs)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer sk-never-store-me" {
			sawKey = true
		}
		ag.ServeHTTP(w, r)
	}))
	defer srv.Close()
	t.Setenv("MEM1LAB_SECRET", "sk-never-store-me")
	cfg := DefaultRunConfig()
	cfg.Tasks, cfg.Objectives = 2, 1
	cfg.Endpoints = []EndpointProfile{{Name: "e", URL: srv.URL + "/v1", Model: oracle.ModelName, Mode: ModeChat, Concurrency: 1, APIKeyEnv: "MEM1LAB_SECRET"}}
	sum, err := (&Runner{Store: st, Env: st}).Run(ctx, cfg, nil)
	require.NoError(t, err)
	assert.True(t, sawKey, "the key was sent")
	raw, err := os.ReadFile(st.Path())
	require.NoError(t, err)
	wal, _ := os.ReadFile(st.Path() + "-wal")
	assert.NotContains(t, string(raw)+string(wal), "sk-never-store-me")
	e, err := st.Experiment(ctx, sum.Experiment)
	require.NoError(t, err)
	assert.Contains(t, e.ConfigJSON, "MEM1LAB_SECRET")
	b, err := cfg.CanonicalTOML()
	require.NoError(t, err)
	assert.NotContains(t, string(b), "sk-never-store-me")
}
