package console

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/client"
)

func TestResultAndError(t *testing.T) {
	tests := []struct {
		name  string
		print func(p *Printer)
		text  string
		json  string
	}{
		{"result", func(p *Printer) {
			p.Result("contacts add", "contact request sent to bob", "peer", "bob", "state", "requested")
		},
			"contact request sent to bob\n", `{"ts":"2026-03-04T05:06:07Z","event":"result","cmd":"contacts add","peer":"bob","state":"requested"}` + "\n"},
		{"nil members left out", func(p *Printer) { p.Result("status", "status set to away", "status", "away", "note", nil) },
			"status set to away\n", `{"ts":"2026-03-04T05:06:07Z","event":"result","cmd":"status","status":"away"}` + "\n"},
		{"no text", func(p *Printer) { p.Result("x", "", "n", 2) }, "", `{"ts":"2026-03-04T05:06:07Z","event":"result","cmd":"x","n":2}` + "\n"},
		{"error", func(p *Printer) { p.Error(`parley: call zed: unknown "user"`, 1) },
			"", `{"ts":"2026-03-04T05:06:07Z","event":"error","error":"parley: call zed: unknown \"user\"","code":1}` + "\n"},
	}
	for _, tt := range tests {
		for _, mode := range []struct {
			json bool
			want string
		}{{false, tt.text}, {true, tt.json}} {
			var b bytes.Buffer
			tt.print(&Printer{W: &b, JSON: mode.json, Now: func() time.Time { return ts }})
			if b.String() != mode.want {
				t.Errorf("%s, JSON %v: %q, want %q", tt.name, mode.json, b.String(), mode.want)
			}
		}
	}
}

func callEv(state string) client.Event {
	return client.Event{TS: ts, Event: "call", Peer: "bob", CallState: &client.CallState{State: state, Direction: "outgoing", Reason: "unknown user"}}
}

func TestHeld(t *testing.T) {
	online := client.Event{TS: ts, Event: "online", Info: &client.Info{User: "alice", Supernode: "ws://sn/v1/ws"}}
	start := func(ev client.Event) bool { return ev.CallState != nil && ev.CallState.State == client.StateRinging }

	var b bytes.Buffer
	h := &Held{P: &Printer{W: &b}, Start: start}
	h.Event(online)
	h.Event(callEv(client.StateEnded))
	if b.Len() != 0 {
		t.Errorf("a call that never rang printed %q", b.String())
	}

	b.Reset()
	h = &Held{P: &Printer{W: &b}, Start: start}
	h.Event(online)
	h.Event(callEv(client.StateRinging))
	h.Event(callEv(client.StateEnded))
	want := "05:06:07 online as alice via ws://sn/v1/ws\n05:06:07 ringing bob\n05:06:07 call with bob ended: unknown user\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func delivered(ids ...string) client.Event {
	return client.Event{TS: ts, Event: "delivered", Peer: "bob", MessageEvent: &client.MessageEvent{To: "bob", IDs: ids}}
}

// Each delivery is told once, whether its receipt comes before the send
// result, after it, or for a message stored in the mailbox (receipt later).
func TestConversation(t *testing.T) {
	var b bytes.Buffer
	c := &Conversation{P: &Printer{W: &b, JSON: true}}

	c.Sending() // the receipt arrives while the send is under way
	c.Event(delivered("m1"))
	c.Sent("bob", client.SendResult{ID: "m1", Delivered: true}, nil)

	c.Sending() // the receipt arrives after the result
	c.Sent("bob", client.SendResult{ID: "m2", Delivered: true}, nil)
	c.Event(delivered("m2"))

	c.Sending() // stored: the receipt, much later, is the delivery
	c.Sent("bob", client.SendResult{ID: "m3", Stored: true}, nil)
	c.Event(delivered("m3", "m0"))

	c.Sending() // a failed send prints nothing; a receipt for an older message still shows
	c.Event(delivered("m9"))
	c.Sent("bob", client.SendResult{}, errors.New("boom"))

	c.Event(client.Event{TS: ts, Event: "presence", Peer: "bob", PresenceEvent: &client.PresenceEvent{Status: "away"}})

	told := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		switch {
		case strings.Contains(line, `"event":"sent"`) && strings.Contains(line, `"delivered":true`):
			var id string
			fmt.Sscanf(line[strings.Index(line, `"id":"`)+6:], "%2s", &id)
			told[id]++
		case strings.Contains(line, `"event":"delivered"`):
			for _, id := range []string{"m0", "m1", "m2", "m3", "m9"} {
				if strings.Contains(line, `"`+id+`"`) {
					told[id]++
				}
			}
		}
	}
	want := map[string]int{"m0": 1, "m1": 1, "m2": 1, "m3": 1, "m9": 1}
	if fmt.Sprint(told) != fmt.Sprint(want) {
		t.Errorf("deliveries told %v, want %v; output:\n%s", told, want, b.String())
	}
	if !strings.HasSuffix(b.String(), `"status":"away"}`+"\n") {
		t.Errorf("other events are printed as they come:\n%s", b.String())
	}
}
