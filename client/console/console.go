// Package console writes what a client does as lines for a terminal or a
// script, as the parley CLI prints them: events ([Printer.Event]), the
// results of sending a message, a conversation's history, contacts,
// lookups and user names — readable text, or one JSON object per line
// (docs/cli.md) — and reads the lines a user types ([ReadLines]).
package console

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/wire/loginapi"
)

// Printer writes lines to W: one JSON object per line when JSON is set,
// else readable text. Its methods are safe for concurrent use (a line is
// never cut by another); the zero value with W set is ready to use.
type Printer struct {
	W    io.Writer
	JSON bool
	// Now stamps results and errors ("ts"); nil means time.Now.
	Now func() time.Time

	mu        sync.Mutex
	confShown map[string]string // a conference's roster as last shown (conf.go)
}

// Event writes one client event: with JSON, the event as it is (docs/cli.md,
// "Events"); else a line starting with the local time of day, or nothing for
// events that have no text.
func (p *Printer) Event(ev client.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.JSON {
		p.writeJSON(ev)
		return
	}
	ts := ev.TS.Format("15:04:05")
	switch ev.Event {
	case "online":
		fmt.Fprintf(p.W, "%s online as %s via %s\n", ts, ev.Info.User, ev.Info.Supernode)
	case "call":
		cs := ev.CallState
		switch cs.State {
		case client.StateRinging:
			if cs.Direction == "incoming" {
				fmt.Fprintf(p.W, "%s incoming call from %s\n", ts, ev.Peer)
			} else {
				fmt.Fprintf(p.W, "%s ringing %s\n", ts, ev.Peer)
			}
		case client.StateConnected:
			fmt.Fprintf(p.W, "%s connected with %s (path %s)\n", ts, ev.Peer, ev.Path)
		case client.StateEnded:
			fmt.Fprintf(p.W, "%s call with %s ended: %s\n", ts, ev.Peer, cs.Reason)
		}
	case "stats":
		s := ev.Stats
		path := s.Path
		if s.DirectVia != "" {
			path += " (" + s.DirectVia + ")" // what made it direct
		}
		fmt.Fprintf(p.W, "%s %s: path %s, sent %d, received %d, loss %.1f%%, jitter %.1f ms, rtt %.1f ms\n",
			ts, ev.Peer, path, s.PacketsSent, s.PacketsReceived, s.Loss*100, s.JitterMS, s.RTTMS)
	case "credential":
		fmt.Fprintf(p.W, "%s %s\n", ts, ev.Info.Message)
	case client.EventPromoted:
		fmt.Fprintf(p.W, "%s promoted to supernode at %s\n", ts, ev.Info.Supernode)
	case client.EventSteppedDown:
		fmt.Fprintf(p.W, "%s stepped down as supernode: %s\n", ts, ev.Info.Message)
	case "message":
		m := ev.MessageEvent
		if m.Group != "" {
			fmt.Fprintf(p.W, "%s [%s] <%s> %s\n", m.Sent.Local().Format("15:04:05"), m.GroupName, m.From, m.Text)
			break
		}
		if m.From == m.To || m.To == ev.Peer {
			fmt.Fprintf(p.W, "%s [to %s, from another device] %s\n", m.Sent.Local().Format("15:04:05"), ev.Peer, m.Text)
		} else {
			fmt.Fprintf(p.W, "%s <%s> %s\n", m.Sent.Local().Format("15:04:05"), m.From, m.Text)
		}
	case "group":
		fmt.Fprintf(p.W, "%s [%s] %s\n", ts, ev.MessageEvent.GroupName, groupEventLine(ev))
	case "history":
		fmt.Fprintf(p.W, "%s %d messages from your other devices\n", ts, ev.HistoryEvent.Count)
	case "seen":
		fmt.Fprintf(p.W, "%s %d messages of %s read on another device\n", ts, len(ev.MessageEvent.IDs), ev.Peer)
	case "delivered":
		fmt.Fprintf(p.W, "%s delivered to %s (%d)\n", ts, ev.Peer, len(ev.MessageEvent.IDs))
	case "read":
		fmt.Fprintf(p.W, "%s read by %s (%d)\n", ts, ev.Peer, len(ev.MessageEvent.IDs))
	case "typing":
		if a := ev.MessageEvent.Active; a != nil && *a {
			fmt.Fprintf(p.W, "%s %s is typing…\n", ts, ev.Peer)
		} else {
			fmt.Fprintf(p.W, "%s %s stopped typing\n", ts, ev.Peer)
		}
	case "message-refused":
		fmt.Fprintf(p.W, "%s refused a message claiming to be from %s: %s\n", ts, ev.Peer, ev.MessageEvent.Why)
	case client.EventFileOffer, client.EventFileProgress, client.EventFile, client.EventFileSent, client.EventFileDelivered, client.EventFileFailed:
		p.fileEvent(ts, ev)
	case "conference":
		p.confEvent(ts, ev)
	case "presence":
		fmt.Fprintf(p.W, "%s %s is %s\n", ts, ev.Peer, ev.PresenceEvent.Status)
	case "status":
		fmt.Fprintf(p.W, "%s your status is now %s (set on another device)\n", ts, ev.PresenceEvent.Status)
	case "contact":
		switch ev.PresenceEvent.Status {
		case loginapi.ContactPending:
			fmt.Fprintf(p.W, "%s %s wants to be your contact (parley contacts accept %s)\n", ts, ev.Peer, ev.Peer)
		case loginapi.ContactRequested:
			fmt.Fprintf(p.W, "%s contact request sent to %s\n", ts, ev.Peer)
		case loginapi.ContactAccepted:
			fmt.Fprintf(p.W, "%s %s is now a contact\n", ts, ev.Peer)
		default:
			fmt.Fprintf(p.W, "%s %s is not a contact any more\n", ts, ev.Peer)
		}
	}
}

// writeJSON writes v as one JSON line; p.mu is held.
func (p *Printer) writeJSON(v any) {
	if b, err := json.Marshal(v); err == nil {
		p.W.Write(append(b, '\n'))
	}
}
