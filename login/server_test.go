package login

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/loginapi"
)

func TestRoundTrip(t *testing.T) { eachStore(t, testRoundTrip) }

func testRoundTrip(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	ctx := t.Context()
	if err := e.cl.Register(ctx, "alice", "correct horse"); err != nil {
		t.Fatalf("Register: %v", err)
	}
	pub := newKey(t)
	resp, err := e.cl.Login(ctx, "alice", "correct horse", pub)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	now := e.clock.Now()
	checkLoginResponse(t, e, resp, "alice", pub, now)
	if got, want := resp.RefreshExpires, now.Add(DefaultRefreshTTL).Unix(); got != want {
		t.Errorf("refresh_expires: got %d, want %d", got, want)
	}

	// Refresh with a new key, later: same token, slid expiry.
	e.clock.Advance(2 * time.Hour)
	pub2 := newKey(t)
	r2, err := e.cl.Refresh(ctx, "alice", resp.RefreshToken, pub2)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	now = e.clock.Now()
	checkLoginResponse(t, e, r2, "alice", pub2, now)
	if r2.RefreshToken != resp.RefreshToken {
		t.Errorf("refresh token changed: got %q, want %q", r2.RefreshToken, resp.RefreshToken)
	}
	if got, want := r2.RefreshExpires, now.Add(DefaultRefreshTTL).Unix(); got != want {
		t.Errorf("slid refresh_expires: got %d, want %d", got, want)
	}

	// Password change revokes refresh tokens and swaps the password.
	if err := e.cl.ChangePassword(ctx, "alice", "correct horse", "battery staple"); err != nil {
		t.Fatalf("ChangePassword: %v", err)
	}
	if _, err := e.cl.Refresh(ctx, "alice", resp.RefreshToken, pub); !errors.Is(err, loginapi.ErrInvalidRefresh) {
		t.Errorf("Refresh after password change: got %v, want ErrInvalidRefresh", err)
	}
	if _, err := e.cl.Login(ctx, "alice", "correct horse", pub); !errors.Is(err, loginapi.ErrWrongPassword) {
		t.Errorf("Login with old password: got %v, want ErrWrongPassword", err)
	}
	if _, err := e.cl.Login(ctx, "alice", "battery staple", pub); err != nil {
		t.Errorf("Login with new password: %v", err)
	}
	if err := e.cl.ChangePassword(ctx, "alice", "wrong password", "whatever123"); !errors.Is(err, loginapi.ErrWrongPassword) {
		t.Errorf("ChangePassword with wrong password: got %v, want ErrWrongPassword", err)
	}
	// An unknown user is answered like a wrong password.
	if err := e.cl.ChangePassword(ctx, "nobody", "whatever123", "whatever456"); !errors.Is(err, loginapi.ErrWrongPassword) {
		t.Errorf("ChangePassword of unknown user: got %v, want ErrWrongPassword", err)
	}
	if err := e.cl.ChangePassword(ctx, "alice", "battery staple", "short"); !errors.Is(err, loginapi.ErrBadRequest) {
		t.Errorf("ChangePassword to a short password: got %v, want ErrBadRequest", err)
	}
}

func checkLoginResponse(t *testing.T, e *env, resp *loginapi.LoginResponse, user string, pub ed25519.PublicKey, now time.Time) {
	t.Helper()
	if resp.User != user {
		t.Errorf("user: got %q, want %q", resp.User, user)
	}
	if !bytes.Equal(resp.LoginKey, e.srv.PublicKey()) {
		t.Errorf("login_key: got %x, want %x", resp.LoginKey, e.srv.PublicKey())
	}
	cred, err := identity.Verify(e.srv.PublicKey(), resp.Credential, now)
	if err != nil {
		t.Fatalf("Verify credential: %v", err)
	}
	if cred.User != user || !bytes.Equal(cred.PublicKey, pub) {
		t.Errorf("credential: got user %q key %x, want %q %x", cred.User, cred.PublicKey, user, []byte(pub))
	}
	if got, want := cred.Expires, now.Add(DefaultCredentialTTL).Unix(); got != want || resp.Expires != want {
		t.Errorf("expires: credential %d, response %d, want %d", got, resp.Expires, want)
	}
	if _, err := identity.Verify(e.srv.PublicKey(), resp.Credential, now.Add(DefaultCredentialTTL+identity.Skew+time.Second)); !errors.Is(err, identity.ErrExpired) {
		t.Errorf("credential after TTL: got %v, want ErrExpired", err)
	}
	if len(resp.RefreshToken) != 43 {
		t.Errorf("refresh token %q: want 43 base64url characters", resp.RefreshToken)
	}
	if resp.Supernodes == nil {
		t.Errorf("supernodes: got nil, want a list")
	}
}

func TestRegisterErrors(t *testing.T) { eachStore(t, testRegisterErrors) }

