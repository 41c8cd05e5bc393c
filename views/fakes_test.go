package views

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments"
	"github.com/mem1lab/mem1lab/storage"
)

// ---- sample data: one 2-objective HotpotQA task, a finished 3-turn rollout and an
// unfinished one.

var sampleTask = core.Task{
	Key:     "hotpotqa/n2/0000",
	Dataset: "hotpotqa",
	Objectives: []core.Objective{
		{QuestionID: "5a7a0693", Question: "Which magazine was started first, Arthur's Magazine or First for Women?",
			Gold: []string{"Arthur's Magazine"}, GoldPassageIDs: []string{"wiki-101"}},
		{QuestionID: "5a879ab0", Question: "The Oberoi family is part of a hotel company that has a head office in what city?",
			Gold: []string{"Delhi", "New Delhi"}, GoldPassageIDs: []string{"wiki-202"}},
	},
}

var samplePassages = []core.Passage{
	{ID: "wiki-101", Title: "Arthur's Magazine", Text: "Arthur's Magazine (1844–1846) was an American literary periodical published in Philadelphia in the 19th century.", Score: 14.2, Rank: 1},
	{ID: "wiki-102", Title: "First for Women", Text: "First for Women is a woman's magazine published by Bauer Media Group in the USA. The magazine was started in 1989.", Score: 11.7, Rank: 2},
	{ID: "wiki-202", Title: "The Oberoi Group", Text: "The Oberoi Group is a hotel company with its head office in Delhi.", Score: 9.3, Rank: 3},
}

func infoBlock(hint string, ps ...core.Passage) string {
	var b strings.Builder
	b.WriteString(hint)
	for i, p := range ps {
		fmt.Fprintf(&b, "\nDoc %d(Title: \"%s\") %s", i+1, p.Title, p.Text)
	}
	return b.String()
}

func sampleTurns() []core.Turn {
	prompt := "<|im_start|>user\nAnswer the given questions... Question: Which magazine was started first, Arthur's Magazine or First for Women?; The Oberoi family is part of a hotel company that has a head office in what city?<|im_end|>\n<|im_start|>assistant\n"
	t0 := core.Turn{
		Index:         0,
		Context:       prompt,
		Response:      "<think>I need the founding years of both magazines first, then the Oberoi head office.</think>\n<search>Arthur's Magazine First for Women founded</search>",
		InternalState: "I need the founding years of both magazines first, then the Oberoi head office.",
		Action:        core.ActionSearch,
		Query:         "Arthur's Magazine First for Women founded",
		Information:   infoBlock("[You have 5 turns left.]", samplePassages[0], samplePassages[1]),
		Passages:      samplePassages[:2],
		PromptTokens:  512, CompletionTokens: 41, UsageReported: true,
		Latency: 900 * time.Millisecond, FinishReason: "stop",
	}
	t1 := core.Turn{
		Index:         1,
		Context:       prompt + t0.Response + "\n\n<information>" + t0.Information + "</information>\n\n",
		Response:      "<think>Arthur's Magazine began in 1844, First for Women in 1989, so Arthur's Magazine is first. Next: Oberoi head office.</think>\n<search>Oberoi Group head office city</search>",
		InternalState: "Arthur's Magazine began in 1844, First for Women in 1989, so Arthur's Magazine is first. Next: Oberoi head office.",
		Action:        core.ActionSearch,
		Query:         "Oberoi Group head office city",
		Information:   infoBlock("[You have 4 turns left.]", samplePassages[2]),
		Passages:      samplePassages[2:],
		PromptTokens:  803, CompletionTokens: 52, UsageReported: true,
		Latency: 1100 * time.Millisecond, FinishReason: "stop",
	}
	t2 := core.Turn{
		Index:         2,
		Context:       prompt + t1.Response + "\n\n<information>" + t1.Information + "</information>\n\n",
		Response:      "<think>Arthur's Magazine is older; the Oberoi Group is in Mumbai I think.</think>\n<answer>Arthur's Magazine; Mumbai</answer>",
		InternalState: "Arthur's Magazine is older; the Oberoi Group is in Mumbai I think.",
		Action:        core.ActionAnswer,
		Answer:        "Arthur's Magazine; Mumbai",
		PromptTokens:  688, CompletionTokens: 30, UsageReported: true,
		Latency: 700 * time.Millisecond, FinishReason: "stop",
	}
	return []core.Turn{t0, t1, t2}
}

func finishedRollout() storage.RolloutDetail {
	turns := sampleTurns()
	peak := 0
	for _, t := range turns {
		peak = max(peak, t.Tokens())
	}
	return storage.RolloutDetail{
		RolloutRow: storage.RolloutRow{ID: 11, ExperimentID: 1, TaskKey: sampleTask.Key, Dataset: "hotpotqa", Policy: "mem1",
			Model: "Mem-Lab/Qwen2.5-7B-RL-RAG-Q2-EM-Release", Objectives: 2, Status: storage.StatusDone,
			EM: 1, F1: 1, PeakTokens: peak, Turns: len(turns), Seconds: 2.7},
		Task:  sampleTask,
		Turns: turns,
		Score: core.Score{Scheme: "mem1", EM: 1, F1: 1, Answers: []string{"Arthur's Magazine", "Mumbai"},
			PerObjective: []core.ObjectiveScore{{Answer: "Arthur's Magazine", EM: 1, F1: 1}, {Answer: "Mumbai", EM: 0, F1: 0}}},
	}
}

