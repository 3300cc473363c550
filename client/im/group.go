package im

// Groups. A group's membership is kept by its members' devices, not by a
// server: it is the replay of a log of signed operations ([GroupOp]), and
// every device that holds the same operations computes the same state
// ([Replay]). Operations and group messages travel inside ordinary
// envelopes of kind [KindGroup], sealed to one member at a time, so a
// supernode, a relay or the login server sees neither the group's name,
// its members list nor its messages — only that an envelope went from one
// user to another. See docs/protocol.md ("Groups").
//
// The order: operations sort by (Clock, ID). Clock is a Lamport clock: an
// author gives a new operation one more than the highest clock it knows in
// the group; ID is a hash of the signed operation, so ties between
// concurrent operations fall the same way on every device. Replay applies
// the operations in that order, each checked against the state before it:
// an operation whose author is not allowed to make it (then) changes
// nothing, but stays in the log, because an operation that arrives later
// may sort before it.
//
// The rules (By is the operation's author):
//
//   - create: the first operation; its ID is the group's id. By becomes a
//     member and admin, Members become members, Name is the name.
//   - add Target: By is an admin, Target is not a member, the group has
//     fewer than MaxGroupMembers.
//   - remove Target: By is an admin, Target is a member other than By.
//   - leave: By is a member. When the last admin leaves, the member who
//     joined first becomes an admin.
//   - rename Name: By is an admin.
//   - admin Target: By is an admin, Target is a member.

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/loginapi"
)

// KindGroup is the envelope kind of everything a group carries: messages,
// operations, and logs sent to bring a device up to date. Its body is a
// [GroupBody].
const KindGroup = "group"

// GroupOpVersion is the version of [GroupOp].
const GroupOpVersion = 1

// GroupOpContext is the signature context of group operations.
const GroupOpContext = "parley-group-op-v1"

// GroupOpBytesPrefix is the first field of an operation's signed bytes
// ([GroupOp.signedBytes]); GroupEnvelopePrefix starts what the envelope id
// of a group message hashes ([GroupEnvelopeID]).
const (
	GroupOpBytesPrefix  = "parley-group-op"
	GroupEnvelopePrefix = "parley-group-env"
)

// How a device sends to a group (client/group.go; the page does the same):
// at most GroupFanOut members at a time, operations in envelopes of at most
// MaxOpsChunk bytes of JSON, and at most MaxHeldMessages messages held for
// a sender not (yet) known as a member.
const (
	GroupFanOut     = 8
	MaxOpsChunk     = 48 << 10
	MaxHeldMessages = 1000
)

// Operation types.
const (
	OpCreate = "create"
	OpAdd    = "add"
	OpRemove = "remove"
	OpLeave  = "leave"
	OpRename = "rename"
	OpAdmin  = "admin"
)

// Group limits.
const (
	// MaxGroupMembers caps a group's members, its creator included.
	MaxGroupMembers = 100
	// MaxGroupOps caps the operations of one group a device keeps; an
	// operation beyond it is refused.
	MaxGroupOps = 2000
	// MaxGroupName caps a group's name, in bytes of UTF-8.
	MaxGroupName = 200
	// MaxGroupClock caps an operation's clock, so that one operation
	// cannot exhaust the counter.
	MaxGroupClock = 1 << 40
	// GroupPeerPrefix starts the history's peer of a group conversation:
	// "#" and the group id (user names cannot start with it).
	GroupPeerPrefix = "#"
)

