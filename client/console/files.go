package console

import (
	"context"
	"fmt"
	"strings"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/im"
)

// FileLine is a file event as text (without the time of day), or "" for
// events that are not about a file.
func FileLine(ev client.Event) string {
	f := ev.FileEvent
	if f == nil {
		return ""
	}
	size := im.HumanSize(f.Size)
	switch ev.Event {
	case client.EventFileOffer:
		return fmt.Sprintf("%s offers %s (%s)", ev.Peer, f.Name, size)
	case client.EventFileProgress:
		verb := "receiving"
		if f.Direction == client.FileOut {
			verb = "sending"
		}
		pct := 100.0
		if f.Size > 0 {
			pct = 100 * float64(f.Bytes) / float64(f.Size)
		}
		return fmt.Sprintf("%s %s: %.0f%% (%s of %s)", verb, f.Name, pct, im.HumanSize(f.Bytes), size)
	case client.EventFile:
		return fmt.Sprintf("received %s (%s) from %s, hash checked: %s", f.Name, size, ev.Peer, f.Path)
	case client.EventFileSent:
		return fmt.Sprintf("sent %s (%s) to %s: stored for their devices until they fetch it", f.Name, size, ev.Peer)
	case client.EventFileDelivered:
		return fmt.Sprintf("%s has %s (%s), hash checked", ev.Peer, f.Name, size)
	case client.EventFileFailed:
		if f.Resumable {
			return fmt.Sprintf("%s stopped at %s of %s: %s (it goes on from there later)", f.Name, im.HumanSize(f.Bytes), size, f.Error)
		}
		return fmt.Sprintf("%s failed: %s", f.Name, f.Error)
	}
	return ""
}

// fileEvent writes a file event as text; p.mu is held.
func (p *Printer) fileEvent(ts string, ev client.Event) {
	if line := FileLine(ev); line != "" {
		fmt.Fprintf(p.W, "%s %s\n", ts, line)
	}
}

// FileEvents returns what `parley send` does with its session's events:
// the file events to out, but, when out is not JSON, "file-progress" as
// lines on progress (stderr); the rest of the session's events, nowhere.
func FileEvents(out, progress *Printer) func(client.Event) {
	return func(ev client.Event) {
		switch {
		case ev.FileEvent == nil || !strings.HasPrefix(ev.Event, "file"):
		case ev.Event == client.EventFileProgress && !out.JSON:
			progress.Event(ev)
		default:
			out.Event(ev)
		}
	}
}

// SendFile is `parley send`: a short session (not shown to the contacts,
// sc.NoPresence) that sends the file at path to user to (with group, to
// group to), its file events to out and, as text, its progress to
// progress (stderr).
func SendFile(ctx context.Context, c *client.Client, sc client.SessionConfig, out, progress *Printer, to, path string, group bool) error {
	sc.NoPresence, sc.OnEvent = true, FileEvents(out, progress)
	s, err := c.Online(ctx, sc)
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.SendFile(ctx, to, path, client.SendFileConfig{Group: group})
	return err
}
