package console

import (
	"fmt"
	"strings"

	"github.com/parley/parley/client"
)

// confEvent writes a conference event as text: invitations, joining,
// leaving, and the roster when who is in (or muted, or a path) changes —
// not every time someone starts or stops speaking, which --json shows.
// p.mu is held.
func (p *Printer) confEvent(ts string, ev client.Event) {
	c := ev.ConfEvent
	short := ev.Conf[:min(8, len(ev.Conf))]
	switch c.ConfState {
	case "invited":
		var who []string
		for _, m := range c.Roster {
			who = append(who, m.User)
		}
		group := ""
		if c.ConfGroup != "" {
			group = " (group " + c.ConfGroup + ")"
		}
		fmt.Fprintf(p.W, "%s conference %s%s: %s invites you, with %s\n", ts, short, group, c.ConfFrom, strings.Join(who, ", "))
	case "joined":
		fmt.Fprintf(p.W, "%s joined conference %s\n", ts, short)
	case "declined":
		fmt.Fprintf(p.W, "%s conference %s: %s declined\n", ts, short, c.ConfFrom)
	case "left":
		fmt.Fprintf(p.W, "%s left conference %s: %s\n", ts, short, c.ConfReason)
	case "roster":
		var who []string
		for _, m := range c.Roster {
			w := m.User
			switch {
			case m.Self:
				w += " (you)"
			case m.Path != "":
				w += " (" + m.Path + ")"
			}
			if m.Muted {
				w += " muted"
			}
			who = append(who, w)
		}
		line := strings.Join(who, ", ")
		if p.confShown == nil {
			p.confShown = map[string]string{}
		}
		if p.confShown[ev.Conf] != line {
			p.confShown[ev.Conf] = line
			fmt.Fprintf(p.W, "%s conference %s: %s\n", ts, short, line)
		}
	}
}
