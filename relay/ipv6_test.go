package relay

import (
	"bytes"
	"net"
	"net/netip"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
)

// IPv6 allocations (RFC 6156), tested on ::1 with real sockets.

var loopback6 = []netip.Prefix{netip.MustParsePrefix("::1/128")}

// requestIPv6 is REQUESTED-ADDRESS-FAMILY: IPv6.
var requestIPv6 = stun.RawAttribute{Type: stun.AttrRequestedAddressFamily, Value: []byte{0x02, 0, 0, 0}}

// newIPv6Server starts a relay listening (UDP and TCP) on ::1 only, with
// RelayIP ::1: every allocation is IPv6.
func newIPv6Server(t *testing.T, allow ...netip.Prefix) *Server {
	t.Helper()
	s, _ := newTestServer(t, Config{UDPAddr: "[::1]:0", TCPAddr: "[::1]:0", RelayIP: net.IPv6loopback, AllowPeers: allow})
	return s
}

// newRaw6 is newRaw over IPv6: a hand-written TURN client on [::1].
func newRaw6(t *testing.T, s *Server) *rawTURN {
	t.Helper()
	conn, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	udp, _, _ := s.Addrs()
	return &rawTURN{t: t, conn: conn, server: udp}
}

// allocate6 runs the two-step Allocate asking for an IPv6 relayed address
// and returns it.
func (r *rawTURN) allocate6(username, password string) netip.AddrPort {
	r.t.Helper()
	res := r.do(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestUDP, requestIPv6, stun.Fingerprint)
	if got := errorCode(res); got != 401 {
		r.t.Fatalf("unauthenticated Allocate: error %d, want 401", got)
	}
	if err := r.nonce.GetFrom(res); err != nil {
		r.t.Fatal(err)
	}
	if err := r.realm.GetFrom(res); err != nil {
		r.t.Fatal(err)
	}
	r.username = username
	r.integrity = stun.NewLongTermIntegrity(username, r.realm.String(), password)
	res = r.do(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestUDP, requestIPv6,
		stun.NewUsername(username), r.realm, r.nonce, r.integrity, stun.Fingerprint)
	if res.Type.Class != stun.ClassSuccessResponse {
		r.t.Fatalf("Allocate: %v error %d", res.Type, errorCode(res))
	}
	var relayed stun.XORMappedAddress
	if err := relayed.GetFromAs(res, stun.AttrXORRelayedAddress); err != nil {
		r.t.Fatalf("Allocate: no XOR-RELAYED-ADDRESS: %v", err)
	}
	ip, _ := netip.AddrFromSlice(relayed.IP)
	r.relayed = netip.AddrPortFrom(ip, uint16(relayed.Port))
	return r.relayed
}

// createPermission asks for a permission for peer and returns the error code
// (0: granted).
func (r *rawTURN) createPermission(peer stun.Setter) int {
	r.t.Helper()
	res := r.do(stun.TransactionID, stun.NewType(stun.MethodCreatePermission, stun.ClassRequest), peer,
		stun.NewUsername(r.username), r.realm, r.nonce, r.integrity, stun.Fingerprint)
	return errorCode(res)
}

// sendIndication sends payload to peer in a Send indication (no answer).
func (r *rawTURN) sendIndication(peer stun.Setter, payload []byte) {
	r.t.Helper()
	m, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication), peer,
		stun.RawAttribute{Type: stun.AttrData, Value: payload}, stun.Fingerprint)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.conn.WriteTo(m.Raw, r.server); err != nil {
		r.t.Fatal(err)
	}
}

// relayedIPOf is the IP of a pion client's relayed conn.
func relayedIPOf(rc net.PacketConn) netip.Addr {
	return addrPort(rc.LocalAddr().(*net.UDPAddr)).Addr()
}

