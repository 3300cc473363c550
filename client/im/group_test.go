package im

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"testing"
)

// groupWorld: alice (the creator), bob, carol, dave, erin, one device each.
type groupWorld struct {
	*imWorld
	d1, e1 *testDevice
}

func newGroupWorld(t *testing.T) *groupWorld {
	w := &groupWorld{imWorld: newIMWorld(t)}
	w.d1, w.e1 = newTestDevice(t, w.loginPriv, "dave"), newTestDevice(t, w.loginPriv, "erin")
	return w
}

// op signs an operation by d at clock.
func (w *groupWorld) op(t *testing.T, d *testDevice, group string, clock int64, typ, target, name string) *GroupOp {
	t.Helper()
	o, err := SignGroupOp(d.sender, OpDraft{Group: group, Clock: clock, Type: typ, Target: target, Name: name, Time: imTestNow})
	if err != nil {
		t.Fatalf("%s %s %s: %v", d.user, typ, target, err)
	}
	if err := VerifyGroupOp(o, w.loginPub); err != nil {
		t.Fatalf("%s %s %s does not verify: %v", d.user, typ, target, err)
	}
	return o
}

func (w *groupWorld) create(t *testing.T, members ...string) *GroupOp {
	t.Helper()
	o, err := SignGroupOp(w.a1.sender, OpDraft{Clock: 1, Type: OpCreate, Name: "friends", Members: members, Time: imTestNow})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func replay(t *testing.T, id string, ops ...*GroupOp) *GroupState {
	t.Helper()
	g, err := Replay(id, ops)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGroupReplay(t *testing.T) {
	w := newGroupWorld(t)
	c := w.create(t, "bob", "carol")
	id := c.ID()
	tests := []struct {
		name        string
		ops         func() []*GroupOp
		wantMembers []string
		wantAdmins  []string
		wantName    string
	}{
		{"create", func() []*GroupOp { return nil }, []string{"alice", "bob", "carol"}, []string{"alice"}, "friends"},
		{"admin adds, renames, removes", func() []*GroupOp {
			return []*GroupOp{w.op(t, w.a1, id, 2, OpAdd, "dave", ""), w.op(t, w.a1, id, 3, OpRename, "", "pals"),
				w.op(t, w.a1, id, 4, OpRemove, "bob", "")}
		}, []string{"alice", "carol", "dave"}, []string{"alice"}, "pals"},
		{"a non-admin's changes are ignored", func() []*GroupOp {
			return []*GroupOp{w.op(t, w.b1, id, 2, OpAdd, "dave", ""), w.op(t, w.b1, id, 2, OpRemove, "carol", ""),
				w.op(t, w.b1, id, 2, OpRename, "", "mine"), w.op(t, w.b1, id, 2, OpAdmin, "bob", "")}
		}, []string{"alice", "bob", "carol"}, []string{"alice"}, "friends"},
		{"an outsider's changes are ignored", func() []*GroupOp {
			return []*GroupOp{w.op(t, w.d1, id, 2, OpAdd, "erin", ""), w.op(t, w.d1, id, 3, OpLeave, "", "")}
		}, []string{"alice", "bob", "carol"}, []string{"alice"}, "friends"},
		{"a made admin may add", func() []*GroupOp {
			return []*GroupOp{w.op(t, w.a1, id, 2, OpAdmin, "bob", ""), w.op(t, w.b1, id, 3, OpAdd, "erin", "")}
		}, []string{"alice", "bob", "carol", "erin"}, []string{"alice", "bob"}, "friends"},
		{"the last admin leaves: the first member left becomes admin", func() []*GroupOp {
			return []*GroupOp{w.op(t, w.a1, id, 2, OpLeave, "", "")}
		}, []string{"bob", "carol"}, []string{"bob"}, "friends"},
		{"a removed member's later changes are ignored", func() []*GroupOp {
			return []*GroupOp{w.op(t, w.a1, id, 2, OpAdmin, "bob", ""), w.op(t, w.a1, id, 3, OpRemove, "bob", ""),
				w.op(t, w.b1, id, 4, OpAdd, "dave", "")}
		}, []string{"alice", "carol"}, []string{"alice"}, "friends"},
		{"a second create is ignored", func() []*GroupOp {
			o := w.op(t, w.a1, id, 2, OpRename, "", "x")
			o2, _ := SignGroupOp(w.b1.sender, OpDraft{Clock: 1, Type: OpCreate, Name: "other", Time: imTestNow})
			o2.Group = id // a create names no group: GroupOf is its own id
			return []*GroupOp{o, o2}
		}, []string{"alice", "bob", "carol"}, []string{"alice"}, "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := replay(t, id, append([]*GroupOp{c}, tt.ops()...)...)
			if !slices.Equal(g.Members, tt.wantMembers) || !slices.Equal(g.Admins, tt.wantAdmins) || g.Name != tt.wantName {
				t.Errorf("got members %v admins %v name %q, want %v %v %q", g.Members, g.Admins, g.Name, tt.wantMembers, tt.wantAdmins, tt.wantName)
			}
		})
	}
}

// TestGroupConcurrent: concurrent operations (the same clock, made without
// seeing each other) end in the same state whatever order a device learns
// them in, and resolve as docs/protocol.md says.
func TestGroupConcurrent(t *testing.T) {
	w := newGroupWorld(t)
	c := w.create(t, "bob", "carol")
	id := c.ID()
	mkAdmin := w.op(t, w.a1, id, 2, OpAdmin, "bob", "")
	tests := []struct {
		name string
		ops  []*GroupOp
		// want decides the expected members from the two concurrent
		// operations' order (x sorts first).
		want func(xFirst bool) []string
	}{
		{"two admins add at once: both join",
			[]*GroupOp{w.op(t, w.a1, id, 3, OpAdd, "dave", ""), w.op(t, w.b1, id, 3, OpAdd, "erin", "")},
			func(xFirst bool) []string {
				if xFirst {
					return []string{"alice", "bob", "carol", "dave", "erin"}
				}
				return []string{"alice", "bob", "carol", "erin", "dave"}
			}},
		{"two admins remove each other: the first to sort wins",
			[]*GroupOp{w.op(t, w.a1, id, 3, OpRemove, "bob", ""), w.op(t, w.b1, id, 3, OpRemove, "alice", "")},
			func(xFirst bool) []string {
				if xFirst {
					return []string{"alice", "carol"}
				}
				return []string{"bob", "carol"}
			}},
		{"an admin removed while adding: the add counts only if it sorts first",
			[]*GroupOp{w.op(t, w.a1, id, 3, OpRemove, "bob", ""), w.op(t, w.b1, id, 3, OpAdd, "dave", "")},
			func(xFirst bool) []string {
				if xFirst {
					return []string{"alice", "carol"}
				}
				return []string{"alice", "carol", "dave"}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, y := tt.ops[0], tt.ops[1]
			xFirst := x.ID() < y.ID()
			want := tt.want(xFirst)
			var digest string
			for i, order := range [][]*GroupOp{{c, mkAdmin, x, y}, {y, x, mkAdmin, c}, {x, c, y, mkAdmin}} {
				g := replay(t, id, order...)
				if !slices.Equal(g.Members, want) {
					t.Errorf("order %d: members %v, want %v", i, g.Members, want)
				}
				if i > 0 && g.Digest != digest {
					t.Errorf("order %d: digest %s, want %s", i, g.Digest, digest)
				}
				digest = g.Digest
			}
		})
	}
}

func TestGroupForgery(t *testing.T) {
	w := newGroupWorld(t)
	c := w.create(t, "bob")
	id := c.ID()
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	tests := []struct {
		name  string
		forge func() *GroupOp
		want  error
	}{
		{"altered after signing", func() *GroupOp {
			o := w.op(t, w.a1, id, 2, OpAdd, "dave", "")
			o.Target = "erin"
			return o
		}, ErrBadGroupOp}, // erin has no pass
		{"altered name", func() *GroupOp {
			o := w.op(t, w.a1, id, 2, OpRename, "", "a")
			o.Name = "b"
			return o
		}, ErrGroupOpSignature},
		{"signed by nobody", func() *GroupOp {
			o := w.op(t, w.a1, id, 2, OpRename, "", "a")
			o.Sig = make([]byte, ed25519.SignatureSize)
			return o
		}, ErrGroupOpSignature},
		{"claims another author", func() *GroupOp {
			o := w.op(t, w.b1, id, 2, OpRename, "", "a")
			o.By = "alice"
			return o
		}, ErrBadGroupOp},
		{"credential from another login server", func() *GroupOp {
			d := newTestDevice(t, otherPriv, "alice")
			return w.op2(t, d, id)
		}, ErrBadGroupOp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyGroupOp(tt.forge(), w.loginPub)
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// op2 signs a rename by d without verifying it.
func (w *groupWorld) op2(t *testing.T, d *testDevice, id string) *GroupOp {
	o, err := SignGroupOp(d.sender, OpDraft{Group: id, Clock: 2, Type: OpRename, Name: "x", Time: imTestNow})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestGroupCheck(t *testing.T) {
	w := newGroupWorld(t)
	c := w.create(t, "bob")
	g := replay(t, c.ID(), c)
	tests := []struct {
		by, typ, target string
		want            error
	}{
		{"alice", OpAdd, "dave", nil},
		{"bob", OpAdd, "dave", ErrNotAdmin},
		{"dave", OpLeave, "", ErrNotMember},
		{"alice", OpAdd, "bob", ErrBadGroupOp},
		{"alice", OpRemove, "dave", ErrNotMember},
		{"alice", OpRemove, "alice", ErrBadGroupOp},
		{"bob", OpLeave, "", nil},
		{"bob", OpRename, "", ErrNotAdmin},
	}
	for _, tt := range tests {
		if err := g.Check(tt.by, tt.typ, tt.target); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("%s %s %s: got %v, want %v", tt.by, tt.typ, tt.target, err, tt.want)
		}
	}
	// A full group.
	var members []string
	for i := range MaxGroupMembers - 1 {
		members = append(members, fmt.Sprintf("user%d", i))
	}
	full := w.create(t, members...)
	if err := replay(t, full.ID(), full).Check("alice", OpAdd, "dave"); !errors.Is(err, ErrGroupFull) {
		t.Errorf("adding to a full group: got %v, want %v", err, ErrGroupFull)
	}
	if _, err := SignGroupOp(w.a1.sender, OpDraft{Clock: 1, Type: OpCreate, Name: "x", Members: append(members, "dave"), Time: imTestNow}); !errors.Is(err, ErrBadGroupOp) {
		t.Errorf("creating with 101 members: got %v, want %v", err, ErrBadGroupOp)
	}
}

// TestGroupEnvelope: a group message and a log go through an envelope;
// nothing of the text, the name or the members is in the clear.
func TestGroupEnvelope(t *testing.T) {
	w := newGroupWorld(t)
	c := w.create(t, "bob")
	id := c.ID()
	g := replay(t, id, c)
	for _, body := range []*GroupBody{
		{Group: id, Type: GroupMessage, MID: NewMessageID(), Seq: 1, Text: "secret plans", Digest: g.Digest},
		{Group: id, Type: GroupOps, Ops: []*GroupOp{c}, Digest: g.Digest},
		{Group: id, Type: GroupSync, Digest: g.Digest},
	} {
		e, err := SealGroup(w.a1.sender, "bob", []DeviceRecord{w.b1.rec}, body, imTestNow)
		if err != nil {
			t.Fatalf("%s: %v", body.Type, err)
		}
		raw, _ := e.Encode()
		for _, secret := range []string{"secret plans", "friends", id} {
			if bytes.Contains(raw, []byte(secret)) {
				t.Errorf("%s: %q in the clear", body.Type, secret)
			}
		}
		o, err := w.b1.open(wire(t, e), w.loginPub)
		if err != nil {
			t.Fatalf("%s: %v", body.Type, err)
		}
		if o.Group == nil || o.Group.Type != body.Type || o.Group.Text != body.Text || len(o.Group.Ops) != len(body.Ops) {
			t.Errorf("%s: opened %+v", body.Type, o.Group)
		}
		if body.Type == GroupMessage && e.ID != GroupEnvelopeID(body.MID, "bob") {
			t.Errorf("message envelope id %s, want GroupEnvelopeID", e.ID)
		}
	}
	// An envelope carrying a forged operation is refused whole.
	forged := w.op(t, w.a1, id, 2, OpRename, "", "a")
	forged.Name = "b"
	e, err := SealGroup(w.a1.sender, "bob", []DeviceRecord{w.b1.rec}, &GroupBody{Group: id, Type: GroupOps, Ops: []*GroupOp{forged}}, imTestNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.b1.open(wire(t, e), w.loginPub); !errors.Is(err, ErrGroupOpSignature) {
		t.Errorf("a forged operation: got %v, want %v", err, ErrGroupOpSignature)
	}
}

func TestGroupLogStore(t *testing.T) {
	w := newGroupWorld(t)
	h, err := OpenHistory(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	c := w.create(t, "bob")
	id := c.ID()
	add := w.op(t, w.a1, id, 2, OpAdd, "carol", "")
	got, err := h.AddGroupOps(id, []*GroupOp{add, c})
	if err != nil || len(got) != 2 {
		t.Fatalf("AddGroupOps: %d new, %v; want 2", len(got), err)
	}
	if got, err := h.AddGroupOps(id, []*GroupOp{c}); err != nil || len(got) != 0 {
		t.Fatalf("AddGroupOps again: %d new, %v; want 0", len(got), err)
	}
	ops, err := h.GroupOps(id)
	if err != nil || len(ops) != 2 || ops[0].ID() != id {
		t.Fatalf("GroupOps: %d, %v", len(ops), err)
	}
	if err := VerifyGroupOp(ops[1], w.loginPub); err != nil {
		t.Errorf("a stored operation no longer verifies: %v", err)
	}
	ids, err := h.Groups()
	if err != nil || !slices.Equal(ids, []string{id}) {
		t.Errorf("Groups: %v, %v", ids, err)
	}
	if _, err := h.AddGroupOps(id, []*GroupOp{w.create(t)}); !errors.Is(err, ErrBadGroupOp) {
		t.Errorf("another group's create: got %v, want %v", err, ErrBadGroupOp)
	}
	// Group messages keep their sender.
	m := Message{ID: NewMessageID(), Peer: GroupPeer(id), From: "bob", Dir: DirIn, FromDevice: w.b1.pub(), Seq: 1, TS: 1, Text: "hi"}
	if ok, err := h.AddIncoming(m); !ok || err != nil {
		t.Fatalf("AddIncoming: %v %v", ok, err)
	}
	conv, err := h.Conversation(GroupPeer(id), 0)
	if err != nil || len(conv) != 1 || conv[0].From != "bob" {
		t.Errorf("Conversation: %+v, %v", conv, err)
	}
}

// TestGroupAdmit: a device keeps no operation of a user never added to the
// group (an outsider who learned its id), and at most
// MaxGroupOpsPerAuthor of anyone's.
func TestGroupAdmit(t *testing.T) {
	w := newGroupWorld(t)
	c := w.create(t, "bob")
	id := c.ID()
	addCarol := w.op(t, w.a1, id, 2, OpAdd, "carol", "")
	byCarol := w.op(t, w.c1, id, 3, OpRename, "", "carol's")
	outsider := w.op(t, w.d1, id, 3, OpAdd, "erin", "")
	byErin := w.op(t, w.e1, id, 4, OpRename, "", "erin's")
	tests := []struct {
		name       string
		log, batch []*GroupOp
		want       []*GroupOp
	}{
		{"members' operations", []*GroupOp{c}, []*GroupOp{addCarol, byCarol}, []*GroupOp{addCarol, byCarol}},
		{"an added member's, the add already held", []*GroupOp{c, addCarol}, []*GroupOp{byCarol}, []*GroupOp{byCarol}},
		{"an added member's before the add came", []*GroupOp{c}, []*GroupOp{byCarol}, nil},
		{"an outsider's, and of whom they add", []*GroupOp{c}, []*GroupOp{outsider, byErin}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Admit(tt.log, tt.batch)
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %d operations, want %d", len(got), len(tt.want))
			}
		})
	}
	var many []*GroupOp
	for i := range MaxGroupOpsPerAuthor + 5 {
		many = append(many, w.op(t, w.b1, id, int64(2+i), OpRename, "", fmt.Sprint(i)))
	}
	if got := Admit([]*GroupOp{c}, many); len(got) != MaxGroupOpsPerAuthor {
		t.Errorf("one author's %d operations: kept %d, want %d", len(many), len(got), MaxGroupOpsPerAuthor)
	}
}

// TestGroupHeld: a held group message survives a restart of the history and
// is released once, when keep says so.
func TestGroupHeld(t *testing.T) {
	dir := t.TempDir()
	h, err := OpenHistory(dir)
	if err != nil {
		t.Fatal(err)
	}
	w := newGroupWorld(t)
	id := w.create(t, "bob").ID()
	m := HeldMessage{Message: Message{ID: NewMessageID(), Peer: GroupPeer(id), From: "carol", Dir: DirIn, FromDevice: w.c1.pub(), Seq: 1, TS: 1, Text: "early"}, Via: "supernode"}
	if err := h.Hold(id, m); err != nil {
		t.Fatal(err)
	}
	h.Close()
	if h, err = OpenHistory(dir); err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got, err := h.Release(id, func(HeldMessage) bool { return false }); err != nil || len(got) != 0 {
		t.Fatalf("Release(none) = %v, %v", got, err)
	}
	got, err := h.Release(id, func(x HeldMessage) bool { return x.From == "carol" })
	if err != nil || len(got) != 1 || got[0].Text != "early" || got[0].Via != "supernode" {
		t.Fatalf("Release = %+v, %v", got, err)
	}
	if got, _ := h.Release(id, func(HeldMessage) bool { return true }); len(got) != 0 {
		t.Fatalf("released twice: %+v", got)
	}
}
