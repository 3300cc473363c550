package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// cmdLine is one parley command line of one user.
type cmdLine struct {
	env  []string
	args []string
}

// runAll runs the commands at once and fails the test unless each exits 0.
func runAll(t *testing.T, runs ...cmdLine) {
	t.Helper()
	ps := make([]*proc, len(runs))
	for i, r := range runs {
		ps[i] = start(t, r.env, r.args...)
	}
	for i, p := range ps {
		if code := p.wait(t, 60*time.Second); code != 0 {
			out, errOut := p.output()
			t.Fatalf("parley %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(runs[i].args, " "), code, out, errOut)
		}
	}
}

// groupDoc is a group as `parley group ... --json` prints it.
type groupDoc struct {
	Event   string   `json:"event"`
	Cmd     string   `json:"cmd"`
	ID      string   `json:"id"`
	Name    string   `json:"name"`
	Members []string `json:"members"`
	Admins  []string `json:"admins"`
	Member  bool     `json:"member"`
}

// groupCmd runs `parley group args... --json` and returns the group it
// prints, failing the test unless it exits 0 with one result document.
func groupCmd(t *testing.T, env []string, args ...string) groupDoc {
	t.Helper()
	args = append(append([]string{"group"}, args...), "--json")
	out, errOut, code := runParley(t, env, args...)
	var g groupDoc
	if code != 0 || strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &g) != nil || g.Event != "result" || g.Cmd != "group "+args[1] {
		t.Fatalf("parley %s: exit %d, stdout %q, stderr %q; want one result document", strings.Join(args, " "), code, out, errOut)
	}
	return g
}