func unfinishedRollout() storage.RolloutDetail {
	turns := sampleTurns()
	last := turns[2]
	last.Answer = "Arthur's Magazine ;Delhi"
	return storage.RolloutDetail{
		RolloutRow: storage.RolloutRow{ID: 12, ExperimentID: 1, TaskKey: "hotpotqa/n2/0001", Dataset: "hotpotqa", Policy: "mem1",
			Objectives: 2, Status: storage.StatusRunning, Turns: 1},
		Task:  sampleTask,
		Turns: []core.Turn{last},
	}
}

// ---- fake Store

type fakeStore struct {
	mu        sync.Mutex
	datasets  []storage.DatasetInfo
	questions map[string][]storage.Question
	passages  []core.Passage
	exps      []storage.ExperimentRow
	rollouts  map[int64][]storage.RolloutRow
	details   map[int64]storage.RolloutDetail
	searchErr error

	searches      []string
	searchK       []int
	questionCalls [][2]int // offset, limit
	expCalls      int
	browses       []storage.RolloutQuery // every BrowseRollouts query, in order
}

func newFakeStore() *fakeStore {
	s := &fakeStore{
		datasets: []storage.DatasetInfo{{Name: "hotpotqa", Questions: 60, Passages: 7405}, {Name: "nq", Questions: 3, Passages: 2210}},
		passages: samplePassages,
		questions: map[string][]storage.Question{
			"nq": {{ID: "nq-0", Dataset: "nq", Seq: 0, Question: "who got the first nobel prize in physics?", Golden: []string{"Wilhelm Conrad Röntgen"}}},
		},
		details: map[int64]storage.RolloutDetail{},
	}
	hq := make([]storage.Question, 60)
	for i := range hq {
		hq[i] = storage.Question{ID: fmt.Sprintf("hq-%02d", i), Dataset: "hotpotqa", Seq: i,
			Question: fmt.Sprintf("HotpotQA question number %d?", i), Golden: []string{fmt.Sprintf("answer %d", i), fmt.Sprintf("alias %d", i)}}
	}
	hq[0] = storage.Question{ID: "5a7a0693", Dataset: "hotpotqa", Seq: 0, Question: sampleTask.Objectives[0].Question, Golden: sampleTask.Objectives[0].Gold}
	s.questions["hotpotqa"] = hq
	fin, unf := finishedRollout(), unfinishedRollout()
	s.details[fin.ID], s.details[unf.ID] = fin, unf
	s.rollouts = map[int64][]storage.RolloutRow{1: {fin.RolloutRow, unf.RolloutRow}, 2: {}}
	s.exps = []storage.ExperimentRow{
		{ID: 2, Name: "full n2", CreatedAt: time.Date(2025, 6, 2, 10, 0, 0, 0, time.UTC), Status: storage.StatusQueued, Rollouts: 0},
		{ID: 1, Name: "mem1 n2 smoke", CreatedAt: time.Date(2025, 6, 1, 9, 30, 0, 0, time.UTC), Status: storage.StatusRunning,
			Rollouts: 2, Done: 1, Running: 1, MeanEM: 1, MeanF1: 1},
	}
	return s
}

func (s *fakeStore) Datasets(context.Context) ([]storage.DatasetInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]storage.DatasetInfo(nil), s.datasets...), nil
}

func (s *fakeStore) Questions(_ context.Context, dataset string, offset, limit int) ([]storage.Question, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.questionCalls = append(s.questionCalls, [2]int{offset, limit})
	qs, ok := s.questions[dataset]
	if !ok {
		return nil, fmt.Errorf("no dataset %q", dataset)
	}
	if offset > len(qs) {
		return nil, nil
	}
	qs = qs[offset:]
	if len(qs) > limit {
		qs = qs[:limit]
	}
	return append([]storage.Question(nil), qs...), nil
}

func (s *fakeStore) Search(_ context.Context, query string, k int) ([]core.Passage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.searches = append(s.searches, query)
	s.searchK = append(s.searchK, k)
	if s.searchErr != nil {
		return nil, s.searchErr
	}
	// A crude term match standing in for BM25: passages sharing a word with the query.
	var out []core.Passage
	for _, p := range s.passages {
		for _, w := range strings.Fields(strings.ToLower(query)) {
			if strings.Contains(strings.ToLower(p.Title+" "+p.Text), w) {
				out = append(out, p)
				break
			}
		}
	}
	if len(out) > k {
		out = out[:k]
	}
	return out, nil
}

func (s *fakeStore) Experiments(context.Context) ([]storage.ExperimentRow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expCalls++
	return append([]storage.ExperimentRow(nil), s.exps...), nil
}

