package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley/parley/client/im"
	"github.com/parley/parley/web"
)

// The page in group chats (docs/web.md, "Groups"): its group operations,
// replay, digest and envelope ids are the Go client's, byte for byte
// (TestBrowserGroupReplay), and a group of the page and four CLI users
// agrees on its members and carries messages both ways, also to a page
// that was closed (TestBrowserGroup).

// groupVector is a log and what im.Replay makes of it.
type groupVector struct {
	Group string            `json:"group"`
	Ops   []json.RawMessage `json:"ops"`
	IDs   []string          `json:"ids"`
	Want  *groupWant        `json:"want"` // nil: no create, Replay fails
}

// groupWant is an im.GroupState as the page reports it.
type groupWant struct {
	Name    string            `json:"name"`
	Members []string          `json:"members"`
	Admins  []string          `json:"admins"`
	Clock   int64             `json:"clock"`
	Ops     int               `json:"ops"`
	Digest  string            `json:"digest"`
	Applied []string          `json:"applied"`
	Passes  map[string]string `json:"passes"` // user → hex of the signature of their pass
}

func wantOf(g *im.GroupState) *groupWant {
	w := &groupWant{Name: g.Name, Members: g.Members, Admins: g.Admins, Clock: g.Clock, Ops: g.Ops, Digest: g.Digest, Passes: map[string]string{}}
	for _, o := range g.Applied {
		w.Applied = append(w.Applied, o.ID())
	}
	for u, p := range g.Passes {
		w.Passes[u] = hex.EncodeToString(p.Sig)
	}
	return w
}

// groupVectors makes logs of random operations (most of them not allowed
// when they come in the order: changes by members who are not admins,
// concurrent changes, back-dated ones), logs with operations of another
// group, a group that fills up, the last admin leaving, names in several
// scripts, and a log without its create; each shuffled.
func groupVectors(t *testing.T) []groupVector {
	t.Helper()
	r := rand.New(rand.NewPCG(18, 2026))
	users := []string{"ann", "bob", "cat", "dan", "eve", "fay"}
	keys := map[string]ed25519.PrivateKey{}
	for _, u := range users {
		seed := make([]byte, ed25519.SeedSize)
		for i := range seed {
			seed[i] = byte(r.Uint32())
		}
		keys[u] = ed25519.NewKeyFromSeed(seed)
	}
	ts := int64(1_800_000_000_000)
	sign := func(by string, d im.OpDraft) *im.GroupOp {
		t.Helper()
		ts += 1 + r.Int64N(5000)
		d.Time = time.UnixMilli(ts)
		o, err := im.SignGroupOp(im.Sender{User: by, Device: keys[by], Credential: "credential-of-" + by}, d)
		if err != nil {
			t.Fatalf("signing %+v: %v", d, err)
		}
		return o
	}
	vector := func(id string, ops []*im.GroupOp) groupVector {
		t.Helper()
		r.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
		v := groupVector{Group: id}
		for _, o := range ops {
			b, err := json.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			v.Ops = append(v.Ops, b)
			v.IDs = append(v.IDs, o.ID())
		}
		if g, err := im.Replay(id, ops); err == nil {
			v.Want = wantOf(g)
		}
		return v
	}
	types := []string{im.OpAdd, im.OpRemove, im.OpLeave, im.OpRename, im.OpAdmin}
	names := []string{"Team", "Équipe ✓", "チーム", "Ομάδα 🚀", "x"}
	var vs []groupVector
	for n := range 10 {
		create := sign("ann", im.OpDraft{Clock: 1, Type: im.OpCreate, Name: names[n%len(names)], Members: []string{"bob", "cat"}})
		id := create.ID()
		ops := []*im.GroupOp{create}
		for i := range 60 {
			by := users[r.IntN(len(users))]
			if r.IntN(3) > 0 {
				by = users[r.IntN(3)] // mostly the first members, who may be admins
			}
			d := im.OpDraft{Group: id, Clock: 2 + r.Int64N(12), Type: types[r.IntN(len(types))]}
			switch d.Type {
			case im.OpRename:
				d.Name = fmt.Sprintf("%s %d", names[r.IntN(len(names))], i)
			case im.OpLeave:
			default:
				d.Target = users[r.IntN(len(users))]
			}
			ops = append(ops, sign(by, d))
		}
		if n%3 == 0 { // operations of another group are left out
			other := sign("bob", im.OpDraft{Clock: 1, Type: im.OpCreate, Name: "other", Members: []string{"ann"}})
			ops = append(ops, other, sign("bob", im.OpDraft{Group: other.ID(), Clock: 2, Type: im.OpAdd, Target: "cat"}))
		}
		vs = append(vs, vector(id, ops))
	}
	// A full group: 99 members and ann; a 101st is not added, then one
	// leaves and the next add applies.
	var many []string
	for i := range im.MaxGroupMembers - 1 {
		many = append(many, fmt.Sprintf("m%02d", i))
	}
	keys["m05"] = keys["bob"] // a device of m05's (no credential is checked here)
	full := sign("ann", im.OpDraft{Clock: 1, Type: im.OpCreate, Name: "Full", Members: many})
	vs = append(vs, vector(full.ID(), []*im.GroupOp{full,
		sign("ann", im.OpDraft{Group: full.ID(), Clock: 2, Type: im.OpAdd, Target: "zed"}),
		sign("m05", im.OpDraft{Group: full.ID(), Clock: 3, Type: im.OpLeave}),
		sign("ann", im.OpDraft{Group: full.ID(), Clock: 4, Type: im.OpAdd, Target: "zoe"}),
	}))
	// The last admin leaves: the member who joined first becomes one.
	c := sign("ann", im.OpDraft{Clock: 1, Type: im.OpCreate, Name: "Left", Members: []string{"cat", "bob"}})
	vs = append(vs, vector(c.ID(), []*im.GroupOp{c,
		sign("ann", im.OpDraft{Group: c.ID(), Clock: 2, Type: im.OpAdd, Target: "dan"}),
		sign("ann", im.OpDraft{Group: c.ID(), Clock: 3, Type: im.OpLeave}),
		sign("cat", im.OpDraft{Group: c.ID(), Clock: 4, Type: im.OpRename, Name: "Cat's"}),
	}))
	// No create: no group.
	vs = append(vs, vector(c.ID(), []*im.GroupOp{sign("ann", im.OpDraft{Group: c.ID(), Clock: 2, Type: im.OpAdd, Target: "eve"})}))
	return vs
}

