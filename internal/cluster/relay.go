package cluster

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley/parley/relay"
	"github.com/parley/parley/supernode"
	"github.com/parley/parley/wire/snapi"
)

// TURNCredentialTTL is how long the TURN credentials a supernode hands out
// are good for new allocations: minutes, not days.
const TURNCredentialTTL = 10 * time.Minute

// RelayRefreshGrace is how long after its credential expired an allocation
// may still be refreshed: how long a relayed call may last.
const RelayRefreshGrace = 12 * time.Hour

// DefaultTURNPort is the relay's port when its address is not given.
const DefaultTURNPort = "3478"

// Off, as a RelayConfig address, means no listener of that kind.
const Off = "off"

// RelayConfig configures a TURN relay ([StartRelay], [RunRelay]): a
// supernode's own or a standalone one.
type RelayConfig struct {
	// UDP and TCP are the TURN listen addresses (UDP also answers STUN).
	// "" = port 3478 of the listen host (a supernode's; none for a
	// standalone relay: all interfaces); [Off] = none.
	UDP, TCP string
	// TLS is the TURN-over-TLS listen address, e.g. ":443"; "" = none. It
	// needs TLSConfig.
	TLS string
	// TLSConfig holds the certificate for TLS.
	TLSConfig *tls.Config
	// IP is the address relayed allocations are advertised as and bound to
	// (required; a supernode fills in its own).
	IP net.IP
	// Secret is the TURN-REST secret the relay shares with the supernodes
	// that hand out its credentials (at least relay.MinSecretLen bytes).
	// nil = a random one: fine for a supernode's own relay, useless for a
	// standalone one.
	Secret []byte
	// AllowPeers are exceptions to the relay's deny list of loopback,
	// private and special ranges (labs only).
	AllowPeers []netip.Prefix
	// Tuning holds the relay's per-user limits and socket buffers (zero:
	// relay.Config's defaults); RegisterFlags sets it from the command line.
	Tuning RelayTuning
	// Logger receives the relay's logs; nil discards them.
	Logger *slog.Logger
	// Metrics says where a standalone relay ([RunRelay]) serves /metrics:
	// it has no HTTP listener of its own, so only Metrics.Listen serves
	// them. A supernode's relay reports into the supernode's registry.
	Metrics MetricsConfig
	// ACME, for a standalone relay, gets the TLS listener's certificate
	// from an ACME CA instead of TLSConfig (its tls-alpn-01 challenges are
	// answered there when it is on port 443).
	ACME *ACMEConfig

	// metrics is the registry StartRelay reports into (set by
	// RunSupernode and RunRelay).
	metrics *prometheus.Registry
}

// RelayTuning are the relay.Config fields an operator may tune, each
// passed through as is (0 = the relay's default; see relay.Config).
type RelayTuning struct {
	MaxAllocationsPerUser, UserBandwidth int
	SocketBuffer, RelaySocketBuffer      int
	// SecondIP is relay.Config.SecondRelayIP: on a dual-stack host, an
	// address of the other family than the relay's public one, so that
	// allocations are made in both (RFC 6156). A supernode also offers its
	// relay at this address (UDP and TCP on one port), so that clients of
	// that family only can reach it; the TURN listeners must listen there
	// (the default, every interface, does). Zero: none.
	SecondIP netip.Addr
	// KernelOffload is relay.Config.KernelOffload: ChannelData on bound
	// channels forwarded by a BPF program in the kernel (Linux, root).
	KernelOffload bool
}

// RegisterFlags adds the relay's tuning flags to fs (`parley relay` and
// `parley supernode`).
func (t *RelayTuning) RegisterFlags(fs *flag.FlagSet) {
	fs.IntVar(&t.MaxAllocationsPerUser, "relay-max-allocations", 0, "live relay allocations one user may hold (default 24; -1: no cap)")
	fs.IntVar(&t.UserBandwidth, "relay-user-bandwidth", 0, "`BYTES` a second relayed for one user, both directions summed (default 262144; -1: unlimited)")
	fs.IntVar(&t.SocketBuffer, "relay-socket-buffer", 0, "receive and send buffer `BYTES` of the TURN UDP listener (default 2097152; -1: the kernel's)")
	fs.IntVar(&t.RelaySocketBuffer, "relay-alloc-socket-buffer", 0, "receive and send buffer `BYTES` of each relayed allocation's socket (default 262144; -1: the kernel's)")
	fs.BoolVar(&t.KernelOffload, "relay-kernel-offload", false, "forward UDP clients' ChannelData on bound channels in the kernel (a TC BPF program on the TURN UDP listener's interface; Linux, root, an IPv4 --turn-udp address; see docs/relay.md)")
	fs.TextVar(&t.SecondIP, "relay-second-ip", netip.Addr{}, "on a dual-stack host, the relay's `ADDR` of the other family than --public-addr's: allocations in both IPv4 and IPv6 (default: the public address's family only)")
}

// addr fills "" with port 3478 of host; Off means none.
func defaultAddr(addr, host string) string {
	switch addr {
	case Off:
		return ""
	case "":
		return net.JoinHostPort(host, DefaultTURNPort)
	}
	return addr
}

