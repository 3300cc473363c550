package main

import (
	"context"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/im"
	"github.com/parley/parley/wire/loginapi"
)

// The page and history on every device (docs/web.md, "History on every
// device"): the page asks the user's other devices for what it lacks,
// answers theirs, merges batches and follows reads, as client/histsync.go
// does, with the same bodies byte for byte.

// histEvents keeps the events of an in-process session.
type histEvents struct {
	mu  sync.Mutex
	evs []client.Event
}

func (e *histEvents) add(ev client.Event) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
}

func (e *histEvents) count(kind string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.evs {
		if ev.Event == kind {
			n++
		}
	}
	return n
}

func histMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// histSeed writes convs conversations of per messages each into the history
// of the home in dir, as client's seedHistory does: half incoming (unread),
// half outgoing (delivered), the text "word c/i".
func histSeed(t *testing.T, dir string, convs, per int, word string) {
	t.Helper()
	h, err := im.OpenHistory(dir)
	histMust(t, err)
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
	histMust(t, err)
	if n != len(ms) {
		t.Fatalf("seeded %d of %d", n, len(ms))
	}
}

// histNoise writes n messages of random text (2 KB of it, base64: it does
// not deflate much) with peer10 into the history of the home in dir, half
// of them incoming and unread: a batch of them does not fit an envelope
// until it is halved, twice.
func histNoise(t *testing.T, dir string, n int) {
	t.Helper()
	h, err := im.OpenHistory(dir)
	histMust(t, err)
	defer h.Close()
	dev := make(ed25519.PublicKey, ed25519.PublicKeySize)
	base := time.Now().Add(-2 * time.Hour).UnixMilli()
	var ms []im.Message
	for i := range n {
		r := make([]byte, 2000)
		rand.Read(r)
		m := im.Message{ID: im.NewMessageID(), Peer: "peer10", Dir: im.DirIn, FromDevice: dev, Seq: int64(i + 1), TS: base + int64(i),
			Text: base64.StdEncoding.EncodeToString(r), State: im.StateReceived}
		if i%2 == 1 {
			m.Dir, m.State = im.DirOut, im.StateDelivered
		}
		ms = append(ms, m)
	}
	_, err = h.Merge(ms)
	histMust(t, err)
}

// histUnread is how many of s's messages with peer are still unread.
func histUnread(t *testing.T, s *client.Session, peer string) int {
	t.Helper()
	ms, err := s.History(peer, 0)
	histMust(t, err)
	n := 0
	for _, m := range ms {
		if m.State == im.StateReceived {
			n++
		}
	}
	return n
}

