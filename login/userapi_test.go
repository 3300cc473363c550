package login

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/loginapi"
	"github.com/parley/parley/wire/presence"
)

// dev is one logged-in device of a user.
type dev struct {
	e    *env
	user string
	cred string
	priv ed25519.PrivateKey
	x    []byte // X25519 public key
}

// login logs user in with a fresh device key, creating the account first if
// needed.
func (e *env) login(user string) *dev {
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
	return &dev{e: e, user: user, cred: resp.Credential, priv: priv, x: xk.PublicKey().Bytes()}
}

// device logs user in on a new device and registers it.
func (e *env) device(user string) *dev {
	e.t.Helper()
	d := e.login(user)
	d.register()
	return d
}

func (d *dev) register() {
	d.e.t.Helper()
	if _, err := d.e.cl.PutDevice(d.e.t.Context(), d.cred, d.x, loginapi.SignDevice(d.priv, d.user, d.x)); err != nil {
		d.e.t.Fatalf("PutDevice %s: %v", d.user, err)
	}
}

// relogin renews d's credential for the same key (after the clock moved).
func (d *dev) relogin() {
	d.e.t.Helper()
	resp, err := d.e.cl.Login(d.e.t.Context(), d.user, "password1", pubOf(d.priv))
	if err != nil {
		d.e.t.Fatalf("Login %s: %v", d.user, err)
	}
	d.cred = resp.Credential
}

func (d *dev) key() ed25519.PublicKey { return pubOf(d.priv) }

// befriend makes a and b accepted contacts.
func befriend(t *testing.T, a, b *dev) {
	t.Helper()
	ctx := t.Context()
	if _, err := a.e.cl.RequestContact(ctx, a.cred, b.user); err != nil {
		t.Fatalf("RequestContact: %v", err)
	}
	if st, err := b.e.cl.AcceptContact(ctx, b.cred, a.user); err != nil || st != loginapi.ContactAccepted {
		t.Fatalf("AcceptContact: %q %v", st, err)
	}
}

// authCall is call with an Authorization header (none when auth is "").
func authCall(t testing.TB, h http.Handler, method, path, remote, auth string, body any) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		j, ok := body.(string)
		if !ok {
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			j = string(b)
		}
		rd = strings.NewReader(j)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if remote != "" {
		req.RemoteAddr = remote
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("%s %s: answer %d is not JSON: %q", method, path, rec.Code, rec.Body.String())
	}
	return rec.Code, m, rec.Result().Header
}

// userEndpoints are the authenticated endpoints with a plausible body.
var userEndpoints = []struct{ method, path, body string }{
	{"PUT", "/api/v1/devices/self", `{"x25519":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","sig":""}`},
	{"DELETE", "/api/v1/devices/self", ``},
	{"GET", "/api/v1/devices", ``},
	{"DELETE", "/api/v1/devices/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ``},
	{"GET", "/api/v1/users/alice/devices", ``},
	{"GET", "/api/v1/users?prefix=a", ``},
	{"GET", "/api/v1/mailbox", ``},
	{"POST", "/api/v1/mailbox", `{"items":[]}`},
	{"POST", "/api/v1/mailbox/ack", `{"seqs":[1]}`},
	{"GET", "/api/v1/contacts", ``},
	{"POST", "/api/v1/contacts/bob", ``},
	{"POST", "/api/v1/contacts/bob/accept", ``},
	{"POST", "/api/v1/contacts/bob/decline", ``},
	{"GET", "/api/v1/status", ``},
	{"PUT", "/api/v1/status", `{"status":"away"}`},
	{"POST", "/api/v1/files", `{"id":"00112233445566778899aabbccddeeff","size":1,"recipients":["bob"]}`},
	{"GET", "/api/v1/files/00112233445566778899aabbccddeeff", ``},
	{"PUT", "/api/v1/files/00112233445566778899aabbccddeeff/chunks/0", `"x"`},
	{"GET", "/api/v1/files/00112233445566778899aabbccddeeff/chunks/0", ``},
	{"DELETE", "/api/v1/files/00112233445566778899aabbccddeeff", ``},
}

func TestUserAuth(t *testing.T) { eachStore(t, testUserAuth) }

func testUserAuth(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	alice := e.login("alice")
	e.login("bob")
	now := e.clock.Now()
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	issue := func(priv ed25519.PrivateKey, nbf, exp time.Time) string {
		tok, err := identity.Issue(priv, identity.Credential{User: "alice", PublicKey: alice.key(), NotBefore: nbf.Unix(), Expires: exp.Unix()})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tests := []struct {
		name string
		auth string
		want string // in the error message; "" for success
	}{
		{"missing", "", "send Authorization"},
		{"other scheme", "Bearer " + alice.cred, "must be"},
		{"scheme only", "Parley ", "must be"},
		{"forged", "Parley " + issue(otherPriv, now, now.Add(time.Hour)), "not signed by this login server"},
		{"expired", "Parley " + issue(e.srv.priv, now.Add(-3*time.Hour), now.Add(-2*time.Hour)), "expired"},
		{"not yet valid", "Parley " + issue(e.srv.priv, now.Add(time.Hour), now.Add(2*time.Hour)), "not yet valid"},
		{"garbage", "Parley x.y", "malformed"},
		{"valid", "Parley " + alice.cred, ""},
		{"valid, scheme in lower case", "parley " + alice.cred, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, ep := range userEndpoints {
				var body any
				if ep.body != "" {
					body = ep.body
				}
				code, m, h := authCall(t, e.h, ep.method, ep.path, "192.0.2.1:1", tt.auth, body)
				if tt.want == "" {
					if code == http.StatusUnauthorized {
						t.Errorf("%s %s: got 401 %v with a valid credential", ep.method, ep.path, m["error"])
					}
					continue
				}
				msg, _ := m["error"].(string)
				if code != http.StatusUnauthorized || !strings.HasPrefix(msg, loginapi.ErrUnauthorized.Error()) || !strings.Contains(msg, tt.want) {
					t.Errorf("%s %s: got %d %q, want 401 with %q", ep.method, ep.path, code, msg, tt.want)
				}
				if got := h.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Parley") {
					t.Errorf("%s %s: WWW-Authenticate %q", ep.method, ep.path, got)
				}
				if strings.Contains(msg, alice.cred) {
					t.Errorf("error echoes the credential")
				}
			}
		})
	}
	// The Go client maps 401 to ErrUnauthorized.
	if _, err := e.cl.Contacts(t.Context(), issue(otherPriv, now, now.Add(time.Hour))); !errors.Is(err, loginapi.ErrUnauthorized) {
		t.Errorf("Contacts with a forged credential: got %v, want ErrUnauthorized", err)
	}
	if _, err := e.cl.Contacts(t.Context(), ""); !errors.Is(err, loginapi.ErrUnauthorized) {
		t.Errorf("Contacts without a credential: got %v, want ErrUnauthorized", err)
	}
}

