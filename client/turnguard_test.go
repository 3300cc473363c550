package client

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
)

func TestRelayCannotReach(t *testing.T) {
	for _, tt := range []struct {
		peer, relay string
		want        bool
	}{
		{"127.0.0.1", "198.51.100.1", true},
		{"10.2.0.2", "198.51.100.1", true},
		{"192.168.1.5", "203.0.113.9", true},
		{"100.64.3.4", "203.0.113.9", true},
		{"169.254.169.254", "203.0.113.9", true},
		{"fe80::1", "2001:db8::1", true},
		{"fd00::5", "2001:db8::1", true},
		{"::ffff:10.0.0.1", "198.51.100.1", true},
		{"198.18.0.12", "198.18.0.10", false}, // a lab's internet
		{"203.0.113.7", "198.51.100.1", false},
		{"10.2.0.2", "10.9.0.1", false},      // a relay on a private network may share it
		{"127.0.0.1", "127.0.0.1", false},    // a relay on this host
		{"10.2.0.2", "127.0.0.1", false},     // likewise
		{"192.168.1.5", "100.64.0.1", false}, // behind the same carrier NAT
	} {
		if got := relayCannotReach(netip.MustParseAddr(tt.peer), netip.MustParseAddr(tt.relay)); got != tt.want {
			t.Errorf("relayCannotReach(%s, %s) = %v, want %v", tt.peer, tt.relay, got, tt.want)
		}
	}
}

// createPermission is a TURN client's CreatePermission request for peers.
func createPermission(t *testing.T, peers ...string) *stun.Message {
	t.Helper()
	setters := []stun.Setter{stun.TransactionID, stun.NewType(stun.MethodCreatePermission, stun.ClassRequest)}
	for _, p := range peers {
		ap := netip.MustParseAddrPort(p)
		setters = append(setters, peerAddr{stun.XORMappedAddress{IP: ap.Addr().AsSlice(), Port: int(ap.Port())}})
	}
	setters = append(setters, stun.NewUsername("u"), stun.NewRealm("r"), stun.Fingerprint)
	m, err := stun.Build(setters...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type peerAddr struct{ a stun.XORMappedAddress }

func (p peerAddr) AddTo(m *stun.Message) error { return p.a.AddToAs(m, stun.AttrXORPeerAddress) }

// readAnswer reads one message from c within a second.
func readAnswer(t *testing.T, c net.PacketConn) *stun.Message {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Second))
	buf := make([]byte, 1500)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	m := &stun.Message{Raw: buf[:n]}
	if err := m.Decode(); err != nil {
		t.Fatal(err)
	}
	return m
}

func isForbidden(m *stun.Message, id [stun.TransactionIDSize]byte) bool {
	var code stun.ErrorCodeAttribute
	return m.TransactionID == id && m.Type == stun.NewType(stun.MethodCreatePermission, stun.ClassErrorResponse) &&
		code.GetFrom(m) == nil && code.Code == stun.CodeForbidden
}

// TestTURNGuardUDP: a permission a distant relay cannot grant is refused at
// once without a packet; one the relay refused is refused at once the next
// time; everything else goes to the relay, and its answers come back.
func TestTURNGuardUDP(t *testing.T) {
	relay, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	got := make(chan *stun.Message, 10)
	go func() { // refuses 203.0.113.7, allows the rest
		buf := make([]byte, 1500)
		for {
			n, from, err := relay.ReadFrom(buf)
			if err != nil {
				return
			}
			m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if m.Decode() != nil {
				continue
			}
			got <- m
			_, peers, _ := permissionRequest(m.Raw)
			var res *stun.Message
			if len(peers) == 1 && peers[0] == netip.MustParseAddr("203.0.113.7") {
				res, _ = stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.NewType(stun.MethodCreatePermission, stun.ClassErrorResponse), stun.CodeForbidden)
			} else {
				res, _ = stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.NewType(m.Type.Method, stun.ClassSuccessResponse))
			}
			relay.WriteTo(res.Raw, from)
		}
	}()
	raw, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := newTURNGuard(raw, nil) // no password: nothing granted ahead of the relay
	defer g.Close()

	// A distant relay: loopback and private peers are refused here.
	far := &net.UDPAddr{IP: net.ParseIP("198.51.100.1"), Port: 3478}
	for _, peers := range [][]string{{"127.0.0.1:5000"}, {"10.2.0.2:4000", "192.168.0.9:4000"}} {
		req := createPermission(t, peers...)
		start := time.Now()
		if _, err := g.WriteTo(req.Raw, far); err != nil {
			t.Fatal(err)
		}
		if m := readAnswer(t, g); !isForbidden(m, req.TransactionID) {
			t.Errorf("%v: got %v, want a 403 for the request", peers, m)
		}
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("%v: the refusal took %v", peers, d)
		}
	}

	// The relay on loopback: everything goes to it.
	to := relay.LocalAddr()
	for _, peers := range [][]string{{"10.2.0.2:4000"}, {"203.0.113.7:4000"}, {"203.0.113.8:4000"}} {
		req := createPermission(t, peers...)
		g.WriteTo(req.Raw, to)
		if m := readAnswer(t, g); m.TransactionID != req.TransactionID {
			t.Errorf("%v: the relay's answer did not come back: %v", peers, m)
		}
		select {
		case m := <-got:
			if m.TransactionID != req.TransactionID {
				t.Errorf("%v: the relay got %v", peers, m)
			}
		case <-time.After(time.Second):
			t.Fatalf("%v: the request did not reach the relay", peers)
		}
	}
	// Refused once, refused here from then on; the others still go.
	req := createPermission(t, "203.0.113.7:4001")
	g.WriteTo(req.Raw, to)
	if m := readAnswer(t, g); !isForbidden(m, req.TransactionID) {
		t.Errorf("a refused peer again: got %v, want a 403", m)
	}
	req = createPermission(t, "203.0.113.8:4001")
	g.WriteTo(req.Raw, to)
	readAnswer(t, g)
	select {
	case m := <-got:
		if m.TransactionID != req.TransactionID {
			t.Errorf("the relay got %v", m)
		}
	case <-time.After(time.Second):
		t.Fatal("an allowed peer's request did not reach the relay")
	}
	if len(got) != 0 {
		t.Errorf("the relay got %d more requests", len(got))
	}
}

