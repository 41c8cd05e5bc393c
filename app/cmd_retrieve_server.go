package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/mem1lab/mem1lab/experiments"
)

// cmdRetrieveServer serves a corpus over the /retrieve protocol
// (experiments.RetrieveServer) until ctx ends.
func (c *CLI) cmdRetrieveServer(ctx context.Context, args []string) error {
	fs := c.flags("retrieve-server")
	corpus := fs.String("corpus", "", "corpus JSONL ({id,title,text} or wiki-18 {id,contents}); default: the bundle's unified/corpus.jsonl")
	addr := fs.String("addr", "127.0.0.1:8013", "listen address (port 0 picks a free port)")
	topk := fs.Int("topk", 3, "passages per query when a request gives no topk")
	if err := parseFlagsOnly(fs, args); err != nil {
		return err
	}
	path := *corpus
	if path == "" {
		dir := DefaultBundleDir()
		if dir == "" {
			return errors.New("no corpus: pass --corpus FILE.jsonl (no QA bundle found for its unified/corpus.jsonl)")
		}
		path = filepath.Join(dir, "unified", "corpus.jsonl")
	}
	ps, err := experiments.LoadCorpusJSONL(path)
	if err != nil {
		return err
	}
	rs := experiments.NewRetrieveServer(ps)
	rs.DefaultTopK = *topk
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: rs, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(c.Stderr, "mem1lab retrieve-server: %d passages from %s; listening on http://%s/retrieve\n", rs.Len(), path, ln.Addr())
	return serveUntilDone(ctx, srv, ln, false)
}
