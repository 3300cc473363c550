package client

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/transport/v5"
)

// TURN permissions are answered here, at once.
//
// pion's ICE agent sends every connectivity check from its one loop, and a
// check through a relay candidate to an address the relay has no permission
// for waits there for a CreatePermission round trip to the relay (pion/turn
// creates permissions on the first write, and blocks it). A relay refuses
// permissions for addresses it must not reach (its deny list: loopback,
// private ranges, ...), the refusal is not remembered, and the peer's host
// candidates are such addresses: every round of checks then stalled the agent
// for a relay round trip per relay candidate and per such address, with the
// answers to the direct checks waiting behind it. Over an 80 ms relay that put
// about a second on a call's setup, and granted permissions cost a round trip
// each as well.
//
// turnGuard and turnTCPGuard wrap the socket a TURN client speaks to its relay
// through. A CreatePermission for peers the relay can never reach for this
// call (the relay is elsewhere, so a loopback, link-local or private address
// would be the relay's own network, never the peer's), or that the relay has
// already refused on this allocation, is answered with 403 (Forbidden), as
// the relay would answer, and not sent. Any other is granted at once and sent
// on (permissionPolicy). Everything else passes untouched.

// relayCannotReach reports whether a relay at relay cannot reach peer on a
// caller's behalf: peer is only meaningful on the peer's own host or network,
// which a relay elsewhere does not share.
func relayCannotReach(peer, relay netip.Addr) bool {
	peer, relay = peer.Unmap(), relay.Unmap()
	switch {
	case !peer.IsValid() || !relay.IsValid(), relay.IsLoopback():
		return false // a relay on this host reaches what this host reaches
	case peer.IsLoopback(), peer.IsUnspecified(), peer.IsMulticast(),
		peer.IsLinkLocalUnicast(), peer.IsLinkLocalMulticast(), peer.IsInterfaceLocalMulticast():
		return true
	case localScope(peer):
		return !localScope(relay) // a relay on a private network may share the peer's
	}
	return false
}

// localScope reports whether a is a private address (RFC 1918, unique-local
// IPv6, or carrier-grade NAT's shared space).
func localScope(a netip.Addr) bool {
	return a.IsPrivate() || a.Is4() && a.As4()[0] == 100 && a.As4()[1]&0xc0 == 64
}

type txID = [stun.TransactionIDSize]byte