// StartRelay starts a relay; listenHost is the host of the listeners whose
// address cfg leaves "". cfg.Secret is required here (see relay.Config). A
// listener that cannot be opened is a *ListenError.
func StartRelay(cfg RelayConfig, listenHost string) (*relay.Server, error) {
	if cfg.TLS != "" && cfg.TLSConfig == nil {
		return nil, fmt.Errorf("cluster: relay on %s: TLS without a certificate: %w", cfg.TLS, ErrConfig)
	}
	rc := relay.Config{
		TLSConfig: cfg.TLSConfig, RelayIP: cfg.IP, Secret: cfg.Secret, AllowPeers: cfg.AllowPeers, Logger: cfg.Logger,
		// New allocations need a credential younger than TURNCredentialTTL;
		// an allocation made with one keeps refreshing for a long call.
		RefreshGrace:          RelayRefreshGrace,
		MaxAllocationsPerUser: cfg.Tuning.MaxAllocationsPerUser, UserBandwidth: cfg.Tuning.UserBandwidth,
		SocketBuffer: cfg.Tuning.SocketBuffer, RelaySocketBuffer: cfg.Tuning.RelaySocketBuffer,
		KernelOffload: cfg.Tuning.KernelOffload,
	}
	if cfg.Tuning.SecondIP.IsValid() {
		rc.SecondRelayIP = net.IP(cfg.Tuning.SecondIP.AsSlice())
	}
	if cfg.metrics != nil {
		rc.Metrics = cfg.metrics
	}
	// The listeners are opened here, so that an address in use names its
	// setting; relay.New owns them once it succeeds.
	var opened []io.Closer
	fail := func(err error) (*relay.Server, error) {
		for _, c := range opened {
			c.Close()
		}
		return nil, err
	}
	if addr := defaultAddr(cfg.UDP, listenHost); addr != "" {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fail(&ListenError{Role: RoleTURNUDP, Addr: addr, Err: err})
		}
		opened, rc.PacketConn = append(opened, pc), pc
	}
	for _, l := range []struct {
		role, addr string
		ln         *net.Listener
	}{{RoleTURNTCP, defaultAddr(cfg.TCP, listenHost), &rc.TCPListener}, {RoleTURNTLS, cfg.TLS, &rc.TLSListener}} {
		if l.addr == "" {
			continue
		}
		ln, err := listenAs(l.role, l.addr)
		if err != nil {
			return fail(err)
		}
		opened, *l.ln = append(opened, ln), ln
	}
	r, err := relay.New(rc)
	if err != nil {
		return fail(err)
	}
	return r, nil
}

// RunRelay runs a standalone relay until ctx ends, then closes it and
// returns nil.
func RunRelay(ctx context.Context, cfg RelayConfig) error {
	log := orDiscard(cfg.Logger)
	switch {
	case cfg.Secret == nil:
		return fmt.Errorf("cluster: standalone relay: no secret: %w", ErrConfig)
	case cfg.ACME != nil && cfg.TLS == "":
		return fmt.Errorf("cluster: standalone relay: ACME without a TLS listener: %w", ErrConfig)
	}
	reg := cfg.Metrics.registry()
	cfg.metrics = reg
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
	if mgr != nil {
		cfg.TLSConfig = mgr.TLSConfig()
	}
	r, err := StartRelay(cfg, "")
	if err != nil {
		return err
	}
	defer r.Close()
	logRelay(log, r, cfg.IP)
	var wg sync.WaitGroup
	defer wg.Wait()
	if serveMetrics != nil {
		wg.Go(func() { serveMetrics(ctx) })
	}
	if mgr != nil {
		wg.Go(func() { runACME(ctx) })
	}
	<-ctx.Done()
	return nil
}

func logRelay(log *slog.Logger, r *relay.Server, ip net.IP) {
	udp, tcp, tlsAddr := r.Addrs()
	log.Info("relay listening", "udp", udp, "tcp", tcp, "tls", tlsAddr, "relay_ip", ip)
}

// ICEServers returns the STUN/TURN servers a supernode offers a user: its
// own relay r (if any, reached at host) and the standalone ones (external,
// host:port), each with fresh TURN-REST credentials made with secret.
//
// second, when valid, is the relay's address of the other family
// (RelayTuning.SecondIP): the relay is offered there too, as a standalone
// one is (UDP and TCP on the same port; not when its ports differ).
func ICEServers(host string, r *relay.Server, second netip.Addr, external []string, secret []byte) func(string) []snapi.ICEServer {
	o := supernode.RelayOffer{Host: host, External: external, Secret: secret, TTL: TURNCredentialTTL}
	if r != nil {
		o.UDP, o.TCP, o.TLS = r.Addrs()
		if p := samePort(o.UDP, o.TCP); second.IsValid() && p != 0 {
			o.External = append([]string{net.JoinHostPort(second.String(), strconv.Itoa(p))}, external...)
		}
	}
	return o.ICEServers()
}

// samePort is the port of udp and tcp when both are set and equal, else 0.
func samePort(udp, tcp net.Addr) int {
	u, ok1 := udp.(*net.UDPAddr)
	t, ok2 := tcp.(*net.TCPAddr)
	if !ok1 || !ok2 || u.Port != t.Port {
		return 0
	}
	return u.Port
}
