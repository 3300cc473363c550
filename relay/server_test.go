package relay

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley/parley/wire/turncred"
	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
)

var testSecret = []byte("0123456789abcdef-relay-test-secret")

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// logBuffer collects a test server's logs (at debug level), so tests can check
// what the relay logs and print it when they fail. pion may log from its
// goroutines at any moment, so logs never go straight to t.Log.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newTestServer starts a relay on 127.0.0.1 (UDP and TCP on free ports,
// RelayIP 127.0.0.1) with cfg's other fields, closed at the end of the test.
func newTestServer(t testing.TB, cfg Config) (*Server, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	if cfg.UDPAddr == "" && cfg.PacketConn == nil {
		cfg.UDPAddr = "127.0.0.1:0"
	}
	if cfg.TCPAddr == "" && cfg.TCPListener == nil {
		cfg.TCPAddr = "127.0.0.1:0"
	}
	if cfg.RelayIP == nil {
		cfg.RelayIP = net.IPv4(127, 0, 0, 1)
	}
	if cfg.Secret == nil {
		cfg.Secret = testSecret
	}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() || testing.Verbose() {
			t.Logf("relay log:\n%s", logs.String())
		}
	})
	return s, logs
}

// quietPion is a pion LoggerFactory for test clients that discards everything.
var quietPion = pionLoggers{slog.New(slog.NewTextHandler(io.Discard, nil))}

// dialUDP makes a pion TURN client over its own UDP socket.
func dialUDP(t *testing.T, s *Server, username, password string) *turn.Client {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udp, _, _ := s.Addrs()
	return startClient(t, conn, udp.String(), username, password)
}

func startClient(t *testing.T, conn net.PacketConn, server, username, password string) *turn.Client {
	t.Helper()
	c, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: server,
		TURNServerAddr: server,
		Conn:           conn,
		Username:       username,
		Password:       password,
		Realm:          DefaultRealm,
		LoggerFactory:  quietPion,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Close()
		_ = conn.Close()
	})
	return c
}

// allocate allocates on c and closes the allocation at the end of the test.
func allocate(t *testing.T, c *turn.Client) net.PacketConn {
	t.Helper()
	rc, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

func creds(user string) (string, string) {
	return turncred.Credentials(testSecret, user, 10*time.Minute, time.Now())
}

// turnCode returns the TURN error code carried by err, or 0.
func turnCode(err error) int {
	var te *stun.TurnError
	if errors.As(err, &te) {
		return int(te.ErrorCodeAttr.Code)
	}
	return 0
}

// udpPeer is a plain UDP socket on a loopback address other than the relay's
// (127.0.0.1 is the relay host's own address, where only allocations may be
// reached); it counts what it receives and echoes it if asked.
type udpPeer struct {
	conn  net.PacketConn
	bytes atomic.Int64
	done  chan struct{}
}

func newPeer(t testing.TB, ip string, echo bool) *udpPeer {
	t.Helper()
	conn, err := net.ListenPacket("udp4", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	p := &udpPeer{conn: conn, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 2048)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			p.bytes.Add(int64(n))
			if echo {
				_, _ = conn.WriteTo(buf[:n], from)
			}
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-p.done
	})
	return p
}

func (p *udpPeer) addr() *net.UDPAddr { return p.conn.LocalAddr().(*net.UDPAddr) }

// readWithin reads one packet from rc within d.
func readWithin(rc net.PacketConn, d time.Duration) ([]byte, net.Addr, error) {
	buf := make([]byte, 2048)
	_ = rc.SetReadDeadline(time.Now().Add(d))
	n, from, err := rc.ReadFrom(buf)
	return buf[:n], from, err
}

// rawAllocate is a TURN client written with the stun package alone, to send
// what pion's client cannot: no credentials at all, and a peer address in the
// IPv6 family that wraps an IPv4 address.
type rawTURN struct {
	t          testing.TB
	conn       net.PacketConn
	server     net.Addr
	username   string
	integrity  stun.MessageIntegrity
	realm      stun.Realm
	nonce      stun.Nonce
	haveNonces bool
	relayed    netip.AddrPort // the allocation's relayed address (fastpath_test.go)
}

