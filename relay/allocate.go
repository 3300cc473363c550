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

	pc, err := s.listenRelay(c.Network, c.RequestedPort)
	if err != nil {
		s.mu.Lock()
		s.dropUserLocked(c.UserID, u)
		s.mu.Unlock()
		return nil, nil, fmt.Errorf("relay: allocate %s for %s: %w", c.Network, c.UserID, err)
	}
	addr := s.advertised(pc)
	udp, ok := pc.(*net.UDPConn)
	if !ok { // listenRelay makes UDP sockets
		_ = pc.Close()
		s.mu.Lock()
		s.dropUserLocked(c.UserID, u)
		s.mu.Unlock()
		return nil, nil, fmt.Errorf("relay: allocate for %s: %T is not a UDP socket", c.UserID, pc)
	}
	s.setBuffers(udp, s.relayBuf, "")
	br, err := newBatchReader(udp, relayBatch, maxPacket, 4)
	if err != nil {
		_ = pc.Close()
		s.mu.Lock()
		s.dropUserLocked(c.UserID, u)
		s.mu.Unlock()
		return nil, nil, fmt.Errorf("relay: allocate for %s: %w", c.UserID, err)
	}
	rc := &relayConn{
		PacketConn: pc, udp: udp, br: br, s: s, user: c.UserID, u: u, port: addr.Port,
		addr: addr, created: s.now(),
	}
	rc.view.Store(emptyView)
	s.mu.Lock()
	if s.closing {
		s.dropUserLocked(c.UserID, u)
		s.mu.Unlock()
		_ = pc.Close()
		return nil, nil, fmt.Errorf("relay: allocate for %s: %w", c.UserID, ErrClosed)
	}
	s.allocs[addr.Port] = rc
	s.ports.set(addr.Port, true)
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
