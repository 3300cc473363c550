package login

import (
	"bytes"
	"crypto/ed25519"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/internal/nodeid"
	"github.com/parley/parley/wire/loginapi"
)

func listed(t *testing.T, e *env) map[string]ed25519.PublicKey {
	t.Helper()
	list, err := e.cl.Supernodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]ed25519.PublicKey{}
	for _, sn := range list {
		m[sn.Addr] = sn.Key
	}
	return m
}

// TestDialBackListing: an address is listed only after it answered the
// dial-back with the heartbeat's key.
func TestDialBackListing(t *testing.T) { eachStore(t, testDialBackListing) }

func testDialBackListing(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	other := newPriv(t)
	e.net.setKey("10.0.0.2:7000", other)
	e.net.setDown("10.0.0.3:7000", true)
	e.net.mu.Lock()
	e.net.names["10.0.0.4:7000"] = "10.0.0.99:7000"
	e.net.mu.Unlock()
	tests := []struct {
		name     string
		addr     string
		wantErr  error
		wantMsg  string
		wantHits int
	}{
		{"answers with the key", "ws://10.0.0.1:7000/v1/ws", nil, "", 1},
		{"answers with another key", "ws://10.0.0.2:7000/v1/ws", loginapi.ErrDialBack, "dial-back to ws://10.0.0.2:7000/v1/ws: the address answered with another node key", 1},
		{"does not answer", "ws://10.0.0.3:7000/v1/ws", loginapi.ErrDialBack, "dial-back to ws://10.0.0.3:7000/v1/ws: dial-back failed", 0},
		{"answers for another name", "ws://10.0.0.4:7000/v1/ws", loginapi.ErrDialBack, `answered as "10.0.0.99:7000"`, 1},
		{"unknown host", "ws://nowhere.example:7000/v1/ws", loginapi.ErrDialBack, "host nowhere.example not found", 0},
		{"a name", "ws://host.example:7000/v1/ws", nil, "", 1},
		{"over TLS", "wss://example.com:443/v1/ws", nil, "", 1},
	}
	var want []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.hb(tt.addr)
			if !errors.Is(err, tt.wantErr) || (err != nil && !strings.Contains(err.Error(), tt.wantMsg)) {
				t.Errorf("heartbeat: got %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
			var ae *loginapi.APIError
			if tt.wantErr != nil && (!errors.As(err, &ae) || ae.Status != 422) {
				t.Errorf("status: got %v, want 422", err)
			}
			hp, _, _ := nodeid.HostPort(tt.addr)
			if got := e.net.hitsFor(hp); got != tt.wantHits {
				t.Errorf("identify requests: got %d, want %d", got, tt.wantHits)
			}
			if tt.wantErr == nil {
				want = append(want, tt.addr)
			}
			var got []string
			for a, k := range listed(t, e) {
				if !k.Equal(pubOf(e.net.def)) {
					t.Errorf("%s listed with key %x", a, k)
				}
				got = append(got, a)
			}
			slices.Sort(got)
			w := slices.Sorted(slices.Values(want))
			if !slices.Equal(got, w) {
				t.Errorf("listed: got %v, want %v", got, w)
			}
		})
	}
}

// TestDialBackInterval: within DialBackInterval signed heartbeats refresh the
// entry without dialling back; after it the address is dialled again, and an
// entry whose re-check fails is no longer refreshed.
func TestDialBackInterval(t *testing.T) { eachStore(t, testDialBackInterval) }

