package relay

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/parley/parley/internal/addrpolicy"
)

// The fast path. pion/turn keeps the control plane (authentication,
// allocations, permissions, channel bindings, refreshes and their expiry),
// and its event callbacks tell the relay about every permission and channel
// as it comes and goes. For the common case of a call, ChannelData between a
// client on the UDP listener and a peer with a bound channel, the relay
// forwards the packet itself, without handing it to pion: no allocation per
// packet, and no lock that another allocation's packets take. On Linux the
// relay's own read loops, one per core, read the listener's and the
// allocations' sockets (forward_linux.go: epoll, recvmmsg, and sendmmsg to
// the clients across allocations); elsewhere it does so in the read loops
// pion runs (packetListener.ReadFrom for client to peer, relayConn.ReadFrom
// for peer to client). Everything else (Send and Data indications, TURN
// over TCP or TLS, channels the relay has not heard of) goes through pion
// as before, with the same checks.
//
// The checks on the fast path are those of the slow one: the channel must
// be bound (pion's ChannelBind, which only an authenticated allocation can
// make, after the PermissionHandler accepted the peer), the peer must still
// have a permission, the deny list is applied (at bind time: the peer of a
// channel never changes), the same-relay rule (a lock-free bitmap of the
// allocation ports), and the user's bandwidth budget (a lock-free GCRA
// bucket).

// chanKey names a channel as a client's ChannelData does: the client's
// address (unmapped) and the channel number.
type chanKey struct {
	client netip.AddrPort
	num    uint16
}

// channel is a bound channel the fast path forwards on. It is immutable.
type channel struct {
	rc      *relayConn
	num     uint16
	client  netip.AddrPort // the client's address (unmapped), on the UDP listener
	peer    netip.AddrPort // the peer's address (unmapped)
	allowed bool           // the peer passes the deny list (checked at bind time)
	self    bool           // the peer is one of the relay host's addresses
}

// chanShards is the number of shards of chanTable: a new binding copies
// one shard, about 1/64 of the bindings.
const chanShards = 64

// chanTable maps (client, channel number) to channels for the UDP
// listener's read loop. Readers load a shard's map with one atomic load
// and never lock; writers (channel bind and unbind, rare) copy the shard
// under mu and publish the copy.
type chanTable struct {
	mu     sync.Mutex
	shards [chanShards]atomic.Pointer[map[chanKey]*channel]
}

func (t *chanTable) shard(k chanKey) *atomic.Pointer[map[chanKey]*channel] {
	return &t.shards[(k.client.Port()^k.num)%chanShards]
}

func (t *chanTable) get(k chanKey) *channel {
	m := t.shard(k).Load()
	if m == nil {
		return nil
	}
	return (*m)[k]
}

// set binds k to ch, or unbinds it when ch is nil (only if it is still
// bound to old's allocation, so that a late unbind of an old allocation
// cannot remove a new one's channel).
func (t *chanTable) set(k chanKey, ch *channel, owner *relayConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sh := t.shard(k)
	var next map[chanKey]*channel
	if old := sh.Load(); old != nil {
		if ch == nil {
			if cur := (*old)[k]; cur == nil || cur.rc != owner {
				return
			}
		}
		next = make(map[chanKey]*channel, len(*old)+1)
		for kk, v := range *old {
			next[kk] = v
		}
	} else {
		next = make(map[chanKey]*channel, 1)
	}
	if ch == nil {
		delete(next, k)
	} else {
		next[k] = ch
	}
	sh.Store(&next)
}

// allocView is what an allocation's packets are checked against: its
// permitted peer IPs and its channels by peer address. It is immutable; the
// allocation publishes a new one when a permission or channel changes.
type allocView struct {
	peers map[netip.Addr]struct{}
	chans map[netip.AddrPort]*channel
}

var emptyView = &allocView{}

// portSet is the set of live allocation ports, read lock-free by the
// same-relay rule on every packet to the relay host itself.
type portSet [65536 / 64]atomic.Uint64

func (p *portSet) set(port int, on bool) {
	w, bit := &p[uint16(port)/64], uint64(1)<<(uint16(port)%64)
	for {
		old := w.Load()
		nv := old &^ bit
		if on {
			nv = old | bit
		}
		if w.CompareAndSwap(old, nv) {
			return
		}
	}
}

func (p *portSet) has(port uint16) bool { return p[port/64].Load()&(1<<(port%64)) != 0 }

// bucket is a user's bandwidth budget, shared by all of their allocations:
// a token bucket kept as GCRA (the generic cell rate algorithm) in one
// atomic word, the theoretical arrival time, so that charging a packet is a
// compare-and-swap, not a lock.
type bucket struct {
	tat   atomic.Int64 // Unix ns at which the bucket would be full again
	rate  int64        // bytes per second
	burst int64        // tolerance in ns: burst bytes at rate
}

func newBucket(rate, burst int) *bucket {
	return &bucket{rate: int64(rate), burst: int64(burst) * 1e9 / int64(rate)}
}

// allow charges n bytes at now (Unix ns) and reports whether they fit.
func (b *bucket) allow(now int64, n int) bool {
	cost := int64(n) * 1e9 / b.rate
	for {
		tat := b.tat.Load()
		next := max(tat, now) + cost
		if next-now > b.burst {
			return false
		}
		if b.tat.CompareAndSwap(tat, next) {
			return true
		}
	}
}