func newRaw(t testing.TB, s *Server) *rawTURN {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	udp, _, _ := s.Addrs()
	return &rawTURN{t: t, conn: conn, server: udp}
}

// newRawTo is newRaw for any TURN server at server (relaybench_test.go).
func newRawTo(t testing.TB, server net.Addr) *rawTURN {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &rawTURN{t: t, conn: conn, server: server}
}

func (r *rawTURN) do(setters ...stun.Setter) *stun.Message {
	r.t.Helper()
	m, err := stun.Build(setters...)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.conn.WriteTo(m.Raw, r.server); err != nil {
		r.t.Fatal(err)
	}
	buf := make([]byte, 2048)
	for {
		_ = r.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		n, _, err := r.conn.ReadFrom(buf)
		if err != nil {
			r.t.Fatalf("no answer to %v: %v", m.Type, err)
		}
		res := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if err := res.Decode(); err != nil {
			r.t.Fatal(err)
		}
		if res.TransactionID == m.TransactionID {
			return res
		}
	}
}

var requestUDP = stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}

func errorCode(m *stun.Message) int {
	var code stun.ErrorCodeAttribute
	if err := code.GetFrom(m); err != nil {
		return 0
	}
	return int(code.Code)
}

// allocate runs the two-step long-term-credential Allocate.
func (r *rawTURN) allocate(username, password string) *stun.Message {
	r.t.Helper()
	res := r.do(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestUDP, stun.Fingerprint)
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
	return r.do(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestUDP,
		stun.NewUsername(username), r.realm, r.nonce, r.integrity, stun.Fingerprint)
}

// xorPeerV6 is an XOR-PEER-ADDRESS in the IPv6 family, whatever the address.
type xorPeerV6 struct {
	ip   [16]byte
	port int
}

func (x xorPeerV6) AddTo(m *stun.Message) error {
	v := make([]byte, 20)
	v[1] = 0x02 // IPv6 family
	cookie := []byte{0x21, 0x12, 0xa4, 0x42}
	v[2] = byte(x.port>>8) ^ cookie[0]
	v[3] = byte(x.port) ^ cookie[1]
	key := append(append([]byte(nil), cookie...), m.TransactionID[:]...)
	for i := range 16 {
		v[4+i] = x.ip[i] ^ key[i]
	}
	m.Add(stun.AttrXORPeerAddress, v)
	return nil
}

type setterFunc func(m *stun.Message) error

func (f setterFunc) AddTo(m *stun.Message) error { return f(m) }

func TestAuthentication(t *testing.T) {
	s, logs := newTestServer(t, Config{})

	t.Run("no credentials", func(t *testing.T) {
		r := newRaw(t, s)
		res := r.do(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), requestUDP, stun.Fingerprint)
		if got := errorCode(res); got != 401 {
			t.Errorf("Allocate without credentials: error %d, want 401", got)
		}
		var realm stun.Realm
		if err := realm.GetFrom(res); err != nil || realm.String() != DefaultRealm {
			t.Errorf("realm = %q (%v), want %q", realm, err, DefaultRealm)
		}
	})

	valid := func(user string) (string, string) { return creds(user) }
	tests := []struct {
		name     string
		creds    func() (string, string)
		wantCode int // 0: success
	}{
		{"good", func() (string, string) { return valid("alice") }, 0},
		{"empty", func() (string, string) { return "", "" }, 400},
		{"expired", func() (string, string) {
			return turncred.Credentials(testSecret, "alice", time.Minute, time.Now().Add(-2*time.Minute))
		}, 400},
		{"too far ahead", func() (string, string) {
			u := "9999999999:alice"
			return u, turncred.Password(testSecret, u)
		}, 400},
		{"bad user name", func() (string, string) { return valid("Bad User") }, 400},
		{"user name with colon", func() (string, string) { return valid("alice:admin") }, 400},
		{"wrong password", func() (string, string) {
			u, _ := valid("alice")
			return u, "bm90IHRoZSBwYXNzd29yZA=="
		}, 400},
		{"other secret", func() (string, string) {
			return turncred.Credentials([]byte("another-secret-of-16+"), "alice", time.Minute, time.Now())
		}, 400},
		{"username without expiry", func() (string, string) { return "alice", turncred.Password(testSecret, "alice") }, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			username, password := tt.creds()
			c := dialUDP(t, s, username, password)
			rc, err := c.Allocate()
			if tt.wantCode == 0 {
				if err != nil {
					t.Fatalf("Allocate: %v", err)
				}
				_ = rc.Close()
				return
			}
			if err == nil {
				_ = rc.Close()
				t.Fatal("Allocate succeeded, want refusal")
			}
			if got := turnCode(err); got != tt.wantCode {
				t.Errorf("Allocate error %v (code %d), want code %d", err, got, tt.wantCode)
			}
		})
	}

	if s.Stats().RefusedAuth == 0 {
		t.Error("Stats.RefusedAuth = 0 after refusals")
	}
	out := logs.String()
	for _, secret := range []string{string(testSecret), turncred.Password(testSecret, "alice")} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains a secret or password %q", secret)
		}
	}
	_, pw := valid("alice")
	if strings.Contains(out, pw) {
		t.Error("log contains a TURN password")
	}
}