// TestAllocationFamilies: a relay with an address of each family allocates
// the family the client asks for (REQUESTED-ADDRESS-FAMILY, which pion's
// client sends when its own socket is IPv6 or it is told to), else the
// family of the listener it reached; a relay with IPv4 only refuses IPv6.
func TestAllocationFamilies(t *testing.T) {
	dual, _ := newTestServer(t, Config{SecondRelayIP: net.IPv6loopback})
	only4, _ := newTestServer(t, Config{})
	v6 := newIPv6Server(t)
	tests := []struct {
		name   string
		s      *Server
		tcp    bool
		family turn.RequestedAddressFamily
		want   string // relayed IP; "" = refused
	}{
		{"IPv4 client, no family asked", dual, false, 0, "127.0.0.1"},
		{"IPv4 client asks for IPv6", dual, false, turn.RequestedAddressFamilyIPv6, "::1"},
		{"IPv4 client over TCP asks for IPv6", dual, true, turn.RequestedAddressFamilyIPv6, "::1"},
		{"IPv4-only relay refuses IPv6", only4, false, turn.RequestedAddressFamilyIPv6, ""},
		{"IPv6 client, IPv6 relay", v6, false, 0, "::1"},
		{"IPv6 client over TCP, IPv6 relay", v6, true, 0, "::1"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			udp, tcp, _ := tt.s.Addrs()
			server := udp
			var conn net.PacketConn
			var err error
			switch {
			case tt.tcp:
				server = tcp
				var c net.Conn
				if c, err = net.Dial("tcp", tcp.String()); err == nil {
					conn = turn.NewSTUNConn(c)
				}
			case udp.(*net.UDPAddr).IP.To4() != nil:
				conn, err = net.ListenPacket("udp4", "127.0.0.1:0")
			default:
				conn, err = net.ListenPacket("udp6", "[::1]:0")
			}
			if err != nil {
				t.Fatal(err)
			}
			u, p := creds("fam" + string(rune('a'+i)))
			c, err := turn.NewClient(&turn.ClientConfig{
				STUNServerAddr: server.String(), TURNServerAddr: server.String(), Conn: conn,
				Username: u, Password: p, Realm: DefaultRealm, LoggerFactory: quietPion,
				RequestedAddressFamily: tt.family,
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Listen(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close(); _ = conn.Close() })
			rc, err := c.Allocate()
			if tt.want == "" {
				if err == nil {
					_ = rc.Close()
					t.Fatalf("Allocate succeeded (relayed %v), want it refused", rc.LocalAddr())
				}
				if got := turnCode(err); got != int(stun.CodeInsufficientCapacity) {
					t.Errorf("Allocate: %v (code %d), want 508", err, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			t.Cleanup(func() { _ = rc.Close() })
			if got := relayedIPOf(rc); got.String() != tt.want {
				t.Errorf("relayed address %v, want %s", rc.LocalAddr(), tt.want)
			}
		})
	}
}

// relayTo sends msg from the allocation from to the relayed address to until
// the allocation recv reads it (at most 20 tries), and checks its source.
func relayTo(t *testing.T, from net.PacketConn, to net.Addr, recv net.PacketConn, msg string) {
	t.Helper()
	for range 20 {
		if _, err := from.WriteTo([]byte(msg), to); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
		got, src, err := readWithin(recv, 200*time.Millisecond)
		if err != nil {
			continue
		}
		if string(got) != msg || src.String() != from.LocalAddr().String() {
			t.Fatalf("got %q from %v, want %q from %v", got, src, msg, from.LocalAddr())
		}
		return
	}
	t.Fatalf("%q never arrived", msg)
}

// TestIPv6RelayBetweenAllocations: on a relay with IPv6 only, an IPv6 client
// over UDP and another over TCP relay to each other's IPv6 allocation, both
// ways.
func TestIPv6RelayBetweenAllocations(t *testing.T) {
	s := newIPv6Server(t, loopback6...)
	udp, tcp, _ := s.Addrs()
	aconn, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	au, ap := creds("alice")
	ac := startClient(t, aconn, udp.String(), au, ap)
	bconn, err := net.Dial("tcp6", tcp.String())
	if err != nil {
		t.Fatal(err)
	}
	bu, bp := creds("bob")
	bc := startClient(t, turn.NewSTUNConn(bconn), tcp.String(), bu, bp)
	a, b := allocate(t, ac), allocate(t, bc)
	if !relayedIPOf(a).Is6() || !relayedIPOf(b).Is6() {
		t.Fatalf("relayed addresses %v and %v, want IPv6", a.LocalAddr(), b.LocalAddr())
	}
	if err := ac.CreatePermission(b.LocalAddr()); err != nil {
		t.Fatalf("alice CreatePermission: %v", err)
	}
	if err := bc.CreatePermission(a.LocalAddr()); err != nil {
		t.Fatalf("bob CreatePermission: %v", err)
	}
	relayTo(t, a, b.LocalAddr(), b, "alice to bob")
	relayTo(t, b, a.LocalAddr(), a, "bob to alice")
}

// TestIPv6FastPath: ChannelData between an IPv6 client and its channel's IPv6
// peer (another allocation) is relayed by the fast path, both ways.
func TestIPv6FastPath(t *testing.T) {
	s := newIPv6Server(t, loopback6...)
	r := newRaw6(t, s)
	u, p := creds("alice")
	relayed := r.allocate6(u, p)
	udp, _, _ := s.Addrs()
	bconn, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	bu, bp := creds("bob")
	bc := startClient(t, bconn, udp.String(), bu, bp)
	b := allocate(t, bc)
	const num = 0x4001
	if code := r.channelBind(num, peerAttr(addrPort(b.LocalAddr().(*net.UDPAddr)))); code != 0 {
		t.Fatalf("ChannelBind to %v: error %d", b.LocalAddr(), code)
	}
	aAddr := net.UDPAddrFromAddrPort(relayed)
	if err := bc.CreatePermission(aAddr); err != nil {
		t.Fatalf("bob CreatePermission: %v", err)
	}
	var got []byte
	for range 20 {
		r.sendChannel(num, []byte("ping"))
		if got, _, err = readWithin(b, 200*time.Millisecond); err == nil {
			break
		}
	}
	if string(got) != "ping" {
		t.Fatalf("bob read %q, want ping", got)
	}
	for range 20 {
		if _, err := b.WriteTo([]byte("pong"), aAddr); err != nil {
			t.Fatal(err)
		}
		if n, payload, ok := r.recvChannel(200 * time.Millisecond); ok {
			if n != num || string(payload) != "pong" {
				t.Fatalf("alice got %q on channel %#x, want pong on %#x", payload, n, num)
			}
			break
		}
	}
	if tr := s.traffic(); tr.fastOut == 0 || tr.fastIn == 0 {
		t.Errorf("fast path relayed %d packets out and %d in, want both > 0", tr.fastOut, tr.fastIn)
	}
}

// TestIPv6PeersRefusedOnTheWire: a client with an IPv6 allocation sends real
// CreatePermission, ChannelBind, Send indications and ChannelData for peers
// the relay must never reach: IPv6 loopback, link-local, unique-local outside
// the lab's allowed prefix, NAT64 forms of private IPv4 addresses and
// IPv4-mapped addresses. Each is refused (403 for CreatePermission, 401 for a
// ChannelBind the permission handler refuses — pion's choice — and 443 for
// an IPv4-mapped address, which pion takes for IPv4 on an IPv6 allocation),
// and nothing reaches listeners at the loopback ones or leaves the
// allocation. A unique-local peer inside the allowed prefix is accepted
// (positive control).
func TestIPv6PeersRefusedOnTheWire(t *testing.T) {
	lab := netip.MustParsePrefix("fd00:198:18::/64")
	s := newIPv6Server(t, lab)
	r := newRaw6(t, s)
	u, p := creds("mallory")
	r.allocate6(u, p)

	// Listeners where the loopback peers would land.
	lo6 := newPeer6(t)
	lo4 := newPeer(t, "127.0.0.1", false)
	lo6Port, lo4Port := lo6.addr().Port, lo4.addr().Port

	tests := []struct {
		name       string
		peer       netip.AddrPort
		perm, bind int
	}{
		{"loopback", netip.AddrPortFrom(netip.IPv6Loopback(), uint16(lo6Port)), 403, 401},
		{"unspecified", netip.AddrPortFrom(netip.IPv6Unspecified(), uint16(lo6Port)), 403, 401},
		{"link-local", netip.MustParseAddrPort("[fe80::1]:9"), 403, 401},
		{"unique-local outside the lab prefix", netip.MustParseAddrPort("[fd00:1::2]:9"), 403, 401},
		{"unique-local fc00::/8", netip.MustParseAddrPort("[fc00::1]:9"), 403, 401},
		{"NAT64 of loopback", netip.AddrPortFrom(netip.MustParseAddr("64:ff9b::7f00:1"), uint16(lo4Port)), 403, 401},
		{"NAT64 of metadata", netip.MustParseAddrPort("[64:ff9b::a9fe:a9fe]:80"), 403, 401},
		{"NAT64 of 10/8", netip.MustParseAddrPort("[64:ff9b::a00:1]:9"), 403, 401},
		{"IPv4-mapped loopback", netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), uint16(lo4Port)), 443, 443},
		{"IPv4-mapped metadata", netip.MustParseAddrPort("[::ffff:169.254.169.254]:80"), 443, 443},
		{"IPv4-compatible loopback", netip.AddrPortFrom(netip.MustParseAddr("::127.0.0.1"), uint16(lo4Port)), 403, 401},
	}
	refusedBefore := s.Stats().RefusedPeers
	handlerRefusals := 0
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			peer := xorPeerV6{tt.peer.Addr().As16(), int(tt.peer.Port())}
			if got := r.createPermission(peer); got != tt.perm {
				t.Errorf("CreatePermission %v: error %d, want %d", tt.peer, got, tt.perm)
			}
			num := uint16(0x4000 + i)
			if got := r.channelBind(num, peer); got != tt.bind {
				t.Errorf("ChannelBind %v: error %d, want %d", tt.peer, got, tt.bind)
			}
			if tt.perm == 403 {
				handlerRefusals += 2
			}
			for range 3 {
				r.sendIndication(peer, []byte("sent"))
				r.sendChannel(num, []byte("chan"))
			}
		})
	}

	// Positive control: the lab's prefix is allowed.
	ok := netip.MustParseAddrPort("[fd00:198:18::5]:9")
	if got := r.createPermission(xorPeerV6{ok.Addr().As16(), int(ok.Port())}); got != 0 {
		t.Errorf("CreatePermission %v (inside --relay-allow-peer): error %d, want granted", ok, got)
	}
	if got := r.channelBind(0x4fff, xorPeerV6{ok.Addr().As16(), int(ok.Port())}); got != 0 {
		t.Errorf("ChannelBind %v (inside --relay-allow-peer): error %d, want bound", ok, got)
	}

	time.Sleep(300 * time.Millisecond) // anything forwarded would have landed
	if n := lo6.bytes.Load() + lo4.bytes.Load(); n != 0 {
		t.Errorf("%d bytes reached the loopback listeners", n)
	}
	if tr := s.traffic(); tr.pktsOut != 0 || tr.bytesOut != 0 {
		t.Errorf("the allocation sent %d packets (%d bytes), want none", tr.pktsOut, tr.bytesOut)
	}
	if got := s.Stats().RefusedPeers - refusedBefore; got < uint64(handlerRefusals) {
		t.Errorf("Stats.RefusedPeers rose by %d, want ≥ %d", got, handlerRefusals)
	}
}

