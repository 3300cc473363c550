package client

// Group chat on a Session (docs/protocol.md, "Groups"). A group's state is
// the replay of its signed operations (client/im, group.go), which this
// device keeps in its history; no server holds or can change it.
//
// Changing a group (CreateGroup, GroupAdd, GroupRemove, GroupLeave,
// GroupRename, GroupMakeAdmin): the operation is checked against the
// state, signed, stored, and sent — in a group envelope, one per user — to
// every member before and after it, to the user it adds or removes, and to
// this user's other devices; a user it adds, and this user's other
// devices, get the whole log instead.
//
// Sending (SendGroupMessage): one envelope per member, sealed to that
// member's devices, each carried as a 1:1 message is (data channel,
// supernodes, mailbox), at most groupFanOut at a time; one more to this
// user's other devices. Every copy has the same message id, so each
// device stores it once.
//
// Members who are not contacts reach each other with the login-server pass
// ([loginapi.Pass]) the operation that added them carries.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parley/parley/client/im"
	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/loginapi"
)

// groupFanOut caps the members one group send reaches at a time;
// maxOpsChunk the JSON of the operations one group envelope carries (a log
// over it goes in several).
const (
	groupFanOut = im.GroupFanOut
	maxOpsChunk = im.MaxOpsChunk
)

// GroupInfo is a group as this device knows it.
type GroupInfo struct {
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Members []string `json:"members"`
	Admins  []string `json:"admins"`
	// Member: this user is a member (false once removed or gone).
	Member bool `json:"member"`
}

// GroupSendResult says how far a group message got.
type GroupSendResult struct {
	// ID is the message's id.
	ID string `json:"id"`
	// Members is how many other members it was sent to; Delivered how
	// many of them a device acknowledged; Stored how many have it waiting
	// in a mailbox.
	Members   int `json:"members"`
	Delivered int `json:"delivered"`
	Stored    int `json:"stored"`
	// Failed names the members it could not reach, with why.
	Failed map[string]string `json:"failed,omitempty"`
}

// groups is the group half of the messenger.
type groups struct {
	mu     sync.Mutex // merges, one at a time
	states map[string]*im.GroupState
	loaded bool
	// synced: when this device last sent its log of a group to a user.
	synced map[string]time.Time
}

func info(g *im.GroupState, me string) GroupInfo {
	return GroupInfo{ID: g.ID, Name: g.Name, Members: slices.Clone(g.Members), Admins: slices.Clone(g.Admins), Member: g.IsMember(me)}
}

// loadGroupsLocked replays every stored log once.
func (m *messenger) loadGroupsLocked() error {
	if m.g.loaded {
		return nil
	}
	ids, err := m.hist.Groups()
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := m.freshLocked(id); err != nil {
			return err
		}
	}
	m.g.loaded = true
	return nil
}

// freshLocked replays group id again when the history holds operations the
// state has not seen: stored by another process on this home (a one-shot
// `parley group` beside a running conversation).
func (m *messenger) freshLocked(id string) error {
	n, err := m.hist.GroupOpsCount(id)
	if err != nil {
		return err
	}
	if g := m.g.states[id]; n == 0 || (g != nil && g.Ops == n) {
		return nil
	}
	ops, err := m.hist.GroupOps(id)
	if err != nil {
		return err
	}
	if g, err := im.Replay(id, ops); err == nil {
		m.g.states[id] = g
	}
	return nil
}

// group returns the state of group id, or nil.
func (m *messenger) group(id string) (*im.GroupState, error) {
	m.g.mu.Lock()
	defer m.g.mu.Unlock()
	if err := m.loadGroupsLocked(); err != nil {
		return nil, err
	}
	if err := m.freshLocked(id); err != nil {
		return nil, err
	}
	return m.g.states[id], nil
}