func TestDevices(t *testing.T) { eachStore(t, testDevices) }

func testDevices(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db, MaxDevicesPerUser: 2})
	ctx := t.Context()
	a1 := e.login("alice")
	other := newPriv(t)
	tests := []struct {
		name string
		x    []byte
		sig  []byte
		want error
	}{
		{"signed by another key", a1.x, loginapi.SignDevice(other, "alice", a1.x), loginapi.ErrBadSignature},
		{"signed for another user", a1.x, loginapi.SignDevice(a1.priv, "bob", a1.x), loginapi.ErrBadSignature},
		{"signed over another x25519 key", a1.x, loginapi.SignDevice(a1.priv, "alice", make([]byte, 32)), loginapi.ErrBadSignature},
		{"wrong context", a1.x, identity.SignContext(a1.priv, "parley-attach-v1", loginapi.DeviceMessage("alice", a1.key(), a1.x)), loginapi.ErrBadSignature},
		{"good", a1.x, loginapi.SignDevice(a1.priv, "alice", a1.x), nil},
		{"again with a new x25519 key", bytes.Repeat([]byte{7}, 32), loginapi.SignDevice(a1.priv, "alice", bytes.Repeat([]byte{7}, 32)), nil},
	}
	for _, tt := range tests {
		d, err := e.cl.PutDevice(ctx, a1.cred, tt.x, tt.sig)
		if !errors.Is(err, tt.want) || (tt.want != nil && !errors.Is(err, loginapi.ErrBadRequest)) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
			continue
		}
		if err == nil && (!bytes.Equal(d.X25519, tt.x) || !d.Verify("alice")) {
			t.Errorf("%s: answer %+v", tt.name, d)
		}
	}
	// A malformed key or signature length is refused before any request.
	if code, m, _ := authCall(t, e.h, "PUT", "/api/v1/devices/self", "", "Parley "+a1.cred, `{"x25519":"AAAA","sig":""}`); code != 400 ||
		!strings.Contains(m["error"].(string), "x25519 must be") {
		t.Errorf("short x25519: %d %v", code, m)
	}
	a1.register()
	list, err := e.cl.Devices(ctx, a1.cred, "alice")
	if err != nil || len(list) != 1 || !list[0].Key.Equal(a1.key()) || !bytes.Equal(list[0].X25519, a1.x) {
		t.Fatalf("Devices: %+v %v", list, err)
	}

	// Others see the list only as accepted contacts.
	b := e.device("bob")
	for _, tt := range []struct {
		user string
		want error
	}{{"alice", loginapi.ErrNotContact}, {"nobody", loginapi.ErrUnknownUser}, {"Bad", loginapi.ErrBadRequest}} {
		if _, err := e.cl.Devices(ctx, b.cred, tt.user); !errors.Is(err, tt.want) {
			t.Errorf("Devices(%s) by bob: got %v, want %v", tt.user, err, tt.want)
		}
	}
	befriend(t, a1, b)
	if list, err := e.cl.Devices(ctx, b.cred, "alice"); err != nil || len(list) != 1 {
		t.Errorf("Devices(alice) by contact bob: %+v %v", list, err)
	}

	// The cap drops the least recently seen device, with its mailbox.
	if _, err := e.cl.PostMailbox(ctx, b.cred, []loginapi.MailboxItem{{ToUser: "alice", ToDevice: a1.key(), ID: "m1", Blob: json.RawMessage(`"x"`)}}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	a2 := e.device("alice")
	e.clock.Advance(time.Second)
	a3 := e.device("alice")
	list, err = e.cl.Devices(ctx, a3.cred, "alice")
	var got []string
	for _, d := range list {
		got = append(got, b64(d.Key))
	}
	if want := []string{b64(a3.key()), b64(a2.key())}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("devices after the cap: got %v %v, want %v (newest first)", got, err, want)
	}
	if items, _, err := e.cl.Mailbox(ctx, a1.cred, 0); err != nil || len(items) != 0 {
		t.Errorf("dropped device's mailbox: %d items, %v; want none", len(items), err)
	}

	// Delete: once true, then false; the device leaves the list.
	for _, want := range []bool{true, false} {
		if got, err := e.cl.DeleteDevice(ctx, a2.cred); err != nil || got != want {
			t.Errorf("DeleteDevice: got %v %v, want %v", got, err, want)
		}
	}
	if list, err := e.cl.Devices(ctx, a3.cred, "alice"); err != nil || len(list) != 1 || !list[0].Key.Equal(a3.key()) {
		t.Errorf("after delete: %+v %v", list, err)
	}
}

// TestDevicesForgedEntry: the client refuses a device list with an entry
// whose signature does not verify (the server cannot forge one).
func TestDevicesForgedEntry(t *testing.T) {
	d := loginapi.Device{Key: newKey(t), X25519: make([]byte, 32), Sig: make([]byte, 64)}
	body, _ := json.Marshal(loginapi.DevicesResponse{User: "bob", Devices: []loginapi.Device{d}})
	cl := loginapi.NewClient(newStaticServer(t, 200, string(body)), nil)
	if _, err := cl.Devices(t.Context(), "x.y", "bob"); !errors.Is(err, loginapi.ErrServer) || !strings.Contains(err.Error(), "does not verify") {
		t.Errorf("got %v, want ErrServer naming the signature", err)
	}
}

func TestMailbox(t *testing.T) { eachStore(t, testMailbox) }

