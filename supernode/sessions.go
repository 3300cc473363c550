package supernode

import (
	"context"
	"fmt"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/presence"
	"github.com/parley/parley/wire/snapi"
)

func (s *Server) checkCredential(token string) (identity.Credential, error) {
	cred, err := identity.Verify(s.cfg.LoginKey, token, s.now())
	if err != nil {
		return cred, fmt.Errorf("supernode: attach: %w: %w", snapi.ErrAuth, err)
	}
	return cred, nil
}

func (s *Server) iceServers(user string) []snapi.ICEServer {
	if s.cfg.ICEServers == nil {
		return nil
	}
	return s.cfg.ICEServers(user)
}

// attach adds c to its user's sessions, unless the user has
// MaxSessionsPerUser of them already (sessions being replaced do not
// count): an error wrapping snapi.ErrLimit.
func (s *Server) attach(c *conn) error {
	if c.admitted != nil {
		c.admitted() // the handshake is over: the slot is free for the next one
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.users[c.user]
	if limit := s.cfg.MaxSessionsPerUser; limit > 0 {
		n := 0
		for _, o := range m {
			if !o.replaced.Load() {
				n++
			}
		}
		if n >= limit {
			return fmt.Errorf("supernode: attach %q: %d sessions: %w", c.user, n, snapi.ErrLimit)
		}
	}
	if m == nil {
		m = map[string]*conn{}
		s.users[c.user] = m
	}
	m[c.session] = c
	// The caller publishes the record at once (publishNow); a failure there
	// leaves it dirty for the publish loop.
	return nil
}

// replace closes session id of c's user, when it is attached here with c's
// key: its client has lost it (a network change leaves a connection
// half-open until its pings time out) and is back on c. Its watchers are not
// told it went offline: c carries on for the same device.
func (s *Server) replace(c *conn, id string) {
	s.mu.Lock()
	old := s.users[c.user][id]
	s.mu.Unlock()
	if old == nil || !old.key.Equal(c.key) {
		return
	}
	old.replaced.Store(true)
	old.cancel()
	s.log.Info("replaced a lost session", "user", c.user, "session", id)
}

// replaceDevice closes the other sessions of c's user that are attached
// here with c's key under c's device name (set by their presence frames):
// the same running device, back on c after a failover that did not name its
// lost session (it moved on and back, or lost its session id). A session of
// the same key under another device name (a one-shot command from the same
// home) or without presence is left alone.
func (s *Server) replaceDevice(c *conn, device string) {
	s.mu.Lock()
	var old []*conn
	for _, o := range s.users[c.user] {
		if o == c || !o.key.Equal(c.key) || o.replaced.Load() {
			continue
		}
		if _, d, _ := o.presence(); d == device {
			old = append(old, o)
		}
	}
	s.mu.Unlock()
	for _, o := range old {
		o.replaced.Store(true)
		o.cancel()
		s.log.Info("replaced a lost session", "user", c.user, "session", o.session, "device", device)
	}
}

func (s *Server) detach(c *conn) {
	s.mu.Lock()
	if m := s.users[c.user]; m != nil {
		delete(m, c.session)
		if len(m) == 0 {
			delete(s.users, c.user)
		}
	}
	s.mu.Unlock()
	s.mesh.markDirty(c.user)
	s.log.Info("detached", "user", c.user, "session", c.session)
	if status, device, watch := c.presence(); status != "" && len(watch) > 0 && !c.replaced.Load() {
		s.goOwned(func(ctx context.Context) {
			s.pushPresence(ctx, c.user, c.session, PresenceNote{Device: device, Status: presence.Offline}, watch)
		})
	}
}

// localUsers returns the users attached here.
func (s *Server) localUsers() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.users))
	for u := range s.users {
		out = append(out, u)
	}
	return out
}

// sessionsOf returns the sessions user has attached here (at most
// MaxRecordSessions).
func (s *Server) sessionsOf(user string) []string {
	sessions, _ := s.sessionsAndHidden(user)
	return sessions
}

// sessionsAndHidden returns the sessions user has attached here (at most
// MaxRecordSessions) and those of them whose status is invisible.
func (s *Server) sessionsAndHidden(user string) (sessions, hidden []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, c := range s.users[user] {
		if len(sessions) == MaxRecordSessions {
			break
		}
		sessions = append(sessions, id)
		if status, _, _ := c.presence(); status == presence.Invisible {
			hidden = append(hidden, id)
		}
	}
	return sessions, hidden
}
