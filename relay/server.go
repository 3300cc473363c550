package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley/parley/internal/addrpolicy"
	"github.com/parley/parley/wire/turncred"
	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
	"golang.org/x/time/rate"
)

// Defaults for the zero values of Config.
const (
	// DefaultRealm is the TURN realm when Config.Realm is "".
	DefaultRealm = "parley"
	// DefaultMaxAllocationsPerUser is the allocation quota when
	// Config.MaxAllocationsPerUser is 0.
	DefaultMaxAllocationsPerUser = 8
	// DefaultUserBandwidth is the per-user relay budget in bytes per second
	// when Config.UserBandwidth is 0: a few calls' worth of Opus and video.
	DefaultUserBandwidth = 256 << 10
	// MinSecretLen is the shortest TURN-REST secret New accepts.
	MinSecretLen = 16
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
)

// Config configures New. The zero value of each field is its documented
// default; RelayIP, Secret and at least one listener are required.
type Config struct {
	// UDPAddr is the TURN-over-UDP listen address, e.g. "0.0.0.0:3478". This
	// listener also answers plain STUN Binding requests. "" = no UDP listener.
	UDPAddr string
	// TCPAddr is the TURN-over-TCP listen address, e.g. "0.0.0.0:3478".
	// "" = none.
	TCPAddr string
	// TLSAddr is the TURN-over-TLS listen address, e.g. "0.0.0.0:443" (443
	// gets through strict firewalls). "" = none. Needs TLSConfig.
	TLSAddr string
	// TLSConfig holds the certificate for TLSAddr or TLSListener (Certificates,
	// GetCertificate or GetConfigForClient must be set). It is cloned; a
	// MinVersion below TLS 1.2 is raised to TLS 1.2.
	TLSConfig *tls.Config

	// PacketConn, TCPListener and TLSListener are ready listeners to use
	// instead of UDPAddr, TCPAddr and TLSAddr (tests, socket activation);
	// setting both a listener and its address is an error. TLSListener is a
	// plain TCP listener: the server adds TLS with TLSConfig. Once New
	// succeeds the Server owns them and Close closes them.
	PacketConn  net.PacketConn
	TCPListener net.Listener
	TLSListener net.Listener

	// RelayIP is the address relayed allocations are advertised as and, unless
	// RelayBindIP is set, bound to (required; not unspecified or multicast).
	// Its family (IPv4 or IPv6) is the family of every allocation.
	RelayIP net.IP
	// RelayBindIP is the local address allocation sockets bind to when it
	// differs from RelayIP, e.g. behind a 1:1 NAT (RelayIP the public address,
	// RelayBindIP the private interface address or 0.0.0.0). nil = RelayIP.
	RelayBindIP net.IP

	// Secret is the TURN-REST shared secret (required, at least MinSecretLen
	// bytes); supernodes make credentials with the same secret. It is copied
	// and never logged.
	Secret []byte
	// Realm is the TURN realm. "" = DefaultRealm.
	Realm string
	// RefreshGrace is how long after its expiry a credential still
	// authenticates the requests that keep an existing allocation going
	// (Refresh, CreatePermission, ChannelBind); Allocate always needs an
	// unexpired credential. TURN clients keep using the credential they
	// allocated with, so without a grace a relayed call ends within about ten
	// minutes of its credential's expiry. 0 = none (every request needs an
	// unexpired credential); at most MaxCredentialTTL.
	RefreshGrace time.Duration

	// AllowPeers are exceptions to the peer deny list (see PeerAllowed), for
	// labs (--relay-allow-peer CIDR). nil = none: a public relay needs none.
	AllowPeers []netip.Prefix

	// MaxAllocationsPerUser caps a user's live allocations, counted across all
	// their credentials and clients. 0 = DefaultMaxAllocationsPerUser;
	// negative = no cap.
	MaxAllocationsPerUser int
	// UserBandwidth is the bytes per second relayed for one user, client to
	// peer and peer to client summed, across all their allocations (UDP
	// payload bytes, not counting TURN framing), with a burst of one second's
	// worth. Packets over budget are dropped. 0 = DefaultUserBandwidth;
	// negative = unlimited.
	UserBandwidth int

	// Logger receives the relay's logs (see docs/relay.md). nil = discard.
	Logger *slog.Logger
	// Now is the clock for credential expiry and bandwidth accounting.
	// nil = time.Now.
	Now func() time.Time
}

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
	maxAllocs int // <= 0: no cap
	limit     rate.Limit
	burst     int // 0: unlimited bandwidth
	relayIP   net.IP
	bindIP    net.IP
	self      map[netip.Addr]struct{} // the relay host's addresses (read-only after New)
	selfLoop  bool                    // every loopback address is the relay host's too

	turn *turn.Server
	udp  *packetListener
	tcp  *streamListener
	tls  *streamListener

	done chan struct{} // closed when Close starts
	idle chan struct{} // signalled when pending drops to 0

	mu      sync.Mutex
	closing bool
	users   map[string]*userState
	allocs  map[int]*relayConn // by relay port
	streams map[*streamConn]struct{}
	pending int // pion goroutines not yet seen to finish (see Close)

	closeOnce sync.Once
	closeErr  error

	relayed, droppedRate, droppedSelf           atomic.Uint64
	refusedAuth, refusedPeers, refusedQuotaStat atomic.Uint64
}

