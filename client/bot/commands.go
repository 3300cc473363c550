package bot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/parley/parley/client"
)

// commands is the dispatch table: command name → handler. A new command is
// one entry: its arguments' struct (JSON names; unknown fields are refused),
// the fields it needs, and a method returning its result (docs/schema/
// commands.schema.json describes each).
var commands = map[string]command{
	"call":       handle((*Bot).call, "peer"),
	"answer":     handle((*Bot).answer, "call_id"),
	"decline":    handle((*Bot).decline, "call_id"),
	"hangup":     handle((*Bot).hangup, "call_id"),
	"hold":       handle((*Bot).hold, "call_id"),
	"resume":     handle((*Bot).resume, "call_id"),
	"mute":       handle((*Bot).mute, "call_id"),
	"chat":       handle((*Bot).chat, "text"),
	"read":       handle((*Bot).read, "peer"),
	"typing":     handle((*Bot).typing, "peer"),
	"contacts":   handle((*Bot).contacts, "op", "peer"),
	"status":     handle((*Bot).status, "status"),
	"group":      handle((*Bot).group, "op"),
	"send":       handle((*Bot).send, "file"),
	"conference": handle((*Bot).conference, "op"),
}

// command runs one command with its arguments (the line's fields but "cmd"
// and "id").
type command struct {
	run func(ctx context.Context, b *Bot, args map[string]json.RawMessage) (Result, error)
}

// handle makes a command of f: the fields in need must be present and not
// empty, and the arguments must decode into A.
func handle[A any](f func(*Bot, context.Context, A) (Result, error), need ...string) command {
	return command{run: func(ctx context.Context, b *Bot, args map[string]json.RawMessage) (Result, error) {
		for _, n := range need {
			if v, ok := args[n]; !ok || string(v) == "null" || string(v) == `""` {
				return nil, fmt.Errorf("missing %s", n)
			}
		}
		raw, err := json.Marshal(args)
		if err != nil {
			return nil, err
		}
		var a A
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&a); err != nil {
			if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
				return nil, fmt.Errorf("%s must be a %s", te.Field, jsonType(te.Type))
			}
			return nil, errors.New(strings.TrimPrefix(err.Error(), "json: "))
		}
		return f(b, ctx, a)
	}}
}

// jsonType names a Go type the way JSON does.
func jsonType(t reflect.Type) string {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.String:
		return "string"
	case reflect.Slice:
		return "list"
	}
	return t.Kind().String()
}

// errNoCall is the error for a call id the bot does not know.
func errNoCall(id string) error { return fmt.Errorf("no call %s", id) }

// callArgs are the arguments of call. Play and Record name files as
// Config.Audio takes them.
type callArgs struct {
	Peer   string `json:"peer"`
	Play   string `json:"play"`
	Record string `json:"record"`
}

// answerArgs are the arguments of answer.
type answerArgs struct {
	CallID string `json:"call_id"`
	Play   string `json:"play"`
	Record string `json:"record"`
}

// call places a call; its result comes once the offer has gone out. The
// call goes on, on a goroutine owned by Run, until it ends.
func (b *Bot) call(ctx context.Context, a callArgs) (Result, error) {
	media, done, err := b.cfg.Audio(a.Play, a.Record)
	if err != nil {
		return nil, err
	}
	placing, cancel := context.WithCancel(ctx)
	placed := make(chan string, 1)
	failed := make(chan error, 1)
	var id string
	media.OnPlaced = func(callID string) {
		b.mu.Lock()
		id = callID
		b.calls[callID] = &entry{peer: a.Peer, cancel: cancel}
		b.mu.Unlock()
		placed <- callID
	}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		defer cancel()
		call, err := b.s.Call(placing, a.Peer, media)
		if err != nil {
			b.forget(id)
			failed <- err
			b.finish(done, "call", a.Peer)
			return
		}
		b.connected(call.ID, call)
		<-call.Done()
		b.forget(call.ID)
		b.finish(done, "call", call.ID)
	}()
	select {
	case callID := <-placed:
		return Result{"call_id": callID, "peer": a.Peer}, nil
	case err := <-failed:
		select {
		case callID := <-placed: // placed, then failed at once: the call's events tell
			return Result{"call_id": callID, "peer": a.Peer}, nil
		default:
			return nil, err
		}
	}
}