// Groups lists the groups this device knows, by name.
func (s *Session) Groups() ([]GroupInfo, error) {
	m := s.im
	m.g.mu.Lock()
	defer m.g.mu.Unlock()
	// Every stored group, also one another process stored since the load.
	ids, err := m.hist.Groups()
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if err := m.freshLocked(id); err != nil {
			return nil, err
		}
	}
	m.g.loaded = true
	var out []GroupInfo
	for _, g := range m.g.states {
		out = append(out, info(g, s.user))
	}
	sortGroups(out)
	return out, nil
}

// Group finds a group by its id, a prefix of its id (at least 6
// characters), or its name; ErrUnknownGroup if none, ErrAmbiguousGroup if
// several.
func (s *Session) Group(ref string) (GroupInfo, error) {
	gs, err := s.Groups()
	if err != nil {
		return GroupInfo{}, err
	}
	return FindGroup(gs, ref)
}

// GroupsIn lists the groups the history h of user me holds, by name (to
// read them without going online, as `parley group list` does).
func GroupsIn(h *im.History, me string) ([]GroupInfo, error) {
	ids, err := h.Groups()
	if err != nil {
		return nil, err
	}
	var out []GroupInfo
	for _, id := range ids {
		ops, err := h.GroupOps(id)
		if err != nil {
			return nil, err
		}
		if g, err := im.Replay(id, ops); err == nil {
			out = append(out, info(g, me))
		}
	}
	sortGroups(out)
	return out, nil
}

func sortGroups(gs []GroupInfo) {
	slices.SortFunc(gs, func(a, b GroupInfo) int {
		return cmp.Or(strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)), strings.Compare(a.ID, b.ID))
	})
}

// FindGroup finds ref in gs as [Session.Group] does.
func FindGroup(gs []GroupInfo, ref string) (GroupInfo, error) {
	var found []GroupInfo
	for _, g := range gs {
		if g.ID == ref || g.Name == ref || (len(ref) >= 6 && strings.HasPrefix(g.ID, ref)) {
			found = append(found, g)
		}
	}
	switch len(found) {
	case 0:
		return GroupInfo{}, fmt.Errorf("client: group %q: %w", ref, ErrUnknownGroup)
	case 1:
		return found[0], nil
	}
	return GroupInfo{}, fmt.Errorf("client: group %q: %d groups match (use the id): %w", ref, len(found), ErrAmbiguousGroup)
}

// CreateGroup creates a group named name with this user (its admin) and
// members, who must be this user's contacts, and returns it.
func (s *Session) CreateGroup(ctx context.Context, name string, members []string) (GroupInfo, error) {
	m := s.im
	if err := im.CheckGroupName(name); err != nil {
		return GroupInfo{}, fmt.Errorf("client: group create: %w", err)
	}
	members = slices.Clone(members)
	slices.Sort(members)
	members = slices.Compact(slices.DeleteFunc(members, func(u string) bool { return u == s.user }))
	if len(members) > im.MaxGroupMembers-1 {
		return GroupInfo{}, fmt.Errorf("client: group create: %d members and you, at most %d: %w", len(members), im.MaxGroupMembers, ErrGroupFull)
	}
	for _, u := range members {
		if err := m.checkAddable(ctx, u); err != nil {
			return GroupInfo{}, fmt.Errorf("client: group create: %w", err)
		}
	}
	op, err := m.signOp(ctx, im.OpDraft{Clock: 1, Type: im.OpCreate, Name: name, Members: members})
	if err != nil {
		return GroupInfo{}, fmt.Errorf("client: group create: %w", err)
	}
	g, err := m.applyOwn(ctx, op, nil)
	if err != nil {
		return GroupInfo{}, fmt.Errorf("client: group create: %w", err)
	}
	return info(g, s.user), nil
}

// checkAddable checks that user can be added: a user this one can reach as
// a contact (the pass it signs for them must admit others).
func (m *messenger) checkAddable(ctx context.Context, user string) error {
	if err := identity.CheckUser(user); err != nil {
		return err
	}
	lc, cred, err := m.s.c.withCred(ctx)
	if err != nil {
		return err
	}
	if _, err := lc.Devices(ctx, cred, user); err != nil {
		switch {
		case errors.Is(err, loginapi.ErrUnknownUser):
			return fmt.Errorf("%s: %w", user, ErrUnknownUser)
		case errors.Is(err, loginapi.ErrNotContact):
			return fmt.Errorf("%s: only your contacts can be added: %w", user, ErrNotContact)
		}
		return err
	}
	return nil
}

