package relay

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley/parley/internal/connlimit"
	"github.com/parley/parley/internal/metrics"
	"github.com/parley/parley/relay/internal/offload"
	"github.com/parley/parley/wire/turncred"
	"github.com/pion/turn/v5"
)

// Timing of the relay's TCP and TLS connections (socket deadlines use the real
// clock, not Config.Now) and of Close.
const (
	// streamFirstReadTimeout bounds the TLS handshake and the first request on
	// a new TCP or TLS connection.
	streamFirstReadTimeout = 10 * time.Second
	// streamIdleTimeout closes a TCP or TLS connection that has sent nothing
	// for this long; TURN clients refresh allocations and permissions every few
	// minutes.
	streamIdleTimeout = 15 * time.Minute
	// streamWriteTimeout breaks a connection whose client stops reading.
	streamWriteTimeout = 10 * time.Second
	// closeTimeout bounds how long Close waits for pion's goroutines.
	closeTimeout = 10 * time.Second
	// maxPacket is the largest datagram relayed (pion's relay buffer); the
	// bandwidth burst is never smaller, so every packet can pass.
	maxPacket = 1600
	// listenerBatch and relayBatch are the most datagrams one recvmmsg
	// reads from the TURN UDP listener (every client's packets) and from
	// an allocation's socket (one call's peers).
	listenerBatch, relayBatch = 32, 4
)

// Stats are counters of a Server since New.
type Stats struct {
	Allocations int // live allocations
	Users       int // users holding at least one allocation
	Conns       int // open TURN-over-TCP/TLS connections

	RelayedBytes     uint64 // payload bytes relayed, both directions
	DroppedBandwidth uint64 // packets dropped because their user was over UserBandwidth
	DroppedSelf      uint64 // packets from an allocation to the relay host itself, dropped
	RefusedAuth      uint64 // requests refused for a bad, expired or wrong credential
	RefusedPeers     uint64 // permissions (and stray packets) refused by the peer deny list
	RefusedQuota     uint64 // allocations refused by MaxAllocationsPerUser
}

// Server is a running relay. Its methods are safe for concurrent use.
type Server struct {
	log       *slog.Logger
	now       func() time.Time
	realm     string
	grace     time.Duration
	secret    []byte
	allow     []netip.Prefix
	maxAllocs int                     // <= 0: no cap
	bandwidth int                     // bytes per second a user; 0: unlimited
	burst     int                     // bytes
	sockBuf   int                     // TURN UDP listener's socket buffers; < 0: the kernel's default
	relayBuf  int                     // each allocation's socket buffers; < 0: the kernel's default
	families  []relayFamily           // one or two: where allocations of each family are made
	self      map[netip.Addr]struct{} // the relay host's addresses (read-only after New)
	selfLoop  bool                    // every loopback address is the relay host's too

	turn    *turn.Server
	udp     []*packetListener // the UDP listener's sockets (several: SO_REUSEPORT)
	udpConn *net.UDPConn      // the UDP listener's socket, when it is one: the fast path writes to clients on it
	fwd     *forwarders       // the per-core read loops of the relayed sockets (Linux); nil: a goroutine each
	chans   chanTable         // the fast path's channels, by client and number
	offload *offload.Offload  // the in-kernel fast path (Config.KernelOffload); nil: none
	slots   uint32            // the last budget slot given to a user in the offload (under mu)
	ports   portSet           // live IPv4 allocation ports (the same-relay rule)
	ports6  portSet           // live IPv6 allocation ports
	tcp     *streamListener
	tls     *streamListener

	done chan struct{} // closed when Close starts
	idle chan struct{} // signalled when pending drops to 0

	mu      sync.Mutex
	closing bool
	users   map[string]*userState
	allocs  map[int]*relayConn // by relay port
	streams map[*streamConn]struct{}
	pending int // pion goroutines not yet seen to finish (see Close)

	closedTraffic traffic // the counters of closed allocations

	closeOnce sync.Once
	closeErr  error

	refusedAuth, refusedPeers, refusedQuotaStat atomic.Uint64

	// c are the counters only the metrics show; the listeners' health is
	// for Health; unregister takes the collector out of Config.Metrics.
	c                               counters
	udpHealth, tcpHealth, tlsHealth listenerHealth
	unregister                      func()
}

