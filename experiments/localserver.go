package experiments

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Local inference engines the Endpoints screen can start.
const (
	EngineVLLM   = "vllm"
	EngineSGLang = "sglang"
)

// DefaultLaunchCommand is the command template of an engine. Placeholders:
// {model}, {port}, {max_len}, {gpu_util}, {extra}.
func DefaultLaunchCommand(engine string) string {
	if engine == EngineSGLang {
		return "python -m sglang.launch_server --model-path {model} --host 127.0.0.1 --port {port} --context-length {max_len} --mem-fraction-static {gpu_util} {extra}"
	}
	return "vllm serve {model} --host 127.0.0.1 --port {port} --max-model-len {max_len} --gpu-memory-utilization {gpu_util} {extra}"
}

// LaunchSpec is a local inference server to start.
type LaunchSpec struct {
	Engine      string   `toml:"engine" json:"engine"`
	Command     string   `toml:"command" json:"command"` // template; "" = DefaultLaunchCommand(Engine)
	Model       string   `toml:"model" json:"model"`
	Port        int      `toml:"port" json:"port"`
	MaxModelLen int      `toml:"max_model_len" json:"max_model_len"`
	GPUMemory   float64  `toml:"gpu_memory_utilization" json:"gpu_memory_utilization"` // 0..1
	ExtraArgs   string   `toml:"extra_args" json:"extra_args"`
	Env         []string `toml:"-" json:"-"` // extra environment, KEY=VALUE
}

// Validate reports every bad field.
func (s LaunchSpec) Validate() error {
	var errs []error
	if strings.TrimSpace(s.Model) == "" {
		errs = append(errs, errors.New("model: empty (a Hugging Face id or a local path)"))
	}
	if s.Port < 1 || s.Port > 65535 {
		errs = append(errs, fmt.Errorf("port: %d: want 1..65535", s.Port))
	}
	if s.MaxModelLen < 0 {
		errs = append(errs, fmt.Errorf("max model length: %d: want ≥ 0", s.MaxModelLen))
	}
	if s.GPUMemory < 0 || s.GPUMemory > 1 {
		errs = append(errs, fmt.Errorf("GPU memory utilisation: %g: want 0..1", s.GPUMemory))
	}
	if _, err := s.Args(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Args expands the command template into the program and its arguments.
// Words are split on spaces; single or double quotes keep spaces inside a word.
func (s LaunchSpec) Args() ([]string, error) {
	tmpl := s.Command
	if strings.TrimSpace(tmpl) == "" {
		tmpl = DefaultLaunchCommand(s.Engine)
	}
	maxLen, gpu := "", ""
	if s.MaxModelLen > 0 {
		maxLen = strconv.Itoa(s.MaxModelLen)
	}
	if s.GPUMemory > 0 {
		gpu = strconv.FormatFloat(s.GPUMemory, 'g', -1, 64)
	}
	words, err := splitWords(tmpl)
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	extra, err := splitWords(s.ExtraArgs)
	if err != nil {
		return nil, fmt.Errorf("extra args: %w", err)
	}
	var out []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "{extra}" {
			out = append(out, extra...)
			continue
		}
		v := strings.NewReplacer("{model}", s.Model, "{port}", strconv.Itoa(s.Port), "{max_len}", maxLen, "{gpu_util}", gpu).Replace(w)
		if v == "" && w != "" {
			// An unset value: drop the flag before it too ("--max-model-len {max_len}").
			if len(out) > 0 && strings.HasPrefix(out[len(out)-1], "--") {
				out = out[:len(out)-1]
			}
			continue
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New("command: empty")
	}
	return out, nil
}

func splitWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	var quote rune
	inWord := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unclosed quote in %q", s)
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

// LocalServer is a running local inference server.
type LocalServer struct {
	Spec LaunchSpec
	URL  string // base URL, http://127.0.0.1:PORT/v1

	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
	mu      sync.Mutex
	tail    []string // last log lines
}

// StartLocalServer starts the server described by spec, streaming each line
// of its output to logf (may be nil; called from another goroutine). The
// process runs in its own process group so Stop ends its workers too.
func StartLocalServer(spec LaunchSpec, logf func(string)) (*LocalServer, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	args, _ := spec.Args()
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(cmd.Environ(), spec.Env...)
	setProcessGroup(cmd)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", args[0], err)
	}
	s := &LocalServer{Spec: spec, URL: fmt.Sprintf("http://127.0.0.1:%d/v1", spec.Port), cmd: cmd, done: make(chan struct{})}
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.tail = append(s.tail, line)
			if len(s.tail) > 50 {
				s.tail = s.tail[len(s.tail)-50:]
			}
			s.mu.Unlock()
			if logf != nil {
				logf(line)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		err := cmd.Wait()
		_ = pw.Close()
		<-logDone
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(s.done)
	}()
	return s, nil
}

// Done is closed when the process has exited.
func (s *LocalServer) Done() <-chan struct{} { return s.done }

// Tail returns the last lines the server logged.
func (s *LocalServer) Tail() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tail...)
}

// WaitHealthy polls GET /health (then /v1/models) every 250 ms until it answers
// 200, the process exits (an error with its last log lines) or ctx ends.
func (s *LocalServer) WaitHealthy(ctx context.Context) error {
	root := strings.TrimSuffix(s.URL, "/v1")
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		for _, path := range []string{"/health", "/v1/models"} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, root+path, nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return nil
				}
				if path == "/health" && resp.StatusCode != http.StatusNotFound {
					break // loading: /health exists but is not ready
				}
			}
		}
		select {
		case <-s.done:
			s.mu.Lock()
			err := s.waitErr
			s.mu.Unlock()
			return fmt.Errorf("the server exited before it was healthy (%v): %s", err, strings.Join(s.Tail(), "\n"))
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s/health: %w", root, ctx.Err())
		case <-t.C:
		}
	}
}

// Stop ends the server: SIGTERM to its process group, then SIGKILL after
// grace. It returns when the process has exited.
func (s *LocalServer) Stop(grace time.Duration) {
	select {
	case <-s.done:
		return
	default:
	}
	terminate(s.cmd)
	select {
	case <-s.done:
	case <-time.After(grace):
		kill(s.cmd)
		<-s.done
	}
}
