package views

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/zalando/go-keyring"

	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/internal/fixture"
	"github.com/mem1lab/mem1lab/storage"
)

// ctlStore is the fake store plus endpoint profiles and hash lookup, with
// Questions reading "limit ≤ 0" as all (as the real store does).
type ctlStore struct {
	*fakeStore
	pmu      sync.Mutex
	profiles map[string]string
	hashes   map[string][]int64
}

func newCtlStore() *ctlStore {
	return &ctlStore{fakeStore: newFakeStore(), profiles: map[string]string{}, hashes: map[string][]int64{}}
}

func (s *ctlStore) Questions(ctx context.Context, dataset string, offset, limit int) ([]storage.Question, error) {
	if limit <= 0 {
		limit = 1 << 30
	}
	return s.fakeStore.Questions(ctx, dataset, offset, limit)
}

func (s *ctlStore) Experiment(_ context.Context, id int64) (storage.ExperimentRow, error) {
	s.fakeStore.mu.Lock()
	defer s.fakeStore.mu.Unlock()
	for _, e := range s.exps {
		if e.ID == id {
			return e, nil
		}
	}
	return storage.ExperimentRow{}, fmt.Errorf("experiment %d: %w", id, storage.ErrNotFound)
}

func (s *ctlStore) EndpointProfiles(context.Context) (map[string]string, error) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	out := map[string]string{}
	for k, v := range s.profiles {
		out[k] = v
	}
	return out, nil
}

func (s *ctlStore) SaveEndpointProfile(_ context.Context, name, j string) error {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	s.profiles[name] = j
	return nil
}

func (s *ctlStore) DeleteEndpointProfile(_ context.Context, name string) error {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	delete(s.profiles, name)
	return nil
}

func (s *ctlStore) ExperimentsByHash(_ context.Context, h string) ([]int64, error) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return s.hashes[h], nil
}

// ctlRunner is a fake runner with run control: Run reports each step and waits
// for the test; Control records actions, and "cancel" ends the run.
type ctlRunner struct {
	steps    []experiments.Progress
	started  chan experiments.RunConfig
	resumed  chan int64
	stepped  chan experiments.Progress
	proceed  chan struct{}
	mu       sync.Mutex
	actions  []string
	cancelCh chan struct{}
	orphans  map[int64]bool // experiments whose owner process is gone
}

func newCtlRunner(steps []experiments.Progress) *ctlRunner {
	return &ctlRunner{steps: steps, started: make(chan experiments.RunConfig, 1), resumed: make(chan int64, 1),
		stepped: make(chan experiments.Progress), proceed: make(chan struct{}), cancelCh: make(chan struct{})}
}

func (r *ctlRunner) play(ctx context.Context, progress func(experiments.Progress)) (experiments.Summary, error) {
	for _, p := range r.steps {
		progress(p)
		r.stepped <- p
		<-r.proceed
	}
	select {
	case <-ctx.Done():
		return experiments.Summary{Experiment: 1}, ctx.Err()
	case <-r.cancelCh:
		return experiments.Summary{Experiment: 1}, experiments.ErrCancelRequested
	}
}

func (r *ctlRunner) Run(ctx context.Context, cfg experiments.RunConfig, progress func(experiments.Progress)) (experiments.Summary, error) {
	r.started <- cfg
	return r.play(ctx, progress)
}

func (r *ctlRunner) Resume(ctx context.Context, id int64, progress func(experiments.Progress)) (experiments.Summary, error) {
	r.resumed <- id
	return r.play(ctx, progress)
}

func (r *ctlRunner) Control(_ context.Context, id int64, action string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.actions = append(r.actions, fmt.Sprintf("%s %d", action, id))
	if action == "cancel" {
		close(r.cancelCh)
	}
	return nil
}

func (r *ctlRunner) Orphaned(_ context.Context, id int64) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.orphans[id], nil
}

func (r *ctlRunner) done() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.actions...)
}

