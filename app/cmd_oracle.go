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
	if err := fs.Parse(args); err != nil {
		return err
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
	srv := &http.Server{Handler: oracle.New(qs), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(c.Stderr, "mem1lab oracle: %d questions; listening on http://%s (model %q, OpenAI-compatible /v1)\n",
		len(qs), ln.Addr(), oracle.ModelName)
	return serveUntilDone(ctx, srv, ln, false)
}
