package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley/parley/internal/addrpolicy"
	"github.com/parley/parley/relay/internal/offload"
)

// packetListener is the TURN/STUN UDP socket as pion sees it. pion's read loop
// ends for good on the first read error, so transient errors are retried here
// and only a closed socket ends it; that end is reported to the Server's
// goroutine accounting. ChannelData on a channel the fast path knows is
// relayed here, or on Linux by the forwarder reading the socket, and never
// reaches pion (see fastpath.go, forward_linux.go).
type packetListener struct {
	net.PacketConn
	br   *batchReader // reads the socket when it is a UDP socket (fast path); else nil
	s    *Server
	h    *listenerHealth
	once sync.Once

	// With a forwarder (Linux), the forwarder reads the socket (br) and
	// leaves here what is for pion; ReadFrom waits on slow until closed.
	slow      chan slowPacket
	closed    chan struct{}
	closeOnce sync.Once
}

// listenerQueue is how many datagrams wait for pion's goroutine of a UDP
// listener socket at most (requests, Send indications, ChannelData on
// channels the fast path does not know); more are dropped.
const listenerQueue = 1024

// Close closes the socket and ends ReadFrom.
func (p *packetListener) Close() error {
	err := p.PacketConn.Close()
	if p.closed != nil {
		p.closeOnce.Do(func() { close(p.closed) })
	}
	return err
}

// queueSlow copies a datagram for pion's goroutine, dropping it when the
// queue is full.
func (p *packetListener) queueSlow(b []byte, from netip.AddrPort) {
	select {
	case p.slow <- slowPacket{b: append([]byte(nil), b...), from: from}:
	default:
	}
}

func (p *packetListener) ReadFrom(b []byte) (int, net.Addr, error) {
	delay := 5 * time.Millisecond
	for {
		n, addr, err := p.read(b)
		if err == nil {
			if addr == nil {
				continue // relayed on the fast path
			}
			return n, addr, nil
		}
		if errors.Is(err, net.ErrClosed) || p.s.isClosing() {
			p.h.stopped.Store(!p.s.isClosing())
			p.once.Do(p.s.release)
			return n, addr, err
		}
		p.h.failed(err)
		p.s.log.Warn("relay: udp read failed; retrying", "listener", p.LocalAddr(), "err", err)
		if !p.s.pause(delay) {
			delay = min(delay*2, time.Second)
		}
	}
}

// read reads one datagram; a nil address and no error means the fast path
// relayed it.
func (p *packetListener) read(b []byte) (int, net.Addr, error) {
	if p.slow != nil {
		select {
		case pk := <-p.slow:
			return copy(b, pk.b), net.UDPAddrFromAddrPort(pk.from), nil
		case <-p.closed:
			return 0, nil, net.ErrClosed
		}
	}
	if p.br == nil {
		return p.PacketConn.ReadFrom(b)
	}
	pkt, from, err := p.br.next()
	if err != nil {
		return 0, nil, err
	}
	if p.s.forwardFromClient(pkt, from) {
		return 0, nil, nil
	}
	return copy(b, pkt), net.UDPAddrFromAddrPort(from), nil
}

// pause sleeps for d or until Close starts, and reports whether Close started.
func (s *Server) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.done:
		return true
	case <-t.C:
		return false
	}
}

// streamListener is a TCP or TLS listener as pion sees it. Like packetListener
// it retries transient accept errors (pion would stop accepting for good), and
// it tracks accepted connections so Close can close them (pion does not).
type streamListener struct {
	net.Listener
	s    *Server
	h    *listenerHealth
	once sync.Once
}

func (l *streamListener) Accept() (net.Conn, error) {
	delay := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			return l.s.trackStream(c), nil
		}
		if errors.Is(err, net.ErrClosed) || l.s.isClosing() {
			l.h.stopped.Store(!l.s.isClosing())
			l.once.Do(l.s.release)
			return nil, err
		}
		l.h.failed(err)
		l.s.log.Warn("relay: accept failed; retrying", "listener", l.Addr(), "err", err)
		if !l.s.pause(delay) {
			delay = min(delay*2, time.Second)
		}
	}
}

// trackStream registers an accepted connection until pion closes it.
func (s *Server) trackStream(c net.Conn) *streamConn {
	sc := &streamConn{Conn: c, s: s}
	s.mu.Lock()
	closing := s.closing
	s.streams[sc] = struct{}{}
	s.pending++
	s.mu.Unlock()
	if closing {
		_ = c.Close()
	}
	return sc
}

// streamConn is an accepted TURN-over-TCP/TLS connection. Reads carry
// deadlines (a short one for the TLS handshake and first request, then an idle
// timeout); a write that cannot complete breaks the connection rather than
// stall the allocation relaying to it.
type streamConn struct {
	net.Conn
	s       *Server
	started bool // a read has been made (only pion's reader reads)
	once    sync.Once
}