// TestComposerValidatesPlansAndPreviews fills the composer with bad values,
// sees every reason, then previews a valid grid: its rollout count and the
// rendered prompt.
func TestComposerValidatesPlansAndPreviews(t *testing.T) {
	u, w := newTestUI(t, newCtlStore(), newCtlRunner(nil))
	act(u, func() { require.NoError(t, u.Show(ScreenNewRun)) })
	u.wait() // showing a screen reloads it in the background
	p := u.run
	act(u, func() {
		p.objectives.SetText("1, two, 0, 1")
		p.policies.SetSelected(nil)
		p.apiKeyEnv.SetText("sk-live abc")
		p.rps.SetText("-3")
		p.tagAnswer.SetText("think")
		test.Tap(p.runBt)
	})
	msg := p.errors.Text
	// Parse errors are the form's; every rule and its words are RunConfig.Validate's.
	for _, want := range []string{`Objectives: "two" is not a whole number`, "Objectives: entry 2 is 0: want ≥ 1",
		"Objectives: 1 is listed twice", "Policies: check mem1, full or both",
		`API key env var: "sk-live abc" is not an environment variable name`, "Requests/s: -3: want ≥ 0 (0 = no cap)", "Tag names:"} {
		assert.Contains(t, msg, want)
	}

	act(u, func() {
		p.objectives.SetText("1, 2")
		p.policies.SetSelected([]string{"mem1", "full"})
		p.apiKeyEnv.SetText("OPENAI_API_KEY")
		p.rps.SetText("0")
		p.tagAnswer.SetText("answer")
		p.tasks.SetText("4")
		test.Tap(p.previewBt)
	})
	u.wait()
	assert.Empty(t, p.errors.Text)
	assert.Equal(t, "16 rollouts: 4 settings (1 model × 2 policies × 2 objective counts), 8 tasks in all", p.plan.Text)
	assert.Contains(t, p.prompt.Text, "<|im_start|>user\n")
	assert.Contains(t, p.prompt.Text, sampleTask.Objectives[0].Question)
	assert.True(t, strings.HasSuffix(p.prompt.Text, "<|im_start|>assistant\n"))
	assert.True(t, hasText(w.Canvas(), "16 rollouts"), "the count is drawn")

	cfg, err := p.config()
	require.NoError(t, err)
	assert.Equal(t, []int{1, 2}, cfg.ObjectivesGrid)
	assert.Equal(t, []string{"mem1", "full"}, cfg.Policies)

	// A template file without the {questions} slot is refused with the reason.
	tmpl := filepath.Join(t.TempDir(), "t.txt")
	require.NoError(t, os.WriteFile(tmpl, []byte("no slot here"), 0o644))
	act(u, func() { p.template.SetText(tmpl); test.Tap(p.previewBt) })
	assert.Contains(t, p.errors.Text, "Prompt template file")
}

// TestComposerTOMLRoundTrip exports the form as canonical TOML and imports it
// back: identical bytes, identical hash.
func TestComposerTOMLRoundTrip(t *testing.T) {
	u, _ := newTestUI(t, newCtlStore(), newCtlRunner(nil))
	p := u.run
	act(u, func() {
		p.objectives.SetText("1, 2, 4")
		p.policies.SetSelected([]string{"mem1", "full"})
		p.name.SetText("grid")
	})
	var buf bytes.Buffer
	require.NoError(t, p.exportTOML(&buf))
	cfg, err := p.config()
	require.NoError(t, err)
	want, err := cfg.CanonicalTOML()
	require.NoError(t, err)
	assert.Equal(t, string(want), buf.String(), "byte-stable export")
	path := filepath.Join(t.TempDir(), "exp.toml")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))

	act(u, func() { p.objectives.SetText("3"); p.policies.SetSelected([]string{"full"}) })
	act(u, func() { require.NoError(t, p.importTOML(path)) })
	back, err := p.config()
	require.NoError(t, err)
	assert.Equal(t, cfg.Hash(), back.Hash())
	assert.Equal(t, "1, 2, 4", p.objectives.Text)

	bad := filepath.Join(t.TempDir(), "bad.toml")
	require.NoError(t, os.WriteFile(bad, []byte("objective = 3\n"), 0o644))
	err = p.importTOML(bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unknown keys: objective")
}

