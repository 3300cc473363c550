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
	"github.com/parley/parley/client/im"
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
	h.s = testnet.Online(t, ctx, loginURL, user, client.SessionConfig{OnEvent: b.Event, OnIncoming: b.OnIncoming, OnConfInvite: b.OnConfInvite})
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
		{"no cmd", `{"id":"a1","peer":"alice"}`, "a1", nil, "command: missing cmd (a string: answer, call, chat, conference, contacts, decline, group, hangup, hold, mute, read, resume, send, status, typing)"},
		{"unknown cmd", `{"cmd":"dial","id":7,"peer":"alice"}`, 7.0, "dial", "dial: unknown command (answer, call, chat, conference, contacts, decline, group, hangup, hold, mute, read, resume, send, status, typing)"},
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
		{"chat to neither", `{"cmd":"chat","id":"a17","text":"hi"}`, "a17", "chat", "chat: missing peer or group"},
		{"chat to both", `{"cmd":"chat","id":"a18","peer":"alice","group":"club","text":"hi"}`, "a18", "chat", "chat: peer and group: give one of them"},
		{"chat to an unknown group", `{"cmd":"chat","id":"a19","group":"club","text":"hi"}`, "a19", "chat", `chat: group "club": no such group`},
		{"group without op", `{"cmd":"group","id":"a20","group":"club"}`, "a20", "group", "group: missing op"},
		{"unknown group op", `{"cmd":"group","id":"a21","op":"join","group":"club"}`, "a21", "group", `group: op "join": must be one of add, admin, create, info, leave, list, remove, rename`},
		{"group op missing a field", `{"cmd":"group","id":"a22","op":"add","group":"club"}`, "a22", "group", "group: op add: missing user"},
		{"group create without a name", `{"cmd":"group","id":"a23","op":"create","members":["alice"]}`, "a23", "group", "group: op create: missing name"},
		{"group op with a field it does not take", `{"cmd":"group","id":"a24","op":"leave","group":"club","user":"alice"}`, "a24", "group", "group: op leave takes no user"},
		{"group list with a group", `{"cmd":"group","id":"a25","op":"list","group":"club"}`, "a25", "group", "group: op list takes no group"},
		{"group members not a list", `{"cmd":"group","id":"a26","op":"create","name":"club","members":"alice"}`, "a26", "group", "group: members must be a list"},
		{"an unknown group", `{"cmd":"group","id":"a27","op":"info","group":"club"}`, "a27", "group", `group: group "club": no such group`},
		{"creating a group with an unknown user", `{"cmd":"group","id":"a28","op":"create","name":"club","members":["zed"]}`, "a28", "group", "group: group create: zed: unknown user"},
		{"a bad group name", `{"cmd":"group","id":"a29","op":"create","name":" "}`, "a29", "group", "group: group create: group name must be 1 to 200 bytes"},
		{"conference without op", `{"cmd":"conference","id":"b1","conf":"x"}`, "b1", "conference", "conference: missing op"},
		{"unknown conference op", `{"cmd":"conference","id":"b2","op":"dial","conf":"x"}`, "b2", "conference", `conference: op "dial": must be one of decline, hold, invite, join, leave, mute, roster, start`},
		{"conference start with nobody", `{"cmd":"conference","id":"b3","op":"start"}`, "b3", "conference", "conference: op start: missing users or group"},
		{"conference start with an empty list", `{"cmd":"conference","id":"b4","op":"start","users":[]}`, "b4", "conference", "conference: op start: missing users or group"},
		{"conference op without conf", `{"cmd":"conference","id":"b5","op":"leave"}`, "b5", "conference", "conference: op leave: missing conf"},
		{"conference invite without users", `{"cmd":"conference","id":"b6","op":"invite","conf":"x","users":[]}`, "b6", "conference", "conference: op invite: missing users"},
		{"conference op with a field it does not take", `{"cmd":"conference","id":"b7","op":"roster","conf":"x","on":true}`, "b7", "conference", "conference: op roster takes no on"},
		{"conference start with a conf", `{"cmd":"conference","id":"b8","op":"start","users":["alice"],"conf":"x"}`, "b8", "conference", "conference: op start takes no conf"},
		{"conference users not a list", `{"cmd":"conference","id":"b9","op":"start","users":"alice"}`, "b9", "conference", "conference: users must be a list"},
		{"conference on not a boolean", `{"cmd":"conference","id":"b10","op":"mute","conf":"x","on":1}`, "b10", "conference", "conference: on must be a boolean"},
		{"conference unknown field", `{"cmd":"conference","id":"b11","op":"roster","conf":"x","peer":"alice"}`, "b11", "conference", `conference: unknown field "peer"`},
		{"an unknown conference", `{"cmd":"conference","id":"b12","op":"mute","conf":"0123456789abcdef0123456789abcdef"}`, "b12", "conference", "conference: no conference 0123456789abcdef0123456789abcdef"},
		{"joining an unknown conference", `{"cmd":"conference","id":"b13","op":"join","conf":"x"}`, "b13", "conference", "conference: no conference x"},
		{"declining an unknown conference", `{"cmd":"conference","id":"b14","op":"decline","conf":"x"}`, "b14", "conference", "conference: no conference x"},
		{"leaving an unknown conference", `{"cmd":"conference","id":"b15","op":"leave","conf":"x"}`, "b15", "conference", "conference: no conference x"},
		{"a conference with an unknown group", `{"cmd":"conference","id":"b16","op":"start","group":"club"}`, "b16", "conference", `conference: group "club": no such group`},
		{"a conference with only yourself", `{"cmd":"conference","id":"b17","op":"start","users":["bob"]}`, "b17", "conference", "conference: nobody to invite"},
		{"a conference with a bad user name", `{"cmd":"conference","id":"b18","op":"start","users":["Bob Smith"]}`, "b18", "conference", `conference: invalid user name: "Bob Smith"`},
		{"a conference with an unknown user", `{"cmd":"conference","id":"b19","op":"start","users":["zed"]}`, "b19", "conference", "conference: invite zed: send to zed: user is offline"},
		{"a conference playing a file that is not there", `{"cmd":"conference","id":"b20","op":"start","users":["alice"],"play":"/no/such.wav"}`, "b20", "conference", "conference: play /no/such.wav: open /no/such.wav: no such file"},
		{"a conference recording to stdout", `{"cmd":"conference","id":"b21","op":"join","conf":"x","record":"-"}`, "b21", "conference", `conference: "-" is not a file`},
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
	const callID, msgID, gid = "0123456789abcdef", "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
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
		// Groups.
		{"a group's message", client.Event{Event: "message", Peer: "#" + gid, MessageEvent: &client.MessageEvent{ID: msgID, From: "alice", Group: gid, GroupName: "club", Text: "hi", Sent: now, Via: client.ViaSupernode}}, true},
		{"a group's message of an unknown group", client.Event{Event: "message", Peer: "#" + gid, MessageEvent: &client.MessageEvent{ID: msgID, From: "bob", Group: gid, Text: "hi", Sent: now, Via: client.ViaMailbox}}, true},
		{"a group's message with a to", client.Event{Event: "message", Peer: "#" + gid, MessageEvent: &client.MessageEvent{ID: msgID, From: "alice", To: "bob", Group: gid, Text: "hi", Sent: now, Via: client.ViaSupernode}}, false},
		{"a group's message with a user as peer", client.Event{Event: "message", Peer: "alice", MessageEvent: &client.MessageEvent{ID: msgID, From: "alice", Group: gid, Text: "hi", Sent: now, Via: client.ViaSupernode}}, false},
		{"a message without to", client.Event{Event: "message", Peer: "alice", MessageEvent: &client.MessageEvent{ID: msgID, From: "alice", Text: "hi", Sent: now, Via: client.ViaSupernode}}, false},
		{"a group created", client.Event{Event: "group", Peer: "alice", MessageEvent: &client.MessageEvent{Group: gid, GroupName: "club", Op: "create", By: "alice", Members: []string{"alice", "bob"}, Sent: now}}, true},
		{"a member added", client.Event{Event: "group", Peer: "alice", MessageEvent: &client.MessageEvent{Group: gid, GroupName: "club", Op: "add", By: "alice", Target: "carol", Members: []string{"alice", "bob", "carol"}, Sent: now}}, true},
		{"the last member left", client.Event{Event: "group", Peer: "alice", MessageEvent: &client.MessageEvent{Group: gid, GroupName: "club", Op: "leave", By: "alice", Sent: now}}, true},
		{"an add without its target", client.Event{Event: "group", Peer: "alice", MessageEvent: &client.MessageEvent{Group: gid, GroupName: "club", Op: "add", By: "alice", Members: []string{"alice"}, Sent: now}}, false},
		{"a rename with a target", client.Event{Event: "group", Peer: "alice", MessageEvent: &client.MessageEvent{Group: gid, GroupName: "club", Op: "rename", By: "alice", Target: "bob", Members: []string{"alice"}, Sent: now}}, false},
		{"an unknown group op", client.Event{Event: "group", Peer: "alice", MessageEvent: &client.MessageEvent{Group: gid, GroupName: "club", Op: "join", By: "alice", Members: []string{"alice"}, Sent: now}}, false},
		{"a group event with via", client.Event{Event: "group", Peer: "alice", MessageEvent: &client.MessageEvent{Group: gid, GroupName: "club", Op: "leave", By: "alice", Members: []string{"bob"}, Sent: now, Via: client.ViaMailbox}}, false},
		{"sent to a group", map[string]any{"event": "sent", "group": "club", "id": msgID, "members": 3, "delivered": 1, "stored": 1, "failed": map[string]string{"dave": "user is offline"}}, true},
		{"sent to a group, counted in booleans", map[string]any{"event": "sent", "group": "club", "id": msgID, "members": 1, "delivered": true, "stored": false}, false},
		{"sent to a peer, with members", map[string]any{"event": "sent", "peer": "bob", "id": msgID, "members": 1, "delivered": true, "stored": false}, false},
		{"a group's history record", map[string]any{"id": msgID, "from": "bob", "group": gid, "text": "hi", "sent": now, "state": "received", "seq": 3}, true},
		{"a group's history record with a to", map[string]any{"id": msgID, "from": "bob", "to": "", "group": gid, "text": "hi", "sent": now, "state": "received", "seq": 3}, false},
		{"a group list record", client.GroupInfo{ID: gid, Name: "club", Members: []string{"alice", "bob"}, Admins: []string{"alice"}, Member: true}, true},
		{"a group list record with null members", client.GroupInfo{ID: gid, Name: "club"}, false},
		{"a group command's result", map[string]any{"event": "result", "cmd": "group", "op": "create", "group": gid, "name": "club", "members": []string{"alice", "bob"}, "admins": []string{"alice"}, "member": true}, true},
		{"a group list result", map[string]any{"event": "result", "cmd": "group", "op": "list", "groups": []client.GroupInfo{{ID: gid, Name: "club", Members: []string{"bob"}, Admins: []string{"bob"}, Member: true}}}, true},
		{"a chat to a group's result", map[string]any{"event": "result", "cmd": "chat", "group": gid, "message_id": msgID, "members": 2, "delivered": 1, "stored": 1, "failed": map[string]string{}}, true},
		{"a chat to a group's result without failed", map[string]any{"event": "result", "cmd": "chat", "group": gid, "message_id": msgID, "members": 2, "delivered": 1, "stored": 1}, false},
		{"a chat to a peer's result counted", map[string]any{"event": "result", "cmd": "chat", "peer": "bob", "message_id": msgID, "delivered": 1, "stored": 0}, false},
		{"a conference start's result", map[string]any{"event": "result", "cmd": "conference", "op": "start", "conf": gid, "users": []string{"alice", "carol"}, "group": gid}, true},
		{"a conference roster's result", map[string]any{"event": "result", "cmd": "conference", "op": "roster", "conf": gid, "roster": []client.ConfMember{{User: "bob", Device: "3c", Self: true, Muted: true}, {User: "alice", Device: "a1", Speaking: true, Path: "direct"}}}, true},
		{"a conference hold's result", map[string]any{"event": "result", "cmd": "conference", "op": "hold", "conf": gid, "held": true}, true},
		{"a conference result with a bad id", map[string]any{"event": "result", "cmd": "conference", "op": "leave", "conf": "x", "reason": "left the conference"}, false},
		{"a conference roster's result with an unknown path", map[string]any{"event": "result", "cmd": "conference", "op": "roster", "conf": gid, "roster": []client.ConfMember{{User: "bob", Device: "3c", Path: "carrier pigeon"}}}, false},
		{"parley group info's result", map[string]any{"event": "result", "cmd": "group info", "id": gid, "name": "club", "members": []string{"alice"}, "admins": []string{"alice"}, "member": true}, true},
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

