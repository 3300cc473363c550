package cluster

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"

	"github.com/parley/parley/internal/acme"
	"github.com/parley/parley/internal/cli"
	"github.com/parley/parley/internal/nodeid"
)

// Flags of the server commands whose values are this package's Configs:
// the operator flags (metrics, ACME), and the lists of supernode URLs and
// relay addresses.

// OpsFlags are the operator flags of every server command: where /metrics
// goes and the ACME certificate.
type OpsFlags struct {
	MetricsListen                                       string
	acmeDomain, acmeDir, acmeCache, acmeEmail, acmeHTTP string
}

// Register adds the flags to fs; cacheDefault describes --acme-cache's
// default.
func (o *OpsFlags) Register(fs *flag.FlagSet, cacheDefault string) {
	fs.StringVar(&o.MetricsListen, "metrics-listen", "", "serve /metrics on this separate `ADDR` only, e.g. 127.0.0.1:9101 (default: on the server's own listener)")
	fs.StringVar(&o.acmeDomain, "acme-domain", "", "get and renew the TLS certificate for host `NAME` from an ACME CA (instead of --tls-cert and --tls-key); NAME is the host clients use")
	fs.StringVar(&o.acmeDir, "acme-dir", acme.LetsEncrypt, "the ACME CA's directory `URL`")
	fs.StringVar(&o.acmeCache, "acme-cache", "", "`DIR` keeping the ACME account key and certificate across restarts (default "+cacheDefault+")")
	fs.StringVar(&o.acmeEmail, "acme-email", "", "contact `EMAIL` for the ACME account (expiry notices; optional)")
	fs.StringVar(&o.acmeHTTP, "acme-http", ":80", "`ADDR` answering the CA's http-01 challenges (port 80 of the name); \"off\": tls-alpn-01 only, on a TLS listener of this server on port 443")
}

// ACME returns the ACME configuration (nil without --acme-domain), its cache
// in cache unless --acme-cache says otherwise.
func (o *OpsFlags) ACME(cache string, certFile string) (*ACMEConfig, error) {
	if o.acmeDomain == "" {
		return nil, nil
	}
	if certFile != "" {
		return nil, cli.UsageError{Msg: "--acme-domain gets the certificate: drop --tls-cert and --tls-key (or --acme-domain)"}
	}
	if o.acmeCache != "" {
		cache = o.acmeCache
	}
	httpAddr := o.acmeHTTP
	if httpAddr == Off {
		httpAddr = ""
	}
	return &ACMEConfig{HTTPListen: httpAddr, Config: acme.Config{
		Domain: o.acmeDomain, DirectoryURL: o.acmeDir, CacheDir: cache, Email: o.acmeEmail}}, nil
}

// ListenHint adds to a listener that could not be opened the flag that
// changes its address ("listen on :8081: address already in use (change it
// with --listen)"); rename maps a cluster role to this command's flag where
// they differ.
func ListenHint(err error, rename map[string]string) error {
	var le *ListenError
	if !errors.As(err, &le) {
		return err
	}
	flagName := le.Role
	if f, ok := rename[flagName]; ok {
		flagName = f
	}
	return cli.WithHint(err, fmt.Sprintf("%v (change it with --%s)", le, flagName))
}

// URLList is a repeatable flag of supernode URLs.
type URLList []string

func (u *URLList) String() string { return strings.Join(*u, ",") }
func (u *URLList) Set(s string) error {
	if _, _, err := nodeid.HostPort(s); err != nil {
		return fmt.Errorf("not a ws:// or wss:// URL with host:port: %q", s)
	}
	*u = append(*u, s)
	return nil
}

// HostList is a repeatable flag of relay addresses, HOST[:PORT] (port
// 3478 when none is given).
type HostList []string

func (h *HostList) String() string { return strings.Join(*h, ",") }
func (h *HostList) Set(s string) error {
	if _, _, err := net.SplitHostPort(s); err != nil {
		s = net.JoinHostPort(s, "3478")
	}
	*h = append(*h, s)
	return nil
}

// ResolveIP turns --public-addr (an IP or a name) into the address to relay from.
func ResolveIP(host string) (net.IP, error) {
	if ip := net.ParseIP(host); ip != nil {
		return ip, nil
	}
	ips, err := net.LookupIP(host)
	if err != nil || len(ips) == 0 {
		return nil, fmt.Errorf("--public-addr %s: cannot resolve: %v", host, err)
	}
	return ips[0], nil
}