// pageGroupReplay is what the page makes of the vectors: for each, its ids
// of the operations and its replay (null when it failed, with why).
const pageGroupReplay = `(async (vs) => {
	const G = await import("/js/group.js");
	const out = [];
	for (const v of vs) {
		const ops = [];
		for (const p of v.ops) ops.push(await G.parseOp(p));
		const r = {ids: ops.map((o) => o.id), want: null, why: ""};
		try {
			const g = await G.replay(v.group, ops);
			r.want = {name: g.name, members: g.members, admins: g.admins, clock: g.clock, ops: g.ops, digest: g.digest,
				applied: g.applied.map((o) => o.id), passes: Object.fromEntries([...g.passes].map(([u, p]) => [u, [...p.sig].map((x) => x.toString(16).padStart(2, "0")).join("")]))};
		} catch (e) {
			r.why = e.code;
		}
		out.push(r);
	}
	return JSON.stringify(out);
})`

// TestBrowserGroupReplay: the page computes the ids of operations the Go
// client signed, and replays random logs (in random order) into the same
// groups — name, members and admins in order, clock, digest, the
// operations that applied, each member's pass — as im.Replay; operations
// the page signs have the ids Go computes and passes Go verifies; a group
// message's envelope id is im.GroupEnvelopeID.
func TestBrowserGroupReplay(t *testing.T) {
	chromiumPath(t)
	srv := httptest.NewServer(web.Handler())
	defer srv.Close()
	_, wav := micWAV(t, 171)
	b := newBrowser(t, wav)
	b.do("open the page", 20*time.Second, chromedp.Navigate(srv.URL+"/"))
	b.waitFor("the page", `!document.getElementById("auth").hidden`, 10*time.Second)

	vs := groupVectors(t)
	in, _ := json.Marshal(vs)
	var got []struct {
		IDs  []string   `json:"ids"`
		Want *groupWant `json:"want"`
		Why  string     `json:"why"`
	}
	if err := json.Unmarshal([]byte(eval[string](b, pageGroupReplay+"("+string(in)+")", 60*time.Second)), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(vs) {
		t.Fatalf("the page replayed %d logs of %d", len(got), len(vs))
	}
	applied := 0
	for i, v := range vs {
		if !slices.Equal(got[i].IDs, v.IDs) {
			t.Errorf("log %d: the page's operation ids %q, Go's %q", i, got[i].IDs, v.IDs)
		}
		w, _ := json.Marshal(v.Want)
		g, _ := json.Marshal(got[i].Want)
		if string(w) != string(g) {
			t.Errorf("log %d: the page's replay\n%s (%s)\nGo's\n%s", i, g, got[i].Why, w)
		}
		if v.Want == nil && got[i].Why != "unknown-group" {
			t.Errorf("log %d without its create: the page says %q, want unknown-group", i, got[i].Why)
		}
		if v.Want != nil {
			applied += len(v.Want.Applied)
		}
	}
	t.Logf("%d logs, %d operations applied of %d", len(vs), applied, func() (n int) {
		for _, v := range vs {
			n += len(v.Ops)
		}
		return n
	}())

	// Operations the page signs: Go computes the same ids and verifies
	// their passes; the envelope id of a group message.
	var signed struct {
		Ops      []json.RawMessage `json:"ops"`
		IDs      []string          `json:"ids"`
		Env      string            `json:"env"`
		Checks   []string          `json:"checks"`
		Decoding []string          `json:"decoding"`
	}
	if err := json.Unmarshal([]byte(eval[string](b, `(async () => {
		const G = await import("/js/group.js");
		const kp = await crypto.subtle.generateKey({name: "Ed25519"}, false, ["sign", "verify"]);
		const s = {user: "ann", device: kp, devicePub: new Uint8Array(await crypto.subtle.exportKey("raw", kp.publicKey)), credential: "credential-of-ann"};
		const c = await G.signOp(s, {clock: 1, type: G.OP_CREATE, name: "Ünïcode ✓ group", members: ["bob", "cat"]});
		const ops = [c,
			await G.signOp(s, {group: c.id, clock: 2, type: G.OP_ADD, target: "dan"}),
			await G.signOp(s, {group: c.id, clock: 3, type: G.OP_RENAME, name: "Renamed 🚀"}),
			await G.signOp(s, {group: c.id, clock: 4, type: G.OP_ADMIN, target: "bob"}),
			await G.signOp(s, {group: c.id, clock: 5, type: G.OP_REMOVE, target: "cat"}),
			await G.signOp(s, {group: c.id, clock: 6, type: G.OP_LEAVE})];
		// What a member may not do, and why (the page's errors).
		const g = await G.replay(c.id, ops.slice(0, 4));
		const many = Array.from({length: G.MAX_MEMBERS - 1}, (_, i) => "m" + String(i).padStart(2, "0"));
		const f = await G.signOp(s, {clock: 1, type: G.OP_CREATE, name: "Full", members: many});
		const full = await G.replay(f.id, [f]);
		const why = (g, by, typ, target) => { try { G.check(g, by, typ, target); return "ok"; } catch (e) { return e.code + ": " + e.message; } };
		const checks = [why(g, "dan", G.OP_ADD, "eve"), why(g, "ann", G.OP_ADD, "cat"), why(g, "ann", G.OP_REMOVE, "ann"),
			why(g, "eve", G.OP_LEAVE), why(full, "ann", G.OP_ADD, "zed"), why(g, "bob", G.OP_RENAME), why(g, "ann", G.OP_ADD, "eve")];
		// Bodies are read as encoding/json reads them: a field's name in
		// any case; an integer written "1.0" refused.
		const w = JSON.stringify({g: c.id, t: G.BODY_OPS, ops: [G.opToWire(c)]});
		const open = async (text) => { try { await G.openBody(new TextEncoder().encode(text), new Uint8Array(32)); return "opened"; } catch (e) { return e.message; } };
		const decoding = [await open(w), await open(w.replace('"clock":1,', '"Clock":1,')), await open(w.replace('"clock":1,', '"clock":1.0,'))];
		return JSON.stringify({ops: ops.map(G.opToWire), ids: ops.map((o) => o.id),
			env: await G.envelopeID("0123456789abcdef0123456789abcdef", "bob"), checks, decoding});
	})()`, 20*time.Second)), &signed); err != nil {
		t.Fatal(err)
	}
	var ops []*im.GroupOp
	for i, raw := range signed.Ops {
		var o im.GroupOp
		if err := json.Unmarshal(raw, &o); err != nil {
			t.Fatalf("the page's operation %d: %v\n%s", i, err, raw)
		}
		if o.ID() != signed.IDs[i] {
			t.Errorf("the page's %s: id %s, Go computes %s", o.Type, signed.IDs[i], o.ID())
		}
		for _, p := range o.Passes {
			if err := p.Verify(); err != nil {
				t.Errorf("the page's %s: the pass for %s: %v", o.Type, p.User, err)
			}
		}
		ops = append(ops, &o)
	}
	if g, err := im.Replay(ops[0].ID(), ops); err != nil || g.Name != "Renamed 🚀" || !slices.Equal(g.Members, []string{"bob", "dan"}) || !slices.Equal(g.Admins, []string{"bob"}) {
		t.Errorf("Go replays the page's operations into %+v, %v", g, err)
	}
	for i, want := range []string{
		"not-admin: Only an admin of “Renamed 🚀” can do that. Its admins are ann, bob.",
		"bad-op: cat is already a member of “Renamed 🚀”.",
		"bad-op: To take yourself out of the group, leave it.",
		"not-member: You are not a member of “Renamed 🚀” any more.",
		"full: “Full” is full: a group has at most 100 members.",
		"ok", "ok",
	} {
		if i >= len(signed.Checks) || signed.Checks[i] != want {
			t.Errorf("the page's check %d: %q, want %q", i, signed.Checks, want)
			break
		}
	}
	// The first two fail at the credential (no login server signed it),
	// the third at its clock, as Go's decoder would.
	if d := signed.Decoding; len(d) != 3 || d[0] != d[1] || !strings.Contains(d[0], "credential") || d[2] != "group operation: clock" {
		t.Errorf("the page reads bodies as %q, want the credential refused twice, then the clock", d)
	}
	if want := im.GroupEnvelopeID("0123456789abcdef0123456789abcdef", "bob"); signed.Env != want {
		t.Errorf("the page's group envelope id %s, Go's %s", signed.Env, want)
	}
	if t.Failed() {
		t.Logf("vectors: %s", strings.TrimSpace(string(in[:min(len(in), 2000)])))
	}
}

// groupEvent waits until p has printed a "group" event of op (on target,
// when set) in group id.
func groupEvent(t *testing.T, p *proc, id, op, target string) {
	t.Helper()
	waitLine(t, p, fmt.Sprintf("a group event %s %s", op, target), 20*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "group" && ev["group"] == id && ev["op"] == op && (target == "" || ev["target"] == target)
	})
}