func (c *streamConn) Read(b []byte) (int, error) {
	d := streamIdleTimeout
	if !c.started {
		c.started = true
		d = streamFirstReadTimeout
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(d))
	return c.Conn.Read(b)
}

func (c *streamConn) Write(b []byte) (int, error) {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	n, err := c.Conn.Write(b)
	if err != nil {
		_ = c.Conn.Close() // a partial frame has broken the stream
	}
	return n, err
}

// Close is called by pion's per-connection goroutine as its last act.
func (c *streamConn) Close() error {
	err := net.ErrClosed
	c.once.Do(func() {
		err = c.Conn.Close()
		c.s.mu.Lock()
		delete(c.s.streams, c)
		c.s.mu.Unlock()
		c.s.release()
	})
	return err
}

// relayConn is an allocation's relayed socket. It enforces, per packet:
//
//   - peer to client (ReadFrom, or on Linux the forwarder reading the
//     socket, which leaves pion's share in the slow queue): packets from IPs
//     the allocation has no permission for are dropped before they count
//     against the user's bandwidth (pion would drop them too); the rest are
//     charged to the user's bucket and dropped when it is empty; those from
//     a peer with a channel bound go to the client as ChannelData right here
//     (the fast path, see fastpath.go), the rest to pion;
//   - client to peer (WriteTo, and toPeer on the fast path): a destination
//     failing PeerAllowed is dropped (pion's permission check already refused
//     it; this is a second line), a destination on the relay host itself is
//     dropped unless its port is a live allocation's (the same-relay rule),
//     and the rest are charged to the user's bucket and dropped when it is
//     empty.
//
// Drops never return an error to pion (that would end the allocation or log
// per packet); they are counted in Stats and logged once per allocation.
// Its counters and view are its own: no packet takes a lock or writes a
// word that another allocation's packets use, except the user's bucket.
type relayConn struct {
	net.PacketConn
	udp     *net.UDPConn // the same socket, for writes that allocate nothing
	br      *batchReader // reads it when no forwarder does: room for a ChannelData header before each datagram
	fw      fwdLink      // the per-core read loop reading it (Linux; see forward_linux.go)
	slow    chan slowPacket
	closed  chan struct{} // closed by Close: ends ReadFrom
	s       *Server
	user    string
	u       *userState
	port    int
	addr    *net.UDPAddr
	created time.Time

	viewMu    sync.Mutex // writers of view, and offloaded
	view      atomic.Pointer[allocView]
	offloaded map[*channel]offload.Channel // the channels the kernel forwards (Config.KernelOffload)

	n                      allocCounters
	warnedSelf, warnedRate atomic.Bool
	readerOnce, closeOnce  sync.Once
}

// allocCounters are one allocation's packet counters; Stats sums them.
type allocCounters struct {
	bytesIn, bytesOut, pktsIn, pktsOut atomic.Uint64
	dropRate, dropSelf, dropNoPerm     atomic.Uint64
	fastIn, fastOut                    atomic.Uint64 // packets relayed on the fast path
	dropQueue                          atomic.Uint64 // packets dropped at a full slow queue (forward_linux.go)
	kernelIn, kernelOut                atomic.Uint64 // packets relayed in the kernel (counted when the channel leaves it)
}

// traffic is a sum of allocCounters.
type traffic struct {
	bytesIn, bytesOut, pktsIn, pktsOut uint64
	dropRate, dropSelf, dropNoPerm     uint64
	fastIn, fastOut                    uint64
	kernelIn, kernelOut                uint64
}

func (a *allocCounters) addTo(t *traffic) {
	t.bytesIn += a.bytesIn.Load()
	t.bytesOut += a.bytesOut.Load()
	t.pktsIn += a.pktsIn.Load()
	t.pktsOut += a.pktsOut.Load()
	t.dropRate += a.dropRate.Load()
	t.dropSelf += a.dropSelf.Load()
	t.dropNoPerm += a.dropNoPerm.Load()
	t.fastIn += a.fastIn.Load()
	t.fastOut += a.fastOut.Load()
	t.kernelIn += a.kernelIn.Load()
	t.kernelOut += a.kernelOut.Load()
}

// admit applies the rules to a peer's datagram of n bytes from ip
// (unmapped) under view v: ip must have a permission, and the user's
// budget must cover it. An admitted datagram is counted.
func (c *relayConn) admit(v *allocView, ip netip.Addr, n int) bool {
	if _, ok := v.peers[ip]; !ok {
		c.n.dropNoPerm.Add(1)
		return false
	}
	if !c.spend(n) {
		return false
	}
	c.n.bytesIn.Add(uint64(n))
	c.n.pktsIn.Add(1)
	return true
}

