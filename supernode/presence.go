package supernode

import (
	"context"
	"sync"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/presence"
	"github.com/parley/parley/wire/snapi"
)

// setPresence applies a client's TypePresence frame and pushes it.
func (s *Server) setPresence(ctx context.Context, c *conn, f snapi.Frame) {
	if !presence.CanSet(f.Status) {
		s.sendError(c, f.ID, snapi.CodeBadRequest, "status must be online, away, busy or invisible")
		return
	}
	watch := make([]string, 0, len(f.Watch))
	seen := make(map[string]bool, len(f.Watch))
	for _, u := range f.Watch {
		if identity.CheckUser(u) != nil {
			s.sendError(c, f.ID, snapi.CodeBadRequest, "watch: bad user name "+truncate(u, 64))
			return
		}
		if !seen[u] && u != c.user {
			seen[u] = true
			watch = append(watch, u)
		}
	}
	c.pmu.Lock()
	var dropped []string
	for _, u := range c.watch {
		if !seen[u] {
			dropped = append(dropped, u)
		}
	}
	hiding := (c.status == presence.Invisible) != (f.Status == presence.Invisible)
	c.status, c.device, c.watch = f.Status, f.Device, watch
	c.pmu.Unlock()
	if f.Device != "" {
		s.replaceDevice(c, f.Device)
	}
	if hiding {
		// Lookups by others must stop (or start) counting this device
		// before the contacts are told.
		s.mesh.publishNow(ctx, c.user)
	}
	if len(dropped) > 0 {
		s.pushPresence(ctx, c.user, c.session, PresenceNote{Device: f.Device, Status: presence.Offline}, dropped)
	}
	s.pushPresence(ctx, c.user, c.session, PresenceNote{Device: f.Device, Status: presence.Shown(f.Status)}, watch)
}

// answerPresence pushes c's presence back to user from, when c watches them.
func (s *Server) answerPresence(c *conn, from string) {
	status, device, watch := c.presence()
	if status == "" || status == presence.Invisible {
		return
	}
	for _, u := range watch {
		if u == from {
			s.goOwned(func(ctx context.Context) {
				s.pushPresence(ctx, c.user, c.session, PresenceNote{Device: device, Status: status, Reply: true}, []string{from})
			})
			return
		}
	}
}

// pushFanout bounds the watchers one presence change is pushed to at once.
const pushFanout = 8

// pushPresence tells every user in to that device note.Device of user is
// now note.Status, wherever they are attached. Offline watchers are skipped.
func (s *Server) pushPresence(ctx context.Context, user, session string, note PresenceNote, to []string) {
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(pushFanout, len(to)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				n := note
				d := MeshDelivery{To: u, From: user, FromSession: session, Presence: &n}
				s.deliverLocal(d, nil)
				s.forward(ctx, d)
			}
		}()
	}
	for _, u := range to {
		select {
		case work <- u:
		case <-ctx.Done():
		}
	}
	close(work)
	wg.Wait()
}