// answer answers a ringing call; its result comes once the call is
// connected. The call goes on, on a goroutine owned by Run, until it ends.
func (b *Bot) answer(ctx context.Context, a answerArgs) (Result, error) {
	media, done, err := b.cfg.Audio(a.Play, a.Record)
	if err != nil {
		return nil, err
	}
	answering, cancel := context.WithCancel(ctx)
	defer cancel()
	e, err := b.claim(a.CallID, cancel)
	if err != nil {
		b.finish(done, "answer", a.CallID)
		return nil, err
	}
	call, err := e.in.Answer(answering, media)
	if err != nil {
		b.forget(a.CallID)
		close(e.taken)
		b.finish(done, "answer", a.CallID)
		return nil, err
	}
	b.connected(a.CallID, call)
	close(e.taken)
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		<-call.Done()
		b.forget(call.ID)
		b.finish(done, "answer", call.ID)
	}()
	return Result{"call_id": call.ID, "peer": call.Peer}, nil
}

// declineArgs are the arguments of decline.
type declineArgs struct {
	CallID string `json:"call_id"`
	// Reason is what the caller is told: "declined" (default), "busy", ...
	Reason string `json:"reason"`
}

func (b *Bot) decline(ctx context.Context, a declineArgs) (Result, error) {
	e, err := b.claim(a.CallID, nil)
	if err != nil {
		return nil, err
	}
	if a.Reason == "" {
		a.Reason = "declined"
	}
	e.in.Decline(a.Reason)
	b.forget(a.CallID)
	close(e.taken)
	return Result{"call_id": a.CallID, "peer": e.peer, "reason": a.Reason}, nil
}

// claim takes the ringing call id for an answer (which cancel ends early)
// or a decline (cancel nil).
func (b *Bot) claim(id string, cancel context.CancelFunc) (*entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.calls[id]
	switch {
	case e == nil:
		return nil, errNoCall(id)
	case e.in == nil || e.claimed:
		return nil, fmt.Errorf("call %s is not ringing", id)
	}
	e.claimed, e.cancel = true, cancel
	return e, nil
}

// connected records that the call id is up, and hangs it up when Run is
// ending.
func (b *Bot) connected(id string, call *client.Call) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.calls[id]; e != nil {
		e.in, e.cancel, e.call = nil, nil, call
	}
	if b.closing {
		call.Hangup("hangup")
	}
}

// forget drops the call id.
func (b *Bot) forget(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.calls, id)
}

// finish calls a call's audio done func, reporting its error (a recording
// that could not be finished) as an error event of cmd.
func (b *Bot) finish(done func() error, cmd, what string) {
	if done == nil {
		return
	}
	if err := done(); err != nil {
		b.fail(head{Cmd: cmd}, fmt.Errorf("%s: %w", what, err))
	}
}

// callIDArgs are the arguments of hangup, hold and resume.
type callIDArgs struct {
	CallID string `json:"call_id"`
}

// hangup ends a call in any state: connected, being placed or answered, or
// ringing here (declined).
func (b *Bot) hangup(ctx context.Context, a callIDArgs) (Result, error) {
	b.mu.Lock()
	e := b.calls[a.CallID]
	var in *client.Incoming
	switch {
	case e == nil:
		b.mu.Unlock()
		return nil, errNoCall(a.CallID)
	case e.call != nil:
		e.call.Hangup("hangup")
	case e.cancel != nil:
		e.cancel()
	case e.in != nil && !e.claimed:
		e.claimed, in = true, e.in
	}
	b.mu.Unlock()
	if in != nil {
		in.Decline("declined")
		b.forget(a.CallID)
		close(e.taken)
	}
	return Result{"call_id": a.CallID, "peer": e.peer}, nil
}

// connectedCall returns the connected call id.
func (b *Bot) connectedCall(id string) (*client.Call, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.calls[id]
	switch {
	case e == nil:
		return nil, errNoCall(id)
	case e.call == nil:
		return nil, fmt.Errorf("call %s is not connected", id)
	}
	return e.call, nil
}

func (b *Bot) hold(ctx context.Context, a callIDArgs) (Result, error) {
	return b.setHold(a.CallID, true)
}

func (b *Bot) resume(ctx context.Context, a callIDArgs) (Result, error) {
	return b.setHold(a.CallID, false)
}

