package experiments

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The /retrieve client keeps an idle connection per rollout that can search
// at once: 16 rollouts searching together, round after round, reuse their
// connections instead of dialing (http.DefaultClient keeps 2 per host, and
// would dial about 14 anew every round).
func TestHTTPRetrieverKeepsAConnectionPerRollout(t *testing.T) {
	const workers, rounds = 16, 5
	var dials atomic.Int64
	var mu sync.Mutex
	arrived := 0
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Hold each round until all its searches are in, so they need
		// workers connections at the same moment.
		mu.Lock()
		arrived++
		ch := release
		if arrived == workers {
			arrived = 0
			close(release)
			release = make(chan struct{})
		}
		mu.Unlock()
		<-ch
		_, _ = w.Write([]byte(`{"result":[[{"document":{"id":"1","contents":"\"T\"\ntext"},"score":1}]]}`))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	cfg := DefaultRunConfig()
	cfg.Concurrency = workers
	cfg.Retriever = &RetrieverConfig{Kind: RetrieverHTTP, URL: srv.URL + "/retrieve"}
	env, err := NewRetriever(cfg, nil)
	require.NoError(t, err)
	for range rounds {
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ps, err := env.Search(context.Background(), "q", 1)
				assert.NoError(t, err)
				assert.Len(t, ps, 1)
			}()
		}
		wg.Wait()
	}
	assert.GreaterOrEqual(t, dials.Load(), int64(workers), "one round needs a connection per search")
	assert.LessOrEqual(t, dials.Load(), int64(2*workers), "later rounds reuse the idle connections")
}
