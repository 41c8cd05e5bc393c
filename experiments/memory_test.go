package experiments

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

// memRequest is one request a scripted server received: the path, the user
// message (chat) or the input array as JSON (embeddings), and the system
// message of a chat request.
type memRequest struct {
	Path   string
	Body   string
	System string
}

// requestLog wraps a handler and records every request it answers.
type requestLog struct {
	mu   sync.Mutex
	reqs []memRequest
	next http.Handler
}

func (l *requestLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	if r.Method == http.MethodPost {
		l.add(r.URL.Path, body)
	}
	l.next.ServeHTTP(w, r)
}

func (l *requestLog) add(path string, body []byte) {
	var req struct {
		Messages []struct{ Role, Content string } `json:"messages"`
		Input    []string                         `json:"input"`
	}
	_ = json.Unmarshal(body, &req)
	m := memRequest{Path: path}
	for _, msg := range req.Messages {
		switch msg.Role {
		case "system":
			m.System = msg.Content
		case "user":
			if m.Body == "" {
				m.Body = msg.Content
			}
		}
	}
	if path == "/v1/embeddings" {
		b, _ := json.Marshal(req.Input)
		m.Body = string(b)
	}
	l.mu.Lock()
	l.reqs = append(l.reqs, m)
	l.mu.Unlock()
}

func (l *requestLog) take() []memRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.reqs
	l.reqs = nil
	return out
}

// memoryServer is a scripted memory and embeddings endpoint: it answers each
// memory prompt of core's policies with a well-formed reply (or, with
// garbage set, malformed JSON to the extractor), and embeds texts as 16-dim
// hashed bags of words.
type memoryServer struct {
	mu      sync.Mutex
	n       int
	garbage bool
	// blockAt, when > 0, makes the blockAt-th request (1-based, counted from
	// when it was set) signal blocked and hang until the client gives up.
	blockAt int
	seen    int
	blocked chan struct{}
	// failNext answers that many next requests with a 503.
	failNext int
}

var newFactsRE = regexp.MustCompile(`(?m)^- (fact \d+ .*)$`)

func (s *memoryServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.seen++
	block := s.blockAt > 0 && s.seen == s.blockAt
	s.mu.Unlock()
	if block {
		close(s.blocked)
		<-r.Context().Done()
		return
	}
	s.mu.Lock()
	fail := s.failNext > 0
	if fail {
		s.failNext--
	}
	s.mu.Unlock()
	if fail {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error": {"message": "overloaded", "type": "server_error"}}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/v1/embeddings":
		var req struct {
			Input []string `json:"input"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		var data []any
		for i, text := range req.Input {
			data = append(data, map[string]any{"object": "embedding", "index": i, "embedding": bagOfWords(text)})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "model": "emb",
			"usage": map[string]int{"prompt_tokens": 7 * len(req.Input), "total_tokens": 7 * len(req.Input)}})
	case "/v1/chat/completions":
		var req struct {
			Messages []struct{ Role, Content string } `json:"messages"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		prompt := req.Messages[len(req.Messages)-1].Content
		s.mu.Lock()
		s.n++
		n, garbage := s.n, s.garbage
		s.mu.Unlock()
		var reply string
		switch {
		case strings.Contains(prompt, `{"facts": [`):
			reply = fmt.Sprintf(`Sure: {"facts": ["fact %d was noted", "fact %d also"]}`, n, n)
			if garbage {
				reply = `{"facts": ["unterminated`
			}
		case strings.Contains(prompt, `"event": "ADD|UPDATE|DELETE|NONE"`):
			var ops []string
			for _, m := range newFactsRE.FindAllStringSubmatch(prompt, -1) {
				ops = append(ops, fmt.Sprintf(`{"id": null, "text": %q, "event": "ADD"}`, m[1]))
			}
			ops = append(ops, `{"id": 0, "text": "fact zero rewritten", "event": "UPDATE"}`, `{"id": 99, "text": "", "event": "DELETE"}`)
			reply = "```json\n{\"memory\": [" + strings.Join(ops, ", ") + "]}\n```"
		case strings.Contains(prompt, "Index this memory"):
			reply = fmt.Sprintf(`{"keywords": ["kw%d"], "context": "about step %d", "tags": ["tag%d"]}`, n, n, n)
		case strings.Contains(prompt, `"should_evolve"`):
			reply = `{"should_evolve": true, "actions": ["strengthen", "update_neighbor"], "suggested_connections": [0], "tags_to_update": ["linked"], "new_context_neighborhood": ["refreshed"], "new_tags_neighborhood": [["fresh"]]}`
		case strings.Contains(prompt, "Write the updated notes"):
			reply = fmt.Sprintf("notes after call %d", n)
		case strings.Contains(prompt, "Rewrite the memory"):
			reply = fmt.Sprintf("memory after call %d", n)
		default:
			reply = "unexpected prompt"
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "m", "object": "chat.completion", "model": "mem",
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop", "message": map[string]any{"role": "assistant", "content": reply}}},
			"usage":   map[string]int{"prompt_tokens": len(prompt) / 4, "completion_tokens": len(reply)/4 + 1, "total_tokens": len(prompt)/4 + len(reply)/4 + 1}})
	default:
		http.NotFound(w, r)
	}
}

