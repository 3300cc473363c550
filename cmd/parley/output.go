package main

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/wire/loginapi"
)

const levelWarn = slog.LevelWarn

// printer writes events: one JSON object per line with --json, else readable lines.
type printer struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
}

func (p *printer) event(ev client.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		b, err := json.Marshal(ev)
		if err == nil {
			p.w.Write(append(b, '\n'))
		}
		return
	}
	ts := ev.TS.Format("15:04:05")
	switch ev.Event {
	case "online":
		fmt.Fprintf(p.w, "%s online as %s via %s\n", ts, ev.Info.User, ev.Info.Supernode)
	case "call":
		cs := ev.CallState
		switch cs.State {
		case client.StateRinging:
			if cs.Direction == "incoming" {
				fmt.Fprintf(p.w, "%s incoming call from %s\n", ts, ev.Peer)
			} else {
				fmt.Fprintf(p.w, "%s ringing %s\n", ts, ev.Peer)
			}
		case client.StateConnected:
			fmt.Fprintf(p.w, "%s connected with %s (path %s)\n", ts, ev.Peer, ev.Path)
		case client.StateEnded:
			fmt.Fprintf(p.w, "%s call with %s ended: %s\n", ts, ev.Peer, cs.Reason)
		}
	case "stats":
		s := ev.Stats
		fmt.Fprintf(p.w, "%s %s: path %s, sent %d, received %d, loss %.1f%%, jitter %.1f ms, rtt %.1f ms\n",
			ts, ev.Peer, s.Path, s.PacketsSent, s.PacketsReceived, s.Loss*100, s.JitterMS, s.RTTMS)
	case "credential":
		fmt.Fprintf(p.w, "%s %s\n", ts, ev.Info.Message)
	case client.EventPromoted:
		fmt.Fprintf(p.w, "%s promoted to supernode at %s\n", ts, ev.Info.Supernode)
	case client.EventSteppedDown:
		fmt.Fprintf(p.w, "%s stepped down as supernode: %s\n", ts, ev.Info.Message)
	case "message":
		m := ev.MessageEvent
		if m.From == m.To || m.To == ev.Peer {
			fmt.Fprintf(p.w, "%s [to %s, from another device] %s\n", m.Sent.Local().Format("15:04:05"), ev.Peer, m.Text)
		} else {
			fmt.Fprintf(p.w, "%s <%s> %s\n", m.Sent.Local().Format("15:04:05"), m.From, m.Text)
		}
	case "delivered":
		fmt.Fprintf(p.w, "%s delivered to %s (%d)\n", ts, ev.Peer, len(ev.MessageEvent.IDs))
	case "message-refused":
		fmt.Fprintf(p.w, "%s refused a message claiming to be from %s: %s\n", ts, ev.Peer, ev.MessageEvent.Why)
	case "presence":
		fmt.Fprintf(p.w, "%s %s is %s\n", ts, ev.Peer, ev.PresenceEvent.Status)
	case "status":
		fmt.Fprintf(p.w, "%s your status is now %s (set on another device)\n", ts, ev.PresenceEvent.Status)
	case "contact":
		switch ev.PresenceEvent.Status {
		case loginapi.ContactPending:
			fmt.Fprintf(p.w, "%s %s wants to be your contact (parley contacts accept %s)\n", ts, ev.Peer, ev.Peer)
		case loginapi.ContactRequested:
			fmt.Fprintf(p.w, "%s contact request sent to %s\n", ts, ev.Peer)
		case loginapi.ContactAccepted:
			fmt.Fprintf(p.w, "%s %s is now a contact\n", ts, ev.Peer)
		default:
			fmt.Fprintf(p.w, "%s %s is not a contact any more\n", ts, ev.Peer)
		}
	}
}

// note prints a line that is not a library event (for example "registered").
func (p *printer) note(event, msg string) {
	p.event(client.Event{TS: time.Now(), Event: event, Info: &client.Info{Message: msg}})
}
