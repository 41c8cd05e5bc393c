package app

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"
)

// serveUntilDone serves srv on ln until ctx ends, then shuts srv down,
// giving open requests 5 s to finish. It returns Serve's error when serving
// stops first, else Shutdown's. With closeStale, a Shutdown that runs past
// the 5 s (a client's connection that never sent a request, StateNew, holds
// it) closes srv instead and returns Close's error.
func serveUntilDone(ctx context.Context, srv *http.Server, ln net.Listener, closeStale bool) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(shut)
		if closeStale && errors.Is(err, context.DeadlineExceeded) {
			return srv.Close()
		}
		return err
	}
}
