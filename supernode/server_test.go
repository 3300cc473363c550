package supernode_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/supernode"
	"github.com/parley/parley/wire/snapi"
)

type fixture struct {
	loginPub  ed25519.PublicKey
	loginPriv ed25519.PrivateKey
	srv       *supernode.Server
	http      *httptest.Server
	url       string
}

func newFixture(t *testing.T) *fixture { return newFixtureWith(t, nil) }

// newFixtureWith is newFixture with a Config edited by edit (nil: none).
func newFixtureWith(t *testing.T, edit func(*supernode.Config)) *fixture {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(nil)
	hs := httptest.NewUnstartedServer(nil)
	name := hs.Listener.Addr().String()
	cfg := supernode.Config{LoginKey: pub, Name: name, PingInterval: time.Second}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := supernode.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv.Handler()
	hs.Start()
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	return &fixture{loginPub: pub, loginPriv: priv, srv: srv, http: hs, url: "ws://" + name + "/v1/ws"}
}

// user makes a key pair and a credential for name, valid from nbf to exp.
func (f *fixture) user(t *testing.T, name string, nbf, exp time.Time) (string, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(nil)
	tok, err := identity.Issue(f.loginPriv, identity.Credential{User: name, PublicKey: pub, NotBefore: nbf.Unix(), Expires: exp.Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok, priv
}

func (f *fixture) dial(t *testing.T, tok string, key ed25519.PrivateKey, deliver func(snapi.Frame)) (*snapi.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := snapi.Dial(ctx, snapi.DialConfig{URL: f.url, Credential: tok, Key: key, Deliver: deliver})
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

func TestAttachChecksCredentials(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	good, goodKey := f.user(t, "alice", now.Add(-time.Minute), now.Add(time.Hour))
	expired, expiredKey := f.user(t, "alice", now.Add(-2*time.Hour), now.Add(-time.Hour))
	// A credential signed by some other "login server".
	_, otherLogin, _ := ed25519.GenerateKey(nil)
	fpub, fpriv, _ := ed25519.GenerateKey(nil)
	forged, _ := identity.Issue(otherLogin, identity.Credential{User: "alice", PublicKey: fpub, NotBefore: now.Unix(), Expires: now.Add(time.Hour).Unix()})
	// Bob's genuine credential, presented by someone holding another key.
	bobs, _ := f.user(t, "bob", now.Add(-time.Minute), now.Add(time.Hour))
	_, thief, _ := ed25519.GenerateKey(nil)

	tests := []struct {
		name    string
		tok     string
		key     ed25519.PrivateKey
		wantErr bool
		want    string
	}{
		{"valid", good, goodKey, false, ""},
		{"expired", expired, expiredKey, true, "expired"},
		{"forged", forged, fpriv, true, "signature"},
		{"someone else's", bobs, thief, true, "signature"},
		{"garbage", "not-a-token", goodKey, true, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.dial(t, tt.tok, tt.key, nil)
			if got := err != nil; got != tt.wantErr {
				t.Fatalf("dial err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil {
				return
			}
			if !errors.Is(err, snapi.ErrAuth) {
				t.Errorf("err = %v, want ErrAuth", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %q, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestDialRefusesChallengeForAnotherServer(t *testing.T) {
	f := newFixture(t)
	tok, key := f.user(t, "alice", time.Now(), time.Now().Add(time.Hour))
	// Dial the same server under another name for it: the challenge names the
	// address the server knows itself by, so the client refuses to sign.
	url := strings.Replace(f.url, "127.0.0.1", "localhost", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := snapi.Dial(ctx, snapi.DialConfig{URL: url, Credential: tok, Key: key})
	if !errors.Is(err, snapi.ErrWrongServer) {
		t.Fatalf("err = %v, want ErrWrongServer", err)
	}
}

func TestRouteDeliversToEveryDeviceAndReportsOffline(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	aTok, aKey := f.user(t, "alice", now, now.Add(time.Hour))
	b1Tok, b1Key := f.user(t, "bob", now, now.Add(time.Hour))
	b2Tok, b2Key := f.user(t, "bob", now, now.Add(time.Hour))

	got := make(chan snapi.Frame, 4)
	alice, err := f.dial(t, aTok, aKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		tok string
		key ed25519.PrivateKey
	}{{b1Tok, b1Key}, {b2Tok, b2Key}} {
		if _, err := f.dial(t, d.tok, d.key, func(fr snapi.Frame) { got <- fr }); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	n, err := alice.Send(ctx, "bob", json.RawMessage(`{"hello":1}`))
	if err != nil || n != 2 {
		t.Fatalf("Send = %d, %v; want 2 devices", n, err)
	}
	for i := 0; i < 2; i++ {
		select {
		case fr := <-got:
			if fr.From != "alice" || string(fr.Payload) != `{"hello":1}` {
				t.Errorf("delivered %+v", fr)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no delivery")
		}
	}
	if _, err := alice.Send(ctx, "carol", json.RawMessage(`{}`)); !errors.Is(err, snapi.ErrOffline) {
		t.Errorf("send to offline: %v, want ErrOffline", err)
	}
	if _, err := alice.Send(ctx, "Not A Name", json.RawMessage(`{}`)); err == nil {
		t.Error("send to an invalid name succeeded")
	}
}

func TestRenewRequiresSameUserAndKey(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	tok, key := f.user(t, "alice", now, now.Add(time.Hour))
	c, err := f.dial(t, tok, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := identity.Issue(f.loginPriv, identity.Credential{User: "alice", PublicKey: key.Public().(ed25519.PublicKey), NotBefore: now.Unix(), Expires: now.Add(2 * time.Hour).Unix()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Renew(ctx, fresh); err != nil {
		t.Fatalf("renew: %v", err)
	}
	other, _ := f.user(t, "alice", now, now.Add(2*time.Hour)) // another key
	if err := c.Renew(ctx, other); !errors.Is(err, snapi.ErrAuth) {
		t.Fatalf("renew with another key: %v, want ErrAuth", err)
	}
}

func TestCloseLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		pub, priv, _ := ed25519.GenerateKey(nil)
		hs := httptest.NewUnstartedServer(nil)
		name := hs.Listener.Addr().String()
		srv, err := supernode.New(supernode.Config{LoginKey: pub, Name: name})
		if err != nil {
			t.Fatal(err)
		}
		hs.Config.Handler = srv.Handler()
		hs.Start()
		f := &fixture{loginPub: pub, loginPriv: priv, srv: srv, http: hs, url: "ws://" + name + "/v1/ws"}
		for _, u := range []string{"alice", "bob", "carol"} {
			tok, key := f.user(t, u, time.Now(), time.Now().Add(time.Hour))
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err := snapi.Dial(ctx, snapi.DialConfig{URL: f.url, Credential: tok, Key: key})
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
		}
		if n := srv.Online(); n != 3 {
			t.Errorf("Online = %d, want 3", n)
		}
		srv.Close()
		hs.Close()
	}()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines after Close, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestFloodingSenderIsThrottledNotItsVictim: a sender far over its rate gets
// overload errors; the recipient stays connected and keeps receiving.
func TestFloodingSenderIsThrottledNotItsVictim(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	aTok, aKey := f.user(t, "mallory", now, now.Add(time.Hour))
	bTok, bKey := f.user(t, "bob", now, now.Add(time.Hour))
	mallory, err := f.dial(t, aTok, aKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := f.dial(t, bTok, bKey, func(snapi.Frame) {}) // a recipient that reads everything
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	overloaded := 0
	for i := 0; i < 500; i++ {
		if _, err := mallory.Send(ctx, "bob", json.RawMessage(`{"spam":1}`)); errors.Is(err, snapi.ErrOverload) {
			overloaded++
		}
	}
	if overloaded == 0 {
		t.Error("500 sends at once were never throttled")
	}
	select {
	case <-bob.Done():
		t.Fatalf("the recipient was disconnected: %v", bob.Err())
	default:
	}
	t.Logf("%d of 500 sends refused as overload", overloaded)
}