// spend charges n bytes to the user's bucket and reports whether they fit.
func (c *relayConn) spend(n int) bool {
	if c.u.bucket == nil || c.u.bucket.allow(c.s.now().UnixNano(), n) {
		return true
	}
	c.n.dropRate.Add(1)
	if !c.warnedRate.Swap(true) {
		c.s.log.Info("relay: user over bandwidth; dropping packets", "user", c.user, "relay", c.addr,
			"bytes_per_second", c.u.bucket.rate)
	}
	return false
}

// droppedSelf counts a packet to the relay host itself, warning once.
func (c *relayConn) droppedSelf(to netip.AddrPort) {
	c.n.dropSelf.Add(1)
	if !c.warnedSelf.Swap(true) {
		c.s.log.Warn("relay: dropped packets to the relay host itself", "user", c.user, "relay", c.addr,
			"to", to)
	}
}

// slowPacket is a peer's datagram the forwarder hands to pion (no channel
// bound to the peer, or a TCP or TLS client), already checked and charged.
type slowPacket struct {
	b    []byte
	from netip.AddrPort
}

// slowQueue is how many datagrams wait for pion's goroutine of an
// allocation at most; more are dropped (counted in dropQueue).
const slowQueue = 64

// queueSlow copies a datagram for pion's goroutine, dropping it when the
// queue is full.
func (c *relayConn) queueSlow(b []byte, from netip.AddrPort) {
	select {
	case c.slow <- slowPacket{b: append([]byte(nil), b...), from: from}:
	default:
		c.n.dropQueue.Add(1)
	}
}

// ReadFrom is pion's read of the allocation's socket. With a forwarder, it
// returns what the forwarder left for pion; otherwise it reads the socket
// and relays channel traffic itself.
func (c *relayConn) ReadFrom(b []byte) (int, net.Addr, error) {
	if c.fw.on() {
		select {
		case p := <-c.slow:
			return copy(b, p.b), net.UDPAddrFromAddrPort(p.from), nil
		case <-c.closed:
			c.readerOnce.Do(c.s.release)
			return 0, nil, net.ErrClosed
		}
	}
	for {
		pkt, from, err := c.br.next()
		if err != nil {
			c.readerOnce.Do(c.s.release)
			return 0, nil, err
		}
		n := len(pkt) - 4
		ip := from.Addr().Unmap()
		v := c.view.Load()
		if !c.admit(v, ip, n) {
			continue
		}
		if ch := v.chans[netip.AddrPortFrom(ip, from.Port())]; ch != nil {
			c.toClient(pkt, n, ch)
			continue
		}
		return copy(b, pkt[4:]), net.UDPAddrFromAddrPort(from), nil
	}
}

func (c *relayConn) WriteTo(b []byte, to net.Addr) (int, error) {
	ua, ok := to.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("relay: relay to %v: not a UDP address: %w", to, net.ErrWriteToConnected)
	}
	ap := ua.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	if !addrpolicy.PeerAllowed(ap.Addr(), c.s.allow) {
		c.s.refusedPeers.Add(1)
		return len(b), nil
	}
	if c.s.isSelf(ap.Addr()) && !c.s.portsOf(ap.Addr()).has(ap.Port()) {
		c.droppedSelf(ap)
		return len(b), nil
	}
	if !c.spend(len(b)) {
		return len(b), nil
	}
	n, err := c.writeTo(b, ap)
	c.n.bytesOut.Add(uint64(n))
	if err == nil {
		c.n.pktsOut.Add(1)
	}
	return n, err
}

// writeTo sends b to ap from the relayed socket.
func (c *relayConn) writeTo(b []byte, ap netip.AddrPort) (int, error) {
	if c.fw.on() {
		return c.fw.sendto(b, ap)
	}
	return c.udp.WriteToUDPAddrPort(b, ap)
}

// Close is called by pion when the allocation ends (and by Server.Close).
// Later calls return nil: pion's allocation manager stops closing the rest of
// its allocations at the first error.
func (c *relayConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		s := c.s
		s.dropChannels(c)
		if c.fw.on() {
			c.fw.f.remove(c)
		}
		if cerr := c.PacketConn.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
		s.mu.Lock()
		if s.allocs[c.port] == c {
			delete(s.allocs, c.port)
			s.portsOf(c.relayedIP()).set(c.port, false)
		}
		c.n.addTo(&s.closedTraffic)
		s.dropUserLocked(c.user, c.u)
		s.mu.Unlock()
		close(c.closed)
		s.release()
		s.log.Info("relay: allocation closed", "user", c.user, "relay", c.addr,
			"age", s.now().Sub(c.created).Round(time.Second),
			"bytes_to_peers", c.n.bytesOut.Load(), "bytes_from_peers", c.n.bytesIn.Load(),
			"dropped_bandwidth", c.n.dropRate.Load(), "dropped_self", c.n.dropSelf.Load(),
			"dropped_queue", c.n.dropQueue.Load(),
			"kernel_to_peers", c.n.kernelOut.Load(), "kernel_from_peers", c.n.kernelIn.Load())
	})
	return err
}