// TestAuthenticationUsesInjectedClock: credentials good by the wall clock are
// expired by the relay's clock, and credentials good by the relay's clock work.
func TestAuthenticationUsesInjectedClock(t *testing.T) {
	future := time.Now().Add(3 * time.Hour)
	s, _ := newTestServer(t, Config{Now: func() time.Time { return future }})

	u, p := turncred.Credentials(testSecret, "alice", time.Hour, time.Now())
	_, err := dialUDP(t, s, u, p).Allocate()
	if turnCode(err) != 400 {
		t.Errorf("wall-clock credentials: Allocate err %v, want 400", err)
	}
	u, p = turncred.Credentials(testSecret, "alice", time.Hour, future)
	allocate(t, dialUDP(t, s, u, p))
}

func TestPermissionDenyList(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	u, p := creds("alice")
	c := dialUDP(t, s, u, p)
	rc := allocate(t, c)

	for _, ip := range []string{"127.0.0.1", "::ffff:127.0.0.1", "0.0.0.0", "10.1.2.3", "169.254.169.254", "192.168.1.1"} {
		t.Run(ip, func(t *testing.T) {
			_, err := rc.WriteTo([]byte("hi"), &net.UDPAddr{IP: net.ParseIP(ip), Port: 9})
			if err == nil {
				t.Fatal("WriteTo succeeded, want 403")
			}
			if got := turnCode(err); got != 403 || !strings.Contains(err.Error(), "403") {
				t.Errorf("WriteTo error %q (code %d), want 403 Forbidden", err, got)
			}
		})
	}
	if got := s.Stats().RefusedPeers; got < 6 {
		t.Errorf("Stats.RefusedPeers = %d, want >= 6", got)
	}
}

// TestPermissionMappedOnTheWire sends CreatePermission for ::ffff:127.0.0.1 as
// a genuine IPv6-family XOR-PEER-ADDRESS (pion's client would re-encode it as
// IPv4) and for 169.254.169.254: both are refused with 403, and a public peer
// is accepted (positive control).
func TestPermissionMappedOnTheWire(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	r := newRaw(t, s)
	u, p := creds("alice")
	if res := r.allocate(u, p); res.Type.Class != stun.ClassSuccessResponse {
		t.Fatalf("Allocate: %v error %d", res.Type, errorCode(res))
	}
	perm := func(peer stun.Setter) *stun.Message {
		return r.do(stun.TransactionID, stun.NewType(stun.MethodCreatePermission, stun.ClassRequest), peer,
			stun.NewUsername(r.username), r.realm, r.nonce, r.integrity, stun.Fingerprint)
	}
	tests := []struct {
		name string
		peer stun.Setter
		want int
	}{
		{"mapped loopback", xorPeerV6{netip.MustParseAddr("::ffff:127.0.0.1").As16(), 9}, 403},
		{"mapped metadata", xorPeerV6{netip.MustParseAddr("::ffff:169.254.169.254").As16(), 80}, 403},
		{"metadata", &stun.XORMappedAddress{IP: net.ParseIP("169.254.169.254").To4(), Port: 80}, 403},
		{"public", &stun.XORMappedAddress{IP: net.ParseIP("8.8.8.8").To4(), Port: 53}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// XORMappedAddress adds XOR-MAPPED-ADDRESS; re-type it as a peer address.
			peer := tt.peer
			if x, ok := peer.(*stun.XORMappedAddress); ok {
				peer = setterFunc(func(m *stun.Message) error { return x.AddToAs(m, stun.AttrXORPeerAddress) })
			}
			res := perm(peer)
			if got := errorCode(res); got != tt.want {
				t.Errorf("CreatePermission: %v error %d, want %d", res.Type, got, tt.want)
			}
		})
	}
}

