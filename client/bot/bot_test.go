package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/parley/parley/client"
	"github.com/parley/parley/internal/testnet"
)

// syncBuffer is an io.Writer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Split(strings.TrimSuffix(w.b.String(), "\n"), "\n")
}

// harness is a bot running as a user of its own, fed through a pipe.
type harness struct {
	s    *client.Session
	out  *syncBuffer
	in   *io.PipeWriter
	seen int // output lines already consumed by next
}

// startBot runs a bot as user until the end of the test; every line it
// writes must match the event schema.
func startBot(t *testing.T, loginURL, user string, cfg Config) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{out: &syncBuffer{}}
	cfg.Out = h.out
	b := New(cfg)
	h.s = testnet.Online(t, ctx, loginURL, user, client.SessionConfig{OnEvent: b.Event, OnIncoming: b.OnIncoming})
	pr, pw := io.Pipe()
	h.in = pw
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx, h.s, pr) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil when its context ends", err)
		}
		pw.Close() // ends Run's reader
		checkLines(t, eventSchema(t), h.out.lines())
	})
	return h
}

// send writes line and returns the bot's reply to it: the next result or
// error event.
func (h *harness) send(t *testing.T, line string) map[string]any {
	t.Helper()
	if _, err := io.WriteString(h.in, line+"\n"); err != nil {
		t.Fatal(err)
	}
	return h.next(t, "the reply to "+line, func(ev map[string]any) bool { return ev["event"] == "result" || ev["event"] == "error" })
}