// TestTURNGuardTCP: over TCP the relay's stream is cut into its frames, a
// refusal goes between two of them, and pion's TURN framing reads it all.
func TestTURNGuardTCP(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	frames := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 1500)
		c.Read(buf) // the client's first message
		// Two frames, written in pieces that cut across them.
		a, _ := stun.Build(stun.TransactionID, stun.BindingSuccess)
		cd := []byte{0x40, 0x00, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0} // ChannelData, padded
		all := append(append([]byte(nil), a.Raw...), cd...)
		frames <- all
		for len(all) > 0 {
			n := min(7, len(all))
			c.Write(all[:n])
			all = all[n:]
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Second)
	}()
	d, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	g := newTURNTCPGuard(d, nil)
	g.relay = netip.MustParseAddr("198.51.100.1") // as if the relay were far away
	defer g.Close()
	pc := turn.NewSTUNConn(g)
	hello, _ := stun.Build(stun.TransactionID, stun.BindingRequest)
	if _, err := pc.WriteTo(hello.Raw, nil); err != nil {
		t.Fatal(err)
	}
	sent := <-frames
	time.Sleep(15 * time.Millisecond) // the relay is half-way through its first frame
	req := createPermission(t, "10.2.0.2:4000")
	if _, err := pc.WriteTo(req.Raw, nil); err != nil {
		t.Fatal(err)
	}
	var read [][]byte
	pc.SetReadDeadline(time.Now().Add(2 * time.Second))
	for len(read) < 3 {
		buf := make([]byte, 1500)
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d frames: %v", len(read), err)
		}
		read = append(read, buf[:n])
	}
	var refusals, relayed int
	var joined []byte
	for _, f := range read {
		m := &stun.Message{Raw: f}
		if m.Decode() == nil && isForbidden(m, req.TransactionID) {
			refusals++
			continue
		}
		relayed++
		joined = append(joined, f...)
	}
	if refusals != 1 || relayed != 2 || string(joined) != string(sent) {
		t.Errorf("read %d refusals and %d frames of the relay's (%x), want 1 and 2 (%x)", refusals, relayed, joined, sent)
	}
}

// slowConn delays every packet it reads by d, as a distant relay's answers
// are (each by d, not one after the other).
type slowConn struct {
	net.PacketConn
	d    time.Duration
	in   chan slowPacket
	once sync.Once
}

type slowPacket struct {
	at   time.Time
	b    []byte
	from net.Addr
	err  error
}

func newSlowConn(c net.PacketConn, d time.Duration) *slowConn {
	return &slowConn{PacketConn: c, d: d, in: make(chan slowPacket, 64)}
}

func (c *slowConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.once.Do(func() {
		go func() {
			for {
				buf := make([]byte, 1500)
				n, from, err := c.PacketConn.ReadFrom(buf)
				c.in <- slowPacket{time.Now(), buf[:n], from, err}
				if err != nil {
					return
				}
			}
		}()
	})
	p := <-c.in
	time.Sleep(time.Until(p.at.Add(c.d)))
	return copy(b, p.b), p.from, p.err
}

