package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/im"
	"github.com/parley/parley/wire/snapi"
)

// Sent writes the result of sending peer a message: "delivered to PEER",
// "PEER is offline: stored in their mailbox, …" or "sent to PEER"; with
// JSON {"event":"sent","peer","id","delivered","stored"}.
func (p *Printer) Sent(peer string, res client.SendResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.JSON {
		p.writeJSON(struct {
			Event     string `json:"event"`
			Peer      string `json:"peer"`
			ID        string `json:"id"`
			Delivered bool   `json:"delivered"`
			Stored    bool   `json:"stored"`
		}{"sent", peer, res.ID, res.Delivered, res.Stored})
		return
	}
	switch {
	case res.Delivered:
		fmt.Fprintf(p.W, "delivered to %s\n", peer)
	case res.Stored:
		fmt.Fprintf(p.W, "%s is offline: stored in their mailbox, delivered at their next login\n", peer)
	default:
		fmt.Fprintf(p.W, "sent to %s\n", peer)
	}
}

// History writes the messages of me's conversation with peer, one per line
// ([HistoryLine]); with JSON {"id","from","to","text","sent","state","seq"} ("group" and no "to" for a group's).
func (p *Printer) History(me, peer string, ms []im.Message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range ms {
		if !p.JSON {
			fmt.Fprintln(p.W, HistoryLine(me, m))
			continue
		}
		from, to := peer, me
		if m.Dir == im.DirOut {
			from, to = me, peer
		}
		if m.From != "" { // a group's
			from, to = m.From, ""
		}
		p.writeJSON(struct {
			ID    string    `json:"id"`
			From  string    `json:"from"`
			To    string    `json:"to,omitempty"` // "" for a group's
			Text  string    `json:"text"`
			Sent  time.Time `json:"sent"`
			State string    `json:"state"`
			Seq   int64     `json:"seq"`
			Group string    `json:"group,omitempty"`
		}{m.ID, from, to, m.Text, m.Time(), m.State, m.Seq, groupOf(m)})
	}
}

// HistoryLine is one message of me's history as text: `DATE TIME <from>
// text`, and for me's own messages two spaces and [state].
func HistoryLine(me string, m im.Message) string {
	ts := m.Time().Local().Format("2006-01-02 15:04:05")
	if m.From != "" && m.Dir == im.DirIn {
		return fmt.Sprintf("%s <%s> %s", ts, m.From, m.Text)
	}
	if m.Dir == im.DirOut {
		return fmt.Sprintf("%s <%s> %s  [%s]", ts, me, m.Text, m.State)
	}
	return fmt.Sprintf("%s <%s> %s", ts, m.Peer, m.Text)
}

// Contacts writes one line per contact: USER<TAB>STATE[<TAB>PRESENCE];
// with JSON {"user","state","presence"} (presence "" for requests).
func (p *Printer) Contacts(cs []client.ContactPresence) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ct := range cs {
		switch {
		case p.JSON:
			p.writeJSON(struct {
				User     string `json:"user"`
				State    string `json:"state"`
				Presence string `json:"presence"`
			}{ct.User, ct.State, ct.Presence})
		case ct.Presence != "":
			fmt.Fprintf(p.W, "%s\t%s\t%s\n", ct.User, ct.State, ct.Presence)
		default:
			fmt.Fprintf(p.W, "%s\t%s\n", ct.User, ct.State)
		}
	}
}

// Lookups writes where each user is online: "USER: offline (N hops)" or
// "USER: online, N device(s) at NODES (N hops)"; with JSON the
// snapi.Found objects.
func (p *Printer) Lookups(found []snapi.Found) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range found {
		if p.JSON {
			p.writeJSON(f)
			continue
		}
		hops := fmt.Sprintf("%d hop", f.Hops)
		if f.Hops != 1 {
			hops += "s"
		}
		if f.Devices == 0 {
			fmt.Fprintf(p.W, "%s: offline (%s)\n", f.User, hops)
			continue
		}
		fmt.Fprintf(p.W, "%s: online, %d device(s) at %s (%s)\n", f.User, f.Devices, strings.Join(f.Nodes, ", "), hops)
	}
}

// Users writes user names, one per line; with JSON {"user"}.
func (p *Printer) Users(users []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range users {
		if p.JSON {
			p.writeJSON(struct {
				User string `json:"user"`
			}{u})
			continue
		}
		fmt.Fprintln(p.W, u)
	}
}

// Result writes the outcome of a one-shot command: text as a line (nothing
// when it is ""); with JSON one document {"ts","event":"result","cmd":cmd, …}
// whose other members are kv's pairs, in order (name, value, name, value…),
// those with a nil value left out.
func (p *Printer) Result(cmd, text string, kv ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.JSON {
		if text != "" {
			fmt.Fprintln(p.W, text)
		}
		return
	}
	var b bytes.Buffer
	ts, _ := json.Marshal(p.now())
	name, _ := json.Marshal(cmd)
	fmt.Fprintf(&b, `{"ts":%s,"event":"result","cmd":%s`, ts, name)
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := json.Marshal(fmt.Sprint(kv[i]))
		v, err := json.Marshal(kv[i+1])
		if err != nil || kv[i+1] == nil {
			continue
		}
		b.WriteByte(',')
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteString("}\n")
	p.W.Write(b.Bytes())
}

// Error writes a failure as JSON, {"ts","event":"error","error":line,"code":code}:
// line is the one line printed on stderr, code the exit code it leads to.
// Without JSON it writes nothing (the line is on stderr already).
func (p *Printer) Error(line string, code int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.JSON {
		p.writeJSON(struct {
			TS    time.Time `json:"ts"`
			Event string    `json:"event"`
			Error string    `json:"error"`
			Code  int       `json:"code"`
		}{p.now(), "error", line, code})
	}
}

func (p *Printer) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// groupOf returns the group id of a group message, else "".
func groupOf(m im.Message) string {
	id, _ := im.GroupIDOf(m.Peer)
	return id
}
