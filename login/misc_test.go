package login

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/wire/loginapi"
)

func decodeJSON(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}

func newStaticServer(t *testing.T, status int, body string) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

func TestArgon2Defaults(t *testing.T) {
	p := Argon2Params{}.withDefaults()
	if want := (Argon2Params{Time: 2, Memory: 19456, Threads: 1, SaltLen: 16, KeyLen: 32}); p != want {
		t.Fatalf("defaults: got %+v, want %+v", p, want)
	}
	h, err := hashPassword("correct horse", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("PHC string %q", h)
	}
	got, salt, key, err := parseHash(h)
	if err != nil || got != p || len(salt) != 16 || len(key) != 32 {
		t.Fatalf("parse: %+v salt %d key %d err %v", got, len(salt), len(key), err)
	}
	for _, tt := range []struct {
		pw     string
		ok     bool
		rehash bool
		want   Argon2Params
	}{
		{"correct horse", true, false, p},
		{"correct horsf", false, false, p},
		{"", false, false, p},
		{"correct horse", true, true, cheapArgon.withDefaults()},
	} {
		ok, rehash, err := verifyPassword(tt.pw, h, tt.want)
		if err != nil || ok != tt.ok || rehash != tt.rehash {
			t.Errorf("verify(%q): got %v %v %v, want %v %v", tt.pw, ok, rehash, err, tt.ok, tt.rehash)
		}
	}
	// Two hashes of one password differ (random salt).
	h2, _ := hashPassword("correct horse", p)
	if h2 == h {
		t.Errorf("salt not random")
	}
}