func bagOfWords(text string) []float64 {
	v := make([]float64, 16)
	for _, w := range strings.Fields(strings.ToLower(text)) {
		h := fnv.New32a()
		_, _ = h.Write([]byte(w))
		v[h.Sum32()%16]++
	}
	return v
}

// memoryRig is an oracle actor and a scripted memory server, both logged.
type memoryRig struct {
	st       *storage.Store
	actorLog *requestLog
	memLog   *requestLog
	mem      *memoryServer
	actor    *httptest.Server
	memSrv   *httptest.Server
}

func newMemoryRig(t *testing.T) *memoryRig {
	st := bundleStore(t)
	qs, err := st.Questions(context.Background(), "hotpotqa", 0, 0)
	require.NoError(t, err)
	rig := &memoryRig{st: st, mem: &memoryServer{}}
	rig.actorLog = &requestLog{next: oracle.New(qs)}
	rig.memLog = &requestLog{next: rig.mem}
	rig.actor = httptest.NewServer(rig.actorLog)
	rig.memSrv = httptest.NewServer(rig.memLog)
	t.Cleanup(func() { rig.actor.Close(); rig.memSrv.Close() })
	return rig
}

func (rig *memoryRig) config(policy string, n int) RunConfig {
	cfg := DefaultRunConfig()
	cfg.Endpoint, cfg.Model, cfg.Mode = rig.actor.URL+"/v1", "scripted", ModeChat
	cfg.Objectives, cfg.Tasks, cfg.Policy, cfg.Concurrency = n, 1, policy, 1
	cfg.Memory = &MemoryConfig{URL: rig.memSrv.URL + "/v1", Model: "mem", EmbeddingsModel: "emb"}
	cfg.RetryBaseSeconds = 0.001
	return cfg
}

func roles(calls []core.SubCall) []string {
	out := []string{}
	for _, c := range calls {
		out = append(out, c.Role)
	}
	return out
}

const (
	ex, emb, up, sum = core.RoleExtractor, core.RoleEmbedder, core.RoleUpdater, core.RoleSummariser
)

