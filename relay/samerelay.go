package relay

import (
	"net"
	"net/netip"
)

// selfAddrs returns the relay host's own addresses, to which allocations may
// send only at allocation ports: the relay and bind addresses (both families),
// the listeners' addresses,
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
	for _, f := range s.families {
		add(f.ip)
		add(f.bind)
	}
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

// isSelf reports whether ip (unmapped) is one of the relay host's addresses.
func (s *Server) isSelf(ip netip.Addr) bool {
	if s.selfLoop && ip.IsLoopback() {
		return true
	}
	_, ok := s.self[ip]
	return ok
}
