package client

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parley/parley/wire/signal"
)

// The conference's signals (docs/conference.md): invitations ring here
// (ConfInvite); the rest reach the conference they name, if this device is
// in it, and only from its members.

// ConfInvite is a verified invitation to a conference, waiting for Join or
// Decline.
type ConfInvite struct {
	ID    string
	From  string // the inviting user
	Group string // the group the conference was started from, if any
	// Members are the inviter's participants ("user/device"), the inviter
	// first: Join dials each.
	Members []string
	// Users are the users invited so far (this one among them).
	Users []string

	s       *Session
	inviter string // the inviting device
	ctx     context.Context
	cancel  context.CancelFunc

	mu      sync.Mutex
	handled bool
}

// Cancelled is closed when the invitation stops ringing here: another
// device of the user joined, or the session closed.
func (inv *ConfInvite) Cancelled() <-chan struct{} { return inv.ctx.Done() }

func (inv *ConfInvite) take() bool {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	if inv.handled {
		return false
	}
	inv.handled = true
	return true
}

// Decline tells the inviter no.
func (inv *ConfInvite) Decline() {
	if !inv.take() {
		return
	}
	inv.s.sendAsync(&signal.Signal{Kind: signal.KindConf, CallID: newCallID(), To: inv.From,
		Conf: &signal.Conf{ID: inv.ID, Op: signal.ConfDeclined}})
	inv.s.emit(Event{Event: "conference", Conf: inv.ID, ConfEvent: &ConfEvent{ConfState: "left", ConfReason: "declined"}})
}

// Join takes the invitation with media (as ConfConfig.Media): it dials every
// member and returns once a leg has connected, or with the error of the last
// leg that failed when none could.
func (inv *ConfInvite) Join(ctx context.Context, media Media) (*Conference, error) {
	if !inv.take() {
		return nil, fmt.Errorf("client: join %s: already joined or declined", inv.ID)
	}
	s := inv.s
	cf, err := s.newConference(inv.ID, inv.Group, media)
	if err != nil {
		return nil, err
	}
	s.sendAsync(&signal.Signal{Kind: signal.KindConf, CallID: newCallID(), To: s.user,
		Conf: &signal.Conf{ID: inv.ID, Op: signal.ConfJoined}})
	cf.mu.Lock()
	for _, m := range inv.Members {
		if u, _, ok := signal.SplitMember(m); ok {
			cf.invited[u] = true // members already: their legs are welcome
		}
	}
	for _, u := range inv.Users {
		cf.invited[u] = true // invited with me
	}
	cf.mu.Unlock()
	s.emit(Event{Event: "conference", Conf: cf.ID, ConfEvent: &ConfEvent{ConfState: "joined", ConfFrom: inv.From, ConfGroup: inv.Group}})
	for _, m := range inv.Members {
		cf.dial(m)
	}
	tk := time.NewTicker(50 * time.Millisecond)
	defer tk.Stop()
	for {
		cf.mu.Lock()
		had, legs, lastErr := cf.hadLeg, len(cf.legs), cf.lastErr
		cf.mu.Unlock()
		switch {
		case had:
			return cf, nil
		case legs == 0:
			if lastErr == nil {
				lastErr = fmt.Errorf("client: join %s: nobody answered", inv.ID)
			}
			cf.end(strings.TrimPrefix(lastErr.Error(), "client: "))
			<-cf.Done()
			return nil, lastErr
		}
		select {
		case <-ctx.Done():
			cf.Leave()
			<-cf.Done()
			return nil, ctx.Err()
		case <-cf.Done():
			return nil, fmt.Errorf("client: join %s: %s", inv.ID, cf.Reason())
		case <-tk.C:
		}
	}
}

// onConf handles a KindConf signal.
func (s *Session) onConf(sig *signal.Signal) {
	c := sig.Conf
	switch c.Op {
	case signal.ConfInvite:
		s.onConfInvite(sig)
		return
	case signal.ConfUpgrade:
		s.onConfUpgrade(sig)
		return
	case signal.ConfJoined:
		if sig.From == s.user && sig.Device != s.device {
			s.mu.Lock()
			inv := s.confInvites[c.ID]
			s.mu.Unlock()
			if inv != nil {
				// Taken on another device: it stops ringing here without
				// the decline that an unanswered invitation gets.
				if inv.take() {
					s.emit(Event{Event: "conference", Conf: c.ID, ConfEvent: &ConfEvent{ConfState: "left", ConfReason: ConfJoinedElsewhere}})
				}
				inv.cancel()
			}
		}
		return
	}
	cf := s.conference(c.ID)
	if cf == nil {
		return // not in it (another device of the user may be)
	}
	if c.Op == signal.ConfDeclined {
		s.emit(Event{Event: "conference", Conf: cf.ID, ConfEvent: &ConfEvent{ConfState: "declined", ConfFrom: sig.From}})
		return
	}
	key := signal.Member(sig.From, sig.Device)
	cf.mu.Lock()
	l := cf.legs[key]
	if l == nil {
		cf.mu.Unlock()
		return // only members speak for the conference (a leg may still be connecting: its roster can overtake it)
	}
	var dial []string
	switch c.Op {
	case signal.ConfInvited:
		for _, u := range c.Users {
			cf.invited[u] = true
		}
		close(cf.inviteWake)
		cf.inviteWake = make(chan struct{})
	case signal.ConfRoster:
		for _, u := range c.Users {
			cf.invited[u] = true
		}
		if len(c.Users) > 0 {
			close(cf.inviteWake)
			cf.inviteWake = make(chan struct{})
		}
		for _, m := range c.Members {
			if cf.legs[m] == nil {
				dial = append(dial, m)
			}
			if u, _, ok := signal.SplitMember(m); ok {
				cf.invited[u] = true // a member's member
			}
		}
	case signal.ConfMute, signal.ConfUnmute:
		l.peerMuted = c.Op == signal.ConfMute
	}
	cf.mu.Unlock()
	for _, m := range dial {
		cf.dial(m)
	}
}