func testMailbox(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db, MailboxQuotaBytes: 4000})
	ctx := t.Context()
	a1, a2 := e.device("alice"), e.device("alice")
	b1, b2 := e.device("bob"), e.device("bob")
	carol := e.device("carol")
	befriend(t, a1, b1)
	blob := json.RawMessage(`{"v":1,"ct":"3q2+7w==","sig":"AA=="}`)
	item := func(to *dev, id string) loginapi.MailboxItem {
		return loginapi.MailboxItem{ToUser: to.user, ToDevice: to.key(), ID: id, Blob: blob}
	}
	count := func(d *dev) int {
		t.Helper()
		items, _, err := e.cl.Mailbox(ctx, d.cred, loginapi.MaxMailboxFetch)
		if err != nil {
			t.Fatalf("Mailbox: %v", err)
		}
		return len(items)
	}

	// All or nothing: one bad item and nothing is stored.
	unregistered := e.login("bob")
	for _, tt := range []struct {
		name string
		bad  loginapi.MailboxItem
		want error
		msg  string
	}{
		{"unknown user", loginapi.MailboxItem{ToUser: "nobody", ToDevice: b1.key(), ID: "x", Blob: blob}, loginapi.ErrUnknownUser, "items[1].to_user nobody"},
		{"not a contact", item(carol, "x"), loginapi.ErrNotContact, "items[1].to_user carol"},
		{"unregistered device", item(unregistered, "x"), loginapi.ErrUnknownDevice, "items[1].to_device"},
		{"device of another user", loginapi.MailboxItem{ToUser: "bob", ToDevice: a2.key(), ID: "x", Blob: blob}, loginapi.ErrUnknownDevice, "items[1].to_device"},
		{"empty id", item(b2, ""), loginapi.ErrBadRequest, "items[1].id must be 1 to 64 bytes"},
		{"long id", item(b2, strings.Repeat("i", 65)), loginapi.ErrBadRequest, "items[1].id must be 1 to 64 bytes"},
		{"control character in id", item(b2, "a\nb"), loginapi.ErrBadRequest, "control characters"},
		{"null blob", loginapi.MailboxItem{ToUser: "bob", ToDevice: b2.key(), ID: "x", Blob: json.RawMessage(`null`)}, loginapi.ErrBadRequest, "must not be null"},
		{"missing blob", loginapi.MailboxItem{ToUser: "bob", ToDevice: b2.key(), ID: "x"}, loginapi.ErrBadRequest, "null"},
		{"bad to_user", loginapi.MailboxItem{ToUser: "Bob", ToDevice: b2.key(), ID: "x", Blob: blob}, loginapi.ErrBadRequest, "items[1].to_user"},
		{"short to_device", loginapi.MailboxItem{ToUser: "bob", ToDevice: b2.key()[:31], ID: "x", Blob: blob}, loginapi.ErrBadRequest, "items[1].to_device must be"},
		{"big blob", loginapi.MailboxItem{ToUser: "bob", ToDevice: b2.key(), ID: "x", Blob: json.RawMessage(`"` + strings.Repeat("a", loginapi.MaxBlobBytes) + `"`)}, loginapi.ErrBadRequest, "at most 102400"},
	} {
		_, err := e.cl.PostMailbox(ctx, a1.cred, []loginapi.MailboxItem{item(b1, "ok"), tt.bad})
		if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: got %v, want %v with %q", tt.name, err, tt.want, tt.msg)
		}
	}
	if n := count(b1); n != 0 {
		t.Fatalf("after refused posts bob's device holds %d items, want 0", n)
	}
	if _, err := e.cl.PostMailbox(ctx, a1.cred, make([]loginapi.MailboxItem, loginapi.MaxMailboxItems+1)); !errors.Is(err, loginapi.ErrBadRequest) {
		t.Errorf("too many items: got %v", err)
	}
	var many loginapi.MailboxClientRequest
	for i := range loginapi.MaxMailboxItems + 1 {
		many.Items = append(many.Items, item(b1, fmt.Sprint(i)))
	}
	if code, m, _ := authCall(t, e.h, "POST", "/api/v1/mailbox", "", "Parley "+a1.cred, many); code != 400 || !strings.Contains(m["error"].(string), "at most 64") {
		t.Errorf("65 items on the wire: %d %v", code, m)
	}

	// Every device of each recipient, and the sender's own other device.
	send := []loginapi.MailboxItem{item(b1, "m1"), item(b2, "m1"), item(a2, "m1")}
	for _, want := range []loginapi.MailboxResult{{Stored: 3}, {Duplicates: 3}} {
		got, err := e.cl.PostMailbox(ctx, a1.cred, send)
		if err != nil || *got != want {
			t.Errorf("PostMailbox: got %+v %v, want %+v", got, err, want)
		}
	}
	e.clock.Advance(time.Second)
	var seqs = map[*dev]int64{}
	for _, d := range []*dev{b1, b2, a2} {
		items, more, err := e.cl.Mailbox(ctx, d.cred, 0)
		if err != nil || more || len(items) != 1 {
			t.Fatalf("%s's device: %d items (more %v), %v; want 1", d.user, len(items), more, err)
		}
		got := items[0]
		want := loginapi.MailboxEntry{Seq: got.Seq, FromUser: "alice", FromDevice: a1.key(), ID: "m1", Blob: blob, Created: e.clock.Now().Unix() - 1}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("entry: got %+v, want %+v", got, want)
		}
		seqs[d] = got.Seq
	}
	if n := count(a1); n != 0 {
		t.Errorf("sender's own device got %d items, want 0", n)
	}
	// Ack removes only the caller device's own items.
	if n, err := e.cl.AckMailbox(ctx, b1.cred, []int64{seqs[b2], seqs[a2]}); err != nil || n != 0 {
		t.Errorf("ack of others' seqs: %d %v, want 0", n, err)
	}
	if n, err := e.cl.AckMailbox(ctx, b1.cred, []int64{seqs[b1], seqs[b1] + 1000}); err != nil || n != 1 {
		t.Errorf("ack: %d %v, want 1", n, err)
	}
	if got := []int{count(b1), count(b2), count(a2)}; !reflect.DeepEqual(got, []int{0, 1, 1}) {
		t.Errorf("after bob's first device acked: %v, want [0 1 1]", got)
	}

	// Quota: 4000 bytes per device; a post that would pass it is refused whole.
	big := json.RawMessage(`"` + strings.Repeat("z", 1500) + `"`)
	b2items, _, _ := e.cl.Mailbox(ctx, b2.cred, 0)
	e.cl.AckMailbox(ctx, b2.cred, []int64{b2items[0].Seq})
	if _, err := e.cl.PostMailbox(ctx, a1.cred, []loginapi.MailboxItem{{ToUser: "bob", ToDevice: b2.key(), ID: "q1", Blob: big}, {ToUser: "bob", ToDevice: b2.key(), ID: "q2", Blob: big}}); err != nil {
		t.Fatalf("within quota: %v", err)
	}
	_, err := e.cl.PostMailbox(ctx, a1.cred, []loginapi.MailboxItem{item(b1, "q3"), {ToUser: "bob", ToDevice: b2.key(), ID: "q4", Blob: big}})
	var ae *loginapi.APIError
	if !errors.Is(err, loginapi.ErrQuota) || !errors.As(err, &ae) || ae.Status != http.StatusInsufficientStorage || !strings.Contains(err.Error(), "items[1]") || ae.Item != 1 {
		t.Errorf("over quota: got %v (%+v), want 507 ErrQuota naming items[1]", err, ae)
	}
	if got := []int{count(b1), count(b2)}; !reflect.DeepEqual(got, []int{0, 2}) {
		t.Errorf("after the refused post: %v, want [0 2]", got)
	}
	// A resend of stored items does not count twice.
	if _, err := e.cl.PostMailbox(ctx, a1.cred, []loginapi.MailboxItem{{ToUser: "bob", ToDevice: b2.key(), ID: "q1", Blob: big}}); err != nil {
		t.Errorf("resend at quota: %v", err)
	}

	// Paging: limit and more, oldest first.
	for i := range 5 {
		if _, err := e.cl.PostMailbox(ctx, a1.cred, []loginapi.MailboxItem{item(b1, fmt.Sprint("p", i))}); err != nil {
			t.Fatal(err)
		}
	}
	items, more, err := e.cl.Mailbox(ctx, b1.cred, 2)
	if err != nil || !more || len(items) != 2 || items[0].ID != "p0" || items[1].ID != "p1" {
		t.Errorf("limit 2: %+v more %v %v", items, more, err)
	}
	if code, _, _ := authCall(t, e.h, "GET", "/api/v1/mailbox?limit=101", "", "Parley "+b1.cred, nil); code != 400 {
		t.Errorf("limit 101: %d, want 400", code)
	}

	// Items expire after MailboxTTL.
	e.clock.Advance(DefaultMailboxTTL)
	e.srv.prune(ctx)
	b1.relogin()
	if n := count(b1); n != 0 {
		t.Errorf("after MailboxTTL: %d items, want 0", n)
	}
}