func (s *fakeStore) Rollouts(_ context.Context, expID int64) ([]storage.RolloutRow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs, ok := s.rollouts[expID]
	if !ok {
		return nil, fmt.Errorf("no experiment %d", expID)
	}
	return append([]storage.RolloutRow(nil), rs...), nil
}

func (s *fakeStore) Rollout(_ context.Context, id int64) (storage.RolloutDetail, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.details[id]
	if !ok {
		return storage.RolloutDetail{}, fmt.Errorf("no rollout %d", id)
	}
	return d, nil
}

func (s *fakeStore) experimentCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.expCalls
}

// ---- fake Runner: reports each step, then waits for the test to let it go on.

type fakeRunner struct {
	steps   []experiments.Progress
	summary experiments.Summary
	// waitCancel makes Run block until its context is cancelled.
	waitCancel bool

	started chan experiments.RunConfig // the config, when Run begins
	stepped chan experiments.Progress  // after each progress callback returned
	proceed chan struct{}              // the test lets Run go on
	ended   chan error                 // ctx.Err() seen when Run returns
}

func newFakeRunner(steps []experiments.Progress, sum experiments.Summary) *fakeRunner {
	return &fakeRunner{steps: steps, summary: sum,
		started: make(chan experiments.RunConfig, 1), stepped: make(chan experiments.Progress),
		proceed: make(chan struct{}), ended: make(chan error, 1)}
}

func (r *fakeRunner) Run(ctx context.Context, cfg experiments.RunConfig, progress func(experiments.Progress)) (experiments.Summary, error) {
	r.started <- cfg
	for _, p := range r.steps {
		progress(p)
		r.stepped <- p
		<-r.proceed
	}
	if r.waitCancel {
		<-ctx.Done()
		r.ended <- ctx.Err()
		return experiments.Summary{Experiment: r.summary.Experiment}, fmt.Errorf("run: %w", ctx.Err())
	}
	r.ended <- ctx.Err()
	return r.summary, nil
}

var errBM25 = errors.New("fts5: syntax error near \"AND\"")

// ---- a window whose canvas dispatches shortcuts (the test canvas does not).

type shortcutCanvas struct {
	fyne.Canvas
	fyne.ShortcutHandler
}

func (c *shortcutCanvas) AddShortcut(s fyne.Shortcut, h func(fyne.Shortcut)) {
	c.ShortcutHandler.AddShortcut(s, h)
}

func (c *shortcutCanvas) RemoveShortcut(s fyne.Shortcut) { c.ShortcutHandler.RemoveShortcut(s) }

type shortcutWindow struct {
	fyne.Window
	canvas *shortcutCanvas
}

func (w *shortcutWindow) Canvas() fyne.Canvas { return w.canvas }

// pressKey delivers a key to the canvas's typed-key handler, as the desktop driver
// does when no widget has focus.
func (w *shortcutWindow) pressKey(t *testing.T, u *UI, name fyne.KeyName) {
	t.Helper()
	u.applying.Lock()
	defer u.applying.Unlock()
	if f := w.canvas.Focused(); f != nil {
		f.TypedKey(&fyne.KeyEvent{Name: name})
		return
	}
	h := w.canvas.OnTypedKey()
	if h == nil {
		t.Fatal("no typed-key handler on the canvas")
	}
	h(&fyne.KeyEvent{Name: name})
}

func defaultRun() experiments.RunConfig {
	return experiments.RunConfig{
		Endpoint: "http://127.0.0.1:8000/v1", Model: "Mem-Lab/Qwen2.5-7B-RL-RAG-Q2-EM-Release", Mode: "completions",
		Temperature: 0.01, TopP: 0.95, MaxTokens: 1024, TimeoutSeconds: 120,
		Dataset: "hotpotqa", Objectives: 2, Tasks: 4, Compose: "consecutive", Seed: 1,
		Policy: "mem1", MaxTurns: 0, TopK: 3, Scheme: "mem1", Concurrency: 2,
	}
}

// newTestUI builds the UI over st and r in a 1400×900 test window and waits for
// the first loads.
func newTestUI(t *testing.T, st Store, r Runner) (*UI, *shortcutWindow) {
	t.Helper()
	test.NewTempApp(t)
	tw := test.NewTempWindow(t, nil)
	w := &shortcutWindow{Window: tw, canvas: &shortcutCanvas{Canvas: tw.Canvas()}}
	u := NewUI(Deps{Store: st, Runner: r, Window: w, DefaultRun: defaultRun()})
	// Showing a screen reloads it in the background: no load may outlive its
	// test and draw while the next test draws.
	t.Cleanup(u.wait)
	u.wait()
	tw.SetContent(u.Content())
	tw.Resize(fyne.NewSize(1400, 900))
	return u, w
}

// act runs a test's UI action while holding the lock results from goroutines take,
// as the UI thread would: the test driver runs fyne.Do inline on those goroutines.
func act(u *UI, f func()) {
	u.applying.Lock()
	defer u.applying.Unlock()
	f()
}