// next returns the next output line ok accepts, after those already taken.
func (h *harness) next(t *testing.T, what string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		lines := h.out.lines()
		for ; h.seen < len(lines); h.seen++ {
			var ev map[string]any
			if lines[h.seen] == "" || json.Unmarshal([]byte(lines[h.seen]), &ev) != nil {
				continue
			}
			if ok(ev) {
				h.seen++
				return ev
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s in:\n%s", what, strings.Join(h.out.lines(), "\n"))
	return nil
}

// TestDispatchErrors: a line that is not a command, or a command the bot
// cannot run, gets one error event naming the command and the reason (with
// the command's id when it has one), and the bot goes on.
func TestDispatchErrors(t *testing.T) {
	loginURL := testnet.Start(t, testnet.Config{})
	h := startBot(t, loginURL, "bob", Config{MaxLine: 1024})
	tests := []struct {
		name, line string
		wantID     any    // nil: none
		wantCmd    any    // nil: none
		wantError  string // the error's start
	}{
		{"not JSON", `hangup now`, nil, nil, "command: not JSON: invalid character"},
		{"not an object", `["call","bob"]`, nil, nil, "command: not a JSON object"},
		{"null", `null`, nil, nil, "command: not a JSON object"},
		{"too long", `{"cmd":"chat","peer":"alice","text":"` + strings.Repeat("x", 2000) + `"}`, nil, nil, "command: line longer than 1024 bytes, skipped"},
		{"an id that is an object", `{"cmd":"status","status":"away","id":{"n":1}}`, nil, nil, "command: id must be a string or a number"},
		{"no cmd", `{"id":"a1","peer":"alice"}`, "a1", nil, "command: missing cmd (a string: answer, call, chat, contacts, decline, hangup, hold, mute, read, resume, status, typing)"},
		{"unknown cmd", `{"cmd":"dial","id":7,"peer":"alice"}`, 7.0, "dial", "dial: unknown command (answer, call, chat, contacts, decline, hangup, hold, mute, read, resume, status, typing)"},
		{"missing field", `{"cmd":"call","id":"a2"}`, "a2", "call", "call: missing peer"},
		{"empty field", `{"cmd":"chat","id":"a3","peer":"alice","text":""}`, "a3", "chat", "chat: missing text"},
		{"unknown field", `{"cmd":"call","id":"a4","peer":"alice","volume":11}`, "a4", "call", `call: unknown field "volume"`},
		{"wrong type", `{"cmd":"mute","id":"a5","call_id":"0123456789abcdef","on":"yes"}`, "a5", "mute", "mute: on must be a boolean"},
		{"unknown call", `{"cmd":"hangup","id":"a6","call_id":"0123456789abcdef"}`, "a6", "hangup", "hangup: no call 0123456789abcdef"},
		{"answer an unknown call", `{"cmd":"answer","id":"a7","call_id":"nope"}`, "a7", "answer", "answer: no call nope"},
		{"hold an unknown call", `{"cmd":"hold","id":"a8","call_id":"nope"}`, "a8", "hold", "hold: no call nope"},
		{"unknown op", `{"cmd":"contacts","id":"a9","op":"befriend","peer":"alice"}`, "a9", "contacts", `contacts: op "befriend": must be one of accept, add, remove`},
		{"a file that is not there", `{"cmd":"call","id":"a10","peer":"alice","play":"/no/such.wav"}`, "a10", "call", "call: play /no/such.wav: open /no/such.wav: no such file"},
		{"stdin as the file", `{"cmd":"call","id":"a11","peer":"alice","record":"-"}`, "a11", "call", `call: "-" is not a file`},
		{"a failing operation", `{"cmd":"chat","id":"a12","peer":"zed","text":"hi"}`, "a12", "chat", "chat: message to zed: unknown user"},
		{"a bad status", `{"cmd":"status","id":"a13","status":"asleep"}`, "a13", "status", `status: status "asleep"`},
		{"calling an unknown user", `{"cmd":"call","id":"a14","peer":"zed"}`, "a14", "call", "call: call zed: unknown user"},
		{"typing to an unknown user", `{"cmd":"typing","id":"a15","peer":"zed"}`, "a15", "typing", "typing: message to zed: unknown user"},
		{"read ids that are not a list", `{"cmd":"read","id":"a16","peer":"alice","ids":"x"}`, "a16", "read", "read: ids must be a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := h.send(t, tt.line)
			if got["event"] != "error" || got["id"] != tt.wantID || got["cmd"] != tt.wantCmd ||
				!strings.HasPrefix(fmt.Sprint(got["error"]), tt.wantError) || strings.Contains(fmt.Sprint(got["error"]), "\n") {
				t.Errorf("got %v, want an error event with id %v, cmd %v, error %q…", got, tt.wantID, tt.wantCmd, tt.wantError)
			}
		})
	}
	// Still running: a good command after them all.
	if got := h.send(t, `{"cmd":"status","status":"away","id":"last"}`); got["event"] != "result" || got["id"] != "last" || got["status"] != "away" {
		t.Errorf("status after the bad commands: %v, want its result", got)
	}
}

// TestCallCommands: a bot declines a ringing call, answers the next one,
// hangs it up, and places one of its own.
func TestCallCommands(t *testing.T) {
	loginURL := testnet.Start(t, testnet.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := startBot(t, loginURL, "bob", Config{})
	alice := testnet.Online(t, ctx, loginURL, "alice", client.SessionConfig{OnIncoming: func(in *client.Incoming) {
		if call, err := in.Answer(ctx, client.Media{}); err == nil {
			<-call.Done()
		}
	}})
	ringing := func() string {
		ev := h.next(t, "ringing event", func(ev map[string]any) bool {
			return ev["event"] == "call" && ev["state"] == "ringing" && ev["direction"] == "incoming"
		})
		return ev["call_id"].(string)
	}

	declined := make(chan error, 1)
	go func() {
		_, err := alice.Call(ctx, "bob", client.Media{})
		declined <- err
	}()
	id := ringing()
	if got := h.send(t, `{"cmd":"decline","call_id":"`+id+`","reason":"busy"}`); got["event"] != "result" || got["reason"] != "busy" || got["peer"] != "alice" {
		t.Errorf("decline: %v", got)
	}
	if err := <-declined; !errors.Is(err, client.ErrDeclined) || !strings.Contains(err.Error(), "busy") {
		t.Errorf("alice's call: %v, want declined (busy)", err)
	}

	answered := make(chan *client.Call, 1)
	go func() {
		call, err := alice.Call(ctx, "bob", client.Media{})
		if err != nil {
			t.Errorf("alice's second call: %v", err)
		}
		answered <- call
	}()
	id = ringing()
	if got := h.send(t, `{"cmd":"answer","call_id":"`+id+`"}`); got["event"] != "result" || got["call_id"] != id {
		t.Errorf("answer: %v", got)
	}
	if got := h.send(t, `{"cmd":"answer","call_id":"`+id+`"}`); got["event"] != "error" || got["error"] != "answer: call "+id+" is not ringing" {
		t.Errorf("answering twice: %v, want an error", got)
	}
	call := <-answered
	if got := h.send(t, `{"cmd":"hangup","call_id":"`+id+`"}`); got["event"] != "result" {
		t.Errorf("hangup: %v", got)
	}
	if call != nil {
		<-call.Done()
		if r := call.Reason(); r != "remote hangup" {
			t.Errorf("alice's call ended with %q, want remote hangup", r)
		}
	}

	got := h.send(t, `{"cmd":"call","peer":"alice"}`)
	id, _ = got["call_id"].(string)
	if got["event"] != "result" || len(id) != 16 || got["peer"] != "alice" {
		t.Fatalf("call: %v, want its result with a call id", got)
	}
	h.next(t, "connected event", func(ev map[string]any) bool {
		return ev["event"] == "call" && ev["call_id"] == id && ev["state"] == "connected"
	})
	if got := h.send(t, `{"cmd":"mute","call_id":"`+id+`"}`); got["muted"] != true {
		t.Errorf("mute: %v, want muted true", got)
	}
	h.send(t, `{"cmd":"hangup","call_id":"`+id+`"}`)
	h.next(t, "ended event", func(ev map[string]any) bool {
		return ev["event"] == "call" && ev["call_id"] == id && ev["state"] == "ended" && ev["reason"] == "hangup"
	})
}

// TestCommandTable: the dispatch table and docs/schema/commands.schema.json
// name the same commands.
func TestCommandTable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "schema", "commands.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Properties struct {
			Cmd struct {
				Enum []string `json:"enum"`
			} `json:"cmd"`
		} `json:"properties"`
		Defs map[string]json.RawMessage `json:"$defs"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	got, want := slices.Sorted(slices.Values(doc.Properties.Cmd.Enum)), slices.Sorted(maps.Keys(commands))
	if !slices.Equal(got, want) {
		t.Errorf("the schema's commands %v, the table's %v", got, want)
	}
	for _, c := range want {
		if doc.Defs[c] == nil {
			t.Errorf("the schema has no $defs/%s", c)
		}
	}
}

// TestEventSchema: every kind of event a session emits, as the bot writes
// it, matches docs/schema/events.schema.json, and what is not an event does
// not.
func TestEventSchema(t *testing.T) {
	now := time.Now()
	cs := func(state, reason, dir string) *client.CallState {
		return &client.CallState{State: state, Reason: reason, Direction: dir}
	}
	const callID, msgID = "0123456789abcdef", "0123456789abcdef0123456789abcdef"
	sn := "ws://127.0.0.1:8081/v1/ws"
	yes, no := true, false
	tests := []struct {
		name string
		ev   any
		ok   bool
	}{
		{"online", client.Event{Event: "online", Info: &client.Info{User: "bob", Supernode: sn}}, true},
		{"offline", client.Event{Event: "offline", Info: &client.Info{User: "bob", Supernode: sn, Message: "gone"}}, true},
		{"credential", client.Event{Event: "credential", Info: &client.Info{User: "bob", Message: "credential renewed"}}, true},
		{"promoted", client.Event{Event: client.EventPromoted, Info: &client.Info{User: "bob", Supernode: sn, Message: "serving"}}, true},
		{"stepped-down", client.Event{Event: client.EventSteppedDown, Info: &client.Info{User: "bob", Supernode: sn, Message: "dial-back failed"}}, true},
		{"ringing", client.Event{Event: "call", CallID: callID, Peer: "alice", CallState: cs("ringing", "", "incoming")}, true},
		{"connected", client.Event{Event: "call", CallID: callID, Peer: "alice", Path: "udp-relay", Relay: "127.0.0.1:50000", CallState: cs("connected", "", "outgoing")}, true},
		{"held", client.Event{Event: "call", CallID: callID, Peer: "alice", Path: "direct", CallState: cs("held", "by peer", "outgoing")}, true},
		{"stats", client.Event{Event: "stats", CallID: callID, Peer: "alice", Path: "tcp-relay", Stats: &client.Stats{PacketsSent: 50, Loss: 0.1, RelayProtocol: "tls"}}, true},
		{"path", client.Event{Event: "path", CallID: callID, Peer: "alice", Path: "direct"}, true},
		{"message", client.Event{Event: "message", Peer: "alice", MessageEvent: &client.MessageEvent{ID: msgID, From: "alice", To: "bob", Text: "hi", Sent: now, Via: client.ViaMailbox}}, true},
		{"delivered", client.Event{Event: "delivered", Peer: "alice", MessageEvent: &client.MessageEvent{To: "alice", IDs: []string{msgID}, Via: client.ViaSupernode}}, true},
		{"read", client.Event{Event: "read", Peer: "alice", MessageEvent: &client.MessageEvent{To: "alice", IDs: []string{msgID}, Via: client.ViaMailbox}}, true},
		{"typing", client.Event{Event: "typing", Peer: "alice", MessageEvent: &client.MessageEvent{From: "alice", To: "bob", Sent: now, Via: client.ViaDataChannel, Active: &yes}}, true},
		{"stopped typing", client.Event{Event: "typing", Peer: "alice", MessageEvent: &client.MessageEvent{From: "alice", To: "bob", Sent: now, Via: client.ViaSupernode, Active: &no}}, true},
		{"typing from a mailbox", client.Event{Event: "typing", Peer: "alice", MessageEvent: &client.MessageEvent{From: "alice", To: "bob", Sent: now, Via: client.ViaMailbox, Active: &yes}}, false},
		{"typing without active", client.Event{Event: "typing", Peer: "alice", MessageEvent: &client.MessageEvent{From: "alice", To: "bob", Sent: now, Via: client.ViaSupernode}}, false},
		{"message-refused", client.Event{Event: "message-refused", Peer: "alice", MessageEvent: &client.MessageEvent{From: "alice", Via: client.ViaSupernode, Why: "bad signature"}}, true},
		{"presence", client.Event{Event: "presence", Peer: "alice", PresenceEvent: &client.PresenceEvent{Status: "busy"}}, true},
		{"status", client.Event{Event: "status", Peer: "bob", PresenceEvent: &client.PresenceEvent{Status: "invisible"}}, true},
		{"contact", client.Event{Event: "contact", Peer: "alice", PresenceEvent: &client.PresenceEvent{Status: "pending"}}, true},
		{"an unknown kind", client.Event{Event: "ringing", CallID: callID}, false},
		{"a call without its state", client.Event{Event: "call", CallID: callID, Peer: "alice"}, false},
		{"a bad call state", client.Event{Event: "call", CallID: callID, Peer: "alice", CallState: cs("dialing", "", "outgoing")}, false},
		{"a presence with a field of another kind", client.Event{Event: "presence", Peer: "alice", CallID: callID, PresenceEvent: &client.PresenceEvent{Status: "away"}}, false},
		{"loss over 1", client.Event{Event: "stats", CallID: callID, Peer: "alice", Stats: &client.Stats{Loss: 1.5}}, false},
		{"no ts", map[string]any{"event": "online", "user": "bob", "supernode": sn}, false},
		{"no event, not a record", map[string]any{"ts": now, "user": "bob", "supernode": sn}, false},
		{"a result with fields of its own", map[string]any{"event": "result", "cmd": "register", "user": "bob"}, true},
		{"a result without cmd", map[string]any{"event": "result", "id": "x"}, false},
		{"an error with a code", map[string]any{"event": "error", "error": "parley: unknown user", "code": 1}, true},
		{"an error of two lines", map[string]any{"event": "error", "error": "a\nb"}, false},
		{"a history record", map[string]any{"id": msgID, "from": "bob", "to": "alice", "text": "hi", "sent": now, "state": "delivered", "seq": 3}, true},
	}
	sch := eventSchema(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ev, ok := tt.ev.(client.Event); ok {
				ev.TS = now
				tt.ev = ev
			}
			line, err := json.Marshal(tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(line))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(v); (err == nil) != tt.ok {
				t.Errorf("%s: valid = %v, want %v (%v)", line, err == nil, tt.ok, err)
			}
		})
	}
}

// eventSchema compiles docs/schema/events.schema.json.
func eventSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "..", "docs", "schema", "events.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(path, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

// checkLines fails the test for every line that does not match sch.
func checkLines(t *testing.T, sch *jsonschema.Schema, lines []string) {
	t.Helper()
	for i, line := range lines {
		if line == "" {
			continue
		}
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(line))
		if err == nil {
			err = sch.Validate(v)
		}
		if err != nil {
			t.Errorf("output line %d does not match the event schema: %v\n%s", i+1, err, line)
		}
	}
}