// passUsers sets up a group: alice (the adder) is an accepted contact of bob
// and of carol, who are not contacts of each other; dave is bob's contact
// but not alice's; erin asked bob, who has not answered. It returns alice's
// device, alice's unregistered device, and the users by name.
func passUsers(t *testing.T, e *env) (d map[string]*dev, unregistered *dev) {
	t.Helper()
	d = map[string]*dev{}
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
		d[u] = e.device(u)
	}
	befriend(t, d["alice"], d["bob"])
	befriend(t, d["alice"], d["carol"])
	befriend(t, d["dave"], d["bob"])
	if _, err := e.cl.RequestContact(t.Context(), d["erin"].cred, "bob"); err != nil {
		t.Fatal(err)
	}
	return d, e.login("alice")
}

// passCall sends GET path with the credential and a Parley-Pass header per
// value in passes, straight to the handler.
func passCall(t *testing.T, h http.Handler, path, cred string, passes ...string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	req.Header.Set("Authorization", "Parley "+cred)
	for _, p := range passes {
		req.Header.Add(loginapi.PassHeader, p)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("GET %s: answer %d is not JSON: %q", path, rec.Code, rec.Body.String())
	}
	return rec.Code, m
}

// TestDevicesPass: a pass signed by a contact of the user lets a
// non-contact read the user's device list.
func TestDevicesPass(t *testing.T) { eachStore(t, testDevicesPass) }

func testDevicesPass(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	logs, buf := captureLogs()
	e.srv.log = logs
	d, unregistered := passUsers(t, e)
	alice, carol := d["alice"], d["carol"]
	pass := func(user, by string, key ed25519.PrivateKey) string {
		return loginapi.NewPass(user, by, key).Encode()
	}
	good := pass("bob", "alice", alice.priv)
	tampered := loginapi.NewPass("bob", "alice", alice.priv)
	tampered.User = "dave"
	js, _ := json.Marshal(loginapi.NewPass("bob", "alice", alice.priv))
	tests := []struct {
		name   string
		passes []string // Parley-Pass headers
		code   int
		want   string // in the error message
	}{
		{"not a contact, no pass", nil, 403, "not a contact: bob is not your accepted contact"},
		{"valid pass", []string{good}, 200, ""},
		{"signed by another user's device", []string{pass("bob", "alice", d["dave"].priv)}, 403, "did not admit you"},
		{"signed by an unregistered device of by", []string{pass("bob", "alice", unregistered.priv)}, 403, "did not admit you"},
		{"by not a contact of user", []string{pass("bob", "carol", carol.priv)}, 403, "did not admit you"},
		{"by's request to user not accepted", []string{pass("bob", "erin", d["erin"].priv)}, 403, "did not admit you"},
		{"by is user: a user's own pass", []string{pass("bob", "bob", d["bob"].priv)}, 200, ""},
		{"by is user, signed by another's device", []string{pass("bob", "bob", alice.priv)}, 403, "did not admit you"},
		{"pass naming another user", []string{pass("dave", "alice", alice.priv)}, 403, "did not admit you"},
		{"malformed: garbage", []string{"not a pass"}, 400, "malformed pass: Parley-Pass header: not base64url"},
		{"malformed: empty", []string{""}, 400, "malformed pass: Parley-Pass header: not a JSON object"},
		{"malformed: plain JSON", []string{string(js)}, 400, "malformed pass: Parley-Pass header: not base64url"},
		{"malformed: too long", []string{strings.Repeat("A", loginapi.MaxPassBytes+1)}, 400, "malformed pass: Parley-Pass header: 1025 bytes"},
		{"malformed: signature does not verify", []string{tampered.Encode()}, 400, "malformed pass: Parley-Pass header: signature does not verify"},
		{"malformed: two headers", []string{good, good}, 400, "malformed pass: Parley-Pass header: send one, not 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, m := passCall(t, e.h, "/api/v1/users/bob/devices", carol.cred, tt.passes...)
			msg, _ := m["error"].(string)
			if code != tt.code || !strings.Contains(msg, tt.want) {
				t.Fatalf("got %d %v, want %d with %q", code, m, tt.code, tt.want)
			}
			if code == 200 {
				devs, _ := m["devices"].([]any)
				if m["user"] != "bob" || len(devs) != 1 {
					t.Errorf("answer %v, want bob's one device", m)
				}
			}
		})
	}
	// The Go client: the list, verified; ErrNotContact when refused.
	ctx := t.Context()
	p := loginapi.NewPass("bob", "alice", alice.priv)
	if list, err := e.cl.DevicesWithPass(ctx, carol.cred, "bob", &p); err != nil || len(list) != 1 || !list[0].Key.Equal(d["bob"].key()) {
		t.Errorf("DevicesWithPass: got %+v %v, want bob's device", list, err)
	}
	other := loginapi.NewPass("dave", "alice", alice.priv)
	if _, err := e.cl.DevicesWithPass(ctx, carol.cred, "bob", &other); !errors.Is(err, loginapi.ErrNotContact) {
		t.Errorf("DevicesWithPass with a pass for dave: got %v, want ErrNotContact", err)
	}
	// A contact needs no pass, and a bad one is not even read.
	if code, m := passCall(t, e.h, "/api/v1/users/bob/devices", alice.cred, "not a pass"); code != 200 {
		t.Errorf("contact with a garbage pass: %d %v, want 200", code, m)
	}
	// An unknown user is 404 before any pass.
	if code, m := passCall(t, e.h, "/api/v1/users/nobody/devices", carol.cred, good); code != 404 {
		t.Errorf("unknown user with a pass: %d %v, want 404", code, m)
	}
	// Revocation: the pass stops working when alice's device goes, or when
	// alice and bob stop being contacts.
	if _, err := e.cl.DeleteDevice(ctx, alice.cred); err != nil {
		t.Fatal(err)
	}
	if code, m := passCall(t, e.h, "/api/v1/users/bob/devices", carol.cred, good); code != 403 {
		t.Errorf("after alice's device was removed: %d %v, want 403", code, m)
	}
	alice.register()
	if code, m := passCall(t, e.h, "/api/v1/users/bob/devices", carol.cred, good); code != 200 {
		t.Errorf("after alice's device registered again: %d %v, want 200", code, m)
	}
	if _, err := e.cl.DeclineContact(ctx, d["bob"].cred, "alice"); err != nil {
		t.Fatal(err)
	}
	if code, m := passCall(t, e.h, "/api/v1/users/bob/devices", carol.cred, good); code != 403 {
		t.Errorf("after bob removed alice: %d %v, want 403", code, m)
	}
	// Never logged: the pass's signature (nor the header).
	sig := base64.StdEncoding.EncodeToString(p.Sig)
	if logged := buf.String(); strings.Contains(logged, sig) || strings.Contains(logged, good) {
		t.Errorf("the log holds a pass or its signature:\n%s", logged)
	}
}

