package supernode_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"testing"
	"time"

	"github.com/parley/parley/wire/presence"
	"github.com/parley/parley/wire/snapi"
)

// nextPresence waits for the next presence push u gets from user from.
func nextPresence(t *testing.T, u *meshUser, from string, within time.Duration) snapi.Frame {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case f := <-u.got:
			if f.Type == snapi.TypePresence && f.From == from {
				return f
			}
		case <-deadline:
			t.Fatalf("%s: no presence push from %s within %v", u.name, from, within)
		}
	}
}

// TestPresenceIsPushedAcrossTheMesh: two contacts on different supernodes
// learn each other's state when one comes online, then every change, with
// invisible shown as offline and a dropped connection pushed as offline.
func TestPresenceIsPushedAcrossTheMesh(t *testing.T) {
	f := newMeshFixture(t, 3)
	alice := f.attach(t, "alice", f.nodes[0])
	if err := alice.conn.SetPresence(presence.Online, "dev-a", []string{"bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	bob := f.attach(t, "bob", f.nodes[2])
	if err := bob.conn.SetPresence(presence.Busy, "dev-b", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	// bob's push reaches alice; alice's supernode answers with hers.
	if got := nextPresence(t, alice, "bob", 2*time.Second); got.Status != presence.Busy || got.Device != "dev-b" || got.FromSession != bob.conn.Session() {
		t.Fatalf("alice got %+v, want bob busy on dev-b from session %s", got, bob.conn.Session())
	}
	if got := nextPresence(t, bob, "alice", 2*time.Second); got.Status != presence.Online || got.Device != "dev-a" {
		t.Fatalf("bob got %+v, want alice online on dev-a", got)
	}

	steps := []struct {
		status, want string
	}{
		{presence.Away, presence.Away},
		{presence.Invisible, presence.Offline},
		{presence.Online, presence.Online},
	}
	prev := presence.Busy
	for _, st := range steps {
		if err := bob.conn.SetPresence(st.status, "dev-b", []string{"alice"}); err != nil {
			t.Fatal(err)
		}
		// A repeat of bob's previous state may still be in flight (the
		// answer to alice's own first push): skip it, not anything else.
		got := nextPresence(t, alice, "bob", 2*time.Second)
		for got.Status == prev && st.want != prev {
			got = nextPresence(t, alice, "bob", 2*time.Second)
		}
		if got.Status != st.want {
			t.Fatalf("bob set %s: alice saw %q, want %q", st.status, got.Status, st.want)
		}
		prev = st.want
	}

	// Dropping alice from the watch list tells her bob is gone for her.
	if err := bob.conn.SetPresence(presence.Online, "dev-b", nil); err != nil {
		t.Fatal(err)
	}
	// Again a repeat of bob's online state may still be in flight: skip it.
	got := nextPresence(t, alice, "bob", 2*time.Second)
	for got.Status == prev {
		got = nextPresence(t, alice, "bob", 2*time.Second)
	}
	if got.Status != presence.Offline {
		t.Fatalf("after unwatching: alice saw %q, want offline", got.Status)
	}
	if err := bob.conn.SetPresence(presence.Online, "dev-b", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	nextPresence(t, alice, "bob", 2*time.Second)

	bob.conn.Close()
	if got := nextPresence(t, alice, "bob", 2*time.Second); got.Status != presence.Offline || got.Device != "dev-b" {
		t.Fatalf("after bob left: alice saw %+v, want dev-b offline", got)
	}
}

func TestPresenceRefusesBadStatus(t *testing.T) {
	f := newMeshFixture(t, 1)
	alice := f.attach(t, "alice", f.nodes[0])
	if err := alice.conn.SetPresence("sleeping", "d", nil); err == nil {
		t.Fatal("SetPresence accepted status sleeping")
	}
}

// TestInvisibleIsHiddenFromLookups: an invisible device is not counted in
// anyone else's lookup, wherever it is attached, yet messages still reach it
// and its own user still finds it.
func TestInvisibleIsHiddenFromLookups(t *testing.T) {
	f := newMeshFixture(t, 3)
	alice := f.attach(t, "alice", f.nodes[0])
	carol := f.attach(t, "carol", f.nodes[2])
	bob := f.attach(t, "bob", f.nodes[2])
	bobPhone := f.attach(t, "bob", f.nodes[1])
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	devices := func(u *meshUser) int {
		t.Helper()
		got, err := u.conn.Lookup(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		if got.Devices == 0 && len(got.Nodes) != 0 {
			t.Fatalf("%s's lookup: no devices but nodes %v", u.name, got.Nodes)
		}
		return got.Devices
	}
	setBoth := func(status string) {
		t.Helper()
		for _, b := range []*meshUser{bob, bobPhone} {
			if err := b.conn.SetPresence(status, "dev", nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name   string
		set    func()
		others int // what alice (another supernode) and carol (bob's own) see
		self   int // what bob sees of himself
	}{
		{"no status yet", func() {}, 2, 2},
		{"both invisible", func() { setBoth(presence.Invisible) }, 0, 2},
		{"phone online", func() {
			if err := bobPhone.conn.SetPresence(presence.Online, "dev", nil); err != nil {
				t.Fatal(err)
			}
		}, 1, 2},
		{"both away", func() { setBoth(presence.Away) }, 2, 2},
	}
	for _, tt := range tests {
		tt.set()
		// A presence frame is not answered: the change shows within a
		// second (the record is republished at once).
		for _, w := range []struct {
			u    *meshUser
			want int
		}{{alice, tt.others}, {carol, tt.others}, {bob, tt.self}} {
			got := devices(w.u)
			for deadline := time.Now().Add(time.Second); got != w.want && time.Now().Before(deadline); got = devices(w.u) {
				time.Sleep(20 * time.Millisecond)
			}
			if got != w.want {
				t.Errorf("%s: %s sees %d devices of bob, want %d", tt.name, w.u.name, got, w.want)
			}
		}
	}

	// Invisible, yet still receiving on both devices.
	setBoth(presence.Invisible)
	n, err := alice.conn.Send(ctx, "bob", json.RawMessage(`{"hello":1}`))
	if err != nil || n != 2 {
		t.Fatalf("send to invisible bob: %d devices, %v; want 2", n, err)
	}
}

// TestReattachReplacesTheLostSession: a client back after losing its
// connection (half-open after a network change) names its old session; the
// supernode closes that one at once, only for the same key, and the contacts
// are not told the device went offline.
func TestReattachReplacesTheLostSession(t *testing.T) {
	f := newMeshFixture(t, 1)
	nd := f.nodes[0]
	alice := f.attach(t, "alice", nd)
	if err := alice.conn.SetPresence(presence.Online, "dev-a", []string{"bob"}); err != nil {
		t.Fatal(err)
	}
	bob := f.attach(t, "bob", nd)
	if err := bob.conn.SetPresence(presence.Online, "dev-b", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	nextPresence(t, alice, "bob", 2*time.Second)
	old := bob.conn

	dial := func(key ed25519.PrivateKey, tok, replaces string) *snapi.Conn {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := snapi.Dial(ctx, snapi.DialConfig{URL: nd.url, Credential: tok, Key: key, Replaces: replaces})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// Another device of bob's (another key) cannot close it.
	other := f.attach(t, "bob", nd)
	dial(other.key, other.tok, old.Session())
	select {
	case <-old.Done():
		t.Fatal("a session of another key closed bob's session")
	case <-time.After(300 * time.Millisecond):
	}

	// The same client, back: the old session is closed at once.
	fresh := dial(bob.key, bob.tok, old.Session())
	select {
	case <-old.Done():
	case <-time.After(2 * time.Second):
		t.Fatal("the lost session is still open")
	}
	if err := fresh.SetPresence(presence.Online, "dev-b", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(time.Second)
	for {
		select {
		case fr := <-alice.got:
			if fr.Type == snapi.TypePresence && fr.From == "bob" && fr.Device == "dev-b" && fr.Status == presence.Offline {
				t.Fatal("alice was told bob's device went offline when it was replaced")
			}
		case <-deadline:
			return
		}
	}
}