// userState is one user's allocation count and shared bandwidth bucket.
type userState struct {
	allocs  int
	limiter *rate.Limiter // nil: unlimited
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
	relayIP, ok := netip.AddrFromSlice(cfg.RelayIP)
	relayIP = relayIP.Unmap()
	if !ok || relayIP.IsUnspecified() || relayIP.IsMulticast() {
		return nil, fmt.Errorf("%w: RelayIP %v: need a unicast address", ErrInvalidConfig, cfg.RelayIP)
	}
	bindIP := relayIP
	if cfg.RelayBindIP != nil {
		b, ok := netip.AddrFromSlice(cfg.RelayBindIP)
		if !ok || b.Unmap().Is4() != relayIP.Is4() || b.IsMulticast() {
			return nil, fmt.Errorf("%w: RelayBindIP %v: need a unicast address of RelayIP's family", ErrInvalidConfig, cfg.RelayBindIP)
		}
		bindIP = b.Unmap()
	}
	s.relayIP = net.IP(relayIP.AsSlice())
	s.bindIP = net.IP(bindIP.AsSlice())
	// Fail now, not at every Allocate, if allocations cannot be bound (RelayIP
	// is not a local address, e.g. a public address behind a 1:1 NAT).
	probe, err := s.listenRelay(relayNetwork(relayIP), 0)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot bind relayed sockets to %v (set RelayBindIP to a local address): %w",
			ErrInvalidConfig, s.bindIP, err)
	}
	_ = probe.Close()
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
		s.limit = rate.Limit(bw)
		s.burst = max(bw, maxPacket)
	}
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
		for _, c := range opened {
			_ = c.Close()
		}
		return nil, err
	}
	var lc net.ListenConfig
	pc := cfg.PacketConn
	if cfg.UDPAddr != "" {
		if pc, err = lc.ListenPacket(context.Background(), "udp", cfg.UDPAddr); err != nil {
			return fail(fmt.Errorf("listen udp %s: %w", cfg.UDPAddr, err))
		}
		opened = append(opened, pc)
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

	var local []net.Addr
	gen := relayAddrs{s}
	scfg := turn.ServerConfig{
		Realm:         s.realm,
		AuthHandler:   s.authenticate,
		QuotaHandler:  s.quota,
		LoggerFactory: pionLoggers{s.log},
		EventHandler: turn.EventHandler{
			OnAuth:              s.onAuth,
			OnAllocationCreated: s.onAllocationCreated,
			OnPermissionCreated: func(_, _ net.Addr, _, _, _ string, relayAddr net.Addr, peer net.IP) {
				s.onPermission(relayAddr, peer, true)
			},
			OnPermissionDeleted: func(_, _ net.Addr, _, _, _ string, relayAddr net.Addr, peer net.IP) {
				s.onPermission(relayAddr, peer, false)
			},
		},
	}
	if pc != nil {
		s.udp = &packetListener{PacketConn: pc, s: s}
		s.pending++
		local = append(local, pc.LocalAddr())
		scfg.PacketConnConfigs = append(scfg.PacketConnConfigs, turn.PacketConnConfig{
			PacketConn: s.udp, RelayAddressGenerator: gen, PermissionHandler: s.permit,
		})
	}
	if tcpL != nil {
		s.tcp = &streamListener{Listener: tcpL, s: s}
		s.pending++
		local = append(local, tcpL.Addr())
		scfg.ListenerConfigs = append(scfg.ListenerConfigs, turn.ListenerConfig{
			Listener: s.tcp, RelayAddressGenerator: gen, PermissionHandler: s.permit,
		})
	}
	if tlsL != nil {
		s.tls = &streamListener{Listener: tls.NewListener(tlsL, tlsConfig), s: s}
		s.pending++
		local = append(local, tlsL.Addr())
		scfg.ListenerConfigs = append(scfg.ListenerConfigs, turn.ListenerConfig{
			Listener: s.tls, RelayAddressGenerator: gen, PermissionHandler: s.permit,
		})
	}
	s.self = s.selfAddrs(local)

	ts, err := turn.NewServer(scfg)
	if err != nil {
		return fail(fmt.Errorf("start turn server: %w", err))
	}
	s.turn = ts

	udp, tcp, tlsA := s.Addrs()
	s.log.Info("relay: started", "udp", udp, "tcp", tcp, "tls", tlsA, "relay_ip", s.relayIP,
		"bind_ip", s.bindIP, "realm", s.realm, "allow_peers", s.allow,
		"max_allocations_per_user", s.maxAllocs, "user_bandwidth", bw)
	return s, nil
}

