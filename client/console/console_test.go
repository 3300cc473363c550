package console

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/im"
	"github.com/parley/parley/codec"
	"github.com/parley/parley/wire/loginapi"
	"github.com/parley/parley/wire/snapi"
)

var ts = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func TestEventText(t *testing.T) {
	sent := time.Date(2026, 3, 4, 9, 8, 7, 0, time.Local)
	yes, no := true, false
	call := func(state, dir, reason string) client.Event {
		return client.Event{TS: ts, Event: "call", Peer: "bob", Path: "direct",
			CallState: &client.CallState{State: state, Direction: dir, Reason: reason}}
	}
	tests := []struct {
		name string
		ev   client.Event
		want string
	}{
		{"online", client.Event{TS: ts, Event: "online", Info: &client.Info{User: "alice", Supernode: "ws://sn/v1/ws"}},
			"05:06:07 online as alice via ws://sn/v1/ws\n"},
		{"incoming", call(client.StateRinging, "incoming", ""), "05:06:07 incoming call from bob\n"},
		{"ringing", call(client.StateRinging, "outgoing", ""), "05:06:07 ringing bob\n"},
		{"connected", call(client.StateConnected, "outgoing", ""), "05:06:07 connected with bob (path direct)\n"},
		{"ended", call(client.StateEnded, "outgoing", "hangup"), "05:06:07 call with bob ended: hangup\n"},
		{"held: no line", call(client.StateHeld, "outgoing", "by local"), ""},
		{"stats", client.Event{TS: ts, Event: "stats", Peer: "bob", Stats: &client.Stats{Path: "udp-relay", PacketsSent: 50,
			PacketsReceived: 49, Loss: 0.02, JitterMS: 1.25, RTTMS: 3}},
			"05:06:07 bob: path udp-relay, sent 50, received 49, loss 2.0%, jitter 1.2 ms, rtt 3.0 ms\n"},
		{"stats, direct", client.Event{TS: ts, Event: "stats", Peer: "bob", Stats: &client.Stats{Path: "direct", DirectVia: "port-mapped",
			PacketsSent: 50, PacketsReceived: 50}},
			"05:06:07 bob: path direct (port-mapped), sent 50, received 50, loss 0.0%, jitter 0.0 ms, rtt 0.0 ms\n"},
		{"credential", client.Event{TS: ts, Event: "credential", Info: &client.Info{Message: "credential renewed"}},
			"05:06:07 credential renewed\n"},
		{"promoted", client.Event{TS: ts, Event: client.EventPromoted, Info: &client.Info{Supernode: "ws://me/v1/ws"}},
			"05:06:07 promoted to supernode at ws://me/v1/ws\n"},
		{"stepped down", client.Event{TS: ts, Event: client.EventSteppedDown, Info: &client.Info{Message: "dial-back failed"}},
			"05:06:07 stepped down as supernode: dial-back failed\n"},
		{"message", client.Event{TS: ts, Event: "message", Peer: "bob", MessageEvent: &client.MessageEvent{From: "bob", To: "alice", Text: "hi", Sent: sent}},
			"09:08:07 <bob> hi\n"},
		{"own message from another device", client.Event{TS: ts, Event: "message", Peer: "bob", MessageEvent: &client.MessageEvent{From: "alice", To: "bob", Text: "yo", Sent: sent}},
			"09:08:07 [to bob, from another device] yo\n"},
		{"delivered", client.Event{TS: ts, Event: "delivered", Peer: "bob", MessageEvent: &client.MessageEvent{IDs: []string{"a", "b"}}},
			"05:06:07 delivered to bob (2)\n"},
		{"read", client.Event{TS: ts, Event: "read", Peer: "bob", MessageEvent: &client.MessageEvent{IDs: []string{"a"}}},
			"05:06:07 read by bob (1)\n"},
		{"typing", client.Event{TS: ts, Event: "typing", Peer: "bob", MessageEvent: &client.MessageEvent{From: "bob", Active: &yes}},
			"05:06:07 bob is typing…\n"},
		{"stopped typing", client.Event{TS: ts, Event: "typing", Peer: "bob", MessageEvent: &client.MessageEvent{From: "bob", Active: &no}},
			"05:06:07 bob stopped typing\n"},
		{"refused", client.Event{TS: ts, Event: "message-refused", Peer: "bob", MessageEvent: &client.MessageEvent{Why: "bad signature"}},
			"05:06:07 refused a message claiming to be from bob: bad signature\n"},
		{"presence", client.Event{TS: ts, Event: "presence", Peer: "bob", PresenceEvent: &client.PresenceEvent{Status: "away"}},
			"05:06:07 bob is away\n"},
		{"status", client.Event{TS: ts, Event: "status", Peer: "alice", PresenceEvent: &client.PresenceEvent{Status: "busy"}},
			"05:06:07 your status is now busy (set on another device)\n"},
		{"contact pending", client.Event{TS: ts, Event: "contact", Peer: "carol", PresenceEvent: &client.PresenceEvent{Status: loginapi.ContactPending}},
			"05:06:07 carol wants to be your contact (parley contacts accept carol)\n"},
		{"contact requested", client.Event{TS: ts, Event: "contact", Peer: "carol", PresenceEvent: &client.PresenceEvent{Status: loginapi.ContactRequested}},
			"05:06:07 contact request sent to carol\n"},
		{"contact accepted", client.Event{TS: ts, Event: "contact", Peer: "carol", PresenceEvent: &client.PresenceEvent{Status: loginapi.ContactAccepted}},
			"05:06:07 carol is now a contact\n"},
		{"contact gone", client.Event{TS: ts, Event: "contact", Peer: "carol", PresenceEvent: &client.PresenceEvent{Status: loginapi.ContactNone}},
			"05:06:07 carol is not a contact any more\n"},
		{"unknown event: no line", client.Event{TS: ts, Event: "path", Peer: "bob"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			(&Printer{W: &b}).Event(tt.ev)
			if got := b.String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEventJSON(t *testing.T) {
	var b bytes.Buffer
	p := &Printer{W: &b, JSON: true}
	p.Event(client.Event{TS: ts, Event: "online", Info: &client.Info{User: "alice", Supernode: "ws://sn/v1/ws"}})
	p.Event(client.Event{TS: ts, Event: "call", CallID: "9f", Peer: "bob", CallState: &client.CallState{State: "ringing", Direction: "outgoing"}})
	want := `{"ts":"2026-03-04T05:06:07Z","event":"online","user":"alice","supernode":"ws://sn/v1/ws"}` + "\n" +
		`{"ts":"2026-03-04T05:06:07Z","event":"call","call_id":"9f","peer":"bob","state":"ringing","reason":"","direction":"outgoing"}` + "\n"
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestResults(t *testing.T) {
	in := time.Date(2026, 3, 4, 9, 8, 7, 0, time.Local)
	msgs := []im.Message{
		{ID: "m1", Peer: "bob", Dir: im.DirIn, TS: in.UnixMilli(), Text: "hi", Seq: 1},
		{ID: "m2", Peer: "bob", Dir: im.DirOut, TS: in.Add(time.Second).UnixMilli(), Text: "hello", State: "delivered", Seq: 1},
	}
	const gid, gid2 = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	groupMsgs := []im.Message{
		{ID: "m3", Peer: im.GroupPeer(gid), From: "bob", Dir: im.DirIn, TS: in.UnixMilli(), Text: "hi all", State: "received", Seq: 4},
		{ID: "m4", Peer: im.GroupPeer(gid), From: "alice", Dir: im.DirOut, TS: in.Add(time.Second).UnixMilli(), Text: "hello", State: "sent", Seq: 2},
	}
	sentJSON, _ := in.MarshalJSON()
	sent2JSON, _ := in.Add(time.Second).MarshalJSON()
	tests := []struct {
		name  string
		print func(p *Printer)
		text  string
		json  string
	}{
		{"delivered", func(p *Printer) { p.Sent("bob", client.SendResult{ID: "x1", Delivered: true}) },
			"delivered to bob\n", `{"event":"sent","peer":"bob","id":"x1","delivered":true,"stored":false}` + "\n"},
		{"stored", func(p *Printer) { p.Sent("bob", client.SendResult{ID: "x2", Stored: true}) },
			"bob is offline: stored in their mailbox, delivered at their next login\n",
			`{"event":"sent","peer":"bob","id":"x2","delivered":false,"stored":true}` + "\n"},
		{"sent", func(p *Printer) { p.Sent("bob", client.SendResult{ID: "x3"}) },
			"sent to bob\n", `{"event":"sent","peer":"bob","id":"x3","delivered":false,"stored":false}` + "\n"},
		{"history", func(p *Printer) { p.History("alice", "bob", msgs) },
			"2026-03-04 09:08:07 <bob> hi\n2026-03-04 09:08:08 <alice> hello  [delivered]\n",
			fmt.Sprintf(`{"id":"m1","from":"bob","to":"alice","text":"hi","sent":%s,"state":"","seq":1}`+"\n"+
				`{"id":"m2","from":"alice","to":"bob","text":"hello","sent":%s,"state":"delivered","seq":1}`+"\n", sentJSON, sent2JSON)},
		{"contacts", func(p *Printer) {
			p.Contacts([]client.ContactPresence{{User: "bob", State: "accepted", Presence: "online"}, {User: "carol", State: "pending"}})
		},
			"bob\taccepted\tonline\ncarol\tpending\n",
			`{"user":"bob","state":"accepted","presence":"online"}` + "\n" + `{"user":"carol","state":"pending","presence":""}` + "\n"},
		{"lookups", func(p *Printer) {
			p.Lookups([]snapi.Found{{User: "bob", Devices: 2, Nodes: []string{"a:1", "b:2"}, Hops: 1}, {User: "carol", Hops: 3}})
		},
			"bob: online, 2 device(s) at a:1, b:2 (1 hop)\ncarol: offline (3 hops)\n",
			`{"user":"bob","devices":2,"nodes":["a:1","b:2"],"hops":1}` + "\n" + `{"user":"carol","devices":0,"hops":3}` + "\n"},
		{"users", func(p *Printer) { p.Users([]string{"ann", "anna"}) },
			"ann\nanna\n", `{"user":"ann"}` + "\n" + `{"user":"anna"}` + "\n"},
		// A group's history: each message's sender, a "group" and no "to".
		{"group history", func(p *Printer) { p.History("alice", "team", groupMsgs) },
			"2026-03-04 09:08:07 <bob> hi all\n2026-03-04 09:08:08 <alice> hello  [sent]\n",
			fmt.Sprintf(`{"id":"m3","from":"bob","text":"hi all","sent":%s,"state":"received","seq":4,"group":"`+gid+`"}`+"\n"+
				`{"id":"m4","from":"alice","text":"hello","sent":%s,"state":"sent","seq":2,"group":"`+gid+`"}`+"\n", sentJSON, sent2JSON)},
		{"group sent", func(p *Printer) {
			p.GroupSent("team", client.GroupSendResult{ID: "x4", Members: 3, Delivered: 1, Stored: 1, Failed: map[string]string{"erin": "user is offline", "dave": "unknown user"}})
		},
			"sent to team: delivered to 1 of 3 members, 1 in mailboxes\n  not sent to dave: unknown user\n  not sent to erin: user is offline\n",
			`{"event":"sent","group":"team","id":"x4","members":3,"delivered":1,"stored":1,"failed":{"dave":"unknown user","erin":"user is offline"}}` + "\n"},
		{"group sent to all", func(p *Printer) { p.GroupSent("team", client.GroupSendResult{ID: "x5", Members: 2, Delivered: 2}) },
			"sent to team: delivered to 2 of 2 members, 0 in mailboxes\n",
			`{"event":"sent","group":"team","id":"x5","members":2,"delivered":2,"stored":0}` + "\n"},
		{"groups", func(p *Printer) {
			p.Groups([]client.GroupInfo{{ID: gid, Name: "team", Members: []string{"alice", "bob"}, Admins: []string{"alice"}, Member: true}, {ID: gid2, Name: "gone"}})
		},
			gid + "\tteam\t2 members\n" + gid2 + "\tgone\t0 members\t(left)\n",
			`{"id":"` + gid + `","name":"team","members":["alice","bob"],"admins":["alice"],"member":true}` + "\n" +
				`{"id":"` + gid2 + `","name":"gone","members":[],"admins":[],"member":false}` + "\n"},
		{"group", func(p *Printer) {
			p.Group("group info", client.GroupInfo{ID: gid, Name: "team", Members: []string{"alice", "bob"}, Admins: []string{"alice"}, Member: true})
		},
			"team (" + gid + ")\n  alice (admin)\n  bob\n",
			`{"ts":"2026-03-04T05:06:07Z","event":"result","cmd":"group info","id":"` + gid + `","name":"team","members":["alice","bob"],"admins":["alice"],"member":true}` + "\n"},
		{"a group left", func(p *Printer) { p.Group("group leave", client.GroupInfo{ID: gid2, Name: "gone"}) },
			"gone (" + gid2 + ")\n  you are not a member\n",
			`{"ts":"2026-03-04T05:06:07Z","event":"result","cmd":"group leave","id":"` + gid2 + `","name":"gone","members":[],"admins":[],"member":false}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []struct {
				json bool
				want string
			}{{false, tt.text}, {true, tt.json}} {
				var b bytes.Buffer
				tt.print(&Printer{W: &b, JSON: mode.json, Now: func() time.Time { return ts }})
				if got := b.String(); got != mode.want {
					t.Errorf("JSON %v: got\n%q\nwant\n%q", mode.json, got, mode.want)
				}
			}
		})
	}
}

func TestReadLines(t *testing.T) {
	long := strings.Repeat("x", 100_000) // longer than a bufio.Scanner takes
	tests := []struct {
		name, in string
		want     []string
	}{
		{"lines", "one\ntwo\n", []string{"one", "two"}},
		{"no final newline", "one\ntwo", []string{"one", "two"}},
		{"blank lines and CRLF", "\none\r\n\r\n two \n", []string{"one", " two "}},
		{"long line", long + "\n", []string{long}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines, done := ReadLines(context.Background(), strings.NewReader(tt.in))
			var got []string
			for {
				select {
				case l := <-lines:
					got = append(got, l)
					continue
				case err := <-done:
					if err != nil {
						t.Fatalf("done: %v", err)
					}
				}
				break
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %d lines %.40q, want %d %.40q", len(got), got, len(tt.want), tt.want)
			}
		})
	}
}

// A read error ends the lines with that error; an ended context stops the
// goroutine waiting to hand over a line.
func TestReadLinesEnd(t *testing.T) {
	boom := errors.New("boom")
	_, done := ReadLines(context.Background(), io.MultiReader(strings.NewReader(""), errReader{boom}))
	if err := <-done; !errors.Is(err, boom) {
		t.Errorf("done = %v, want %v", err, boom)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, done = ReadLines(ctx, strings.NewReader("never taken\n"))
	cancel()
	select {
	case err := <-done:
		t.Errorf("done = %v after the context ended with a line not taken, want nothing", err)
	case <-time.After(50 * time.Millisecond):
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestUserMessage(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("login: %w", loginapi.ErrWrongPassword), "wrong user name or password"},
		{fmt.Errorf("client: register: %w", loginapi.ErrUserExists), "that user name is taken"},
		{fmt.Errorf("client: call bob: %w", client.ErrDeclined), "call bob: " + client.ErrDeclined.Error()},
		{fmt.Errorf("client: %w", client.ErrNoSupernode), "no supernode reachable: is the network up? (parley up starts one)"},
		{fmt.Errorf("client: online: %w at http://l:8080", client.ErrNoSupernodeListed),
			"no supernode is listed by the login server at http://l:8080: start one (parley supernode) or run parley up"},
		{fmt.Errorf("--play x.wav: codec: read wav: %w", codec.ErrCorrupt), "--play x.wav: read wav: corrupt WAV file"},
		{errors.New("supernode: something else"), "something else"},
	}
	for _, tt := range tests {
		if got := UserMessage(tt.err); got != tt.want {
			t.Errorf("UserMessage(%q) = %q, want %q", tt.err, got, tt.want)
		}
	}
}
