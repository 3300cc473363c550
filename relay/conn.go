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
)

// packetListener is the TURN/STUN UDP socket as pion sees it. pion's read loop
// ends for good on the first read error, so transient errors are retried here
// and only a closed socket ends it; that end is reported to the Server's
// goroutine accounting.
type packetListener struct {
	net.PacketConn
	s    *Server
	h    *listenerHealth
	once sync.Once
}

func (p *packetListener) ReadFrom(b []byte) (int, net.Addr, error) {
	delay := 5 * time.Millisecond
	for {
		n, addr, err := p.PacketConn.ReadFrom(b)
		if err == nil {
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
//   - peer to client (ReadFrom): packets from IPs the allocation has no
//     permission for are dropped before they count against the user's
//     bandwidth (pion would drop them too); the rest are charged to the user's
//     bucket and dropped when it is empty;
//   - client to peer (WriteTo): a destination failing PeerAllowed is dropped
//     (pion's permission check already refused it; this is a second line), a
//     destination on the relay host itself is dropped unless its port is a
//     live allocation's (the same-relay rule), and the rest are charged to the
//     user's bucket and dropped when it is empty.
//
// Drops never return an error to pion (that would end the allocation or log
// per packet); they are counted in Stats and logged once per allocation.
type relayConn struct {
	net.PacketConn
	s       *Server
	user    string
	u       *userState
	port    int
	addr    *net.UDPAddr
	created time.Time

	peersMu sync.RWMutex
	peers   map[netip.Addr]struct{} // permitted peer IPs, unmapped

	bytesIn, bytesOut, dropRate, dropSelf atomic.Uint64
	warnedSelf, warnedRate                atomic.Bool
	readerOnce, closeOnce                 sync.Once
}

func (c *relayConn) setPeer(ip netip.Addr, add bool) {
	c.peersMu.Lock()
	if add {
		c.peers[ip] = struct{}{}
	} else {
		delete(c.peers, ip)
	}
	c.peersMu.Unlock()
}

func (c *relayConn) permitted(ip netip.Addr) bool {
	c.peersMu.RLock()
	_, ok := c.peers[ip]
	c.peersMu.RUnlock()
	return ok
}

// spend charges n bytes to the user's bucket and reports whether they fit.
func (c *relayConn) spend(n int) bool {
	if c.u.limiter == nil || c.u.limiter.AllowN(c.s.now(), n) {
		return true
	}
	c.dropRate.Add(1)
	c.s.droppedRate.Add(1)
	if !c.warnedRate.Swap(true) {
		c.s.log.Info("relay: user over bandwidth; dropping packets", "user", c.user, "relay", c.addr,
			"bytes_per_second", int(c.s.limit))
	}
	return false
}

func (c *relayConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.PacketConn.ReadFrom(b)
		if err != nil {
			c.readerOnce.Do(c.s.release)
			return n, from, err
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok || !c.permitted(ua.AddrPort().Addr().Unmap()) {
			c.s.c.droppedNoPermission.Add(1)
			continue
		}
		if !c.spend(n) {
			continue
		}
		c.bytesIn.Add(uint64(n))
		c.s.relayed.Add(uint64(n))
		c.s.c.bytesFromPeer.Add(uint64(n))
		c.s.c.packetsFromPeer.Add(1)
		return n, from, nil
	}
}

func (c *relayConn) WriteTo(b []byte, to net.Addr) (int, error) {
	ua, ok := to.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("relay: relay to %v: not a UDP address: %w", to, net.ErrWriteToConnected)
	}
	ap := ua.AddrPort()
	ip := ap.Addr().Unmap()
	if !addrpolicy.PeerAllowed(ip, c.s.allow) {
		c.s.refusedPeers.Add(1)
		return len(b), nil
	}
	if c.s.isSelf(ip) && !c.s.isAllocPort(ap.Port()) {
		c.dropSelf.Add(1)
		c.s.droppedSelf.Add(1)
		if !c.warnedSelf.Swap(true) {
			c.s.log.Warn("relay: dropped packets to the relay host itself", "user", c.user, "relay", c.addr,
				"to", ap)
		}
		return len(b), nil
	}
	if !c.spend(len(b)) {
		return len(b), nil
	}
	n, err := c.PacketConn.WriteTo(b, to)
	c.bytesOut.Add(uint64(n))
	c.s.relayed.Add(uint64(n))
	c.s.c.bytesToPeer.Add(uint64(n))
	if err == nil {
		c.s.c.packetsToPeer.Add(1)
	}
	return n, err
}

// Close is called by pion when the allocation ends (and by Server.Close).
// Later calls return nil: pion's allocation manager stops closing the rest of
// its allocations at the first error.
func (c *relayConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if cerr := c.PacketConn.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = cerr
		}
		s := c.s
		s.mu.Lock()
		if s.allocs[c.port] == c {
			delete(s.allocs, c.port)
		}
		s.dropUserLocked(c.user, c.u)
		s.mu.Unlock()
		s.release()
		s.log.Info("relay: allocation closed", "user", c.user, "relay", c.addr,
			"age", s.now().Sub(c.created).Round(time.Second),
			"bytes_to_peers", c.bytesOut.Load(), "bytes_from_peers", c.bytesIn.Load(),
			"dropped_bandwidth", c.dropRate.Load(), "dropped_self", c.dropSelf.Load())
	})
	return err
}
