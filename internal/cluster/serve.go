// Package cluster runs Parley's servers as the `parley` binary offers them:
// the login server ([RunLogin]), a supernode with its STUN service and relay
// ([RunSupernode]), a standalone TURN relay ([RunRelay]) and the whole local
// network behind `parley up` ([Up]: login server on SQLite with the web page,
// supernode and relay, and the echo user), plus the pieces they share: an
// HTTP server bound to a context ([Serve]), the web front a supernode serves
// the browser client through ([WebFront]) and the relay offer it hands to
// users ([StartRelay], [ICEServers]).
//
// It wires packages login, supernode, relay and web together; cmd/parley
// only turns flags and environment into these Configs and handles signals.
// It is server-side: client packages must not import it.
package cluster

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// shutdownTimeout bounds how long Serve waits for requests in flight when its
// context ends.
const shutdownTimeout = 5 * time.Second

// Serve serves srv on ln (with TLS when certFile and keyFile are set, or
// srv.TLSConfig has a GetCertificate, as an ACME manager's does) until
// ctx ends, then shuts the server down and returns nil; it returns early with
// the error that stops the server otherwise. It closes ln. The server's
// timeouts and limits are its maker's (login.Server.HTTPServer,
// supernode.Server.HTTPServer); a nil srv.ErrorLog logs to log at debug level.
func Serve(ctx context.Context, ln net.Listener, srv *http.Server, certFile, keyFile string, log *slog.Logger) error {
	log = orDiscard(log)
	if srv.ErrorLog == nil {
		srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	}
	errc := make(chan error, 1)
	go func() {
		if certFile != "" || srv.TLSConfig != nil && srv.TLSConfig.GetCertificate != nil {
			errc <- srv.ServeTLS(ln, certFile, keyFile)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		srv.Shutdown(sctx)
		<-errc
		return nil
	}
}

// Listen listens on the TCP address addr; its error is a *ListenError of
// RoleListen.
func Listen(addr string) (net.Listener, error) {
	return listenAs(RoleListen, addr)
}

// listenOr returns ln, or a new listener on addr (for role) when ln is nil.
func listenOr(ln net.Listener, role, addr string) (net.Listener, error) {
	if ln != nil {
		return ln, nil
	}
	return listenAs(role, addr)
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