// userState is one user's allocation count and shared bandwidth bucket.
type userState struct {
	allocs int
	bucket *bucket // nil: unlimited
	slot   uint32  // the user's budget in the kernel offload; 0: none yet
}

// New starts a relay on the configured listeners.
func New(cfg Config) (*Server, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, fmt.Errorf("relay: new: %w", err)
	}
	return s, nil
}

func newServer(cfg Config) (*Server, error) {
	s := &Server{
		log:     cfg.Logger,
		now:     cfg.Now,
		realm:   cfg.Realm,
		secret:  append([]byte(nil), cfg.Secret...),
		done:    make(chan struct{}),
		idle:    make(chan struct{}, 1),
		users:   make(map[string]*userState),
		allocs:  make(map[int]*relayConn),
		streams: make(map[*streamConn]struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.realm == "" {
		s.realm = DefaultRealm
	}
	if len(s.realm) > 127 {
		return nil, fmt.Errorf("%w: Realm longer than 127 bytes", ErrInvalidConfig)
	}
	if cfg.RefreshGrace < 0 || cfg.RefreshGrace > turncred.MaxCredentialTTL {
		return nil, fmt.Errorf("%w: RefreshGrace must be between 0 and %v", ErrInvalidConfig, turncred.MaxCredentialTTL)
	}
	s.grace = cfg.RefreshGrace
	if len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("%w: Secret must be at least %d bytes", ErrInvalidConfig, MinSecretLen)
	}
	first, err := s.relayFamily("RelayIP", cfg.RelayIP, cfg.RelayBindIP)
	if err != nil {
		return nil, err
	}
	s.families = []relayFamily{first}
	if cfg.SecondRelayIP != nil {
		second, err := s.relayFamily("SecondRelayIP", cfg.SecondRelayIP, cfg.SecondRelayBindIP)
		if err != nil {
			return nil, err
		}
		if second.network == first.network {
			return nil, fmt.Errorf("%w: SecondRelayIP %v: need the other family than RelayIP %v",
				ErrInvalidConfig, second.ip, first.ip)
		}
		s.families = append(s.families, second)
	} else if cfg.SecondRelayBindIP != nil {
		return nil, fmt.Errorf("%w: SecondRelayBindIP without SecondRelayIP", ErrInvalidConfig)
	}
	for _, p := range cfg.AllowPeers {
		if !p.IsValid() {
			return nil, fmt.Errorf("%w: AllowPeers: invalid prefix %v", ErrInvalidConfig, p)
		}
		s.allow = append(s.allow, p.Masked())
	}
	switch {
	case cfg.MaxAllocationsPerUser == 0:
		s.maxAllocs = DefaultMaxAllocationsPerUser
	case cfg.MaxAllocationsPerUser > 0:
		s.maxAllocs = cfg.MaxAllocationsPerUser
	}
	bw := cfg.UserBandwidth
	if bw == 0 {
		bw = DefaultUserBandwidth
	}
	if bw > 0 {
		s.bandwidth = bw
		s.burst = max(bw, maxPacket)
	}
	s.sockBuf = cmp.Or(cfg.SocketBuffer, DefaultSocketBuffer)
	s.relayBuf = cmp.Or(cfg.RelaySocketBuffer, DefaultRelaySocketBuffer)
	if (cfg.UDPAddr != "" && cfg.PacketConn != nil) || (cfg.TCPAddr != "" && cfg.TCPListener != nil) ||
		(cfg.TLSAddr != "" && cfg.TLSListener != nil) {
		return nil, fmt.Errorf("%w: set a listen address or a listener, not both", ErrInvalidConfig)
	}
	wantTLS := cfg.TLSAddr != "" || cfg.TLSListener != nil
	var tlsConfig *tls.Config
	if wantTLS {
		if cfg.TLSConfig == nil || (len(cfg.TLSConfig.Certificates) == 0 && cfg.TLSConfig.GetCertificate == nil &&
			cfg.TLSConfig.GetConfigForClient == nil) {
			return nil, fmt.Errorf("%w: TLS listener needs TLSConfig with a certificate", ErrInvalidConfig)
		}
		tlsConfig = cfg.TLSConfig.Clone()
		tlsConfig.MinVersion = max(tlsConfig.MinVersion, tls.VersionTLS12)
	}
	if cfg.UDPAddr == "" && cfg.PacketConn == nil && cfg.TCPAddr == "" && cfg.TCPListener == nil && !wantTLS {
		return nil, fmt.Errorf("%w: no listener configured", ErrInvalidConfig)
	}

	// Open the listeners; on failure close the ones opened here.
	var opened []io.Closer
	fail := func(err error) (*Server, error) {
		if s.fwd != nil {
			s.fwd.close()
		}
		for _, c := range opened {
			_ = c.Close()
		}
		return nil, err
	}
	var lc net.ListenConfig
	var pcs []net.PacketConn // the UDP listener's sockets
	if cfg.PacketConn != nil {
		pcs = append(pcs, cfg.PacketConn)
	}
	if cfg.UDPAddr != "" {
		n := cfg.UDPListeners
		if n <= 0 {
			n = 1
			if reusePortWorks {
				n = runtime.GOMAXPROCS(0)
			}
		}
		ulc := net.ListenConfig{}
		if n > 1 {
			ulc.Control = reusePort
		}
		addr := cfg.UDPAddr
		for range n {
			pc, err := ulc.ListenPacket(context.Background(), "udp", addr)
			if err != nil {
				return fail(fmt.Errorf("listen udp %s: %w", addr, err))
			}
			opened, pcs = append(opened, pc), append(pcs, pc)
			addr = pc.LocalAddr().String() // the others share the first's port
		}
	}
	tcpL := cfg.TCPListener
	if cfg.TCPAddr != "" {
		if tcpL, err = lc.Listen(context.Background(), "tcp", cfg.TCPAddr); err != nil {
			return fail(fmt.Errorf("listen tcp %s: %w", cfg.TCPAddr, err))
		}
		opened = append(opened, tcpL)
	}
	tlsL := cfg.TLSListener
	if cfg.TLSAddr != "" {
		if tlsL, err = lc.Listen(context.Background(), "tcp", cfg.TLSAddr); err != nil {
			return fail(fmt.Errorf("listen tls %s: %w", cfg.TLSAddr, err))
		}
		opened = append(opened, tlsL)
	}

	// One address cannot hold TCP or TLS connections until the file limit.
	if cfg.MaxConnsPerAddr >= 0 {
		lim := connlimit.Config{PerAddr: cfg.MaxConnsPerAddr, OnRefuse: func(ip netip.Addr) {
			s.log.Debug("relay: connection refused: too many from this address", "addr", ip.String())
		}}
		if tcpL != nil {
			tcpL = connlimit.Wrap(tcpL, lim)
		}
		if tlsL != nil {
			tlsL = connlimit.Wrap(tlsL, lim)
		}
	}

	var local []net.Addr
	gen := relayAddrs{s}
	scfg := turn.ServerConfig{
		Realm:              s.realm,
		PermissionTimeout:  cfg.permissionTimeout,
		ChannelBindTimeout: cfg.channelTimeout,
		AuthHandler:        s.authenticate,
		QuotaHandler:       s.quota,
		LoggerFactory:      pionLoggers{s.log},
		EventHandler: turn.EventHandler{
			OnAuth:              s.onAuth,
			OnAllocationCreated: s.onAllocationCreated,
			OnPermissionCreated: func(_, _ net.Addr, _, _, _ string, relayAddr net.Addr, peer net.IP) {
				s.onPermission(relayAddr, peer, true)
			},
			OnPermissionDeleted: func(_, _ net.Addr, _, _, _ string, relayAddr net.Addr, peer net.IP) {
				s.onPermission(relayAddr, peer, false)
			},
			OnChannelCreated: func(client, _ net.Addr, _, _, _ string, relayAddr, peer net.Addr, num uint16) {
				s.onChannel(client, relayAddr, peer, num, true)
			},
			OnChannelDeleted: func(client, _ net.Addr, _, _, _ string, relayAddr, peer net.Addr, num uint16) {
				s.onChannel(client, relayAddr, peer, num, false)
			},
		},
	}
	var sockBufs string
	for i, pc := range pcs {
		l := &packetListener{PacketConn: pc, s: s, h: &s.udpHealth}
		if u, ok := pc.(*net.UDPConn); ok {
			if l.br, err = newBatchReader(u, listenerBatch, maxPacket, 0); err != nil {
				return fail(fmt.Errorf("read udp %s: %w", pc.LocalAddr(), err))
			}
			if i == 0 {
				s.udpConn = u
			}
			sockBufs = s.setBuffers(u, s.sockBuf, "udp listener")
		}
		s.udp = append(s.udp, l)
		s.pending++
		local = append(local, pc.LocalAddr())
		// pion keeps the allocations of each socket apart; the kernel sends
		// each client's datagrams to one socket of a SO_REUSEPORT group.
		scfg.PacketConnConfigs = append(scfg.PacketConnConfigs, turn.PacketConnConfig{
			PacketConn: l, RelayAddressGenerator: gen, PermissionHandler: s.permit,
		})
	}
	if s.udpConn != nil {
		if s.fwd, err = s.newForwarders(runtime.GOMAXPROCS(0), s.udp); err != nil {
			s.log.Warn("relay: no per-core read loops; a goroutine reads each allocation", "err", err)
			s.fwd = nil
		}
	}
	if tcpL != nil {
		s.tcp = &streamListener{Listener: tcpL, s: s, h: &s.tcpHealth}
		s.pending++
		local = append(local, tcpL.Addr())
		scfg.ListenerConfigs = append(scfg.ListenerConfigs, turn.ListenerConfig{
			Listener: s.tcp, RelayAddressGenerator: gen, PermissionHandler: s.permit,
		})
	}
	if tlsL != nil {
		s.tls = &streamListener{Listener: tls.NewListener(tlsL, tlsConfig), s: s, h: &s.tlsHealth}
		s.pending++
		local = append(local, tlsL.Addr())
		scfg.ListenerConfigs = append(scfg.ListenerConfigs, turn.ListenerConfig{
			Listener: s.tls, RelayAddressGenerator: gen, PermissionHandler: s.permit,
		})
	}
	s.self = s.selfAddrs(local)
	if cfg.KernelOffload {
		if s.openOffload(); s.offload != nil {
			opened = append(opened, s.offload)
		}
	}

	unregister, err := metrics.Register(cfg.Metrics, newCollector(s))
	if err != nil {
		return fail(err)
	}
	ts, err := turn.NewServer(scfg)
	if err != nil {
		unregister()
		return fail(fmt.Errorf("start turn server: %w", err))
	}
	s.turn = ts
	s.unregister = unregister

	udp, tcp, tlsA := s.Addrs()
	relayIPs, bindIPs := make([]string, len(s.families)), make([]string, len(s.families))
	for i, f := range s.families {
		relayIPs[i], bindIPs[i] = f.ip.String(), f.bind.String()
	}
	s.log.Info("relay: started", "udp", udp, "tcp", tcp, "tls", tlsA, "relay_ip", strings.Join(relayIPs, ","),
		"bind_ip", strings.Join(bindIPs, ","), "realm", s.realm, "allow_peers", s.allow,
		"max_allocations_per_user", s.maxAllocs, "user_bandwidth", bw, "socket_buffers", sockBufs,
		"udp_sockets", len(s.udp), "read_loops", s.fwd.count())
	return s, nil
}

// Addrs returns the bound listener addresses; nil for a listener not
// configured.
func (s *Server) Addrs() (udp, tcp, tls net.Addr) {
	if len(s.udp) > 0 {
		udp = s.udp[0].LocalAddr()
	}
	if s.tcp != nil {
		tcp = s.tcp.Addr()
	}
	if s.tls != nil {
		tls = s.tls.Addr()
	}
	return udp, tcp, tls
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	st := Stats{Allocations: len(s.allocs), Users: len(s.users), Conns: len(s.streams)}
	s.mu.Unlock()
	t := s.traffic()
	st.RelayedBytes = t.bytesIn + t.bytesOut
	st.DroppedBandwidth = t.dropRate
	st.DroppedSelf = t.dropSelf
	st.RefusedAuth = s.refusedAuth.Load()
	st.RefusedPeers = s.refusedPeers.Load()
	st.RefusedQuota = s.refusedQuotaStat.Load()
	return st
}

// traffic sums the packet counters of every allocation, live and closed,
// and what the kernel offload has forwarded on the channels it holds now
// (an allocation's own counters get those only when they leave it).
func (s *Server) traffic() traffic {
	s.mu.Lock()
	t := s.closedTraffic
	var live []*relayConn // only with the offload: its counts are read after s.mu
	for _, c := range s.allocs {
		c.n.addTo(&t)
		if s.offload != nil {
			live = append(live, c)
		}
	}
	s.mu.Unlock()
	for _, c := range live { // c.viewMu after s.mu, never under it (syncOffload takes s.mu under c.viewMu)
		c.kernelTraffic(&t)
	}
	return t
}

// Close stops the relay: it closes the listeners, every TCP/TLS connection and
// every allocation, then waits until each of pion's goroutines has reached its
// exit (pion offers no join, so Close watches the last thing each does: its
// final read returning an error, or closing its connection), at most 10 s.
// Later calls return the first call's result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.shutdown() })
	return s.closeErr
}