func testRegisterErrors(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	ctx := t.Context()
	if err := e.cl.Register(ctx, "bob", "password1"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, user, pw string
		want           error
		msg            string
	}{
		{"duplicate", "bob", "password2", loginapi.ErrUserExists, "login: user already exists"},
		{"upper case", "Bob", "password1", loginapi.ErrBadRequest, "invalid user name"},
		{"empty", "", "password1", loginapi.ErrBadRequest, "invalid user name"},
		{"too long", strings.Repeat("a", 33), "password1", loginapi.ErrBadRequest, "1 to 32 characters"},
		{"digit first", "1bob", "password1", loginapi.ErrBadRequest, "starting with a letter"},
		{"short password", "carol", "1234567", loginapi.ErrBadRequest, "password must be at least 8 bytes"},
		{"long password", "carol", strings.Repeat("x", 1025), loginapi.ErrBadRequest, "password must be at most 1024 bytes"},
		{"ok at 1024", "carol", strings.Repeat("x", 1024), nil, ""},
		{"ok at 8", "dave", "12345678", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.cl.Register(ctx, tt.user, tt.pw)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if err != nil && !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("message %q does not contain %q", err, tt.msg)
			}
		})
	}
	// The raw status codes.
	code, m, _ := call(t, e.h, "POST", "/api/v1/register", "", map[string]string{"user": "bob", "password": "password1"})
	if code != 409 || m["error"] != "user already exists" {
		t.Errorf("duplicate: got %d %v, want 409 user already exists", code, m)
	}
	code, m, _ = call(t, e.h, "POST", "/api/v1/register", "", map[string]string{"user": "erin", "password": "password1"})
	if code != 201 || m["user"] != "erin" {
		t.Errorf("register: got %d %v, want 201 {user: erin}", code, m)
	}
}

func TestLoginErrors(t *testing.T) { eachStore(t, testLoginErrors) }

func testLoginErrors(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	ctx := t.Context()
	if err := e.cl.Register(ctx, "bob", "password1"); err != nil {
		t.Fatal(err)
	}
	pub := newKey(t)
	tests := []struct {
		name, user, pw string
		want           error
		line           string
	}{
		// An unknown user is answered exactly like a wrong password.
		{"unknown user", "nobody", "password1", loginapi.ErrWrongPassword, "login: wrong user name or password"},
		{"wrong password", "bob", "password2", loginapi.ErrWrongPassword, "login: wrong user name or password"},
		{"short wrong password", "bob", "x", loginapi.ErrWrongPassword, "login: wrong user name or password"},
		{"bad name", "BOB", "password1", loginapi.ErrBadRequest, `login: invalid user name: "BOB"`},
		{"too long password", "bob", strings.Repeat("p", 1025), loginapi.ErrBadRequest, "login: password must be at most 1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.cl.Login(ctx, tt.user, tt.pw, pub)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.line) {
				t.Errorf("error line: got %q, want prefix %q", err, tt.line)
			}
		})
	}
	statuses := []struct {
		name string
		body map[string]string
		want int
	}{
		{"unknown", map[string]string{"user": "zed", "password": "password1", "public_key": b64(pub)}, 401},
		{"wrong", map[string]string{"user": "bob", "password": "password2", "public_key": b64(pub)}, 401},
		{"no key", map[string]string{"user": "bob", "password": "password1"}, 400},
		{"short key", map[string]string{"user": "bob", "password": "password1", "public_key": b64(pub[:31])}, 400},
		{"url base64 key", map[string]string{"user": "bob", "password": "password1", "public_key": "_-" + b64(pub)[2:]}, 400},
		{"ok", map[string]string{"user": "bob", "password": "password1", "public_key": b64(pub)}, 200},
	}
	for _, tt := range statuses {
		t.Run("status "+tt.name, func(t *testing.T) {
			code, m, _ := call(t, e.h, "POST", "/api/v1/login", "192.0.2.9:1000", tt.body)
			if code != tt.want {
				t.Fatalf("got %d %v, want %d", code, m, tt.want)
			}
			if code >= 400 && m["error"] == "" {
				t.Errorf("no error message: %v", m)
			}
		})
	}
	if _, err := e.cl.Login(ctx, "Bob", "password1", pub); !errors.Is(err, identity.ErrBadUser) || !errors.Is(err, loginapi.ErrBadRequest) {
		t.Errorf("bad name: got %v, want ErrBadRequest and identity.ErrBadUser", err)
	}
	// A client-side key of the wrong size never reaches the server.
	if _, err := e.cl.Login(ctx, "bob", "password1", pub[:10]); !errors.Is(err, loginapi.ErrBadRequest) {
		t.Errorf("short key: got %v, want ErrBadRequest", err)
	}
}

func TestRestartKeepsAccountsAndKey(t *testing.T) { eachStore(t, testRestartKeepsAccountsAndKey) }

