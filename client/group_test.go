package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/im"
)

// groupDevice is one device of a group test: a user's client and session.
type groupDevice struct {
	name string
	u    *imUser
	s    *client.Session
}

// groupMessages returns the texts of the group messages this device's
// events showed, in the order shown.
func (d *groupDevice) groupMessages(group string) []string {
	d.u.ev.mu.Lock()
	defer d.u.ev.mu.Unlock()
	var out []string
	for _, ev := range d.u.ev.all {
		if ev.Event == "message" && ev.MessageEvent.Group == group {
			out = append(out, ev.MessageEvent.Text)
		}
	}
	return out
}

// TestGroupChat: a group of five users (one with two devices, the others
// not each other's contacts) ends in the same member list on every device
// after an add, a remove, a rename and two concurrent changes; 200 messages
// from three senders arrive once per device in each sender's order, also
// on a device that was offline; the removed member gets nothing after its
// removal; forged changes are ignored; neither the supernode nor the login
// server ever holds a message's text or the group's name.
func TestGroupChat(t *testing.T) {
	w := &wire{}
	n := startNetwork(t, func(snURL string) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			proxyWS(rw, r, snURL, w.rewrite)
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	users := map[string]*imUser{}
	for _, name := range []string{"alice", "bob", "carol", "dave", "erin"} {
		users[name] = newIMUser(t, n, name)
	}
	// alice knows bob, carol and dave; erin knows only bob (who adds her,
	// and whose pass for her, and alice's own, let everyone reach her and
	// her reach everyone).
	for _, name := range []string{"bob", "carol", "dave"} {
		befriend(t, users["alice"], "alice", users[name], name)
	}
	befriend(t, users["bob"], "bob", users["erin"], "erin")
	bob2 := imDevice(t, n, "bob", false)
	devs := []*groupDevice{}
	for _, name := range []string{"alice", "bob", "carol", "dave", "erin"} {
		devs = append(devs, &groupDevice{name: name, u: users[name]})
	}
	devs = append(devs, &groupDevice{name: "bob", u: bob2})
	for _, d := range devs {
		d.s = d.u.online(t)
	}
	dev := func(name string) *groupDevice {
		for _, d := range devs {
			if d.name == name {
				return d
			}
		}
		t.Fatalf("no device of %s", name)
		return nil
	}
	alice, bob, carol, dave := dev("alice").s, dev("bob").s, dev("carol").s, dev("dave").s

	// agree waits until every device of want's members (and of extra
	// users) sees the group as want.
	agree := func(what, id string, want client.GroupInfo, extra ...string) {
		t.Helper()
		waitUntil(t, what, 10*time.Second, func() bool {
			for _, d := range devs {
				if !slices.Contains(want.Members, d.name) && !slices.Contains(extra, d.name) {
					continue
				}
				got, err := d.s.Group(id)
				if err != nil || got.Name != want.Name || !slices.Equal(got.Members, want.Members) || !slices.Equal(got.Admins, want.Admins) {
					return false
				}
			}
			return true
		})
	}

	g, err := alice.CreateGroup(ctx, "secret-club-kumquat", []string{"bob", "carol", "dave"})
	must(t, err)
	id := g.ID
	agree("every member to have the new group", id, g)
	// A non-admin's change is refused at once.
	if _, err := carol.GroupRename(ctx, id, "mine"); !errors.Is(err, client.ErrNotAdmin) {
		t.Fatalf("carol renames: %v, want %v", err, client.ErrNotAdmin)
	}
	g, err = alice.GroupMakeAdmin(ctx, id, "bob")
	must(t, err)
	agree("bob to be admin everywhere", id, g)

	// Two concurrent changes: bob adds erin while alice renames.
	if _, err := alice.GroupAdd(ctx, id, "erin"); !errors.Is(err, client.ErrNotContact) {
		t.Fatalf("alice adds erin, not her contact: %v, want %v", err, client.ErrNotContact)
	}
	var wg sync.WaitGroup
	var addErr, renameErr error
	wg.Add(2)
	go func() { defer wg.Done(); _, addErr = bob.GroupAdd(ctx, id, "erin") }()
	go func() { defer wg.Done(); _, renameErr = alice.GroupRename(ctx, id, "secret-club-persimmon") }()
	wg.Wait()
	must(t, addErr)
	must(t, renameErr)
	want := client.GroupInfo{Name: "secret-club-persimmon", Members: []string{"alice", "bob", "carol", "dave", "erin"}, Admins: []string{"alice", "bob"}}
	agree("the add and the rename to agree everywhere", id, want)

	// A remove.
	g, err = alice.GroupRemove(ctx, id, "dave")
	must(t, err)
	want.Members = []string{"alice", "bob", "carol", "erin"}
	agree("dave's removal everywhere (dave too)", id, want, "dave")
	if g, _ := dave.Group(id); g.Member {
		t.Fatal("dave still thinks he is a member")
	}
	if _, err := dave.SendGroupMessage(ctx, id, "let me back in"); !errors.Is(err, client.ErrNotMember) {
		t.Fatalf("dave posts after his removal: %v, want %v", err, client.ErrNotMember)
	}

	// Forged changes: one by a non-admin (carol adds dave back) and one
	// signed by nobody. Every device ignores both.
	op, err := carol.SignGroupOpForTest(ctx, im.OpDraft{Group: id, Clock: 100, Type: im.OpAdd, Target: "dave"})
	must(t, err)
	unsigned, err := carol.SignGroupOpForTest(ctx, im.OpDraft{Group: id, Clock: 101, Type: im.OpRename, Name: "hijacked"})
	must(t, err)
	unsigned.Sig = make([]byte, len(unsigned.Sig))
	for _, to := range []string{"alice", "bob", "erin"} {
		must(t, carol.SendGroupOpsForTest(ctx, to, id, []*im.GroupOp{op}))
		must(t, carol.SendGroupOpsForTest(ctx, to, id, []*im.GroupOp{unsigned}))
	}
	waitUntil(t, "the unsigned change to be refused", 5*time.Second, func() bool { return dev("erin").u.ev.count("message-refused") > 0 })
	agree("the forged changes to change nothing", id, want)

	// 200 messages from three senders, while carol is offline.
	dev("carol").s.Close()
	senders := map[string]*client.Session{"alice": alice, "bob": bob, "erin": dev("erin").s}
	sent := map[string][]string{}
	per := map[string]int{"alice": 70, "bob": 70, "erin": 60}
	for name := range senders {
		for i := range per[name] {
			sent[name] = append(sent[name], fmt.Sprintf("%s-says-%03d", name, i))
		}
	}
	start := time.Now()
	var sendErrs sync.Map
	for name, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, text := range sent[name] {
				if _, err := s.SendGroupMessage(ctx, id, text); err != nil {
					sendErrs.Store(text, err)
				}
			}
		}()
	}
	wg.Wait()
	sendErrs.Range(func(k, v any) bool { t.Errorf("sending %s: %v", k, v); return true })
	t.Logf("200 messages from three senders to 4 members (6 devices) in %v", time.Since(start).Round(time.Millisecond))
	dev("carol").s = dev("carol").u.online(t)

	for _, d := range devs {
		if d.name == "dave" {
			continue
		}
		waitUntil(t, d.name+"'s device to have all 200", 20*time.Second, func() bool {
			h, err := d.s.GroupHistory(id, 0)
			return err == nil && len(h) == 200
		})
		h, err := d.s.GroupHistory(id, 0)
		must(t, err)
		for name := range senders {
			var got []string
			for _, m := range h {
				if m.From == name {
					got = append(got, m.Text)
				}
			}
			if !slices.Equal(got, sent[name]) {
				t.Errorf("%s's device has %s's messages as %d in this order: %.200v", d.name, name, len(got), got)
			}
		}
		// Shown once: the events of messages from others, each once.
		shown := d.groupMessages(id)
		seen := map[string]int{}
		for _, s := range shown {
			seen[s]++
		}
		for text, k := range seen {
			if k > 1 {
				t.Errorf("%s's device showed %q %d times", d.name, text, k)
			}
		}
	}
	// The removed member got nothing after the removal.
	if h, err := dave.GroupHistory(id, 0); err != nil || len(h) != 0 {
		t.Errorf("dave's history of the group after his removal: %d messages, %v", len(h), err)
	}
	if got := dev("dave").groupMessages(id); len(got) != 0 {
		t.Errorf("dave was shown %d group messages", len(got))
	}

	// Ciphertext only: the supernode's frames and the login server's files.
	var held []byte
	files, _ := filepath.Glob(filepath.Join(n.dataDir, "login.db*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		must(t, err)
		held = append(held, b...)
	}
	for _, secret := range []string{"kumquat", "persimmon", "-says-"} {
		if w.contains(secret) {
			t.Errorf("a supernode frame holds %q", secret)
		}
		if bytes.Contains(held, []byte(secret)) {
			t.Errorf("the login server's files hold %q", secret)
		}
	}
}