// onConfInvite rings an invitation here, when this device takes them.
func (s *Session) onConfInvite(sig *signal.Signal) {
	c := sig.Conf
	if s.cfg.OnConfInvite == nil || !slices.Contains(c.Members, signal.Member(sig.From, sig.Device)) {
		return
	}
	inv := &ConfInvite{ID: c.ID, From: sig.From, Group: c.Group, Members: slices.Clone(c.Members), Users: slices.Clone(c.Users), s: s, inviter: sig.Device}
	inv.ctx, inv.cancel = context.WithTimeout(s.ctx, s.cfg.RingTimeout)
	s.mu.Lock()
	if s.closed || s.confs[c.ID] != nil || s.confInvites[c.ID] != nil {
		s.mu.Unlock()
		inv.cancel()
		return
	}
	s.confInvites[c.ID] = inv
	s.mu.Unlock()
	roster := make([]ConfMember, 0, len(c.Members))
	for _, m := range c.Members {
		u, d, _ := signal.SplitMember(m)
		roster = append(roster, ConfMember{User: u, Device: d})
	}
	s.emit(Event{Event: "conference", Conf: c.ID, ConfEvent: &ConfEvent{ConfState: "invited", ConfFrom: sig.From, ConfGroup: c.Group, Roster: roster}})
	s.Go(func(context.Context) {
		defer func() {
			s.mu.Lock()
			delete(s.confInvites, c.ID)
			s.mu.Unlock()
			inv.cancel()
		}()
		s.cfg.OnConfInvite(inv)
		inv.mu.Lock()
		handled := inv.handled
		inv.mu.Unlock()
		if !handled {
			inv.Decline()
		}
	})
}

// onConfLeg takes an offered leg of a conference this device is in, if the
// offer names this device (or none).
func (s *Session) onConfLeg(sig *signal.Signal) {
	cf := s.conference(sig.Conf.ID)
	if cf == nil || sig.Answerer != "" && sig.Answerer != s.device {
		return // not in it, or not the device called
	}
	in := s.newIncoming(sig)
	if in == nil {
		return
	}
	s.mu.Lock()
	s.legConf[sig.CallID] = cf.ID
	s.mu.Unlock()
	if !cf.goOwned(func() { cf.accept(in) }) {
		s.mu.Lock()
		delete(s.incoming, in.CallID)
		s.mu.Unlock()
		in.cancel()
	}
}

// AddToConference turns this 1:1 call into a conference and invites users:
// the peer hears of it (upgrade) and the call becomes the conference's first
// leg, with the call's media as the conference's (its source now read once
// for every leg, its sink the mix).
func (c *Call) AddToConference(ctx context.Context, users ...string) (*Conference, error) {
	s := c.s
	c.mu.Lock()
	peerDevice, started := c.peerDevice, c.started
	c.mu.Unlock()
	if !started || c.redirect.Load() != nil {
		return nil, fmt.Errorf("client: add to call %s: not a connected 1:1 call", c.ID)
	}
	cf, err := s.newConference(newConfID(), "", c.media)
	if err != nil {
		return nil, err
	}
	if err := s.sendSignal(ctx, &signal.Signal{Kind: signal.KindConf, CallID: c.ID, To: c.Peer,
		Conf: &signal.Conf{ID: cf.ID, Op: signal.ConfUpgrade}}); err != nil {
		cf.Leave()
		return nil, fmt.Errorf("client: add to call %s: %w", c.ID, err)
	}
	cf.adopt(c, peerDevice)
	s.emit(Event{Event: "conference", Conf: cf.ID, ConfEvent: &ConfEvent{ConfState: "joined", Roster: cf.Roster()}})
	if err := cf.Invite(ctx, users...); err != nil {
		return cf, err
	}
	return cf, nil
}

// onConfUpgrade: the peer of a 1:1 call made it a conference's first leg.
func (s *Session) onConfUpgrade(sig *signal.Signal) {
	c := s.call(sig.CallID)
	if c == nil || c.Peer != sig.From || !c.fromPeer(sig) || c.redirect.Load() != nil || s.conference(sig.Conf.ID) != nil {
		return
	}
	cf, err := s.newConference(sig.Conf.ID, "", c.media)
	if err != nil {
		s.c.log.Warn("conference from a call", "call", c.ID, "err", err)
		return
	}
	cf.mu.Lock()
	cf.invited[sig.From] = true
	cf.mu.Unlock()
	cf.adopt(c, sig.Device)
	s.emit(Event{Event: "conference", Conf: cf.ID, ConfEvent: &ConfEvent{ConfState: "joined", ConfFrom: sig.From, Roster: cf.Roster()}})
}