// histWait polls cond until it holds, and returns how long that took.
func histWait(t *testing.T, what string, d time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("waiting for %s: not after %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// histRows is a JavaScript condition: the list shows the ten seeded
// conversations, each with 500 unread and its last message.
const histRows = `Array.from({length: 10}, (_, c) => ["peer0" + c, "You: rhubarb " + c + "/999"]).every(([p, last]) => {
	const li = [...document.querySelectorAll("#contact-list li")].find((li) => li.querySelector(".name")?.textContent === p);
	return !!li && li.querySelector(".unread")?.textContent === "500" && li.querySelector(".preview")?.textContent === last;
})`

// histVerdicts is what the page makes of history bodies (JSON texts): for
// each, "ok" and the body as it writes it again, or why it refuses it (the
// form, as im.HistoryBody.check; operations checked as GroupOp.check).
const histVerdicts = `(async (texts) => {
	const H = await import("/js/histsync.js");
	const G = await import("/js/group.js");
	const out = [];
	for (const text of texts) {
		try {
			const b = await H.decode(new TextEncoder().encode(text));
			H.check(b);
			for (const ops of b.groups.values()) for (const o of ops) await G.checkOp(o);
			out.push({ok: true, again: new TextDecoder().decode(H.encode(b))});
		} catch (e) {
			out.push({ok: false, why: e.message});
		}
	}
	return JSON.stringify(out);
})`

// TestBrowserHistory: alice's Go device holds 10 conversations × 1,000
// messages and a group with bob, her contact; she signs in on a fresh
// browser, and within 5 s the page lists the conversations with their 500
// unread each and their last messages (batches from the Go device, merged
// into IndexedDB), and knows the group and its message. Reading a
// conversation in the page reads it on the Go device (read receipts to
// contacts on or off), and one read on the Go device (MarkRead) clears the
// page's count. The page reads and writes history bodies as Go does, byte
// for byte, and refuses what Go refuses. What the page has (a message it
// sent bob, one bob sent it, the group and the 10,000) reaches a new CLI
// device of alice's from the page alone (the Go device closed): `parley
// history` prints them with their states. A batch from a device alice
// removed is refused without a word. axe-core passes on the list the
// history filled, and the page reports no CSP violation.
func TestBrowserHistory(t *testing.T) {
	chromiumPath(t)
	began := time.Now()
	up := startUp(t)
	axeJS := axeSource(t)
	_, wav := micWAV(t, 191)
	b := newBrowser(t, wav)
	b.watchCSP()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// alice's Go device: its history seeded, then online (in process).
	home := t.TempDir()
	histSeed(t, home, 10, 1000, "rhubarb")
	histNoise(t, home, 200)
	c, err := client.New(client.Config{Home: home, LoginURL: up.loginURL})
	histMust(t, err)
	histMust(t, c.Register(ctx, "alice", "alice-password"))
	histMust(t, c.Login(ctx, "alice", "alice-password"))
	ev := &histEvents{}
	s, err := c.Online(ctx, client.SessionConfig{OnEvent: ev.add})
	histMust(t, err)
	closed := false
	t.Cleanup(func() {
		if !closed {
			s.Close()
		}
	})
	// bob is alice's contact; the Go device makes a group with him and
	// writes to it.
	bob := cliUser(t, up.loginURL, "bob")
	_, err = c.AddContact(ctx, "bob")
	histMust(t, err)
	mustRun(t, bob, "alice is now a contact", "contacts", "accept", "alice")
	g, err := s.CreateGroup(ctx, "History club", []string{"bob"})
	histMust(t, err)
	_, err = s.SendGroupMessage(ctx, g.ID, "Before the page <&>")
	histMust(t, err)

	// (a) alice signs in on a fresh browser: the ten conversations, their
	// unread counts and last messages within 5 s.
	b.do("open the page", 20*time.Second, chromedp.Navigate(up.loginURL+"/"))
	b.typeInto("Username", "alice")
	b.typeInto("Password", "alice-password")
	eval[bool](b, `(() => {
		window.__signInAt = 0; window.__histAt = 0;
		const at = () => { if (!window.__signInAt) window.__signInAt = Date.now(); };
		document.getElementById("signin").addEventListener("pointerdown", at, true);
		document.getElementById("signin").addEventListener("click", at, true);
		const iv = setInterval(() => { if (`+histRows+`) { window.__histAt = Date.now(); clearInterval(iv); } }, 20);
		return true;
	})()`, 5*time.Second)
	b.click("Sign in")
	b.waitFor("the ten conversations with their unread counts and last messages", `window.__histAt > 0`, 15*time.Second)
	took := time.Duration(eval[float64](b, `window.__histAt - window.__signInAt`, 5*time.Second)) * time.Millisecond
	t.Logf("10 conversations × 1,000 messages listed in the page %v after the click on Sign in", took)
	if took > 5*time.Second {
		t.Errorf("the page listed the Go device's history %v after sign-in, want within 5 s", took)
	}
	b.waitFor("the rest of the Go device's history in the page", `window.parley.app.im.history.counts.merged >= 10201`, 15*time.Second)
	t.Logf("all 10,201 messages in the page %v after the click on Sign in", time.Duration(eval[float64](b, `Date.now() - window.__signInAt`, 5*time.Second))*time.Millisecond)
	var got struct {
		Convs  map[string][3]int
		Counts map[string]int
	}
	if err := json.Unmarshal([]byte(eval[string](b, `(async () => {
		const m = window.parley.app.im;
		const convs = {};
		for (const [p, ms] of await m.hist.all()) convs[p] = [ms.length, ms.filter((x) => x.unread).length, ms.filter((x) => x.state === "delivered").length];
		return JSON.stringify({convs, counts: m.history.counts});
	})()`, 10*time.Second)), &got); err != nil {
		t.Fatal(err)
	}
	t.Logf("the page's history sync: %v", got.Counts)
	if got.Convs["peer10"] != [3]int{200, 100, 100} {
		t.Errorf("the page holds of peer10 (text that does not deflate) %v, want [200 100 100]", got.Convs["peer10"])
	}
	if got.Convs[im.GroupPeerPrefix+g.ID] != [3]int{1, 0, 0} {
		t.Errorf("the page holds of the group's conversation %v, want its one message", got.Convs[im.GroupPeerPrefix+g.ID])
	}
	b.waitFor("the Go device's group in the page", pageGroup(g.ID)+` === '{"name":"History club","members":["alice","bob"],"admins":["alice"],"member":true}'`, 5*time.Second)
	for i := range 10 {
		p := fmt.Sprintf("peer%02d", i)
		if got.Convs[p] != [3]int{1000, 500, 500} {
			t.Errorf("the page holds of %s [messages, unread, delivered] %v, want [1000 500 500]", p, got.Convs[p])
		}
	}

	// (c) alice reads peer03 in the page: read on the Go device; with read
	// receipts off, peer07 too.
	seenBefore := ev.count("seen")
	b.click("Chat with peer03")
	b.waitFor("peer03 read in the page, its first and last messages on screen", unread("peer03", 0)+` && `+
		chatLine("me", "rhubarb 3/999")+` === 1 && `+chatLine("peer03", "rhubarb 3/0")+` === 1`, 5*time.Second)
	d := histWait(t, "peer03 read on the Go device", 5*time.Second, func() bool { return histUnread(t, s, "peer03") == 0 })
	t.Logf("read in the page → read on the Go device in %v", d.Round(time.Millisecond))
	b.readReceipts(false)
	b.click("Chat with peer07")
	b.waitFor("peer07 read in the page", unread("peer07", 0), 5*time.Second)
	histWait(t, "peer07 read on the Go device (read receipts off)", 10*time.Second, func() bool { return histUnread(t, s, "peer07") == 0 })
	b.readReceipts(true)
	if n := histUnread(t, s, "peer01"); n != 500 {
		t.Errorf("peer01, not read, has %d unread on the Go device, want 500", n)
	}
	// Read on the Go device: the page's count clears.
	readAt := time.Now()
	done, err := s.MarkRead(ctx, "peer05", nil)
	histMust(t, err)
	if len(done) != 500 {
		t.Fatalf("MarkRead marked %d, want 500", len(done))
	}
	b.waitFor("peer05 read in the page", unread("peer05", 0)+` && `+unread("peer04", 500), 5*time.Second)
	t.Logf("read on the Go device → read in the page in %v", time.Since(readAt).Round(time.Millisecond))
	if n := ev.count("seen"); n < seenBefore+2 {
		t.Errorf("the Go device had %d seen events from the page's reads, want 2 (peer03, peer07)", n-seenBefore)
	}
	// A batch for the conversation on screen: its new messages show (the
	// one that came is read at once, and so on the Go device), and a mark
	// moves on. The Go device's history gets two newer messages and its
	// newest of mine is read; the page asks again (as at a start).
	b.click("Chat with peer03")
	b.waitFor("peer03's conversation", `document.getElementById("chat-h").textContent === "peer03"`, 5*time.Second)
	ms, err := s.History("peer03", 0)
	histMust(t, err)
	last := ms[len(ms)-1]
	h, err := im.OpenHistory(home)
	histMust(t, err)
	_, err = h.MarkRead("peer03", []string{last.ID})
	histMust(t, err)
	late := im.Message{ID: im.NewMessageID(), Peer: "peer03", Dir: im.DirIn, FromDevice: make(ed25519.PublicKey, 32), Seq: 2000, TS: last.TS + 1000,
		Text: "late in 3", State: im.StateReceived}
	later := im.Message{ID: im.NewMessageID(), Peer: "peer03", Dir: im.DirOut, FromDevice: make(ed25519.PublicKey, 32), Seq: 2001, TS: last.TS + 2000,
		Text: "late out 3", State: im.StateDelivered}
	_, err = h.Merge([]im.Message{late, later})
	histMust(t, err)
	h.Close()
	eval[bool](b, `window.parley.app.im.history.want(null).then(() => true)`, 10*time.Second)
	b.waitFor("the batch in the open conversation", chatLine("peer03", "late in 3")+` === 1 && `+chatMark("late out 3", "delivered")+` && `+
		chatMark("rhubarb 3/999", "read")+` && `+unread("peer03", 0), 5*time.Second)
	histWait(t, "the message that came on screen read on the Go device", 5*time.Second, func() bool { return histUnread(t, s, "peer03") == 0 })
	if n := ev.count("message-refused"); n > 0 {
		t.Errorf("the Go device refused %d of the page's envelopes", n)
	}

	// The page reads history bodies as Go reads them and writes them as
	// Go writes them; it refuses what Go refuses.
	histBodies(ctx, t, b, home, c)

	b.axe(axeJS, "the conversation list the history filled")
	b.noCSPViolation("alice, after the history came")

	// (b) What the page has reaches a new device from the page alone: a
	// message it sent bob, one bob sent it, the group and the 10,000.
	bobListen := start(t, bob, "listen", "--json")
	waitOnline(t, bobListen)
	b.click("Chat with bob")
	b.sendChat("From the page to bob <&> ✓")
	b.waitFor("the page's message delivered", chatMark("From the page to bob <&> ✓", "delivered"), 20*time.Second)
	mustRun(t, bob, "to alice", "chat", "alice", "From bob to the page")
	b.waitFor("bob's message in the page", chatLine("bob", "From bob to the page")+` === 1`, 20*time.Second)
	// On screen as it came: read on the Go device too.
	histWait(t, "bob's message, read in the page, read on the Go device", 5*time.Second, func() bool {
		ms, err := s.History("bob", 0)
		histMust(t, err)
		return len(ms) == 2 && histUnread(t, s, "bob") == 0
	})
	s.Close()
	closed = true
	alice3 := userEnv(t, up.loginURL, "alice-password")
	mustRun(t, alice3, "logged in as alice", "login", "alice")
	newAt := time.Now()
	l3 := start(t, alice3, "listen", "--json")
	waitOnline(t, l3)
	histWait(t, "the new device to merge 10,203 messages from the page", 30*time.Second, func() bool {
		out, _ := l3.output()
		n := 0
		for _, ev := range jsonObjects(out) {
			if ev["event"] == "history" {
				n += int(ev["count"].(float64))
			}
		}
		return n >= 10203
	})
	t.Logf("10,203 messages from the page on a new CLI device %v after it started; the page's history sync: %s", time.Since(newAt).Round(time.Millisecond),
		eval[string](b, `JSON.stringify(window.parley.app.im.history.counts)`, 5*time.Second))
	// The group's log comes in a batch of its own, maybe after the last
	// messages: wait for it too.
	histWait(t, "the group on the new CLI device", 10*time.Second, func() bool {
		_, _, code := runParley(t, alice3, "history", "--json", "--group", g.ID)
		return code == 0
	})
	l3.cmd.Process.Signal(os.Interrupt)
	l3.wait(t, 10*time.Second)
	states := func(peer ...string) map[string]string {
		out, errOut, code := runParley(t, alice3, append([]string{"history", "--json"}, peer...)...)
		if code != 0 {
			t.Fatalf("history %s: exit %d\n%s", peer, code, errOut)
		}
		m := map[string]string{}
		for _, ev := range jsonObjects(out) {
			m[ev["text"].(string)] = fmt.Sprint(ev["from"], " ", ev["state"])
		}
		return m
	}
	if st := states("bob"); st["From the page to bob <&> ✓"] != "alice delivered" || st["From bob to the page"] != "bob read" || len(st) != 2 {
		t.Errorf("the new device's conversation with bob: %q, want the page's message delivered and bob's read", st)
	}
	if st := states("peer10"); len(st) != 200 {
		t.Errorf("the new device has %d messages with peer10, want 200", len(st))
	}
	if st := states("--group", g.ID); st["Before the page <&>"] != "alice sent" || len(st) != 1 {
		t.Errorf("the new device's group conversation: %q, want the Go device's message, sent", st)
	}
	for _, tc := range []struct {
		peer            string
		n, unread       int
		last, lastState string
	}{
		{"peer03", 1000, 0, "rhubarb 3/999", "alice read"}, // the last 1,000 of 1,002: two later ones came
		{"peer05", 1000, 0, "rhubarb 5/999", "alice delivered"},
		{"peer01", 1000, 500, "rhubarb 1/999", "alice delivered"},
	} {
		st := states(tc.peer)
		n := 0
		for _, v := range st {
			if strings.HasSuffix(v, " received") {
				n++
			}
		}
		if len(st) != tc.n || n != tc.unread || st[tc.last] != tc.lastState {
			t.Errorf("the new device's conversation with %s: %d messages, %d unread, %q %q; want %d, %d, %q",
				tc.peer, len(st), n, tc.last, st[tc.last], tc.n, tc.unread, tc.lastState)
		}
	}
	if st := states("peer03"); st["late in 3"] != "peer03 read" || st["late out 3"] != "alice delivered" || st["rhubarb 3/1"] != "" {
		t.Errorf("the new device's conversation with peer03: the later ones %q, %q, the second %q; want read, delivered, and not the first two",
			st["late in 3"], st["late out 3"], st["rhubarb 3/1"])
	}

	// A batch from a device alice removed (the new one): refused, without
	// a word.
	seed, err := os.ReadFile(filepath.Join(envOf(alice3, "PARLEY_HOME"), "key"))
	histMust(t, err)
	var st3 struct{ Credential string }
	raw, err := os.ReadFile(filepath.Join(envOf(alice3, "PARLEY_HOME"), "state.json"))
	histMust(t, err)
	histMust(t, json.Unmarshal(raw, &st3))
	lc := loginapi.NewClient(up.loginURL, nil)
	devs, err := lc.Devices(ctx, st3.Credential, "alice")
	histMust(t, err)
	pagePub := eval[string](b, `(async () => (await import("/js/util.js")).b64(window.parley.app.im.cfg.pub))()`, 5*time.Second)
	var page []im.DeviceRecord
	for _, d := range devs {
		if base64.StdEncoding.EncodeToString(d.Key) == pagePub {
			page = append(page, im.DeviceRecord{User: "alice", Key: d.Key, X25519: d.X25519, Sig: d.Sig})
		}
	}
	if len(page) != 1 {
		t.Fatalf("the page's device is not among alice's: %d of %d", len(page), len(devs))
	}
	if _, err := lc.DeleteDevice(ctx, st3.Credential); err != nil {
		t.Fatal(err)
	}
	forged := &im.HistoryBody{Type: im.HistoryBatch, Messages: []im.SyncedMessage{im.Synced(im.Message{ID: im.NewMessageID(), Peer: "peer03",
		Dir: im.DirIn, FromDevice: make(ed25519.PublicKey, 32), Seq: 1, TS: time.Now().UnixMilli(), Text: "forged history", State: im.StateReceived})}}
	env, err := im.SealHistory(im.Sender{User: "alice", Device: ed25519.NewKeyFromSeed(seed), Credential: st3.Credential}, page, forged, time.Now())
	histMust(t, err)
	enc, err := env.Encode()
	histMust(t, err)
	refused := eval[float64](b, `window.parley.app.im.counts.refused`, 5*time.Second)
	if !eval[bool](b, `(async () => {
		const m = window.parley.app.im;
		await m.receive(`+string(enc)+`, "supernode");
		return (await m.hist.conversation("peer03")).every((x) => x.text !== "forged history");
	})()`, 10*time.Second) {
		t.Errorf("the page stored a batch from a removed device")
	}
	if n := eval[float64](b, `window.parley.app.im.counts.refused`, 5*time.Second); n != refused+1 {
		t.Errorf("the page counted %v refused envelopes for the removed device's batch, want 1", n-refused)
	}
	if strings.Contains(b.pageText(), "Dropped a message") {
		t.Errorf("the page said something about the removed device's batch: %s", b.pageText())
	}
	b.noCSPViolation("alice, at the end")
	t.Logf("TestBrowserHistory took %v", time.Since(began).Round(100*time.Millisecond))
}

// envOf is the value of name in env.
func envOf(env []string, name string) string {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// histBodies: bodies Go writes, read by the page and written again, are the
// same bytes; malformed ones are refused by both (Go: json.Unmarshal and
// im.SealHistory's check; the page: histsync.js's decode and check).
func histBodies(ctx context.Context, t *testing.T, b *browser, home string, c *client.Client) {
	t.Helper()
	seed, err := os.ReadFile(filepath.Join(home, "key"))
	histMust(t, err)
	cred, err := c.Credential(ctx)
	histMust(t, err)
	snd := im.Sender{User: "alice", Device: ed25519.NewKeyFromSeed(seed), Credential: cred}
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	x, _ := ecdh.X25519().GenerateKey(rand.Reader)
	to := []im.DeviceRecord{im.NewDeviceRecord("alice", other, x)}
	create, err := im.SignGroupOp(snd, im.OpDraft{Clock: 1, Type: im.OpCreate, Name: "Équipe <&> 🚀", Members: []string{"bob"}})
	histMust(t, err)
	add, err := im.SignGroupOp(snd, im.OpDraft{Group: create.ID(), Clock: 2, Type: im.OpAdd, Target: "carol"})
	histMust(t, err)
	dev := make([]byte, 32)
	dev[0], dev[31] = 0xfb, 0xff
	gp := im.GroupPeerPrefix + create.ID()
	id1, id2, id3 := im.NewMessageID(), im.NewMessageID(), im.NewMessageID()
	bodies := []*im.HistoryBody{
		{Type: im.HistoryWant},
		{Type: im.HistoryWant, Since: map[string]int64{"zed": 3, "bob": 1733500000000, gp: 0, "constructor": 7}},
		{Type: im.HistoryBatch, Messages: []im.SyncedMessage{
			{ID: id1, Peer: "bob", Dir: im.DirIn, Device: dev, Seq: 7, TS: 1733500000001, Text: "<b>é & 🚀</b>\u2028\t\"q\"", State: im.StateRead},
			{ID: id2, Peer: "bob", Dir: im.DirOut, Device: dev, Seq: 1, TS: 1733500000002, Text: "hi", State: im.StateSending},
			{ID: id3, Peer: gp, From: "bob", Dir: im.DirIn, Device: dev, TS: 0, Text: "in a group", State: im.StateReceived},
		}, Groups: map[string][]*im.GroupOp{create.ID(): {create, add}}},
		{Type: im.HistoryRead, Read: []im.ReadMark{{Peer: "bob", IDs: []string{id1, id2}}, {Peer: gp, IDs: []string{id3}}}},
	}
	var texts []string
	for _, body := range bodies {
		j, err := json.Marshal(body)
		histMust(t, err)
		texts = append(texts, string(j))
	}
	msg := func(f string) string {
		return fmt.Sprintf(`{"t":"batch","msgs":[{"id":%q,"peer":"bob","dir":"in","dev":"%s","seq":1,"ts":2,"text":"x","state":"received"%s}]}`,
			id1, strings.Repeat("A", 43)+"=", f)
	}
	bad := []string{
		`{"T":"BATCH"}`,
		`{"t":"batch","MSGS":[{"ID":"` + id1 + `","Peer":"bob","DIR":"in","dev":"` + strings.Repeat("A", 43) + `=","seq":1,"ts":2,"text":"x","state":"received"}]}`,
		msg(`,"state":"delivered"`), msg(`,"seq":1.0`), msg(`,"seq":-1`), msg(`,"from":"bob"`), msg(`,"text":" \n"`), msg(`,"peer":"Bob"`),
		msg(`,"dev":"AAAA"`), msg(`,"dev":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"`), msg(`,"dir":"up"`), msg(`,"id":"` + strings.ToUpper(id1) + `"`),
		`{"t":"batch","msgs":[null]}`, `{"t":"batch","msgs":[]}`, `{"t":"batch","since":{"bob":1}}`,
		`{"t":"want","since":{"bob":-1}}`, `{"t":"want","since":{"bob":1.5}}`, `{"t":"want","since":{"#nope":1}}`, `{"t":"want","since":null}`,
		`{"t":"want","read":[{"peer":"bob","ids":["` + id1 + `"]}]}`, `{"t":"read","read":[]}`, `{"t":"read","read":[{"peer":"bob","ids":[]}]}`,
		`{"t":"read","read":[{"peer":"bob","ids":["nope"]}]}`, `{"t":"nope"}`, `{"t":"batch","groups":{"nope":[]}}`,
		`{"t":"batch","groups":{"` + create.ID() + `":[null]}}`, `{"t":"batch","groups":{"` + id1 + `":` + texts[2][strings.Index(texts[2], `[{"v"`):strings.LastIndex(texts[2], "}")] + `}`,
		`[]`, `{"t":"want"`,
	}
	texts = append(texts, bad...)
	in, _ := json.Marshal(texts)
	var page []struct {
		OK    bool
		Again string
		Why   string
	}
	histMust(t, json.Unmarshal([]byte(eval[string](b, histVerdicts+"("+string(in)+")", 20*time.Second)), &page))
	if len(page) != len(texts) {
		t.Fatalf("the page judged %d bodies of %d", len(page), len(texts))
	}
	agree := 0
	for i, text := range texts {
		var body im.HistoryBody
		err := json.Unmarshal([]byte(text), &body)
		if err == nil {
			_, err = im.SealHistory(snd, to, &body, time.Now())
		}
		switch {
		case (err == nil) != page[i].OK:
			t.Errorf("body %d %.200s: Go says %v, the page %q", i, text, err, page[i].Why)
		case err == nil:
			again, _ := json.Marshal(&body)
			if string(again) != page[i].Again {
				t.Errorf("body %d: Go writes\n%s\nthe page\n%s", i, again, page[i].Again)
			} else {
				agree++
			}
		default:
			agree++
		}
		if i < len(bodies) && page[i].Again != text {
			t.Errorf("body %d: the page writes Go's body again as\n%s\nnot\n%s", i, page[i].Again, text)
		}
	}
	t.Logf("%d history bodies (%d of them odd or malformed): the page and Go agree on %d", len(texts), len(bad), agree)
}