func TestTwoUsersOnOneRelay(t *testing.T) {
	s, _ := newTestServer(t, Config{AllowPeers: loopback})
	au, ap := creds("alice")
	bu, bp := creds("bob")
	ac, bc := dialUDP(t, s, au, ap), dialUDP(t, s, bu, bp)
	arc, brc := allocate(t, ac), allocate(t, bc)
	aAddr, bAddr := arc.LocalAddr(), brc.LocalAddr()
	if err := ac.CreatePermission(bAddr); err != nil {
		t.Fatalf("alice CreatePermission: %v", err)
	}
	if err := bc.CreatePermission(aAddr); err != nil {
		t.Fatalf("bob CreatePermission: %v", err)
	}

	send := func(from net.PacketConn, to net.Addr, recv net.PacketConn, msg string) {
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
	send(arc, bAddr, brc, "alice to bob")
	send(brc, aAddr, arc, "bob to alice")

	// The relay's own TURN port is on the same address as the allocations but
	// is not an allocation: a STUN Binding request sent there from alice's
	// allocation must be dropped (if it got through, the relay would answer it
	// and alice, who holds a permission for 127.0.0.1, would receive that).
	before := s.Stats().DroppedSelf
	udp, tcp, _ := s.Addrs()
	bind := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	for range 3 {
		if _, err := arc.WriteTo(bind.Raw, udp); err != nil {
			t.Fatalf("WriteTo TURN port: %v", err)
		}
		if _, err := arc.WriteTo([]byte("hello sshd"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: tcp.(*net.TCPAddr).Port}); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
	}
	if got, src, err := readWithin(arc, 500*time.Millisecond); err == nil {
		t.Fatalf("alice received %d bytes from %v: the relay relayed to itself", len(got), src)
	}
	if got := s.Stats().DroppedSelf - before; got != 6 {
		t.Errorf("Stats.DroppedSelf grew by %d, want 6", got)
	}
	// And the allocations still reach each other afterwards.
	send(arc, bAddr, brc, "still there")
}

func TestAllocationQuota(t *testing.T) {
	s, _ := newTestServer(t, Config{MaxAllocationsPerUser: 2})
	cu, cp := creds("carol")
	first := allocate(t, dialUDP(t, s, cu, cp))
	allocate(t, dialUDP(t, s, cu, cp))

	third := dialUDP(t, s, cu, cp)
	_, err := third.Allocate()
	if got := turnCode(err); got != 486 {
		t.Fatalf("third allocation: err %v (code %d), want 486 Allocation Quota Reached", err, got)
	}
	// Another user is not affected, even with a second credential.
	du, dp := creds("dave")
	allocate(t, dialUDP(t, s, du, dp))
	// A fresh credential for carol counts against the same quota.
	cu2, cp2 := turncred.Credentials(testSecret, "carol", 20*time.Minute, time.Now())
	if _, err := dialUDP(t, s, cu2, cp2).Allocate(); turnCode(err) != 486 {
		t.Fatalf("carol with a second credential: err %v, want 486", err)
	}
	if got := s.Stats().RefusedQuota; got != 2 {
		t.Errorf("Stats.RefusedQuota = %d, want 2", got)
	}

	// Closing one of carol's allocations frees a slot.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "carol's allocation to close", func() bool { return s.Stats().Allocations == 2 })
	rc, err := third.Allocate()
	if err != nil {
		t.Fatalf("allocation after one closed: %v", err)
	}
	_ = rc.Close()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUserBandwidth: alice floods far above her budget while bob sends a
// modest stream through the same relay and UDP listener. Bob loses nothing,
// alice gets about her budget.
func TestUserBandwidth(t *testing.T) {
	const budget = 50_000
	s, _ := newTestServer(t, Config{AllowPeers: loopback, UserBandwidth: budget})
	au, ap := creds("alice")
	bu, bp := creds("bob")
	arc := allocate(t, dialUDP(t, s, au, ap))
	brc := allocate(t, dialUDP(t, s, bu, bp))
	aSink, bSink := newPeer(t, "127.0.0.2", false), newPeer(t, "127.0.0.3", false)

	// Warm up: permissions and channels in place, one packet each through.
	for _, w := range []struct {
		rc   net.PacketConn
		sink *udpPeer
	}{{arc, aSink}, {brc, bSink}} {
		if _, err := w.rc.WriteTo([]byte("warm"), w.sink.addr()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "warm-up packet", func() bool { return w.sink.bytes.Load() > 0 })
	}
	time.Sleep(100 * time.Millisecond)
	aStart, bStart := aSink.bytes.Load(), bSink.bytes.Load()

	const run = 2 * time.Second
	aPkt, bPkt := make([]byte, 1000), make([]byte, 200)
	var aSent, bSent int64
	tick := time.NewTicker(10 * time.Millisecond)
	start := time.Now()
	for time.Since(start) < run {
		<-tick.C
		for range 5 { // 500 KB/s: ten times the budget
			if n, err := arc.WriteTo(aPkt, aSink.addr()); err == nil {
				aSent += int64(n)
			}
		}
		if n, err := brc.WriteTo(bPkt, bSink.addr()); err == nil { // 20 KB/s
			bSent += int64(n)
		}
	}
	tick.Stop()
	elapsed := time.Since(start).Seconds()
	time.Sleep(200 * time.Millisecond)
	aGot, bGot := aSink.bytes.Load()-aStart, bSink.bytes.Load()-bStart

	t.Logf("alice sent %d, delivered %d (%.0f B/s); bob sent %d, delivered %d",
		aSent, aGot, float64(aGot)/elapsed, bSent, bGot)
	if float64(bGot) < 0.9*float64(bSent) {
		t.Errorf("bob delivered %d of %d bytes (< 90%%): alice's flood starved him", bGot, bSent)
	}
	// At most the rate for the run plus one second of burst (less the warm-up).
	if limit := 1.15 * budget * (elapsed + 1); float64(aGot) > limit {
		t.Errorf("alice delivered %d bytes in %.1fs, want <= %.0f", aGot, elapsed, limit)
	}
	if float64(aGot) < 0.5*budget*elapsed {
		t.Errorf("alice delivered %d bytes in %.1fs, want about %d/s", aGot, elapsed, budget)
	}
	if s.Stats().DroppedBandwidth == 0 {
		t.Error("Stats.DroppedBandwidth = 0")
	}
}

// echoThrough allocates on c, sends to an echo peer and expects the echo back.
func echoThrough(t *testing.T, c *turn.Client) {
	t.Helper()
	rc := allocate(t, c)
	peer := newPeer(t, "127.0.0.2", true)
	for range 20 {
		if _, err := rc.WriteTo([]byte("ping"), peer.addr()); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
		got, from, err := readWithin(rc, 200*time.Millisecond)
		if err != nil {
			continue
		}
		if string(got) != "ping" || from.String() != peer.addr().String() {
			t.Fatalf("got %q from %v, want ping from %v", got, from, peer.addr())
		}
		return
	}
	t.Fatal("no echo through the relay")
}

func TestTURNOverTCP(t *testing.T) {
	s, _ := newTestServer(t, Config{AllowPeers: loopback})
	_, tcp, _ := s.Addrs()
	conn, err := net.Dial("tcp", tcp.String())
	if err != nil {
		t.Fatal(err)
	}
	u, p := creds("alice")
	echoThrough(t, startClient(t, turn.NewSTUNConn(conn), tcp.String(), u, p))
	if got := s.Stats().Conns; got != 1 {
		t.Errorf("Stats.Conns = %d, want 1", got)
	}
}

func TestTURNOverTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newTestServer(t, Config{
		AllowPeers:  loopback,
		TLSListener: ln,
		TLSConfig:   &tls.Config{Certificates: []tls.Certificate{cert}},
	})
	_, _, tlsAddr := s.Addrs()
	conn, err := tls.Dial("tcp", tlsAddr.String(), &tls.Config{RootCAs: pool, ServerName: "relay.test"})
	if err != nil {
		t.Fatal(err)
	}
	u, p := creds("alice")
	echoThrough(t, startClient(t, turn.NewSTUNConn(conn), tlsAddr.String(), u, p))
}

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "relay.test"},
		DNSNames:     []string{"relay.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

func TestSTUNBinding(t *testing.T) {
	s, _ := newTestServer(t, Config{})
	r := newRaw(t, s)
	res := r.do(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if res.Type != stun.BindingSuccess {
		t.Fatalf("Binding: got %v", res.Type)
	}
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(res); err != nil {
		t.Fatalf("no XOR-MAPPED-ADDRESS: %v", err)
	}
	want := r.conn.LocalAddr().(*net.UDPAddr)
	if !xor.IP.Equal(want.IP) || xor.Port != want.Port {
		t.Errorf("XOR-MAPPED-ADDRESS = %v, want %v", xor, want)
	}
}

func TestConfigErrors(t *testing.T) {
	ok := Config{UDPAddr: "127.0.0.1:0", RelayIP: net.IPv4(127, 0, 0, 1), Secret: testSecret}
	tests := []struct {
		name string
		mut  func(*Config)
	}{
		{"no relay ip", func(c *Config) { c.RelayIP = nil }},
		{"unspecified relay ip", func(c *Config) { c.RelayIP = net.IPv4zero }},
		{"multicast relay ip", func(c *Config) { c.RelayIP = net.IPv4(224, 0, 0, 1) }},
		{"bind ip of other family", func(c *Config) { c.RelayBindIP = net.ParseIP("::1") }},
		{"no secret", func(c *Config) { c.Secret = nil }},
		{"short secret", func(c *Config) { c.Secret = []byte("0123456789abcde") }},
		{"no listener", func(c *Config) { c.UDPAddr = "" }},
		{"address and listener", func(c *Config) { c.PacketConn = &net.UDPConn{} }},
		{"tls without config", func(c *Config) { c.TLSAddr = "127.0.0.1:0" }},
		{"tls without certificate", func(c *Config) { c.TLSAddr = "127.0.0.1:0"; c.TLSConfig = &tls.Config{} }},
		{"invalid allow prefix", func(c *Config) { c.AllowPeers = []netip.Prefix{{}} }},
		{"long realm", func(c *Config) { c.Realm = strings.Repeat("r", 128) }},
		{"relay ip not local", func(c *Config) { c.RelayIP = net.IPv4(203, 0, 113, 1) }},
		{"negative grace", func(c *Config) { c.RefreshGrace = -time.Second }},
		{"grace too long", func(c *Config) { c.RefreshGrace = 25 * time.Hour }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ok
			tt.mut(&cfg)
			s, err := New(cfg)
			if err == nil {
				_ = s.Close()
				t.Fatal("New succeeded")
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("New: %v, want ErrInvalidConfig", err)
			}
		})
	}
	// A listen failure is reported and closes what was opened.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := ok
	cfg.TCPAddr = busy.Addr().String()
	if s, err := New(cfg); err == nil {
		_ = s.Close()
		t.Fatal("New on a busy port succeeded")
	}
}

// TestRelayBindIP: behind a 1:1 NAT allocations bind to the local address and
// are advertised at the public one.
func TestRelayBindIP(t *testing.T) {
	public := net.IPv4(203, 0, 113, 1)
	s, _ := newTestServer(t, Config{RelayIP: public, RelayBindIP: net.IPv4(127, 0, 0, 1)})
	u, p := creds("alice")
	rc := allocate(t, dialUDP(t, s, u, p))
	if got := rc.LocalAddr().(*net.UDPAddr).IP; !got.Equal(public) {
		t.Errorf("relayed address %v, want IP %v", rc.LocalAddr(), public)
	}
}

func TestAddrsUnconfiguredAreNil(t *testing.T) {
	s, err := New(Config{UDPAddr: "127.0.0.1:0", RelayIP: net.IPv4(127, 0, 0, 1), Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	udp, tcp, tlsA := s.Addrs()
	if udp == nil || tcp != nil || tlsA != nil {
		t.Errorf("Addrs() = %v, %v, %v; want udp, nil, nil", udp, tcp, tlsA)
	}
}

// TestCloseLeavesNoGoroutines runs a relay with every listener, a UDP and a
// TCP allocation and an idle TCP connection that never speaks, closes it with
// all of them still open, and checks that no goroutine is left behind.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()

	cert, _ := selfSigned(t)
	logs := &logBuffer{}
	s, err := New(Config{
		UDPAddr: "127.0.0.1:0", TCPAddr: "127.0.0.1:0", TLSAddr: "127.0.0.1:0",
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		RelayIP:   net.IPv4(127, 0, 0, 1), Secret: testSecret, AllowPeers: loopback,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	udp, tcp, _ := s.Addrs()
	u, p := creds("alice")

	var closers []func()
	newClient := func(conn net.PacketConn, server string) {
		c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: server, Conn: conn,
			Username: u, Password: p, Realm: DefaultRealm, LoggerFactory: quietPion})
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
	uconn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	newClient(uconn, udp.String())
	tconn, err := net.Dial("tcp", tcp.String())
	if err != nil {
		t.Fatal(err)
	}
	newClient(turn.NewSTUNConn(tconn), tcp.String())
	idle, err := net.Dial("tcp", tcp.String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	waitFor(t, "two allocations and two connections", func() bool {
		st := s.Stats()
		return st.Allocations == 2 && st.Conns == 2
	})

	start := time.Now()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	t.Logf("Close took %v", time.Since(start))
	if st := s.Stats(); st.Allocations != 0 || st.Conns != 0 || st.Users != 0 {
		t.Errorf("after Close: %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_ = idle.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := idle.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("idle connection still open after Close (read: %v)", err)
	}
	for _, c := range closers {
		c()
	}
	_ = idle.Close()

	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%d goroutines before New, %d after Close:\n%s\nrelay log:\n%s",
				before, runtime.NumGoroutine(), buf.String(), logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// testClock is a settable clock for Config.Now.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestRefreshGrace: once the credential has expired, an existing allocation
// can still add permissions within RefreshGrace, and no new allocation is made
// with it either way.
func TestRefreshGrace(t *testing.T) {
	tests := []struct {
		name     string
		grace    time.Duration
		wantCode int // of CreatePermission after expiry; 0: success
	}{
		{"no grace", 0, 400},
		{"an hour", time.Hour, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &testClock{t: time.Now()}
			s, _ := newTestServer(t, Config{Now: clock.Now, RefreshGrace: tt.grace, AllowPeers: loopback})
			u, p := turncred.Credentials(testSecret, "alice", time.Minute, clock.Now())
			rc := allocate(t, dialUDP(t, s, u, p))
			clock.Add(10 * time.Minute)

			peer := newPeer(t, "127.0.0.2", false)
			_, err := rc.WriteTo([]byte("x"), peer.addr())
			if got := turnCode(err); got != tt.wantCode || (tt.wantCode == 0 && err != nil) {
				t.Errorf("permission after expiry: err %v (code %d), want code %d", err, got, tt.wantCode)
			}
			if _, err := dialUDP(t, s, u, p).Allocate(); turnCode(err) != 400 {
				t.Errorf("new allocation with an expired credential: err %v, want 400", err)
			}
		})
	}
}

// TestSelfAddresses: which destinations count as the relay host itself (only
// allocation ports may be reached there).
func TestSelfAddresses(t *testing.T) {
	tests := []struct {
		name    string
		udpAddr string
		ip      string
		want    bool
	}{
		{"relay ip", "127.0.0.1:0", "127.0.0.1", true},
		{"unspecified v4", "127.0.0.1:0", "0.0.0.0", true},
		{"unspecified v6", "127.0.0.1:0", "::", true},
		{"other loopback, specific listeners", "127.0.0.1:0", "127.0.0.2", false},
		{"public peer", "127.0.0.1:0", "8.8.8.8", false},
		{"other loopback, wildcard listener", "0.0.0.0:0", "127.0.0.2", true},
		{"public peer, wildcard listener", "0.0.0.0:0", "8.8.8.8", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestServer(t, Config{UDPAddr: tt.udpAddr})
			if got := s.isSelf(netip.MustParseAddr(tt.ip)); got != tt.want {
				t.Errorf("isSelf(%s) = %v, want %v", tt.ip, got, tt.want)
			}
		})
	}
}
