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
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/im"
	"github.com/parley/parley/login"
	"github.com/parley/parley/wire/loginapi"
)

// wire records every websocket message a man-in-the-middle supernode proxy
// carries, and can tamper with delivered envelopes.
type wire struct {
	mu     sync.Mutex
	frames [][]byte
	forge  atomic.Bool
	forged atomic.Int32
}

func (w *wire) rewrite(b []byte) []byte {
	w.mu.Lock()
	w.frames = append(w.frames, bytes.Clone(b))
	w.mu.Unlock()
	if w.forge.Load() && bytes.Contains(b, []byte(`"type":"deliver"`)) && bytes.Contains(b, []byte(`"kind":"msg"`)) {
		// Claim the message comes from someone else: the signature covers
		// the sender, so the recipient must drop it.
		if i := bytes.Index(b, []byte(`"payload"`)); i >= 0 {
			body := bytes.Replace(b[i:], []byte(`"from":"alice"`), []byte(`"from":"carol"`), 1)
			if !bytes.Equal(body, b[i:]) {
				w.forged.Add(1)
				return append(bytes.Clone(b[:i]), body...)
			}
		}
	}
	return b
}

func (w *wire) contains(s string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.frames {
		if bytes.Contains(f, []byte(s)) {
			return true
		}
	}
	return false
}

// imUser is a registered user with a client whose sessions a test opens and
// closes (a restart of the program on the same home).
type imUser struct {
	c   *client.Client
	ev  *events
	cfg client.SessionConfig
}

func newIMUser(t testing.TB, n *network, name string) *imUser {
	t.Helper()
	return imDevice(t, n, name, true)
}

// imDevice logs name in on a new home (registering the user first when
// register is set): a device of the user.
func imDevice(t testing.TB, n *network, name string, register bool) *imUser {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(client.Config{Home: t.TempDir(), LoginURL: n.loginURL})
	must(t, err)
	if register {
		must(t, c.Register(ctx, name, "password-"+name))
	}
	must(t, c.Login(ctx, name, "password-"+name))
	return &imUser{c: c, ev: &events{}}
}

func (u *imUser) online(t testing.TB) *client.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg := u.cfg
	cfg.OnEvent = u.ev.add
	s, err := u.c.Online(ctx, cfg)
	must(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

// befriend makes a and b accepted contacts.
func befriend(t testing.TB, a *imUser, aName string, b *imUser, bName string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := a.c.AddContact(ctx, bName)
	must(t, err)
	_, err = b.c.AcceptContact(ctx, aName)
	must(t, err)
}

// messages returns the texts of the "message" events so far.
func (e *events) messages() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.all {
		if ev.Event == "message" {
			out = append(out, ev.MessageEvent.Text)
		}
	}
	return out
}

func (e *events) count(kind string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.all {
		if ev.Event == kind {
			n++
		}
	}
	return n
}

