package relay

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/pion/turn/v5"
)

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

// relayFamily is where allocations of one address family are made.
type relayFamily struct {
	network string // "udp4" or "udp6"
	ip      net.IP // advertised
	bind    net.IP // bound
}

func (f relayFamily) String() string { return f.ip.String() }

// relayFamily checks a relay address and its bind address (field names
// the Config fields in errors) and that relayed sockets can be bound there.
func (s *Server) relayFamily(field string, relay, bind net.IP) (relayFamily, error) {
	ip, ok := netip.AddrFromSlice(relay)
	ip = ip.Unmap()
	if !ok || ip.IsUnspecified() || ip.IsMulticast() {
		return relayFamily{}, fmt.Errorf("%w: %s %v: need a unicast address", ErrInvalidConfig, field, relay)
	}
	b := ip
	if bind != nil {
		bb, ok := netip.AddrFromSlice(bind)
		if !ok || bb.Unmap().Is4() != ip.Is4() || bb.IsMulticast() {
			return relayFamily{}, fmt.Errorf("%w: %s: bind address %v: need a unicast address of the relay address's family",
				ErrInvalidConfig, field, bind)
		}
		b = bb.Unmap()
	}
	f := relayFamily{network: relayNetwork(ip), ip: net.IP(ip.AsSlice()), bind: net.IP(b.AsSlice())}
	// Fail now, not at every Allocate, if allocations cannot be bound (the
	// address is not a local one, e.g. a public address behind a 1:1 NAT).
	probe, err := s.listenRelay(f, 0)
	if err != nil {
		return relayFamily{}, fmt.Errorf("%w: %s: cannot bind relayed sockets to %v (set its bind address to a local one): %w",
			ErrInvalidConfig, field, f.bind, err)
	}
	_ = probe.Close()
	return f, nil
}

// family is where allocations on network ("udp4", "udp6") are made; nil
// when the relay has no address of that family.
func (s *Server) family(network string) *relayFamily {
	for i := range s.families {
		if s.families[i].network == network {
			return &s.families[i]
		}
	}
	return nil
}

// portsOf is the set of live allocation ports of ip's family.
func (s *Server) portsOf(ip netip.Addr) *portSet {
	if ip.Unmap().Is4() {
		return &s.ports
	}
	return &s.ports6
}

