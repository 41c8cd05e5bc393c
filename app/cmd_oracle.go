package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/mem1lab/mem1lab/experiments/oracle"
	"github.com/mem1lab/mem1lab/storage"
)

// cmdOracle serves the retrieval-oracle agent (package oracle) until ctx ends.
func (c *CLI) cmdOracle(ctx context.Context, args []string) error {
	fs := c.flags("oracle")
	db := fs.String("db", DefaultDBPath(), "SQLite store whose questions the oracle knows")
	bundle := fs.String("bundle", "", "QA bundle imported first when the store is empty")
	addr := fs.String("addr", "127.0.0.1:8015", "listen address (port 0 picks a free port)")
	latency := fs.Duration("latency", 0, "delay before each reply (e.g. 2s), so a run lasts long enough to pause, cancel or quit during it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *latency < 0 {
		return fmt.Errorf("--latency %v: must not be negative", *latency)
	}
	st, err := c.openStore(ctx, *db, *bundle)
	if err != nil {
		return err
	}
	var qs []storage.Question
	infos, err := st.Datasets(ctx)
	if err == nil {
		for _, d := range infos {
			more, qerr := st.Questions(ctx, d.Name, 0, 0)
			if qerr != nil {
				err = qerr
				break
			}
			qs = append(qs, more...)
		}
	}
	st.Close()
	if err != nil {
		return err
	}
	if len(qs) == 0 {
		return errors.New("the store holds no questions: run `mem1lab import` first")
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: delayed(oracle.New(qs), *latency), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(c.Stderr, "mem1lab oracle: %d questions; listening on http://%s (model %q, OpenAI-compatible /v1)\n",
		len(qs), ln.Addr(), oracle.ModelName)
	return serveUntilDone(ctx, srv, ln, false)
}

// delayed is h answering each request d later (at once when d is 0); a request
// whose client goes away while it waits gets no reply.
func delayed(h http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			h.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	})
}