// selfAddrs returns the relay host's own addresses, to which allocations may
// send only at allocation ports: RelayIP, RelayBindIP, the listeners' addresses,
// the unspecified addresses (which reach the local host) and, if the relay or a
// listener is bound to an unspecified address, every interface address and
// (s.selfLoop) the whole loopback range.
func (s *Server) selfAddrs(listeners []net.Addr) map[netip.Addr]struct{} {
	self := map[netip.Addr]struct{}{
		netip.IPv4Unspecified(): {},
		netip.IPv6Unspecified(): {},
	}
	wildcard := false
	add := func(ip net.IP) {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return
		}
		a = a.Unmap()
		if a.IsUnspecified() {
			wildcard = true
		}
		self[a] = struct{}{}
	}
	add(s.relayIP)
	add(s.bindIP)
	for _, l := range listeners {
		switch a := l.(type) {
		case *net.UDPAddr:
			add(a.IP)
		case *net.TCPAddr:
			add(a.IP)
		}
	}
	if wildcard {
		s.selfLoop = true
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			s.log.Warn("relay: cannot list interface addresses for the same-relay rule", "err", err)
		}
		for _, ia := range addrs {
			if n, ok := ia.(*net.IPNet); ok {
				add(n.IP)
			}
		}
	}
	return self
}

// Addrs returns the bound listener addresses; nil for a listener not
// configured.
func (s *Server) Addrs() (udp, tcp, tls net.Addr) {
	if s.udp != nil {
		udp = s.udp.LocalAddr()
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
	st.RelayedBytes = s.relayed.Load()
	st.DroppedBandwidth = s.droppedRate.Load()
	st.DroppedSelf = s.droppedSelf.Load()
	st.RefusedAuth = s.refusedAuth.Load()
	st.RefusedPeers = s.refusedPeers.Load()
	st.RefusedQuota = s.refusedQuotaStat.Load()
	return st
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
			s.log.Warn("relay: close timed out", "pending", pending)
			return fmt.Errorf("relay: close: %w", errors.Join(errs...))
		}
	}
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