func testRestartKeepsAccountsAndKey(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	ctx := t.Context()
	if err := e.cl.Register(ctx, "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	key := e.srv.PublicKey()
	e.restart()
	if !bytes.Equal(e.srv.PublicKey(), key) {
		t.Errorf("signing key changed across restart")
	}
	pub := newKey(t)
	resp, err := e.cl.Login(ctx, "alice", "password1", pub)
	if err != nil {
		t.Fatalf("Login after restart: %v", err)
	}
	if _, err := identity.Verify(key, resp.Credential, e.clock.Now()); err != nil {
		t.Errorf("credential after restart does not verify with the old key: %v", err)
	}
	e.restart()
	if _, err := e.cl.Refresh(ctx, "alice", resp.RefreshToken, pub); err != nil {
		t.Errorf("Refresh after restart: %v", err)
	}
	if err := e.cl.Register(ctx, "alice", "password1"); !errors.Is(err, loginapi.ErrUserExists) {
		t.Errorf("Register after restart: got %v, want ErrUserExists", err)
	}

	fi, err := os.Stat(filepath.Join(e.cfg.DataDir, "login-key"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Errorf("key file: mode %v size %d, want 0600 and 32", fi.Mode().Perm(), fi.Size())
	}
	if db != "" {
		return // PostgreSQL: no database file
	}
	fi, err = os.Stat(filepath.Join(e.cfg.DataDir, "login.db"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("db file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestDataDirCreated(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	dbdir := t.TempDir()
	s, err := New(Config{DataDir: dir, DB: filepath.Join(dbdir, "x.db"), Argon2: cheapArgon})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, want 0700", fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dbdir, "x.db")); err != nil {
		t.Errorf("DB not at the configured path: %v", err)
	}
}

func TestNewErrors(t *testing.T) {
	badKeyDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(badKeyDir, "login-key"), []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"bad key file", Config{DataDir: badKeyDir}, ErrBadKeyFile},
		{"negative ttl", Config{CredentialTTL: -time.Second}, ErrBadConfig},
		{"negative failures", Config{MaxFailuresPerAddr: -1}, ErrBadConfig},
		{"bad argon salt", Config{Argon2: Argon2Params{SaltLen: 4}}, ErrBadConfig},
		{"question mark", Config{DB: filepath.Join(t.TempDir(), "a?b.db")}, ErrBadConfig},
		{"negative dial-back interval", Config{DialBackInterval: -time.Second}, ErrBadConfig},
		{"negative dial-backs", Config{MaxDialBacksPerAddr: -1}, ErrBadConfig},
		{"invalid allow prefix", Config{DialBackAllow: []netip.Prefix{{}}}, ErrBadConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.cfg.DataDir == "" {
				tt.cfg.DataDir = t.TempDir()
			}
			s, err := New(tt.cfg)
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "login: new: ") {
				t.Errorf("error %q lacks the operation", err)
			}
		})
	}
}