func (s *Server) shutdown() error {
	s.mu.Lock()
	s.closing = true
	streams := make([]*streamConn, 0, len(s.streams))
	for c := range s.streams {
		streams = append(streams, c)
	}
	relays := make([]*relayConn, 0, len(s.allocs))
	for _, c := range s.allocs {
		relays = append(relays, c)
	}
	s.mu.Unlock()
	close(s.done)

	var errs []error
	if err := s.turn.Close(); err != nil {
		errs = append(errs, err)
	}
	// pion closes neither accepted connections nor (for TCP listeners, whose
	// connections may still be creating them) every allocation: do both.
	for _, c := range streams {
		_ = c.Conn.Close()
	}
	for _, c := range relays {
		_ = c.Close()
	}
	if s.fwd != nil {
		s.fwd.close()
	}

	timer := time.NewTimer(closeTimeout)
	defer timer.Stop()
	for {
		s.mu.Lock()
		pending := s.pending
		s.mu.Unlock()
		if pending == 0 {
			break
		}
		select {
		case <-s.idle:
		case <-timer.C:
			errs = append(errs, fmt.Errorf("%d pion goroutines still running: %w", pending, ErrCloseTimeout))
			if s.offload != nil {
				_ = s.offload.Close()
			}
			s.log.Warn("relay: close timed out", "pending", pending)
			return fmt.Errorf("relay: close: %w", errors.Join(errs...))
		}
	}
	if s.offload != nil {
		if err := s.offload.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	s.unregister()
	s.log.Info("relay: closed")
	if len(errs) > 0 {
		return fmt.Errorf("relay: close: %w", errors.Join(errs...))
	}
	return nil
}

// release marks one tracked pion goroutine as finished.
func (s *Server) release() {
	s.mu.Lock()
	s.pending--
	idle := s.pending == 0
	s.mu.Unlock()
	if idle {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
}

func (s *Server) isClosing() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}
