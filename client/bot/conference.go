package bot

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/console"
)

// Conference calls (docs/conference.md) in bot mode: one command,
// "conference", whose op starts one, invites more users to it, joins or
// declines an invitation ringing here, leaves, mutes, holds, or shows the
// roster. An invitation rings (the session's "conference" event, conf_state
// "invited", with the conference's id in "conf") until a join or decline
// command, until it stops ringing (another device of the user joined, the
// ring timeout) or until Run ends, as a call does.

// confEntry is one conference the bot knows: an invitation ringing here,
// being joined, or joined (or started).
type confEntry struct {
	from    string             // the inviting user, for an invitation
	inv     *client.ConfInvite // ringing here, until a join or decline command is done with it
	claimed bool               // a join or decline command took inv
	taken   chan struct{}      // closed when that command is done with inv
	cancel  context.CancelFunc // being joined: ends the attempt
	cf      *client.Conference // once in it
}

// confArgs are the arguments of conference. Conf is a conference's id (a
// start's result, a "conference" event's conf); Group a group's name, id
// or a prefix of its id of 6 or more characters; Play and Record name
// files as Config.Audio takes them; On (default true) says mute or hold
// on, false off.
type confArgs struct {
	Op     string   `json:"op"`
	Conf   string   `json:"conf"`
	Users  []string `json:"users"`
	Group  string   `json:"group"`
	Play   string   `json:"play"`
	Record string   `json:"record"`
	On     *bool    `json:"on"`
}

// confOps are the operations of the conference command: the fields each
// needs and the others it takes, and what it does.
var confOps = map[string]struct {
	need, take []string
	run        func(b *Bot, ctx context.Context, a confArgs) (Result, error)
}{
	"start":   {nil, []string{"users", "group", "play", "record"}, (*Bot).confStart},
	"invite":  {[]string{"conf", "users"}, nil, (*Bot).confInvite},
	"join":    {[]string{"conf"}, []string{"play", "record"}, (*Bot).confJoin},
	"decline": {[]string{"conf"}, nil, (*Bot).confDecline},
	"leave":   {[]string{"conf"}, nil, (*Bot).confLeave},
	"mute":    {[]string{"conf"}, []string{"on"}, (*Bot).confMute},
	"hold":    {[]string{"conf"}, []string{"on"}, (*Bot).confHold},
	"roster":  {[]string{"conf"}, nil, (*Bot).confRoster},
}

// conference runs one of confOps, after checking it has the fields it needs
// and none it does not take. Every result has op and conf.
func (b *Bot) conference(ctx context.Context, a confArgs) (Result, error) {
	op, ok := confOps[a.Op]
	if !ok {
		return nil, fmt.Errorf("op %q: must be one of %s", a.Op, strings.Join(slices.Sorted(maps.Keys(confOps)), ", "))
	}
	given := map[string]bool{"conf": a.Conf != "", "users": a.Users != nil, "group": a.Group != "",
		"play": a.Play != "", "record": a.Record != "", "on": a.On != nil}
	for _, f := range op.need {
		if !given[f] || f == "users" && len(a.Users) == 0 {
			return nil, fmt.Errorf("op %s: missing %s", a.Op, f)
		}
	}
	for _, f := range slices.Sorted(maps.Keys(given)) {
		if given[f] && !slices.Contains(op.need, f) && !slices.Contains(op.take, f) {
			return nil, fmt.Errorf("op %s takes no %s", a.Op, f)
		}
	}
	return op.run(b, ctx, a)
}

// OnConfInvite is the session's SessionConfig.OnConfInvite: the invitation
// rings until a join or decline command, until it stops ringing, or until
// Run ends (then it is declined).
func (b *Bot) OnConfInvite(inv *client.ConfInvite) {
	e := &confEntry{from: inv.From, inv: inv, taken: make(chan struct{})}
	b.mu.Lock()
	if b.confs[inv.ID] != nil { // the bot is still leaving it
		b.mu.Unlock()
		return
	}
	b.confs[inv.ID] = e
	b.mu.Unlock()
	select {
	case <-e.taken:
		return
	case <-inv.Cancelled():
	case <-b.stopped:
	}
	b.mu.Lock()
	claimed := e.claimed
	if !claimed && b.confs[inv.ID] == e {
		delete(b.confs, inv.ID)
	}
	b.mu.Unlock()
	if claimed {
		// A command is joining or declining it: returning now would
		// decline it under that command.
		<-e.taken
	}
}