// GroupOp is one signed change of a group's membership or name. Byte
// fields are standard base64 in JSON.
//
//   - V: [GroupOpVersion].
//   - Group: the group id (32 hex characters); empty in a create.
//   - Clock: the Lamport clock, 1 for a create, 2 to MaxGroupClock after.
//   - Type: one of the Op constants.
//   - By, Device, Credential: the author, their device's Ed25519 key and its
//     login-server credential, valid at TS.
//   - TS: when it was made, Unix milliseconds.
//   - Target: the user added, removed or made admin.
//   - Name: the name (create, rename), 1 to MaxGroupName bytes, no control
//     characters.
//   - Members: the other first members (create), at most MaxGroupMembers-1.
//   - Passes: a login-server pass ([loginapi.Pass]) signed by By for each
//     user the operation adds (Target, or By and Members in a create), so
//     that every member can reach them.
//   - Nonce: 16 random bytes (create), so that two groups never share an id.
//   - Sig: Ed25519 by Device, context [GroupOpContext], over
//     [GroupOp.signedBytes].
//
// Its ID is the first 16 bytes of SHA-256 of the signed bytes, in hex.
type GroupOp struct {
	V          int               `json:"v"`
	Group      string            `json:"group,omitempty"`
	Clock      int64             `json:"clock"`
	Type       string            `json:"type"`
	By         string            `json:"by"`
	Device     ed25519.PublicKey `json:"device"`
	Credential string            `json:"credential"`
	TS         int64             `json:"ts"`
	Target     string            `json:"target,omitempty"`
	Name       string            `json:"name,omitempty"`
	Members    []string          `json:"members,omitempty"`
	Passes     []loginapi.Pass   `json:"passes,omitempty"`
	Nonce      []byte            `json:"nonce,omitempty"`
	Sig        []byte            `json:"sig"`
}

// signedBytes is what Sig covers: "parley-group-op", then v, group, clock,
// type, by, device, credential, ts, target, name, the number of members (4
// bytes) and each member, the number of passes (4 bytes) and each pass's
// user, by, device and sig, and nonce; each a length-prefixed field
// (4 bytes, big-endian), numbers as 8 bytes big-endian.
func (o *GroupOp) signedBytes() []byte {
	var n [8]byte
	num := func(m []byte, v int64) []byte {
		binary.BigEndian.PutUint64(n[:], uint64(v))
		return appendField(m, n[:])
	}
	m := appendField(nil, []byte(GroupOpBytesPrefix))
	m = num(m, int64(o.V))
	m = appendField(m, []byte(o.Group))
	m = num(m, o.Clock)
	m = appendField(m, []byte(o.Type))
	m = appendField(m, []byte(o.By))
	m = appendField(m, o.Device)
	m = appendField(m, []byte(o.Credential))
	m = num(m, o.TS)
	m = appendField(m, []byte(o.Target))
	m = appendField(m, []byte(o.Name))
	m = binary.BigEndian.AppendUint32(m, uint32(len(o.Members)))
	for _, u := range o.Members {
		m = appendField(m, []byte(u))
	}
	m = binary.BigEndian.AppendUint32(m, uint32(len(o.Passes)))
	for _, p := range o.Passes {
		m = appendField(m, []byte(p.User))
		m = appendField(m, []byte(p.By))
		m = appendField(m, p.Device)
		m = appendField(m, p.Sig)
	}
	return appendField(m, o.Nonce)
}

// ID returns the operation's id: hex of the first 16 bytes of SHA-256 of
// its signed bytes. A create's id is its group's id.
func (o *GroupOp) ID() string {
	h := sha256.Sum256(o.signedBytes())
	return hex.EncodeToString(h[:idBytes])
}

// GroupOf returns the group the operation belongs to.
func (o *GroupOp) GroupOf() string {
	if o.Type == OpCreate {
		return o.ID()
	}
	return o.Group
}

// CheckGroupName reports whether name can name a group.
func CheckGroupName(name string) error {
	if name == "" || len(name) > MaxGroupName || !utf8.ValidString(name) || strings.TrimSpace(name) == "" {
		return ErrBadGroupName
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		return fmt.Errorf("%w: control characters", ErrBadGroupName)
	}
	return nil
}

// IsGroupID reports whether id has the form of a group id.
func IsGroupID(id string) bool { return validID(id) }

// GroupPeer returns the history peer of the group conversation id.
func GroupPeer(id string) string { return GroupPeerPrefix + id }

