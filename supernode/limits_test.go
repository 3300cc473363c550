package supernode_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/parley/parley/supernode"
	"github.com/parley/parley/wire/presence"
	"github.com/parley/parley/wire/snapi"
)

// TestUserSessionCap: 40 sessions attached with one credential from one
// address: the first 32 are kept, the 33rd and later are refused with a
// "limit" error frame, and the kept ones still work.
func TestUserSessionCap(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	tok, key := f.user(t, "bob", now, now.Add(time.Hour))
	got := make(chan snapi.Frame, 64)
	var kept []*snapi.Conn
	for i := 1; i <= 40; i++ {
		c, err := f.dial(t, tok, key, func(fr snapi.Frame) { got <- fr })
		switch {
		case i <= 32 && err != nil:
			t.Fatalf("session %d refused: %v", i, err)
		case i <= 32:
			kept = append(kept, c)
		case err == nil:
			t.Fatalf("session %d of one user attached; want it refused beyond 32 (Online = %d)", i, f.srv.Online())
		case !errors.Is(err, snapi.ErrLimit):
			t.Fatalf("session %d: %v, want ErrLimit", i, err)
		}
	}
	if n := f.srv.Online(); n != 32 {
		t.Fatalf("Online = %d, want 32", n)
	}
	aTok, aKey := f.user(t, "alice", now, now.Add(time.Hour))
	alice, err := f.dial(t, aTok, aKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := alice.Send(context.Background(), "bob", json.RawMessage(`{"hi":1}`))
	if err != nil || n != 32 {
		t.Fatalf("Send to bob = %d, %v; want 32 devices", n, err)
	}
	// The directory record lists at most MaxRecordSessions of them.
	found, err := kept[0].Lookup(context.Background(), "bob")
	if want := min(32, supernode.MaxRecordSessions); err != nil || found.Devices != want {
		t.Fatalf("the first session's lookup = %+v, %v; want %d devices", found, err, want)
	}
}

// TestAddressSessionCap: one address may hold 64 connections by default; the
// 65th is refused with a "limit" error frame, and a slot freed by a session
// that ends is taken again.
func TestAddressSessionCap(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	var conns []*snapi.Conn
	for i := 1; i <= 65; i++ {
		tok, key := f.user(t, fmt.Sprintf("user%d", i), now, now.Add(time.Hour))
		c, err := f.dial(t, tok, key, nil)
		switch {
		case i <= 64 && err != nil:
			t.Fatalf("session %d refused: %v", i, err)
		case i <= 64:
			conns = append(conns, c)
		case err == nil:
			t.Fatalf("session %d from one address attached; want it refused beyond 64", i)
		case !errors.Is(err, snapi.ErrLimit):
			t.Fatalf("session %d: %v, want ErrLimit", i, err)
		}
	}
	conns[0].Close()
	tok, key := f.user(t, "late", now, now.Add(time.Hour))
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := f.dial(t, tok, key, nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after a session closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAddressSessionCapConfigurable: labs raise or lift the cap.
func TestAddressSessionCapConfigurable(t *testing.T) {
	f := newFixtureWith(t, func(c *supernode.Config) { c.MaxSessionsPerAddr = 3 })
	now := time.Now()
	for i := 1; i <= 4; i++ {
		tok, key := f.user(t, fmt.Sprintf("user%d", i), now, now.Add(time.Hour))
		_, err := f.dial(t, tok, key, nil)
		if (i <= 3) != (err == nil) || (err != nil && !errors.Is(err, snapi.ErrLimit)) {
			t.Fatalf("session %d with MaxSessionsPerAddr 3: %v", i, err)
		}
	}
}

// TestDeviceReattachReplacesItsOldSession: a device (same key, same device
// name in its presence frames) that attaches again replaces its old session
// at once; sessions of the same key under another device name (a one-shot
// command run from the same home) and without presence are left alone.
func TestDeviceReattachReplacesItsOldSession(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	tok, key := f.user(t, "bob", now, now.Add(time.Hour))
	old, err := f.dial(t, tok, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := old.SetPresence(presence.Online, "dev-1", nil); err != nil {
		t.Fatal(err)
	}
	other, err := f.dial(t, tok, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.SetPresence(presence.Online, "dev-2", nil); err != nil {
		t.Fatal(err)
	}
	silent, err := f.dial(t, tok, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitOnline(t, f.srv, 3)
	fresh, err := f.dial(t, tok, key, nil) // dev-1 back, without naming its lost session
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.SetPresence(presence.Online, "dev-1", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-old.Done():
	case <-time.After(3 * time.Second):
		t.Fatalf("dev-1's old session was kept after dev-1 attached again (Online = %d)", f.srv.Online())
	}
	waitOnline(t, f.srv, 3)
	for _, c := range []*snapi.Conn{other, silent, fresh} {
		select {
		case <-c.Done():
			t.Fatalf("session %s closed: %v", c.Session(), c.Err())
		default:
		}
	}
}

func waitOnline(t *testing.T, srv *supernode.Server, n int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for srv.Online() != n {
		if time.Now().After(deadline) {
			t.Fatalf("Online = %d, want %d", srv.Online(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIdleSessionIsClosed: an attached connection that sends no frame for
// IdleTimeout is closed with a "limit" error frame (answering pings is not
// enough); one that refreshes its presence stays.
func TestIdleSessionIsClosed(t *testing.T) {
	f := newFixtureWith(t, func(c *supernode.Config) {
		c.IdleTimeout = 600 * time.Millisecond
		c.PingInterval = 100 * time.Millisecond
	})
	now := time.Now()
	iTok, iKey := f.user(t, "idle", now, now.Add(time.Hour))
	bTok, bKey := f.user(t, "busy", now, now.Add(time.Hour))
	idle, err := f.dial(t, iTok, iKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	busy, err := f.dial(t, bTok, bKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := time.Now().Add(2 * time.Second)
	for time.Now().Before(stop) {
		if err := busy.SetPresence(presence.Online, "dev", nil); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond)
	}
	select {
	case <-idle.Done():
		if !errors.Is(idle.Err(), snapi.ErrDisconnected) {
			t.Errorf("idle session ended with %v", idle.Err())
		}
	default:
		t.Fatal("a session silent for 2 s was kept with IdleTimeout 600 ms")
	}
	select {
	case <-busy.Done():
		t.Fatalf("the session refreshing its presence was closed: %v", busy.Err())
	default:
	}
}

// TestWebsocketSurvivesHTTPServerTimeouts answers whether an http.Server's
// ReadTimeout and WriteTimeout reach into a websocket (they are deadlines on
// the connection, set before the handler runs): net/http clears them when
// the handler hijacks the connection, so a session outlives them, both with
// a bare http.Server and with Server.HTTPServer.
func TestWebsocketSurvivesHTTPServerTimeouts(t *testing.T) {
	for _, helper := range []bool{false, true} {
		t.Run(fmt.Sprintf("HTTPServer=%v", helper), func(t *testing.T) {
			pub, priv, _ := ed25519.GenerateKey(nil)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			name := ln.Addr().String()
			srv, err := supernode.New(supernode.Config{LoginKey: pub, Name: name,
				HTTPReadTimeout: 300 * time.Millisecond, HTTPWriteTimeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			hs := &http.Server{Handler: srv.Handler(), ReadTimeout: 300 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}
			if helper {
				hs = srv.HTTPServer(srv.Handler())
				if hs.ReadTimeout != 300*time.Millisecond || hs.WriteTimeout != 300*time.Millisecond || hs.ReadHeaderTimeout <= 0 || hs.IdleTimeout <= 0 {
					t.Fatalf("HTTPServer: read header %v, read %v, write %v, idle %v", hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout)
				}
			}
			go hs.Serve(ln)
			t.Cleanup(func() {
				srv.Close()
				hs.Close()
			})
			f := &fixture{loginPub: pub, loginPriv: priv, srv: srv, url: "ws://" + name + "/v1/ws"}
			now := time.Now()
			aTok, aKey := f.user(t, "alice", now, now.Add(time.Hour))
			bTok, bKey := f.user(t, "bob", now, now.Add(time.Hour))
			got := make(chan snapi.Frame, 4)
			alice, err := f.dial(t, aTok, aKey, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.dial(t, bTok, bKey, func(fr snapi.Frame) { got <- fr }); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second) // three times the timeouts
			if n, err := alice.Send(context.Background(), "bob", json.RawMessage(`{"late":1}`)); err != nil || n != 1 {
				t.Fatalf("send after 1 s = %d, %v: the server's timeouts cut the websocket", n, err)
			}
			select {
			case <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("no delivery after 1 s")
			}
		})
	}
}

// TestHTTPServerCutsSlowHeaders: a connection that never finishes its
// request headers is closed after HTTPReadHeaderTimeout.
func TestHTTPServerCutsSlowHeaders(t *testing.T) {
	pub, _, _ := ed25519.GenerateKey(nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := supernode.New(supernode.Config{LoginKey: pub, Name: ln.Addr().String(), HTTPReadHeaderTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer(srv.Handler())
	go hs.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")) // and nothing more
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	buf := make([]byte, 512)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("a connection with unfinished headers was kept for 3 s")
			}
			break
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("closed after %v", d)
	}
}
