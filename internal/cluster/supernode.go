package cluster

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley/parley/internal/nodeid"
	"github.com/parley/parley/supernode"
	"github.com/parley/parley/web"
	"github.com/parley/parley/wire/loginapi"
)

// loginKeyTries and loginKeyRetry bound how long a supernode waits at start
// for its login server's key: a supernode started alongside its login
// server waits for it.
const (
	loginKeyTries = 30
	loginKeyRetry = time.Second
)

// SupernodeConfig configures [RunSupernode]. LoginURL is required; every
// other zero field is the documented default.
type SupernodeConfig struct {
	// LoginURL is the login server the supernode registers with (and the
	// one its web front passes /api/ requests on to).
	LoginURL string
	// LoginKey pins the login server's public key; nil = ask the login
	// server for it at start, waiting up to 30 s for it to answer.
	LoginKey ed25519.PublicKey
	// Login is the client for LoginURL; nil = a new one.
	Login *loginapi.Client
	// Listen is the TCP address of the websocket, the mesh and the
	// dial-back. Default ":8081".
	Listen string
	// Listener, when set, is a bound listener to serve on instead of
	// Listen; RunSupernode closes it.
	Listener net.Listener
	// PublicAddr is the host clients reach this supernode and its relay at.
	// Default: the listen host, or 127.0.0.1 when that is empty or
	// unspecified (see [SupernodeConfig.Host]).
	PublicAddr string
	// CertFile and KeyFile, when both set, serve wss:// and https:// (PEM).
	CertFile, KeyFile string
	// NodeKeyFile keeps the node key across runs (made on first use); "" = a
	// fresh key each run.
	NodeKeyFile string
	// Seeds are client URLs of other supernodes to join the mesh through,
	// besides the login server's list.
	Seeds []string
	// Web serves the web client at / through [WebFront].
	Web bool
	// ACME, when set, serves wss:// and https:// (and the relay's TLS
	// listener) with a certificate from an ACME CA instead of CertFile and
	// KeyFile; its Domain should be PublicAddr.
	ACME *ACMEConfig
	// Metrics says where /metrics is served (by default on Listen); the
	// relay's metrics are in the same registry.
	Metrics MetricsConfig
	// Relay is the supernode's own relay. Its listen host is Listen's; its
	// nil IP is [SupernodeConfig.Host] resolved; its nil Secret a random one
	// (then ExternalRelays must be empty); its nil Logger is Logger; its
	// TLSConfig, with ACME, the ACME certificate's. Its Metrics are
	// ignored.
	Relay RelayConfig
	// ExternalRelays are standalone relays (host:port) sharing Relay.Secret,
	// offered to users besides the own relay.
	ExternalRelays []string
	// Limits are the supernode's limits (supernode.Config's
	// MaxSessionsPerUser, MaxSessionsPerAddr, MaxConnsPerAddr, IdleTimeout,
	// the HTTP timeouts and LogPerMinute; zero values are their defaults).
	// The fields that name the supernode, its keys, login server, relays and
	// logger are set by RunSupernode and ignored here.
	Limits supernode.Config
	// Logger receives the supernode's and its relay's logs; nil discards them.
	Logger *slog.Logger

	// listening, when set, is called once every listener is bound (Up's
	// OnUp waits for it).
	listening func()
}

// Host returns the host clients reach the supernode and its relay at:
// PublicAddr, else the listen host unless unspecified, else 127.0.0.1.
func (cfg SupernodeConfig) Host() string {
	if cfg.PublicAddr != "" {
		return cfg.PublicAddr
	}
	if h := cfg.listenHost(); h != "" && h != "0.0.0.0" && h != "::" {
		return h
	}
	return "127.0.0.1"
}

func (cfg SupernodeConfig) listenHost() string {
	addr := cfg.Listen
	if cfg.Listener != nil && addr == "" {
		addr = cfg.Listener.Addr().String()
	}
	h, _, _ := net.SplitHostPort(addr)
	return h
}

