package login

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/internal/nodeid"
	"github.com/parley/parley/wire/loginapi"
)

// labAllow is what test servers on the fake network admit for dial-backs.
var labAllow = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// nodeNet is a fake network of supernodes behind two real httptest servers
// (plain HTTP, and TLS for port 443): the login server's dial-back dialer
// connects every "ip:port" to one of them, and they answer GET /v1/identify
// with nodeid.Handler for the host:port asked for (the Host header), signed
// with the key set for it (def by default).
type nodeNet struct {
	plain, tls *httptest.Server
	def        ed25519.PrivateKey

	mu    sync.Mutex
	keys  map[string]ed25519.PrivateKey // host:port → key it answers with
	names map[string]string             // host:port → name it claims (a liar)
	down  map[string]bool               // "ip:port" refusing connections
	hosts map[string][]netip.Addr       // the fake DNS
	hits  map[string]int                // identify requests per host:port
	dials []string                      // "ip:port" dialled
}

func newNodeNet(t testing.TB) *nodeNet {
	t.Helper()
	n := &nodeNet{
		def:   newPriv(t),
		keys:  map[string]ed25519.PrivateKey{},
		names: map[string]string{},
		down:  map[string]bool{},
		hosts: map[string][]netip.Addr{
			"sn.example.org": {netip.MustParseAddr("203.0.113.5")},
			"host.example":   {netip.MustParseAddr("10.1.1.1")},
			"example.com":    {netip.MustParseAddr("10.1.1.2")}, // in the httptest certificate
		},
		hits: map[string]int{},
	}
	n.plain = httptest.NewServer(n)
	n.tls = httptest.NewTLSServer(n)
	t.Cleanup(func() { n.plain.Close(); n.tls.Close() })
	return n
}

func (n *nodeNet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n.mu.Lock()
	n.hits[r.Host]++
	k := n.keys[r.Host]
	if k == nil {
		k = n.def
	}
	name := r.Host
	if alias, ok := n.names[r.Host]; ok {
		name = alias
	}
	n.mu.Unlock()
	if r.URL.Path != nodeid.IdentifyPath {
		http.NotFound(w, r)
		return
	}
	nodeid.Handler(name, k).ServeHTTP(w, r)
}

func (n *nodeNet) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	n.mu.Lock()
	n.dials = append(n.dials, addr)
	down := n.down[addr]
	n.mu.Unlock()
	if down {
		return nil, fmt.Errorf("dial tcp %s: connect: connection refused", addr)
	}
	target := n.plain.Listener.Addr().String()
	if _, port, _ := net.SplitHostPort(addr); port == "443" {
		target = n.tls.Listener.Addr().String()
	}
	var d net.Dialer
	return d.DialContext(ctx, network, target)
}

func (n *nodeNet) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if ips, ok := n.hosts[host]; ok {
		return ips, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// configure points cfg's dial-backs at the fake network and, when
// cfg.DialBackAllow is nil, admits labAllow.
func (n *nodeNet) configure(cfg *Config) {
	cfg.DialBackDial = n.dial
	cfg.DialBackLookup = n.lookup
	roots := x509.NewCertPool()
	roots.AddCert(n.tls.Certificate())
	cfg.DialBackTLS = &tls.Config{RootCAs: roots}
	if cfg.DialBackAllow == nil {
		cfg.DialBackAllow = labAllow
	}
}

func (n *nodeNet) setKey(hostport string, k ed25519.PrivateKey) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.keys[hostport] = k
}

func (n *nodeNet) setDown(ipport string, down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down[ipport] = down
}

func (n *nodeNet) hitsFor(hostport string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hits[hostport]
}

func (n *nodeNet) totalHits() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	sum := 0
	for _, h := range n.hits {
		sum += h
	}
	return sum
}

func (n *nodeNet) dialled() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.dials...)
}

func newPriv(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return priv
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// signedBody is a heartbeat or leave body for addr signed by k at ts with
// sigCtx.
func signedBody(addr string, k ed25519.PrivateKey, ts int64, sigCtx string) map[string]any {
	pub := pubOf(k)
	return map[string]any{
		"addr": addr,
		"key":  base64.StdEncoding.EncodeToString(pub),
		"ts":   ts,
		"sig":  base64.StdEncoding.EncodeToString(identity.SignContext(k, sigCtx, loginapi.SupernodeMessage(addr, pub, ts))),
	}
}

// hb heartbeats addr with the fake network's default key.
func (e *env) hb(addr string) error {
	_, err := e.cl.Heartbeat(e.t.Context(), addr, e.net.def)
	return err
}