// TestMailboxPass: an item's pass lets a non-contact post to the user's
// mailbox.
func TestMailboxPass(t *testing.T) { eachStore(t, testMailboxPass) }

func testMailboxPass(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	ctx := t.Context()
	d, unregistered := passUsers(t, e)
	alice, bob, carol := d["alice"], d["bob"], d["carol"]
	blob := json.RawMessage(`{"ct":"AA=="}`)
	good := loginapi.NewPass("bob", "alice", alice.priv)
	item := func(id string, p *loginapi.Pass) loginapi.MailboxItem {
		return loginapi.MailboxItem{ToUser: "bob", ToDevice: bob.key(), ID: id, Blob: blob, Pass: p}
	}
	pass := func(user, by string, key ed25519.PrivateKey) *loginapi.Pass {
		p := loginapi.NewPass(user, by, key)
		return &p
	}
	tests := []struct {
		name  string
		items []loginapi.MailboxItem
		want  error  // nil: stored
		item  int    // the refused item
		msg   string // in the error
	}{
		{"not a contact, no pass", []loginapi.MailboxItem{item("n1", nil)}, loginapi.ErrNotContact, 0, "items[0].to_user bob is not your accepted contact"},
		{"signed by another user's device", []loginapi.MailboxItem{item("n2", pass("bob", "alice", d["dave"].priv))}, loginapi.ErrNotContact, 0, "items[0].pass did not admit you"},
		{"signed by an unregistered device of by", []loginapi.MailboxItem{item("n3", pass("bob", "alice", unregistered.priv))}, loginapi.ErrNotContact, 0, "did not admit you"},
		{"by not a contact of user", []loginapi.MailboxItem{item("n4", pass("bob", "carol", carol.priv))}, loginapi.ErrNotContact, 0, "did not admit you"},
		{"pass naming another user", []loginapi.MailboxItem{item("n5", pass("dave", "alice", alice.priv))}, loginapi.ErrNotContact, 0, "did not admit you"},
		{"a pass admits only its own item", []loginapi.MailboxItem{item("n6", &good), item("n7", nil)}, loginapi.ErrNotContact, 1, "items[1].to_user bob is not your accepted contact"},
		{"valid pass", []loginapi.MailboxItem{item("m1", &good), item("m2", &good)}, nil, 0, ""},
		{"valid pass, to a contact too", []loginapi.MailboxItem{item("m3", &good), {ToUser: "alice", ToDevice: alice.key(), ID: "m3", Blob: blob, Pass: &good}}, nil, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.cl.PostMailbox(ctx, carol.cred, tt.items)
			var ae *loginapi.APIError
			if tt.want == nil {
				if err != nil {
					t.Fatalf("got %v, want stored", err)
				}
				return
			}
			if !errors.Is(err, tt.want) || !errors.As(err, &ae) || ae.Status != 403 || ae.Item != tt.item || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("got %v (%+v), want 403 %v naming items[%d] with %q", err, ae, tt.want, tt.item, tt.msg)
			}
		})
	}
	// Stored and fetchable by the recipient, from carol; nothing of the
	// refused posts.
	items, _, err := e.cl.Mailbox(ctx, bob.cred, 0)
	var got []string
	for _, it := range items {
		got = append(got, it.FromUser+"/"+it.ID)
		if string(it.Blob) != string(blob) {
			t.Errorf("item %s: blob %s, want %s", it.ID, it.Blob, blob)
		}
	}
	if want := []string{"carol/m1", "carol/m2", "carol/m3"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("bob's mailbox: got %v %v, want %v", got, err, want)
	}

	// A malformed pass is 400 naming the item (on the wire: the Go client
	// refuses one before sending).
	okItem := map[string]any{"to_user": "bob", "to_device": b64(bob.key()), "id": "x0", "blob": blob, "pass": good}
	tampered := loginapi.NewPass("bob", "alice", alice.priv)
	tampered.By = "dave"
	for _, tt := range []struct {
		name string
		pass any
		want string
	}{
		{"signature does not verify", tampered, "signature does not verify"},
		{"short device", map[string]any{"user": "bob", "by": "alice", "device": "AAAA", "sig": b64(good.Sig)}, "device is 3 bytes"},
		{"device not base64", map[string]any{"user": "bob", "by": "alice", "device": "!!", "sig": b64(good.Sig)}, "not a JSON object"},
		{"bad by", map[string]any{"user": "bob", "by": "Alice", "device": b64(good.Device), "sig": b64(good.Sig)}, "by: invalid user name"},
		{"a string", good.Encode(), "not a JSON object"},
		{"empty object", map[string]any{}, "user: invalid user name"},
		{"too big", map[string]any{"user": "bob", "by": "alice", "device": b64(good.Device), "sig": b64(good.Sig), "pad": strings.Repeat("p", loginapi.MaxPassBytes)}, "bytes, at most 1024"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bad := map[string]any{"to_user": "bob", "to_device": b64(bob.key()), "id": "x1", "blob": blob, "pass": tt.pass}
			code, m, _ := authCall(t, e.h, "POST", "/api/v1/mailbox", "", "Parley "+carol.cred, map[string]any{"items": []any{okItem, bad}})
			msg, _ := m["error"].(string)
			const prefix = "malformed pass: items[1].pass: "
			if code != 400 || !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tt.want) || m["item"] != float64(1) {
				t.Errorf("got %d %v, want 400 with %q, %q and item 1", code, m, prefix, tt.want)
			}
		})
	}
	// Even on an item to a contact.
	bad := map[string]any{"to_user": "alice", "to_device": b64(alice.key()), "id": "x2", "blob": blob, "pass": tampered}
	if code, m, _ := authCall(t, e.h, "POST", "/api/v1/mailbox", "", "Parley "+carol.cred, map[string]any{"items": []any{bad}}); code != 400 || m["item"] != float64(0) {
		t.Errorf("bad pass on an item to a contact: %d %v, want 400 item 0", code, m)
	}
	// A null pass is no pass.
	null := map[string]any{"to_user": "alice", "to_device": b64(alice.key()), "id": "x3", "blob": blob, "pass": nil}
	if code, m, _ := authCall(t, e.h, "POST", "/api/v1/mailbox", "", "Parley "+carol.cred, map[string]any{"items": []any{null}}); code != 200 {
		t.Errorf("null pass to a contact: %d %v, want 200", code, m)
	}
	if items, _, _ := e.cl.Mailbox(ctx, bob.cred, 0); len(items) != 3 {
		t.Errorf("after the refused posts bob's mailbox holds %d items, want 3", len(items))
	}
}