// allocate opens a relayed socket for c.UserID, within the user's quota.
func (s *Server) allocate(c turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	f := s.family(c.Network)
	if f == nil {
		return nil, nil, fmt.Errorf("relay: allocate %s for %s: relay addresses %v: %w",
			c.Network, c.UserID, s.families, ErrAddressFamily)
	}
	if c.UserID == "" {
		// pion's EVEN-PORT probe: a socket it closes at once to learn a port.
		pc, err := s.listenRelay(*f, c.RequestedPort)
		if err != nil {
			return nil, nil, fmt.Errorf("relay: allocate %s: %w", c.Network, err)
		}
		return pc, advertised(*f, pc), nil
	}

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil, nil, fmt.Errorf("relay: allocate for %s: %w", c.UserID, ErrClosed)
	}
	u := s.users[c.UserID]
	if u == nil {
		u = &userState{}
		if s.bandwidth > 0 {
			u.bucket = newBucket(s.bandwidth, s.burst)
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

	rc, err := s.openRelayed(*f, c, u)
	if err != nil {
		s.mu.Lock()
		s.dropUserLocked(c.UserID, u)
		s.mu.Unlock()
		return nil, nil, err
	}
	s.c.allocsCreated.Add(1)
	return rc, rc.advertised(), nil
}

// portTries is how many sockets openRelayed opens, at most, to find a port
// no allocation of the other family holds.
const portTries = 8

// openRelayed opens and registers the relayed socket of a new allocation of
// c.UserID (whose quota u is already charged) in family f. Allocations are
// known by port (pion's events name their relayed address), so with two
// families a port the other family's allocations hold is passed over.
func (s *Server) openRelayed(f relayFamily, c turn.AllocateListenerConfig, u *userState) (*relayConn, error) {
	for range portTries {
		pc, err := s.listenRelay(f, c.RequestedPort)
		if err != nil {
			return nil, fmt.Errorf("relay: allocate %s for %s: %w", c.Network, c.UserID, err)
		}
		addr := advertised(f, pc)
		udp, ok := pc.(*net.UDPConn)
		if !ok { // listenRelay makes UDP sockets
			_ = pc.Close()
			return nil, fmt.Errorf("relay: allocate for %s: %T is not a UDP socket", c.UserID, pc)
		}
		s.setBuffers(udp, s.relayBuf, "")
		rc := &relayConn{
			PacketConn: pc, udp: udp, s: s, user: c.UserID, u: u, port: addr.Port,
			addr: addr, created: s.now(), closed: make(chan struct{}),
		}
		rc.view.Store(emptyView)
		if err := s.readRelayed(rc); err != nil {
			_ = pc.Close()
			return nil, fmt.Errorf("relay: allocate for %s: %w", c.UserID, err)
		}
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			rc.unread()
			_ = pc.Close()
			return nil, fmt.Errorf("relay: allocate for %s: %w", c.UserID, ErrClosed)
		}
		if s.allocs[addr.Port] != nil { // the other family's
			s.mu.Unlock()
			rc.unread()
			_ = pc.Close()
			if c.RequestedPort != 0 {
				break
			}
			continue
		}
		s.allocs[addr.Port] = rc
		s.portsOf(rc.relayedIP()).set(addr.Port, true)
		s.pending += 2 // the relayed conn until closed, and pion's reader until it sees the close
		s.mu.Unlock()
		return rc, nil
	}
	return nil, fmt.Errorf("relay: allocate %s for %s: no port free in both families: %w",
		c.Network, c.UserID, ErrAddressFamily)
}

// readRelayed sets up the reading of c's socket: by a forwarder (a per-core
// read loop) when the server has them, else by pion's goroutine through
// ReadFrom, in batches.
func (s *Server) readRelayed(c *relayConn) error {
	if s.fwd != nil {
		c.slow = make(chan slowPacket, slowQueue)
		return s.fwd.register(c)
	}
	br, err := newBatchReader(c.udp, relayBatch, maxPacket, 4)
	c.br = br
	return err
}

// unread undoes readRelayed for a socket about to be closed unpublished.
func (c *relayConn) unread() {
	if c.fw.on() {
		c.fw.f.remove(c)
	}
}

// dropUserLocked gives back one allocation of user; s.mu is held.
func (s *Server) dropUserLocked(user string, u *userState) {
	u.allocs--
	if u.allocs <= 0 && s.users[user] == u {
		delete(s.users, user)
		s.dropBudgetLocked(u)
	}
}

func (s *Server) listenRelay(f relayFamily, port int) (net.PacketConn, error) {
	var lc net.ListenConfig
	return lc.ListenPacket(context.Background(), f.network, net.JoinHostPort(f.bind.String(), strconv.Itoa(port)))
}

// relayNetwork is the network of allocations relayed from ip.
func relayNetwork(ip netip.Addr) string {
	if ip.Is4() {
		return "udp4"
	}
	return "udp6"
}

// advertised is pc's address as clients see it: f's relay address and pc's
// port.
func advertised(f relayFamily, pc net.PacketConn) *net.UDPAddr {
	port := 0
	if ua, ok := pc.LocalAddr().(*net.UDPAddr); ok {
		port = ua.Port
	}
	return &net.UDPAddr{IP: append(net.IP(nil), f.ip...), Port: port}
}

// advertised is a fresh copy of c's relayed address (pion keeps it).
func (c *relayConn) advertised() *net.UDPAddr {
	return &net.UDPAddr{IP: append(net.IP(nil), c.addr.IP...), Port: c.addr.Port}
}

// relayedIP is c's relayed address's IP.
func (c *relayConn) relayedIP() netip.Addr {
	ip, _ := netip.AddrFromSlice(c.addr.IP)
	return ip.Unmap()
}