// groupMessages are the texts p printed as group messages of group id from
// user from (with text, when set).
func groupMessages(p *proc, id, from, text string) []string {
	out, _ := p.output()
	var ts []string
	for _, ev := range jsonObjects(out) {
		if ev["event"] == "message" && ev["group"] == id && ev["from"] == from && (text == "" || ev["text"] == text) {
			ts = append(ts, ev["text"].(string))
		}
	}
	return ts
}

// onceAt waits until p has printed text from from in group id, then checks
// a moment later that it printed it once.
func onceAt(t *testing.T, who string, p *proc, id, from, text string) {
	t.Helper()
	waitLine(t, p, fmt.Sprintf("%q from %s at %s", text, from, who), 20*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "message" && ev["group"] == id && ev["from"] == from && ev["text"] == text
	})
	time.Sleep(300 * time.Millisecond)
	if n := len(groupMessages(p, id, from, text)); n != 1 {
		t.Errorf("%s shows %q from %s %d times, want once", who, text, from, n)
	}
}

// pageGroup is a JavaScript expression: the page's group id as JSON
// {name, members, admins, member} (the replay of its log), or "null".
func pageGroup(id string) string {
	return fmt.Sprintf(`JSON.stringify((() => {
		const g = window.parley.groups().get(%q);
		return g ? {name: g.name, members: g.members, admins: g.admins, member: g.members.includes(window.parley.app.user)} : null;
	})())`, id)
}