// authenticate is pion's AuthHandler: it accepts TURN-REST usernames that parse,
// have not expired by s.now (less RefreshGrace for requests other than
// Allocate) and expire at most MaxCredentialTTL ahead, in this relay's realm, and returns the user name as the user ID (quotas are per user)
// with the long-term key of the expected password. pion checks the request's
// MESSAGE-INTEGRITY against that key (HMAC, compared in constant time), so a
// wrong password fails there (see onAuth). Passwords are never logged.
func (s *Server) authenticate(ra *turn.RequestAttributes) (userID string, key []byte, ok bool) {
	grace := s.grace
	if ra.Method == stun.MethodAllocate {
		grace = 0
	}
	user, err := turncred.CheckUsername(ra.Username, s.now(), grace)
	if err == nil && ra.Realm != s.realm {
		err = fmt.Errorf("relay: check realm %q: %w", ra.Realm, ErrWrongRealm)
	}
	if err != nil {
		s.refusedAuth.Add(1)
		s.log.Debug("relay: credential refused", "client", ra.SrcAddr, "username", ra.Username, "err", err)
		return "", nil, false
	}
	return user, turn.GenerateAuthKey(ra.Username, ra.Realm, turncred.Password(s.secret, ra.Username)), true
}

// onAuth counts requests whose credential parsed but whose MESSAGE-INTEGRITY
// did not verify: a wrong password or secret.
func (s *Server) onAuth(src, _ net.Addr, _, username, _, method string, verdict bool) {
	if verdict {
		return
	}
	s.refusedAuth.Add(1)
	s.log.Debug("relay: wrong TURN password", "client", src, "username", username, "method", method)
}

// quota is pion's QuotaHandler: it refuses a new allocation (486 Allocation
// Quota Reached) when the user already holds MaxAllocationsPerUser.
func (s *Server) quota(user, _ string, src net.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if u := s.users[user]; u != nil && s.maxAllocs > 0 && u.allocs >= s.maxAllocs {
		s.refusedQuotaStat.Add(1)
		s.log.Info("relay: allocation quota reached", "user", user, "client", src, "max", s.maxAllocs)
		return false
	}
	return true
}

// permit is pion's PermissionHandler for CreatePermission and ChannelBind:
// peers failing PeerAllowed get 403 Forbidden (ChannelBind: pion answers 401).
func (s *Server) permit(client net.Addr, peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	if ok && addrpolicy.PeerAllowed(ip, s.allow) {
		return true
	}
	s.refusedPeers.Add(1)
	s.log.Info("relay: peer refused", "client", client, "peer", ip)
	return false
}

func (s *Server) onAllocationCreated(src, dst net.Addr, _, user, _ string, relayAddr net.Addr, _ int) {
	s.log.Info("relay: allocation created", "user", user, "client", src, "listener", dst, "relay", relayAddr)
}

// onPermission keeps an allocation's set of permitted peer IPs, so that its
// relayed conn drops unsolicited packets before charging them to the user.
func (s *Server) onPermission(relayAddr net.Addr, peer net.IP, add bool) {
	ua, ok := relayAddr.(*net.UDPAddr)
	if !ok {
		return
	}
	ip, ok := netip.AddrFromSlice(peer)
	if !ok {
		return
	}
	s.mu.Lock()
	c := s.allocs[ua.Port]
	s.mu.Unlock()
	if c != nil {
		c.setPeer(ip.Unmap(), add)
	}
}

// isSelf reports whether ip (unmapped) is one of the relay host's addresses.
func (s *Server) isSelf(ip netip.Addr) bool {
	if s.selfLoop && ip.IsLoopback() {
		return true
	}
	_, ok := s.self[ip]
	return ok
}

// isAllocPort reports whether port is the port of a live allocation.
func (s *Server) isAllocPort(port uint16) bool {
	s.mu.Lock()
	_, ok := s.allocs[int(port)]
	s.mu.Unlock()
	return ok
}

// relayAddrs is the RelayAddressGenerator: it binds allocations to
// RelayBindIP, advertises them at RelayIP and wraps them in relayConn.
type relayAddrs struct{ s *Server }

func (g relayAddrs) Validate() error { return nil }

func (g relayAddrs) AllocatePacketConn(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	return g.s.allocate(c)
}