func testDialBackInterval(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db, DialBackInterval: 2 * time.Minute})
	const addr, hp = "ws://10.0.0.1:7000/v1/ws", "10.0.0.1:7000"
	steps := []struct {
		advance  time.Duration
		down     bool
		wantErr  error
		wantHits int
		wantList bool
	}{
		{0, false, nil, 1, true},                                 // first: dial-back
		{20 * time.Second, false, nil, 1, true},                  // refreshes only
		{20 * time.Second, false, nil, 1, true},                  // 40 s
		{20 * time.Second, false, nil, 1, true},                  // 60 s
		{20 * time.Second, false, nil, 1, true},                  // 80 s
		{20 * time.Second, false, nil, 1, true},                  // 100 s
		{20 * time.Second, false, nil, 2, true},                  // 120 s: interval over, re-verified
		{20 * time.Second, false, nil, 2, true},                  // 140 s: counted from the re-check
		{20 * time.Second, false, nil, 2, true},                  // 160 s
		{20 * time.Second, false, nil, 2, true},                  // 180 s
		{20 * time.Second, false, nil, 2, true},                  // 200 s
		{20 * time.Second, false, nil, 2, true},                  // 220 s
		{20 * time.Second, true, loginapi.ErrDialBack, 2, true},  // 240 s: the re-check fails; listed until its TTL
		{10 * time.Second, true, loginapi.ErrDialBack, 2, false}, // 250 s: the refresh at 220 s is 30 s old
		{10 * time.Second, false, nil, 3, true},                  // back: re-verified
	}
	for i, st := range steps {
		e.clock.Advance(st.advance)
		e.net.setDown(hp, st.down)
		err := e.hb(addr)
		if !errors.Is(err, st.wantErr) {
			t.Fatalf("step %d: got %v, want %v", i, err, st.wantErr)
		}
		if got := e.net.hitsFor(hp); got != st.wantHits {
			t.Errorf("step %d: identify requests: got %d, want %d", i, got, st.wantHits)
		}
		if _, got := listed(t, e)[addr]; got != st.wantList {
			t.Errorf("step %d: listed: got %v, want %v", i, got, st.wantList)
		}
	}
}

// TestKeyChange: a heartbeat for a listed address with another key is
// dialled back, and replaces the key only if the address answers with it.
func TestKeyChange(t *testing.T) { eachStore(t, testKeyChange) }

func testKeyChange(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	const addr, hp = "ws://10.0.0.1:7000/v1/ws", "10.0.0.1:7000"
	a, b := e.net.def, newPriv(t)
	steps := []struct {
		name     string
		answers  ed25519.PrivateKey // the key the address answers with
		signer   ed25519.PrivateKey
		wantErr  error
		wantHits int
		wantKey  ed25519.PrivateKey // listed
	}{
		{"listed with a", a, a, nil, 1, a},
		{"b claims the address", a, b, loginapi.ErrDialBack, 2, a},
		{"a still refreshes", a, a, nil, 2, a},
		{"node moves to b", b, b, nil, 3, b},
		{"b refreshes", b, b, nil, 3, b},
		{"old key a refused", b, a, loginapi.ErrDialBack, 4, b},
	}
	for _, st := range steps {
		e.clock.Advance(time.Second)
		e.net.setKey(hp, st.answers)
		_, err := e.cl.Heartbeat(t.Context(), addr, st.signer)
		if !errors.Is(err, st.wantErr) {
			t.Fatalf("%s: got %v, want %v", st.name, err, st.wantErr)
		}
		if got := e.net.hitsFor(hp); got != st.wantHits {
			t.Errorf("%s: identify requests: got %d, want %d", st.name, got, st.wantHits)
		}
		if got := listed(t, e)[addr]; !got.Equal(pubOf(st.wantKey)) {
			t.Errorf("%s: listed key: got %x, want %x", st.name, got, pubOf(st.wantKey))
		}
	}
}

// TestSignedRequestsRefused: bad signatures, stale or future timestamps and
// replays are refused with 400 before any dial-back, and list nothing.
func TestSignedRequestsRefused(t *testing.T) { eachStore(t, testSignedRequestsRefused) }