// TestCommandSchema: docs/schema/commands.schema.json takes the commands
// as the bot does, and refuses what the bot refuses before running it.
func TestCommandSchema(t *testing.T) {
	sch := compileSchema(t, "commands.schema.json")
	for _, tt := range []struct {
		line string
		ok   bool
	}{
		{`{"cmd":"chat","peer":"bob","text":"hi"}`, true},
		{`{"cmd":"chat","group":"club","text":"hi","id":3}`, true},
		{`{"cmd":"chat","text":"hi"}`, false},
		{`{"cmd":"chat","peer":"bob","group":"club","text":"hi"}`, false},
		{`{"cmd":"group","op":"create","name":"club","members":["alice","carol"]}`, true},
		{`{"cmd":"group","op":"create","name":"club"}`, true},
		{`{"cmd":"group","op":"create","members":["alice"]}`, false},
		{`{"cmd":"group","op":"create","name":"club","group":"x"}`, false},
		{`{"cmd":"group","op":"add","group":"club","user":"dave"}`, true},
		{`{"cmd":"group","op":"remove","group":"club"}`, false},
		{`{"cmd":"group","op":"admin","group":"club","user":"dave","name":"x"}`, false},
		{`{"cmd":"group","op":"rename","group":"0123456789","name":"club two"}`, true},
		{`{"cmd":"group","op":"rename","group":"club","name":""}`, false},
		{`{"cmd":"group","op":"leave","group":"club"}`, true},
		{`{"cmd":"group","op":"info","group":"club","user":"bob"}`, false},
		{`{"cmd":"group","op":"list"}`, true},
		{`{"cmd":"group","op":"list","members":[]}`, false},
		{`{"cmd":"group","op":"join","group":"club"}`, false},
		{`{"cmd":"group","group":"club"}`, false},
		{`{"cmd":"group","op":"info","group":"club","color":"red"}`, false},
		{`{"cmd":"conference","op":"start","users":["alice","carol"],"play":"hi.wav","record":"mix.wav"}`, true},
		{`{"cmd":"conference","op":"start","group":"club"}`, true},
		{`{"cmd":"conference","op":"start","group":"club","users":["dave"]}`, true},
		{`{"cmd":"conference","op":"start"}`, false},
		{`{"cmd":"conference","op":"start","users":[]}`, false},
		{`{"cmd":"conference","op":"start","users":["alice"],"conf":"x"}`, false},
		{`{"cmd":"conference","op":"start","users":["alice"],"record":"-"}`, false},
		{`{"cmd":"conference","op":"invite","conf":"9f","users":["dave"]}`, true},
		{`{"cmd":"conference","op":"invite","conf":"9f"}`, false},
		{`{"cmd":"conference","op":"join","conf":"9f","play":"hi.wav"}`, true},
		{`{"cmd":"conference","op":"join","conf":"9f","on":true}`, false},
		{`{"cmd":"conference","op":"decline","conf":"9f"}`, true},
		{`{"cmd":"conference","op":"leave"}`, false},
		{`{"cmd":"conference","op":"mute","conf":"9f","on":false}`, true},
		{`{"cmd":"conference","op":"hold","conf":"9f","on":"yes"}`, false},
		{`{"cmd":"conference","op":"roster","conf":"9f"}`, true},
		{`{"cmd":"conference","op":"roster","conf":"9f","users":["alice"]}`, false},
		{`{"cmd":"conference","op":"dial","conf":"9f"}`, false},
		{`{"cmd":"conference","conf":"9f"}`, false},
	} {
		v, err := jsonschema.UnmarshalJSON(strings.NewReader(tt.line))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(v); (err == nil) != tt.ok {
			t.Errorf("%s: valid = %v, want %v (%v)", tt.line, err == nil, tt.ok, err)
		}
	}
}

