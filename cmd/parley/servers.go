package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/parley/parley/internal/nodeid"
	"github.com/parley/parley/login"
	"github.com/parley/parley/supernode"
	"github.com/parley/parley/web"
	"github.com/parley/parley/wire/loginapi"
)

// serve runs an HTTP server on addr until ctx ends, then shuts it down.
func serve(ctx context.Context, ln net.Listener, h http.Handler, certFile, keyFile string, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	errc := make(chan error, 1)
	go func() {
		if certFile != "" {
			errc <- srv.ServeTLS(ln, certFile, keyFile)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		<-errc
		return nil
	}
}

func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

func checkTLS(cert, key string) error {
	if (cert == "") != (key == "") {
		return usageError{"--tls-cert and --tls-key go together"}
	}
	return nil
}

func cmdLoginServer(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("login-server", flag.ContinueOnError)
	addr := fs.String("listen", ":8080", "listen `ADDR`")
	data := fs.String("data", "./parley-data", "`DIR` for the signing key (and the SQLite database by default)")
	db := fs.String("db", "", "SQLite `PATH_OR_DSN` (default DIR/login.db), or a postgres:// URL shared by several login servers")
	cert := fs.String("tls-cert", "", "TLS certificate `FILE`")
	key := fs.String("tls-key", "", "TLS key `FILE`")
	withWeb := fs.Bool("web", false, "serve the web client at /")
	var allow, proxies cidrList
	fs.Var(&allow, "supernode-allow", "`CIDR` the login server may dial supernodes back in although it is loopback, private or special (labs; repeatable)")
	fs.Var(&proxies, "trusted-proxy", "`CIDR` of front ends (supernodes with --web) whose X-Forwarded-For names the browser, for rate limits (repeatable)")
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	if err := checkTLS(*cert, *key); err != nil {
		return err
	}
	log := e.logger(slog.LevelInfo)
	cfg := login.Config{DB: *db, DataDir: *data, Logger: log, DialBackAllow: allow, TrustedProxies: proxies}
	if cfg.DB == "" {
		cfg.DB = filepath.Join(*data, "login.db")
	}
	if *withWeb {
		cfg.Web = web.Handler()
	}
	ls, err := login.New(cfg)
	if err != nil {
		return err
	}
	defer ls.Close()
	ln, err := listen(*addr)
	if err != nil {
		return err
	}
	log.Info("login server listening", "addr", ln.Addr().String(), "tls", *cert != "")
	return serve(ctx, ln, ls.Handler(), *cert, *key, log)
}

// supernodeFlags are the flags of `parley supernode` (and the parts of `parley up`).
type supernodeFlags struct {
	listen, publicAddr, cert, key, loginKey string
	nodeKey                                 string
	seeds                                   urlList
	relay                                   relayFlags
	web                                     bool
	loginURL                                string // where --web sends the page's login API requests
}

func (f *supernodeFlags) register(fs *flag.FlagSet) {
	f.relay.register(fs, true)
	fs.StringVar(&f.listen, "listen", ":8081", "listen `ADDR`")
	fs.StringVar(&f.publicAddr, "public-addr", "", "`HOST` clients reach this supernode at (default: the listen host, else 127.0.0.1)")
	fs.StringVar(&f.cert, "tls-cert", "", "TLS certificate `FILE`")
	fs.StringVar(&f.key, "tls-key", "", "TLS key `FILE`")
	fs.StringVar(&f.loginKey, "login-key", "", "pin the login server's public `KEY` (base64) instead of fetching it at start")
	fs.StringVar(&f.nodeKey, "node-key", "", "`FILE` keeping this supernode's node key across restarts (made on first use; default: a fresh key each run)")
	fs.Var(&f.seeds, "seed", "client `URL` of another supernode to join the mesh through (repeatable; the login server's list is always used)")
	fs.BoolVar(&f.web, "web", false, "serve the web client at / (and pass its /api/ requests on to the login server)")
}

// host returns the host clients reach this supernode (and its relay) at.
func (f *supernodeFlags) host() string {
	if f.publicAddr != "" {
		return f.publicAddr
	}
	if h := f.listenHost(); h != "" && h != "0.0.0.0" && h != "::" {
		return h
	}
	return "127.0.0.1"
}

func (f *supernodeFlags) listenHost() string {
	h, _, _ := net.SplitHostPort(f.listen)
	return h
}

// name returns host:port that clients dial, given the listener's real port.
func (f *supernodeFlags) name(ln net.Listener) string {
	return net.JoinHostPort(f.host(), fmt.Sprint(ln.Addr().(*net.TCPAddr).Port))
}

func cmdSupernode(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("supernode", flag.ContinueOnError)
	var f supernodeFlags
	f.register(fs)
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	if err := checkTLS(f.cert, f.key); err != nil {
		return err
	}
	if e.loginURL == "" {
		return usageError{"supernode: --login URL (or PARLEY_LOGIN) is required"}
	}
	f.loginURL = e.loginURL
	log := e.logger(slog.LevelInfo)
	lc := loginapi.NewClient(e.loginURL, nil)
	var key ed25519.PublicKey
	if f.loginKey != "" {
		b, err := base64.StdEncoding.DecodeString(f.loginKey)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return usageError{"--login-key: not a base64 Ed25519 public key"}
		}
		key = b
	} else {
		var err error
		if key, err = fetchLoginKey(ctx, lc, log); err != nil {
			return err
		}
	}
	ln, err := listen(f.listen)
	if err != nil {
		return err
	}
	return runSupernode(ctx, ln, f, key, lc, log)
}