// check checks the operation's form (not its signature).
func (o *GroupOp) check() error {
	bad := func(what string) error { return fmt.Errorf("group operation: %s: %w", what, ErrBadGroupOp) }
	switch {
	case o.V != GroupOpVersion:
		return bad(fmt.Sprintf("version %d", o.V))
	case identity.CheckUser(o.By) != nil:
		return bad("by")
	case len(o.Device) != ed25519.PublicKeySize:
		return bad("device")
	case o.Credential == "" || len(o.Credential) > identity.MaxTokenLen:
		return bad("credential")
	case o.TS < 0:
		return bad("ts")
	case len(o.Sig) != ed25519.SignatureSize:
		return bad("signature")
	case len(o.Members) > MaxGroupMembers-1 || len(o.Passes) > MaxGroupMembers:
		return bad("too many members")
	}
	adds := map[string]bool{}
	switch o.Type {
	case OpCreate:
		if o.Group != "" || o.Clock != 1 || len(o.Nonce) != idBytes || o.Target != "" {
			return bad("create")
		}
		if err := CheckGroupName(o.Name); err != nil {
			return bad("name")
		}
		adds[o.By] = true
		for _, u := range o.Members {
			if identity.CheckUser(u) != nil || adds[u] {
				return bad("member")
			}
			adds[u] = true
		}
	case OpAdd, OpRemove, OpAdmin, OpLeave, OpRename:
		if !validID(o.Group) || o.Clock < 2 || o.Clock > MaxGroupClock || len(o.Members) > 0 || len(o.Nonce) > 0 {
			return bad(o.Type)
		}
		switch o.Type {
		case OpLeave:
			if o.Target != "" || o.Name != "" {
				return bad("leave")
			}
		case OpRename:
			if o.Target != "" || CheckGroupName(o.Name) != nil {
				return bad("rename")
			}
		default:
			if identity.CheckUser(o.Target) != nil || o.Name != "" {
				return bad("target")
			}
			if o.Type == OpAdd {
				adds[o.Target] = true
			}
		}
	default:
		return bad("type")
	}
	// A pass for each user added, signed by the author, and no other.
	if len(o.Passes) != len(adds) {
		return bad("passes")
	}
	for _, p := range o.Passes {
		if !adds[p.User] || p.By != o.By || p.Verify() != nil {
			return bad("pass")
		}
		delete(adds, p.User)
	}
	return nil
}

// VerifyGroupOp checks an operation that came from another device: its
// form, that its credential is the login server's (loginKey), was valid at
// TS and names By and Device, and that Device signed it.
func VerifyGroupOp(o *GroupOp, loginKey ed25519.PublicKey) error {
	if err := o.check(); err != nil {
		return err
	}
	cred, err := identity.Verify(loginKey, o.Credential, time.UnixMilli(o.TS))
	if err != nil {
		return fmt.Errorf("group operation by %s: %w: %w", o.By, ErrBadGroupOp, err)
	}
	if cred.User != o.By || !SameDevice(cred.Key(), o.Device) {
		return fmt.Errorf("group operation by %s: credential of %s: %w", o.By, cred.User, ErrBadGroupOp)
	}
	if !identity.VerifyContext(o.Device, GroupOpContext, o.signedBytes(), o.Sig) {
		return fmt.Errorf("group operation by %s: %w", o.By, ErrGroupOpSignature)
	}
	return nil
}

// OpDraft is an operation to sign.
type OpDraft struct {
	// Group is the group id (empty for a create).
	Group string
	// Clock is one more than the highest clock the author knows (1 for a
	// create).
	Clock  int64
	Type   string
	Target string
	Name   string
	// Members are the other first members of a create.
	Members []string
	// Time is when it was made; the zero time means now.
	Time time.Time
}

// SignGroupOp makes and signs an operation by s, with a pass signed by s's
// device for each user it adds.
func SignGroupOp(s Sender, d OpDraft) (*GroupOp, error) {
	t := d.Time
	if t.IsZero() {
		t = time.Now()
	}
	o := &GroupOp{V: GroupOpVersion, Group: d.Group, Clock: d.Clock, Type: d.Type, By: s.User,
		Device: s.Device.Public().(ed25519.PublicKey), Credential: s.Credential, TS: t.UnixMilli(),
		Target: d.Target, Name: d.Name, Members: d.Members}
	switch d.Type {
	case OpCreate:
		o.Nonce = make([]byte, idBytes)
		rand.Read(o.Nonce)
		for _, u := range append([]string{s.User}, d.Members...) {
			o.Passes = append(o.Passes, loginapi.NewPass(u, s.User, s.Device))
		}
	case OpAdd:
		o.Passes = []loginapi.Pass{loginapi.NewPass(d.Target, s.User, s.Device)}
	}
	o.Sig = identity.SignContext(s.Device, GroupOpContext, o.signedBytes())
	if err := o.check(); err != nil {
		return nil, err
	}
	return o, nil
}