func (g relayAddrs) AllocateListener(c turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, fmt.Errorf("relay: allocate %s for %s: %w", c.Network, c.UserID, ErrTCPRelay)
}

func (g relayAddrs) AllocateConn(c turn.AllocateConnConfig) (net.Conn, error) {
	return nil, fmt.Errorf("relay: connect %v for %s: %w", c.RemoteAddr, c.UserID, ErrTCPRelay)
}

// allocate opens a relayed socket for c.UserID, within the user's quota.
func (s *Server) allocate(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	if ip, _ := netip.AddrFromSlice(s.relayIP); c.Network != relayNetwork(ip) {
		return nil, nil, fmt.Errorf("relay: allocate %s for %s: relay address %v: %w",
			c.Network, c.UserID, s.relayIP, ErrAddressFamily)
	}
	if c.UserID == "" {
		// pion's EVEN-PORT probe: a socket it closes at once to learn a port.
		pc, err := s.listenRelay(c.Network, c.RequestedPort)
		if err != nil {
			return nil, nil, fmt.Errorf("relay: allocate %s: %w", c.Network, err)
		}
		return pc, s.advertised(pc), nil
	}

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil, nil, fmt.Errorf("relay: allocate for %s: %w", c.UserID, ErrClosed)
	}
	u := s.users[c.UserID]
	if u == nil {
		u = &userState{}
		if s.burst > 0 {
			u.limiter = rate.NewLimiter(s.limit, s.burst)
		}
		s.users[c.UserID] = u
	}
	if s.maxAllocs > 0 && u.allocs >= s.maxAllocs {
		if u.allocs == 0 {
			delete(s.users, c.UserID)
		}
		s.mu.Unlock()
		s.refusedQuotaStat.Add(1)
		return nil, nil, fmt.Errorf("relay: allocate for %s: %w", c.UserID, ErrQuota)
	}
	u.allocs++
	s.mu.Unlock()

	pc, err := s.listenRelay(c.Network, c.RequestedPort)
	if err != nil {
		s.mu.Lock()
		s.dropUserLocked(c.UserID, u)
		s.mu.Unlock()
		return nil, nil, fmt.Errorf("relay: allocate %s for %s: %w", c.Network, c.UserID, err)
	}
	addr := s.advertised(pc)
	rc := &relayConn{
		PacketConn: pc, s: s, user: c.UserID, u: u, port: addr.Port,
		addr: addr, created: s.now(), peers: make(map[netip.Addr]struct{}),
	}
	s.mu.Lock()
	if s.closing {
		s.dropUserLocked(c.UserID, u)
		s.mu.Unlock()
		_ = pc.Close()
		return nil, nil, fmt.Errorf("relay: allocate for %s: %w", c.UserID, ErrClosed)
	}
	s.allocs[addr.Port] = rc
	s.pending += 2 // the relayed conn until closed, and pion's reader until it sees the close
	s.mu.Unlock()
	return rc, s.advertised(pc), nil
}

// dropUserLocked gives back one allocation of user; s.mu is held.
func (s *Server) dropUserLocked(user string, u *userState) {
	u.allocs--
	if u.allocs <= 0 && s.users[user] == u {
		delete(s.users, user)
	}
}

func (s *Server) listenRelay(network string, port int) (net.PacketConn, error) {
	var lc net.ListenConfig
	return lc.ListenPacket(context.Background(), network, net.JoinHostPort(s.bindIP.String(), strconv.Itoa(port)))
}

// relayNetwork is the network of allocations relayed from ip.
func relayNetwork(ip netip.Addr) string {
	if ip.Is4() {
		return "udp4"
	}
	return "udp6"
}

// advertised is pc's address as clients see it: RelayIP and pc's port.
func (s *Server) advertised(pc net.PacketConn) *net.UDPAddr {
	port := 0
	if ua, ok := pc.LocalAddr().(*net.UDPAddr); ok {
		port = ua.Port
	}
	return &net.UDPAddr{IP: append(net.IP(nil), s.relayIP...), Port: port}
}