func testSignedRequestsRefused(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	const addr = "ws://10.0.0.1:7000/v1/ws"
	now := e.clock.Now().Unix()
	skew := int64(identity.Skew / time.Second)
	k := e.net.def
	// Listed at now+5, so that heartbeats signed earlier are replays.
	if code, m, _ := call(t, e.h, "POST", "/api/v1/supernodes", "", signedBody(addr, k, now+5, loginapi.HeartbeatContext)); code != 200 {
		t.Fatalf("listing: %d %v", code, m)
	}
	const other = "ws://10.0.0.2:7000/v1/ws"
	forged := signedBody(other, k, now, loginapi.HeartbeatContext)
	forged["sig"] = signedBody(other, newPriv(t), now, loginapi.HeartbeatContext)["sig"]
	otherAddr := signedBody(other, k, now, loginapi.HeartbeatContext)
	otherAddr["addr"] = "ws://10.0.0.3:7000/v1/ws"
	otherTS := signedBody(other, k, now, loginapi.HeartbeatContext)
	otherTS["ts"] = now + 1
	tests := []struct {
		name    string
		method  string
		body    any
		want    int
		wantErr error // detail sentinel the message starts with
		msg     string
	}{
		{"signed by another key", "POST", forged, 400, loginapi.ErrBadSignature, ""},
		{"signed for another addr", "POST", otherAddr, 400, loginapi.ErrBadSignature, ""},
		{"signed for another ts", "POST", otherTS, 400, loginapi.ErrBadSignature, ""},
		{"leave signature on a heartbeat", "POST", signedBody(other, k, now, loginapi.LeaveContext), 400, loginapi.ErrBadSignature, ""},
		{"heartbeat signature on a leave", "DELETE", signedBody(addr, k, now+5, loginapi.HeartbeatContext), 400, loginapi.ErrBadSignature, ""},
		{"expired", "POST", signedBody(other, k, now-skew-1, loginapi.HeartbeatContext), 400, loginapi.ErrClockSkew, ""},
		{"from the future", "POST", signedBody(other, k, now+skew+1, loginapi.HeartbeatContext), 400, loginapi.ErrClockSkew, ""},
		{"expired leave", "DELETE", signedBody(addr, k, now-skew-1, loginapi.LeaveContext), 400, loginapi.ErrClockSkew, ""},
		{"replayed", "POST", signedBody(addr, k, now+4, loginapi.HeartbeatContext), 400, loginapi.ErrReplayed, ""},
		{"replayed leave", "DELETE", signedBody(addr, k, now, loginapi.LeaveContext), 400, loginapi.ErrReplayed, ""},
		{"key not base64", "POST", map[string]any{"addr": other, "key": "!!", "ts": now, "sig": forged["sig"]}, 400, nil, "key must be a 32-byte Ed25519 key"},
		{"short sig", "POST", map[string]any{"addr": other, "key": forged["key"], "ts": now, "sig": b64([]byte("x"))}, 400, nil, "sig must be a 64-byte"},
		{"ts a string", "POST", `{"addr":"ws://10.0.0.2:7000/","ts":"1"}`, 400, nil, `field "ts" must be an integer, not string`},
		{"no key", "POST", map[string]any{"addr": other}, 400, nil, "key must be"},
		{"same ts again is fine", "POST", signedBody(addr, k, now+5, loginapi.HeartbeatContext), 200, nil, ""},
		{"within skew", "POST", signedBody(addr, k, now+skew, loginapi.HeartbeatContext), 200, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, m, _ := call(t, e.h, tt.method, "/api/v1/supernodes", "", tt.body)
			msg, _ := m["error"].(string)
			if code != tt.want || (tt.wantErr != nil && !strings.HasPrefix(msg, tt.wantErr.Error())) || !strings.Contains(msg, tt.msg) {
				t.Fatalf("got %d %q, want %d %v %q", code, msg, tt.want, tt.wantErr, tt.msg)
			}
		})
	}
	if got := e.net.totalHits(); got != 1 {
		t.Errorf("identify requests: got %d, want 1 (refused requests never dial back)", got)
	}
	if got := slices.Sorted(maps.Keys(listed(t, e))); !slices.Equal(got, []string{addr}) {
		t.Errorf("listed: got %v, want only %s", got, addr)
	}
	// The client names the detail sentinels.
	e.cl = e.cl.WithClock(func() time.Time { return e.clock.Now().Add(2 * identity.Skew) })
	if err := e.hb(addr); !errors.Is(err, loginapi.ErrBadRequest) || !errors.Is(err, loginapi.ErrClockSkew) {
		t.Errorf("client with a fast clock: got %v, want ErrBadRequest and ErrClockSkew", err)
	}
	e.cl = e.cl.WithClock(func() time.Time { return e.clock.Now().Add(-time.Second) })
	if err := e.hb(addr); !errors.Is(err, loginapi.ErrReplayed) {
		t.Errorf("client behind the last ts: got %v, want ErrReplayed", err)
	}
	if _, err := e.cl.Heartbeat(t.Context(), addr, ed25519.PrivateKey("short")); !errors.Is(err, loginapi.ErrBadRequest) {
		t.Errorf("short key: got %v, want ErrBadRequest", err)
	}
}

