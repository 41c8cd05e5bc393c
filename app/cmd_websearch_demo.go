package app

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/mem1lab/mem1lab/experiments"
)

// cmdWebSearchDemo serves Serper's search API shape over the store's BM25
// index (experiments.SerperServer) until ctx ends, so that
// `run --retriever serper:URL` can be tried without the internet.
func (c *CLI) cmdWebSearchDemo(ctx context.Context, args []string) error {
	fs := c.flags("websearch-demo")
	db := fs.String("db", DefaultDBPath(), "SQLite store whose corpus is searched")
	bundle := fs.String("bundle", "", "QA bundle imported first when the store is empty")
	addr := fs.String("addr", "127.0.0.1:8014", "listen address (port 0 picks a free port)")
	keyEnv := fs.String("api-key-env", experiments.DefaultSerperKeyEnv, "requests must send the key in this variable (when it is set)")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	st, err := c.openStore(ctx, *db, *bundle)
	if err != nil {
		return err
	}
	defer st.Close()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	key := os.Getenv(*keyEnv)
	srv := &http.Server{Handler: &experiments.SerperServer{Env: st, Key: key}, ReadHeaderTimeout: 10 * time.Second}
	check := "any key accepted"
	if key != "" {
		check = "X-API-KEY must match $" + *keyEnv
	}
	fmt.Fprintf(c.Stderr, "mem1lab websearch-demo: Serper-shaped search over %s (%s); listening on http://%s/search\n", *db, check, ln.Addr())
	return serveUntilDone(ctx, srv, ln, true)
}