// channelData reads a ChannelData message's channel number and payload
// (RFC 8656 §12.4: 0b01 in the first two bits, a 16-bit length, the data
// and, over streams, padding); ok is false when b is not one.
func channelData(b []byte) (num uint16, payload []byte, ok bool) {
	if len(b) < 4 || b[0]&0xc0 != 0x40 {
		return 0, nil, false
	}
	num = binary.BigEndian.Uint16(b)
	l := int(binary.BigEndian.Uint16(b[2:]))
	if 4+l > len(b) {
		return 0, nil, false
	}
	return num, b[4 : 4+l], true
}

// forwardFromClient relays a ChannelData datagram from a client on the UDP
// listener to its channel's peer, and reports whether it handled it (false:
// not ChannelData, or a channel the fast path does not know; pion decides).
func (s *Server) forwardFromClient(b []byte, from netip.AddrPort) bool {
	num, payload, ok := channelData(b)
	if !ok {
		return false
	}
	ch := s.chans.get(chanKey{netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), num})
	if ch == nil {
		return false
	}
	ch.rc.toPeer(payload, ch)
	return true
}

// toPeer relays payload from the client to ch's peer, applying the rules of
// WriteTo and the allocation's permissions. Drops are counted, never
// returned.
func (c *relayConn) toPeer(payload []byte, ch *channel) {
	if _, ok := c.view.Load().peers[ch.peer.Addr()]; !ok {
		c.n.dropNoPerm.Add(1)
		return
	}
	if !ch.allowed {
		c.s.refusedPeers.Add(1)
		return
	}
	if ch.self && !c.s.portsOf(ch.peer.Addr()).has(ch.peer.Port()) {
		c.droppedSelf(ch.peer)
		return
	}
	if !c.spend(len(payload)) {
		return
	}
	n, err := c.writeTo(payload, ch.peer)
	c.n.bytesOut.Add(uint64(n))
	if err == nil {
		c.n.pktsOut.Add(1)
		c.n.fastOut.Add(1)
	}
}

// toClient relays a peer's datagram, already in buf[4:4+n], to the client
// as ChannelData on ch, through the UDP listener.
func (c *relayConn) toClient(buf []byte, n int, ch *channel) {
	binary.BigEndian.PutUint16(buf, ch.num)
	binary.BigEndian.PutUint16(buf[2:], uint16(n))
	if _, err := c.s.udpConn.WriteToUDPAddrPort(buf[:4+n], ch.client); err == nil {
		c.n.fastIn.Add(1)
	}
}

// setPeer adds or removes a permitted peer IP of the allocation.
func (c *relayConn) setPeer(ip netip.Addr, add bool) {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	old := c.view.Load()
	v := &allocView{peers: make(map[netip.Addr]struct{}, len(old.peers)+1), chans: old.chans}
	for p := range old.peers {
		v.peers[p] = struct{}{}
	}
	if add {
		v.peers[ip] = struct{}{}
	} else {
		delete(v.peers, ip)
	}
	c.view.Store(v)
	c.syncOffload(v)
}

// setChannel adds (ch non-nil) or removes the channel to peer.
func (c *relayConn) setChannel(peer netip.AddrPort, ch *channel) {
	c.viewMu.Lock()
	defer c.viewMu.Unlock()
	old := c.view.Load()
	v := &allocView{peers: old.peers, chans: make(map[netip.AddrPort]*channel, len(old.chans)+1)}
	for p, x := range old.chans {
		v.chans[p] = x
	}
	if ch != nil {
		v.chans[peer] = ch
	} else {
		delete(v.chans, peer)
	}
	c.view.Store(v)
	c.syncOffload(v)
}

// onChannel keeps the fast path's channels: pion bound (add) or unbound a
// channel of the allocation at relayAddr. Only channels of clients on the
// UDP listener are forwarded by the relay itself.
func (s *Server) onChannel(client, relayAddr, peer net.Addr, num uint16, add bool) {
	cu, ok1 := client.(*net.UDPAddr)
	ru, ok2 := relayAddr.(*net.UDPAddr)
	pu, ok3 := peer.(*net.UDPAddr)
	if !ok1 || !ok2 || !ok3 || s.udpConn == nil {
		return
	}
	s.mu.Lock()
	c := s.allocs[ru.Port]
	s.mu.Unlock()
	if c == nil {
		return
	}
	cp := cu.AddrPort()
	key := chanKey{netip.AddrPortFrom(cp.Addr().Unmap(), cp.Port()), num}
	pap := pu.AddrPort()
	pap = netip.AddrPortFrom(pap.Addr().Unmap(), pap.Port())
	if !add {
		c.setChannel(pap, nil)
		s.chans.set(key, nil, c)
		return
	}
	ch := &channel{rc: c, num: num, client: key.client, peer: pap,
		allowed: addrpolicy.PeerAllowed(pap.Addr(), s.allow), self: s.isSelf(pap.Addr())}
	c.setChannel(pap, ch)
	s.chans.set(key, ch, c)
}

// dropChannels removes every channel of c from the fast path (c closed).
func (s *Server) dropChannels(c *relayConn) {
	c.viewMu.Lock()
	chans := c.view.Load().chans
	c.view.Store(emptyView)
	c.syncOffload(emptyView)
	c.viewMu.Unlock()
	for _, ch := range chans {
		s.chans.set(chanKey{ch.client, ch.num}, nil, c)
	}
}