// TestMemoryPoliciesScripted drives every memory policy over 2- and
// 4-objective HotpotQA tasks with the oracle actor and a scripted memory
// server, and checks each turn's sub-calls (roles, in order), that what the
// servers received is exactly what was stored (requests, in order, none
// twice), the memory payload in the actor's context, and the token totals.
func TestMemoryPoliciesScripted(t *testing.T) {
	rig := newMemoryRig(t)
	ctx := context.Background()
	// Expected roles per turn; the oracle searches each objective once and
	// answers when it sees its facts in the carried exchange. Policies that
	// carry no exchange (memagent, resum) make it search until the last turn.
	perTurn := func(n int, first []string, rest []string, turns int) [][]string {
		out := [][]string{{}, first}
		for i := 2; i < turns; i++ {
			out = append(out, rest)
		}
		return out[:turns]
	}
	cases := []struct {
		policy string
		want   func(n int) [][]string
	}{
		{"closed-book", func(n int) [][]string { return perTurn(n, []string{}, []string{}, n+1) }},
		{"summary:1", func(n int) [][]string {
			w := perTurn(n, []string{}, []string{sum}, n+1)
			return w
		}},
		{"resum", func(n int) [][]string { return perTurn(n, []string{sum}, []string{sum}, 6) }},
		{"memagent", func(n int) [][]string { return perTurn(n, []string{up}, []string{up}, 6) }},
		{"mem0", func(n int) [][]string {
			// Turn 2's updater rewrites fact 0, which is embedded again.
			w := perTurn(n, []string{ex, emb, emb}, []string{ex, emb, up, emb}, n+1)
			w[2] = []string{ex, emb, up, emb, emb}
			return w
		}},
		{"mem0:add-only", func(n int) [][]string { return perTurn(n, []string{ex, emb, emb}, []string{ex, emb, emb}, n+1) }},
		{"amem", func(n int) [][]string { return perTurn(n, []string{ex, emb}, []string{emb, ex, emb, up}, n+1) }},
	}
	for _, tc := range cases {
		for _, n := range []int{2, 4} {
			t.Run(fmt.Sprintf("%s/n%d", tc.policy, n), func(t *testing.T) {
				rig.actorLog.take()
				rig.memLog.take()
				sumry, err := (&Runner{Store: rig.st, Env: rig.st}).Run(ctx, rig.config(tc.policy, n), nil)
				require.NoError(t, err)
				rows, err := rig.st.Rollouts(ctx, sumry.Experiment)
				require.NoError(t, err)
				require.Len(t, rows, 1)
				d, err := rig.st.Rollout(ctx, rows[0].ID)
				require.NoError(t, err)
				require.Equal(t, storage.StatusDone, d.Status, d.Error)

				want := tc.want(n)
				require.Len(t, d.Turns, len(want))
				var stored []core.SubCall
				total := 0
				for i, tu := range d.Turns {
					assert.Equal(t, want[i], roles(tu.SubCalls), "turn %d roles", i)
					for j, c := range tu.SubCalls {
						assert.Equal(t, i, c.Turn)
						assert.Equal(t, j, c.Seq)
						assert.Equal(t, "memory", c.Endpoint)
						if tc.policy == "mem0" && c.Role == up {
							assert.Equal(t, "update: DELETE of unknown id 99", c.Error, "a bad operation is flagged on its call")
						} else {
							assert.Empty(t, c.Error, "turn %d call %d", i, j)
						}
						assert.Positive(t, c.Tokens())
						assert.NotEmpty(t, c.Response)
					}
					stored = append(stored, tu.SubCalls...)
					total += tu.Tokens() + tu.SubCallTokens()
					if tc.policy != "closed-book" {
						assert.NotEmpty(t, tu.MemoryState, "turn %d state", i)
					}
				}
				assert.Equal(t, total, d.TotalTokens, "sub-calls count in total tokens")

				// The memory server got exactly the stored sub-calls, in order.
				got := rig.memLog.take()
				require.Len(t, got, len(stored))
				for i, c := range stored {
					path := "/v1/chat/completions"
					if c.Role == core.RoleEmbedder {
						path = "/v1/embeddings"
					}
					assert.Equal(t, memRequest{Path: path, Body: c.Request}, memRequest{Path: got[i].Path, Body: got[i].Body}, "sub-call %d", i)
				}
				actor := rig.actorLog.take()
				require.Len(t, actor, len(d.Turns), "one actor call per turn")

				checkPolicy(t, tc.policy, n, d, actor)
			})
		}
	}
}

