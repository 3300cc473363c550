package relay

import (
	"net"
	"net/netip"

	"github.com/parley/parley/relay/internal/offload"
)

// The in-kernel fast path (Config.KernelOffload, relay/internal/offload):
// a BPF program on the listener's interface forwards ChannelData on the
// channels the relay gives it, so that their packets never reach the
// relay's sockets. The relay gives it exactly the channels the socket fast
// path would forward without further checks: bound, the peer holding a
// permission, allowed by the deny list, not on the relay host itself (the
// same-relay rule needs the live port set, so those stay on the sockets),
// IPv4, on the UDP listener. Each allocation keeps its offloaded channels
// in step with its view (syncOffload, after every change of permissions
// or channels, and when it closes), so an expired permission or channel
// takes its entry out of the kernel as it takes it out of the view.
//
// The user's bandwidth budget is applied in the kernel too, but as a
// bucket of its own (the program's clock is the kernel's monotonic one):
// a user whose packets go both ways, through the kernel and through the
// sockets, gets up to twice the budget. The program counts each channel's
// packets, bytes and drops; Stats reads them live (kernelTraffic), and the
// relay adds them to the allocation's counters when the entry goes.

// openOffload attaches the program for the UDP listener; when it cannot,
// it logs why and the relay runs without it.
func (s *Server) openOffload() {
	if s.udpConn == nil {
		s.log.Warn("relay: kernel offload needs a UDP listener socket; running without it")
		return
	}
	l := udpAddrPort(s.udpConn.LocalAddr())
	o, err := offload.Open(offload.Config{Listener: l, Logger: s.log})
	if err != nil {
		s.log.Warn("relay: kernel offload unavailable; running without it", "err", err)
		return
	}
	s.offload = o
}

// udpAddrPort is a's address and port, unmapped (zero for other than UDP).
func udpAddrPort(a net.Addr) netip.AddrPort {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// syncOffload gives the kernel the channels of v it may forward and takes
// back the others; c.viewMu is held.
func (c *relayConn) syncOffload(v *allocView) {
	o := c.s.offload
	if o == nil {
		return
	}
	user, ok := uint32(0), true
	if len(v.chans) > 0 {
		user, ok = c.s.budgetOf(c.u)
	}
	want := make(map[*channel]struct{}, len(v.chans))
	for _, ch := range v.chans {
		if !ok {
			break // no budget in the kernel: the sockets keep every channel
		}
		if _, ok := v.peers[ch.peer.Addr()]; ok && ch.allowed && !ch.self {
			want[ch] = struct{}{}
		}
	}
	// Removals first: a channel bound again under the same key must not
	// lose its new entry to the old one's removal.
	for ch, oc := range c.offloaded {
		if _, ok := want[ch]; ok {
			continue
		}
		delete(c.offloaded, ch)
		n, err := o.Remove(oc)
		if err != nil {
			c.s.log.Warn("relay: kernel offload: remove a channel", "relay", c.addr, "err", err)
		}
		c.n.kernelOut.Add(n.ToPeer)
		c.n.pktsOut.Add(n.ToPeer)
		c.n.bytesOut.Add(n.ToPeerBytes)
		c.n.kernelIn.Add(n.ToClient)
		c.n.pktsIn.Add(n.ToClient)
		c.n.bytesIn.Add(n.ToClientBytes)
		c.n.dropRate.Add(n.Dropped)
	}
	relayed := udpAddrPort(c.udp.LocalAddr())
	if relayed.Addr().IsUnspecified() {
		relayed = netip.AddrPortFrom(c.relayedIP(), relayed.Port())
	}
	for ch := range want {
		if _, ok := c.offloaded[ch]; ok {
			continue
		}
		oc := offload.Channel{Client: ch.client, Number: ch.num, Relayed: relayed, Peer: ch.peer, User: user}
		if !ch.client.Addr().Is4() || !ch.peer.Addr().Is4() || !relayed.Addr().Is4() {
			continue // IPv4 only: the socket fast path has it
		}
		if err := o.Add(oc); err != nil {
			c.s.log.Warn("relay: kernel offload: add a channel", "relay", c.addr, "err", err)
			continue
		}
		if c.offloaded == nil {
			c.offloaded = make(map[*channel]offload.Channel)
		}
		c.offloaded[ch] = oc
	}
}

// budgetOf returns the kernel's budget for u's channels (0: u is
// unlimited), giving u one first; ok is false when it cannot.
func (s *Server) budgetOf(u *userState) (slot uint32, ok bool) {
	if u.bucket == nil {
		return 0, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.slot == 0 {
		if s.slots++; s.slots == 0 {
			s.slots++
		}
		if err := s.offload.SetBudget(s.slots, s.bandwidth, s.burst); err != nil {
			s.log.Warn("relay: kernel offload: set a user's budget", "err", err)
			return 0, false
		}
		u.slot = s.slots
	}
	return u.slot, true
}

// dropBudgetLocked removes u's budget from the kernel; s.mu is held.
func (s *Server) dropBudgetLocked(u *userState) {
	if u.slot == 0 || s.offload == nil {
		return
	}
	if err := s.offload.RemoveBudget(u.slot); err != nil {
		s.log.Warn("relay: kernel offload: remove a user's budget", "err", err)
	}
	u.slot = 0
}

// kernelTraffic adds to t what the kernel has forwarded so far on the
// channels of c it holds. A channel leaving the kernel meanwhile moves its
// counts into c.n, so a sum taken across that moment may miss them once;
// it never counts them twice.
func (c *relayConn) kernelTraffic(t *traffic) {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	for _, oc := range c.offloaded {
		n, ok := c.s.offload.Counts(oc)
		if !ok {
			continue
		}
		t.kernelOut += n.ToPeer
		t.pktsOut += n.ToPeer
		t.bytesOut += n.ToPeerBytes
		t.kernelIn += n.ToClient
		t.pktsIn += n.ToClient
		t.bytesIn += n.ToClientBytes
		t.dropRate += n.Dropped
	}
}