func TestSchemaTooNew(t *testing.T) {
	dir := t.TempDir()
	s, err := New(Config{DataDir: dir, Argon2: cheapArgon})
	if err != nil {
		t.Fatal(err)
	}
	st := s.st.(*sqlStore)
	if _, err := st.db.Exec(`UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := New(Config{DataDir: dir, Argon2: cheapArgon}); !errors.Is(err, ErrSchemaVersion) {
		if err == nil {
			s.Close()
		}
		t.Fatalf("got %v, want ErrSchemaVersion", err)
	}
}

// TestRateLimitPerAddrUser: failures for one user from one address limit
// that address for that user, not the user from elsewhere.
func TestRateLimitPerAddrUser(t *testing.T) {
	e := newEnv(t, Config{MaxFailuresPerAddrUser: 3, MaxFailuresPerAddr: 100, FailureWindow: time.Minute})
	ctx := t.Context()
	if err := e.cl.Register(ctx, "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	pub := newKey(t)
	login := func(pw, remote string) (int, map[string]any, http.Header) {
		return call(t, e.h, "POST", "/api/v1/login", remote, map[string]string{"user": "alice", "password": pw, "public_key": b64(pub)})
	}
	// The client's own address (e.cl connects from loopback).
	const home = "127.0.0.1:1"
	// Success clears the count: 2 failures, success, 2 failures stay under 3.
	for i, step := range []struct {
		pw   string
		want int
	}{
		{"bad-one-1", 401}, {"bad-one-2", 401}, {"password1", 200}, {"bad-one-3", 401}, {"bad-one-4", 401},
	} {
		if code, m, _ := login(step.pw, home); code != step.want {
			t.Fatalf("step %d: got %d %v, want %d", i, code, m, step.want)
		}
	}
	e.clock.Advance(10 * time.Second)
	if code, _, _ := login("bad-one-5", home); code != 401 {
		t.Fatalf("third failure: got %d, want 401", code)
	}
	// Now limited from this address, even with the right password.
	code, m, hdr := login("password1", home)
	if code != 429 {
		t.Fatalf("limited: got %d %v, want 429", code, m)
	}
	// The oldest counted failure (at t0) leaves the 60 s window 50 s from now.
	if got, want := m["retry_after"], float64(50); got != want {
		t.Errorf("retry_after: got %v, want %v", got, want)
	}
	if got, want := hdr.Get("Retry-After"), "50"; got != want {
		t.Errorf("Retry-After header: got %q, want %q", got, want)
	}
	if got, want := m["error"], "too many failed logins, try again in 50 s"; got != want {
		t.Errorf("error: got %q, want %q", got, want)
	}
	// The client maps it.
	_, err := e.cl.Login(ctx, "alice", "password1", pub)
	var ae *loginapi.APIError
	if !errors.As(err, &ae) || !errors.Is(err, loginapi.ErrRateLimited) || ae.RetryAfter != 50*time.Second {
		t.Fatalf("client: got %v (%+v), want ErrRateLimited with RetryAfter 50s", err, ae)
	}
	if err.Error() != "login: too many failed logins, try again in 50 s" {
		t.Errorf("client error line: %q", err)
	}
	// Password change is limited by the same count.
	if err := e.cl.ChangePassword(ctx, "alice", "password1", "password2"); !errors.Is(err, loginapi.ErrRateLimited) {
		t.Errorf("ChangePassword while limited: got %v, want ErrRateLimited", err)
	}
	// Another address is not limited: neither the right password nor a
	// guess (of which it has its own 3).
	if code, m, _ := login("password1", "198.51.100.7:1"); code != 200 {
		t.Errorf("right password from another address: got %d %v, want 200", code, m)
	}
	if code, m, _ := login("bad-one-6", "203.0.113.5:1"); code != 401 {
		t.Errorf("guess from another address: got %d %v, want 401", code, m)
	}
	// Another user from the limited address is not limited either.
	if err := e.cl.Register(ctx, "bob", "password1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.Login(ctx, "bob", "password1", pub); err != nil {
		t.Errorf("another user from the limited address: %v", err)
	}
	// Refused attempts did not extend the window.
	e.clock.Advance(50 * time.Second)
	if code, m, _ := login("password1", home); code != 200 {
		t.Fatalf("after the window: got %d %v, want 200", code, m)
	}
}

// TestRateLimitUserCeiling: the per-user ceiling binds addresses that have
// failed for the user, never a clean one.
func TestRateLimitUserCeiling(t *testing.T) {
	e := newEnv(t, Config{MaxFailuresPerUser: 4, MaxFailuresPerAddrUser: 3, MaxFailuresPerAddr: 100, FailureWindow: time.Minute})
	if err := e.cl.Register(t.Context(), "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	pub := newKey(t)
	login := func(pw, remote string) int {
		code, _, _ := call(t, e.h, "POST", "/api/v1/login", remote, map[string]string{"user": "alice", "password": pw, "public_key": b64(pub)})
		return code
	}
	// A distributed attack: four bots, one guess each, reach the ceiling.
	for i := range 4 {
		if got := login("guess!!!", fmt.Sprintf("192.0.2.%d:1", i+1)); got != 401 {
			t.Fatalf("bot %d: got %d, want 401", i, got)
		}
	}
	steps := []struct {
		pw, remote string
		want       int
	}{
		{"guess!!!", "192.0.2.1:1", 429},     // a bot that failed: held by the ceiling
		{"password1", "192.0.2.1:1", 429},    // even with the right password
		{"guess!!!", "192.0.2.99:1", 401},    // a fresh address still gets its guess...
		{"guess!!!", "192.0.2.99:1", 429},    // ...one
		{"password1", "198.51.100.7:1", 200}, // the user from a clean address gets in
		{"password1", "198.51.100.8:1", 200},
		{"guess!!!", "192.0.2.2:1", 429}, // a success does not reset the ceiling
	}
	for i, s := range steps {
		if got := login(s.pw, s.remote); got != s.want {
			t.Fatalf("step %d (%s from %s): got %d, want %d", i, s.pw, s.remote, got, s.want)
		}
	}
	e.clock.Advance(time.Minute)
	if got := login("password1", "192.0.2.1:1"); got != 200 {
		t.Errorf("after the window: got %d, want 200", got)
	}
}

func TestRateLimitPerAddr(t *testing.T) {
	e := newEnv(t, Config{MaxFailuresPerUser: 100, MaxFailuresPerAddr: 4, FailureWindow: time.Minute})
	ctx := t.Context()
	for _, u := range []string{"alice", "bob"} {
		if err := e.cl.Register(ctx, u, "password1"); err != nil {
			t.Fatal(err)
		}
	}
	pub := newKey(t)
	login := func(user, pw, remote string) int {
		code, _, _ := call(t, e.h, "POST", "/api/v1/login", remote, map[string]string{"user": user, "password": pw, "public_key": b64(pub)})
		return code
	}
	const attacker = "192.0.2.66:4000"
	steps := []struct {
		user, pw, remote string
		want             int
	}{
		{"nobody", "password1", attacker, 401}, // unknown users count per address, like wrong passwords
		{"ghost", "password1", attacker, 401},
		{"alice", "guess-1!", attacker, 401},
		{"bob", "guess-2!", attacker, 401},
		{"alice", "password1", attacker, 429},          // limited address, right password
		{"nobody", "password1", attacker, 429},         // limited before the lookup
		{"alice", "password1", "[2001:db8::1]:5", 200}, // other addresses unaffected
		{"bob", "password1", "192.0.2.67:4000", 200},
	}
	for i, s := range steps {
		if got := login(s.user, s.pw, s.remote); got != s.want {
			t.Fatalf("step %d (%s from %s): got %d, want %d", i, s.user, s.remote, got, s.want)
		}
	}
	e.clock.Advance(time.Minute)
	if got := login("alice", "password1", attacker); got != 200 {
		t.Fatalf("after the window: got %d, want 200", got)
	}
	// IPv6 addresses share a limit per /64.
	for i := range 4 {
		login("nobody", "password1", fmt.Sprintf("[2001:db8:1:2::%x]:1", i+1))
	}
	if got := login("alice", "password1", "[2001:db8:1:2:ffff::9]:1"); got != 429 {
		t.Errorf("same /64: got %d, want 429", got)
	}
	if got := login("alice", "password1", "[2001:db8:1:3::1]:1"); got != 200 {
		t.Errorf("other /64: got %d, want 200", got)
	}
}

func TestRateLimitConcurrent(t *testing.T) {
	e := newEnv(t, Config{MaxFailuresPerAddrUser: 3})
	if err := e.cl.Register(t.Context(), "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	pub := newKey(t)
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			code, _, _ := call(t, e.h, "POST", "/api/v1/login", fmt.Sprintf("192.0.2.1:%d", i+1), map[string]string{"user": "alice", "password": "wrong-pw!", "public_key": b64(pub)})
			mu.Lock()
			counts[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if counts[401] != 3 || counts[429] != 9 {
		t.Errorf("concurrent guesses: got %v, want 3×401 and 9×429", counts)
	}
}

func TestRefreshRejected(t *testing.T) { eachStore(t, testRefreshRejected) }

func testRefreshRejected(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db, RefreshTTL: time.Hour})
	ctx := t.Context()
	for _, u := range []string{"alice", "bob"} {
		if err := e.cl.Register(ctx, u, "password1"); err != nil {
			t.Fatal(err)
		}
	}
	pub := newKey(t)
	resp, err := e.cl.Login(ctx, "alice", "password1", pub)
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := newRefreshToken()
	tests := []struct {
		name, user, token string
	}{
		{"unknown token", "alice", other},
		{"other user", "bob", resp.RefreshToken},
		{"unknown user", "carol", resp.RefreshToken},
		{"malformed", "alice", "not a token"},
		{"padded", "alice", resp.RefreshToken + "="},
		{"empty", "alice", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.cl.Refresh(ctx, tt.user, tt.token, pub)
			if !errors.Is(err, loginapi.ErrInvalidRefresh) {
				t.Fatalf("got %v, want ErrInvalidRefresh", err)
			}
			if err.Error() != "login: invalid refresh token" {
				t.Errorf("error line %q", err)
			}
		})
	}
	// Sliding: each use within the TTL extends it.
	for range 3 {
		e.clock.Advance(50 * time.Minute)
		if _, err := e.cl.Refresh(ctx, "alice", resp.RefreshToken, pub); err != nil {
			t.Fatalf("Refresh within TTL: %v", err)
		}
	}
	e.clock.Advance(time.Hour)
	if _, err := e.cl.Refresh(ctx, "alice", resp.RefreshToken, pub); !errors.Is(err, loginapi.ErrInvalidRefresh) {
		t.Errorf("expired: got %v, want ErrInvalidRefresh", err)
	}
}

func TestRefreshTokensPerUserBounded(t *testing.T) { eachStore(t, testRefreshTokensPerUserBounded) }

func testRefreshTokensPerUserBounded(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	ctx := t.Context()
	if err := e.cl.Register(ctx, "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	pub := newKey(t)
	var first string
	for i := range refreshKeep + 3 {
		e.clock.Advance(time.Second)
		r, err := e.cl.Login(ctx, "alice", "password1", pub)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = r.RefreshToken
		}
	}
	var n int
	if err := e.srv.st.(*sqlStore).db.QueryRow(`SELECT COUNT(*) FROM refresh_tokens`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != refreshKeep {
		t.Errorf("stored tokens: got %d, want %d", n, refreshKeep)
	}
	if _, err := e.cl.Refresh(ctx, "alice", first, pub); !errors.Is(err, loginapi.ErrInvalidRefresh) {
		t.Errorf("oldest token: got %v, want ErrInvalidRefresh", err)
	}
}

func TestSupernodes(t *testing.T) { eachStore(t, testSupernodes) }

func testSupernodes(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	ctx := t.Context()
	ttl, err := e.cl.Heartbeat(ctx, "ws://10.0.0.1:7000/v1/ws", e.net.def)
	if err != nil {
		t.Fatal(err)
	}
	if ttl != 30*time.Second {
		t.Errorf("ttl: got %v, want 30s", ttl)
	}
	e.clock.Advance(10 * time.Second)
	// A name, over TLS: example.com is in the httptest certificate.
	other := newPriv(t)
	e.net.setKey("example.com:443", other)
	if _, err := e.cl.Heartbeat(ctx, "wss://example.com:443/v1/ws", other); err != nil {
		t.Fatal(err)
	}
	t0 := e.clock.Now().Unix()
	want := []loginapi.SupernodeInfo{{Addr: "wss://example.com:443/v1/ws", LastSeen: t0, Key: pubOf(other)}, {Addr: "ws://10.0.0.1:7000/v1/ws", LastSeen: t0 - 10, Key: pubOf(e.net.def)}}
	checkList := func(step string, want []loginapi.SupernodeInfo) {
		t.Helper()
		got, err := e.cl.Supernodes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: got %v, want %v", step, got, want)
		}
	}
	checkList("both", want)
	// The list also comes with a login.
	if err := e.cl.Register(ctx, "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	resp, err := e.cl.Login(ctx, "alice", "password1", newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(resp.Supernodes) != fmt.Sprint(want) {
		t.Errorf("login supernodes: got %v, want %v", resp.Supernodes, want)
	}
	e.clock.Advance(20 * time.Second) // first is 30 s old: gone
	checkList("expired first", want[:1])
	e.clock.Advance(10 * time.Second)
	checkList("all expired", []loginapi.SupernodeInfo{})
	// A heartbeat brings one back; the janitor's prune keeps live ones.
	if err := e.hb("ws://10.0.0.1:7000/v1/ws"); err != nil {
		t.Fatal(err)
	}
	e.srv.prune(ctx)
	checkList("back", []loginapi.SupernodeInfo{{Addr: "ws://10.0.0.1:7000/v1/ws", LastSeen: e.clock.Now().Unix(), Key: pubOf(e.net.def)}})
	// The list on the wire carries the key in base64.
	code, m, _ := call(t, e.h, "GET", "/api/v1/supernodes", "", nil)
	l, _ := m["supernodes"].([]any)
	if code != 200 || len(l) != 1 || l[0].(map[string]any)["key"] != b64(pubOf(e.net.def)) {
		t.Errorf("wire list: %d %v, want the key in base64", code, m)
	}
}

func TestSupernodeAddrValidation(t *testing.T) {
	e := newEnv(t, Config{})
	tests := []struct {
		addr string
		ok   bool
	}{
		{"ws://10.0.0.1:7000/v1/ws", true},
		{"ws://[2001:db8::1]:7000/v1/ws", true},
		{"wss://example.com:443/v1/ws", true},
		{"WS://host.example:80", true},
		{"ws://host.example:65535/", true},
		{"http://10.0.0.1:7000/v1/ws", false},
		{"ws://10.0.0.1/v1/ws", false},
		{"ws://10.0.0.1:0/v1/ws", false},
		{"ws://10.0.0.1:65536/v1/ws", false},
		{"ws://10.0.0.1:07000/v1/ws", false},
		{"ws://:7000/v1/ws", false},
		{"ws://u:p@10.0.0.1:7000/", false},
		{"ws://10.0.0.1:7000/?q=1", false},
		{"ws://10.0.0.1:7000/#f", false},
		{"ws:10.0.0.1:7000", false},
		{"10.0.0.1:7000", false},
		{"", false},
		{"ws://h:1/" + strings.Repeat("a", 250), false},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			body := signedBody(tt.addr, e.net.def, e.clock.Now().Unix(), loginapi.HeartbeatContext)
			code, m, _ := call(t, e.h, "POST", "/api/v1/supernodes", "", body)
			if (code == 200) != tt.ok || (!tt.ok && code != 400) {
				t.Fatalf("got %d %v, want ok=%v", code, m, tt.ok)
			}
		})
	}
	_, err := e.cl.Heartbeat(t.Context(), "http://x:1", e.net.def)
	if !errors.Is(err, loginapi.ErrBadRequest) || !strings.Contains(err.Error(), "ws://") {
		t.Errorf("client: got %v, want ErrBadRequest naming ws://", err)
	}
	// Canonical form is listed.
	list, _ := e.cl.Supernodes(t.Context())
	if !contains(addrs(list), "ws://host.example:80") {
		t.Errorf("canonical address missing from %v", list)
	}
}

func addrs(l []loginapi.SupernodeInfo) []string {
	var out []string
	for _, s := range l {
		out = append(out, s.Addr)
	}
	return out
}

func TestSupernodeListFull(t *testing.T) { eachStore(t, testSupernodeListFull) }

func testSupernodeListFull(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db, MaxDialBacksPerAddr: 2 * MaxSupernodes})
	now := e.clock.Now().Unix()
	for i := range MaxSupernodes {
		body := signedBody(fmt.Sprintf("ws://10.0.%d.%d:7000/v1/ws", i/256, i%256), e.net.def, now, loginapi.HeartbeatContext)
		code, m, _ := call(t, e.h, "POST", "/api/v1/supernodes", "", body)
		if code != 200 {
			t.Fatalf("heartbeat %d: %d %v", i, code, m)
		}
	}
	// A listed one may still renew; a new one is refused, without a dial-back.
	if err := e.hb("ws://10.0.0.0:7000/v1/ws"); err != nil {
		t.Errorf("renewal: %v", err)
	}
	if err := e.hb("ws://10.9.9.9:7000/v1/ws"); !errors.Is(err, loginapi.ErrSupernodeListFull) {
		t.Errorf("new when full: got %v, want ErrSupernodeListFull", err)
	}
	if got := e.net.totalHits(); got != MaxSupernodes {
		t.Errorf("identify requests: got %d, want %d (one per new entry)", got, MaxSupernodes)
	}
	list, err := e.cl.Supernodes(t.Context())
	if err != nil || len(list) != MaxSupernodes {
		t.Fatalf("list: %d entries, %v", len(list), err)
	}
	// Once they expire there is room again.
	e.clock.Advance(DefaultSupernodeTTL)
	if err := e.hb("ws://10.9.9.9:7000/v1/ws"); err != nil {
		t.Errorf("after expiry: %v", err)
	}
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, Config{})
	big := `{"user":"` + strings.Repeat("a", MaxBodyBytes) + `"}`
	tests := []struct {
		name, method, path string
		ctype              string
		body               string
		want               int
		msg                string
	}{
		{"not json", "POST", "/api/v1/register", "application/json", "user=alice", 400, "not valid JSON"},
		{"truncated", "POST", "/api/v1/login", "application/json", `{"user":"al`, 400, "not valid JSON"},
		{"empty", "POST", "/api/v1/login", "application/json", ``, 400, "empty"},
		{"array", "POST", "/api/v1/register", "application/json", `[1,2]`, 400, "JSON object"},
		{"string", "POST", "/api/v1/register", "application/json", `"x"`, 400, "JSON object"},
		{"wrong type", "POST", "/api/v1/register", "application/json", `{"user":42,"password":"password1"}`, 400, `field "user" must be a string, not number`},
		{"wrong type object", "POST", "/api/v1/login", "application/json", `{"user":"a","password":{}}`, 400, `field "password" must be a string`},
		{"trailing data", "POST", "/api/v1/register", "application/json", `{"user":"a"} {}`, 400, "not valid JSON"},
		{"too large", "POST", "/api/v1/register", "application/json", big, 413, "larger than 65536 bytes"},
		{"null", "POST", "/api/v1/register", "application/json", `null`, 400, "invalid user name"},
		{"no content type", "POST", "/api/v1/register", "", `{"user":"alice","password":"password1"}`, 415, "application/json"},
		{"form content type", "POST", "/api/v1/login", "application/x-www-form-urlencoded", `{}`, 415, "application/json"},
		{"text content type", "POST", "/api/v1/supernodes", "text/plain", `{}`, 415, "application/json"},
		{"json with charset", "POST", "/api/v1/register", "application/json; charset=utf-8", `{"user":"zed","password":"password1"}`, 201, ""},
		{"get on post", "GET", "/api/v1/login", "", "", 405, "method GET not allowed, use POST"},
		{"put on supernodes", "PUT", "/api/v1/supernodes", "", "", 405, "use GET, HEAD, POST, DELETE"},
		{"post on key", "POST", "/api/v1/key", "application/json", "{}", 405, "use GET, HEAD"},
		{"unknown api", "GET", "/api/v1/nope", "", "", 404, "not found"},
		{"unknown root", "GET", "/index.html", "", "", 404, "not found"},
		{"bad user path", "GET", "/api/v1/users/Bad", "", "", 400, "invalid user name"},
		{"long user path", "GET", "/api/v1/users/" + strings.Repeat("a", 100), "", "", 400, "1 to 32 characters"},
		{"unknown user path", "GET", "/api/v1/users/nobody", "", "", 404, "unknown user"},
		{"healthz", "GET", "/healthz", "", "", 200, ""},
		{"key", "GET", "/api/v1/key", "", "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, e.ts.URL+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			resp, err := e.ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var m map[string]any
			if err := decodeJSON(resp, &m); err != nil {
				t.Fatalf("answer %d not JSON: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != tt.want {
				t.Fatalf("status: got %d %v, want %d", resp.StatusCode, m, tt.want)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			if tt.want >= 400 {
				msg, _ := m["error"].(string)
				if !strings.Contains(msg, tt.msg) || strings.Contains(msg, "\n") {
					t.Errorf("error %q does not contain %q", msg, tt.msg)
				}
			}
		})
	}
}

func TestWebAndHealth(t *testing.T) {
	web := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("web client"))
	})
	e := newEnv(t, Config{Web: web})
	code, m, _ := call(t, e.h, "GET", "/healthz", "", nil)
	if code != 200 || m["ok"] != true {
		t.Errorf("healthz: %d %v", code, m)
	}
	resp, err := e.ts.Client().Get(e.ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	resp.Body.Close()
	if b.String() != "web client" {
		t.Errorf("web: got %q", b.String())
	}
	// API paths never fall through to the web handler.
	code, m, _ = call(t, e.h, "GET", "/api/v2/x", "", nil)
	if code != 404 || m["error"] != "not found" {
		t.Errorf("unknown API path: %d %v", code, m)
	}
}

