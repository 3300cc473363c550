package client

// Presence on a Session. The session tells its supernode its status and its
// accepted contacts (a presence frame, at every attach, on every change and
// every snapi.PresenceRefresh); the supernodes push the status to those
// contacts wherever they are attached, push "offline" when the connection
// ends, and answer a contact's push with this user's own status, so two
// contacts learn each other's state when either comes online. Nothing polls.
//
// A user may be online on several devices: their presence is the most
// available status over their devices (online, then busy, then away), offline
// when none is left. A device not heard of for 3×PresenceRefresh (its
// supernode died with it) is forgotten.
//
// The user's status is kept by the login server, so every device starts with
// it; a change (Session.SetStatus) is also signalled to the user's running
// devices (signal kind "status", signed), which apply it at once.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parley/parley/wire/loginapi"
	"github.com/parley/parley/wire/presence"
	"github.com/parley/parley/wire/signal"
	"github.com/parley/parley/wire/snapi"
)

// PresenceEvent is the payload of "presence" events: contact Peer is now
// Status (online, away, busy or offline). "status" events carry this user's
// own status when another of their devices changed it; "contact" events the
// new state of the contact relation with Peer (loginapi.ContactPending: they
// asked, ContactRequested, ContactAccepted or ContactNone).
type PresenceEvent struct {
	Status string `json:"status"`
}

type devicePresence struct {
	status  string
	at      time.Time
	session string // the supernode session that reported it
}

// presenceState is a session's presence: its own status and watch list, and
// what it knows of its contacts'.
type presenceState struct {
	status string
	watch  []string
	seen   map[string]map[string]devicePresence // user → device NUL session → state
	shown  map[string]string                    // user → last status reported
	// contacts is the contact list as last read (user → loginapi.Contact*
	// state); nil before the first reading.
	contacts map[string]string
}

// rank orders statuses by availability.
func rank(status string) int {
	switch status {
	case presence.Online:
		return 4
	case presence.Busy:
		return 3
	case presence.Away:
		return 2
	}
	return 0
}

// loadPresence reads the user's status and contacts from the login server.
func (s *Session) loadPresence(ctx context.Context) error {
	lc, cred, err := s.c.withCred(ctx)
	if err != nil {
		return err
	}
	status, err := lc.Status(ctx, cred)
	if err != nil {
		return fmt.Errorf("client: status: %w", err)
	}
	contacts, err := lc.Contacts(ctx, cred)
	if err != nil {
		return fmt.Errorf("client: contacts: %w", err)
	}
	var watch []string
	states := make(map[string]string, len(contacts))
	for _, c := range contacts {
		states[c.User] = c.State
		if c.State == loginapi.ContactAccepted {
			watch = append(watch, c.User)
		}
	}
	s.mu.Lock()
	if status != "" {
		s.pres.status = status
	}
	s.pres.watch = watch
	old := s.pres.contacts
	s.pres.contacts = states
	s.mu.Unlock()
	if old != nil {
		s.reportContacts(old, states)
	}
	return nil
}

// reportContacts emits a "contact" event for every contact whose state
// changed between two readings of the list (none: no longer listed).
func (s *Session) reportContacts(old, now map[string]string) {
	var changed []string
	for u, st := range now {
		if old[u] != st {
			changed = append(changed, u)
		}
	}
	for u := range old {
		if _, ok := now[u]; !ok {
			changed = append(changed, u)
		}
	}
	slices.Sort(changed)
	for _, u := range changed {
		st, ok := now[u]
		if !ok {
			st = loginapi.ContactNone
		}
		s.emit(Event{Event: "contact", Peer: u, PresenceEvent: &PresenceEvent{Status: st}})
	}
}

// announce tells the current supernode this session's presence.
func (s *Session) announce() {
	if s.cfg.NoPresence {
		return
	}
	conn := s.connNow()
	if conn == nil {
		return
	}
	s.mu.Lock()
	status, watch := s.pres.status, slices.Clone(s.pres.watch)
	s.mu.Unlock()
	if err := conn.SetPresence(status, s.device, watch); err != nil {
		s.c.log.Debug("announcing presence", "err", err)
	}
}

// contactsKickEvery spaces the rereads KindContacts signals cause.
const contactsKickEvery = 500 * time.Millisecond

// presenceLoop repeats the presence frame (re-reading the contacts, which may
// have changed) and forgets devices gone silent.
func (s *Session) presenceLoop() {
	defer s.wg.Done()
	t := time.NewTicker(snapi.PresenceRefresh)
	defer t.Stop()
	var lastKick time.Time
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.contactsKick:
			// A contact changed: reread now, at most twice a second
			// (anyone may send the signal).
			if wait := contactsKickEvery - time.Since(lastKick); wait > 0 {
				select {
				case <-s.ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			lastKick = time.Now()
			s.refreshContacts()
			continue
		case <-t.C:
		}
		s.refreshContacts()
		s.expirePresence(time.Now())
		// A safety net: what a hostile or failing supernode dropped was
		// mailed by its sender; read it without waiting for a reattach.
		s.im.checkMailbox()
	}
}

func (s *Session) expirePresence(now time.Time) {
	s.mu.Lock()
	var users []string
	for u, devs := range s.pres.seen {
		for d, p := range devs {
			if now.Sub(p.at) > 3*snapi.PresenceRefresh {
				delete(devs, d)
				users = append(users, u)
			}
		}
	}
	s.mu.Unlock()
	for _, u := range users {
		s.reportPresence(u)
	}
}

// refreshContacts rereads the status and contacts from the login server and
// tells the supernode.
func (s *Session) refreshContacts() {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if err := s.loadPresence(ctx); err != nil {
		if s.ctx.Err() == nil {
			s.c.log.Debug("refreshing contacts", "err", err)
		}
		return
	}
	s.announce()
	s.forgetNonContacts()
}