// TestLaunchWatchPauseCancel launches against a fake runner, watches the
// progress bar and the per-setting table move on Runs, pauses and cancels.
func TestLaunchWatchPauseCancel(t *testing.T) {
	steps := []experiments.Progress{
		{Experiment: 1, Total: 4, Running: 2, Queued: 2, Turns: 3, TurnsPerSecond: 3, TokensPerSecond: 900,
			Settings: []experiments.SettingProgress{{Model: "m", Policy: "mem1", Objectives: 2, Total: 4, Running: 2}}},
		{Experiment: 1, Total: 4, Done: 2, Running: 2, Turns: 7, TurnsPerSecond: 3.5, TokensPerSecond: 1000, ETA: 4 * time.Second,
			Settings: []experiments.SettingProgress{{Model: "m", Policy: "mem1", Objectives: 2, Total: 4, Done: 2, Running: 2, MeanEM: 1.5, MeanPeakTokens: 812}}},
	}
	st := newCtlStore()
	r := newCtlRunner(steps)
	u, w := newTestUI(t, st, r)
	p := u.run
	act(u, func() { test.Tap(p.runBt) })
	cfg := <-r.started
	assert.Equal(t, "hotpotqa", cfg.Dataset)

	<-r.stepped
	assert.InDelta(t, 0, p.bar.Value, 1e-9)
	r.proceed <- struct{}{}
	<-r.stepped
	assert.InDelta(t, 0.5, p.bar.Value, 1e-9, "the bar moved")
	assert.Contains(t, p.progress.Text, "ETA 4s")
	assert.Contains(t, p.progress.Text, "3.5 turns/s")

	act(u, func() { require.NoError(t, u.Show(ScreenRuns)) })
	rp := u.runs
	// The run is in flight: wait on conditions, not on every background job.
	eventually(t, u, func() bool { return len(rp.experiments) > 0 })
	act(u, func() {
		for i, e := range rp.experiments {
			if e.ID == 1 {
				rp.table.selectRow(i)
			}
		}
	})
	eventually(t, u, func() bool { return len(rp.settings.rows) == 1 && rp.bar.Value > 0.49 })
	act(u, func() {
		assert.Equal(t, []string{"m", "mem1", "2", "2", "0", "2", "4", "1.500", "812", "–"}, rp.settings.rows[0], "no paper peak from this runner")
		assert.True(t, hasText(w.Canvas(), "812"), "per-setting means are drawn")
		assert.False(t, rp.pauseBt.Disabled())
		assert.True(t, rp.continueBt.Disabled(), "it is running here")
	})

	act(u, func() { test.Tap(rp.pauseBt) })
	eventually(t, u, func() bool { return len(r.done()) == 1 && rp.pauseBt.Disabled() })
	act(u, func() {
		assert.Equal(t, []string{"pause 1"}, r.done())
		assert.False(t, rp.unpauseBt.Disabled())
		assert.Contains(t, rp.progress.Text, "paused")
		test.Tap(rp.unpauseBt)
	})
	eventually(t, u, func() bool { return len(r.done()) == 2 })
	act(u, func() { test.Tap(rp.cancelBt) })
	eventually(t, u, func() bool { return len(r.done()) == 3 })
	r.proceed <- struct{}{}
	u.wait()
	assert.Equal(t, []string{"pause 1", "resume 1", "cancel 1"}, r.done())
	assert.Contains(t, p.status.Text, "cancelled")
	assert.False(t, p.runBt.Disabled())
}

// eventually waits until cond holds, checking it under the UI lock.
func eventually(t *testing.T, u *UI, cond func() bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		u.applying.Lock()
		defer u.applying.Unlock()
		return cond()
	}, 10*time.Second, 5*time.Millisecond)
}

// TestRelaunchOffersResume: launching a config whose twin is unfinished in the
// store offers to resume it; accepting resumes that experiment.
func TestRelaunchOffersResume(t *testing.T) {
	st := newCtlStore()
	r := newCtlRunner(nil)
	u, _ := newTestUI(t, st, r)
	p := u.run
	cfg, err := p.config()
	require.NoError(t, err)
	st.hashes[cfg.Hash()] = []int64{1} // experiment 1: 2 rollouts, 1 done
	act(u, func() { test.Tap(p.runBt) })
	u.wait()
	assert.True(t, p.offerBox.Visible())
	assert.Contains(t, p.offer.Text, "Experiment #1 has this exact config and 1 of its 2 rollouts unfinished")
	assert.Empty(t, r.started, "nothing launched yet")
	act(u, func() { test.Tap(p.resumeBt) })
	assert.Equal(t, int64(1), <-r.resumed)
	act(u, func() { test.Tap(p.cancelBt) })
	u.wait()
	assert.False(t, p.offerBox.Visible())
	assert.Contains(t, p.status.Text, "cancelled")
}