func TestParseHashRejects(t *testing.T) {
	good, err := hashPassword("password1", cheapArgon.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$")
	salt, key := parts[4], parts[5]
	tests := []string{
		"",
		"plain",
		"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1,x=2$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=4,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=99999999999,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=300$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "=$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + key, // 4-byte salt
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key[:8],
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$",
	}
	for _, h := range tests {
		if _, _, _, err := parseHash(h); !errors.Is(err, ErrBadHash) {
			t.Errorf("parseHash(%q): got %v, want ErrBadHash", h, err)
		}
		if _, _, err := verifyPassword("password1", h, cheapArgon); !errors.Is(err, ErrBadHash) {
			t.Errorf("verifyPassword(%q): got %v, want ErrBadHash", h, err)
		}
	}
	if _, _, _, err := parseHash(good); err != nil {
		t.Errorf("good hash: %v", err)
	}
}

func TestRehashOnLogin(t *testing.T) { eachStore(t, testRehashOnLogin) }

func testRehashOnLogin(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	ctx := t.Context()
	if err := e.cl.Register(ctx, "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	stronger := Argon2Params{Time: 2, Memory: 128, Threads: 1}
	e.cfg.Argon2 = stronger
	e.restart()
	if _, err := e.cl.Login(ctx, "alice", "password1", newKey(t)); err != nil {
		t.Fatal(err)
	}
	h, err := e.srv.st.passwordHash(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if p, _, _, err := parseHash(h); err != nil || p != stronger.withDefaults() {
		t.Errorf("after login: params %+v, %v; want %+v", p, err, stronger.withDefaults())
	}
	if _, err := e.cl.Login(ctx, "alice", "password1", newKey(t)); err != nil {
		t.Errorf("login with the rehashed password: %v", err)
	}
}

func TestClientAddr(t *testing.T) {
	tests := []struct{ remote, want string }{
		{"192.0.2.1:1234", "192.0.2.1"},
		{"[::ffff:192.0.2.1]:1234", "192.0.2.1"},
		{"[2001:db8:1:2:3:4:5:6]:1", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:1", "fe80::/64"},
		{"@", "@"},
		{"", ""},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		if got := peerAddr(r); got != tt.want {
			t.Errorf("peerAddr(%q): got %q, want %q", tt.remote, got, tt.want)
		}
	}
}

// TestClientAddrBehindTrustedProxy: only a trusted front end's
// X-Forwarded-For counts, and only the address it appended (the last).
func TestClientAddrBehindTrustedProxy(t *testing.T) {
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	tests := []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"trusted front end", "10.1.2.3:5000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"client forged a hop", "10.1.2.3:5000", []string{"203.0.113.9, 198.51.100.7"}, "198.51.100.7"},
		{"several headers", "10.1.2.3:5000", []string{"203.0.113.9", "198.51.100.7"}, "198.51.100.7"},
		{"IPv6 client grouped", "10.1.2.3:5000", []string{"2001:db8:1:2::99"}, "2001:db8:1:2::/64"},
		{"mapped IPv4", "10.1.2.3:5000", []string{"::ffff:198.51.100.7"}, "198.51.100.7"},
		{"garbage header", "10.1.2.3:5000", []string{"not an address"}, "10.1.2.3"},
		{"no header", "10.1.2.3:5000", nil, "10.1.2.3"},
		{"untrusted peer", "192.0.2.1:5000", []string{"198.51.100.7"}, "192.0.2.1"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		for _, v := range tt.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := s.clientAddr(r); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestLimiter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	// 4 per address, 2 per (address, user), ceiling 3 per user.
	l := newFailureLimiter(time.Minute, 4, 2, 3)
	steps := []struct {
		at       time.Duration
		user     string
		addr     string
		outcome  string // fail (default), ok, abandon
		wantWait time.Duration
	}{
		{0, "a", "x", "", 0},
		{10 * time.Second, "a", "x", "", 0},
		{20 * time.Second, "a", "x", "", 40 * time.Second}, // (x, a) limited until t0+60
		{20 * time.Second, "a", "y", "", 0},                // another address: clean for a
		{21 * time.Second, "a", "y", "", 39 * time.Second}, // a's ceiling binds y, which failed for a
		{21 * time.Second, "a", "z", "ok", 0},              // ...but not z, which did not
		{22 * time.Second, "b", "x", "", 0},
		{23 * time.Second, "c", "x", "", 0},                // x now has 4
		{24 * time.Second, "d", "x", "", 36 * time.Second}, // x limited until t0+60, whatever the user
		{60 * time.Second, "d", "x", "abandon", 0},         // first of x expired; taken back
		{61 * time.Second, "a", "x", "ok", 0},              // (x, a) has one left; success clears it
		{61 * time.Second, "e", "v", "", 0},
		{62 * time.Second, "e", "v", "ok", 0}, // clears (v, e): its failure at 61 s is gone
		{63 * time.Second, "e", "v", "", 0},
		{64 * time.Second, "e", "v", "", 0},
		{65 * time.Second, "e", "v", "", 58 * time.Second},
	}
	for i, s := range steps {
		at := t0.Add(s.at)
		got := l.begin(s.user, s.addr, at)
		if got != s.wantWait {
			t.Fatalf("step %d: wait got %v, want %v", i, got, s.wantWait)
		}
		switch s.outcome {
		case "ok":
			l.succeeded(s.user, s.addr, at)
		case "abandon":
			l.abandon(s.user, s.addr, at)
		}
	}
	l.prune(t0.Add(10 * time.Minute))
	if a, p, u := l.size(); a != 0 || p != 0 || u != 0 {
		t.Errorf("after prune: %d addrs %d pairs %d users, want 0 0 0", a, p, u)
	}
	for _, tt := range []struct {
		d    time.Duration
		want int64
	}{{time.Nanosecond, 1}, {time.Second, 1}, {time.Second + 1, 2}, {50 * time.Second, 50}} {
		if got := retrySeconds(tt.d); got != tt.want {
			t.Errorf("retrySeconds(%v): got %d, want %d", tt.d, got, tt.want)
		}
	}
}

func TestInternalErrors(t *testing.T) {
	logger, logs := captureLogs()
	e := newEnv(t, Config{Logger: logger, MaxFailuresPerAddrUser: 1})
	ctx := t.Context()
	if err := e.cl.Register(ctx, "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	// A corrupt stored hash is a server error, not a failed login, and does
	// not count toward the limit.
	db := e.srv.st.(*sqlStore).db
	if _, err := db.Exec(`UPDATE users SET pass_hash = 'garbage' WHERE name = 'alice'`); err != nil {
		t.Fatal(err)
	}
	pub := newKey(t)
	for range 2 {
		_, err := e.cl.Login(ctx, "alice", "password1", pub)
		if !errors.Is(err, loginapi.ErrServer) || !strings.Contains(err.Error(), "internal error (HTTP 500)") {
			t.Fatalf("corrupt hash: got %v, want ErrServer with internal error", err)
		}
	}
	if !strings.Contains(logs.String(), "malformed password hash") {
		t.Errorf("server error not logged:\n%s", logs)
	}
	// A broken database answers 500 with a JSON error everywhere.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		method, path string
		body         any
	}{
		{"POST", "/api/v1/register", map[string]string{"user": "bob", "password": "password1"}},
		{"POST", "/api/v1/login", map[string]string{"user": "alice", "password": "password1", "public_key": b64(pub)}},
		{"POST", "/api/v1/refresh", map[string]string{"user": "alice", "refresh_token": strings.Repeat("A", 43), "public_key": b64(pub)}},
		{"POST", "/api/v1/password", map[string]string{"user": "alice", "password": "password1", "new_password": "password2"}},
		{"POST", "/api/v1/supernodes", signedBody("ws://10.0.0.1:1/", e.net.def, e.clock.Now().Unix(), loginapi.HeartbeatContext)},
		{"DELETE", "/api/v1/supernodes", signedBody("ws://10.0.0.1:1/", e.net.def, e.clock.Now().Unix(), loginapi.LeaveContext)},
		{"GET", "/api/v1/supernodes", nil},
		{"GET", "/api/v1/users/alice", nil},
	} {
		code, m, _ := call(t, e.h, r.method, r.path, "", r.body)
		if code != 500 || m["error"] != "internal error" {
			t.Errorf("%s %s: got %d %v, want 500 internal error", r.method, r.path, code, m)
		}
	}
}

// Identical log records beyond 10 a minute are counted, not written, and
// the count is reported when the server closes.
func TestRepeatedLogRecordsAreThrottled(t *testing.T) {
	var buf bytes.Buffer
	dir := t.TempDir()
	s, err := New(Config{DataDir: dir, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		s.log.Warn("store unreachable")
	}
	s.Close()
	got := strings.Count(buf.String(), "store unreachable")
	if got != 11 || !strings.Contains(buf.String(), "suppressed=990") {
		t.Errorf("%d records of 1,000 written, want 10 and one count of 990:\n%s", got, buf.String())
	}
}
