package login

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/wire/loginapi"
)

// tokDev is a logged-in device with its refresh token.
type tokDev struct {
	*dev
	refresh string
}

// loginTok logs user in on a new device (registering the account first if
// needed) and keeps the refresh token.
func (e *env) loginTok(user string) *tokDev {
	e.t.Helper()
	ctx := e.t.Context()
	if err := e.cl.Register(ctx, user, "password1"); err != nil && !errors.Is(err, loginapi.ErrUserExists) {
		e.t.Fatalf("Register %s: %v", user, err)
	}
	priv := newPriv(e.t)
	resp, err := e.cl.Login(ctx, user, "password1", pubOf(priv))
	if err != nil {
		e.t.Fatalf("Login %s: %v", user, err)
	}
	xk, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	return &tokDev{dev: &dev{e: e, user: user, cred: resp.Credential, priv: priv, x: xk.PublicKey().Bytes()}, refresh: resp.RefreshToken}
}

// mailCount counts the items waiting for user's device key.
func mailCount(t *testing.T, e *env, user string, key ed25519.PublicKey) int {
	t.Helper()
	st := e.srv.st.(*sqlStore)
	var n int
	if err := st.db.QueryRow(st.q(`SELECT COUNT(*) FROM mailbox WHERE to_user = ? AND to_device = ?`), user, []byte(key)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func myDeviceKeys(list []loginapi.MyDevice) map[string]loginapi.MyDevice {
	m := map[string]loginapi.MyDevice{}
	for _, d := range list {
		m[b64(d.Key)] = d
	}
	return m
}

// TestMyDevices: GET /api/v1/devices lists the caller's own devices, the
// registered ones and those that only logged in, with their times, whether
// messages are sealed to them and which one asks; nobody else's.
func TestMyDevices(t *testing.T) { eachStore(t, testMyDevices) }

func testMyDevices(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	ctx := t.Context()
	t0 := e.clock.Now().Unix()
	a1 := e.device("alice")
	e.clock.Advance(10 * time.Second)
	a2 := e.device("alice")
	e.clock.Advance(10 * time.Second)
	a3 := e.login("alice") // logged in, never registered
	e.device("bob")
	e.clock.Advance(10 * time.Second)
	if _, _, err := e.cl.Mailbox(ctx, a1.cred, 0); err != nil { // a1 seen now
		t.Fatal(err)
	}

	list, err := e.cl.MyDevices(ctx, a2.cred)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		d          *dev
		registered int64
		lastSeen   int64
		enc, self  bool
	}{
		{"registered, fetched its mailbox last", a1, t0, t0 + 30, true, false},
		{"registered, the caller", a2, t0 + 10, t0 + 10, true, true},
		{"logged in only", a3, t0 + 20, t0 + 20, false, false},
	}
	got := myDeviceKeys(list)
	if len(list) != len(tests) {
		t.Errorf("%d devices, want %d: %+v", len(list), len(tests), list)
	}
	for _, tt := range tests {
		d, ok := got[b64(tt.d.key())]
		if !ok {
			t.Errorf("%s: not listed", tt.name)
			continue
		}
		if d.Registered != tt.registered || d.LastSeen != tt.lastSeen || d.Encryption != tt.enc || d.Self != tt.self {
			t.Errorf("%s: %+v, want registered %d, last_seen %d, encryption %v, self %v", tt.name, d, tt.registered, tt.lastSeen, tt.enc, tt.self)
		}
	}
	if len(list) == 3 && (!list[0].Key.Equal(a1.key()) || !list[1].Key.Equal(a3.key()) || !list[2].Key.Equal(a2.key())) {
		t.Errorf("order: want most recently seen first (a1, a3, a2)")
	}
	// A refresh counts as seen, and an expired token's key is no device.
	e.clock.Advance(DefaultRefreshTTL + time.Hour)
	if list, err := e.cl.MyDevices(ctx, e.device("alice").cred); err != nil || len(list) != 3 {
		t.Errorf("after the tokens expired: %+v %v, want the 2 registered ones and the caller", list, err)
	}
	// The raw answer: key in standard base64, the documented fields.
	code, m, _ := authCall(t, e.h, "GET", "/api/v1/devices", "", "Parley "+a1.relogin2(), nil)
	devs, _ := m["devices"].([]any)
	if code != 200 || len(devs) == 0 {
		t.Fatalf("GET /api/v1/devices: %d %v", code, m)
	}
	first, _ := devs[0].(map[string]any)
	for _, k := range []string{"key", "registered", "last_seen", "encryption", "self"} {
		if _, ok := first[k]; !ok {
			t.Errorf("entry lacks %q: %v", k, first)
		}
	}
}

// relogin2 logs d in again with the password and returns the credential.
func (d *dev) relogin2() string {
	d.relogin()
	return d.cred
}

// TestRemoveDevice: DELETE /api/v1/devices/{key} removes one of the
// caller's devices with its mailbox and revokes it (refresh, registration
// and every user endpoint refuse it) until a password login on it; unknown
// keys and other users' devices are 404.
func TestRemoveDevice(t *testing.T) { eachStore(t, testRemoveDevice) }

func testRemoveDevice(t *testing.T, db string) {
	logger, logs := captureLogs()
	e := newEnv(t, Config{DB: db, Logger: logger})
	ctx := t.Context()
	a1, a2 := e.loginTok("alice"), e.loginTok("alice")
	a1.register()
	a2.register()
	b := e.loginTok("bob")
	b.register()
	befriend(t, a1.dev, b.dev)
	for _, to := range []*tokDev{a1, a2} {
		if _, err := e.cl.PostMailbox(ctx, b.cred, []loginapi.MailboxItem{{ToUser: "alice", ToDevice: to.key(), ID: "m1", Blob: json.RawMessage(`"x"`)}}); err != nil {
			t.Fatal(err)
		}
	}

	for _, tt := range []struct {
		name string
		path string
		code int
		want string
	}{
		{"unknown key", "/api/v1/devices/" + loginapi.DeviceKeyString(newKey(t)), 404, "not a registered device: you have no device"},
		{"another user's device", "/api/v1/devices/" + loginapi.DeviceKeyString(b.key()), 404, "not a registered device: you have no device"},
		{"standard base64", "/api/v1/devices/" + strings.ReplaceAll(b64(a2.key()), "/", "%2F"), 400, "base64url without padding"},
		{"too short", "/api/v1/devices/" + loginapi.DeviceKeyString(a2.key())[:40], 400, "32-byte Ed25519 key"},
	} {
		code, m, _ := authCall(t, e.h, "DELETE", tt.path, "", "Parley "+a1.cred, nil)
		if msg, _ := m["error"].(string); code != tt.code || !strings.Contains(msg, tt.want) {
			t.Errorf("%s: %d %q, want %d %q", tt.name, code, msg, tt.code, tt.want)
		}
	}
	if err := e.cl.RemoveDevice(ctx, a1.cred, b.key()); !errors.Is(err, loginapi.ErrUnknownDevice) {
		t.Errorf("RemoveDevice(bob's): %v, want ErrUnknownDevice", err)
	}
	if code, _, h := authCall(t, e.h, "GET", "/api/v1/devices/"+loginapi.DeviceKeyString(a2.key()), "", "Parley "+a1.cred, nil); code != 405 || h.Get("Allow") != "DELETE" {
		t.Errorf("GET on a device: %d Allow %q, want 405 DELETE", code, h.Get("Allow"))
	}

	// a1 removes a2.
	if err := e.cl.RemoveDevice(ctx, a1.cred, a2.key()); err != nil {
		t.Fatalf("RemoveDevice: %v", err)
	}
	if err := e.cl.RemoveDevice(ctx, a1.cred, a2.key()); !errors.Is(err, loginapi.ErrUnknownDevice) {
		t.Errorf("RemoveDevice twice: %v, want ErrUnknownDevice", err)
	}
	if n := mailCount(t, e, "alice", a2.key()); n != 0 {
		t.Errorf("removed device's mailbox: %d items, want none", n)
	}
	if n := mailCount(t, e, "alice", a1.key()); n != 1 {
		t.Errorf("the other device's mailbox: %d items, want 1", n)
	}
	if list, err := e.cl.Devices(ctx, b.cred, "alice"); err != nil || len(list) != 1 || !list[0].Key.Equal(a1.key()) {
		t.Errorf("alice's devices as a sender sees them: %+v %v, want a1 only", list, err)
	}
	if list, err := e.cl.MyDevices(ctx, a1.cred); err != nil || len(list) != 1 || !list[0].Key.Equal(a1.key()) || !list[0].Self {
		t.Errorf("MyDevices after the removal: %+v %v, want a1 (self) only", list, err)
	}
	if _, err := e.cl.PostMailbox(ctx, b.cred, []loginapi.MailboxItem{{ToUser: "alice", ToDevice: a2.key(), ID: "m2", Blob: json.RawMessage(`"x"`)}}); !errors.Is(err, loginapi.ErrUnknownDevice) {
		t.Errorf("post to the removed device: %v, want ErrUnknownDevice", err)
	}

	// The removed device gets nothing more.
	refused := []struct {
		name string
		call func() error
	}{
		{"refresh", func() error { _, err := e.cl.Refresh(ctx, "alice", a2.refresh, a2.key()); return err }},
		{"refresh with a new key", func() error { _, err := e.cl.Refresh(ctx, "alice", a2.refresh, newKey(t)); return err }},
		{"refresh with another device's token", func() error { _, err := e.cl.Refresh(ctx, "alice", a1.refresh, a2.key()); return err }},
		{"register again", func() error {
			_, err := e.cl.PutDevice(ctx, a2.cred, a2.x, loginapi.SignDevice(a2.priv, "alice", a2.x))
			return err
		}},
		{"mailbox", func() error { _, _, err := e.cl.Mailbox(ctx, a2.cred, 0); return err }},
		{"contacts", func() error { _, err := e.cl.Contacts(ctx, a2.cred); return err }},
		{"own devices", func() error { _, err := e.cl.MyDevices(ctx, a2.cred); return err }},
		{"remove another", func() error { return e.cl.RemoveDevice(ctx, a2.cred, a1.key()) }},
	}
	for _, tt := range refused {
		err := tt.call()
		var ae *loginapi.APIError
		if !errors.Is(err, loginapi.ErrDeviceRemoved) || !errors.Is(err, loginapi.ErrUnauthorized) || errors.Is(err, loginapi.ErrInvalidRefresh) ||
			!errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(err.Error(), "log in with the password") {
			t.Errorf("%s by the removed device: %v, want 401 ErrDeviceRemoved saying what to do", tt.name, err)
		}
	}
	if list, err := e.cl.MyDevices(ctx, a1.cred); err != nil || len(list) != 1 {
		t.Errorf("the refused refreshes made the removed key a device again: %+v %v", list, err)
	}

	// A password login on the device brings it back; its old token stays dead.
	resp, err := e.cl.Login(ctx, "alice", "password1", a2.key())
	if err != nil {
		t.Fatalf("password login on the removed device: %v", err)
	}
	a2.cred = resp.Credential
	a2.register()
	if _, err := e.cl.Refresh(ctx, "alice", resp.RefreshToken, a2.key()); err != nil {
		t.Errorf("refresh after the password login: %v", err)
	}
	if _, err := e.cl.Refresh(ctx, "alice", a2.refresh, a2.key()); !errors.Is(err, loginapi.ErrInvalidRefresh) {
		t.Errorf("refresh with the token from before the removal: %v, want ErrInvalidRefresh", err)
	}
	if list, err := e.cl.MyDevices(ctx, a2.cred); err != nil || len(list) != 2 {
		t.Errorf("MyDevices after the password login: %+v %v, want both", list, err)
	}
	if _, err := e.cl.Refresh(ctx, "alice", a1.refresh, a1.key()); err != nil {
		t.Errorf("the other device's refresh: %v", err)
	}

	// A device may remove itself.
	if err := e.cl.RemoveDevice(ctx, a1.cred, a1.key()); err != nil {
		t.Fatalf("removing oneself: %v", err)
	}
	if _, err := e.cl.Contacts(ctx, a1.cred); !errors.Is(err, loginapi.ErrDeviceRemoved) {
		t.Errorf("after removing itself: %v, want ErrDeviceRemoved", err)
	}
	if list, err := e.cl.MyDevices(ctx, a2.cred); err != nil || len(list) != 1 || !list[0].Key.Equal(a2.key()) {
		t.Errorf("MyDevices after a1 removed itself: %+v %v", list, err)
	}

	// Logs: the removal at info with short keys, no credential or token.
	out := logs.String()
	if !strings.Contains(out, `"msg":"device removed and revoked"`) || !strings.Contains(out, `"device":"`+b64(a2.key())[:12]) ||
		!strings.Contains(out, `"msg":"removed device reinstated by a password login"`) {
		t.Errorf("logs lack the removal or the reinstatement:\n%s", out)
	}
	for _, secret := range []string{b64(a2.key()), loginapi.DeviceKeyString(a2.key()), a1.cred, a2.cred, a2.refresh, resp.RefreshToken} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain %.20s…", secret)
		}
	}
}