// fetchLoginKey asks the login server for its key, retrying for a while so that
// a supernode started alongside its login server waits for it.
func fetchLoginKey(ctx context.Context, lc *loginapi.Client, log *slog.Logger) (ed25519.PublicKey, error) {
	var err error
	for i := 0; i < 30; i++ {
		var key ed25519.PublicKey
		key, err = lc.Key(ctx)
		if err == nil {
			return key, nil
		}
		if !errors.Is(err, loginapi.ErrUnreachable) {
			return nil, err
		}
		log.Warn("login server not reachable yet", "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return nil, err
}

func runSupernode(ctx context.Context, ln net.Listener, f supernodeFlags, key ed25519.PublicKey, lc *loginapi.Client, log *slog.Logger) error {
	name := f.name(ln)
	scheme := "ws"
	if f.cert != "" {
		scheme = "wss"
	}
	advertise := scheme + "://" + name + "/v1/ws"
	if len(f.relay.external) > 0 && f.relay.secret == "" && os.Getenv("PARLEY_TURN_SECRET") == "" {
		return usageError{"--relay needs --turn-secret (or PARLEY_TURN_SECRET): the secret the relays share"}
	}
	ip, err := resolveIP(f.host())
	if err != nil {
		return err
	}
	secret, err := f.relay.secretBytes()
	if err != nil {
		return err
	}
	r, err := startRelay(f.relay, f.listenHost(), ip, secret, f.cert, f.key, log)
	if err != nil {
		return err
	}
	defer r.Close()
	udp, tcp, tlsAddr := r.Addrs()
	log.Info("relay listening", "udp", udp, "tcp", tcp, "tls", tlsAddr, "relay_ip", ip)
	nodeKey, err := nodeid.LoadOrCreate(f.nodeKey)
	if err != nil {
		return err
	}
	sn, err := supernode.New(supernode.Config{
		LoginKey: key, Name: name, Logger: log, Login: lc, Advertise: advertise, NodeKey: nodeKey, Seeds: f.seeds,
		ICEServers: iceServers(f.host(), r, f.relay.external, secret),
	})
	if err != nil {
		return err
	}
	defer sn.Close()
	log.Info("supernode listening", "addr", ln.Addr().String(), "advertise", advertise)
	h := sn.Handler()
	if f.web {
		if h, err = webFront(h, f.loginURL, log); err != nil {
			return err
		}
		log.Info("serving the web client", "url", strings.Replace(advertise, "/v1/ws", "/", 1), "login", f.loginURL)
	}
	return serve(ctx, ln, h, f.cert, f.key, log)
}

// webFront serves the web client at "/" in front of a supernode's handler,
// and passes the page's login API requests (/api/) on to the login server,
// so that the page, the API and the websocket share one origin (the login
// server sends no CORS headers). It appends the browser's address to
// X-Forwarded-For; a login server started with --trusted-proxy for this
// supernode's address uses it for its per-address limits (otherwise every
// browser behind this supernode shares them). Serve the page only from a
// supernode you run yourself: whoever serves the page's code sees what is
// typed into it.
func webFront(sn http.Handler, loginURL string, log *slog.Logger) (http.Handler, error) {
	target, err := url.Parse(loginURL)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return nil, usageError{fmt.Sprintf("--web: the login URL %q is not an http(s) URL", loginURL)}
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.Out.Host = target.Host
			r.SetXForwarded()
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
	return mux, nil
}

func cmdUp(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	data := fs.String("data", "./parley-data", "`DIR` for the database, keys and the echo user's home")
	addr := fs.String("listen", "127.0.0.1:8080", "login server and web page `ADDR`")
	snAddr := fs.String("supernode-listen", "127.0.0.1:8081", "supernode `ADDR`")
	turnAddr := fs.String("turn", "127.0.0.1:3478", "the supernode's relay (TURN/STUN over UDP and TCP) `ADDR`")
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	log := e.logger(slog.LevelInfo)
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return err
	}
	// Everything runs on 127.0.0.1: the login server may dial the supernode
	// back there, which a public one never does.
	ls, err := login.New(login.Config{DB: filepath.Join(*data, "login.db"), DataDir: *data, Logger: log, Web: web.Handler(),
		DialBackAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		return err
	}
	defer ls.Close()
	lln, err := listen(*addr)
	if err != nil {
		return err
	}
	sln, err := listen(*snAddr)
	if err != nil {
		lln.Close()
		return err
	}
	loginURL := "http://" + lln.Addr().String()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	go func() { errc <- serve(ctx, lln, ls.Handler(), "", "", log) }()
	lc := loginapi.NewClient(loginURL, nil)
	go func() {
		// Everything is on 127.0.0.1 here: the relay must be allowed to relay
		// to loopback, which a public relay never does.
		f := supernodeFlags{listen: *snAddr, nodeKey: filepath.Join(*data, "node-key"), relay: relayFlags{
			udp: *turnAddr, tcp: *turnAddr, allow: cidrList{netip.MustParsePrefix("127.0.0.0/8")},
		}}
		errc <- runSupernode(ctx, sln, f, ls.PublicKey(), lc, log)
	}()
	go func() {
		errc <- runEcho(ctx, echoConfig{
			home: filepath.Join(*data, "echo-home"), loginURL: loginURL, user: "echo",
			out: &printer{w: e.stderr}, log: log.With("component", "echo"),
		})
	}()
	self, _ := os.Executable()
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, self); err == nil && !strings.HasPrefix(rel, "..") {
			self = "./" + rel
		}
	}
	fmt.Fprintf(e.stdout, `Parley is up.
  login server and web page  %[1]s/
  supernode                  ws://%[2]s/v1/ws
  echo user                  echo (answers every call and plays back what it hears)

Call echo from another terminal:
  export PARLEY_LOGIN=%[1]s PARLEY_HOME=/tmp/parley-alice PARLEY_PASSWORD=choose-a-password
  %[3]s register alice
  %[3]s call echo --play YOUR.wav --record echoed.wav --json

Ctrl-C stops the network; accounts stay in %[4]s.
`, loginURL, sln.Addr().String(), self, *data)
	select {
	case <-ctx.Done():
	case err := <-errc:
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}
