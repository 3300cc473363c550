package client_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/im"
)

// seedHistory writes convs conversations of per messages each into the
// history of the home in dir: half incoming (unread), half outgoing
// (delivered), with a word in each text the test can look for.
func seedHistory(t *testing.T, dir string, convs, per int, word string) {
	t.Helper()
	h, err := im.OpenHistory(dir)
	must(t, err)
	defer h.Close()
	dev := make(ed25519.PublicKey, ed25519.PublicKeySize)
	base := time.Now().Add(-time.Hour).UnixMilli()
	var ms []im.Message
	for c := range convs {
		for i := range per {
			m := im.Message{ID: im.NewMessageID(), Peer: fmt.Sprintf("peer%02d", c), Dir: im.DirIn, FromDevice: dev,
				Seq: int64(i + 1), TS: base + int64(i), Text: fmt.Sprintf("%s %d/%d", word, c, i), State: im.StateReceived}
			if i%2 == 1 {
				m.Dir, m.State = im.DirOut, im.StateDelivered
			}
			ms = append(ms, m)
		}
	}
	n, err := h.Merge(ms)
	must(t, err)
	if n != len(ms) {
		t.Fatalf("seeded %d of %d", n, len(ms))
	}
}

// historyCount returns how many messages the history of s holds, and how
// many of them are unread.
func historyCount(t *testing.T, s *client.Session, peers int) (n, unread int) {
	t.Helper()
	for c := range peers {
		ms, err := s.History(fmt.Sprintf("peer%02d", c), 0)
		must(t, err)
		n += len(ms)
		for _, m := range ms {
			if m.State == im.StateReceived {
				unread++
			}
		}
	}
	return n, unread
}

// TestHistoryOnEveryDevice: a new device of a user gets the last 1,000
// messages of each of 10 conversations from the user's device online,
// within 5 s, with their states; a conversation read on one device is read
// on the other; a history batch from a device that is not (any more) one of
// the user's is refused; the supernode and the login server never hold a
// message's text.
func TestHistoryOnEveryDevice(t *testing.T) {
	w := &wire{}
	n := startNetwork(t, func(snURL string) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			proxyWS(rw, r, snURL, w.rewrite)
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	home := t.TempDir()
	seedHistory(t, home, 10, 1000, "rhubarb")
	c, err := client.New(client.Config{Home: home, LoginURL: n.loginURL})
	must(t, err)
	must(t, c.Register(ctx, "alice", "password-alice"))
	must(t, c.Login(ctx, "alice", "password-alice"))
	old := &imUser{c: c, ev: &events{}}
	as := old.online(t)

	start := time.Now()
	fresh := imDevice(t, n, "alice", false)
	fs := fresh.online(t)
	waitUntil(t, "the new device to have 10 × 1,000 messages", 10*time.Second, func() bool {
		got, _ := historyCount(t, fs, 10)
		return got == 10*1000
	})
	took := time.Since(start)
	t.Logf("10 conversations × 1,000 messages on a new device in %v (sign-in included)", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("history took %v to reach the new device, want at most 5 s", took)
	}
	if got, unread := historyCount(t, fs, 10); unread != 10*500 {
		t.Errorf("the new device has %d of %d messages unread, want 5,000 (the states came along)", unread, got)
	}
	ms, err := fs.History("peer03", 0)
	must(t, err)
	if ms[0].Text != "rhubarb 3/0" || ms[999].Text != "rhubarb 3/999" || ms[1].State != im.StateDelivered {
		t.Errorf("peer03's conversation on the new device: first %+v, last %+v", ms[0], ms[999])
	}

	// Read on the new device: read on the old one.
	done, err := fs.MarkRead(ctx, "peer03", nil)
	must(t, err)
	if len(done) != 500 {
		t.Fatalf("MarkRead marked %d, want 500", len(done))
	}
	waitUntil(t, "the old device to see peer03's conversation read", 5*time.Second, func() bool {
		ms, _ := as.History("peer03", 0)
		for _, m := range ms {
			if m.State == im.StateReceived {
				return false
			}
		}
		return true
	})

	// A batch from a device that is no longer the user's: refused.
	third := imDevice(t, n, "alice", false)
	ts := third.online(t)
	lc, err := ts.LoginClient()
	must(t, err)
	cred, err := third.c.Credential(ctx)
	must(t, err)
	if _, err := lc.DeleteDevice(ctx, cred); err != nil {
		t.Fatal(err)
	}
	refusedBefore := old.ev.count("message-refused")
	forged := &im.HistoryBody{Type: im.HistoryBatch, Messages: []im.SyncedMessage{im.Synced(im.Message{ID: im.NewMessageID(), Peer: "peer03",
		Dir: im.DirIn, FromDevice: make(ed25519.PublicKey, 32), Seq: 1, TS: time.Now().UnixMilli(), Text: "forged history", State: im.StateReceived})}}
	// Sealed to the devices it still knows (its cache), as a thief would.
	_ = ts.SendHistoryForTest(ctx, forged)
	waitUntil(t, "the old device to refuse the batch", 5*time.Second, func() bool { return old.ev.count("message-refused") > refusedBefore })
	if ev, _ := old.ev.find("message-refused", ""); !strings.Contains(ev.MessageEvent.Why, im.ErrNotOwnDevice.Error()) {
		t.Errorf("the batch was refused for %q, want %q", ev.MessageEvent.Why, im.ErrNotOwnDevice)
	}
	if ms, _ := as.History("peer03", 0); len(ms) != 1000 {
		t.Errorf("after a refused batch the old device has %d messages with peer03, want 1,000", len(ms))
	}

	// Ciphertext only.
	if w.contains("rhubarb") {
		t.Error("a supernode frame holds a message's text")
	}
	files, _ := filepath.Glob(filepath.Join(n.dataDir, "login.db*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		must(t, err)
		if bytes.Contains(b, []byte("rhubarb")) {
			t.Error("the login server's files hold a message's text")
		}
	}
}