// permissionRequest decodes a TURN client's CreatePermission request and its
// peers' addresses.
func permissionRequest(b []byte) (*stun.Message, []netip.Addr, bool) {
	if !stun.IsMessage(b) || len(b) < 2 || binary.BigEndian.Uint16(b) != 0x0008 {
		return nil, nil, false
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil {
		return nil, nil, false
	}
	peers := peersOf(m)
	return m, peers, len(peers) > 0
}

// peersOf reads a message's XOR-PEER-ADDRESS attributes.
func peersOf(m *stun.Message) []netip.Addr {
	var peers []netip.Addr
	for _, a := range m.Attributes {
		if a.Type != stun.AttrXORPeerAddress || len(a.Value) < 8 {
			continue
		}
		var ip []byte
		switch a.Value[1] {
		case 0x01:
			ip = append([]byte(nil), a.Value[4:8]...)
		case 0x02:
			if len(a.Value) < 20 {
				continue
			}
			ip = append([]byte(nil), a.Value[4:20]...)
		default:
			continue
		}
		var key [16]byte
		binary.BigEndian.PutUint32(key[:], 0x2112a442) // the magic cookie, then the transaction id
		copy(key[4:], m.TransactionID[:])
		for i := range ip {
			ip[i] ^= key[i]
		}
		if addr, ok := netip.AddrFromSlice(ip); ok {
			peers = append(peers, addr.Unmap())
		}
	}
	return peers
}

// permissionAnswer is the relay's answer to CreatePermission transaction id:
// success when code is 0.
func permissionAnswer(id txID, code stun.ErrorCode) []byte {
	setters := []stun.Setter{stun.NewTransactionIDSetter(id), stun.NewType(stun.MethodCreatePermission, stun.ClassSuccessResponse)}
	if code != 0 {
		setters = []stun.Setter{stun.NewTransactionIDSetter(id), stun.NewType(stun.MethodCreatePermission, stun.ClassErrorResponse), code}
	}
	m, err := stun.Build(append(setters, stun.Fingerprint)...)
	if err != nil {
		return nil
	}
	return m.Raw
}

// resign rebuilds request req for the peers in keep (all when nil), with nonce
// when not nil and a new transaction id when fresh, signed with password as
// the TURN client signs (long-term credentials).
func resign(req *stun.Message, keep map[netip.Addr]bool, nonce []byte, fresh bool, password string) (*stun.Message, error) {
	var user stun.Username
	var realm stun.Realm
	if err := user.GetFrom(req); err != nil {
		return nil, err
	}
	if err := realm.GetFrom(req); err != nil {
		return nil, err
	}
	m := stun.New()
	m.Type = req.Type
	m.TransactionID = req.TransactionID
	if fresh {
		if err := m.NewTransactionID(); err != nil {
			return nil, err
		}
	}
	m.WriteHeader()
	for _, a := range req.Attributes {
		switch {
		case a.Type == stun.AttrMessageIntegrity, a.Type == stun.AttrFingerprint:
			continue
		case a.Type == stun.AttrNonce && nonce != nil:
			m.Add(a.Type, nonce)
			continue
		case a.Type == stun.AttrXORPeerAddress && keep != nil:
			one := &stun.Message{TransactionID: req.TransactionID, Attributes: stun.Attributes{a}}
			if p := peersOf(one); len(p) != 1 || !keep[p[0]] {
				continue
			}
		}
		m.Add(a.Type, a.Value)
	}
	if err := stun.NewLongTermIntegrity(user.String(), realm.String(), password).AddTo(m); err != nil {
		return nil, err
	}
	if err := stun.Fingerprint.AddTo(m); err != nil {
		return nil, err
	}
	return m, nil
}

// turnCreds are the TURN passwords the session was handed, by username, so
// that a guard can sign a request to the relay itself.
type turnCreds struct {
	mu     sync.Mutex
	byUser map[string]string
}

func (c *turnCreds) add(user, password string) {
	if c == nil || user == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byUser == nil || len(c.byUser) >= 64 { // they expire; a fresh map now and then forgets the old
		c.byUser = map[string]string{}
	}
	c.byUser[user] = password
}

func (c *turnCreds) password(m *stun.Message) (string, bool) {
	var user stun.Username
	if c == nil || user.GetFrom(m) != nil {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	pw, ok := c.byUser[user.String()]
	return pw, ok
}

// permissionPolicy is one allocation's permissions as the guard sees them.
//
// A permission a relay grants is granted here at once, before the relay has
// answered, with the request still sent (pion/turn waits for it only to keep
// a peer's first packets in order, and the request goes ahead of them on the
// same path); the relay's answer then comes to the guard. Should the relay
// refuse after all, the TURN client believes the permission granted: its later
// refreshes, which name every peer at once, would be refused whole, so the
// guard asks for the others only, signing with the session's TURN password. A
// stale nonce is retried likewise. Without the password nothing is granted
// ahead.
type permissionPolicy struct {
	creds *turnCreds

	mu      sync.Mutex
	refused map[netip.Addr]bool
	asked   map[txID]netip.Addr    // single-peer requests sent: a refusal teaches
	early   map[txID]*stun.Message // requests granted here: the relay's answer is the guard's
}

// outgoing decides about b, on its way to the relay at relay: answer is what
// the TURN client gets at once (nil: the relay's answer), send what goes to
// the relay instead of b (nil: nothing).
func (p *permissionPolicy) outgoing(b []byte, relay netip.Addr) (answer, send []byte) {
	req, peers, ok := permissionRequest(b)
	if !ok {
		return nil, b
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	keep := map[netip.Addr]bool{}
	for _, peer := range peers {
		if !relayCannotReach(peer, relay) && !p.refused[peer] {
			keep[peer] = true
		}
	}
	switch {
	case len(keep) == 0:
		return permissionAnswer(req.TransactionID, stun.CodeForbidden), nil
	case len(peers) > 1 && len(keep) < len(peers):
		// A refresh naming a peer the relay refused: ask for the others.
		if pw, ok := p.creds.password(req); ok {
			if m, err := resign(req, keep, nil, false, pw); err == nil {
				return nil, m.Raw
			}
		}
		return nil, b
	case len(peers) > 1:
		return nil, b
	}
	if _, ok := p.creds.password(req); ok && len(p.early) < 256 {
		if p.early == nil {
			p.early = map[txID]*stun.Message{}
		}
		p.early[req.TransactionID] = req
		return permissionAnswer(req.TransactionID, 0), b
	}
	if p.asked == nil {
		p.asked = map[txID]netip.Addr{}
	}
	if len(p.asked) < 256 {
		p.asked[req.TransactionID] = peers[0]
	}
	return nil, b
}

// incoming reads b, from the relay: deliver says whether the TURN client is
// to get it, resend is a request to send the relay (nil: none).
func (p *permissionPolicy) incoming(b []byte) (deliver bool, resend []byte) {
	if !stun.IsMessage(b) || len(b) < 2 {
		return true, nil
	}
	typ := binary.BigEndian.Uint16(b)
	if typ != 0x0108 && typ != 0x0118 { // a CreatePermission success or error response
		return true, nil
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil {
		return true, nil
	}
	var code stun.ErrorCodeAttribute
	refused := typ == 0x0118 && code.GetFrom(m) == nil
	p.mu.Lock()
	defer p.mu.Unlock()
	if req, ok := p.early[m.TransactionID]; ok {
		delete(p.early, m.TransactionID)
		if !refused {
			return false, nil
		}
		var nonce stun.Nonce
		if pw, ok := p.creds.password(req); ok && code.Code == stun.CodeStaleNonce && nonce.GetFrom(m) == nil {
			if again, err := resign(req, nil, nonce, true, pw); err == nil {
				p.early[again.TransactionID] = again
				return false, again.Raw
			}
		}
		p.refuse(peersOf(req)...)
		return false, nil
	}
	if peer, ok := p.asked[m.TransactionID]; ok {
		delete(p.asked, m.TransactionID)
		if refused && code.Code == stun.CodeForbidden {
			p.refuse(peer)
		}
	}
	return true, nil
}

func (p *permissionPolicy) refuse(peers ...netip.Addr) {
	if p.refused == nil {
		p.refused = map[netip.Addr]bool{}
	}
	for _, peer := range peers {
		if len(p.refused) < 256 {
			p.refused[peer] = true
		}
	}
}

// udpAddr is a's IP, or the zero Addr.
func addrIP(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.UDPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip
	case *net.TCPAddr:
		ip, _ := netip.AddrFromSlice(a.IP)
		return ip
	}
	return netip.Addr{}
}

// turnGuard is a TURN client's UDP socket to its relay (see above).
type turnGuard struct {
	net.PacketConn
	policy permissionPolicy

	answers chan readResult // refusals for the reader, ahead of the socket's next packet
	reading chan readResult // the socket's packets, read by one goroutine
	dead    chan struct{}   // closed when that goroutine has stopped, with err
	err     error
	closed  chan struct{}
	once    sync.Once
	start   sync.Once

	mu       sync.Mutex
	deadline time.Time
}

type readResult struct {
	b    []byte
	from net.Addr
}

func newTURNGuard(c net.PacketConn, creds *turnCreds) *turnGuard {
	return &turnGuard{PacketConn: c, policy: permissionPolicy{creds: creds}, answers: make(chan readResult, 64),
		reading: make(chan readResult), dead: make(chan struct{}), closed: make(chan struct{})}
}

func (g *turnGuard) WriteTo(b []byte, addr net.Addr) (int, error) {
	answer, send := g.policy.outgoing(b, addrIP(addr))
	if send != nil {
		if _, err := g.PacketConn.WriteTo(send, addr); err != nil {
			return 0, err
		}
	}
	if answer != nil {
		select {
		case g.answers <- readResult{answer, addr}:
		case <-g.closed:
			return 0, net.ErrClosed
		}
	}
	return len(b), nil
}

// read runs in its own goroutine: the socket's packets, one at a time.
func (g *turnGuard) read() {
	defer close(g.dead)
	buf := make([]byte, 65536)
	for {
		n, from, err := g.PacketConn.ReadFrom(buf)
		if err != nil {
			g.err = err
			return
		}
		r := readResult{append([]byte(nil), buf[:n]...), from}
		deliver, resend := g.policy.incoming(r.b)
		if resend != nil {
			g.PacketConn.WriteTo(resend, from)
		}
		if !deliver {
			continue
		}
		select {
		case g.reading <- r:
		case <-g.closed:
			g.err = net.ErrClosed
			return
		}
	}
}

func (g *turnGuard) ReadFrom(b []byte) (int, net.Addr, error) {
	g.start.Do(func() { go g.read() })
	g.mu.Lock()
	deadline := g.deadline
	g.mu.Unlock()
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timeout = t.C
	}
	select { // a refusal first: its request went out before anything still unread came in
	case r := <-g.answers:
		return copy(b, r.b), r.from, nil
	default:
	}
	select {
	case r := <-g.answers:
		return copy(b, r.b), r.from, nil
	case r := <-g.reading:
		return copy(b, r.b), r.from, nil
	case <-g.dead:
		return 0, nil, g.err
	case <-timeout:
		return 0, nil, os.ErrDeadlineExceeded
	case <-g.closed:
		return 0, nil, net.ErrClosed
	}
}

func (g *turnGuard) SetReadDeadline(t time.Time) error {
	g.mu.Lock()
	g.deadline = t
	g.mu.Unlock()
	return nil
}

func (g *turnGuard) SetDeadline(t time.Time) error {
	g.SetReadDeadline(t)
	return g.PacketConn.SetWriteDeadline(t)
}

func (g *turnGuard) Close() error {
	g.once.Do(func() { close(g.closed) })
	return g.PacketConn.Close()
}

// turnTCPGuard is a TURN client's TCP connection to its relay (see above):
// TURN over TCP is a stream of STUN messages and ChannelData frames, so
// the relay's frames are read whole here and a refusal goes between two of
// them. A connection whose first write is not STUN (TLS to a relay's TLS
// port, which this cannot look into) passes untouched.
type turnTCPGuard struct {
	transport.TCPConn
	policy permissionPolicy
	relay  netip.Addr

	modeOnce sync.Once
	decided  chan struct{} // closed at the first write, which sets turn
	turn     bool          // the first write was STUN

	answers chan []byte // refusals, ahead of the relay's next frame
	frames  chan []byte // the relay's frames, read by one goroutine
	dead    chan struct{}
	err     error
	closed  chan struct{}
	once    sync.Once
	start   sync.Once

	rest []byte // what Read has not returned yet of the current frame (Read's only)

	mu       sync.Mutex
	deadline time.Time
}

func newTURNTCPGuard(c transport.TCPConn, creds *turnCreds) *turnTCPGuard {
	return &turnTCPGuard{TCPConn: c, policy: permissionPolicy{creds: creds}, relay: addrIP(c.RemoteAddr()), decided: make(chan struct{}), answers: make(chan []byte, 64),
		frames: make(chan []byte), dead: make(chan struct{}), closed: make(chan struct{})}
}

func (g *turnTCPGuard) isTURN(first []byte) bool {
	g.modeOnce.Do(func() {
		g.turn = stun.IsMessage(first)
		if g.turn { // the reader goroutine keeps no deadline: Read does
			g.TCPConn.SetReadDeadline(time.Time{})
		}
		close(g.decided)
	})
	return g.turn
}

func (g *turnTCPGuard) Write(b []byte) (int, error) {
	if !g.isTURN(b) {
		return g.TCPConn.Write(b)
	}
	answer, send := g.policy.outgoing(b, g.relay)
	if send != nil {
		if _, err := g.TCPConn.Write(send); err != nil {
			return 0, err
		}
	}
	if answer != nil {
		select {
		case g.answers <- answer:
		case <-g.closed:
			return 0, net.ErrClosed
		}
	}
	return len(b), nil
}

// frameLen is the length of the TURN-over-TCP frame at the start of b (a STUN
// message, or ChannelData padded to 4 bytes), 0 while b is too short to
// tell, -1 when b is neither.
func frameLen(b []byte) int {
	switch {
	case len(b) < 4:
		return 0
	case b[0]&0xc0 == 0x40: // ChannelData
		return 4 + (int(binary.BigEndian.Uint16(b[2:]))+3)&^3
	case b[0]&0xc0 == 0 && len(b) < 8:
		return 0
	case b[0]&0xc0 == 0 && binary.BigEndian.Uint32(b[4:]) == 0x2112a442:
		return 20 + int(binary.BigEndian.Uint16(b[2:]))
	}
	return -1
}

// read runs in its own goroutine: the relay's stream, cut into frames (or,
// once it makes no sense as frames, in the pieces it comes in).
func (g *turnTCPGuard) read() {
	defer close(g.dead)
	var buf []byte
	chunk := make([]byte, 65536)
	framed := true
	for {
		for len(buf) > 0 {
			n := len(buf)
			if framed {
				if n = frameLen(buf); n < 0 {
					framed, n = false, len(buf)
				} else if n == 0 || n > len(buf) {
					break
				}
			}
			f := append([]byte(nil), buf[:n]...)
			buf = buf[n:]
			deliver, resend := g.policy.incoming(f)
			if resend != nil {
				g.TCPConn.Write(resend)
			}
			if !deliver {
				continue
			}
			select {
			case g.frames <- f:
			case <-g.closed:
				g.err = net.ErrClosed
				return
			}
		}
		n, err := g.TCPConn.Read(chunk)
		if err != nil {
			g.err = err
			return
		}
		buf = append(buf, chunk[:n]...)
	}
}

func (g *turnTCPGuard) Read(b []byte) (int, error) {
	select {
	case <-g.decided:
	case <-g.closed:
		return 0, net.ErrClosed
	}
	if !g.turn {
		return g.TCPConn.Read(b)
	}
	if len(g.rest) > 0 {
		n := copy(b, g.rest)
		g.rest = g.rest[n:]
		return n, nil
	}
	g.start.Do(func() { go g.read() })
	g.mu.Lock()
	deadline := g.deadline
	g.mu.Unlock()
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timeout = t.C
	}
	var f []byte
	select {
	case f = <-g.answers:
	default:
		select {
		case f = <-g.answers:
		case f = <-g.frames:
		case <-g.dead:
			return 0, g.err
		case <-timeout:
			return 0, os.ErrDeadlineExceeded
		case <-g.closed:
			return 0, net.ErrClosed
		}
	}
	n := copy(b, f)
	g.rest = f[n:]
	return n, nil
}

func (g *turnTCPGuard) SetReadDeadline(t time.Time) error {
	g.mu.Lock()
	g.deadline = t
	g.mu.Unlock()
	select {
	case <-g.decided:
		if g.turn {
			return nil
		}
	default:
	}
	return g.TCPConn.SetReadDeadline(t)
}

func (g *turnTCPGuard) SetDeadline(t time.Time) error {
	g.SetReadDeadline(t)
	return g.TCPConn.SetWriteDeadline(t)
}

func (g *turnTCPGuard) Close() error {
	g.once.Do(func() { close(g.closed) })
	return g.TCPConn.Close()
}