// memberList is a JavaScript expression: the members panel's rows, each a
// member's name, "*" for an admin.
const memberList = `[...document.querySelectorAll("#member-list li")].map((li) => li.querySelector(".name").textContent + (li.querySelector(".admin") ? "*" : "")).join(",")`

// sysLine is a JavaScript condition: the open conversation shows the line
// text once (a change of the group).
func sysLine(text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#chat-log li.sys .text")].filter((e) => e.textContent === %q).length === 1`, text)
}

// TestBrowserGroup: carol (a CLI user) makes a group with alice (the page):
// it shows in her list. alice makes a group with bob, carol and dave
// (her contacts, CLI users) and makes bob an admin; bob, on the command
// line, adds erin (his contact, not alice's), removes dave and renames the
// group. Each change is a line in the page's conversation, and the page's
// member list (and its members panel) is the one `parley group info`
// gives on every CLI user's home. Messages: the page's reaches bob, carol
// and erin once each (erin through the pass bob signed) and not dave;
// erin's and carol's show once in the page under their names; the group's
// unread count rises in the list while alice reads another conversation;
// and what bob and erin write while her page is closed waits in her
// mailbox and shows once when it is back. No log had to be resent (every
// digest agreed). In carol's group, where she is no admin, alice's rename
// is refused with who may, and she leaves it. axe-core passes on the
// new-group dialog and the group with its members panel, and the page
// reports no CSP violation.
func TestBrowserGroup(t *testing.T) {
	chromiumPath(t)
	began := time.Now()
	up := startUp(t)
	axeJS := axeSource(t)
	_, wav := micWAV(t, 181)
	b := newBrowser(t, wav)
	b.watchCSP()
	b.signUp(up.loginURL, "alice", "alice-password")
	envs := map[string][]string{}
	for _, n := range []string{"bob", "carol", "dave", "erin"} {
		envs[n] = cliUser(t, up.loginURL, n)
	}
	for _, n := range []string{"bob", "carol", "dave"} {
		mustRun(t, envs[n], "contact request sent to alice", "contacts", "add", "alice")
		b.click("Accept " + n)
		b.shows(n+" is now a contact", 15*time.Second)
	}
	mustRun(t, envs["erin"], "contact request sent to bob", "contacts", "add", "bob")
	mustRun(t, envs["bob"], "erin is now a contact", "contacts", "accept", "erin")

	// carol, on the command line, makes a group with alice: it comes to
	// the page's list, with its line.
	mustRun(t, envs["carol"], `"name":"Book club"`, "group", "create", "--json", "Book club", "alice")
	b.waitFor("carol's group in the list", `!!document.querySelector('#contact-list button[aria-label="Group Book club"]')`, 20*time.Second)
	book := eval[string](b, `[...window.parley.groups().values()].find((g) => g.name === "Book club").id`, 5*time.Second)
	if got := eval[string](b, pageGroup(book), 5*time.Second); got != `{"name":"Book club","members":["carol","alice"],"admins":["carol"],"member":true}` {
		t.Errorf("carol's group at the page: %s", got)
	}
	b.click("Group Book club")
	b.waitFor("the line of its creation", sysLine("carol created the group “Book club” with alice"), 5*time.Second)
	listen := map[string]*proc{}
	for _, n := range []string{"bob", "carol", "dave", "erin"} {
		listen[n] = start(t, envs[n], "listen", "--json")
	}
	for _, n := range []string{"bob", "carol", "dave", "erin"} {
		waitOnline(t, listen[n])
	}
	t.Logf("five users, four listening, after %v", time.Since(began).Round(100*time.Millisecond))

	// alice makes the group from the New group dialog.
	b.click("New group")
	b.waitFor("the new group dialog", `document.getElementById("new-group").open`, 5*time.Second)
	b.typeInto("Group name", "Team")
	for _, n := range []string{"bob", "carol", "dave"} {
		b.click(n)
	}
	b.axe(axeJS, "the new group dialog")
	b.click("Create group")
	b.waitFor("the group's conversation", `!document.getElementById("conv").hidden && document.getElementById("chat-h").textContent === "Team"`, 20*time.Second)
	id := eval[string](b, `[...window.parley.groups().values()].find((g) => g.name === "Team").id`, 5*time.Second)
	b.waitFor("the line of the creation", sysLine("alice created the group “Team” with bob, carol and dave"), 5*time.Second)
	for _, n := range []string{"bob", "carol", "dave"} {
		groupEvent(t, listen[n], id, "create", "")
	}
	b.click("Members")
	b.waitFor("the members panel", memberList+` === "alice (you)*,bob,carol,dave"`, 5*time.Second)
	b.click("Make bob an admin")
	b.waitFor("bob an admin in the panel", memberList+` === "alice (you)*,bob*,carol,dave"`, 10*time.Second)
	b.waitFor("the line of bob's promotion", sysLine("alice made bob an admin"), 5*time.Second)
	groupEvent(t, listen["bob"], id, "admin", "bob")

	// bob, an admin now, changes the group from the command line (his
	// listener is stopped meanwhile: a session keeps the state it loaded,
	// and would not see what another process of the same home stores).
	listen["bob"].cmd.Process.Signal(os.Interrupt)
	listen["bob"].wait(t, 10*time.Second)
	mustRun(t, envs["bob"], `"members":["alice","bob","carol","dave","erin"]`, "group", "add", "--json", id, "erin")
	b.waitFor("the line of erin's joining", sysLine("bob added erin"), 20*time.Second)
	mustRun(t, envs["bob"], `"members":["alice","bob","carol","erin"]`, "group", "remove", "--json", id, "dave")
	b.waitFor("the line of dave's removal", sysLine("bob removed dave"), 20*time.Second)
	mustRun(t, envs["bob"], `"name":"Team Rocket"`, "group", "rename", "--json", id, "Team Rocket")
	b.waitFor("the new name", sysLine("bob renamed the group to “Team Rocket”")+` && document.getElementById("chat-h").textContent === "Team Rocket"`, 20*time.Second)
	listen["bob"] = start(t, envs["bob"], "listen", "--json")
	waitOnline(t, listen["bob"])
	for _, n := range []string{"carol", "erin"} {
		groupEvent(t, listen[n], id, "rename", "")
	}
	groupEvent(t, listen["dave"], id, "remove", "dave")
	b.waitFor("the members panel after bob's changes", memberList+` === "alice (you)*,bob*,carol,erin"`, 10*time.Second)

	// Every home knows the group as the page does.
	var page struct {
		Name            string
		Members, Admins []string
		Member          bool
	}
	if err := json.Unmarshal([]byte(eval[string](b, pageGroup(id), 5*time.Second)), &page); err != nil {
		t.Fatal(err)
	}
	if page.Name != "Team Rocket" || !slices.Equal(page.Members, []string{"alice", "bob", "carol", "erin"}) || !slices.Equal(page.Admins, []string{"alice", "bob"}) {
		t.Errorf("the page's group: %+v", page)
	}
	for _, n := range []string{"bob", "carol", "erin", "dave"} {
		out, errOut, code := runParley(t, envs[n], "group", "info", "--json", id)
		var g struct {
			Name            string
			Members, Admins []string
			Member          bool
		}
		if code != 0 || json.Unmarshal([]byte(out), &g) != nil {
			t.Fatalf("%s: group info: exit %d\n%s\n%s", n, code, out, errOut)
		}
		if n == "dave" {
			if g.Member || slices.Contains(g.Members, "dave") {
				t.Errorf("dave, removed, sees the group as %+v", g)
			}
			continue
		}
		if g.Name != page.Name || !slices.Equal(g.Members, page.Members) || !slices.Equal(g.Admins, page.Admins) || !g.Member {
			t.Errorf("%s's group: %+v; the page's: %+v", n, g, page)
		}
	}

	// The page writes to the group: bob, carol and erin get it once, dave not.
	b.sendChat("Hello team, from the page")
	for _, n := range []string{"bob", "carol", "erin"} {
		onceAt(t, n, listen[n], id, "alice", "Hello team, from the page")
	}
	b.waitFor("the page's message sent", chatMark("Hello team, from the page", "sent"), 20*time.Second)
	// erin (not alice's contact: her client reaches alice with alice's own
	// pass) writes; the page shows it once, under her name.
	mustRun(t, envs["erin"], "sent to", "chat", "--group", id, "Hi all, erin here")
	b.onceIn("erin", "Hi all, erin here")
	onceAt(t, "carol", listen["carol"], id, "erin", "Hi all, erin here")
	if n := len(groupMessages(listen["dave"], id, "alice", "")) + len(groupMessages(listen["dave"], id, "erin", "")); n != 0 {
		t.Errorf("dave, removed, got %d of the group's messages", n)
	}
	b.axe(axeJS, "a group with its members")
	b.shots("group", "")
	b.dark(true)
	b.axe(axeJS, "a group with its members, dark")
	b.dark(false)

	// alice reads carol's conversation; carol writes to the group: its
	// count rises in the list, and clears when she opens it.
	b.click("Chat with carol")
	b.waitFor("carol's conversation", `document.getElementById("chat-h").textContent === "carol"`, 5*time.Second)
	mustRun(t, envs["carol"], "sent to", "chat", "--group", id, "are we all here?")
	b.waitFor("1 unread in the group", unread("Team Rocket", 1)+` && document.title === "(1) Parley"`, 20*time.Second)
	b.shots("group-unread", "")
	b.click("Group Team Rocket")
	b.waitFor("the unread count cleared", unread("Team Rocket", 0), 5*time.Second)
	b.onceIn("carol", "are we all here?")
	var counts struct{ SyncSent, SyncReceived, Held int }
	if err := json.Unmarshal([]byte(eval[string](b, `JSON.stringify(window.parley.app.im.groups.counts)`, 5*time.Second)), &counts); err != nil {
		t.Fatal(err)
	}
	if counts.SyncSent != 0 || counts.SyncReceived != 0 || counts.Held != 0 {
		t.Errorf("logs had to be resent (a digest differed) or messages held: %+v", counts)
	}
	b.noCSPViolation("alice, in a group")

	// alice's page closes; bob and erin write meanwhile; the page, opened
	// again, shows both once (from its mailbox).
	b.do("close the page", 10*time.Second, chromedp.Navigate("about:blank"))
	waitLine(t, listen["bob"], "alice offline", 10*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "presence" && ev["peer"] == "alice" && ev["status"] == "offline"
	})
	mustRun(t, envs["bob"], "sent to", "chat", "--group", id, "bob: while you were away")
	mustRun(t, envs["erin"], "sent to", "chat", "--group", id, "erin: me too")
	b.do("open the page again", 20*time.Second, chromedp.Navigate(up.loginURL+"/"))
	b.waitOnline("alice back")
	b.waitFor("2 unread in the group", unread("Team Rocket", 2), 20*time.Second)
	b.click("Group Team Rocket")
	b.onceIn("bob", "bob: while you were away")
	b.onceIn("erin", "erin: me too")
	b.onceIn("me", "Hello team, from the page")
	b.waitFor("the changes, after the reload", sysLine("bob removed dave"), 5*time.Second)

	// In carol's group alice is no admin: renaming it says who may; she
	// leaves it, and may not write to it any more.
	b.click("Group Book club")
	b.click("Members")
	b.click("Rename the group")
	b.shows("Only an admin of “Book club” can do that. Its admin is carol.", 10*time.Second)
	b.click("Leave group")
	b.waitFor("alice out of carol's group", sysLine("alice left")+` && document.getElementById("chat-text").disabled && `+
		memberList+` === "carol*"`, 20*time.Second)
	groupEvent(t, listen["carol"], book, "leave", "")
	b.noCSPViolation("alice, back")
	t.Logf("TestBrowserGroup took %v", time.Since(began).Round(100*time.Millisecond))
}