func TestUserExistsAndKey(t *testing.T) { eachStore(t, testUserExistsAndKey) }

func testUserExistsAndKey(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	ctx := t.Context()
	if err := e.cl.Register(ctx, "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user    string
		want    bool
		wantErr error
	}{
		{"alice", true, nil},
		{"bob", false, nil},
		{"Alice", false, loginapi.ErrBadRequest},
		{"a/b", false, loginapi.ErrBadRequest},
	}
	for _, tt := range tests {
		got, err := e.cl.UserExists(ctx, tt.user)
		if got != tt.want || !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
			t.Errorf("UserExists(%q): got %v, %v; want %v, %v", tt.user, got, err, tt.want, tt.wantErr)
		}
	}
	key, err := e.cl.Key(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Equal(e.srv.PublicKey()) {
		t.Errorf("Key: got %x, want %x", key, e.srv.PublicKey())
	}
	code, m, _ := call(t, e.h, "GET", "/api/v1/key", "", nil)
	if code != 200 || m["alg"] != "Ed25519" || m["public_key"] != b64(e.srv.PublicKey()) {
		t.Errorf("key answer: %d %v", code, m)
	}
}

func TestNoSecretsInLogs(t *testing.T) {
	logger, buf := captureLogs()
	e := newEnv(t, Config{Logger: logger, MaxFailuresPerAddrUser: 2})
	ctx := t.Context()
	secrets := []string{"s3cret-passw0rd", "n3w-s3cret-passw0rd", "wr0ng-guess-pw"}
	if err := e.cl.Register(ctx, "alice", secrets[0]); err != nil {
		t.Fatal(err)
	}
	pub := newKey(t)
	resp, err := e.cl.Login(ctx, "alice", secrets[0], pub)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := e.srv.st.passwordHash(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.Refresh(ctx, "alice", resp.RefreshToken, pub); err != nil {
		t.Fatal(err)
	}
	if err := e.cl.ChangePassword(ctx, "alice", secrets[0], secrets[1]); err != nil {
		t.Fatal(err)
	}
	e.cl.Refresh(ctx, "alice", resp.RefreshToken, pub)
	for range 3 {
		e.cl.Login(ctx, "alice", secrets[2], pub)
	}
	e.cl.Login(ctx, "nobody", secrets[2], pub)
	node := newPriv(t)
	e.cl.Heartbeat(ctx, "ws://10.0.0.1:1/", node) // dial-back refused: logged
	e.cl.Leave(ctx, "ws://10.0.0.1:1/", node)
	hbSig := signedBody("ws://10.0.0.1:1/", node, e.clock.Now().Unix(), loginapi.HeartbeatContext)["sig"].(string)
	leaveSig := signedBody("ws://10.0.0.1:1/", node, e.clock.Now().Unix(), loginapi.LeaveContext)["sig"].(string)
	e.stop()
	keyFile, err := os.ReadFile(filepath.Join(e.cfg.DataDir, "login-key"))
	if err != nil {
		t.Fatal(err)
	}
	logs := buf.String()
	if !strings.Contains(logs, "logged in") || !strings.Contains(logs, "rate limited") {
		t.Fatalf("expected log lines missing:\n%s", logs)
	}
	if !strings.Contains(logs, "supernode refused") {
		t.Fatalf("expected dial-back log line missing:\n%s", logs)
	}
	forbidden := append(secrets, resp.RefreshToken, resp.Credential, hash, b64(keyFile), string(keyFile),
		b64(node), b64(node.Seed()), hbSig, hbSig[:16], leaveSig, leaveSig[:16])
	_, saltAndKey, _ := strings.Cut(hash, "$argon2id$v=19$")
	forbidden = append(forbidden, saltAndKey)
	for _, s := range forbidden {
		if strings.Contains(logs, s) {
			t.Errorf("log output contains secret %q", s)
		}
	}
}

func TestCloseAndLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := t.TempDir()
	for range 2 {
		s, err := New(Config{DataDir: dir, Argon2: cheapArgon})
		if err != nil {
			t.Fatal(err)
		}
		h := s.Handler()
		code, _, _ := call(t, h, "POST", "/api/v1/register", "", map[string]string{"user": "alice", "password": "password1"})
		if code != 201 && code != 409 {
			t.Fatalf("register: %d", code)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		code, m, _ := call(t, h, "POST", "/api/v1/register", "", map[string]string{"user": "bob", "password": "password1"})
		if code != 503 || m["error"] != "login server is shutting down" {
			t.Errorf("after Close: %d %v", code, m)
		}
	}
	waitGoroutines(t, before)
}

func TestServerOverHTTPLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	e := &env{t: t, clock: newClock(), cfg: Config{DataDir: t.TempDir(), Argon2: cheapArgon}}
	e.cfg.Now = e.clock.Now
	e.start()
	ctx := t.Context()
	if err := e.cl.Register(ctx, "alice", "password1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.Login(ctx, "alice", "password1", newKey(t)); err != nil {
		t.Fatal(err)
	}
	e.ts.Client().CloseIdleConnections()
	e.stop()
	waitGoroutines(t, before)
}