// GroupAdd adds user, a contact of this user, to the group (admins only).
func (s *Session) GroupAdd(ctx context.Context, group, user string) (GroupInfo, error) {
	if err := s.im.checkAddable(ctx, user); err != nil {
		return GroupInfo{}, fmt.Errorf("client: group add: %w", err)
	}
	return s.groupOp(ctx, group, im.OpAdd, user, "")
}

// GroupRemove removes user from the group (admins only).
func (s *Session) GroupRemove(ctx context.Context, group, user string) (GroupInfo, error) {
	return s.groupOp(ctx, group, im.OpRemove, user, "")
}

// GroupLeave takes this user out of the group.
func (s *Session) GroupLeave(ctx context.Context, group string) (GroupInfo, error) {
	return s.groupOp(ctx, group, im.OpLeave, "", "")
}

// GroupRename renames the group (admins only).
func (s *Session) GroupRename(ctx context.Context, group, name string) (GroupInfo, error) {
	if err := im.CheckGroupName(name); err != nil {
		return GroupInfo{}, fmt.Errorf("client: group rename: %w", err)
	}
	return s.groupOp(ctx, group, im.OpRename, "", name)
}

// GroupMakeAdmin makes member user an admin of the group (admins only).
func (s *Session) GroupMakeAdmin(ctx context.Context, group, user string) (GroupInfo, error) {
	return s.groupOp(ctx, group, im.OpAdmin, user, "")
}

func (s *Session) groupOp(ctx context.Context, ref, typ, target, name string) (GroupInfo, error) {
	m := s.im
	gi, err := s.Group(ref)
	if err != nil {
		return GroupInfo{}, err
	}
	if target != "" {
		if err := identity.CheckUser(target); err != nil {
			return GroupInfo{}, fmt.Errorf("client: group %s: %w", typ, err)
		}
	}
	before, err := m.group(gi.ID)
	if err != nil {
		return GroupInfo{}, err
	}
	if err := before.Check(s.user, typ, target); err != nil {
		return GroupInfo{}, fmt.Errorf("client: group %s: %w", typ, err)
	}
	op, err := m.signOp(ctx, im.OpDraft{Group: gi.ID, Clock: before.Clock + 1, Type: typ, Target: target, Name: name})
	if err != nil {
		return GroupInfo{}, fmt.Errorf("client: group %s: %w", typ, err)
	}
	g, err := m.applyOwn(ctx, op, before)
	if err != nil {
		return GroupInfo{}, fmt.Errorf("client: group %s: %w", typ, err)
	}
	return info(g, s.user), nil
}

func (m *messenger) signOp(ctx context.Context, d im.OpDraft) (*im.GroupOp, error) {
	snd, err := m.sender(ctx)
	if err != nil {
		return nil, err
	}
	return im.SignGroupOp(snd, d)
}

// applyOwn stores an operation of this device and sends it: the whole log
// to a user it adds and to this user's other devices, the operation alone
// to everyone else it concerns.
func (m *messenger) applyOwn(ctx context.Context, op *im.GroupOp, before *im.GroupState) (*im.GroupState, error) {
	id := op.GroupOf()
	after, _, err := m.merge(id, []*im.GroupOp{op})
	if err != nil {
		return nil, err
	}
	log, err := m.hist.GroupOps(id)
	if err != nil {
		return nil, err
	}
	whole := map[string]bool{m.s.user: true}
	if op.Type == im.OpAdd {
		whole[op.Target] = true
	}
	if op.Type == im.OpCreate {
		for _, u := range op.Members {
			whole[u] = true
		}
	}
	to := slices.Clone(after.Members)
	if before != nil {
		to = append(to, before.Members...)
	}
	if op.Target != "" {
		to = append(to, op.Target)
	}
	to = append(to, m.s.user)
	slices.Sort(to)
	to = slices.Compact(to)
	m.fanOut(ctx, to, func(u string) error {
		ops := []*im.GroupOp{op}
		if whole[u] {
			ops = log
		}
		return m.sendOps(ctx, u, id, im.GroupOps, ops, after.Digest, false)
	})
	return after, nil
}