// forgetNonContacts drops what is known of users no longer watched, and
// reports them offline.
func (s *Session) forgetNonContacts() {
	s.mu.Lock()
	var gone []string
	for u := range s.pres.seen {
		if !slices.Contains(s.pres.watch, u) {
			delete(s.pres.seen, u)
			gone = append(gone, u)
		}
	}
	s.mu.Unlock()
	for _, u := range gone {
		s.reportPresence(u)
	}
}

// contactsChanged follows a change of this user's contact entry with peer:
// this session rereads its contacts at once, and the user's other running
// devices and the peer's are told to (a KindContacts signal each).
func (s *Session) contactsChanged(ctx context.Context, peer string) {
	kick(s.contactsKick) // the presence loop rereads: one reader at a time
	for _, to := range []string{peer, s.user} {
		err := s.sendSignal(ctx, &signal.Signal{Kind: signal.KindContacts, CallID: newCallID(), To: to})
		if err != nil && !errors.Is(err, ErrOffline) {
			s.c.log.Debug("telling of a contact change", "to", to, "err", err)
		}
	}
}

// AddContact is [Client.AddContact]; the running devices of both reread
// their contacts at once (a page shows the request; when it accepted a
// pending one, presence between the two starts).
func (s *Session) AddContact(ctx context.Context, user string) (string, error) {
	state, err := s.c.AddContact(ctx, user)
	if err == nil {
		s.contactsChanged(ctx, user)
	}
	return state, err
}

// AcceptContact is [Client.AcceptContact]; then presence between the two
// starts at once on every running device of both.
func (s *Session) AcceptContact(ctx context.Context, user string) (string, error) {
	state, err := s.c.AcceptContact(ctx, user)
	if err == nil {
		s.contactsChanged(ctx, user)
	}
	return state, err
}

// DeclineContact is [Client.DeclineContact]; then presence between the two
// stops at once on every running device of both.
func (s *Session) DeclineContact(ctx context.Context, user string) (string, error) {
	state, err := s.c.DeclineContact(ctx, user)
	if err == nil {
		s.contactsChanged(ctx, user)
	}
	return state, err
}

// onPresence handles a presence push from the supernode.
func (s *Session) onPresence(f snapi.Frame) {
	s.mu.Lock()
	if !slices.Contains(s.pres.watch, f.From) {
		s.mu.Unlock()
		return // not a contact (or not yet: the next refresh reads the list)
	}
	devs := s.pres.seen[f.From]
	if devs == nil {
		devs = map[string]devicePresence{}
		s.pres.seen[f.From] = devs
	}
	// One entry per device and supernode session: a device that moved to
	// another supernode (a network change) may still be reported by its
	// old, half-open session until that one's end comes, late. The device
	// is offline when every session of it is.
	key := f.Device + "\x00" + f.FromSession
	if f.Status != presence.Offline {
		devs[key] = devicePresence{status: f.Status, at: time.Now(), session: f.FromSession}
	} else {
		for k, p := range devs {
			if k == key || strings.HasPrefix(k, f.Device+"\x00") && (f.FromSession == "" || p.session == "") {
				delete(devs, k)
			}
		}
	}
	s.mu.Unlock()
	s.reportPresence(f.From)
}

// reportPresence emits a "presence" event when user's presence changed.
func (s *Session) reportPresence(user string) {
	s.mu.Lock()
	best := presence.Offline
	for _, p := range s.pres.seen[user] {
		if rank(p.status) > rank(best) {
			best = p.status
		}
	}
	changed := s.pres.shown[user] != best
	s.pres.shown[user] = best
	s.mu.Unlock()
	if changed {
		s.emit(Event{Event: "presence", Peer: user, PresenceEvent: &PresenceEvent{Status: best}})
	}
}

// Presence returns what this session knows of user's presence: online,
// away, busy, or offline (also for users who are not contacts).
func (s *Session) Presence(user string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.pres.shown[user]; ok {
		return st
	}
	return presence.Offline
}

// Status returns this user's status as this session knows it.
func (s *Session) Status() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pres.status
}

// SetStatus sets the user's status (online, away, busy or invisible): on
// the login server, on this session's supernode (which pushes it to the
// contacts) and on the user's other running devices.
func (s *Session) SetStatus(ctx context.Context, status string) error {
	switch status {
	case presence.Online, presence.Away, presence.Busy, presence.Invisible:
	default:
		return fmt.Errorf("client: status %q: %w", status, ErrBadStatus)
	}
	if err := s.c.SetStatus(ctx, status); err != nil {
		return err
	}
	s.mu.Lock()
	s.pres.status = status
	s.mu.Unlock()
	s.announce()
	// My other running devices: a device that misses it reads the status
	// from the login server at its next start.
	err := s.sendSignal(ctx, &signal.Signal{Kind: signal.KindStatus, CallID: newCallID(), To: s.user, Status: status})
	if err != nil && !errors.Is(err, ErrOffline) {
		s.c.log.Warn("telling my other devices the new status", "err", err)
	}
	return nil
}

// onStatus applies a status set on another of the user's devices.
func (s *Session) onStatus(sig *signal.Signal) {
	if sig.From != s.user {
		return // only my own devices tell me my status
	}
	switch sig.Status {
	case presence.Online, presence.Away, presence.Busy, presence.Invisible:
	default:
		return
	}
	s.mu.Lock()
	changed := s.pres.status != sig.Status
	s.pres.status = sig.Status
	s.mu.Unlock()
	if changed {
		s.announce()
		s.emit(Event{Event: "status", Peer: s.user, PresenceEvent: &PresenceEvent{Status: sig.Status}})
	}
}

// kick wakes the loop waiting on ch, without blocking.
func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