// TestEndpointsScreen: presets fill the form, Fetch models lists the server's
// models, Test connection reports latency or the server's error, Save keeps
// the profile (never a key) and the composer offers it.
func TestEndpointsScreen(t *testing.T) {
	st := newCtlStore()
	u, _ := newTestUI(t, st, newCtlRunner(nil))
	p := u.endpoints
	srv := httptest.NewServer(oracle.New(nil))
	defer srv.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error":{"message":"model is still loading","type":"server_error","param":null,"code":null}}`))
	}))
	defer broken.Close()

	act(u, func() { p.preset.SetSelectedIndex(1) })
	assert.Equal(t, "http://127.0.0.1:30000/v1", p.url.Text, "SGLang preset")
	assert.Equal(t, "sglang", p.name.Text)

	act(u, func() {
		p.name.SetText("oracle")
		p.url.SetText(srv.URL + "/v1")
		p.model.SetText("")
		p.apiKeyEnv.SetText("MEM1LAB_VIEW_KEY")
		test.Tap(p.fetchBt)
	})
	u.wait()
	assert.Equal(t, []string{oracle.ModelName}, p.fetched)
	assert.Equal(t, oracle.ModelName, p.model.Text)

	act(u, func() { p.concurrency.SetText("zero"); test.Tap(p.testBt) })
	assert.Contains(t, p.result.Text, `Max concurrency: "zero" is not a whole number`)
	t.Setenv("MEM1LAB_VIEW_KEY", "sk-view-secret")
	act(u, func() { p.concurrency.SetText("2"); test.Tap(p.testBt) })
	u.wait()
	assert.Regexp(t, `^OK: mem1lab-oracle answered in \d`, p.result.Text)

	keyring.MockInit()
	act(u, func() {
		p.keyring.SetText("oracle-key")
		p.secret.SetText("sk-in-keyring")
		test.Tap(p.secretBt)
	})
	assert.Equal(t, `Key saved in the OS keyring under "oracle-key".`, p.result.Text)
	assert.Empty(t, p.secret.Text, "the key leaves the form")
	k, err := experiments.ResolveKey("", "oracle-key")
	require.NoError(t, err)
	assert.Equal(t, "sk-in-keyring", k)

	act(u, func() { test.Tap(p.saveBt) })
	u.wait()
	require.Contains(t, st.profiles, "oracle")
	assert.Contains(t, st.profiles["oracle"], `"api_key_keyring":"oracle-key"`)
	assert.NotContains(t, st.profiles["oracle"], "sk-in-keyring")
	assert.Contains(t, st.profiles["oracle"], "MEM1LAB_VIEW_KEY")
	assert.NotContains(t, st.profiles["oracle"], "sk-view-secret")
	assert.Equal(t, []string{"oracle"}, p.names)
	assert.Equal(t, []string{"oracle"}, u.run.endpoints.Options, "the composer offers it")
	act(u, func() { u.run.endpoints.SetSelected([]string{"oracle"}) })
	cfg, err := u.run.config()
	require.NoError(t, err)
	require.Len(t, cfg.Endpoints, 1)
	assert.Equal(t, srv.URL+"/v1", cfg.Endpoints[0].URL)
	assert.Equal(t, 2, cfg.Endpoints[0].Concurrency)

	act(u, func() { p.url.SetText(broken.URL + "/v1"); test.Tap(p.testBt) })
	u.wait()
	assert.Contains(t, p.result.Text, "Connection failed")
	assert.Contains(t, p.result.Text, "model is still loading")
}

// TestLocalServerLauncher starts a fake vLLM (a wrapper around the tiny model
// server), streams its log, marks the profile ready and stops it.
func TestLocalServerLauncher(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		fixture.Missing(t, "node is not installed: the tiny model server needs it")
	}
	serve, err := filepath.Abs(filepath.Join("..", "..", "shared", "llm", "serve"))
	require.NoError(t, err)
	if _, err := os.Stat(serve); err != nil {
		fixture.Missing(t, "tiny model server not found: %v", err)
	}
	fake := filepath.Join(t.TempDir(), "vllm")
	script := "#!/bin/sh\necho \"fake vllm: $*\"\nport=8000\nwhile [ $# -gt 0 ]; do\n  if [ \"$1\" = --port ]; then port=$2; fi\n  shift\ndone\n" +
		"ANY_MODEL=1 exec " + serve + " --port \"$port\"\n"
	require.NoError(t, os.WriteFile(fake, []byte(script), 0o755))
	st := newCtlStore()
	u, _ := newTestUI(t, st, newCtlRunner(nil))
	p := u.endpoints
	port := freePort(t)
	act(u, func() {
		p.command.SetText(fake + " serve {model} --port {port} {extra}")
		p.lmodel.SetText("tiny")
		p.port.SetText(fmt.Sprint(port))
		p.extra.SetText("--enforce-eager")
		test.Tap(p.startBt)
	})
	u.wait() // until /health answers
	assert.Contains(t, p.serverStatus.Text, "Ready at http://127.0.0.1:")
	assert.Contains(t, p.log.Text, "fake vllm: serve tiny --port")
	assert.Contains(t, st.profiles, "local-vllm")
	assert.True(t, p.startBt.Disabled())
	act(u, func() { test.Tap(p.stopBt) })
	u.wait()
	assert.Equal(t, "Stopped.", p.serverStatus.Text)
	_, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d/health", port))
	assert.Error(t, err, "the server is gone")
}

