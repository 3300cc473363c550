package console

import (
	"fmt"
	"sort"
	"strings"

	"github.com/parley/parley/client"
)

// GroupSent writes the result of sending a group a message: "sent to
// GROUP: delivered to D of N members, S in mailboxes", and a line per
// member it could not reach; with JSON {"event":"sent","group","id",
// "members","delivered","stored","failed"}.
func (p *Printer) GroupSent(group string, res client.GroupSendResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.JSON {
		p.writeJSON(struct {
			Event string `json:"event"`
			Group string `json:"group"`
			client.GroupSendResult
		}{"sent", group, res})
		return
	}
	fmt.Fprintf(p.W, "sent to %s: delivered to %d of %d members, %d in mailboxes\n", group, res.Delivered, res.Members, res.Stored)
	users := make([]string, 0, len(res.Failed))
	for u := range res.Failed {
		users = append(users, u)
	}
	sort.Strings(users)
	for _, u := range users {
		fmt.Fprintf(p.W, "  not sent to %s: %s\n", u, res.Failed[u])
	}
}

// Groups writes one line per group: ID<TAB>NAME<TAB>MEMBERS (and "(left)"
// for a group this user is no longer in); with JSON one object per group
// {"id","name","members","admins","member"}.
func (p *Printer) Groups(gs []client.GroupInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, g := range gs {
		if p.JSON {
			p.writeJSON(listed(g))
			continue
		}
		left := ""
		if !g.Member {
			left = "\t(left)"
		}
		fmt.Fprintf(p.W, "%s\t%s\t%d members%s\n", g.ID, g.Name, len(g.Members), left)
	}
}

// Group writes a group: its name and id, then one line per member, admins
// marked; with JSON {"event":"result","cmd":cmd,"id","name","members","admins","member"}.
func (p *Printer) Group(cmd string, g client.GroupInfo) {
	if p.JSON {
		g = listed(g)
		p.Result(cmd, "", "id", g.ID, "name", g.Name, "members", g.Members, "admins", g.Admins, "member", g.Member)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.W, "%s (%s)\n", g.Name, g.ID)
	if !g.Member {
		fmt.Fprintln(p.W, "  you are not a member")
	}
	for _, m := range g.Members {
		admin := ""
		if strings.Contains(","+strings.Join(g.Admins, ",")+",", ","+m+",") {
			admin = " (admin)"
		}
		fmt.Fprintf(p.W, "  %s%s\n", m, admin)
	}
}

// listed returns g with empty lists for nil members and admins (JSON [],
// not null: a group everyone left).
func listed(g client.GroupInfo) client.GroupInfo {
	if g.Members == nil {
		g.Members = []string{}
	}
	if g.Admins == nil {
		g.Admins = []string{}
	}
	return g
}

// groupEventLine is the text of a "group" event.
func groupEventLine(ev client.Event) string {
	m := ev.MessageEvent
	switch m.Op {
	case "create":
		return fmt.Sprintf("%s created the group with %s", m.By, strings.Join(m.Members, ", "))
	case "add":
		return fmt.Sprintf("%s added %s", m.By, m.Target)
	case "remove":
		return fmt.Sprintf("%s removed %s", m.By, m.Target)
	case "leave":
		return fmt.Sprintf("%s left", m.By)
	case "rename":
		return fmt.Sprintf("%s renamed the group to %q", m.By, m.GroupName)
	case "admin":
		return fmt.Sprintf("%s made %s an admin", m.By, m.Target)
	}
	return m.By + " changed the group"
}