// checkPolicy checks what each policy put into the actor's context.
func checkPolicy(t *testing.T, policy string, n int, d storage.RolloutDetail, actor []memRequest) {
	turns := d.Turns
	for i, tu := range turns {
		a := actor[i]
		switch policy {
		case "closed-book":
			if tu.Action == core.ActionSearch && i < len(turns)-1 {
				assert.Nil(t, tu.Passages, "closed-book never retrieves")
				assert.Contains(t, tu.Information, core.ClosedBookNote)
				assert.NotContains(t, tu.Information, "Doc 1(")
			}
			assert.Equal(t, i, strings.Count(tu.Context, "<|assistant|>"), "closed-book keeps the whole history")
			assert.Empty(t, tu.Memory)
		case "summary:1":
			if i >= 2 {
				assert.Equal(t, fmt.Sprintf("Summary of your earlier turns:\n%s", tu.Memory), a.Body[strings.LastIndex(a.Body, "Summary of your earlier turns:"):])
				req := tu.SubCalls[0].Request
				assert.Contains(t, req, turns[i-2].Response, "folds the exchange leaving the window")
				assert.NotContains(t, req, turns[i-1].Response)
				if i >= 3 {
					assert.Contains(t, req, turns[i-1].Memory, "with the summary so far")
				}
			}
			assert.LessOrEqual(t, strings.Count(tu.Context, "<|assistant|>"), 1, "window of one exchange")
		case "resum", "memagent":
			assert.NotContains(t, tu.Context, "<|assistant|>", "context restarts from prompt + memory")
			if i >= 1 {
				assert.Contains(t, a.Body, tu.Memory)
				assert.Contains(t, tu.SubCalls[0].Request, turns[i-1].Information, "the latest information is folded")
				assert.Equal(t, tu.SubCalls[0].Response, tu.Memory)
			}
		case "mem0", "mem0:add-only":
			var st struct {
				Facts []core.Fact `json:"facts"`
			}
			require.NoError(t, json.Unmarshal([]byte(tu.MemoryState), &st))
			if i >= 1 {
				assert.Equal(t, "You are a research agent. Facts you noted in earlier turns, most relevant first:\n"+tu.Memory, a.System)
				assert.Equal(t, min(3, len(st.Facts)), strings.Count(tu.Memory, "\n- ")+1, "top-k facts")
				for _, f := range st.Facts {
					assert.Len(t, f.Vec, 16, "every fact has its embedding")
				}
			}
			if policy == "mem0" && i >= 2 {
				assert.Contains(t, tu.SubCalls[2].Request, "- id 0: ", "the updater sees similar stored facts by id")
				texts := []string{}
				for _, f := range st.Facts {
					texts = append(texts, f.Text)
				}
				assert.Contains(t, texts, "fact zero rewritten", "UPDATE applied")
			}
			if policy == "mem0:add-only" {
				assert.Len(t, st.Facts, 2*i, "every extracted fact is added")
			}
		case "amem":
			var st struct {
				Notes []core.Note `json:"notes"`
			}
			require.NoError(t, json.Unmarshal([]byte(tu.MemoryState), &st))
			assert.Len(t, st.Notes, i, "one note per observation")
			if i >= 2 {
				assert.Equal(t, "You are a research agent. Answer from the task, your latest step and these memories of earlier steps:\n"+tu.Memory, a.System)
				assert.Contains(t, tu.Memory, "- "+turns[0].Response, "the first observation is remembered")
				assert.Equal(t, []int{0}, st.Notes[len(st.Notes)-1].Links, "strengthen links the new note")
			}
			if i >= 1 {
				assert.Equal(t, 1, strings.Count(tu.Context, "<|assistant|>"), "only the last exchange is carried")
			}
		}
	}
	_ = n
}