// TestLeave: a signed leave removes the entry when the key matches.
func TestLeave(t *testing.T) { eachStore(t, testLeave) }

func testLeave(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	ctx := t.Context()
	const addr = "ws://10.0.0.1:7000/v1/ws"
	if err := e.hb(addr); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name       string
		key        ed25519.PrivateKey
		wantErr    error
		wantListed bool
	}{
		{"another key", newPriv(t), loginapi.ErrKeyMismatch, true},
		{"the listed key", e.net.def, nil, false},
		{"not listed any more", e.net.def, nil, false},
		{"never listed, another key", newPriv(t), nil, false},
	}
	for _, st := range steps {
		e.clock.Advance(time.Second)
		err := e.cl.Leave(ctx, addr, st.key)
		if !errors.Is(err, st.wantErr) {
			t.Fatalf("%s: got %v, want %v", st.name, err, st.wantErr)
		}
		if _, got := listed(t, e)[addr]; got != st.wantListed {
			t.Errorf("%s: listed: got %v, want %v", st.name, got, st.wantListed)
		}
	}
	var ae *loginapi.APIError
	e.hb(addr)
	if err := e.cl.Leave(ctx, addr, newPriv(t)); !errors.As(err, &ae) || ae.Status != 403 ||
		ae.Message != "supernode is listed with another key: "+addr {
		t.Errorf("mismatch answer: %v", err)
	}
	code, m, _ := call(t, e.h, "DELETE", "/api/v1/supernodes", "", signedBody(addr, e.net.def, e.clock.Now().Unix(), loginapi.LeaveContext))
	if code != 200 || m["removed"] != true {
		t.Errorf("leave answer: %d %v, want 200 removed", code, m)
	}
	// Coming back after a leave needs a new dial-back.
	hits := e.net.totalHits()
	if err := e.hb(addr); err != nil {
		t.Fatal(err)
	}
	if got := e.net.totalHits(); got != hits+1 {
		t.Errorf("identify requests after leave: got %d, want %d", got, hits+1)
	}
}

