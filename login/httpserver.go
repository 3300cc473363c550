package login

import (
	"log/slog"
	"net"
	"net/http"
	"net/netip"

	"github.com/parley/parley/internal/connlimit"
)

// HTTPServer returns an http.Server serving [Server.Handler] with the
// Config's timeouts (ReadHeaderTimeout, ReadTimeout, WriteTimeout,
// IdleTimeout; see their defaults), MaxHeaderBytes and an ErrorLog into the
// server's logger at debug level (TLS handshake noise and the like). The
// program that listens should use it, with a listener wrapped by
// [Server.LimitListener]:
//
//	hs := s.HTTPServer()
//	hs.Serve(s.LimitListener(ln)) // or hs.ServeTLS(s.LimitListener(ln), cert, key)
//
// The caller may change fields before serving (Addr, TLSConfig, ErrorLog).
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// LimitListener wraps ln (a TCP listener, before any TLS) so that one
// client address (IPv4 address, IPv6 /64) holds at most
// Config.MaxConnsPerAddr connections at once; a connection beyond that is
// closed as soon as it is accepted (and logged at debug level). Peers in
// Config.TrustedProxies are exempt, since a front end carries many clients.
func (s *Server) LimitListener(ln net.Listener) net.Listener {
	return connlimit.Wrap(ln, connlimit.Config{
		PerAddr: s.cfg.MaxConnsPerAddr,
		Exempt:  s.cfg.TrustedProxies,
		OnRefuse: func(ip netip.Addr) {
			s.log.Debug("connection refused: too many from this address", "addr", addrKey(ip, ""), "max", s.cfg.MaxConnsPerAddr)
		},
	})
}