// TestMemoryResumeMidSubCall kills an amem run in the middle of a sub-call
// (the memory server hangs on it and the run is cancelled), then resumes it:
// the sub-calls committed before the kill are replayed from the store, not
// sent again; the killed one is sent once more; no actor call is repeated;
// the rollout ends as an uninterrupted one does.
func TestMemoryResumeMidSubCall(t *testing.T) {
	rig := newMemoryRig(t)
	const n = 4
	// amem sub-calls: turn 1 [extractor, embedder], turn 2 [embedder,
	// extractor, embedder, updater]: request 5 is turn 2's note embedding.
	rig.mem.blockAt, rig.mem.blocked = 5, make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-rig.mem.blocked; cancel() }()
	r := &Runner{Store: rig.st, Env: rig.st}
	sumry, err := r.Run(ctx, rig.config("amem", n), nil)
	require.ErrorIs(t, err, context.Canceled)
	first, firstActor := rig.memLog.take(), rig.actorLog.take()
	require.Len(t, first, 5)
	require.Len(t, firstActor, 2, "turns 0 and 1 ran")
	rows, err := rig.st.Rollouts(context.Background(), sumry.Experiment)
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, storage.StatusCancelled, rows[0].Status)
	committed, err := rig.st.SubCalls(context.Background(), rows[0].ID)
	require.NoError(t, err)
	require.Len(t, committed, 4, "the calls before the kill are committed")
	assert.Equal(t, [][2]int{{1, 0}, {1, 1}, {2, 0}, {2, 1}}, [][2]int{{committed[0].Turn, committed[0].Seq},
		{committed[1].Turn, committed[1].Seq}, {committed[2].Turn, committed[2].Seq}, {committed[3].Turn, committed[3].Seq}})

	_, err = r.Resume(context.Background(), sumry.Experiment, nil)
	require.NoError(t, err)
	second, secondActor := rig.memLog.take(), rig.actorLog.take()
	require.NotEmpty(t, second)
	assert.Equal(t, first[4], second[0], "the killed call is sent again, first")
	for _, a := range first[:4] {
		assert.NotContains(t, second, a, "a committed sub-call is never sent twice")
	}
	for _, a := range firstActor {
		assert.NotContains(t, secondActor, a, "no actor call is sent twice")
	}
	d, err := rig.st.Rollout(context.Background(), rows[0].ID)
	require.NoError(t, err)
	require.Equal(t, storage.StatusDone, d.Status, d.Error)
	require.Len(t, d.Turns, n+1)
	assert.Len(t, secondActor, n+1-2)
	var stored []memRequest
	for i, tu := range d.Turns {
		want := []string{emb, ex, emb, up}
		switch i {
		case 0:
			want = []string{}
		case 1:
			want = []string{ex, emb}
		}
		assert.Equal(t, want, roles(tu.SubCalls), "turn %d", i)
		for _, c := range tu.SubCalls {
			path := "/v1/chat/completions"
			if c.Role == emb {
				path = "/v1/embeddings"
			}
			stored = append(stored, memRequest{Path: path, Body: c.Request})
		}
	}
	var sent []memRequest
	for _, m := range append(first[:4], second...) {
		sent = append(sent, memRequest{Path: m.Path, Body: m.Body})
	}
	assert.Equal(t, stored, sent, "every stored sub-call was sent exactly once")
	var notes struct {
		Notes []core.Note `json:"notes"`
	}
	require.NoError(t, json.Unmarshal([]byte(d.Turns[n].MemoryState), &notes))
	assert.Len(t, notes.Notes, n, "the memory was rebuilt and went on")
}

// TestMemoryMalformedJSON: an extractor that answers malformed JSON gets a
// clear error on its sub-call and the rollout goes on without those facts.
func TestMemoryMalformedJSON(t *testing.T) {
	rig := newMemoryRig(t)
	rig.mem.garbage = true
	sumry, err := (&Runner{Store: rig.st, Env: rig.st}).Run(context.Background(), rig.config("mem0", 2), nil)
	require.NoError(t, err)
	rows, err := rig.st.Rollouts(context.Background(), sumry.Experiment)
	require.NoError(t, err)
	d, err := rig.st.Rollout(context.Background(), rows[0].ID)
	require.NoError(t, err)
	require.Equal(t, storage.StatusDone, d.Status, d.Error)
	require.Len(t, d.Turns, 3)
	for i, tu := range d.Turns[1:] {
		require.Equal(t, []string{ex}, roles(tu.SubCalls), "turn %d: no facts, so nothing to embed or rank", i+1)
		assert.Contains(t, tu.SubCalls[0].Error, "malformed JSON reply")
		assert.Contains(t, tu.SubCalls[0].Error, "no facts taken from this turn")
		assert.Empty(t, tu.Memory)
	}
}