// TestDialBackDenyList: without DialBackAllow the server will not dial
// loopback, private and other special-purpose addresses, whether written as
// IP literals or behind a name, and it connects only to the IPs it checked.
func TestDialBackDenyList(t *testing.T) {
	// Real sockets: a supernode answering on 127.0.0.1.
	node := newPriv(t)
	hs := httptest.NewUnstartedServer(nil)
	hs.Config.Handler = nodeid.Handler(hs.Listener.Addr().String(), node)
	hs.Start()
	t.Cleanup(hs.Close)
	addr := "ws://" + hs.Listener.Addr().String() + "/v1/ws"
	for _, tt := range []struct {
		name    string
		allow   []netip.Prefix
		wantErr error
	}{
		{"default refuses loopback", nil, loginapi.ErrDialBackDenied},
		{"lab range allowed", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, nil},
		{"other lab range", []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}, loginapi.ErrDialBackDenied},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnvNet(t, Config{DialBackAllow: tt.allow})
			_, err := e.cl.Heartbeat(t.Context(), addr, node)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			var ae *loginapi.APIError
			if err != nil && (!errors.As(err, &ae) || ae.Status != 403 || !strings.Contains(err.Error(), "DialBackAllow")) {
				t.Errorf("answer: %v, want 403 naming DialBackAllow", err)
			}
			if _, got := listed(t, e)[addr]; got != (tt.wantErr == nil) {
				t.Errorf("listed: got %v", got)
			}
		})
	}

	// The fake network, admitting only labAllow: every other special range is
	// refused before any connection.
	e := newEnv(t, Config{})
	e.net.mu.Lock()
	e.net.hosts["loop.example"] = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	e.net.hosts["mixed.example"] = []netip.Addr{netip.MustParseAddr("10.0.0.5"), netip.MustParseAddr("192.168.1.1")}
	e.net.hosts["rebind.example"] = []netip.Addr{netip.MustParseAddr("10.0.0.9")}
	e.net.mu.Unlock()
	for _, a := range []string{
		"ws://127.0.0.1:7000/", "ws://[::1]:7000/", "ws://[::ffff:127.0.0.1]:7000/", "ws://169.254.169.254:80/",
		"ws://192.168.1.1:7000/", "ws://172.16.0.1:7000/", "ws://0.0.0.0:7000/", "ws://[fe80::1]:7000/",
		"ws://[fc00::1]:7000/", "ws://224.0.0.1:7000/", "ws://loop.example:7000/", "ws://mixed.example:7000/",
	} {
		if err := e.hb(a); !errors.Is(err, loginapi.ErrDialBackDenied) {
			t.Errorf("%s: got %v, want ErrDialBackDenied", a, err)
		}
	}
	if d := e.net.dialled(); len(d) != 0 {
		t.Errorf("dialled %v, want nothing", d)
	}
	// A name is resolved once and the connection goes to the checked IP.
	if err := e.hb("ws://rebind.example:7000/v1/ws"); err != nil {
		t.Fatal(err)
	}
	if d := e.net.dialled(); !slices.Equal(d, []string{"10.0.0.9:7000"}) {
		t.Errorf("dialled %v, want [10.0.0.9:7000]", d)
	}
	if got := e.net.hitsFor("rebind.example:7000"); got != 1 {
		t.Errorf("identify requests for the name: got %d, want 1", got)
	}
}

// TestDialBackRateLimit: dial-backs are limited per client address; refreshes
// of verified entries are not.
func TestDialBackRateLimit(t *testing.T) {
	e := newEnv(t, Config{MaxDialBacksPerAddr: 3, DialBackWindow: time.Minute})
	e.net.setDown("10.0.9.9:7000", true)
	down := "ws://10.0.9.9:7000/"
	now := func() int64 { return e.clock.Now().Unix() }
	steps := []struct {
		name string
		from string
		addr string
		want int
	}{
		{"1st", "192.0.2.1:1000", "ws://10.0.0.1:7000/", 200},
		{"2nd fails", "192.0.2.1:1000", down, 422},
		{"3rd fails", "192.0.2.1:1000", down, 422},
		{"4th limited", "192.0.2.1:1001", down, 429},
		{"limited even for a good one", "192.0.2.1:1000", "ws://10.0.0.2:7000/", 429},
		{"refresh needs no dial-back", "192.0.2.1:1000", "ws://10.0.0.1:7000/", 200},
		{"other source", "192.0.2.2:1000", "ws://10.0.0.2:7000/", 200},
	}
	for _, st := range steps {
		code, m, h := call(t, e.h, "POST", "/api/v1/supernodes", st.from, signedBody(st.addr, e.net.def, now(), loginapi.HeartbeatContext))
		if code != st.want {
			t.Fatalf("%s: got %d %v, want %d", st.name, code, m, st.want)
		}
		if code == 429 && (h.Get("Retry-After") != "60" || m["retry_after"] != 60.0 ||
			!strings.HasPrefix(m["error"].(string), "too many dial-backs from this address, try again in 60 s")) {
			t.Errorf("%s: answer %v %v", st.name, h, m)
		}
	}
	if got := e.net.hitsFor("10.0.0.2:7000"); got != 1 {
		t.Errorf("identify requests to the limited good one: got %d, want 1 (only from the other source)", got)
	}
	dials := len(e.net.dialled())
	if dials != 4 {
		t.Errorf("connections: got %d, want 4", dials)
	}
	// The window slides.
	e.clock.Advance(time.Minute)
	code, m, _ := call(t, e.h, "POST", "/api/v1/supernodes", "192.0.2.1:1000", signedBody("ws://10.0.0.3:7000/", e.net.def, now(), loginapi.HeartbeatContext))
	if code != 200 {
		t.Errorf("after the window: %d %v", code, m)
	}
	// The client maps 429 to ErrDialBackLimited with RetryAfter.
	var err error
	for i := range 4 {
		err = e.hb(fmt.Sprintf("ws://10.0.1.%d:7000/", i))
	}
	var ae *loginapi.APIError
	if !errors.Is(err, loginapi.ErrDialBackLimited) || !errors.As(err, &ae) || ae.RetryAfter != time.Minute {
		t.Errorf("client: got %v, want ErrDialBackLimited with RetryAfter 1m", err)
	}
	if errors.Is(err, loginapi.ErrRateLimited) {
		t.Errorf("client: %v is not a failed-login limit", err)
	}
}