// TestRevocationPruned: a revocation outlives every token and credential
// the device held, then the janitor drops it.
func TestRevocationPruned(t *testing.T) {
	e := newEnv(t, Config{})
	ctx := t.Context()
	a1, a2 := e.loginTok("alice"), e.loginTok("alice")
	if err := e.cl.RemoveDevice(ctx, a1.cred, a2.key()); err != nil {
		t.Fatal(err)
	}
	st := e.srv.st.(*sqlStore)
	count := func() int {
		var n int
		if err := st.db.QueryRow(`SELECT COUNT(*) FROM revoked_devices`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	e.clock.Advance(DefaultRefreshTTL)
	e.srv.prune(ctx)
	if count() != 1 {
		t.Fatal("revocation pruned while a credential or token could still be used")
	}
	e.clock.Advance(DefaultCredentialTTL + time.Second)
	e.srv.prune(ctx)
	if n := count(); n != 0 {
		t.Errorf("%d revocations left, want 0", n)
	}
	if _, err := e.cl.Refresh(ctx, "alice", a2.refresh, a2.key()); !errors.Is(err, loginapi.ErrInvalidRefresh) {
		t.Errorf("refresh with the expired token: %v, want ErrInvalidRefresh", err)
	}
}

// TestMigrationFromV3: a version-3 database keeps its devices (registered
// at their last_seen) and its refresh tokens, which are bound to a key at
// their next refresh and listed from then on.
func TestMigrationFromV3(t *testing.T) { eachStore(t, testMigrationFromV3) }

func testMigrationFromV3(t *testing.T, db string) {
	dir := t.TempDir()
	// A current server makes the account, the signing key and one device.
	e := newEnv(t, Config{DB: db, DataDir: dir})
	tk := e.loginTok("alice")
	tk.register()
	e.stop()
	pg := db != ""
	driver, dsn := "sqlite", filepath.Join(dir, "login.db")
	if pg {
		driver, dsn = "pgx", db
	}
	raw, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	// Back to version 3: drop what versions 5 and 4 added.
	for _, q := range append(slices.Clone(dropVersion5), []string{
		`DROP TABLE revoked_devices`,
		`DROP INDEX refresh_tokens_key`,
		`ALTER TABLE refresh_tokens DROP COLUMN ed_key`,
		`ALTER TABLE refresh_tokens DROP COLUMN issued_at`,
		`ALTER TABLE refresh_tokens DROP COLUMN used_at`,
		`ALTER TABLE devices DROP COLUMN registered`,
		`UPDATE devices SET last_seen = 1700000000`,
		`UPDATE schema_version SET version = 3`,
	}...) {
		if _, err := raw.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	raw.Close()
	e.start()
	ctx := t.Context()
	cred := e.device("alice").cred
	got := myDeviceKeys(must(e.cl.MyDevices(ctx, cred)))
	if d, ok := got[b64(tk.key())]; !ok || d.Registered != 1700000000 || !d.Encryption {
		t.Errorf("the old device: %+v (listed %v), want registered at its last_seen", d, ok)
	}
	// The old token still works, and binds to its key.
	if _, err := e.cl.Refresh(ctx, "alice", tk.refresh, tk.key()); err != nil {
		t.Fatalf("refresh with a token from version 3: %v", err)
	}
	if err := e.cl.RemoveDevice(ctx, cred, tk.key()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cl.Refresh(ctx, "alice", tk.refresh, newKey(t)); !errors.Is(err, loginapi.ErrDeviceRemoved) {
		t.Errorf("refresh with the removed device's (bound) token and a new key: %v, want ErrDeviceRemoved", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestDeviceKeyString: the path form of a key reads back, and nothing else
// does.
func TestDeviceKeyString(t *testing.T) {
	k := newKey(t)
	s := loginapi.DeviceKeyString(k)
	if got, err := loginapi.ParseDeviceKey(s); err != nil || !bytes.Equal(got, k) || len(s) != 43 {
		t.Fatalf("round trip: %q %v", s, err)
	}
	for _, bad := range []string{"", s[:42], s + "=", base64.StdEncoding.EncodeToString(k), s + "AA"} {
		if _, err := loginapi.ParseDeviceKey(bad); !errors.Is(err, loginapi.ErrBadRequest) {
			t.Errorf("ParseDeviceKey(%q): %v, want ErrBadRequest", bad, err)
		}
	}
	if err := loginapi.NewClient("http://127.0.0.1:1", nil).RemoveDevice(t.Context(), "x.y", k[:31]); !errors.Is(err, loginapi.ErrBadRequest) {
		t.Errorf("RemoveDevice with a short key: %v", err)
	}
}
