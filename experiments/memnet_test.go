package experiments

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/mem1lab/mem1lab/core"
	"github.com/mem1lab/mem1lab/internal/fixture"
	"github.com/mem1lab/mem1lab/storage"
)

// Tests that measure time (rate limits, Retry-After, the breaker's pause,
// hangs past a timeout, pausing) run inside a testing/synctest bubble: time
// there is fake and moves only when every goroutine of the bubble is blocked,
// so what they assert holds however loaded the machine is, and no test waits
// in wall-clock time. A real socket is not "durably blocking", so such tests
// serve their HTTP handler over memNet, an in-memory network of net.Pipe
// connections, and talk to it through the real go-openai adapter.

// memNet is a net.Listener whose connections come from its dial method.
type memNet struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newMemNet() *memNet { return &memNet{conns: make(chan net.Conn), done: make(chan struct{})} }

func (n *memNet) Accept() (net.Conn, error) {
	select {
	case c := <-n.conns:
		return c, nil
	case <-n.done:
		return nil, net.ErrClosed
	}
}

func (n *memNet) Close() error {
	n.once.Do(func() { close(n.done) })
	return nil
}

func (n *memNet) Addr() net.Addr { return memAddr{} }

// dial connects to the listener, ignoring the address.
func (n *memNet) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case n.conns <- server:
		return client, nil
	case <-ctx.Done():
		client.Close()
		server.Close()
		return nil, ctx.Err()
	case <-n.done:
		client.Close()
		server.Close()
		return nil, net.ErrClosed
	}
}

type memAddr struct{}

func (memAddr) Network() string { return "mem" }
func (memAddr) String() string  { return "mem.test:80" }

// memURL is the endpoint URL of a handler served by serveMem.
const memURL = "http://mem.test/v1"

// serveMem serves h on an in-memory network (call it inside the bubble) and
// returns a Runner.NewModel building the go-openai adapter wired to it. stop
// closes the server and every connection and waits for running handlers.
func serveMem(h http.Handler) (newModel func(RunConfig) (core.Model, error), stop func()) {
	n := newMemNet()
	var inflight sync.WaitGroup // handlers still running
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inflight.Add(1)
		defer inflight.Done()
		h.ServeHTTP(w, r)
	})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = srv.Serve(n)
	}()
	newModel = func(c RunConfig) (core.Model, error) {
		m, err := NewOpenAIModel(c.EndpointConfig())
		if err != nil {
			return nil, err
		}
		m.transport.DialContext = n.dial
		m.transport.Proxy = nil
		return m, nil
	}
	return newModel, func() {
		_ = srv.Close()
		wg.Wait()
		inflight.Wait() // a bubble must end with none of its goroutines left
	}
}

var (
	bubbleOnce sync.Once
	bubbleDB   string
	bubbleErr  error
)

// bubbleStoreFile copies a closed store holding the real bundle into the
// test's temp dir and returns its path, to be opened inside the bubble (a
// store opened outside it must not be used there). The bundle is imported once.
func bubbleStoreFile(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(bundleDir, "unified", "questions.jsonl")); err != nil {
		fixture.Missing(t, "qa-bundle not found at %s: %v", bundleDir, err)
	}
	bubbleOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mem1lab-bubble-")
		if err != nil {
			bubbleErr = err
			return
		}
		bubbleDB = filepath.Join(dir, "template.db")
		st, err := storage.Open(bubbleDB)
		if err != nil {
			bubbleErr = err
			return
		}
		if _, err := st.ImportBundle(context.Background(), bundleDir); err != nil {
			st.Close()
			bubbleErr = err
			return
		}
		bubbleErr = st.Close() // checkpoints the WAL into the file
	})
	require.NoError(t, bubbleErr)
	dst := filepath.Join(t.TempDir(), "lab.db")
	in, err := os.Open(bubbleDB)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.Create(dst)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
	return dst
}

// openBubbleStore opens the copy at path; call it inside the bubble, and the
// returned close before the bubble's function returns.
func openBubbleStore(t *testing.T, path string) *storage.Store {
	t.Helper()
	st, err := storage.Open(path)
	require.NoError(t, err)
	return st
}