func TestSupernodeMessage(t *testing.T) {
	key := pubOf(newPriv(t))
	tests := []struct {
		addr string
		ts   int64
	}{
		{"ws://10.0.0.1:7000/v1/ws", 1_800_000_000},
		{"", 0},
		{"ws://x:1/", -1},
	}
	for _, tt := range tests {
		got := loginapi.SupernodeMessage(tt.addr, key, tt.ts)
		want := append(append(append([]byte(tt.addr), 0), key...), binary.BigEndian.AppendUint64(nil, uint64(tt.ts))...)
		if !bytes.Equal(got, want) {
			t.Errorf("%q %d: got %x, want %x", tt.addr, tt.ts, got, want)
		}
	}
	// Distinct (addr, ts) pairs give distinct messages.
	a := loginapi.SupernodeMessage("ws://a:1/", key, 1)
	b := loginapi.SupernodeMessage("ws://a:1/\x00", key, 1)
	if bytes.Equal(a, b) {
		t.Error("ambiguous message")
	}
}

// TestMigrationFromV1: a version-1 database (supernodes without keys) is
// migrated; its unverified entries are dropped.
func TestMigrationFromV1(t *testing.T) { eachStore(t, testMigrationFromV1) }

func testMigrationFromV1(t *testing.T, db string) {
	dir := t.TempDir()
	var raw *sql.DB
	var err error
	pg := db != ""
	if pg {
		raw, err = sql.Open("pgx", db)
	} else {
		raw, err = sql.Open("sqlite", filepath.Join(dir, "login.db"))
	}
	if err != nil {
		t.Fatal(err)
	}
	stmts := append([]string{`CREATE TABLE schema_version (version INTEGER NOT NULL)`, `INSERT INTO schema_version (version) VALUES (1)`},
		migrations()[1]...)
	stmts = append(stmts, `INSERT INTO supernodes (addr, last_seen) VALUES ('ws://10.0.0.1:7000/', 1)`)
	for _, q := range stmts {
		if pg {
			q = strings.NewReplacer("INTEGER", "BIGINT", "BLOB", "BYTEA").Replace(q)
		}
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	e := newEnv(t, Config{DB: db, DataDir: dir})
	var n, v int
	st := e.srv.st.(*sqlStore)
	if err := st.db.QueryRow(`SELECT COUNT(*) FROM supernodes`).Scan(&n); err != nil || n != 0 {
		t.Errorf("unverified entries kept: %d, %v", n, err)
	}
	if err := st.db.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil || v != len(migrations())-1 {
		t.Errorf("schema version %d, %v", v, err)
	}
	if err := e.hb("ws://10.0.0.1:7000/"); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, e); !got["ws://10.0.0.1:7000/"].Equal(pubOf(e.net.def)) {
		t.Errorf("listed: %v", got)
	}
}