// TestMailboxBlobExact: the store only ever holds the opaque blob, and
// returns it byte for byte (in compact form).
func TestMailboxBlobExact(t *testing.T) { eachStore(t, testMailboxBlobExact) }

func testMailboxBlobExact(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	ctx := t.Context()
	a := e.device("alice")
	a2 := e.device("alice")
	tests := []struct{ in, want string }{
		{`{"ct":"<&>\u2028é\"","n":[1,2.50e10,-0,true,null],"o":{}}`, `{"ct":"<&>\u2028é\"","n":[1,2.50e10,-0,true,null],"o":{}}`},
		{`"plain string"`, `"plain string"`},
		{"{ \"a\" :\n [ 1 , 2 ] }", `{"a":[1,2]}`},
		// (A blob with a duplicate key is refused: TestDuplicateKeysRefused.)
	}
	for i, tt := range tests {
		id := fmt.Sprint("b", i)
		if _, err := e.cl.PostMailbox(ctx, a.cred, []loginapi.MailboxItem{{ToUser: "alice", ToDevice: a2.key(), ID: id, Blob: json.RawMessage(tt.in)}}); err != nil {
			t.Fatalf("post %q: %v", tt.in, err)
		}
	}
	items, _, err := e.cl.Mailbox(ctx, a2.cred, 0)
	if err != nil || len(items) != len(tests) {
		t.Fatalf("Mailbox: %d items, %v", len(items), err)
	}
	for i, tt := range tests {
		if got := string(items[i].Blob); got != tt.want {
			t.Errorf("blob %d: got %q, want %q", i, got, tt.want)
		}
	}
	// The server compacts what it stores (a client may send whitespace).
	raw := `{"items":[{"to_user":"alice","to_device":"` + b64(a.key()) + `","id":"w","blob":{ "a" : [ 1 ,"<b>" ] }}]}`
	if code, m, _ := authCall(t, e.h, "POST", "/api/v1/mailbox", "", "Parley "+a2.cred, raw); code != 200 {
		t.Fatalf("raw post: %d %v", code, m)
	}
	if items, _, err := e.cl.Mailbox(ctx, a.cred, 0); err != nil || len(items) != 1 || string(items[0].Blob) != `{"a":[1,"<b>"]}` {
		t.Errorf("compacted blob: %+v %v", items, err)
	}
	// On the wire too: the answer holds the blob's bytes unescaped.
	req := httptest.NewRequest("GET", "/api/v1/mailbox", nil)
	req.Header.Set("Authorization", "Parley "+a2.cred)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if !strings.Contains(rec.Body.String(), tests[0].want) {
		t.Errorf("wire answer does not hold the blob verbatim: %s", rec.Body)
	}
}

func TestContacts(t *testing.T) { eachStore(t, testContacts) }

