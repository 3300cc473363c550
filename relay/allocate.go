package relay

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/pion/turn/v5"
	"golang.org/x/time/rate"
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
	s.c.allocsCreated.Add(1)
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