// waitGroup polls `parley group info GROUP --json` on env's home until ok
// accepts what it prints.
func waitGroup(t *testing.T, who string, env []string, group string, ok func(groupDoc) bool) groupDoc {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _, code := runParley(t, env, "group", "info", group, "--json")
		var g groupDoc
		if code == 0 && json.Unmarshal([]byte(out), &g) == nil && ok(g) {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's home: group info %s: exit %d, %s", who, group, code, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// groupHistory returns `parley history --group GROUP --json` on env's home:
// sender → texts, in order.
func groupHistory(t *testing.T, env []string, group string) (map[string][]string, []map[string]any) {
	t.Helper()
	out, errOut, code := runParley(t, env, "history", "--group", group, "--json")
	if code != 0 {
		t.Fatalf("history --group %s: exit %d: %s%s", group, code, out, errOut)
	}
	by := map[string][]string{}
	recs := jsonObjects(out)
	for _, m := range recs {
		by[fmt.Sprint(m["from"])] = append(by[fmt.Sprint(m["from"])], fmt.Sprint(m["text"]))
	}
	return by, recs
}

// TestCLIGroups drives groups through the real binary: five users, alice a
// contact of bob, carol and dave (a bot), erin a contact of bob only.
// alice creates a group and makes bob an admin, who adds erin; alice
// renames it and removes carol. Every home ends with the same group;
// messages from three users' one-shot `chat --group` and from the bot
// reach every member once with their sender, and the removed member none
// sent after the removal; the bot sees the changes as group events.
// Mistakes are one line and exit 1 (exit 2 for a wrong subcommand). Every
// JSON line printed or sent is checked against docs/schema.
func TestCLIGroups(t *testing.T) {
	began := time.Now()
	loginURL := upNetwork(t)
	names := []string{"alice", "bob", "carol", "dave", "erin"}
	envs := map[string][]string{}
	var regs []cmdLine
	for _, n := range names {
		envs[n] = userEnv(t, loginURL, n+"-password")
		regs = append(regs, cmdLine{envs[n], []string{"register", n}})
	}
	runAll(t, regs...)
	alice, bob, carol, dave := envs["alice"], envs["bob"], envs["carol"], envs["dave"]
	pairs := [][2]string{{"alice", "bob"}, {"alice", "carol"}, {"alice", "dave"}, {"bob", "erin"}}
	var adds, accepts []cmdLine
	for _, p := range pairs {
		adds = append(adds, cmdLine{envs[p[0]], []string{"contacts", "add", p[1]}})
		accepts = append(accepts, cmdLine{envs[p[1]], []string{"contacts", "accept", p[0]}})
	}
	runAll(t, adds...)
	runAll(t, accepts...)

	// Everyone online: four listening, dave a bot.
	listeners := map[string]*proc{}
	for _, n := range []string{"alice", "bob", "carol", "erin"} {
		listeners[n] = start(t, envs[n], "listen", "--json")
	}
	bot := startBot(t, dave)
	for _, p := range append(slices.Collect(maps.Values(listeners)), bot.proc) {
		waitOnline(t, p)
	}
	t.Logf("network, five users, contacts and listeners: %v", time.Since(began).Round(time.Millisecond))

	// Not alice's contact: refused, nothing created.
	wantFail := func(env []string, code int, want string, args ...string) {
		t.Helper()
		out, errOut, got := runParley(t, env, args...)
		if got != code || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, want) {
			t.Errorf("parley %s: exit %d, stdout %q, stderr %q; want exit %d and one line starting %q", strings.Join(args, " "), got, out, errOut, code, want)
		}
	}
	wantFail(alice, 1, "parley: group create: erin: only your contacts can be added", "group", "create", "club", "bob", "erin")
	if out, _, _ := runParley(t, alice, "group", "list", "--json"); out != "" {
		t.Errorf("group list after a refused create: %q, want nothing", out)
	}

	g := groupCmd(t, alice, "create", "club", "bob", "carol", "dave")
	id := g.ID
	if len(id) != 32 || g.Name != "club" || !slices.Equal(g.Members, []string{"alice", "bob", "carol", "dave"}) || !slices.Equal(g.Admins, []string{"alice"}) || !g.Member {
		t.Fatalf("group create: %+v", g)
	}
	if g = groupCmd(t, alice, "admin", "club", "bob"); !slices.Equal(g.Admins, []string{"alice", "bob"}) {
		t.Fatalf("group admin: %+v", g)
	}
	// bob adds erin, his own contact, once his home knows he is an admin.
	waitGroup(t, "bob", bob, id, func(g groupDoc) bool { return slices.Contains(g.Admins, "bob") })
	wantFail(alice, 1, "parley: group add: erin: only your contacts can be added", "group", "add", "club", "erin")
	if g = groupCmd(t, bob, "add", "club", "erin"); !slices.Equal(g.Members, []string{"alice", "bob", "carol", "dave", "erin"}) {
		t.Fatalf("group add: %+v", g)
	}
	waitGroup(t, "alice", alice, id, func(g groupDoc) bool { return slices.Contains(g.Members, "erin") })
	if g = groupCmd(t, alice, "rename", id[:8], "club two"); g.Name != "club two" || g.ID != id {
		t.Fatalf("group rename: %+v", g)
	}
	for _, n := range []string{"carol", "erin"} {
		waitGroup(t, n, envs[n], id, func(g groupDoc) bool { return g.Name == "club two" && slices.Contains(g.Members, "erin") })
	}

	// Before the removal: alice's message, which carol gets.
	sent := func(who, text string, members float64) {
		t.Helper()
		out, errOut, code := runParley(t, envs[who], "chat", "--group", "club two", text, "--json")
		var ev map[string]any
		if code != 0 || json.Unmarshal([]byte(out), &ev) != nil || ev["event"] != "sent" || ev["group"] != "club two" || ev["members"] != members || ev["failed"] != nil {
			t.Fatalf("%s: chat --group: exit %d, stdout %q, stderr %q", who, code, out, errOut)
		}
	}
	sent("alice", "before the removal, from alice", 4)
	waitLine(t, listeners["carol"], "alice's group message at carol's", 10*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "message" && ev["group"] == id && ev["from"] == "alice"
	})
	// A member who is no admin may not remove anyone.
	wantFail(carol, 1, "parley: group remove: group "+id+": carol: only an admin of the group may do that", "group", "remove", "club two", "dave")
	if g = groupCmd(t, alice, "remove", "club two", "carol"); !slices.Equal(g.Members, []string{"alice", "bob", "dave", "erin"}) {
		t.Fatalf("group remove: %+v", g)
	}
	want := groupDoc{Name: "club two", Members: []string{"alice", "bob", "dave", "erin"}, Admins: []string{"alice", "bob"}}
	same := func(g groupDoc) bool {
		return g.Name == want.Name && slices.Equal(g.Members, want.Members) && slices.Equal(g.Admins, want.Admins)
	}
	for _, n := range names {
		got := waitGroup(t, n, envs[n], id, same)
		if got.Member != (n != "carol") {
			t.Errorf("%s's home: member %v", n, got.Member)
		}
	}

	// After it: bob, erin and the bot write; carol gets none of it.
	for _, ev := range []string{"create", "admin", "add", "rename", "remove"} {
		bot.waitFor(t, "the bot's group event "+ev, 10*time.Second, func(e map[string]any) bool {
			return e["event"] == "group" && e["group"] == id && e["op"] == ev
		})
	}
	sent("bob", "after the removal, from bob", 3)
	sent("erin", "after the removal, from erin", 3)
	res := bot.do(t, map[string]any{"cmd": "chat", "group": "club two", "text": "after the removal, from the bot"})
	if res["group"] != id || res["members"] != 3.0 || res["delivered"] != 3.0 {
		t.Errorf("the bot's chat: %v, want delivered to the 3 other members", res)
	}
	for _, from := range []string{"alice", "bob", "erin"} {
		bot.waitFor(t, "the bot gets "+from+"'s message", 10*time.Second, func(e map[string]any) bool {
			return e["event"] == "message" && e["group"] == id && e["from"] == from && e["group_name"] == "club two"
		})
	}
	if res := bot.do(t, map[string]any{"cmd": "group", "op": "info", "group": id}); res["name"] != "club two" || res["member"] != true {
		t.Errorf("the bot's group info: %v", res)
	}

	wantAll := map[string][]string{
		"alice": {"before the removal, from alice"}, "bob": {"after the removal, from bob"},
		"erin": {"after the removal, from erin"}, "dave": {"after the removal, from the bot"},
	}
	for _, n := range []string{"alice", "bob", "dave", "erin"} {
		deadline := time.Now().Add(15 * time.Second)
		for {
			by, recs := groupHistory(t, envs[n], id)
			if fmt.Sprint(by) == fmt.Sprint(wantAll) {
				for _, r := range recs {
					if r["group"] != id || r["to"] != nil {
						t.Errorf("%s's history: %v, want group %s and no to", n, r, id)
					}
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s's history of the group, by sender: %v, want %v", n, by, wantAll)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if by, _ := groupHistory(t, carol, id); fmt.Sprint(by) != fmt.Sprint(map[string][]string{"alice": {"before the removal, from alice"}}) {
		t.Errorf("carol's history of the group: %v, want alice's message only (none after her removal)", by)
	}
	for _, e := range listeners["carol"].events(t, "message") {
		if strings.HasPrefix(fmt.Sprint(e["text"]), "after the removal") {
			t.Errorf("carol, removed, got %v", e)
		}
	}

	// Mistakes.
	wantFail(alice, 1, `parley: group "nope": no such group`, "group", "info", "nope")
	wantFail(alice, 1, `parley: group "nope": no such group`, "chat", "--group", "nope", "hi")
	wantFail(alice, 2, `parley: group: unknown subcommand "lsit": did you mean "list"?`, "group", "lsit")
	wantFail(carol, 1, "parley: message to group club two: not a member of the group", "chat", "--group", id, "still here?")
	groupCmd(t, alice, "create", "club two", "bob")
	wantFail(alice, 1, `parley: group "club two": 2 groups match (use the id): several groups have that name`, "history", "--group", "club two")
	if g = groupCmd(t, alice, "info", id[:6]); g.ID != id {
		t.Errorf("group info by a prefix of the id: %+v", g)
	}
	t.Logf("TestCLIGroups: %v", time.Since(began).Round(time.Millisecond))
}

// TestCLIGroupChangeFromTheSameHome: a change made by a one-shot command
// (`parley group remove`) on the home of a running conversation (`parley
// chat --group`) holds for that conversation at once: the next line it
// sends does not reach the member removed.
func TestCLIGroupChangeFromTheSameHome(t *testing.T) {
	loginURL := upNetwork(t)
	envs := chatUsers(t, loginURL, "alice", "bob", "carol")
	alice, carol := envs["alice"], envs["carol"]
	carolListen := start(t, carol, "listen", "--json")
	waitOnline(t, carolListen)
	g := groupCmd(t, alice, "create", "club", "bob", "carol")
	waitGroup(t, "carol", carol, g.ID, func(g groupDoc) bool { return g.Member })

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	conv := startWith(t, "", r, alice, "chat", "--group", "club", "--json")
	r.Close()
	t.Cleanup(func() { w.Close() })
	waitLine(t, conv, "the conversation online (carol's presence)", 10*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "presence" && ev["peer"] == "carol"
	})
	fmt.Fprintln(w, "before")
	waitLine(t, carolListen, "the line before the removal", 10*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "message" && ev["text"] == "before"
	})
	if g = groupCmd(t, alice, "remove", "club", "carol"); slices.Contains(g.Members, "carol") {
		t.Fatalf("group remove: %+v", g)
	}
	waitGroup(t, "carol", carol, g.ID, func(g groupDoc) bool { return !g.Member })
	fmt.Fprintln(w, "after")
	var sent map[string]any // the second line's result
	for deadline := time.Now().Add(10 * time.Second); sent == nil; time.Sleep(50 * time.Millisecond) {
		out, _ := conv.output()
		if n := strings.Count(out, `"event":"sent"`); n >= 2 {
			for _, ev := range jsonObjects(out) {
				if ev["event"] == "sent" {
					sent = ev
				}
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("alice's conversation sent no second line:\n%s", out)
		}
	}
	time.Sleep(time.Second)
	for _, ev := range carolListen.events(t, "message") {
		if ev["text"] == "after" {
			t.Errorf("carol, removed by a one-shot command on alice's home, got the conversation's next line: %v (alice's conversation: %v)", ev, sent)
		}
	}
}

// TestCLIGroupHelp: `parley help group`, `parley group --help` and `parley
// group -h` print the subcommands on stdout and exit 0, as contacts does;
// each subcommand's help says what its --json prints.
func TestCLIGroupHelp(t *testing.T) {
	env := noNetwork(t)
	for _, args := range [][]string{{"help", "group"}, {"group", "--help"}, {"group", "-h"}, {"group", "help"}} {
		out, errOut, code := runParley(t, env, args...)
		if code != 0 || !strings.HasPrefix(out, "usage: parley group SUBCOMMAND") || !strings.Contains(out, "rename GROUP NAME") || errOut != "" {
			t.Errorf("parley %s: exit %d, stdout %q, stderr %q; want exit 0 and the subcommands on stdout", strings.Join(args, " "), code, out, errOut)
		}
	}
	for sub, want := range map[string]string{
		"list": `{"id","name","members","admins","member"} per group`,
		"info": `{"event":"result","cmd":"group info","id","name","members","admins","member"}`,
	} {
		if out, _, _ := runParley(t, env, "help", "group", sub); !strings.Contains(out, want) || sub != "list" && strings.Contains(out, "per group") {
			t.Errorf("parley help group %s:\n%s\nwant --json to print %s", sub, out, want)
		}
	}
}