func TestClientUnreachable(t *testing.T) {
	// A port nothing listens on: start a server and close it.
	e := newEnv(t, Config{})
	url := e.ts.URL
	e.stop()
	c := loginapi.NewClient(url+"/", nil)
	_, err := c.Login(t.Context(), "alice", "password1", newKey(t))
	if !errors.Is(err, loginapi.ErrUnreachable) {
		t.Fatalf("got %v, want ErrUnreachable", err)
	}
	if want := "login: login server unreachable at " + url + ": "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error line %q, want prefix %q", err, want)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Register(ctx, "alice", "password1"); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: got %v, want context.Canceled", err)
	}
}

func TestClientServerErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   error
		line   string
	}{
		{"html 502", 502, "<html>bad gateway</html>", loginapi.ErrServer, "login: login server error at URL: unexpected answer (HTTP 502)"},
		{"json 500", 500, `{"error":"internal error"}`, loginapi.ErrServer, "login: login server error at URL: internal error (HTTP 500)"},
		{"not a login server", 404, `404 page not found`, loginapi.ErrServer, "login: login server error at URL: unexpected answer (HTTP 404)"},
		{"multi-line message", 400, `{"error":"a\nb"}`, loginapi.ErrBadRequest, "login: a b"},
		{"bad success body", 200, `nope`, loginapi.ErrServer, "login: login server error: bad answer from URL"},
		{"rate limited header only", 429, `{"error":"slow down"}`, loginapi.ErrRateLimited, "login: slow down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newStaticServer(t, tt.status, tt.body)
			c := loginapi.NewClient(ts, nil)
			_, err := c.UserExists(t.Context(), "alice")
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if got, want := err.Error(), strings.ReplaceAll(tt.line, "URL", ts); !strings.HasPrefix(got, want) {
				t.Errorf("line: got %q, want prefix %q", got, want)
			}
		})
	}
}
