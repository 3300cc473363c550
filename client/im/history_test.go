package im

import (
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func openTestHistory(t *testing.T, dir string) *History {
	t.Helper()
	h, err := OpenHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func testDeviceKey(t *testing.T) ed25519.PublicKey {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// texts returns the texts of ms, in order.
func texts(ms []Message) string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Text)
	}
	return strings.Join(s, ",")
}

func TestHistoryDedup(t *testing.T) {
	h := openTestHistory(t, t.TempDir())
	dev := testDeviceKey(t)
	m := Message{ID: NewMessageID(), Peer: "alice", Dir: DirIn, FromDevice: dev, Seq: 1, TS: 1000, Text: "hi"}
	// The same message over a data channel, through a supernode, from the
	// mailbox: shown once.
	tests := []struct {
		via  string
		want bool
	}{
		{"data channel", true},
		{"supernode", false},
		{"mailbox", false},
	}
	for _, tt := range tests {
		got, err := h.AddIncoming(m)
		if err != nil {
			t.Fatalf("%s: %v", tt.via, err)
		}
		if got != tt.want {
			t.Errorf("%s: isNew = %v, want %v", tt.via, got, tt.want)
		}
	}
	// The same id from another user, or in the other direction, is another
	// message: nobody suppresses a conversation that is not theirs.
	other := m
	other.Peer, other.Text = "mallory", "same id"
	if isNew, err := h.AddIncoming(other); err != nil || !isNew {
		t.Errorf("same id from another peer: isNew %v, %v; want true", isNew, err)
	}
	ms, err := h.Conversation("alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Text != "hi" || ms[0].State != StateReceived || !ms[0].FromDevice.Equal(dev) {
		t.Fatalf("conversation = %+v", ms)
	}
	// AddOutgoing refuses an id it already has.
	out := Message{ID: NewMessageID(), Peer: "alice", FromDevice: dev, Seq: 1, TS: 2000, Text: "yo"}
	if err := h.AddOutgoing(out); err != nil {
		t.Fatal(err)
	}
	if err := h.AddOutgoing(out); !errors.Is(err, ErrDuplicateMessage) {
		t.Fatalf("second AddOutgoing: %v, want ErrDuplicateMessage", err)
	}
}

func TestHistoryBadInput(t *testing.T) {
	h := openTestHistory(t, t.TempDir())
	good := Message{ID: NewMessageID(), Peer: "alice", Dir: DirIn, FromDevice: testDeviceKey(t), Seq: 1, TS: 1, Text: "hi"}
	tests := []struct {
		name string
		mod  func(m *Message)
		want error
	}{
		{"bad id", func(m *Message) { m.ID = "x" }, ErrBadEnvelope},
		{"bad peer", func(m *Message) { m.Peer = "Alice" }, ErrBadEnvelope},
		{"bad direction", func(m *Message) { m.Dir = "sideways" }, ErrBadEnvelope},
		{"no device", func(m *Message) { m.FromDevice = nil }, ErrBadEnvelope},
		{"empty", func(m *Message) { m.Text = "" }, ErrEmptyMessage},
		{"too long", func(m *Message) { m.Text = strings.Repeat("a", MaxMessageBytes+1) }, ErrMessageTooLong},
	}
	for _, tt := range tests {
		m := good
		tt.mod(&m)
		if _, err := h.AddIncoming(m); !errors.Is(err, tt.want) {
			t.Errorf("%s: AddIncoming err = %v, want %v", tt.name, err, tt.want)
		}
	}
	if ms, _ := h.Conversation("alice", 0); len(ms) != 0 {
		t.Fatalf("refused messages stored: %+v", ms)
	}
}

func TestHistoryOrderAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	me, peer := testDeviceKey(t), testDeviceKey(t)
	h, err := OpenHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	add := func(h *History, m Message) {
		t.Helper()
		var err error
		if m.Dir == DirOut {
			err = h.AddOutgoing(m)
		} else {
			_, err = h.AddIncoming(m)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	seq := func(h *History) int64 {
		t.Helper()
		n, err := h.NextSeq("bob")
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Stored out of order; the same millisecond is ordered by seq.
	add(h, Message{ID: NewMessageID(), Peer: "bob", Dir: DirOut, FromDevice: me, Seq: seq(h), TS: 100, Text: "1"})
	add(h, Message{ID: NewMessageID(), Peer: "bob", Dir: DirIn, FromDevice: peer, Seq: 2, TS: 300, Text: "4"})
	add(h, Message{ID: NewMessageID(), Peer: "bob", Dir: DirIn, FromDevice: peer, Seq: 1, TS: 300, Text: "3"})
	add(h, Message{ID: NewMessageID(), Peer: "bob", Dir: DirOut, FromDevice: me, Seq: seq(h), TS: 200, Text: "2"})
	add(h, Message{ID: NewMessageID(), Peer: "carol", Dir: DirIn, FromDevice: peer, Seq: 1, TS: 150, Text: "other"})
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	h = openTestHistory(t, dir)
	if got, want := seq(h), int64(3); got != want {
		t.Errorf("NextSeq after reopen = %d, want %d", got, want)
	}
	if n, _ := h.NextSeq("carol"); n != 1 {
		t.Errorf("NextSeq(carol) = %d, want 1 (counters are per peer)", n)
	}
	add(h, Message{ID: NewMessageID(), Peer: "bob", Dir: DirOut, FromDevice: me, Seq: 3, TS: 400, Text: "5"})
	tests := []struct {
		limit int
		want  string
	}{
		{0, "1,2,3,4,5"},
		{-1, "1,2,3,4,5"},
		{2, "4,5"},
		{10, "1,2,3,4,5"},
	}
	for _, tt := range tests {
		ms, err := h.Conversation("bob", tt.limit)
		if err != nil {
			t.Fatal(err)
		}
		if got := texts(ms); got != tt.want {
			t.Errorf("Conversation(bob, %d) = %s, want %s", tt.limit, got, tt.want)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, historyFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("history.db mode %v, want 0600", got)
	}
}

func TestHistoryDelivered(t *testing.T) {
	h := openTestHistory(t, t.TempDir())
	me := testDeviceKey(t)
	var ids []string
	for i := range 3 {
		m := Message{ID: NewMessageID(), Peer: "bob", FromDevice: me, Seq: int64(i + 1), TS: int64(i), Text: fmt.Sprint(i)}
		if err := h.AddOutgoing(m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	if err := h.MarkSent("bob", ids[:2]); err != nil {
		t.Fatal(err)
	}
	// A receipt from carol cannot mark messages to bob.
	if done, err := h.MarkDelivered("carol", ids); err != nil || len(done) != 0 {
		t.Fatalf("MarkDelivered(carol) = %v, %v; want none", done, err)
	}
	tests := []struct {
		name string
		ids  []string
		want []string
	}{
		{"first receipt", ids[:1], ids[:1]},
		{"repeated receipt", ids[:2], ids[1:2]},
		{"bad ids ignored", []string{"nope", ids[2]}, ids[2:]},
		{"all again", ids, nil},
	}
	for _, tt := range tests {
		done, err := h.MarkDelivered("bob", tt.ids)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if fmt.Sprint(done) != fmt.Sprint(tt.want) {
			t.Errorf("%s: newly delivered %v, want %v", tt.name, done, tt.want)
		}
	}
	ms, _ := h.Conversation("bob", 0)
	for _, m := range ms {
		if m.State != StateDelivered {
			t.Errorf("%s: state %s, want delivered", m.Text, m.State)
		}
	}
	// MarkSent does not move a delivered message back.
	if err := h.MarkSent("bob", ids); err != nil {
		t.Fatal(err)
	}
	if p, _ := h.Pending("bob"); len(p) != 0 {
		t.Errorf("Pending after delivery = %+v", p)
	}
}

// TestHistoryRead: a read receipt moves my messages to read (never back);
// MarkSeen marks the peer's messages read once, and lists them for the
// read receipt.
func TestHistoryRead(t *testing.T) {
	h := openTestHistory(t, t.TempDir())
	me, them := testDeviceKey(t), testDeviceKey(t)
	var out, in []string
	for i := range 3 {
		m := Message{ID: NewMessageID(), Peer: "bob", FromDevice: me, Seq: int64(i + 1), TS: int64(10 * i), Text: fmt.Sprint("mine ", i)}
		if err := h.AddOutgoing(m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m.ID)
		m = Message{ID: NewMessageID(), Peer: "bob", Dir: DirIn, FromDevice: them, Seq: int64(i + 1), TS: int64(10*i + 1), Text: fmt.Sprint("theirs ", i)}
		if _, err := h.AddIncoming(m); err != nil {
			t.Fatal(err)
		}
		in = append(in, m.ID)
	}
	if _, err := h.MarkDelivered("bob", out[:1]); err != nil {
		t.Fatal(err)
	}
	// Only bob's receipt marks messages to bob, and only mine.
	if done, err := h.MarkRead("carol", out); err != nil || len(done) != 0 {
		t.Fatalf("MarkRead(carol) = %v, %v", done, err)
	}
	if done, err := h.MarkRead("bob", in); err != nil || len(done) != 0 {
		t.Fatalf("MarkRead of bob's own messages = %v, %v", done, err)
	}
	if done, err := h.MarkRead("bob", out[:2]); err != nil || fmt.Sprint(done) != fmt.Sprint(out[:2]) {
		t.Fatalf("MarkRead = %v, %v; want %v", done, err, out[:2])
	}
	if done, _ := h.MarkDelivered("bob", out); fmt.Sprint(done) != fmt.Sprint(out[2:]) {
		t.Errorf("MarkDelivered after read = %v, want only %v (read stays read)", done, out[2:])
	}
	// MarkSeen: the given ids, then all the rest, then nothing.
	if done, err := h.MarkSeen("bob", []string{in[1], out[0], "nope"}); err != nil || fmt.Sprint(done) != fmt.Sprint(in[1:2]) {
		t.Fatalf("MarkSeen(ids) = %v, %v; want %v", done, err, in[1:2])
	}
	if done, err := h.MarkSeen("bob", nil); err != nil || fmt.Sprint(done) != fmt.Sprint([]string{in[0], in[2]}) {
		t.Fatalf("MarkSeen(all) = %v, %v", done, err)
	}
	if done, err := h.MarkSeen("bob", nil); err != nil || len(done) != 0 {
		t.Fatalf("MarkSeen again = %v, %v", done, err)
	}
	ms, _ := h.Conversation("bob", 0)
	var states []string
	for _, m := range ms {
		states = append(states, m.State)
	}
	if got := strings.Join(states, " "); got != "read read read read delivered read" {
		t.Errorf("states %s", got)
	}
	// A copy of a message that comes again stays read.
	if isNew, _ := h.AddIncoming(Message{ID: in[0], Peer: "bob", Dir: DirIn, FromDevice: them, Seq: 1, TS: 1, Text: "theirs 0"}); isNew {
		t.Error("a message read here came again as new")
	}
}

// TestHistoryMigrates: a history of the first format (no state "read") and
// of the second (no groups) opens, keeps its messages, takes read states
// and stores group logs.
func TestHistoryMigrates(t *testing.T) {
	for _, v := range []int{1, 2} {
		t.Run(fmt.Sprintf("from %d", v), func(t *testing.T) { testHistoryMigrates(t, v) })
	}
}

func testHistoryMigrates(t *testing.T, from int) {
	dir := t.TempDir()
	db, err := sql.Open("sqlite", filepath.Join(dir, historyFile))
	if err != nil {
		t.Fatal(err)
	}
	id := NewMessageID()
	states := `'sending', 'sent', 'delivered', 'received'`
	if from == 2 {
		states += `, 'read'`
	}
	for _, q := range []string{
		`CREATE TABLE messages (peer TEXT NOT NULL, dir TEXT NOT NULL CHECK (dir IN ('in', 'out')), id TEXT NOT NULL,
			from_device BLOB NOT NULL, seq INTEGER NOT NULL, ts INTEGER NOT NULL, text TEXT NOT NULL,
			state TEXT NOT NULL CHECK (state IN (` + states + `)), PRIMARY KEY (peer, dir, id))`,
		`CREATE INDEX messages_order ON messages(peer, ts, seq, id)`,
		`CREATE INDEX messages_pending ON messages(state) WHERE state IN ('sending', 'sent')`,
		`CREATE TABLE seqs (peer TEXT PRIMARY KEY, last INTEGER NOT NULL)`,
		`CREATE TABLE early_acks (peer TEXT NOT NULL, id TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (peer, id))`,
		`INSERT INTO messages VALUES ('bob', 'out', '` + id + `', zeroblob(32), 1, 5, 'from before', 'delivered')`,
		fmt.Sprintf(`PRAGMA user_version = %d`, from),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()
	h := openTestHistory(t, dir)
	if done, err := h.MarkRead("bob", []string{id}); err != nil || len(done) != 1 {
		t.Fatalf("MarkRead after the migration = %v, %v", done, err)
	}
	ms, err := h.Conversation("bob", 0)
	if err != nil || len(ms) != 1 || ms[0].Text != "from before" || ms[0].State != StateRead {
		t.Fatalf("conversation after the migration = %+v, %v", ms, err)
	}
	var v int
	if err := h.db.QueryRow(`PRAGMA user_version`).Scan(&v); err != nil || v != historySchema {
		t.Fatalf("user_version %d, %v", v, err)
	}
	if _, err := h.GroupOps(NewMessageID()); err != nil {
		t.Fatalf("group logs after the migration: %v", err)
	}
	h.Close()
	openTestHistory(t, dir) // and again, migrated already
}

func TestHistoryPending(t *testing.T) {
	h := openTestHistory(t, t.TempDir())
	me, other := testDeviceKey(t), testDeviceKey(t)
	a := Message{ID: NewMessageID(), Peer: "bob", FromDevice: me, Seq: 1, TS: 1, Text: "a"}
	b := Message{ID: NewMessageID(), Peer: "bob", FromDevice: me, Seq: 2, TS: 2, Text: "b"}
	c := Message{ID: NewMessageID(), Peer: "carol", FromDevice: me, Seq: 1, TS: 3, Text: "c"}
	copyFromOther := Message{ID: NewMessageID(), Peer: "bob", Dir: DirOut, FromDevice: other, Seq: 1, TS: 4, Text: "d"}
	in := Message{ID: NewMessageID(), Peer: "bob", Dir: DirIn, FromDevice: other, Seq: 1, TS: 5, Text: "e"}
	for _, m := range []Message{a, b, c} {
		if err := h.AddOutgoing(m); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range []Message{copyFromOther, in} {
		if _, err := h.AddIncoming(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.MarkDelivered("bob", []string{a.ID}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		peer string
		want string
	}{
		{"bob", "b,d"},
		{"carol", "c"},
		{"", "b,d,c"},
		{"dave", ""},
	}
	for _, tt := range tests {
		ms, err := h.Pending(tt.peer)
		if err != nil {
			t.Fatal(err)
		}
		if got := texts(ms); got != tt.want {
			t.Errorf("Pending(%q) = %s, want %s", tt.peer, got, tt.want)
		}
	}
}

// TestHistoryEarlyReceipt: bob's receipt reaches this device before the copy
// of the message another of my devices sent.
func TestHistoryEarlyReceipt(t *testing.T) {
	h := openTestHistory(t, t.TempDir())
	m := Message{ID: NewMessageID(), Peer: "bob", Dir: DirOut, FromDevice: testDeviceKey(t), Seq: 1, TS: 1, Text: "hi"}
	if done, err := h.MarkDelivered("bob", []string{m.ID}); err != nil || len(done) != 0 {
		t.Fatalf("MarkDelivered = %v, %v", done, err)
	}
	if isNew, err := h.AddIncoming(m); err != nil || !isNew {
		t.Fatalf("AddIncoming = %v, %v", isNew, err)
	}
	ms, _ := h.Conversation("bob", 0)
	if len(ms) != 1 || ms[0].State != StateDelivered {
		t.Fatalf("conversation = %+v, want one delivered message", ms)
	}
}

func TestHistoryConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	// Two handles, as two commands on one home would have, and several
	// goroutines on each.
	h1, h2 := openTestHistory(t, dir), openTestHistory(t, dir)
	dev := testDeviceKey(t)
	const perWriter = 40
	var wg sync.WaitGroup
	seqs := make(chan int64, 4*perWriter)
	for w, h := range []*History{h1, h2, h1, h2} {
		wg.Go(func() {
			for i := range perWriter {
				n, err := h.NextSeq("bob")
				if err != nil {
					t.Error(err)
					return
				}
				seqs <- n
				m := Message{ID: NewMessageID(), Peer: "bob", FromDevice: dev, Seq: n, TS: int64(i), Text: fmt.Sprintf("w%d-%d", w, i)}
				if err := h.AddOutgoing(m); err != nil {
					t.Error(err)
					return
				}
				if _, err := h.AddIncoming(Message{ID: m.ID, Peer: "bob", Dir: DirIn, FromDevice: dev, Seq: 1, TS: 1, Text: "dup"}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(seqs)
	seen := map[int64]bool{}
	for n := range seqs {
		if seen[n] {
			t.Errorf("NextSeq returned %d twice", n)
		}
		seen[n] = true
	}
	ms, err := h1.Conversation("bob", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(ms), 2*4*perWriter; got != want {
		t.Fatalf("%d messages, want %d", got, want)
	}
}

func TestHistoryCorruptFile(t *testing.T) {
	tests := []struct {
		name    string
		content []byte
	}{
		{"text file", []byte(strings.Repeat("this is not a database\n", 200))},
		{"truncated header", []byte("SQLite format 3\x00garbage")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, historyFile), tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			h, err := OpenHistory(dir)
			if err == nil {
				h.Close()
				t.Fatal("OpenHistory of a corrupt file succeeded")
			}
			if !errors.Is(err, ErrHistoryCorrupt) {
				t.Fatalf("err = %v, want ErrHistoryCorrupt", err)
			}
			if !strings.Contains(err.Error(), historyFile) {
				t.Errorf("err %q does not name the file", err)
			}
		})
	}
	// A history written by a newer client is refused, not mangled.
	dir := t.TempDir()
	h := openTestHistory(t, dir)
	if _, err := h.db.Exec(`PRAGMA user_version = 99`); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if _, err := OpenHistory(dir); !errors.Is(err, ErrHistoryCorrupt) {
		t.Fatalf("newer format: err = %v, want ErrHistoryCorrupt", err)
	}
}

// TestHistoryFromEnvelope: what Open returns goes into the history as the
// right conversation and direction on each device.
func TestHistoryFromEnvelope(t *testing.T) {
	w := newIMWorld(t)
	e := wire(t, mustSeal(t, w, "hello"))
	for _, d := range []*testDevice{w.b1, w.a2} {
		o, err := d.open(e, w.loginPub)
		if err != nil {
			t.Fatal(err)
		}
		h := openTestHistory(t, t.TempDir())
		for i, want := range []bool{true, false} {
			isNew, err := h.AddIncoming(o.Message(d.user))
			if err != nil || isNew != want {
				t.Fatalf("%s: AddIncoming #%d = %v, %v; want %v", d.user, i+1, isNew, err, want)
			}
		}
		peer := map[string]string{"bob": "alice", "alice": "bob"}[d.user]
		ms, _ := h.Conversation(peer, 0)
		if len(ms) != 1 || ms[0].Text != "hello" || ms[0].ID != e.ID {
			t.Fatalf("%s: conversation with %s = %+v", d.user, peer, ms)
		}
	}
}