// eventSchema compiles docs/schema/events.schema.json.
func eventSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	return compileSchema(t, "events.schema.json")
}

// compileSchema compiles docs/schema/name.
func compileSchema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("..", "..", "docs", "schema", name))
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

// find returns the first output line ok accepts, from the first line on
// (events a command emits before its result), waiting for it.
func (h *harness) find(t *testing.T, what string, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, line := range h.out.lines() {
			var ev map[string]any
			if line != "" && json.Unmarshal([]byte(line), &ev) == nil && ok(ev) {
				return ev
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s in:\n%s", what, strings.Join(h.out.lines(), "\n"))
	return nil
}

// wantFields fails unless got has the fields of want (a JSON object) with
// the same values.
func wantFields(t *testing.T, what string, got map[string]any, want string) {
	t.Helper()
	var w map[string]any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	for k, v := range w {
		if g, _ := json.Marshal(got[k]); string(g) != string(must(json.Marshal(v))) {
			t.Errorf("%s: %s is %s, want %s (in %v)", what, k, g, must(json.Marshal(v)), got)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestGroupCommands: a bot creates a group of two of its contacts, sends it
// a message and gets theirs, makes one an admin, renames the group (by a
// prefix of its id), removes the other; it is told what it may not do (add
// a non-contact, remove a non-member, rename a group it is no admin of,
// name a group two have), and leaves a group; every change it makes or
// hears of is a group event, and its members agree.
func TestGroupCommands(t *testing.T) {
	loginURL := testnet.Start(t, testnet.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := startBot(t, loginURL, "bob", Config{})
	alice := testnet.Online(t, ctx, loginURL, "alice", client.SessionConfig{})
	carol := testnet.Online(t, ctx, loginURL, "carol", client.SessionConfig{})
	testnet.Online(t, ctx, loginURL, "dave", client.SessionConfig{}) // no contact of anyone's
	for _, u := range []*client.Session{alice, carol} {
		wantFields(t, "contacts add", h.send(t, `{"cmd":"contacts","op":"add","peer":"`+u.User()+`"}`), `{"event":"result","state":"requested"}`)
		if _, err := u.AcceptContact(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
	}

	got := h.send(t, `{"cmd":"group","id":1,"op":"create","name":"club","members":["alice","carol","bob"]}`)
	wantFields(t, "create", got, `{"event":"result","id":1,"cmd":"group","op":"create","name":"club","members":["bob","alice","carol"],"admins":["bob"],"member":true}`)
	id, _ := got["group"].(string)
	if len(id) != 32 {
		t.Fatalf("create: group %q, want the group's id", id)
	}
	h.find(t, "the create's group event", func(ev map[string]any) bool {
		return ev["event"] == "group" && ev["op"] == "create" && ev["group"] == id && ev["by"] == "bob" && ev["group_name"] == "club"
	})
	agree := func(what string, s *client.Session, want client.GroupInfo) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			g, err := s.Group(id)
			if err == nil && g.Name == want.Name && slices.Equal(g.Members, want.Members) && slices.Equal(g.Admins, want.Admins) && g.Member == want.Member {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %s sees %+v (%v), want %+v", what, s.User(), g, err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	agree("create", alice, client.GroupInfo{Name: "club", Members: []string{"bob", "alice", "carol"}, Admins: []string{"bob"}, Member: true})

	// Messages both ways.
	if _, err := alice.SendGroupMessage(ctx, id, "hi from alice"); err != nil {
		t.Fatal(err)
	}
	msg := h.find(t, "alice's group message", func(ev map[string]any) bool { return ev["event"] == "message" && ev["text"] == "hi from alice" })
	wantFields(t, "alice's group message", msg, `{"peer":"#`+id+`","from":"alice","group":"`+id+`","group_name":"club","to":null}`)
	got = h.send(t, `{"cmd":"chat","group":"club","text":"hi all"}`)
	wantFields(t, "chat to the group", got, `{"event":"result","cmd":"chat","group":"`+id+`","members":2,"delivered":2,"stored":0,"failed":{},"peer":null}`)
	for _, s := range []*client.Session{alice, carol} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			ms, _ := s.GroupHistory(id, 0)
			if slices.ContainsFunc(ms, func(m im.Message) bool { return m.ID == got["message_id"] && m.From == "bob" && m.Text == "hi all" }) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's history of the group has no message %v from bob: %+v", s.User(), got["message_id"], ms)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// Changes.
	wantFields(t, "admin", h.send(t, `{"cmd":"group","op":"admin","group":"club","user":"alice"}`),
		`{"event":"result","op":"admin","group":"`+id+`","admins":["bob","alice"]}`)
	wantFields(t, "rename", h.send(t, `{"cmd":"group","op":"rename","group":"`+id[:8]+`","name":"club two"}`),
		`{"event":"result","op":"rename","group":"`+id+`","name":"club two"}`)
	wantFields(t, "remove", h.send(t, `{"cmd":"group","op":"remove","group":"club two","user":"carol"}`),
		`{"event":"result","op":"remove","group":"`+id+`","name":"club two","members":["bob","alice"],"admins":["bob","alice"],"member":true}`)
	after := client.GroupInfo{Name: "club two", Members: []string{"bob", "alice"}, Admins: []string{"bob", "alice"}, Member: true}
	agree("the changes", alice, after)
	after.Member = false
	agree("the removal", carol, after)
	wantFields(t, "info", h.send(t, `{"cmd":"group","op":"info","group":"club two"}`),
		`{"event":"result","op":"info","group":"`+id+`","name":"club two","members":["bob","alice"],"admins":["bob","alice"],"member":true}`)

	// What it may not do.
	for _, tt := range []struct{ line, want string }{
		{`{"cmd":"group","op":"add","group":"club two","user":"dave"}`, "group: group add: dave: only your contacts can be added"},
		{`{"cmd":"group","op":"remove","group":"club two","user":"carol"}`, "group: group remove: group " + id + ": carol: not a member of the group"},
		{`{"cmd":"group","op":"info","group":"nothing-like-it"}`, `group: group "nothing-like-it": no such group`},
	} {
		if got := h.send(t, tt.line); got["event"] != "error" || !strings.HasPrefix(fmt.Sprint(got["error"]), tt.want) {
			t.Errorf("%s: %v, want an error %q…", tt.line, got, tt.want)
		}
	}

	// A group of alice's with the same name: the bot is no admin of it, and
	// the name is ambiguous.
	other, err := alice.CreateGroup(ctx, "club two", []string{"bob"})
	if err != nil {
		t.Fatal(err)
	}
	h.find(t, "alice's create's group event", func(ev map[string]any) bool {
		return ev["event"] == "group" && ev["op"] == "create" && ev["group"] == other.ID && ev["by"] == "alice" && ev["peer"] == "alice"
	})
	for _, tt := range []struct{ line, want string }{
		{`{"cmd":"group","op":"info","group":"club two"}`, `group: group "club two": 2 groups match (use the id): several groups have that name`},
		{`{"cmd":"chat","group":"club two","text":"which?"}`, `chat: group "club two": 2 groups match (use the id)`},
		{`{"cmd":"group","op":"rename","group":"` + other.ID + `","name":"mine"}`, "group: group rename: group " + other.ID + ": bob: only an admin of the group may do that"},
	} {
		if got := h.send(t, tt.line); got["event"] != "error" || !strings.HasPrefix(fmt.Sprint(got["error"]), tt.want) {
			t.Errorf("%s: %v, want an error %q…", tt.line, got, tt.want)
		}
	}
	wantFields(t, "leave", h.send(t, `{"cmd":"group","op":"leave","group":"`+other.ID+`"}`),
		`{"event":"result","op":"leave","group":"`+other.ID+`","members":["alice"],"admins":["alice"],"member":false}`)
	got = h.send(t, `{"cmd":"group","op":"list"}`)
	groups, _ := got["groups"].([]any)
	if got["event"] != "result" || len(groups) != 2 {
		t.Fatalf("list: %v, want two groups", got)
	}
	for _, g := range groups {
		g := g.(map[string]any)
		if want := g["id"] == id; g["member"] != want || g["name"] != "club two" {
			t.Errorf("list: %v, want club two, member %v", g, want)
		}
	}
	// The events of the changes the bot made, and of alice's.
	for _, op := range []string{"admin", "rename", "remove", "leave"} {
		h.find(t, op+" group event", func(ev map[string]any) bool { return ev["event"] == "group" && ev["op"] == op && ev["by"] == "bob" })
	}
}
