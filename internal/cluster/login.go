package cluster

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"

	"github.com/parley/parley/login"
	"github.com/parley/parley/web"
)

// LoginConfig configures [RunLogin]. The zero value runs a login server on
// :8080 with its key and SQLite database in the current directory.
type LoginConfig struct {
	// Login configures the server itself. Its zero DB is DataDir/login.db
	// (login's own default), its nil Logger is Logger.
	Login login.Config
	// Web serves the web client at / (sets Login.Web).
	Web bool
	// Listen is the TCP address to serve on. Default ":8080".
	Listen string
	// Listener, when set, is a bound listener to serve on instead of Listen;
	// RunLogin closes it.
	Listener net.Listener
	// CertFile and KeyFile, when both set, serve HTTPS (PEM files).
	CertFile, KeyFile string
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// RunLogin runs a login server until ctx ends, then closes it and returns nil.
func RunLogin(ctx context.Context, cfg LoginConfig) error {
	log := orDiscard(cfg.Logger)
	if cfg.Listen == "" {
		cfg.Listen = ":8080"
	}
	lc := cfg.Login
	if lc.Logger == nil {
		lc.Logger = log
	}
	if lc.DB == "" {
		lc.DB = filepath.Join(lc.DataDir, "login.db")
	}
	if cfg.Web {
		lc.Web = web.Handler()
	}
	ls, err := login.New(lc)
	if err != nil {
		return err
	}
	defer ls.Close()
	ln, err := listenOr(cfg.Listener, cfg.Listen)
	if err != nil {
		return err
	}
	log.Info("login server listening", "addr", ln.Addr().String(), "tls", cfg.CertFile != "")
	hs := ls.HTTPServer()
	if cfg.Web {
		// The page's security headers (CSP, no framing, ...) on every
		// answer of this origin, API included.
		hs.Handler = web.Secure(hs.Handler)
	}
	return Serve(ctx, ls.LimitListener(ln), hs, cfg.CertFile, cfg.KeyFile, log)
}
