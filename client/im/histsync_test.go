package im

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestHistoryEnvelope: a batch goes from one device of a user to another;
// a history envelope from another user, or whose body is malformed or over
// a limit, is refused.
func TestHistoryEnvelope(t *testing.T) {
	w := newGroupWorld(t)
	msg := func(state string) SyncedMessage {
		return Synced(Message{ID: NewMessageID(), Peer: "bob", Dir: DirOut, FromDevice: w.a1.pub(), Seq: 1, TS: 5, Text: "hi", State: state})
	}
	good := &HistoryBody{Type: HistoryBatch, Messages: []SyncedMessage{msg(StateDelivered)}}
	e, err := SealHistory(w.a1.sender, []DeviceRecord{w.a2.rec}, good, imTestNow)
	if err != nil {
		t.Fatal(err)
	}
	o, err := w.a2.open(wire(t, e), w.loginPub)
	if err != nil || o.History == nil || len(o.History.Messages) != 1 {
		t.Fatalf("open: %+v, %v", o, err)
	}
	if _, err := w.b1.open(wire(t, e), w.loginPub); err == nil {
		t.Error("another user opened a history envelope")
	}
	c := w.create(t, "bob")
	forged := w.op(t, w.a1, c.ID(), 2, OpRename, "", "a")
	forged.Name = "b"
	forgedOps, _ := json.Marshal(HistoryBody{Type: HistoryBatch, Groups: map[string][]*GroupOp{c.ID(): {c, forged}}})
	tests := []struct {
		name string
		body string
		want error
	}{
		{"not JSON", `{`, ErrBadHistory},
		{"unknown type", `{"t":"dump"}`, ErrBadHistory},
		{"a state that does not fit the direction", `{"t":"batch","msgs":[{"id":"` + NewMessageID() + `","peer":"bob","dir":"in","dev":"` +
			strings.Repeat("A", 43) + `=","seq":1,"ts":1,"text":"x","state":"delivered"}]}`, ErrBadHistory},
		{"a bad peer", `{"t":"want","since":{"../x":1}}`, ErrBadHistory},
		{"a read mark without ids", `{"t":"read","read":[{"peer":"bob","ids":[]}]}`, ErrBadHistory},
		{"an operation of another group", `{"t":"batch","groups":{"` + NewMessageID() + `":[{"v":1}]}}`, ErrBadHistory},
		{"a group operation that does not verify", string(forgedOps), ErrGroupOpSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := seal(w.a1.sender, KindHistory, NewMessageID(), "alice", 0, imTestNow, []byte(tt.body), []DeviceRecord{w.a2.rec})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.a2.open(wire(t, e), w.loginPub); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	// Another user cannot address a history envelope to alice.
	if _, err := SealHistory(w.b1.sender, []DeviceRecord{w.a1.rec}, good, imTestNow); err == nil {
		t.Error("bob sealed history to alice's device")
	}
}

// TestHistoryMerge: a batch adds what the history lacks and moves a held
// message's state forward only; a batch with one bad message changes
// nothing.
func TestHistoryMerge(t *testing.T) {
	h := openTestHistory(t, t.TempDir())
	dev := testDeviceKey(t)
	a := Message{ID: NewMessageID(), Peer: "bob", Dir: DirOut, FromDevice: dev, Seq: 1, TS: 1, Text: "a", State: StateSent}
	b := Message{ID: NewMessageID(), Peer: "bob", Dir: DirIn, FromDevice: dev, Seq: 1, TS: 2, Text: "b", State: StateRead}
	if n, err := h.Merge([]Message{a, b}); err != nil || n != 2 {
		t.Fatalf("Merge = %d, %v", n, err)
	}
	a2, b2 := a, b
	a2.State, b2.State = StateDelivered, StateReceived // forward; backward
	if n, err := h.Merge([]Message{a2, b2}); err != nil || n != 0 {
		t.Fatalf("Merge again = %d, %v", n, err)
	}
	ms, _ := h.Conversation("bob", 0)
	if got := []string{ms[0].State, ms[1].State}; got[0] != StateDelivered || got[1] != StateRead {
		t.Errorf("states %v, want [delivered read]", got)
	}
	bad := Message{ID: "x", Peer: "bob", Dir: DirIn, FromDevice: dev, Text: "c", State: StateReceived}
	c := Message{ID: NewMessageID(), Peer: "carol", Dir: DirIn, FromDevice: dev, Seq: 1, TS: 3, Text: "c", State: StateReceived}
	if _, err := h.Merge([]Message{c, bad}); !errors.Is(err, ErrBadHistory) {
		t.Fatalf("a batch with a bad id: %v, want %v", err, ErrBadHistory)
	}
	if ms, _ := h.Conversation("carol", 0); len(ms) != 0 {
		t.Error("a refused batch stored a message")
	}
}