// MaxGroupOpsPerAuthor caps the operations of one author a device keeps in
// a group's log, so that no member (or former member) can fill it.
const MaxGroupOpsPerAuthor = 500

// Admit returns the operations of batch a device keeps, given the log it
// holds: those whose author is the group's creator or was added by someone
// who is (an add by a user never added counts for nothing, so an outsider
// who learns a group's id cannot write to its log), up to
// MaxGroupOpsPerAuthor per author. An operation it leaves out because its
// author's add has not come yet comes again with a later log.
func Admit(log, batch []*GroupOp) []*GroupOp {
	all := append(slices.Clone(log), batch...)
	ever := map[string]bool{}
	for _, o := range all {
		if o.Type == OpCreate {
			ever[o.By] = true
			for _, u := range o.Members {
				ever[u] = true
			}
		}
	}
	for grew := true; grew; {
		grew = false
		for _, o := range all {
			if o.Type == OpAdd && ever[o.By] && !ever[o.Target] {
				ever[o.Target], grew = true, true
			}
		}
	}
	per := map[string]int{}
	for _, o := range log {
		per[o.By]++
	}
	var out []*GroupOp
	for _, o := range batch {
		if ever[o.By] && per[o.By] < MaxGroupOpsPerAuthor {
			per[o.By]++
			out = append(out, o)
		}
	}
	return out
}

// GroupState is a group as its operations leave it.
type GroupState struct {
	// ID is the group id; Name its name.
	ID   string
	Name string
	// Members in the order they joined; Admins, a subset, in the order
	// they became admins.
	Members []string
	Admins  []string
	// Clock is the highest clock of the log; Ops how many operations it
	// holds; Digest a hash of their ids (two devices with the same digest
	// hold the same log).
	Clock  int64
	Ops    int
	Digest string
	// Passes are, for each user ever added (members and former members:
	// a removed user is still sent the operation that removed them), the
	// pass of the operation that added them.
	Passes map[string]loginapi.Pass
	// Applied are the operations that changed the state, in order; the
	// others were not allowed when they came in the order.
	Applied []*GroupOp
}

// IsMember reports whether user is a member.
func (g *GroupState) IsMember(user string) bool { return slices.Contains(g.Members, user) }

// IsAdmin reports whether user is an admin.
func (g *GroupState) IsAdmin(user string) bool { return slices.Contains(g.Admins, user) }

// SortOps sorts operations in replay order: by clock, then id.
func SortOps(ops []*GroupOp) {
	ids := make(map[*GroupOp]string, len(ops))
	for _, o := range ops {
		ids[o] = o.ID()
	}
	slices.SortFunc(ops, func(a, b *GroupOp) int {
		if a.Clock != b.Clock {
			if a.Clock < b.Clock {
				return -1
			}
			return 1
		}
		return strings.Compare(ids[a], ids[b])
	})
}

// Digest returns the hash of a log: SHA-256 over the concatenation of the
// sorted ids (as their 32 hex characters), the first 16 bytes in hex.
func Digest(ops []*GroupOp) string {
	ids := make([]string, 0, len(ops))
	for _, o := range ops {
		ids = append(ids, o.ID())
	}
	slices.Sort(ids)
	h := sha256.New()
	for _, id := range ids {
		h.Write([]byte(id))
	}
	return hex.EncodeToString(h.Sum(nil)[:idBytes])
}