// TestNewExperimentMixedSources chooses Compose mixed: the dataset checkboxes
// replace the Dataset select, fewer than two checked is refused with the
// reason, two checked preview a prompt mixing both datasets with the rollout
// count, launch with both sources, and survive a TOML round trip.
func TestNewExperimentMixedSources(t *testing.T) {
	st := newCtlStore()
	nq := make([]storage.Question, 5)
	for i := range nq {
		nq[i] = storage.Question{ID: fmt.Sprintf("nq:dev-%04d", i), Dataset: "nq", Seq: i,
			Question: fmt.Sprintf("NQ question number %d?", i), Golden: []string{fmt.Sprintf("nq answer %d", i)}}
	}
	st.fakeStore.mu.Lock()
	st.fakeStore.questions["nq"] = nq
	st.fakeStore.mu.Unlock()
	r := newCtlRunner(nil)
	u, w := newTestUI(t, st, r)
	act(u, func() { require.NoError(t, u.Show(ScreenNewRun)) })
	u.wait() // showing a screen reloads it in the background
	p := u.run
	act(u, func() {
		assert.Equal(t, []string{"hotpotqa", "nq"}, p.sources.Options, "the store's datasets are offered")
		assert.False(t, p.sources.Visible(), "no checkboxes until mixed is chosen")
		assert.True(t, p.dataset.Visible())
		assert.Contains(t, p.compose.Options, "mixed")
		p.compose.SetSelected("mixed")
		assert.True(t, p.sources.Visible())
		assert.False(t, p.dataset.Visible())
		test.Tap(p.previewBt)
	})
	assert.Contains(t, p.errors.Text, `Dataset: compose = "mixed" needs at least 2 datasets to mix`)
	assert.NotContains(t, p.errors.Text, "Dataset: empty", "one reason, not two")
	act(u, func() { p.sources.SetSelected([]string{"nq"}); test.Tap(p.previewBt) })
	assert.Contains(t, p.errors.Text, "got 1")

	act(u, func() {
		p.sources.SetSelected([]string{"nq", "hotpotqa"})
		p.objectives.SetText("2")
		p.tasks.SetText("3")
		test.Tap(p.previewBt)
	})
	u.wait()
	assert.Empty(t, p.errors.Text)
	assert.Equal(t, "3 rollouts: 1 setting (1 model × 1 policy × 1 objective count), 3 tasks in all; objectives mixed from hotpotqa + nq in turn", p.plan.Text)
	assert.Regexp(t, `HotpotQA question number \d+\?|`+regexp.QuoteMeta(sampleTask.Objectives[0].Question), p.prompt.Text)
	assert.Regexp(t, `; NQ question number \d\?`, p.prompt.Text, "the second objective comes from nq")
	assert.True(t, hasText(w.Canvas(), "3 rollouts"), "the count is drawn")

	cfg, err := p.config()
	require.NoError(t, err)
	assert.Equal(t, "mixed", cfg.Compose)
	assert.Equal(t, []string{"hotpotqa", "nq"}, cfg.Datasets, "in the order offered")
	assert.Equal(t, "hotpotqa", cfg.Dataset)

	var buf bytes.Buffer
	require.NoError(t, p.exportTOML(&buf))
	assert.Contains(t, buf.String(), `datasets = ["hotpotqa", "nq"]`)
	path := filepath.Join(t.TempDir(), "mixed.toml")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	act(u, func() {
		p.compose.SetSelected("random")
		assert.False(t, p.sources.Visible())
		assert.True(t, p.dataset.Visible())
	})
	other, err := p.config()
	require.NoError(t, err)
	assert.Nil(t, other.Datasets, "sources only go with mixed")
	act(u, func() { require.NoError(t, p.importTOML(path)) })
	act(u, func() { assert.True(t, p.sources.Visible()) })
	back, err := p.config()
	require.NoError(t, err)
	assert.Equal(t, cfg.Hash(), back.Hash())

	act(u, func() { test.Tap(p.runBt) })
	started := <-r.started
	assert.Equal(t, []string{"hotpotqa", "nq"}, started.Datasets)
	act(u, func() { test.Tap(p.cancelBt) })
	u.wait()
	assert.Contains(t, p.status.Text, "cancelled")
}

// freePort asks the OS for a free TCP port on 127.0.0.1 (listen on port 0, read
// the port, close), for a server the test launches as a subprocess.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := l.Addr().(*net.TCPAddr).Port
	require.NoError(t, l.Close())
	return port
}