func (b *Bot) setHold(id string, on bool) (Result, error) {
	call, err := b.connectedCall(id)
	if err != nil {
		return nil, err
	}
	call.Hold(on)
	return Result{"call_id": id, "peer": call.Peer}, nil
}

// muteArgs are the arguments of mute.
type muteArgs struct {
	CallID string `json:"call_id"`
	// On mutes (default) or, false, unmutes.
	On *bool `json:"on"`
}

func (b *Bot) mute(ctx context.Context, a muteArgs) (Result, error) {
	call, err := b.connectedCall(a.CallID)
	if err != nil {
		return nil, err
	}
	on := a.On == nil || *a.On
	call.SetMuted(on)
	return Result{"call_id": a.CallID, "peer": call.Peer, "muted": on}, nil
}

// chatArgs are the arguments of chat: a message to Peer, or to Group
// (its name, id, or a prefix of its id of 6 or more characters), one of
// the two.
type chatArgs struct {
	Peer  string `json:"peer"`
	Group string `json:"group"`
	Text  string `json:"text"`
}

// chat sends a message; its result comes once a device of the peer has it,
// or it waits in their mailbox — for a group, once every other member has
// it on a device or in a mailbox, or could not be reached.
func (b *Bot) chat(ctx context.Context, a chatArgs) (Result, error) {
	switch {
	case a.Peer == "" && a.Group == "":
		return nil, errors.New("missing peer or group")
	case a.Peer != "" && a.Group != "":
		return nil, errors.New("peer and group: give one of them")
	case a.Group != "":
		g, err := b.s.Group(a.Group)
		if err != nil {
			return nil, err
		}
		res, err := b.s.SendGroupMessage(ctx, g.ID, a.Text)
		if err != nil {
			return nil, err
		}
		failed := res.Failed
		if failed == nil {
			failed = map[string]string{}
		}
		return Result{"group": g.ID, "message_id": res.ID, "members": res.Members, "delivered": res.Delivered,
			"stored": res.Stored, "failed": failed}, nil
	}
	res, err := b.s.SendMessage(ctx, a.Peer, a.Text)
	if err != nil {
		return nil, err
	}
	return Result{"peer": a.Peer, "message_id": res.ID, "delivered": res.Delivered, "stored": res.Stored}, nil
}

// readArgs are the arguments of read: the ids of messages from peer (all
// of theirs still unread when empty).
type readArgs struct {
	Peer string   `json:"peer"`
	IDs  []string `json:"ids"`
}

// read tells peer their messages were read (a read receipt); the result
// lists the ids it acknowledged (none new: an empty list).
func (b *Bot) read(ctx context.Context, a readArgs) (Result, error) {
	ids, err := b.s.SendRead(ctx, a.Peer, a.IDs)
	if err != nil {
		return nil, err
	}
	if ids == nil {
		ids = []string{}
	}
	return Result{"peer": a.Peer, "ids": ids}, nil
}

// typingArgs are the arguments of typing: Active (default true) says the
// bot types; false, that it stopped.
type typingArgs struct {
	Peer   string `json:"peer"`
	Active *bool  `json:"active"`
}

// typing tells peer the bot is typing (or stopped); sent is false when the
// rate limit skipped it or peer is offline.
func (b *Bot) typing(ctx context.Context, a typingArgs) (Result, error) {
	active := a.Active == nil || *a.Active
	sent, err := b.s.SendTyping(ctx, a.Peer, active)
	if err != nil {
		return nil, err
	}
	return Result{"peer": a.Peer, "active": active, "sent": sent}, nil
}

// contactOps are the operations of the contacts command.
var contactOps = map[string]func(*client.Session, context.Context, string) (string, error){
	"add":    (*client.Session).AddContact,
	"accept": (*client.Session).AcceptContact,
	"remove": (*client.Session).DeclineContact,
}

// contactsArgs are the arguments of contacts.
type contactsArgs struct {
	// Op is add (ask, or accept when they asked), accept (their request)
	// or remove (decline their request, withdraw ours, or remove them).
	Op   string `json:"op"`
	Peer string `json:"peer"`
}

func (b *Bot) contacts(ctx context.Context, a contactsArgs) (Result, error) {
	op, ok := contactOps[a.Op]
	if !ok {
		return nil, fmt.Errorf("op %q: must be one of %s", a.Op, strings.Join(slices.Sorted(maps.Keys(contactOps)), ", "))
	}
	state, err := op(b.s, ctx, a.Peer)
	if err != nil {
		return nil, err
	}
	return Result{"op": a.Op, "peer": a.Peer, "state": state}, nil
}

