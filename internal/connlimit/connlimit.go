// Package connlimit caps concurrent connections per remote address at a
// net.Listener, so that one host cannot hold all of a server's connections
// (idle keep-alives, slow bodies, many WebSockets): beyond the cap a new
// connection from that address is closed as soon as it is accepted.
//
// Addresses are grouped like Parley's rate limits: an IPv4 address (also in
// IPv4-mapped IPv6 form) on its own, IPv6 by /64, since one subscriber
// usually holds a whole /64. Connections without an IP remote address (Unix
// sockets) are not limited.
//
// Wrap the listener before serving it; with TLS, wrap the TCP listener and
// let http.Server.ServeTLS (or tls.NewListener) wrap the result:
//
//	ln, _ := net.Listen("tcp", addr)
//	ln = connlimit.Wrap(ln, connlimit.Config{PerAddr: 64, Exempt: trustedProxies})
//	srv.Serve(ln)
package connlimit

import (
	"net"
	"net/netip"
	"sync"
)

// DefaultPerAddr is the cap for a zero Config.PerAddr.
const DefaultPerAddr = 64

// Config configures [Wrap].
type Config struct {
	// PerAddr is the most concurrent connections one address (IPv4
	// address or IPv6 /64) may hold. Zero or negative: DefaultPerAddr.
	PerAddr int
	// Exempt are remote addresses that are never limited, such as trusted
	// front ends that carry many clients' requests.
	Exempt []netip.Prefix
	// OnRefuse, if set, is called with the remote IP of each connection
	// refused (for logs or metrics), after it was closed. It must not
	// block.
	OnRefuse func(netip.Addr)
}

// Listener is a net.Listener that caps connections per remote address.
type Listener struct {
	net.Listener
	perAddr  int
	exempt   []netip.Prefix
	onRefuse func(netip.Addr)

	mu sync.Mutex
	n  map[netip.Prefix]int
}

// Wrap returns ln with the per-address cap of cfg. Closing the returned
// listener closes ln.
func Wrap(ln net.Listener, cfg Config) *Listener {
	if cfg.PerAddr <= 0 {
		cfg.PerAddr = DefaultPerAddr
	}
	return &Listener{
		Listener: ln,
		perAddr:  cfg.PerAddr,
		exempt:   cfg.Exempt,
		onRefuse: cfg.OnRefuse,
		n:        map[netip.Prefix]int{},
	}
}

// Accept returns the next connection whose address is under the cap.
// Connections over it are closed and skipped; Accept returns only the
// underlying listener's errors.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c)
		if !ip.IsValid() || l.isExempt(ip) {
			return c, nil
		}
		key := group(ip)
		l.mu.Lock()
		if l.n[key] >= l.perAddr {
			l.mu.Unlock()
			c.Close()
			if l.onRefuse != nil {
				l.onRefuse(ip)
			}
			continue
		}
		l.n[key]++
		l.mu.Unlock()
		return &conn{Conn: c, l: l, key: key}, nil
	}
}

// Count returns the connections the address of ip (its IPv4 address or
// IPv6 /64) holds now.
func (l *Listener) Count(ip netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[group(ip.Unmap())]
}

func (l *Listener) isExempt(ip netip.Addr) bool {
	for _, p := range l.exempt {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (l *Listener) release(key netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[key] <= 1 {
		delete(l.n, key)
		return
	}
	l.n[key]--
}

// remoteIP is c's remote IP, unmapped, or the zero Addr when it has none.
func remoteIP(c net.Conn) netip.Addr {
	switch a := c.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case nil:
		return netip.Addr{}
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Addr{}
		}
		return ap.Addr().Unmap()
	}
}

// group is the key ip counts under: itself for IPv4, its /64 for IPv6.
func group(ip netip.Addr) netip.Prefix {
	ip = ip.WithZone("")
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64)
	return p
}

// conn gives its slot back when closed (once, however often Close is
// called).
type conn struct {
	net.Conn
	l    *Listener
	key  netip.Prefix
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.key) })
	return err
}

// CloseWrite half-closes the connection when the underlying one can (as
// net/http does after an error answer).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
