package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley/parley/internal/acme"
	"github.com/parley/parley/internal/metrics"
)

// The listeners a server opens, as ListenError.Role: each is named after the
// `parley` flag that sets its address.
const (
	RoleListen          = "listen"           // a server's own port (HTTP, websocket)
	RoleSupernodeListen = "supernode-listen" // `parley up`'s supernode
	RoleMetrics         = "metrics-listen"   // /metrics on a separate address
	RoleACMEHTTP        = "acme-http"        // http-01 challenges (port 80)
	RoleTURNUDP         = "turn-udp"
	RoleTURNTCP         = "turn-tcp"
	RoleTURNTLS         = "turn-tls"
)

// ListenError is a listener that could not be opened: Role says which
// (RoleListen, RoleTURNUDP, ...), so that the command can name the flag that
// changes Addr.
type ListenError struct {
	Role, Addr string
	Err        error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("listen on %s: %s", e.Addr, listenReason(e.Err))
}

func (e *ListenError) Unwrap() error { return e.Err }

// listenReason is the system's reason without the Go operation around it
// ("address already in use", not "listen tcp :8081: bind: address already
// in use").
func listenReason(err error) string {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return "address already in use"
	case errors.Is(err, syscall.EACCES):
		return "permission denied (a port below 1024 needs root or CAP_NET_BIND_SERVICE)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return "no interface has this address"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

// listenAs listens on the TCP address addr, naming role in the error.
func listenAs(role, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &ListenError{Role: role, Addr: addr, Err: err}
	}
	return ln, nil
}

// MetricsConfig says where a server's Prometheus metrics go.
type MetricsConfig struct {
	// Registry receives the metrics of the server (and of a supernode's
	// relay). nil: a new registry with the Go runtime and process
	// collectors.
	Registry *prometheus.Registry
	// Listen, when set, serves /metrics on this separate address only (for
	// example 127.0.0.1:9101, out of the public's reach); "" serves it on
	// the server's own listener.
	Listen string
}

func (c MetricsConfig) registry() *prometheus.Registry {
	if c.Registry != nil {
		return c.Registry
	}
	return metrics.NewRegistry()
}

// metricsServer binds the separate /metrics listener, if any, and returns
// the function that serves it until ctx ends (nil when there is none) and
// the one that closes the listener (always safe to call).
func (c MetricsConfig) metricsServer(reg *prometheus.Registry, log *slog.Logger) (serve func(context.Context) error, closeLn func(), err error) {
	if c.Listen == "" {
		return nil, func() {}, nil
	}
	ln, err := listenAs(RoleMetrics, c.Listen)
	if err != nil {
		return nil, func() {}, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(reg))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	log.Info("metrics listening", "url", "http://"+ln.Addr().String()+"/metrics")
	return func(ctx context.Context) error { return Serve(ctx, ln, srv, "", "", log) }, func() { ln.Close() }, nil
}

// withMetrics serves /metrics from reg in front of h, unless they go to a
// separate listener.
func (c MetricsConfig) withMetrics(h http.Handler, reg *prometheus.Registry) http.Handler {
	if c.Listen != "" {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", metrics.Handler(reg))
	mux.Handle("/", h)
	return mux
}

// ACMEConfig gets the server's certificate from an ACME CA (Let's Encrypt
// by default) instead of files: see internal/acme.
type ACMEConfig struct {
	// Config is the ACME client's: Domain (required), DirectoryURL,
	// CacheDir (required), Email. Its HTTP01 and Logger are set from here.
	acme.Config
	// HTTPListen, when set, is where http-01 challenges are answered (the CA
	// connects to port 80 of Domain): ":80" in production. "": only
	// tls-alpn-01, which needs a TLS listener of the server on port 443.
	HTTPListen string
}

// acmeStart makes the certificate manager and binds its http-01 listener;
// run starts them (after the server's own listeners are bound, so that the
// CA's tls-alpn-01 connection finds them) and returns when ctx ends;
// closeLn closes the http-01 listener (always safe to call).
func acmeStart(c *ACMEConfig, log *slog.Logger) (m *acme.Manager, run func(context.Context), closeLn func(), err error) {
	closeLn = func() {}
	if c == nil {
		return nil, nil, closeLn, nil
	}
	ac := c.Config
	ac.HTTP01, ac.Logger = c.HTTPListen != "", log
	if m, err = acme.New(ac); err != nil {
		return nil, nil, closeLn, fmt.Errorf("cluster: %w", err)
	}
	var httpLn net.Listener
	if c.HTTPListen != "" {
		if httpLn, err = listenAs(RoleACMEHTTP, c.HTTPListen); err != nil {
			return nil, nil, closeLn, err
		}
		closeLn = func() { httpLn.Close() }
		log.Info("acme: answering http-01 challenges", "addr", httpLn.Addr().String())
	}
	run = func(ctx context.Context) {
		var wg sync.WaitGroup
		if httpLn != nil {
			srv := &http.Server{Handler: m.HTTPHandler(nil), ReadHeaderTimeout: 10 * time.Second,
				ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, IdleTimeout: time.Minute}
			wg.Go(func() { Serve(ctx, httpLn, srv, "", "", log) })
		}
		m.Run(ctx)
		wg.Wait()
	}
	return m, run, closeLn, nil
}

// CheckCertFile reads a --tls-cert certificate and says, once, what makes
// clients and the login server refuse it: self-signed, expired (or expiring
// within a week), issued for other names than host, or for an IP address
// only. It never fails the start: a lab may trust its own CA
// (SSL_CERT_FILE). It returns the problems it logged.
func CheckCertFile(certFile, keyFile, host string, log *slog.Logger) []string {
	log = orDiscard(log)
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		log.Warn("TLS certificate unreadable", "cert", certFile, "err", err)
		return []string{err.Error()}
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		log.Warn("TLS certificate unreadable", "cert", certFile, "err", err)
		return []string{err.Error()}
	}
	var problems []string
	if string(leaf.RawIssuer) == string(leaf.RawSubject) && leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil {
		problems = append(problems, "it is self-signed: clients and the login server refuse it unless told to trust it")
	} else {
		inter := x509.NewCertPool()
		for _, der := range pair.Certificate[1:] {
			if c, err := x509.ParseCertificate(der); err == nil {
				inter.AddCert(c)
			}
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Intermediates: inter}); err != nil {
			var invalid x509.CertificateInvalidError
			if !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
				problems = append(problems, "its chain is not trusted by this machine: "+err.Error())
			}
		}
	}
	switch now := time.Now(); {
	case now.After(leaf.NotAfter):
		problems = append(problems, "it expired at "+leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Add(7 * 24 * time.Hour).After(leaf.NotAfter):
		problems = append(problems, "it expires at "+leaf.NotAfter.UTC().Format(time.RFC3339)+", within a week")
	}
	if host != "" {
		if err := leaf.VerifyHostname(host); err != nil {
			problems = append(problems, fmt.Sprintf("it is for %s, not %s", strings.Join(certNames(leaf), ", "), host))
		} else if net.ParseIP(host) != nil {
			problems = append(problems, "it is for the IP address "+host+": public CAs issue certificates for host names; give the server one (and --public-addr NAME)")
		}
	}
	for _, p := range problems {
		log.Warn("TLS certificate: "+p, "cert", certFile, "hint",
			"a server's certificate must be issued for the host name clients use, not an IP address, by a CA clients trust; --acme-domain gets one")
	}
	return problems
}

func certNames(c *x509.Certificate) []string {
	names := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		names = []string{"no name"}
	}
	return names
}
