package supernode_test

import (
	"testing"
	"time"

	"github.com/parley/parley/supernode"
)

// nextPresence waits for the next presence push u gets from user from.
func nextPresence(t *testing.T, u *meshUser, from string, within time.Duration) supernode.Frame {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case f := <-u.got:
			if f.Type == supernode.TypePresence && f.From == from {
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
	if err := alice.conn.SetPresence(supernode.StatusOnline, "dev-a", []string{"bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	bob := f.attach(t, "bob", f.nodes[2])
	if err := bob.conn.SetPresence(supernode.StatusBusy, "dev-b", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	// bob's push reaches alice; alice's supernode answers with hers.
	if got := nextPresence(t, alice, "bob", 2*time.Second); got.Status != supernode.StatusBusy || got.Device != "dev-b" {
		t.Fatalf("alice got %+v, want bob busy on dev-b", got)
	}
	if got := nextPresence(t, bob, "alice", 2*time.Second); got.Status != supernode.StatusOnline || got.Device != "dev-a" {
		t.Fatalf("bob got %+v, want alice online on dev-a", got)
	}

	steps := []struct {
		status, want string
	}{
		{supernode.StatusAway, supernode.StatusAway},
		{supernode.StatusInvisible, supernode.StatusOffline},
		{supernode.StatusOnline, supernode.StatusOnline},
	}
	prev := supernode.StatusBusy
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
	if err := bob.conn.SetPresence(supernode.StatusOnline, "dev-b", nil); err != nil {
		t.Fatal(err)
	}
	if got := nextPresence(t, alice, "bob", 2*time.Second); got.Status != supernode.StatusOffline {
		t.Fatalf("after unwatching: alice saw %q, want offline", got.Status)
	}
	if err := bob.conn.SetPresence(supernode.StatusOnline, "dev-b", []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	nextPresence(t, alice, "bob", 2*time.Second)

	bob.conn.Close()
	if got := nextPresence(t, alice, "bob", 2*time.Second); got.Status != supernode.StatusOffline || got.Device != "dev-b" {
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