// TestMemoryCostsInRolloutsCSV: the rollouts CSV gives the sub-calls' tokens
// and seconds, in all and by role, beside the actor's tokens.
func TestMemoryCostsInRolloutsCSV(t *testing.T) {
	rig := newMemoryRig(t)
	ctx := context.Background()
	sumry, err := (&Runner{Store: rig.st, Env: rig.st}).Run(ctx, rig.config("amem", 2), nil)
	require.NoError(t, err)
	var buf strings.Builder
	require.NoError(t, WriteRolloutsCSV(ctx, &buf, rig.st, sumry.Experiment))
	recs, err := csv.NewReader(strings.NewReader(buf.String())).ReadAll()
	require.NoError(t, err)
	require.Len(t, recs, 2)
	row := map[string]string{}
	for i, h := range recs[0] {
		row[h] = recs[1][i]
	}
	rows, err := rig.st.Rollouts(ctx, sumry.Experiment)
	require.NoError(t, err)
	d, err := rig.st.Rollout(ctx, rows[0].ID)
	require.NoError(t, err)
	calls, tokens, byRole := 0, 0, map[string]int{}
	for _, tu := range d.Turns {
		for _, c := range tu.SubCalls {
			calls++
			tokens += c.Tokens()
			byRole[c.Role] += c.Tokens()
		}
	}
	require.Equal(t, 6, calls, "turn 1: extractor, embedder; turn 2: embedder, extractor, embedder, updater")
	assert.Equal(t, strconv.Itoa(calls), row["subcalls"])
	assert.Equal(t, strconv.Itoa(tokens), row["subcall_tokens"])
	assert.Equal(t, strconv.Itoa(d.TotalTokens-tokens), row["actor_tokens"])
	assert.Equal(t, strconv.Itoa(byRole[emb]), row["embedder_tokens"])
	assert.Equal(t, strconv.Itoa(byRole[ex]), row["extractor_tokens"])
	assert.Equal(t, strconv.Itoa(byRole[up]), row["updater_tokens"])
	assert.Equal(t, "0", row["summariser_tokens"])
	assert.Equal(t, "0", row["summariser_seconds"])
}

// TestMemorySubCallRetried: a sub-call that meets a 503 is retried like an
// actor call and the failed attempt is recorded under the memory endpoint and
// the role.
func TestMemorySubCallRetried(t *testing.T) {
	rig := newMemoryRig(t)
	rig.mem.failNext = 2 // turn 1's extractor, then its retry
	ctx := context.Background()
	sumry, err := (&Runner{Store: rig.st, Env: rig.st}).Run(ctx, rig.config("mem0", 2), nil)
	require.NoError(t, err)
	rows, err := rig.st.Rollouts(ctx, sumry.Experiment)
	require.NoError(t, err)
	d, err := rig.st.Rollout(ctx, rows[0].ID)
	require.NoError(t, err)
	require.Equal(t, storage.StatusDone, d.Status, d.Error)
	att, err := rig.st.Attempts(ctx, rows[0].ID)
	require.NoError(t, err)
	require.Len(t, att, 2)
	for i, a := range att {
		assert.Equal(t, storage.Attempt{RolloutID: rows[0].ID, Turn: 1, Attempt: i + 1, Endpoint: "memory (extractor)", Status: 503},
			storage.Attempt{RolloutID: a.RolloutID, Turn: a.Turn, Attempt: a.Attempt, Endpoint: a.Endpoint, Status: a.Status})
		assert.Contains(t, a.Error, "overloaded")
	}
	stored := 0
	for _, tu := range d.Turns {
		stored += len(tu.SubCalls)
	}
	assert.Len(t, rig.memLog.take(), stored+2, "two failed attempts, then every stored call once")
}

// TestMemoryTrajectoriesCarryMemories: the trajectories export of a memory
// policy's rollout has A-MEM's "memories" key (each turn's payload), which the
// eval.py port reads for its peak tokens.
func TestMemoryTrajectoriesCarryMemories(t *testing.T) {
	rig := newMemoryRig(t)
	ctx := context.Background()
	sumry, err := (&Runner{Store: rig.st, Env: rig.st}).Run(ctx, rig.config("amem", 2), nil)
	require.NoError(t, err)
	var buf strings.Builder
	_, err = WriteTrajectories(ctx, &buf, rig.st, TrajectoryExportOptions{}, sumry.Experiment)
	require.NoError(t, err)
	var line pyDict
	require.NoError(t, json.Unmarshal([]byte(buf.String()), &line))
	rows, err := rig.st.Rollouts(ctx, sumry.Experiment)
	require.NoError(t, err)
	d, err := rig.st.Rollout(ctx, rows[0].ID)
	require.NoError(t, err)
	var want []any
	longest := 0
	for _, tu := range d.Turns {
		want = append(want, tu.Memory)
		longest = max(longest, runeCount(tu.Memory))
	}
	assert.Equal(t, want, line["memories"])
	require.Positive(t, longest, "turn 2 retrieved a note")
	assert.Equal(t, longest, evalMaxMemory(line, runeCount))
	path := filepath.Join(t.TempDir(), "amem.jsonl")
	require.NoError(t, os.WriteFile(path, []byte(buf.String()), 0o644))
	lines, err := evalPy(path, runeCount)
	require.NoError(t, err, "eval.py reads the memories key")
	require.Len(t, lines, 1)
	if lines[0].PeakNonCompression != nil {
		delete(line, "memories")
		assert.Equal(t, *evalPeakNonCompression(line, runeCount)+longest, *lines[0].PeakNonCompression)
	}
}