// errNoConf is the error for a conference id the bot does not know.
func errNoConf(id string) error { return fmt.Errorf("no conference %s", id) }

// confErr is a client error without the "conference: " that the command's
// name already says.
func confErr(err error) error {
	return errors.New(strings.TrimPrefix(console.UserMessage(err), "conference: "))
}

// confStart starts a conference with users and every other member of
// group; its result comes once the invitations have gone: conf, users (the
// users invited), group (its id, when given).
func (b *Bot) confStart(ctx context.Context, a confArgs) (Result, error) {
	if len(a.Users) == 0 && a.Group == "" {
		return nil, errors.New("op start: missing users or group")
	}
	res := Result{"op": a.Op}
	users := slices.Clone(a.Users)
	if a.Group != "" {
		g, err := b.s.Group(a.Group)
		if err != nil {
			return nil, err
		}
		users = append(users, g.Members...)
		res["group"], a.Group = g.ID, g.ID
	}
	users = slices.DeleteFunc(slices.Compact(slices.Sorted(slices.Values(users))), func(u string) bool { return u == b.s.User() })
	media, done, err := b.cfg.Audio(a.Play, a.Record)
	if err != nil {
		return nil, err
	}
	cf, err := b.s.StartConference(ctx, client.ConfConfig{Group: a.Group, Users: a.Users, Media: media})
	if err != nil {
		b.finish(done, "conference", "start")
		return nil, confErr(err)
	}
	e := &confEntry{cf: cf}
	b.mu.Lock()
	b.confs[cf.ID] = e
	b.mu.Unlock()
	b.own(e, done)
	res["conf"], res["users"] = cf.ID, nonNil(users)
	return res, nil
}

// own watches the conference of e, on a goroutine owned by Run, until it
// ends (or Run does: then it leaves), then forgets it and closes its audio.
func (b *Bot) own(e *confEntry, done func() error) {
	cf := e.cf
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		select {
		case <-cf.Done():
		case <-b.stopped:
			cf.Leave()
			<-cf.Done()
		}
		b.mu.Lock()
		if b.confs[cf.ID] == e {
			delete(b.confs, cf.ID)
		}
		b.mu.Unlock()
		b.finish(done, "conference", cf.ID)
	}()
}

// joined returns the conference id the bot is in.
func (b *Bot) joined(id string) (*client.Conference, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.confs[id]
	switch {
	case e == nil:
		return nil, errNoConf(id)
	case e.cf == nil:
		return nil, fmt.Errorf("conference %s is not joined", id)
	}
	return e.cf, nil
}

// confInvite invites more users; its result comes once the invitations
// have gone: conf, users.
func (b *Bot) confInvite(ctx context.Context, a confArgs) (Result, error) {
	cf, err := b.joined(a.Conf)
	if err != nil {
		return nil, err
	}
	users := slices.DeleteFunc(slices.Compact(slices.Sorted(slices.Values(a.Users))), func(u string) bool { return u == b.s.User() })
	if len(users) == 0 {
		return nil, errors.New("op invite: nobody to invite")
	}
	if err := cf.Invite(ctx, users...); err != nil {
		return nil, confErr(err)
	}
	return Result{"op": a.Op, "conf": cf.ID, "users": users}, nil
}

// claimConf takes the invitation ringing as id for a join (which cancel
// ends early) or a decline (cancel nil).
func (b *Bot) claimConf(id string, cancel context.CancelFunc) (*confEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.confs[id]
	switch {
	case e == nil:
		return nil, errNoConf(id)
	case e.inv == nil || e.claimed:
		return nil, fmt.Errorf("conference %s is not ringing", id)
	}
	e.claimed, e.cancel = true, cancel
	return e, nil
}