// TestTURNGuardGrantsAhead runs pion's TURN client through the guard against
// pion's TURN server, 100 ms away, which refuses one peer. With the session's
// password a permission is granted at once and the relay's answer comes
// later; data reaches the peer; the refused peer is learnt, and the client's
// refreshes leave it out, so the relay keeps accepting them. (The relay's
// permission handler also sees the client's ChannelBinds.)
func TestTURNGuardGrantsAhead(t *testing.T) {
	const user, realm, password = "1700000000:alice", "parley", "secret"
	srvConn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	asked := map[string]int{} // peer → permissions the relay was asked for
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm: realm,
		AuthHandler: func(ra *turn.RequestAttributes) (string, []byte, bool) {
			return ra.Username, turn.GenerateAuthKey(ra.Username, realm, password), ra.Username == user
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            srvConn,
			RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{RelayAddress: net.ParseIP("127.0.0.1"), Address: "127.0.0.1"},
			PermissionHandler: func(_ net.Addr, peer net.IP) bool {
				mu.Lock()
				asked[peer.String()]++
				mu.Unlock()
				return !peer.Equal(net.ParseIP("127.0.0.3"))
			},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	raw, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	creds := &turnCreds{}
	creds.add(user, password)
	client, err := turn.NewClient(&turn.ClientConfig{
		TURNServerAddr: srvConn.LocalAddr().String(), Username: user, Password: password, Realm: realm,
		Conn: newTURNGuard(newSlowConn(raw, 100*time.Millisecond), creds), PermissionRefreshInterval: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	relayed, err := client.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relayed.Close()

	peer, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	start := time.Now()
	if _, err := relayed.WriteTo([]byte("hello"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 50*time.Millisecond {
		t.Errorf("the first write to a peer took %v; the relay's answer takes 100 ms", d)
	}
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 100)
	if n, _, err := peer.ReadFrom(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("the peer got %q, %v", buf[:n], err)
	}
	// The refused peer: granted here, refused by the relay, learnt.
	if _, err := relayed.WriteTo([]byte("hello"), &net.UDPAddr{IP: net.ParseIP("127.0.0.3"), Port: 9}); err != nil {
		t.Fatal(err)
	}
	counts := func() (good, bad int) {
		mu.Lock()
		defer mu.Unlock()
		return asked["127.0.0.2"], asked["127.0.0.3"]
	}
	time.Sleep(700 * time.Millisecond) // the refusal is in; a refresh or two went
	good1, bad1 := counts()
	time.Sleep(1000 * time.Millisecond) // three refreshes more
	good2, bad2 := counts()
	t.Logf("the relay was asked for the good peer %d then %d times, for the refused one %d then %d times", good1, good2, bad1, bad2)
	if bad2 != bad1 {
		t.Errorf("refreshes still name the refused peer: asked %d times, then %d", bad1, bad2)
	}
	if good2 < good1+2 {
		t.Errorf("the good peer's permission was refreshed %d times in a second, want ≥ 2 (every 300 ms)", good2-good1)
	}
	// Still relayed to the good peer after the refreshes.
	relayed.WriteTo([]byte("again"), peer.LocalAddr())
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		n, _, err := peer.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after the refreshes: %v", err)
		}
		if string(buf[:n]) == "again" {
			break
		}
	}
}

// TestTURNGuardStaleNonce: a permission granted ahead that the relay answers
// with 438 (stale nonce) is asked again with the new nonce, signed, and that
// answer is the guard's too.
func TestTURNGuardStaleNonce(t *testing.T) {
	const user, realm, password = "u", "r", "pw"
	creds := &turnCreds{}
	creds.add(user, password)
	p := &permissionPolicy{creds: creds}
	req, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodCreatePermission, stun.ClassRequest),
		peerAddr{stun.XORMappedAddress{IP: net.ParseIP("203.0.113.5"), Port: 1}},
		stun.NewUsername(user), stun.NewRealm(realm), stun.NewNonce("old"),
		stun.NewLongTermIntegrity(user, realm, password), stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	answer, send := p.outgoing(req.Raw, netip.MustParseAddr("198.51.100.1"))
	if answer == nil || string(send) != string(req.Raw) {
		t.Fatal("not granted ahead, or not sent as it was")
	}
	stale, _ := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.NewType(stun.MethodCreatePermission, stun.ClassErrorResponse),
		stun.CodeStaleNonce, stun.NewNonce("new"))
	deliver, resend := p.incoming(stale.Raw)
	if deliver || resend == nil {
		t.Fatalf("deliver %v, resend %d bytes; want the guard to ask again", deliver, len(resend))
	}
	m := &stun.Message{Raw: resend}
	if err := m.Decode(); err != nil {
		t.Fatal(err)
	}
	var nonce stun.Nonce
	if nonce.GetFrom(m) != nil || nonce.String() != "new" || m.TransactionID == req.TransactionID {
		t.Errorf("asked again with nonce %q, same transaction %v", nonce, m.TransactionID == req.TransactionID)
	}
	if err := stun.NewLongTermIntegrity(user, realm, password).Check(m); err != nil {
		t.Errorf("the new request's integrity: %v", err)
	}
	if peers := peersOf(m); len(peers) != 1 || peers[0] != netip.MustParseAddr("203.0.113.5") {
		t.Errorf("the new request names %v", peers)
	}
	ok, _ := stun.Build(stun.NewTransactionIDSetter(m.TransactionID), stun.NewType(stun.MethodCreatePermission, stun.ClassSuccessResponse))
	if deliver, _ := p.incoming(ok.Raw); deliver {
		t.Error("the relay's answer to the guard's request went to the TURN client")
	}
}