// newPeer6 is newPeer on [::1].
func newPeer6(t *testing.T) *udpPeer {
	t.Helper()
	conn, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &udpPeer{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 2048)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			p.bytes.Add(int64(n))
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-p.done
	})
	return p
}

// TestSecondRelayIPConfig: SecondRelayIP must be of the other family, and
// its bind address of its family.
func TestSecondRelayIPConfig(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"same family", Config{SecondRelayIP: net.IPv4(127, 0, 0, 2)}, "other family"},
		{"bind of the wrong family", Config{SecondRelayIP: net.IPv6loopback, SecondRelayBindIP: net.IPv4zero}, "SecondRelayIP"},
		{"bind without address", Config{SecondRelayBindIP: net.IPv6unspecified}, "SecondRelayBindIP without"},
		{"unspecified", Config{SecondRelayIP: net.IPv6unspecified}, "SecondRelayIP"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.UDPAddr, tt.cfg.RelayIP, tt.cfg.Secret = "127.0.0.1:0", net.IPv4(127, 0, 0, 1), testSecret
			s, err := New(tt.cfg)
			if err == nil {
				_ = s.Close()
				t.Fatal("New succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestCloseWithIPv6Allocations: a dual-stack relay holding allocations of
// both families closes them all and leaves no goroutine behind.
func TestCloseWithIPv6Allocations(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := New(Config{UDPAddr: "127.0.0.1:0", RelayIP: net.IPv4(127, 0, 0, 1), SecondRelayIP: net.IPv6loopback,
		Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	udp, _, _ := s.Addrs()
	var closers []func()
	for i, fam := range []turn.RequestedAddressFamily{turn.RequestedAddressFamilyIPv6, 0, turn.RequestedAddressFamilyIPv6} {
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		u, p := creds("user" + string(rune('a'+i)))
		c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: udp.String(), Conn: conn, Username: u, Password: p,
			Realm: DefaultRealm, LoggerFactory: quietPion, RequestedAddressFamily: fam})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Listen(); err != nil {
			t.Fatal(err)
		}
		rc, err := c.Allocate()
		if err != nil {
			t.Fatalf("Allocate: %v", err)
		}
		closers = append(closers, func() { _ = rc.Close(); c.Close(); _ = conn.Close() })
	}
	if st := s.Stats(); st.Allocations != 3 {
		t.Errorf("Stats.Allocations = %d, want 3", st.Allocations)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if st := s.Stats(); st.Allocations != 0 || st.Users != 0 {
		t.Errorf("after Close: %+v", st)
	}
	for _, c := range closers {
		c()
	}
	waitGoroutines(t, before)
}

// waitGoroutines fails t unless the goroutines are back to before within
// 5 s (a server's Close must end every goroutine it started).
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%d goroutines before New, %d after Close:\n%s", before, runtime.NumGoroutine(), buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAllocationPortsUniqueAcrossFamilies: the relay knows allocations by
// port, so an IPv6 allocation never takes the port of a live IPv4 one (here
// asked for it outright, as pion's EVEN-PORT path would).
func TestAllocationPortsUniqueAcrossFamilies(t *testing.T) {
	s, _ := newTestServer(t, Config{SecondRelayIP: net.IPv6loopback})
	u, p := creds("alice")
	rc := allocate(t, dialUDP(t, s, u, p))
	port := rc.LocalAddr().(*net.UDPAddr).Port
	pc, addr, err := s.allocate(turn.AllocateListenerConfig{Network: "udp6", UserID: "bob", RequestedPort: port})
	if err == nil {
		_ = pc.Close()
		t.Fatalf("an IPv6 allocation took %v, the port of IPv4 allocation %v", addr, rc.LocalAddr())
	}
	if !strings.Contains(err.Error(), "no port free") {
		t.Errorf("refused with %v, want the port taken by the other family", err)
	}
	if st := s.Stats(); st.Allocations != 1 || st.Users != 1 {
		t.Errorf("after the refused allocation: %+v, want alice's alone", st)
	}
	pc, addr, err = s.allocate(turn.AllocateListenerConfig{Network: "udp6", UserID: "bob"})
	if err != nil {
		t.Fatalf("IPv6 allocation: %v", err)
	}
	defer func() { // as pion does: close, and its reader sees the close
		_ = pc.Close()
		_, _, _ = pc.ReadFrom(make([]byte, 64))
	}()
	if got := addr.(*net.UDPAddr); !got.IP.Equal(net.IPv6loopback) || got.Port == port {
		t.Errorf("IPv6 allocation at %v, want ::1 on a port other than %d", got, port)
	}
}