// forgetConf drops e, if it is still id's entry.
func (b *Bot) forgetConf(id string, e *confEntry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.confs[id] == e {
		delete(b.confs, id)
	}
}

// confJoin joins the conference whose invitation rings here; its result
// comes once a leg has connected: conf, peer (the inviter), roster.
func (b *Bot) confJoin(ctx context.Context, a confArgs) (Result, error) {
	media, done, err := b.cfg.Audio(a.Play, a.Record)
	if err != nil {
		return nil, err
	}
	joining, cancel := context.WithCancel(ctx)
	defer cancel()
	e, err := b.claimConf(a.Conf, cancel)
	if err != nil {
		b.finish(done, "conference", a.Conf)
		return nil, err
	}
	cf, err := e.inv.Join(joining, media)
	if err != nil {
		b.forgetConf(a.Conf, e)
		close(e.taken)
		b.finish(done, "conference", a.Conf)
		if joining.Err() != nil && ctx.Err() == nil {
			return nil, fmt.Errorf("join %s: left before a leg connected", a.Conf)
		}
		return nil, confErr(err)
	}
	b.mu.Lock()
	e.inv, e.cancel, e.cf = nil, nil, cf
	b.mu.Unlock()
	b.own(e, done)
	close(e.taken)
	return Result{"op": a.Op, "conf": cf.ID, "peer": e.from, "roster": cf.Roster()}, nil
}

// confDecline declines the invitation ringing as conf: conf, peer (the
// inviter, who is told).
func (b *Bot) confDecline(ctx context.Context, a confArgs) (Result, error) {
	e, err := b.claimConf(a.Conf, nil)
	if err != nil {
		return nil, err
	}
	e.inv.Decline()
	b.forgetConf(a.Conf, e)
	close(e.taken)
	return Result{"op": a.Op, "conf": a.Conf, "peer": e.from}, nil
}

// confLeave ends the bot's part in conference conf in any state: joined
// (its result comes once every leg is hung up: conf, reason), being joined
// (the join fails), or ringing here (declined).
func (b *Bot) confLeave(ctx context.Context, a confArgs) (Result, error) {
	b.mu.Lock()
	e := b.confs[a.Conf]
	var cf *client.Conference
	var inv *client.ConfInvite
	switch {
	case e == nil:
		b.mu.Unlock()
		return nil, errNoConf(a.Conf)
	case e.cf != nil:
		cf = e.cf
	case e.cancel != nil:
		e.cancel()
	case e.inv != nil && !e.claimed:
		e.claimed, inv = true, e.inv
	}
	b.mu.Unlock()
	res := Result{"op": a.Op, "conf": a.Conf}
	switch {
	case cf != nil:
		cf.Leave()
		select {
		case <-cf.Done():
			res["reason"] = cf.Reason()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	case inv != nil:
		inv.Decline()
		b.forgetConf(a.Conf, e)
		close(e.taken)
		res["reason"] = "declined"
	}
	return res, nil
}

// confMute mutes the bot in the conference (on false: unmutes): silence
// goes on every leg and the others' rosters show it. Result: conf, muted.
func (b *Bot) confMute(ctx context.Context, a confArgs) (Result, error) {
	cf, err := b.joined(a.Conf)
	if err != nil {
		return nil, err
	}
	on := a.On == nil || *a.On
	cf.SetMuted(on)
	return Result{"op": a.Op, "conf": cf.ID, "muted": on}, nil
}

// confHold puts every leg on hold (on false: resumes them). Result: conf,
// held.
func (b *Bot) confHold(ctx context.Context, a confArgs) (Result, error) {
	cf, err := b.joined(a.Conf)
	if err != nil {
		return nil, err
	}
	on := a.On == nil || *a.On
	cf.Hold(on)
	return Result{"op": a.Op, "conf": cf.ID, "held": on}, nil
}

// confRoster returns the roster: the bot and every device it has a
// connected leg with. Result: conf, roster.
func (b *Bot) confRoster(ctx context.Context, a confArgs) (Result, error) {
	cf, err := b.joined(a.Conf)
	if err != nil {
		return nil, err
	}
	return Result{"op": a.Op, "conf": cf.ID, "roster": cf.Roster()}, nil
}