func waitUntil(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMessagesAreEndToEndAndNeverLost: a message to an online user is
// delivered through the supernode; one to an offline user waits in the
// mailbox and arrives once at the next login, and the sender gets the
// receipt. Neither the supernode (the proxy sees every frame it forwards) nor
// the login server (the test reads its database files) ever holds the text;
// a message altered on the way is dropped.
func TestMessagesAreEndToEndAndNeverLost(t *testing.T) {
	w := &wire{}
	n := startNetwork(t, func(snURL string) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			proxyWS(rw, r, snURL, w.rewrite)
		})
	})
	alice, bob := newIMUser(t, n, "alice"), newIMUser(t, n, "bob")
	befriend(t, alice, "alice", bob, "bob")
	as := alice.online(t)
	bs := bob.online(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Online: straight through the supernode.
	res, err := as.SendMessage(ctx, "bob", "secret-online-rutabaga")
	must(t, err)
	if !res.Delivered || res.Stored {
		t.Fatalf("to an online user: %+v, want delivered, not stored", res)
	}
	waitUntil(t, "bob to see the message", 5*time.Second, func() bool { return len(bob.ev.messages()) == 1 })
	if got := bob.ev.messages()[0]; got != "secret-online-rutabaga" {
		t.Fatalf("bob got %q", got)
	}

	// Offline: into the mailbox.
	bs.Close()
	res, err = as.SendMessage(ctx, "bob", "secret-offline-parsnip")
	must(t, err)
	if res.Delivered || !res.Stored {
		t.Fatalf("to an offline user: %+v, want stored, not delivered", res)
	}
	// What the login server holds: the envelope, not the text.
	var held []byte
	files, _ := filepath.Glob(filepath.Join(n.dataDir, "login.db*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		must(t, err)
		held = append(held, b...)
	}
	if !bytes.Contains(held, []byte(res.ID)) {
		t.Fatalf("the login server's database does not hold message %s at all", res.ID)
	}
	if bytes.Contains(held, []byte("parsnip")) || bytes.Contains(held, []byte("rutabaga")) {
		t.Fatal("the login server's database holds a message's text")
	}

	bob.ev = &events{}
	bs = bob.online(t)
	waitUntil(t, "the mailed message at bob's next login", 5*time.Second, func() bool { return len(bob.ev.messages()) == 1 })
	waitUntil(t, "alice to get bob's receipt", 5*time.Second, func() bool {
		hist, _ := as.History("bob", 0)
		return len(hist) == 2 && hist[1].State == im.StateDelivered
	})
	if got := bob.ev.messages(); got[0] != "secret-offline-parsnip" {
		t.Fatalf("bob's next login showed %q", got)
	}
	// Once: a restart shows nothing again (the mailbox was emptied).
	bs.Close()
	bob.ev = &events{}
	bs = bob.online(t)
	time.Sleep(500 * time.Millisecond)
	if got := bob.ev.messages(); len(got) != 0 {
		t.Fatalf("a second login showed %q again", got)
	}
	hist, err := bs.History("alice", 0)
	must(t, err)
	if len(hist) != 2 || hist[0].Text != "secret-online-rutabaga" || hist[1].Text != "secret-offline-parsnip" {
		t.Fatalf("bob's history: %+v", hist)
	}

	// Altered on the way: dropped, reported, never shown.
	w.forge.Store(true)
	res, err = as.SendMessage(ctx, "bob", "secret-forged-turnip")
	must(t, err)
	if w.forged.Load() == 0 {
		t.Fatal("the proxy forged nothing")
	}
	waitUntil(t, "bob to refuse the forged message", 5*time.Second, func() bool { return bob.ev.count("message-refused") > 0 })
	if res.Delivered {
		t.Fatal("a forged copy was acknowledged")
	}
	for _, m := range bob.ev.messages() {
		if strings.Contains(m, "turnip") {
			t.Fatalf("bob was shown the forged message: %q", m)
		}
	}
	w.forge.Store(false)

	if w.contains("rutabaga") || w.contains("parsnip") || w.contains("turnip") {
		t.Fatal("the supernode forwarded a message's text in the clear")
	}
}

// TestTwoDevicesRingFirstAnswerWins: both of bob's devices ring; the first to
// answer takes the call, the other stops ringing. Both get every message; during
// the call messages go over its data channel.
func TestTwoDevicesRingFirstAnswerWins(t *testing.T) {
	n := startNetwork(t, nil)
	alice, bob1 := newIMUser(t, n, "alice"), newIMUser(t, n, "bob")
	bob2 := imDevice(t, n, "bob", false)
	befriend(t, alice, "alice", bob1, "bob")

	answerAfter := func(d time.Duration, answered chan<- *client.Call) func(*client.Incoming) {
		return func(in *client.Incoming) {
			select {
			case <-time.After(d):
			case <-in.Cancelled():
				return
			}
			c, err := in.Answer(context.Background(), client.Media{})
			if err == nil {
				answered <- c
			}
		}
	}
	got1, got2 := make(chan *client.Call, 1), make(chan *client.Call, 1)
	bob1.cfg.OnIncoming = answerAfter(300*time.Millisecond, got1)
	bob2.cfg.OnIncoming = answerAfter(4*time.Second, got2)
	bob1.online(t)
	bob2.online(t)
	as := alice.online(t)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call, err := as.Call(ctx, "bob", client.Media{})
	must(t, err)
	defer call.Hangup("hangup")
	select {
	case <-got1:
	case <-time.After(5 * time.Second):
		t.Fatal("bob's first device did not take the call")
	}
	for _, b := range []*imUser{bob1, bob2} {
		waitUntil(t, "both devices to ring", 3*time.Second, func() bool {
			_, ok := b.ev.find("call", client.StateRinging)
			return ok
		})
	}
	waitUntil(t, "bob's second device to stop ringing", 3*time.Second, func() bool {
		ev, ok := bob2.ev.find("call", client.StateEnded)
		return ok && ev.CallState.Reason == client.AnsweredElsewhere
	})
	time.Sleep(4 * time.Second) // past the second device's answer time
	select {
	case <-got2:
		t.Fatal("the second device answered a call the first had taken")
	default:
	}
	if _, ok := bob2.ev.find("call", client.StateConnected); ok {
		t.Fatal("the second device connected")
	}

	// A message during the call: over the data channel to the device in the
	// call, and to the other device through the supernode.
	res, err := as.SendMessage(ctx, "bob", "hello both")
	must(t, err)
	if !res.Delivered {
		t.Fatalf("message during a call: %+v", res)
	}
	for i, b := range []*imUser{bob1, bob2} {
		waitUntil(t, "each device to get the message", 5*time.Second, func() bool { return len(b.ev.messages()) == 1 })
		b.ev.mu.Lock()
		for _, ev := range b.ev.all {
			if ev.Event == "message" {
				want := client.ViaSupernode
				if i == 0 {
					want = client.ViaDataChannel
				}
				if ev.MessageEvent.Via != want {
					t.Errorf("device %d got the message via %s, want %s", i+1, ev.MessageEvent.Via, want)
				}
			}
		}
		b.ev.mu.Unlock()
	}
}

// TestPresenceIsPushed: a contact's status changes reach the other within 2 s.
func TestPresenceIsPushed(t *testing.T) {
	n := startNetwork(t, nil)
	alice, bob := newIMUser(t, n, "alice"), newIMUser(t, n, "bob")
	befriend(t, alice, "alice", bob, "bob")
	as := alice.online(t)
	start := time.Now()
	bs := bob.online(t)
	waitUntil(t, "alice to see bob online", 2*time.Second, func() bool { return as.Presence("bob") == "online" })
	waitUntil(t, "bob to see alice online", 2*time.Second, func() bool { return bs.Presence("alice") == "online" })
	t.Logf("bob online → both see each other: %v", time.Since(start))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, st := range []struct{ set, want string }{{"away", "away"}, {"busy", "busy"}, {"invisible", "offline"}, {"online", "online"}} {
		start := time.Now()
		must(t, bs.SetStatus(ctx, st.set))
		waitUntil(t, "alice to see bob "+st.want, 2*time.Second, func() bool { return as.Presence("bob") == st.want })
		t.Logf("bob %s → alice sees %s: %v", st.set, st.want, time.Since(start))
	}
	bs.Close()
	waitUntil(t, "alice to see bob offline", 2*time.Second, func() bool { return as.Presence("bob") == "offline" })
}

// TestPresenceFollowsContactChanges: bob accepts alice's request from a
// short session (as `parley contacts accept` does) while both have devices
// running; the running devices see each other within 2 s, not at their next
// contacts refresh, and stop when bob removes her.
func TestPresenceFollowsContactChanges(t *testing.T) {
	n := startNetwork(t, nil)
	alice, bob := newIMUser(t, n, "alice"), newIMUser(t, n, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	as, bs := alice.online(t), bob.online(t)
	// A request reaches bob's running device as an event at once.
	aliceCLI := imDevice(t, n, "alice", false)
	aliceCLI.cfg.NoPresence = true
	_, err := aliceCLI.online(t).AddContact(ctx, "bob")
	must(t, err)
	waitUntil(t, "bob's device to report alice's request", 2*time.Second, func() bool {
		ev, ok := bob.ev.find("contact", "")
		return ok && ev.Peer == "alice" && ev.PresenceEvent.Status == loginapi.ContactPending
	})

	bobCLI := imDevice(t, n, "bob", false)
	bobCLI.cfg.NoPresence = true
	short := bobCLI.online(t)
	start := time.Now()
	_, err = short.AcceptContact(ctx, "alice")
	must(t, err)
	waitUntil(t, "alice to see bob online", 2*time.Second, func() bool { return as.Presence("bob") == "online" })
	waitUntil(t, "bob to see alice online", 2*time.Second, func() bool { return bs.Presence("alice") == "online" })
	t.Logf("accepted → both running devices see each other: %v", time.Since(start))

	start = time.Now()
	_, err = short.DeclineContact(ctx, "alice")
	must(t, err)
	waitUntil(t, "alice to see bob offline", 2*time.Second, func() bool { return as.Presence("bob") == "offline" })
	waitUntil(t, "bob to see alice offline", 2*time.Second, func() bool { return bs.Presence("alice") == "offline" })
	t.Logf("removed → both see the other offline: %v", time.Since(start))
}

// TestFullMailboxDoesNotBlockOtherDevices: one of bob's devices never comes
// back and its mailbox fills; messages still wait for his other device.
func TestFullMailboxDoesNotBlockOtherDevices(t *testing.T) {
	n := startNetworkWith(t, nil, login.Config{MailboxQuotaBytes: 16 << 10})
	alice, bob := newIMUser(t, n, "alice"), newIMUser(t, n, "bob")
	imDevice(t, n, "bob", false) // bob's old laptop: registered, never online again
	befriend(t, alice, "alice", bob, "bob")
	as := alice.online(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Both of bob's devices offline: their mailboxes fill together.
	text := strings.Repeat("a line of a long letter. ", 40) // 1,000 bytes
	sent := 0
	for ; ; sent++ {
		if sent > 64 {
			t.Fatal("16 KiB mailboxes took 64 messages of 1,000 bytes")
		}
		_, err := as.SendMessage(ctx, "bob", fmt.Sprintf("%d %s", sent, text))
		if errors.Is(err, loginapi.ErrQuota) {
			break
		}
		must(t, err)
	}
	if sent < 2 {
		t.Fatalf("only %d messages fit a 16 KiB mailbox", sent)
	}

	// bob reads his mail on his other device; the laptop's stays full.
	bs := bob.online(t)
	waitUntil(t, "bob's device to get the mailed messages", 10*time.Second, func() bool { return len(bob.ev.messages()) >= sent })
	bs.Close()

	res, err := as.SendMessage(ctx, "bob", "after the laptop's mailbox is full")
	if err != nil || !res.Stored {
		t.Fatalf("with one device's mailbox full: %+v, %v; want stored for the other", res, err)
	}
	bob.ev = &events{}
	bob.online(t)
	waitUntil(t, "the message at bob's next login", 10*time.Second, func() bool {
		return slices.Contains(bob.ev.messages(), "after the laptop's mailbox is full")
	})
}

// TestReadReceiptsAndTyping: bob reads alice's messages (SendRead): alice's
// history marks them read and she gets a "read" event, once; bob types
// (SendTyping): alice gets "typing" events, rate-limited, and a stop; a
// typing envelope never goes to a mailbox.
func TestReadReceiptsAndTyping(t *testing.T) {
	w := &wire{}
	n := startNetwork(t, func(snURL string) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			proxyWS(rw, r, snURL, w.rewrite)
		})
	})
	alice, bob := newIMUser(t, n, "alice"), newIMUser(t, n, "bob")
	befriend(t, alice, "alice", bob, "bob")
	as, bs := alice.online(t), bob.online(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var ids []string
	for _, text := range []string{"one", "two"} {
		res, err := as.SendMessage(ctx, "bob", text)
		must(t, err)
		ids = append(ids, res.ID)
	}
	waitUntil(t, "bob to get both", 5*time.Second, func() bool { return len(bob.ev.messages()) == 2 })
	done, err := bs.SendRead(ctx, "alice", ids[:1])
	must(t, err)
	if fmt.Sprint(done) != fmt.Sprint(ids[:1]) {
		t.Fatalf("SendRead(first) acknowledged %v, want %v", done, ids[:1])
	}
	done, err = bs.SendRead(ctx, "alice", nil) // the rest
	must(t, err)
	if fmt.Sprint(done) != fmt.Sprint(ids[1:]) {
		t.Fatalf("SendRead(rest) acknowledged %v, want %v", done, ids[1:])
	}
	if done, err := bs.SendRead(ctx, "alice", ids); err != nil || len(done) != 0 {
		t.Fatalf("SendRead again = %v, %v; want nothing new", done, err)
	}
	waitUntil(t, "alice to see both read", 5*time.Second, func() bool { return alice.ev.count("read") == 2 })
	ms, err := as.History("bob", 0)
	must(t, err)
	for _, m := range ms {
		if m.State != im.StateRead {
			t.Errorf("alice's %q: %s, want read", m.Text, m.State)
		}
	}
	ms, err = bs.History("alice", 0)
	must(t, err)
	for _, m := range ms {
		if m.State != im.StateRead {
			t.Errorf("bob's copy of %q: %s, want read", m.Text, m.State)
		}
	}

	// Typing: the first goes, a second within the interval does not, the
	// stop does; alice sees typing, then stopped.
	for i, tt := range []struct {
		active, sent bool
	}{{true, true}, {true, false}, {false, true}, {false, false}} {
		sent, err := bs.SendTyping(ctx, "alice", tt.active)
		if err != nil || sent != tt.sent {
			t.Fatalf("SendTyping #%d (active %v) = %v, %v; want %v", i+1, tt.active, sent, err, tt.sent)
		}
	}
	waitUntil(t, "alice to see bob type and stop", 5*time.Second, func() bool { return alice.ev.count("typing") == 2 })
	var states []bool
	alice.ev.mu.Lock()
	for _, ev := range alice.ev.all {
		if ev.Event == "typing" {
			if ev.Peer != "bob" || ev.MessageEvent.From != "bob" || ev.MessageEvent.Active == nil || ev.MessageEvent.Via != client.ViaSupernode {
				t.Errorf("typing event %+v %+v", ev, ev.MessageEvent)
				continue
			}
			states = append(states, *ev.MessageEvent.Active)
		}
	}
	alice.ev.mu.Unlock()
	if fmt.Sprint(states) != "[true false]" {
		t.Errorf("alice's typing events say %v, want [true false]", states)
	}
	if !w.contains(`"kind":"typing"`) {
		t.Error("no typing envelope went through the supernode")
	}

	// To an offline peer: nothing goes, and nothing waits in a mailbox.
	as.Close()
	waitUntil(t, "bob to see alice offline", 5*time.Second, func() bool { return bs.Presence("alice") == "offline" })
	sent, err := bs.SendTyping(ctx, "alice", true)
	if err != nil || sent {
		t.Fatalf("SendTyping to an offline peer = %v, %v; want not sent, no error", sent, err)
	}
	before := alice.ev.count("typing")
	alice.online(t)
	time.Sleep(time.Second) // the mailbox is read at the attach
	if n := alice.ev.count("typing"); n != before {
		t.Errorf("a typing envelope came from the mailbox (%d typing events, had %d)", n, before)
	}
}
