package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"

	"github.com/parley/parley/login"
	"github.com/parley/parley/web"
)

// LoginConfig configures [RunLogin]. The zero value runs a login server on
// :8080 with its key and SQLite database in the current directory.
type LoginConfig struct {
	// Login configures the server itself. Its zero DB is DataDir/login.db
	// (login's own default), its nil Logger is Logger, its nil Metrics is
	// Metrics.Registry.
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
	// ACME, when set, serves HTTPS with a certificate from an ACME CA
	// instead of CertFile and KeyFile.
	ACME *ACMEConfig
	// Metrics says where /metrics is served (by default on Listen).
	Metrics MetricsConfig
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
}

// RunLogin runs a login server until ctx ends, then closes it and returns nil.
// Its listeners are bound before anything says it is listening; a listener
// that cannot be opened is a *ListenError.
func RunLogin(ctx context.Context, cfg LoginConfig) error {
	log := orDiscard(cfg.Logger)
	if cfg.Listen == "" {
		cfg.Listen = ":8080"
	}
	if cfg.ACME != nil && cfg.CertFile != "" {
		return fmt.Errorf("cluster: login server: a certificate file and ACME: %w", ErrConfig)
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
	reg := cfg.Metrics.registry()
	if lc.Metrics == nil {
		lc.Metrics = reg
	}
	ln, err := listenOr(cfg.Listener, RoleListen, cfg.Listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	serveMetrics, closeMetrics, err := cfg.Metrics.metricsServer(reg, log)
	if err != nil {
		return err
	}
	defer closeMetrics()
	mgr, runACME, closeACME, err := acmeStart(cfg.ACME, log)
	if err != nil {
		return err
	}
	defer closeACME()
	ls, err := login.New(lc)
	if err != nil {
		return err
	}
	defer ls.Close()
	if cfg.CertFile != "" {
		CheckCertFile(cfg.CertFile, cfg.KeyFile, "", log)
	}
	log.Info("login server listening", "addr", ln.Addr().String(), "tls", cfg.CertFile != "" || mgr != nil)
	hs := ls.HTTPServer()
	hs.Handler = cfg.Metrics.withMetrics(hs.Handler, reg)
	if cfg.Web {
		// The page's security headers (CSP, no framing, ...) on every
		// answer of this origin, API included.
		hs.Handler = web.Secure(hs.Handler)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if serveMetrics != nil {
		wg.Go(func() { serveMetrics(ctx) })
	}
	if mgr != nil {
		hs.TLSConfig = mgr.TLSConfig()
		wg.Go(func() { runACME(ctx) })
	}
	return Serve(ctx, ls.LimitListener(ln), hs, cfg.CertFile, cfg.KeyFile, log)
}