// sendOps sends ops of group id to user to, in as many envelopes as they
// need.
func (m *messenger) sendOps(ctx context.Context, to, id, typ string, ops []*im.GroupOp, digest string, reply bool) error {
	chunks := chunkOps(ops)
	if len(chunks) == 0 {
		chunks = [][]*im.GroupOp{nil} // a sync of an empty log asks for the sender's
	}
	for _, c := range chunks {
		if _, err := m.sendGroupBody(ctx, to, &im.GroupBody{Group: id, Type: typ, Ops: c, Digest: digest, Reply: reply}); err != nil {
			return err
		}
	}
	return nil
}

// chunkOps splits ops into runs whose JSON is at most maxOpsChunk.
func chunkOps(ops []*im.GroupOp) [][]*im.GroupOp {
	var out [][]*im.GroupOp
	var cur []*im.GroupOp
	size := 0
	for _, o := range ops {
		b, _ := json.Marshal(o)
		if len(cur) > 0 && size+len(b) > maxOpsChunk {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, o)
		size += len(b) + 1
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// sendGroupBody seals body to user to's devices (to this user's other
// devices when to is this user) and delivers it like a 1:1 message. With
// no device to send to (only this one), it does nothing.
func (m *messenger) sendGroupBody(ctx context.Context, to string, body *im.GroupBody) (SendResult, error) {
	devs, err := m.devicesOf(ctx, to, false)
	if err != nil {
		return SendResult{}, err
	}
	if to == m.s.user {
		devs = slices.DeleteFunc(slices.Clone(devs), func(d im.DeviceRecord) bool { return im.SameDevice(d.Key, m.me) })
		if len(devs) == 0 {
			return SendResult{}, nil
		}
	}
	snd, err := m.sender(ctx)
	if err != nil {
		return SendResult{}, err
	}
	env, err := im.SealGroup(snd, to, devs, body, time.Now())
	if err != nil {
		return SendResult{}, err
	}
	return m.deliver(ctx, env, devs, nil)
}

// fanOut runs send for every user of to, at most groupFanOut at a time, and
// returns the errors by user.
func (m *messenger) fanOut(ctx context.Context, to []string, send func(user string) error) map[string]error {
	var mu sync.Mutex
	errs := map[string]error{}
	sem := make(chan struct{}, groupFanOut)
	var wg sync.WaitGroup
	for _, u := range to {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := send(u); err != nil {
				if ctx.Err() == nil {
					m.s.c.log.Warn("sending to a group member", "to", u, "err", err)
				}
				mu.Lock()
				errs[u] = err
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// SendGroupMessage sends text to every member of the group and returns
// once each has it on a device or in a mailbox, or could not be reached.
// Errors: ErrUnknownGroup, ErrNotMember, the text's; on those nothing was
// sent or stored. A message that reached no member stays "sending", and
// the next session of this home sends it again.
func (s *Session) SendGroupMessage(ctx context.Context, ref, text string) (GroupSendResult, error) {
	m := s.im
	gi, err := s.Group(ref)
	if err != nil {
		return GroupSendResult{}, err
	}
	if !gi.Member {
		return GroupSendResult{}, fmt.Errorf("client: message to group %s: %w", gi.Name, ErrNotMember)
	}
	if err := im.CheckText(text); err != nil {
		return GroupSendResult{}, fmt.Errorf("client: message to group %s: %w", gi.Name, err)
	}
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	peer := im.GroupPeer(gi.ID)
	seq, err := m.hist.NextSeq(peer)
	if err != nil {
		return GroupSendResult{}, err
	}
	msg := im.Message{ID: im.NewMessageID(), Peer: peer, From: s.user, FromDevice: m.me, Seq: seq, TS: time.Now().UnixMilli(), Text: text}
	if err := m.hist.AddOutgoing(msg); err != nil {
		return GroupSendResult{}, err
	}
	return m.sendGroupMessage(ctx, gi.ID, msg)
}

// resendGroup sends again a group message of this device still "sending"
// (the session that sent it ended first).
func (m *messenger) resendGroup(ctx context.Context, id string, msg im.Message) error {
	m.sendMu.Lock()
	defer m.sendMu.Unlock()
	if st, _, err := m.hist.State(msg.Peer, im.DirOut, msg.ID); err != nil || st != im.StateSending {
		return err
	}
	_, err := m.sendGroupMessage(ctx, id, msg)
	return err
}

func (m *messenger) sendGroupMessage(ctx context.Context, id string, msg im.Message) (GroupSendResult, error) {
	g, err := m.group(id)
	if err != nil {
		return GroupSendResult{}, err
	}
	if g == nil || !g.IsMember(m.s.user) {
		return GroupSendResult{}, fmt.Errorf("client: message to group %s: %w", id, ErrNotMember)
	}
	res := GroupSendResult{ID: msg.ID}
	var mu sync.Mutex
	to := append(slices.DeleteFunc(slices.Clone(g.Members), func(u string) bool { return u == m.s.user }), m.s.user)
	res.Members = len(to) - 1
	errs := m.fanOut(ctx, to, func(u string) error {
		r, err := m.sendGroupBody(ctx, u, &im.GroupBody{Group: id, Type: im.GroupMessage, MID: msg.ID, Seq: msg.Seq, Text: msg.Text, Digest: g.Digest})
		if u != m.s.user {
			mu.Lock()
			if r.Delivered {
				res.Delivered++
			} else if r.Stored {
				res.Stored++
			}
			mu.Unlock()
		}
		return err
	})
	for u, err := range errs {
		if u == m.s.user {
			continue
		}
		if res.Failed == nil {
			res.Failed = map[string]string{}
		}
		res.Failed[u] = err.Error()
	}
	if res.Members > 0 && len(res.Failed) == res.Members {
		return res, fmt.Errorf("client: message to group %s: no member reached: %w", g.Name, ErrOffline)
	}
	if err := m.hist.MarkSent(msg.Peer, []string{msg.ID}); err != nil {
		return res, err
	}
	return res, nil
}

// GroupHistory returns the last limit messages of the group (all if limit
// ≤ 0), oldest first.
func (s *Session) GroupHistory(ref string, limit int) ([]im.Message, error) {
	gi, err := s.Group(ref)
	if err != nil {
		return nil, err
	}
	return s.im.hist.Conversation(im.GroupPeer(gi.ID), limit)
}

// passFor returns a pass that lets this user reach user, from a group both
// are in, or nil.
func (m *messenger) passFor(user string) *loginapi.Pass {
	m.g.mu.Lock()
	defer m.g.mu.Unlock()
	if m.loadGroupsLocked() != nil {
		return nil
	}
	for _, g := range m.g.states {
		if p, ok := g.Passes[user]; ok && g.IsMember(m.s.user) {
			return &p
		}
	}
	return nil
}

// LocalGroups lists the groups of the home's history, without going online
// (as `parley group list` does).
func (c *Client) LocalGroups() ([]GroupInfo, error) {
	if c.User() == "" {
		return nil, ErrNoUser
	}
	h, err := c.OpenHistory()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	return GroupsIn(h, c.User())
}

// LocalGroupHistory finds group ref in the home's history and returns it
// with its last limit messages (all if limit ≤ 0), without going online.
func (c *Client) LocalGroupHistory(ref string, limit int) (GroupInfo, []im.Message, error) {
	gs, err := c.LocalGroups()
	if err != nil {
		return GroupInfo{}, nil, err
	}
	g, err := FindGroup(gs, ref)
	if err != nil {
		return GroupInfo{}, nil, err
	}
	h, err := c.OpenHistory()
	if err != nil {
		return GroupInfo{}, nil, err
	}
	defer h.Close()
	ms, err := h.Conversation(im.GroupPeer(g.ID), limit)
	return g, ms, err
}
