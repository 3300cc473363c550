package login

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/wire/loginapi"
)

// TestLockoutNotWeaponisable: wrong passwords from an attacker's address
// limit that address, never the victim's correct password from an address
// that did not fail; refresh is never affected.
func TestLockoutNotWeaponisable(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := t.Context()
	if err := e.cl.Register(ctx, "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	pub := newKey(t)
	first, err := e.cl.Login(ctx, "alice", "password1", pub)
	if err != nil {
		t.Fatal(err)
	}
	login := func(pw, remote string) (int, map[string]any, http.Header) {
		return call(t, e.h, "POST", "/api/v1/login", remote, map[string]string{"user": "alice", "password": pw, "public_key": b64(pub)})
	}
	const attacker = "192.0.2.66:4000"
	// The attacker guesses: its address is limited after a few guesses.
	limited := 0
	for i := range 10 {
		code, m, h := login(fmt.Sprintf("guess-%d!", i), attacker)
		switch code {
		case 401:
		case 429:
			limited++
			if h.Get("Retry-After") == "" || m["retry_after"] == nil {
				t.Errorf("429 without Retry-After: %v %v", m, h)
			}
		default:
			t.Fatalf("guess %d: got %d %v", i, code, m)
		}
	}
	if limited == 0 {
		t.Errorf("10 wrong guesses from one address: never limited")
	}
	if code, m, _ := login("password1", attacker); code != 429 {
		t.Errorf("right password from the limited attacker address: got %d %v, want 429", code, m)
	}
	// The victim, from an address that did not fail, gets in.
	if code, m, _ := login("password1", "198.51.100.7:5000"); code != 200 {
		t.Errorf("right password from a clean address: got %d %v, want 200", code, m)
	}
	// Refresh ignores password failures, from any address.
	for _, remote := range []string{attacker, "203.0.113.5:1"} {
		code, m, _ := call(t, e.h, "POST", "/api/v1/refresh", remote, map[string]string{
			"user": "alice", "refresh_token": first.RefreshToken, "public_key": b64(pub)})
		if code != 200 {
			t.Errorf("refresh from %s after the guessing: got %d %v, want 200", remote, code, m)
		}
	}
}

// TestRegistrationLimited: registrations from one address are limited, and
// refused before any password hashing.
func TestRegistrationLimited(t *testing.T) {
	e := newEnv(t, Config{MaxRegistrationsPerAddr: DefaultMaxRegistrationsPerAddr, MaxRegistrationsPerMinute: DefaultMaxRegistrationsPerMinute})
	const remote = "192.0.2.44:1000"
	created, limited := 0, 0
	for i := range 30 {
		start := time.Now()
		hashes := e.srv.hashes.Load()
		code, m, h := call(t, e.h, "POST", "/api/v1/register", remote, map[string]string{"user": fmt.Sprintf("user%d", i), "password": "password1"})
		switch code {
		case 201:
			created++
		case 429:
			limited++
			if n := e.srv.hashes.Load() - hashes; n != 0 {
				t.Errorf("refused registration ran %d password hashes", n)
			}
			if h.Get("Retry-After") == "" || m["retry_after"] == nil || !strings.Contains(m["error"].(string), "registrations") {
				t.Errorf("429 answer: %v %v", m, h)
			}
			if d := time.Since(start); d > 50*time.Millisecond {
				t.Errorf("refusal took %v", d)
			}
		default:
			t.Fatalf("register %d: got %d %v", i, code, m)
		}
	}
	if created > 5 || limited < 25 {
		t.Errorf("30 registrations from one address: %d created, %d limited; want at most 5 created", created, limited)
	}
	// Another address is not affected.
	if code, m, _ := call(t, e.h, "POST", "/api/v1/register", "198.51.100.1:1", map[string]string{"user": "other", "password": "password1"}); code != 201 {
		t.Errorf("register from another address: %d %v", code, m)
	}
	// A taken name counts too.
	for i := range 5 {
		code, m, _ := call(t, e.h, "POST", "/api/v1/register", "198.51.100.2:1", map[string]string{"user": "other", "password": "password1"})
		if code != 409 {
			t.Fatalf("taken name %d: %d %v", i, code, m)
		}
	}
	if code, m, _ := call(t, e.h, "POST", "/api/v1/register", "198.51.100.2:1", map[string]string{"user": "free", "password": "password1"}); code != 429 {
		t.Errorf("after 5 taken names: %d %v, want 429", code, m)
	}
	// After the window, the address may register again.
	e.clock.Advance(DefaultRegistrationWindow)
	if code, m, _ := call(t, e.h, "POST", "/api/v1/register", remote, map[string]string{"user": "later", "password": "password1"}); code != 201 {
		t.Errorf("after the window: %d %v", code, m)
	}
}

// TestRegistrationGlobalLimit: registrations from all addresses together
// are capped per minute.
func TestRegistrationGlobalLimit(t *testing.T) {
	e := newEnv(t, Config{MaxRegistrationsPerAddr: 100, MaxRegistrationsPerMinute: 3})
	for i := range 3 {
		if code, m, _ := call(t, e.h, "POST", "/api/v1/register", fmt.Sprintf("192.0.2.%d:1", i+1), map[string]string{"user": fmt.Sprintf("u%d", i), "password": "password1"}); code != 201 {
			t.Fatalf("register %d: %d %v", i, code, m)
		}
	}
	hashes := e.srv.hashes.Load()
	code, m, h := call(t, e.h, "POST", "/api/v1/register", "192.0.2.9:1", map[string]string{"user": "u9", "password": "password1"})
	if code != 429 || h.Get("Retry-After") != "60" || e.srv.hashes.Load() != hashes {
		t.Errorf("fourth in a minute: %d %v %v (hashes %d)", code, m, h, e.srv.hashes.Load()-hashes)
	}
	// The refusal did not use up the address's own allowance.
	e.clock.Advance(time.Minute)
	if code, m, _ := call(t, e.h, "POST", "/api/v1/register", "192.0.2.9:1", map[string]string{"user": "u9", "password": "password1"}); code != 201 {
		t.Errorf("a minute later: %d %v", code, m)
	}
	// The client maps the 429.
	e.clock.Advance(time.Minute)
	for i := range 3 {
		e.cl.Register(t.Context(), fmt.Sprintf("c%d", i), "password1")
	}
	err := e.cl.Register(t.Context(), "c9", "password1")
	var ae *loginapi.APIError
	if !errors.Is(err, loginapi.ErrRateLimited) || !errors.As(err, &ae) || ae.RetryAfter <= 0 || !strings.Contains(err.Error(), "too many registrations") {
		t.Errorf("client: %v", err)
	}
}

// TestLoginDoesNotRevealNames: an unknown user answers exactly like a wrong
// password, and name lookups are rate limited per address.
func TestLoginDoesNotRevealNames(t *testing.T) {
	e := newEnv(t, Config{})
	if err := e.cl.Register(t.Context(), "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	pub := newKey(t)
	for _, path := range []string{"/api/v1/login", "/api/v1/password"} {
		body := func(user string) map[string]string {
			return map[string]string{"user": user, "password": "not-it-123", "new_password": "password2", "public_key": b64(pub)}
		}
		h0 := e.srv.hashes.Load()
		c1, m1, hdr1 := call(t, e.h, "POST", path, "192.0.2.1:1", body("alice"))
		h1 := e.srv.hashes.Load()
		c2, m2, hdr2 := call(t, e.h, "POST", path, "192.0.2.2:1", body("nobody"))
		h2 := e.srv.hashes.Load()
		if c1 != c2 || fmt.Sprint(m1) != fmt.Sprint(m2) || fmt.Sprint(hdr1) != fmt.Sprint(hdr2) {
			t.Errorf("%s: wrong password %d %v %v, unknown user %d %v %v: want the same answer", path, c1, m1, hdr1, c2, m2, hdr2)
		}
		// The same work: one argon2 verification each.
		if h1-h0 != 1 || h2-h1 != 1 {
			t.Errorf("%s: hashes for a wrong password %d, for an unknown user %d; want 1 and 1", path, h1-h0, h2-h1)
		}
		// And the same limits: the sixth attempt from one address is 429
		// whether the name exists or not.
		for _, u := range []struct{ user, remote string }{{"alice", "192.0.2.3:1"}, {"nobody", "192.0.2.4:1"}} {
			codes := []int{}
			for range 6 {
				code, _, _ := call(t, e.h, "POST", path, u.remote, body(u.user))
				codes = append(codes, code)
			}
			if fmt.Sprint(codes) != "[401 401 401 401 401 429]" {
				t.Errorf("%s: %s: %v", path, u.user, codes)
			}
		}
		e.clock.Advance(DefaultFailureWindow)
	}
	limited := false
	for i := range 100 {
		code, m, h := call(t, e.h, "GET", fmt.Sprintf("/api/v1/users/name%d", i), "192.0.2.9:1", nil)
		if code == 429 {
			limited = true
			if h.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After: %v", m)
			}
			break
		}
		if code != 404 {
			t.Fatalf("lookup %d: %d %v", i, code, m)
		}
	}
	if !limited {
		t.Errorf("100 name lookups from one address: never limited")
	}
}

// TestDuplicateKeysRefused: a body with a duplicate key, at any depth, is
// refused with 400 rather than the last one silently winning.
func TestDuplicateKeysRefused(t *testing.T) {
	e := newEnv(t, Config{})
	d := e.device("alice")
	for _, tt := range []struct {
		name, method, path, auth, body string
	}{
		{"top level", "POST", "/api/v1/register", "", `{"user":"bob","password":"password1","user":"mallory"}`},
		{"escaped spelling", "POST", "/api/v1/register", "", `{"user":"bob","password":"password1","\u0075ser":"mallory"}`},
		{"other case", "POST", "/api/v1/login", "", `{"user":"alice","USER":"bob","password":"password1","public_key":"` + b64(d.key()) + `"}`},
		{"nested", "POST", "/api/v1/mailbox", d.cred, `{"items":[{"to_user":"alice","to_device":"` + b64(d.key()) +
			`","id":"m1","blob":{"ct":"AAAA"},"to_user":"bob"}]}`},
		{"inside a blob", "POST", "/api/v1/mailbox", d.cred, `{"items":[{"to_user":"alice","to_device":"` + b64(d.key()) +
			`","id":"m1","blob":{"a":[{"x":1,"x":2}]}}]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			auth := ""
			if tt.auth != "" {
				auth = "Parley " + tt.auth
			}
			code, m, _ := authCall(t, e.h, tt.method, tt.path, "", auth, tt.body)
			if code != 400 || !strings.Contains(fmt.Sprint(m["error"]), "duplicate key") {
				t.Errorf("got %d %v, want 400 duplicate key", code, m)
			}
		})
	}
}

// TestBodyTooLarge413: an over-long body is 413 with a JSON error.
func TestBodyTooLarge413(t *testing.T) {
	e := newEnv(t, Config{})
	d := e.device("alice")
	big := `{"user":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	code, m, _ := call(t, e.h, "POST", "/api/v1/register", "", big)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(fmt.Sprint(m["error"]), "larger than 65536 bytes") {
		t.Errorf("register: got %d %v, want 413", code, m)
	}
	huge := `{"items":"` + strings.Repeat("a", 8<<20) + `"}`
	code, m, _ = authCall(t, e.h, "POST", "/api/v1/mailbox", "", "Parley "+d.cred, huge)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(fmt.Sprint(m["error"]), "larger than") {
		t.Errorf("mailbox: got %d %v, want 413", code, m)
	}
}

func TestDuplicateKey(t *testing.T) {
	for _, tt := range []struct{ body, want string }{
		{`{"a":1,"b":2}`, ""},
		{`{"a":{"a":1},"b":[{"a":1},{"a":2}]}`, ""}, // same key in different objects
		{`[{"a":1},{"a":1}]`, ""},
		{`{"a":[],"b":{},"c":[[],{}],"d":null}`, ""},
		{`{"a":1,"a":1}`, `duplicate key "a" in request body`},
		{`{"User":1,"user":2}`, `duplicate key "user" in request body`},    // encoding/json matches fields case-insensitively
		{`{"k":1,"\u212a":2}`, "duplicate key \"\u212a\" in request body"}, // Kelvin sign folds to k
		{`{"s":1,"ſ":2}`, `duplicate key "ſ" in request body`},
		{`{"items":[{"x":1},{"x":1,"y":{"z":[0,{"q":1,"q":2}]}}]}`, `duplicate key "q" in request body at items[1].y.z[1].q`},
		{`{"a":{"b":1},"a":2}`, `duplicate key "a" in request body`},
		{"{\"a\\n\":1,\"a\\n\":2}", `duplicate key "a?" in request body`},
		{`{"a":1,"a"`, ""}, // not JSON: Unmarshal reports it
		{`{"a":1} {"a":1,"a":2}`, ""},
		{``, ""}, {`"x"`, ""}, {`[`, ""},
	} {
		if got := duplicateKey([]byte(tt.body)); got != tt.want {
			t.Errorf("duplicateKey(%s) = %q, want %q", tt.body, got, tt.want)
		}
	}
}

// TestLockoutBehindTrustedProxy: behind a trusted front end the limits bind
// the forwarded client address, so one browser's guesses do not lock out
// another behind the same front end.
func TestLockoutBehindTrustedProxy(t *testing.T) {
	e := newEnv(t, Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if err := e.cl.Register(t.Context(), "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	pub := newKey(t)
	login := func(pw, client string) int {
		body := fmt.Sprintf(`{"user":"alice","password":%q,"public_key":%q}`, pw, b64(pub))
		req := httptest.NewRequest("POST", "/api/v1/login", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", client)
		req.RemoteAddr = "10.1.2.3:5000"
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		return rec.Code
	}
	for range 10 {
		login("guess!!!", "192.0.2.66")
	}
	if got := login("password1", "192.0.2.66"); got != 429 {
		t.Errorf("the guessing browser: got %d, want 429", got)
	}
	if got := login("password1", "198.51.100.7"); got != 200 {
		t.Errorf("another browser behind the same front end: got %d, want 200", got)
	}
}