// Replay computes the state of group id from its verified operations (in
// any order; those of other groups are ignored). It fails with
// ErrUnknownGroup when the log lacks the group's create.
func Replay(id string, ops []*GroupOp) (*GroupState, error) {
	var log []*GroupOp
	for _, o := range ops {
		if o.GroupOf() == id {
			log = append(log, o)
		}
	}
	SortOps(log)
	if len(log) == 0 || log[0].Type != OpCreate {
		return nil, fmt.Errorf("group %s: no create: %w", id, ErrUnknownGroup)
	}
	g := &GroupState{ID: id, Passes: map[string]loginapi.Pass{}, Ops: len(log), Digest: Digest(log)}
	passOf := func(o *GroupOp, u string) {
		for _, p := range o.Passes {
			if p.User == u {
				g.Passes[u] = p
			}
		}
	}
	for i, o := range log {
		g.Clock = max(g.Clock, o.Clock)
		if i == 0 {
			g.Name = o.Name
			g.Members = append([]string{o.By}, o.Members...)
			g.Admins = []string{o.By}
			for _, u := range g.Members {
				passOf(o, u)
			}
			g.Applied = append(g.Applied, o)
			continue
		}
		if !g.allowed(o) {
			continue
		}
		switch o.Type {
		case OpAdd:
			g.Members = append(g.Members, o.Target)
			passOf(o, o.Target)
		case OpRemove:
			g.drop(o.Target)
		case OpLeave:
			g.drop(o.By)
			if len(g.Admins) == 0 && len(g.Members) > 0 {
				g.Admins = []string{g.Members[0]}
			}
		case OpRename:
			g.Name = o.Name
		case OpAdmin:
			g.Admins = append(g.Admins, o.Target)
		}
		g.Applied = append(g.Applied, o)
	}
	return g, nil
}

// allowed reports whether o may apply to the state.
func (g *GroupState) allowed(o *GroupOp) bool {
	switch o.Type {
	case OpLeave:
		return g.IsMember(o.By)
	case OpRename:
		return g.IsAdmin(o.By)
	case OpAdd:
		return g.IsAdmin(o.By) && !g.IsMember(o.Target) && len(g.Members) < MaxGroupMembers
	case OpRemove:
		return g.IsAdmin(o.By) && g.IsMember(o.Target) && o.Target != o.By
	case OpAdmin:
		return g.IsAdmin(o.By) && g.IsMember(o.Target) && !g.IsAdmin(o.Target)
	}
	return false // a second create
}

func (g *GroupState) drop(u string) {
	g.Members = slices.DeleteFunc(g.Members, func(m string) bool { return m == u })
	g.Admins = slices.DeleteFunc(g.Admins, func(m string) bool { return m == u })
}

// Check reports whether by may make an operation of type typ on target (or
// name) now: ErrNotMember, ErrNotAdmin, ErrGroupFull, or ErrBadGroupOp for
// one that would change nothing.
func (g *GroupState) Check(by, typ, target string) error {
	if !g.IsMember(by) {
		return fmt.Errorf("group %s: %s: %w", g.ID, by, ErrNotMember)
	}
	switch typ {
	case OpLeave:
		return nil
	case OpRename, OpAdd, OpRemove, OpAdmin:
		if !g.IsAdmin(by) {
			return fmt.Errorf("group %s: %s: %w", g.ID, by, ErrNotAdmin)
		}
	}
	switch typ {
	case OpAdd:
		if g.IsMember(target) {
			return fmt.Errorf("group %s: %s is already a member: %w", g.ID, target, ErrBadGroupOp)
		}
		if len(g.Members) >= MaxGroupMembers {
			return fmt.Errorf("group %s: %d members: %w", g.ID, len(g.Members), ErrGroupFull)
		}
	case OpRemove, OpAdmin:
		if !g.IsMember(target) {
			return fmt.Errorf("group %s: %s: %w", g.ID, target, ErrNotMember)
		}
		if typ == OpRemove && target == by {
			return fmt.Errorf("group %s: remove yourself with leave: %w", g.ID, ErrBadGroupOp)
		}
		if typ == OpAdmin && g.IsAdmin(target) {
			return fmt.Errorf("group %s: %s is already an admin: %w", g.ID, target, ErrBadGroupOp)
		}
	}
	return nil
}