func testContacts(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db})
	ctx := t.Context()
	d := map[string]*dev{}
	for _, u := range []string{"alice", "bob", "carol"} {
		d[u] = e.login(u)
	}
	type want map[string][]loginapi.Contact
	steps := []struct {
		name       string
		actor, op  string
		peer       string
		wantState  string
		wantErr    error
		wantLists  want
		setStatus  string // actor's status before the step
		skipStatus bool
	}{
		{name: "request", actor: "alice", op: "request", peer: "bob", wantState: loginapi.ContactRequested,
			wantLists: want{"alice": {{User: "bob", State: loginapi.ContactRequested}}, "bob": {{User: "alice", State: loginapi.ContactPending}}}},
		{name: "request again", actor: "alice", op: "request", peer: "bob", wantState: loginapi.ContactRequested},
		{name: "accept own request", actor: "alice", op: "accept", peer: "bob", wantErr: loginapi.ErrNoRequest},
		{name: "accept", actor: "bob", op: "accept", peer: "alice", wantState: loginapi.ContactAccepted,
			wantLists: want{"alice": {{User: "bob", State: loginapi.ContactAccepted, Status: presence.Online}}, "bob": {{User: "alice", State: loginapi.ContactAccepted, Status: presence.Online}}}},
		{name: "accept again", actor: "bob", op: "accept", peer: "alice", wantState: loginapi.ContactAccepted},
		{name: "invisible shown as offline", actor: "alice", op: "request", peer: "bob", wantState: loginapi.ContactAccepted, setStatus: presence.Invisible,
			wantLists: want{"bob": {{User: "alice", State: loginapi.ContactAccepted, Status: presence.Offline}}, "alice": {{User: "bob", State: loginapi.ContactAccepted, Status: presence.Online}}}},
		{name: "busy shown", actor: "alice", op: "request", peer: "bob", wantState: loginapi.ContactAccepted, setStatus: presence.Busy,
			wantLists: want{"bob": {{User: "alice", State: loginapi.ContactAccepted, Status: presence.Busy}}}},
		{name: "remove accepted", actor: "bob", op: "decline", peer: "alice", wantState: loginapi.ContactNone,
			wantLists: want{"alice": {}, "bob": {}}},
		{name: "decline nothing", actor: "bob", op: "decline", peer: "alice", wantState: loginapi.ContactNone},
		{name: "accept without request", actor: "bob", op: "accept", peer: "alice", wantErr: loginapi.ErrNoRequest},
		{name: "request from the other side", actor: "bob", op: "request", peer: "alice", wantState: loginapi.ContactRequested},
		{name: "mutual request accepts", actor: "alice", op: "request", peer: "bob", wantState: loginapi.ContactAccepted,
			wantLists: want{"alice": {{User: "bob", State: loginapi.ContactAccepted, Status: presence.Online}}, "bob": {{User: "alice", State: loginapi.ContactAccepted, Status: presence.Busy}}}},
		{name: "carol asks alice", actor: "carol", op: "request", peer: "alice", wantState: loginapi.ContactRequested,
			wantLists: want{"alice": {{User: "bob", State: loginapi.ContactAccepted, Status: presence.Online}, {User: "carol", State: loginapi.ContactPending}}}},
		{name: "alice declines carol", actor: "alice", op: "decline", peer: "carol", wantState: loginapi.ContactNone,
			wantLists: want{"alice": {{User: "bob", State: loginapi.ContactAccepted, Status: presence.Online}}, "carol": {}}},
		{name: "carol asks and withdraws", actor: "carol", op: "request", peer: "bob", wantState: loginapi.ContactRequested},
		{name: "withdraw", actor: "carol", op: "decline", peer: "bob", wantState: loginapi.ContactNone,
			wantLists: want{"carol": {}, "bob": {{User: "alice", State: loginapi.ContactAccepted, Status: presence.Busy}}}},
		{name: "self", actor: "alice", op: "request", peer: "alice", wantErr: loginapi.ErrBadRequest},
		{name: "unknown user", actor: "alice", op: "request", peer: "nobody", wantErr: loginapi.ErrUnknownUser},
		{name: "unknown user decline", actor: "alice", op: "decline", peer: "nobody", wantErr: loginapi.ErrUnknownUser},
		{name: "impossible name", actor: "alice", op: "accept", peer: "No", wantErr: loginapi.ErrBadRequest},
	}
	for _, st := range steps {
		a := d[st.actor]
		if st.setStatus != "" {
			if err := e.cl.SetStatus(ctx, a.cred, st.setStatus); err != nil {
				t.Fatalf("%s: SetStatus: %v", st.name, err)
			}
		}
		var got string
		var err error
		switch st.op {
		case "request":
			got, err = e.cl.RequestContact(ctx, a.cred, st.peer)
		case "accept":
			got, err = e.cl.AcceptContact(ctx, a.cred, st.peer)
		case "decline":
			got, err = e.cl.DeclineContact(ctx, a.cred, st.peer)
		}
		if st.wantErr != nil {
			if !errors.Is(err, st.wantErr) {
				t.Errorf("%s: got %q %v, want %v", st.name, got, err, st.wantErr)
			}
			continue
		}
		if err != nil || got != st.wantState {
			t.Errorf("%s: got %q %v, want %q", st.name, got, err, st.wantState)
		}
		for u, w := range st.wantLists {
			list, err := e.cl.Contacts(ctx, d[u].cred)
			if err != nil || !reflect.DeepEqual(list, w) {
				t.Errorf("%s: %s's contacts: got %+v %v, want %+v", st.name, u, list, err, w)
			}
		}
	}

	// Own status: as set, invisible included; bad values listed.
	if got, err := e.cl.Status(ctx, d["carol"].cred); err != nil || got != presence.Online {
		t.Errorf("default status: %q %v", got, err)
	}
	if err := e.cl.SetStatus(ctx, d["carol"].cred, presence.Invisible); err != nil {
		t.Fatal(err)
	}
	if got, err := e.cl.Status(ctx, d["carol"].cred); err != nil || got != presence.Invisible {
		t.Errorf("own status: %q %v, want invisible", got, err)
	}
	for _, bad := range []string{"", "offline", "Online", "dnd"} {
		err := e.cl.SetStatus(ctx, d["carol"].cred, bad)
		if !errors.Is(err, loginapi.ErrBadRequest) || !strings.Contains(err.Error(), "online, away, busy, invisible") {
			t.Errorf("SetStatus(%q): got %v, want 400 listing the values", bad, err)
		}
	}
}

func TestContactLimits(t *testing.T) { eachStore(t, testContactLimits) }