// countingModel answers every completion with "fresh N" and counts calls.
type countingModel struct{ n int }

func (m *countingModel) Complete(_ context.Context, c core.Context, _ []string) (core.Completion, error) {
	m.n++
	return core.Completion{Text: fmt.Sprintf("fresh %d", m.n), Usage: core.Usage{PromptTokens: 3, CompletionTokens: 2, Reported: true}}, nil
}

// TestSubCallReplayAndDivergence: a resumed turn replays its committed calls
// while they match; at the first call that differs it sends, and the
// committed calls of that turn from there on are dropped from the store.
func TestSubCallReplayAndDivergence(t *testing.T) {
	st := bundleStore(t)
	ctx := context.Background()
	e, err := st.CreateExperiment(ctx, "replay", `{}`, "h")
	require.NoError(t, err)
	ids, err := st.AddTasks(ctx, e, []core.Task{{Key: "k", Dataset: "hotpotqa", Objectives: []core.Objective{{QuestionID: "q", Question: "Q?", Gold: []string{"a"}}}}})
	require.NoError(t, err)
	rid, err := st.CreateRollout(ctx, e, ids["k"], "amem", "m")
	require.NoError(t, err)
	for i, req := range []string{"first", "second", "third"} {
		require.NoError(t, st.AppendSubCall(ctx, rid, core.SubCall{Turn: 2, Seq: i, Role: core.RoleExtractor, Request: req, Response: "old " + req}))
	}
	require.NoError(t, st.AppendSubCall(ctx, rid, core.SubCall{Turn: 1, Seq: 0, Role: core.RoleExtractor, Request: "done", Response: "kept"}))
	model := &countingModel{}
	ep := newEndpointState(EndpointProfile{Name: "default", Concurrency: 1}, model, DefaultRunConfig().retryPolicy())
	r := &Runner{Store: st}
	sc, err := r.newSubCaller(ctx, rid, 2, ep, &memoryEndpoints{byAgent: map[string]*embedEndpoint{}}, newGate(), DefaultRunConfig().retryPolicy(), newTracker(e, nil, nil, newGate(), nil), nil)
	require.NoError(t, err)

	got, err := sc.Generate(ctx, core.SubCall{Turn: 2, Seq: 0, Role: core.RoleExtractor}, "first")
	require.NoError(t, err)
	assert.True(t, got.Replayed)
	assert.Equal(t, "old first", got.Response)
	assert.Zero(t, model.n, "a committed call is not sent again")

	got, err = sc.Generate(ctx, core.SubCall{Turn: 2, Seq: 1, Role: core.RoleExtractor}, "changed")
	require.NoError(t, err)
	assert.False(t, got.Replayed)
	assert.Equal(t, "fresh 1", got.Response)
	stored, err := st.SubCalls(ctx, rid)
	require.NoError(t, err)
	require.Len(t, stored, 3, "turn 2's stale seq 2 is dropped")
	assert.Equal(t, "fresh 1", stored[2].Response)
	got, err = sc.Generate(ctx, core.SubCall{Turn: 2, Seq: 2, Role: core.RoleExtractor}, "third")
	require.NoError(t, err)
	assert.Equal(t, "fresh 2", got.Response, "after the divergence nothing is replayed")

	stored, err = st.SubCalls(ctx, rid)
	require.NoError(t, err)
	var resp []string
	for _, c := range stored {
		resp = append(resp, fmt.Sprintf("%d/%d %s", c.Turn, c.Seq, c.Response))
	}
	assert.Equal(t, []string{"1/0 kept", "2/0 old first", "2/1 fresh 1", "2/2 fresh 2"}, resp)
}
