package callscript_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/callscript"
	"github.com/parley/parley/login"
	"github.com/parley/parley/supernode"
	"github.com/parley/parley/wire/loginapi"
)

// startNetwork starts a login server and a supernode on loopback and returns
// the login server's URL.
func startNetwork(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ls, err := login.New(login.Config{DB: filepath.Join(dir, "login.db"), DataDir: dir,
		Argon2:        login.Argon2Params{Time: 1, Memory: 1024, Threads: 1},
		DialBackAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	lhs := httptest.NewServer(ls.Handler())
	shs := httptest.NewUnstartedServer(nil)
	name := shs.Listener.Addr().String()
	_, nodeKey, _ := ed25519.GenerateKey(nil)
	sn, err := supernode.New(supernode.Config{LoginKey: ls.PublicKey(), Name: name, NodeKey: nodeKey})
	if err != nil {
		t.Fatal(err)
	}
	shs.Config.Handler = sn.Handler()
	shs.Start()
	t.Cleanup(func() {
		sn.Close()
		shs.Close()
		lhs.Close()
		ls.Close()
	})
	if _, err := loginapi.NewClient(lhs.URL, nil).Heartbeat(context.Background(), "ws://"+name+"/v1/ws", nodeKey); err != nil {
		t.Fatal(err)
	}
	return lhs.URL
}

// online registers user and returns its session.
func online(t *testing.T, ctx context.Context, loginURL, user string, onIncoming func(*client.Incoming)) *client.Session {
	t.Helper()
	c, err := client.New(client.Config{Home: t.TempDir(), LoginURL: loginURL})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(ctx, user, "password-"+user); err != nil {
		t.Fatal(err)
	}
	if err := c.Login(ctx, user, "password-"+user); err != nil {
		t.Fatal(err)
	}
	s, err := c.Online(ctx, client.SessionConfig{OnIncoming: onIncoming})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestAnswerer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	loginURL := startNetwork(t)
	answering := callscript.NewAnswerer(callscript.AnswerConfig{Answer: true, RingFor: 200 * time.Millisecond, Limit: 2})
	declining := callscript.NewAnswerer(callscript.AnswerConfig{})
	online(t, ctx, loginURL, "bob", answering.Handler(ctx))
	online(t, ctx, loginURL, "dave", declining.Handler(ctx))
	alice := online(t, ctx, loginURL, "alice", nil)
	carol := online(t, ctx, loginURL, "carol", nil)

	start := time.Now()
	call, err := alice.Call(ctx, "bob", client.Media{})
	if err != nil {
		t.Fatalf("alice calls bob: %v", err)
	}
	if rang := time.Since(start); rang < 200*time.Millisecond {
		t.Errorf("bob answered after %v, want it to ring 200 ms first", rang)
	}
	tests := []struct {
		name       string
		from       *client.Session
		to         string
		wantReason string
	}{
		{"a second caller hears busy", carol, "bob", "busy"},
		{"without Answer every call is declined", alice, "dave", ""},
	}
	for _, tt := range tests {
		_, err := tt.from.Call(ctx, tt.to, client.Media{})
		if !errors.Is(err, client.ErrDeclined) || !strings.Contains(err.Error(), tt.wantReason) {
			t.Errorf("%s: %v, want %v (%s)", tt.name, err, client.ErrDeclined, tt.wantReason)
		}
	}
	select {
	case <-answering.Done():
		t.Fatalf("Done after %d ended calls, want it after 2", answering.Ended())
	default:
	}
	call.Hangup("hangup")
	select {
	case <-answering.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("Done not closed after 2 ended calls (Ended() = %d)", answering.Ended())
	}
	if n := declining.Ended(); n != 1 {
		t.Errorf("the declining answerer counted %d ended calls, want 1", n)
	}
}
