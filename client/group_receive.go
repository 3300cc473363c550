package client

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/parley/parley/client/im"
)

// merge stores verified operations of group id and replays its log. It
// returns the state after and the operations that were new; it reports the
// new operations that took effect as "group" events, and releases the held
// messages of senders who are members now.
func (m *messenger) merge(id string, ops []*im.GroupOp) (*im.GroupState, []*im.GroupOp, error) {
	m.g.mu.Lock()
	if err := m.loadGroupsLocked(); err != nil {
		m.g.mu.Unlock()
		return nil, nil, err
	}
	log, err := m.hist.GroupOps(id)
	if err != nil {
		m.g.mu.Unlock()
		return nil, nil, err
	}
	added, err := m.hist.AddGroupOps(id, im.Admit(log, ops))
	if err != nil {
		m.g.mu.Unlock()
		return nil, nil, err
	}
	g := m.g.states[id]
	if len(added) > 0 || g == nil {
		// The log read above and what was added to it: no second read.
		if g, err = im.Replay(id, append(log, added...)); err != nil {
			m.g.mu.Unlock()
			return nil, added, err // no create yet: kept until it comes
		}
		m.g.states[id] = g
	}
	var release []im.HeldMessage
	if len(added) > 0 && g.IsMember(m.s.user) {
		release, err = m.hist.Release(id, func(h im.HeldMessage) bool { return g.IsMember(h.From) })
		if err != nil {
			m.s.c.log.Warn("releasing held group messages", "group", id, "err", err)
		}
	}
	m.g.mu.Unlock()

	isNew := map[string]bool{}
	for _, o := range added {
		isNew[o.ID()] = true
	}
	for _, o := range g.Applied {
		if len(isNew) > 0 && isNew[o.ID()] {
			m.s.emit(Event{Event: "group", Peer: o.By, MessageEvent: &MessageEvent{Group: id, GroupName: g.Name,
				Op: o.Type, By: o.By, Target: o.Target, Members: slices.Clone(g.Members), Sent: time.UnixMilli(o.TS)}})
		}
	}
	for _, h := range release {
		m.storeGroupMessage(h.Message, h.Via)
	}
	return g, added, nil
}

// openedGroup handles a group envelope that verified and opened.
func (m *messenger) openedGroup(o *im.Opened, via string) {
	s := m.s
	b := o.Group
	ack := func() {
		if via == ViaMailbox {
			return // nobody waits for it: a group's receipts only pace a live send
		}
		m.mu.Lock()
		m.acks[o.From] = append(m.acks[o.From], o.ID)
		m.mu.Unlock()
	}
	switch b.Type {
	case im.GroupOps, im.GroupSync:
		myMax := m.ownClock(b.Group)
		g, added, err := m.merge(b.Group, b.Ops)
		if err != nil {
			s.c.log.Warn("storing a group's operations", "from", o.From, "err", err)
			if !errors.Is(err, im.ErrUnknownGroup) && !errors.Is(err, im.ErrGroupFull) {
				return // not acknowledged: it comes again
			}
		}
		ack()
		if o.From == s.user {
			return
		}
		digest := ""
		if g != nil {
			digest = g.Digest
		}
		switch {
		case b.Type == im.GroupSync && !b.Reply && digest != b.Digest:
			m.syncTo(b.Group, o.From, true, false)
		case digest != b.Digest:
			m.syncTo(b.Group, o.From, false, false)
		}
		// An operation made without seeing one of mine (the same clock or
		// lower): its author and those it reached may lack mine, so
		// everyone gets this device's log.
		if myMax > 0 && g != nil && slices.ContainsFunc(added, func(a *im.GroupOp) bool { return a.By != s.user && a.Clock <= myMax }) {
			for _, u := range g.Members {
				if u != s.user {
					m.syncTo(b.Group, u, false, true)
				}
			}
		}
	case im.GroupMessage:
		ack()
		g, err := m.group(b.Group)
		if err != nil {
			s.c.log.Error("reading a group", "group", b.Group, "err", err)
			return
		}
		// From a user this device does not know as a member, or to this
		// user while it knows itself outside the group: held, in case an
		// operation that changes that is on its way.
		msg := groupMessage(o, s.user)
		if o.From != s.user && (g == nil || !g.IsMember(o.From) || !g.IsMember(s.user)) {
			if err := m.hist.Hold(b.Group, im.HeldMessage{Message: msg, Via: via}); err != nil {
				s.c.log.Error("holding a group message", "from", o.From, "err", err)
			}
			m.syncTo(b.Group, o.From, false, false)
			return
		}
		m.storeGroupMessage(msg, via)
		if o.From != s.user && g.Digest != b.Digest {
			m.syncTo(b.Group, o.From, false, false)
		}
	}
}

// ownClock returns the highest clock of this user's operations in group
// id (0 if none).
func (m *messenger) ownClock(id string) int64 {
	g, err := m.group(id)
	if err != nil || g == nil {
		return 0
	}
	var c int64
	for _, o := range g.Applied {
		if o.By == m.s.user {
			c = max(c, o.Clock)
		}
	}
	return c
}

// groupMessage is an opened group message as the history of user me keeps
// it.
func groupMessage(o *im.Opened, me string) im.Message {
	b := o.Group
	msg := im.Message{ID: b.MID, Peer: im.GroupPeer(b.Group), From: o.From, Dir: im.DirIn, FromDevice: o.FromDevice, Seq: b.Seq, TS: o.TS, Text: b.Text}
	if o.From == me {
		msg.Dir = im.DirOut
	}
	return msg
}

// storeGroupMessage stores a group message and shows it once.
func (m *messenger) storeGroupMessage(msg im.Message, via string) {
	s := m.s
	isNew, err := m.hist.AddIncoming(msg)
	if err != nil {
		s.c.log.Error("storing a group message", "from", msg.From, "err", err)
		return
	}
	if isNew {
		id, _ := im.GroupIDOf(msg.Peer)
		name := ""
		if g, err := m.group(id); err == nil && g != nil {
			name = g.Name
		}
		s.emit(Event{Event: "message", Peer: msg.Peer, MessageEvent: &MessageEvent{ID: msg.ID, From: msg.From, Group: id, GroupName: name,
			Text: msg.Text, Sent: msg.Time(), Via: via}})
	}
}

// syncTo sends this device's log of group id to user, in the background:
// at most once every GroupSyncInterval per group and user unless now.
func (m *messenger) syncTo(id, user string, reply, now bool) {
	key := id + "\x00" + user
	if reply {
		key += "\x00reply"
	}
	m.g.mu.Lock()
	last, ok := m.g.synced[key]
	if !now && ok && time.Since(last) < im.GroupSyncInterval {
		m.g.mu.Unlock()
		return
	}
	m.g.synced[key] = time.Now()
	m.g.mu.Unlock()
	m.s.Go(func(ctx context.Context) {
		ops, err := m.hist.GroupOps(id)
		if err != nil {
			return
		}
		digest := ""
		if g, err := m.group(id); err == nil && g != nil {
			digest = g.Digest
		}
		if err := m.sendOps(ctx, user, id, im.GroupSync, ops, digest, reply); err != nil && ctx.Err() == nil {
			m.s.c.log.Debug("sending a group's log", "to", user, "err", err)
		}
	})
}