func testContactLimits(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db, MaxContacts: 2, MaxContactRequestsPerDay: 3})
	ctx := t.Context()
	a := e.login("alice")
	var others []*dev
	for i := range 5 {
		others = append(others, e.login(fmt.Sprint("u", i)))
	}
	// The contact cap, on the asking side and on the asked side.
	for i, want := range []error{nil, nil, loginapi.ErrQuota} {
		_, err := e.cl.RequestContact(ctx, a.cred, others[i].user)
		if !errors.Is(err, want) {
			t.Errorf("request %d: got %v, want %v", i, err, want)
		}
	}
	if _, err := e.cl.RequestContact(ctx, others[3].cred, "alice"); !errors.Is(err, loginapi.ErrQuota) || !strings.Contains(err.Error(), "alice's contact list is full") {
		t.Errorf("request to a full list: got %v", err)
	}
	// Declining frees a place.
	if _, err := e.cl.DeclineContact(ctx, a.cred, "u0"); err != nil {
		t.Fatal(err)
	}
	// The daily request limit: alice made 2 requests; the third new one
	// passes, the fourth does not (the list is not full after declines).
	e.cl.DeclineContact(ctx, a.cred, "u1")
	if _, err := e.cl.RequestContact(ctx, a.cred, "u3"); err != nil {
		t.Errorf("third request: %v", err)
	}
	e.cl.DeclineContact(ctx, a.cred, "u3")
	_, err := e.cl.RequestContact(ctx, a.cred, "u4")
	var ae *loginapi.APIError
	if !errors.Is(err, loginapi.ErrRateLimited) || !errors.As(err, &ae) || ae.RetryAfter <= 0 || !strings.Contains(err.Error(), "too many contact requests") {
		t.Errorf("fourth request in a day: got %v, want ErrRateLimited with RetryAfter", err)
	}
	// Accepting, and asking someone who asked first, are not new requests.
	if _, err := e.cl.RequestContact(ctx, others[2].cred, "alice"); err != nil {
		t.Fatal(err)
	}
	if st, err := e.cl.AcceptContact(ctx, a.cred, "u2"); err != nil || st != loginapi.ContactAccepted {
		t.Errorf("accept while rate limited: %q %v", st, err)
	}
	if st, err := e.cl.RequestContact(ctx, a.cred, "u2"); err != nil || st != loginapi.ContactAccepted {
		t.Errorf("request to an accepted contact while rate limited: %q %v", st, err)
	}
	e.clock.Advance(contactRequestWindow)
	a.relogin()
	if _, err := e.cl.RequestContact(ctx, a.cred, "u4"); err != nil {
		t.Errorf("request a day later: %v", err)
	}
}

func TestSearch(t *testing.T) { eachStore(t, testSearch) }

func testSearch(t *testing.T, db string) {
	e := newEnv(t, Config{DB: db, MaxSearchesPerUser: 12, MaxSearchesPerAddr: 14})
	ctx := t.Context()
	for _, u := range []string{"alice", "alice2", "alex", "al_b", "al.c", "bob"} {
		if err := e.cl.Register(ctx, u, "password1"); err != nil {
			t.Fatal(err)
		}
	}
	a := e.login("alice")
	tests := []struct {
		prefix string
		limit  int
		want   []string
		err    error
	}{
		{"al", 0, []string{"al.c", "al_b", "alex", "alice", "alice2"}, nil},
		{"ali", 0, []string{"alice", "alice2"}, nil},
		{"al_", 0, []string{"al_b"}, nil}, // '_' is not a wildcard
		{"alice2", 0, []string{"alice2"}, nil},
		{"al", 2, []string{"al.c", "al_b"}, nil},
		{"z", 0, []string{}, nil},
		{"", 0, nil, loginapi.ErrBadRequest},
		{"A", 0, nil, loginapi.ErrBadRequest},
		{"1a", 0, nil, loginapi.ErrBadRequest},
		{"a%", 0, nil, loginapi.ErrBadRequest},
		{strings.Repeat("a", 33), 0, nil, loginapi.ErrBadRequest},
	}
	for _, tt := range tests {
		got, err := e.cl.Search(ctx, a.cred, tt.prefix, tt.limit)
		if !errors.Is(err, tt.err) || (tt.err == nil && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("Search(%q, %d): got %v %v, want %v %v", tt.prefix, tt.limit, got, err, tt.want, tt.err)
		}
	}
	// 6 valid searches so far (refused prefixes do not count). Per user: 12
	// in the window.
	for range 6 {
		if _, err := e.cl.Search(ctx, a.cred, "a", 0); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.cl.Search(ctx, a.cred, "a", 0)
	var ae *loginapi.APIError
	if !errors.Is(err, loginapi.ErrRateLimited) || !errors.As(err, &ae) || ae.RetryAfter <= 0 || !strings.Contains(err.Error(), "too many searches") {
		t.Errorf("13th search: got %v, want ErrRateLimited with RetryAfter", err)
	}
	code, m, h := authCall(t, e.h, "GET", "/api/v1/users?prefix=a", "", "Parley "+a.cred, nil)
	if code != 429 || h.Get("Retry-After") == "" || m["retry_after"] == nil {
		t.Errorf("429 on the wire: %d %v %v", code, m, h)
	}
	// Per address: another user from the same address gets 14 - 14 = 0 more
	// (the refused ones are not counted).
	b := e.login("bob")
	if code, m, _ := authCall(t, e.h, "GET", "/api/v1/users?prefix=a", "192.0.2.7:1", "Parley "+b.cred, nil); code != 200 {
		t.Errorf("bob from another address: %d %v", code, m)
	}
	for i := range 2 {
		code, _, _ := authCall(t, e.h, "GET", "/api/v1/users?prefix=a", "192.0.2.7:1", "Parley "+b.cred, nil)
		_ = i
		if code != 200 {
			t.Errorf("bob search %d: %d", i+2, code)
		}
	}
	// Fill the address's 14: bob from 192.0.2.7 has 3; a third user there.
	c := e.login("carol")
	ok := 0
	for range 12 {
		if code, _, _ := authCall(t, e.h, "GET", "/api/v1/users?prefix=a", "192.0.2.7:1", "Parley "+c.cred, nil); code == 200 {
			ok++
		}
	}
	if ok != 11 {
		t.Errorf("carol from a busy address: %d searches passed, want 11", ok)
	}
	e.clock.Advance(DefaultSearchWindow)
	if _, err := e.cl.Search(ctx, a.cred, "a", 0); err != nil {
		t.Errorf("after the window: %v", err)
	}
}

// TestUserEndpointsMethods: wrong methods are 405 with Allow, PUT included.
func TestUserEndpointsMethods(t *testing.T) {
	e := newEnv(t, Config{})
	for _, tt := range []struct{ method, path, allow string }{
		{"POST", "/api/v1/devices/self", "PUT, DELETE"},
		{"POST", "/api/v1/devices", "GET, HEAD"},
		{"PUT", "/api/v1/devices/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "DELETE"},
		{"PUT", "/api/v1/mailbox", "GET, HEAD, POST"},
		{"DELETE", "/api/v1/status", "GET, HEAD, PUT"},
		{"GET", "/api/v1/contacts/bob", "POST"},
		{"GET", "/api/v1/files", "POST"},
		{"PUT", "/api/v1/files/00112233445566778899aabbccddeeff", "GET, HEAD, DELETE"},
		{"POST", "/api/v1/files/00112233445566778899aabbccddeeff/chunks/0", "GET, HEAD, PUT"},
	} {
		code, _, h := call(t, e.h, tt.method, tt.path, "", nil)
		if code != 405 || h.Get("Allow") != tt.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 %q", tt.method, tt.path, code, h.Get("Allow"), tt.allow)
		}
	}
}