// statusArgs are the arguments of status.
type statusArgs struct {
	Status string `json:"status"`
}

func (b *Bot) status(ctx context.Context, a statusArgs) (Result, error) {
	if err := b.s.SetStatus(ctx, a.Status); err != nil {
		return nil, err
	}
	return Result{"status": a.Status}, nil
}

// groupArgs are the arguments of group. Group is a group's name, id, or a
// prefix of its id of 6 or more characters.
type groupArgs struct {
	Op      string   `json:"op"`
	Group   string   `json:"group"`
	Name    string   `json:"name"`
	User    string   `json:"user"`
	Members []string `json:"members"`
}

// groupOps are the operations of the group command: the fields each needs
// and the others it takes, and what it does.
var groupOps = map[string]struct {
	need, take []string
	run        func(s *client.Session, ctx context.Context, a groupArgs) (client.GroupInfo, error)
}{
	"create": {[]string{"name"}, []string{"members"}, func(s *client.Session, ctx context.Context, a groupArgs) (client.GroupInfo, error) {
		return s.CreateGroup(ctx, a.Name, a.Members)
	}},
	"add": {[]string{"group", "user"}, nil, func(s *client.Session, ctx context.Context, a groupArgs) (client.GroupInfo, error) {
		return s.GroupAdd(ctx, a.Group, a.User)
	}},
	"remove": {[]string{"group", "user"}, nil, func(s *client.Session, ctx context.Context, a groupArgs) (client.GroupInfo, error) {
		return s.GroupRemove(ctx, a.Group, a.User)
	}},
	"admin": {[]string{"group", "user"}, nil, func(s *client.Session, ctx context.Context, a groupArgs) (client.GroupInfo, error) {
		return s.GroupMakeAdmin(ctx, a.Group, a.User)
	}},
	"rename": {[]string{"group", "name"}, nil, func(s *client.Session, ctx context.Context, a groupArgs) (client.GroupInfo, error) {
		return s.GroupRename(ctx, a.Group, a.Name)
	}},
	"leave": {[]string{"group"}, nil, func(s *client.Session, ctx context.Context, a groupArgs) (client.GroupInfo, error) {
		return s.GroupLeave(ctx, a.Group)
	}},
	"info": {[]string{"group"}, nil, func(s *client.Session, ctx context.Context, a groupArgs) (client.GroupInfo, error) {
		return s.Group(a.Group)
	}},
	"list": {},
}

// group creates, changes, shows or lists groups. The result of list is
// op and groups (each id, name, members, admins, member); of the others,
// op and the group as it is then: group (its id), name, members, admins,
// member.
func (b *Bot) group(ctx context.Context, a groupArgs) (Result, error) {
	op, ok := groupOps[a.Op]
	if !ok {
		return nil, fmt.Errorf("op %q: must be one of %s", a.Op, strings.Join(slices.Sorted(maps.Keys(groupOps)), ", "))
	}
	given := map[string]bool{"group": a.Group != "", "name": a.Name != "", "user": a.User != "", "members": a.Members != nil}
	for _, f := range op.need {
		if !given[f] {
			return nil, fmt.Errorf("op %s: missing %s", a.Op, f)
		}
	}
	for _, f := range slices.Sorted(maps.Keys(given)) {
		if given[f] && !slices.Contains(op.need, f) && !slices.Contains(op.take, f) {
			return nil, fmt.Errorf("op %s takes no %s", a.Op, f)
		}
	}
	if a.Op == "list" {
		gs, err := b.s.Groups()
		if err != nil {
			return nil, err
		}
		out := make([]client.GroupInfo, 0, len(gs))
		for _, g := range gs {
			g.Members, g.Admins = nonNil(g.Members), nonNil(g.Admins)
			out = append(out, g)
		}
		return Result{"op": a.Op, "groups": out}, nil
	}
	g, err := op.run(b.s, ctx, a)
	if err != nil {
		return nil, err
	}
	return Result{"op": a.Op, "group": g.ID, "name": g.Name, "members": nonNil(g.Members), "admins": nonNil(g.Admins), "member": g.Member}, nil
}

// nonNil returns s, or an empty list for nil (JSON [], not null).
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