// RunSupernode runs a supernode with its relay until ctx ends, then closes
// them and returns nil. Its listeners are bound before anything says it is
// listening; a listener that cannot be opened is a *ListenError.
func RunSupernode(ctx context.Context, cfg SupernodeConfig) error {
	log := orDiscard(cfg.Logger)
	if cfg.Listen == "" && cfg.Listener == nil {
		cfg.Listen = ":8081"
	}
	switch {
	case cfg.LoginURL == "":
		return fmt.Errorf("cluster: supernode: no login URL: %w", ErrConfig)
	case len(cfg.ExternalRelays) > 0 && cfg.Relay.Secret == nil:
		return fmt.Errorf("cluster: supernode: external relays without their secret: %w", ErrConfig)
	case cfg.ACME != nil && cfg.CertFile != "":
		return fmt.Errorf("cluster: supernode: a certificate file and ACME: %w", ErrConfig)
	}
	if cfg.Login == nil {
		cfg.Login = loginapi.NewClient(cfg.LoginURL, nil)
	}
	if cfg.LoginKey == nil {
		key, err := fetchLoginKey(ctx, cfg.Login, log)
		if err != nil {
			return err
		}
		cfg.LoginKey = key
	}
	ln, err := listenOr(cfg.Listener, RoleListen, cfg.Listen)
	if err != nil {
		return err
	}
	defer ln.Close()
	reg := cfg.Metrics.registry()
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
	rc := cfg.Relay
	rc.metrics = reg
	if mgr != nil && rc.TLS != "" {
		rc.TLSConfig = mgr.TLSConfig()
	}
	if rc.Secret == nil {
		rc.Secret = make([]byte, 32)
		rand.Read(rc.Secret)
	}
	if rc.Logger == nil {
		rc.Logger = log
	}
	if rc.IP == nil {
		if rc.IP, err = resolveIP(cfg.Host()); err != nil {
			return err
		}
	}
	r, err := StartRelay(rc, cfg.listenHost())
	if err != nil {
		return err
	}
	defer r.Close()
	logRelay(log, r, rc.IP)
	nodeKey, err := nodeid.LoadOrCreate(cfg.NodeKeyFile)
	if err != nil {
		return err
	}
	name := net.JoinHostPort(cfg.Host(), strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	scheme := "ws"
	if cfg.CertFile != "" || mgr != nil {
		scheme = "wss"
	}
	if cfg.CertFile != "" {
		CheckCertFile(cfg.CertFile, cfg.KeyFile, cfg.Host(), log)
	}
	advertise := scheme + "://" + name + "/v1/ws"
	sc := cfg.Limits
	sc.LoginKey, sc.Name, sc.Logger, sc.Login, sc.Advertise, sc.NodeKey = cfg.LoginKey, name, log, cfg.Login, advertise, nodeKey
	sc.Seeds, sc.ICEServers = cfg.Seeds, ICEServers(cfg.Host(), r, rc.Tuning.SecondIP, cfg.ExternalRelays, rc.Secret)
	sc.Metrics, sc.RelayHealth = reg, r.Health
	sn, err := supernode.New(sc)
	if err != nil {
		return err
	}
	defer sn.Close()
	log.Info("supernode listening", "addr", ln.Addr().String(), "advertise", advertise)
	h := sn.Handler()
	if cfg.Web {
		if h, err = WebFront(h, cfg.LoginURL, log); err != nil {
			return err
		}
		log.Info("serving the web client", "url", strings.Replace(advertise, "/v1/ws", "/", 1), "login", cfg.LoginURL)
	}
	hs := sn.HTTPServer(cfg.Metrics.withMetrics(h, reg))
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
	if cfg.listening != nil {
		cfg.listening()
	}
	return Serve(ctx, sn.LimitListener(ln), hs, cfg.CertFile, cfg.KeyFile, log)
}

// resolveIP returns the address host (an IP or a name) stands for.
func resolveIP(host string) (net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return ip, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return nil, fmt.Errorf("cluster: resolve %s: %w", host, err)
	}
	return ips[0], nil // LookupIP returns an error rather than no address
}

// fetchLoginKey asks the login server for its key, retrying for a while so
// that a supernode started alongside its login server waits for it.
func fetchLoginKey(ctx context.Context, lc *loginapi.Client, log *slog.Logger) (ed25519.PublicKey, error) {
	var err error
	for range loginKeyTries {
		var key ed25519.PublicKey
		key, err = lc.Key(ctx)
		if err == nil {
			return key, nil
		}
		if !errors.Is(err, loginapi.ErrUnreachable) {
			return nil, err
		}
		log.Warn("login server not reachable yet", "err", err)
		t := time.NewTimer(loginKeyRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	return nil, err
}

// WebFront serves the web client at "/" in front of a supernode's handler,
// and passes the page's login API requests (/api/) on to the login server,
// so that the page, the API and the websocket share one origin (the login
// server sends no CORS headers). It appends the browser's address to
// X-Forwarded-For; a login server started with --trusted-proxy for this
// supernode's address uses it for its per-address limits (otherwise every
// browser behind this supernode shares them). Serve the page only from a
// supernode you run yourself: whoever serves the page's code sees what is
// typed into it.
func WebFront(sn http.Handler, loginURL string, log *slog.Logger) (http.Handler, error) {
	log = orDiscard(log)
	if err := CheckWebLoginURL(loginURL); err != nil {
		return nil, err
	}
	target, _ := url.Parse(loginURL)

	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
			r.SetXForwarded()
		},
		// The front sets the page's security headers itself (once).
		ModifyResponse: func(resp *http.Response) error {
			web.DelSecurityHeaders(resp.Header)
			return nil
		},
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Warn("web: login server unreachable", "err", err)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte(`{"error":"login server unreachable"}` + "\n"))
		},
	}
	mux := http.NewServeMux()
	mux.Handle("/", web.Handler())
	mux.Handle("/api/", proxy)
	mux.Handle("/v1/", sn)
	mux.Handle("/healthz", sn)
	// The page's security headers (CSP, no framing, ...) on every answer of
	// this origin: the page, the API passed on, the websocket's upgrade.
	return web.Secure(mux), nil
}

// CheckWebLoginURL checks that loginURL is one a [WebFront] can pass the
// page's API requests on to: an http:// or https:// URL with a host.
func CheckWebLoginURL(loginURL string) error {
	target, err := url.Parse(loginURL)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return fmt.Errorf("cluster: web front: the login URL %q is not an http(s) URL: %w", loginURL, ErrConfig)
	}
	return nil
}
