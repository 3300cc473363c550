package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The tests in this file hold the command line's manners: help and version,
// "did you mean", --json everywhere, one line per error, nothing printed
// that an error makes moot, and short commands that leave presence alone.

// noNetwork is the environment of a command that must fail or answer before
// it goes anywhere.
func noNetwork(t *testing.T) []string {
	return []string{"PARLEY_HOME=" + t.TempDir(), "PARLEY_LOGIN=http://" + freePort(t), "PARLEY_PASSWORD="}
}

// TestCLIHelpAndVersion: --help, -h, help and help COMMAND print help on
// stdout and exit 0; version prints the module version and the revision
// the build was stamped with.
func TestCLIHelpAndVersion(t *testing.T) {
	env := noNetwork(t)
	const top = "usage: parley [global flags] COMMAND"
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--help"}, top},
		{[]string{"-h"}, top},
		{[]string{"help"}, top},
		{[]string{"help", "call"}, "usage: parley call [flags] USER"},
		{[]string{"call", "--help"}, "usage: parley call [flags] USER"},
		{[]string{"call", "-h"}, "usage: parley call [flags] USER"},
		{[]string{"help", "contacts"}, "usage: parley contacts SUBCOMMAND"},
		{[]string{"help", "contacts", "add"}, "usage: parley contacts add [flags] USER"},
		{[]string{"supernode", "-h"}, "usage: parley supernode [flags]"},
	} {
		out, errOut, code := runParley(t, env, tt.args...)
		if code != 0 || !strings.HasPrefix(out, tt.want) || errOut != "" {
			t.Errorf("parley %s: exit %d, stdout starts %.60q, stderr %q; want exit 0, %q on stdout, nothing on stderr",
				strings.Join(tt.args, " "), code, out, errOut, tt.want)
		}
	}
	out, errOut, code := runParley(t, env, "version")
	want := "parley (devel), revision " + testRevision + ", go"
	if code != 0 || !strings.HasPrefix(out, want) || strings.Count(out, "\n") != 1 {
		t.Errorf("parley version: exit %d, %q (stderr %q); want one line starting %q", code, out, errOut, want)
	}
	out, _, code = runParley(t, env, "version", "--json")
	var v map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v["event"] != "result" || v["cmd"] != "version" || v["ts"] == nil ||
		v["version"] != "(devel)" || v["revision"] != testRevision || !strings.HasPrefix(fmt.Sprint(v["go"]), "go") {
		t.Errorf("parley version --json: exit %d, %q", code, out)
	}
}

// TestCLIDidYouMean: a mistyped command or flag is one line on stderr with
// the nearest name, exit 2, nothing on stdout.
func TestCLIDidYouMean(t *testing.T) {
	env := noNetwork(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"cal"}, `parley: unknown command "cal": did you mean "call"?`},
		{[]string{"lokup", "bob"}, `parley: unknown command "lokup": did you mean "lookup"?`},
		{[]string{"help", "cal"}, `parley: unknown command "cal": did you mean "call"?`},
		{[]string{"call", "--plya", "x.wav", "bob"}, `parley: call: unknown flag --plya: did you mean --play?`},
		{[]string{"call", "bob", "-recrod", "x.wav"}, `parley: call: unknown flag --recrod: did you mean --record?`},
		{[]string{"--hmoe", "/tmp", "lookup", "bob"}, `parley: unknown flag --hmoe: did you mean --home?`},
		{[]string{"contacts", "lsit"}, `parley: contacts: unknown subcommand "lsit": did you mean "list"?`},
		{[]string{"frobnicate"}, `parley: unknown command "frobnicate"`},
		{[]string{"call", "--frobnicate", "bob"}, `parley: call: unknown flag --frobnicate`},
		{[]string{"call", "--for", "soon", "bob"}, `parley: call: invalid value "soon" for flag --for`},
		{[]string{"call"}, `parley: call: expected USER`},
		{[]string{"listen", "bob"}, `parley: listen: takes no arguments`},
	} {
		out, errOut, code := runParley(t, env, tt.args...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, tt.want) {
			t.Errorf("parley %s: exit %d, stdout %q, stderr %q; want exit 2, one line starting %q",
				strings.Join(tt.args, " "), code, out, errOut, tt.want)
		}
	}
}

// docFlags reads docs/cli.md: the global flags (its first table), and the
// table of each command's flags: command → its own flags and the global
// flags it takes.
func docFlags(t *testing.T) (globals []string, own, global map[string][]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "cli.md"))
	if err != nil {
		t.Fatal(err)
	}
	flagRE := regexp.MustCompile("`(--[a-z-]+)")
	own, global = map[string][]string{}, map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			section = line
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		switch section {
		case "## Global flags and environment":
			globals = append(globals, flagRE.FindStringSubmatch(cells[1])[1])
		case "## Flags of each command":
			cmd := strings.Trim(strings.TrimSpace(cells[1]), "`")
			own[cmd] = []string{}
			for _, m := range flagRE.FindAllStringSubmatch(cells[2], -1) {
				own[cmd] = append(own[cmd], m[1])
			}
			if strings.TrimSpace(cells[3]) == "all" {
				global[cmd] = globals
				continue
			}
			global[cmd] = []string{}
			for _, m := range flagRE.FindAllStringSubmatch(cells[3], -1) {
				global[cmd] = append(global[cmd], m[1])
			}
		}
	}
	if len(globals) == 0 || len(own) == 0 {
		t.Fatal(`docs/cli.md: no global flags table or no "## Flags of each command" table`)
	}
	return globals, own, global
}

// helpFlags reads `parley help CMD`: the flags under "Flags:" and under
// "Global flags:", and any line showing a flag with one dash.
func helpFlags(t *testing.T, cmd string) (own, global []string, oneDash []string) {
	t.Helper()
	out, errOut, code := runParley(t, noNetwork(t), append([]string{"help"}, strings.Fields(cmd)...)...)
	if code != 0 {
		t.Fatalf("parley help %s: exit %d: %s", cmd, code, errOut)
	}
	var list *[]string
	for _, line := range strings.Split(out, "\n") {
		switch {
		case line == "Flags:":
			list = &own
		case line == "Global flags:":
			list = &global
		case strings.HasPrefix(line, "  --") && list != nil:
			*list = append(*list, strings.Fields(line)[0])
		case regexp.MustCompile(`^\s+-[a-z]`).MatchString(line):
			oneDash = append(oneDash, line)
		}
	}
	return own, global, oneDash
}

// TestCLIHelpListsOwnFlags: each command's help lists its own flags with two
// dashes, and only the global flags it takes (servers take no client flags);
// docs/cli.md lists the same, and every command of `parley help`.
func TestCLIHelpListsOwnFlags(t *testing.T) {
	_, docOwn, docGlobal := docFlags(t)
	top, _, _ := runParley(t, noNetwork(t), "help")
	cmdRE := regexp.MustCompile(`^  ([a-z][a-z-]*)`)
	for _, line := range strings.Split(top, "\n") {
		if m := cmdRE.FindStringSubmatch(line); m != nil && m[1] != "help" {
			found := false
			for c := range docOwn {
				found = found || strings.Fields(c)[0] == m[1]
			}
			if !found {
				t.Errorf("parley help lists %q; docs/cli.md's table of flags does not", m[1])
			}
		}
	}
	for cmd := range docOwn {
		own, global, oneDash := helpFlags(t, cmd)
		if len(oneDash) > 0 {
			t.Errorf("parley help %s shows flags with one dash: %q", cmd, oneDash)
		}
		slices.Sort(own)
		slices.Sort(global)
		want, wantGlobal := slices.Sorted(slices.Values(docOwn[cmd])), slices.Sorted(slices.Values(docGlobal[cmd]))
		if !slices.Equal(own, want) {
			t.Errorf("parley help %s: flags %q; docs/cli.md: %q", cmd, own, want)
		}
		if !slices.Equal(global, wantGlobal) {
			t.Errorf("parley help %s: global flags %q; docs/cli.md: %q", cmd, global, wantGlobal)
		}
		switch cmd {
		case "up", "login-server", "supernode", "relay":
			for _, f := range []string{"--home", "--user", "--supernode"} {
				if slices.Contains(own, f) || slices.Contains(global, f) {
					t.Errorf("parley help %s lists the client flag %s", cmd, f)
				}
			}
		}
	}
}

// oneDoc runs parley and returns its stdout as one JSON document, failing
// unless it exits 0 with exactly one line on stdout.
func oneDoc(t *testing.T, env []string, args ...string) map[string]any {
	t.Helper()
	out, errOut, code := runParley(t, env, args...)
	var m map[string]any
	if code != 0 || strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &m) != nil {
		t.Fatalf("parley %s: exit %d, stdout %q, stderr %q; want exit 0 and one JSON document", strings.Join(args, " "), code, out, errOut)
	}
	return m
}

// wantDoc compares a JSON document with what it should be, but for its "ts",
// which it checks is a time.
func wantDoc(t *testing.T, what string, got map[string]any, want string) {
	t.Helper()
	if ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(got["ts"])); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("%s: ts %v, want the time it was printed", what, got["ts"])
	}
	got = maps.Clone(got)
	delete(got, "ts")
	var w map[string]any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, w) {
		b, _ := json.Marshal(got)
		t.Errorf("%s: %s, want %s", what, b, want)
	}
}

// allJSON fails unless every line of out is a JSON object.
func allJSON(t *testing.T, what, out string) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		var m map[string]any
		if line != "" && json.Unmarshal([]byte(line), &m) != nil {
			t.Errorf("%s: not a JSON line: %q", what, line)
		}
		n++
	}
	return n
}

// TestCLIJSONEverywhere: every client command takes --json and then prints
// JSON only on stdout: one document for a one-shot command, JSON lines for
// lists and streams; a failure is one line on stderr and an error document
// on stdout.
func TestCLIJSONEverywhere(t *testing.T) {
	loginURL := upNetwork(t)
	alice, bob := userEnv(t, loginURL, "alice-password"), userEnv(t, loginURL, "bob-password")
	wantDoc(t, "register alice", oneDoc(t, alice, "register", "alice", "--json"), `{"event":"result","cmd":"register","user":"alice"}`)
	wantDoc(t, "register bob", oneDoc(t, bob, "--json", "register", "bob"), `{"event":"result","cmd":"register","user":"bob"}`)
	alice2 := userEnv(t, loginURL, "alice-password")
	wantDoc(t, "login", oneDoc(t, alice2, "login", "alice", "--json"), `{"event":"result","cmd":"login","user":"alice"}`)
	wantDoc(t, "contacts add", oneDoc(t, alice, "contacts", "add", "bob", "--json"), `{"event":"result","cmd":"contacts add","peer":"bob","state":"requested"}`)
	wantDoc(t, "contacts accept", oneDoc(t, bob, "contacts", "accept", "alice", "--json"), `{"event":"result","cmd":"contacts accept","peer":"alice","state":"accepted"}`)
	wantDoc(t, "status", oneDoc(t, alice, "status", "--json"), `{"event":"result","cmd":"status","status":"online"}`)
	wantDoc(t, "status away", oneDoc(t, alice, "status", "away", "--json"), `{"event":"result","cmd":"status","status":"away"}`)
	sent := oneDoc(t, alice, "chat", "bob", "hello", "--json")
	if sent["event"] != "sent" || sent["peer"] != "bob" || sent["stored"] != true {
		t.Errorf("chat bob hello --json: %v", sent)
	}
	wantDoc(t, "passwd", oneDoc(t, append(alice2, "PARLEY_NEW_PASSWORD=alice-password-2"), "passwd", "--json"), `{"event":"result","cmd":"passwd","user":"alice"}`)
	for _, args := range [][]string{
		{"contacts", "list", "--json"}, {"lookup", "bob", "alice", "--json"}, {"search", "a", "--json"}, {"history", "bob", "--json"},
	} {
		out, errOut, code := runParley(t, alice, args...)
		if code != 0 || allJSON(t, strings.Join(args, " "), out) == 0 {
			t.Errorf("parley %s: exit %d, stdout %q, stderr %q", strings.Join(args, " "), code, out, errOut)
		}
	}
	wantDoc(t, "contacts decline", oneDoc(t, bob, "contacts", "decline", "alice", "--json"), `{"event":"result","cmd":"contacts decline","peer":"alice","state":"none"}`)

	// Failures: the line on stderr, and the same as an error document.
	for _, tt := range []struct {
		args []string
		code int
		line string
	}{
		{[]string{"contacts", "add", "zed", "--json"}, 1, "parley: add contact zed: unknown user"},
		{[]string{"call", "zed", "--json"}, 1, "parley: call zed: unknown user"},
		{[]string{"chat", "bob", "hi", "--json"}, 1, "parley: message to bob: not a contact yet: send a contact request first (parley contacts add USER)"},
		{[]string{"status", "bogus", "--json"}, 2, `parley: status: "bogus": must be one of online, away, busy, invisible`},
		{[]string{"cal", "--json"}, 2, `parley: unknown command "cal": did you mean "call"?`},
		{[]string{"--json", "call", "--plya", "x", "bob"}, 2, `parley: call: unknown flag --plya: did you mean --play?`},
	} {
		out, errOut, code := runParley(t, alice, tt.args...)
		what := "parley " + strings.Join(tt.args, " ")
		if code != tt.code || lastLine(errOut) != tt.line || strings.Count(errOut, "parley: ") != 1 {
			t.Errorf("%s: exit %d, stderr %q; want exit %d, %q", what, code, errOut, tt.code, tt.line)
		}
		var m map[string]any
		if strings.Count(out, "\n") != 1 || json.Unmarshal([]byte(out), &m) != nil {
			t.Errorf("%s: stdout %q, want one JSON document", what, out)
			continue
		}
		want, _ := json.Marshal(map[string]any{"event": "error", "error": tt.line, "code": tt.code})
		wantDoc(t, what, m, string(want))
	}
}

// runStdin runs parley to completion with stdin.
func runStdin(t *testing.T, env []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, parleyBin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.Run()
	return out.String(), errOut.String(), cmd.ProcessState.ExitCode()
}

// TestCLIChatShowsEachDeliveryOnce: a conversation on stdin prints one line
// per delivered message (the send result), not the receipt again.
func TestCLIChatShowsEachDeliveryOnce(t *testing.T) {
	loginURL := upNetwork(t)
	envs := chatUsers(t, loginURL, "alice", "bob")
	waitOnline(t, start(t, envs["bob"], "listen", "--json"))
	for round := range 3 {
		out, errOut, code := runStdin(t, envs["alice"], "one\ntwo\nthree\n", "chat", "bob")
		if n := strings.Count(out, "delivered to bob"); code != 0 || n != 3 {
			t.Errorf("round %d, text: exit %d, %d lines say delivered, want 3:\n%s%s", round, code, n, out, errOut)
		}
		out, errOut, code = runStdin(t, envs["alice"], "one\ntwo\nthree\n", "chat", "bob", "--json")
		told := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var ev struct {
				Event     string
				ID        string
				IDs       []string
				Delivered bool
			}
			json.Unmarshal([]byte(line), &ev)
			switch {
			case ev.Event == "sent" && ev.Delivered:
				told[ev.ID]++
			case ev.Event == "delivered":
				for _, id := range ev.IDs {
					told[id]++
				}
			}
		}
		if code != 0 || len(told) != 3 {
			t.Errorf("round %d, JSON: exit %d, deliveries of %d messages, want 3:\n%s%s", round, code, len(told), out, errOut)
		}
		for id, n := range told {
			if n != 1 {
				t.Errorf("round %d, JSON: message %s told delivered %d times:\n%s", round, id, n, out)
			}
		}
	}
}

// TestCLICallPrintsNothingBeforeItsError: a call that fails before it rings
// prints its error only, not the "online" and presence lines before it.
func TestCLICallPrintsNothingBeforeItsError(t *testing.T) {
	loginURL := upNetwork(t)
	envs := chatUsers(t, loginURL, "alice", "bob", "carol")
	waitOnline(t, start(t, envs["bob"], "listen", "--json"))
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"call", "zed"}, "parley: call zed: unknown user\n"},
		{[]string{"call", "carol"}, "parley: call carol: user is offline\n"},
	} {
		out, errOut, code := runParley(t, envs["alice"], tt.args...)
		if code != 1 || out != "" || errOut != tt.want {
			t.Errorf("parley %s: exit %d, stdout %q, stderr %q; want exit 1, nothing on stdout, %q", strings.Join(tt.args, " "), code, out, errOut, tt.want)
		}
	}
	// A call that rings prints what happened, from "online" on.
	out, errOut, code := runParley(t, envs["alice"], "call", "echo", "--for", "1s")
	if code != 0 || !strings.Contains(out, "online as alice") || !strings.Contains(out, "connected with echo") {
		t.Errorf("call echo: exit %d\n%s%s", code, out, errOut)
	}
}

// TestCLIShortCommandsLeavePresenceAlone: a user's one-off commands (lookup,
// contacts, status, search, one message) do not show their contacts the
// user going online and offline: neither while the user is offline nor
// while online (away) on another device.
func TestCLIShortCommandsLeavePresenceAlone(t *testing.T) {
	loginURL := upNetwork(t)
	envs := chatUsers(t, loginURL, "alice", "bob")
	alice, bob := envs["alice"], envs["bob"]
	watcher := start(t, alice, "listen", "--json")
	waitOnline(t, watcher)
	presence := func() []string {
		var seen []string
		for _, ev := range watcher.events(t, "presence") {
			if ev["peer"] == "bob" {
				seen = append(seen, fmt.Sprint(ev["status"]))
			}
		}
		return seen
	}
	short := [][]string{
		{"lookup", "alice"}, {"contacts", "list"}, {"status"}, {"search", "a"},
		{"chat", "alice", "hi"}, {"contacts", "accept", "alice"}, {"history", "alice"},
	}
	runShort := func(when string) {
		t.Helper()
		before := presence()
		for _, args := range short {
			if out, errOut, code := runParley(t, bob, args...); code != 0 {
				t.Fatalf("%s: parley %s: exit %d\n%s%s", when, strings.Join(args, " "), code, out, errOut)
			}
		}
		time.Sleep(1500 * time.Millisecond)
		if after := presence(); len(after) != len(before) {
			t.Errorf("%s: alice saw bob's presence %q while bob ran %q, want no change", when, after[len(before):], short)
		}
	}
	runShort("bob offline")

	bob2 := userEnv(t, loginURL, "bob-password")
	mustRun(t, bob2, "logged in as bob", "login", "bob")
	waitOnline(t, start(t, bob2, "listen", "--json"))
	mustRun(t, bob2, "status set to away", "status", "away")
	deadline := time.Now().Add(5 * time.Second)
	for seen := presence(); len(seen) == 0 || seen[len(seen)-1] != "away"; seen = presence() {
		if time.Now().After(deadline) {
			t.Fatalf("alice never saw bob away: %q", seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
	runShort("bob online (away) on another device")
}

// TestCLIErrorsNameTheirCause: a failure says what is wrong where, not a
// consequence: the login server that does not answer, the missing
// supernode with what to do about it, the wrong password.
func TestCLIErrorsNameTheirCause(t *testing.T) {
	dead := "http://" + freePort(t)
	noPassword := []string{"PARLEY_LOGIN=" + dead, "PARLEY_HOME=" + t.TempDir(), "PARLEY_USER=alice", "PARLEY_PASSWORD="}
	for _, args := range [][]string{{"lookup", "bob"}, {"contacts", "list"}, {"chat", "bob", "hi"}, {"call", "bob"}, {"status"}} {
		_, errOut, code := runParley(t, noPassword, args...)
		if want := "login server unreachable at " + dead; code != 1 || !strings.Contains(errOut, want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("parley %s with the login server down: exit %d, stderr %q; want one line saying %q", strings.Join(args, " "), code, errOut, want)
		}
	}

	// A login server and no supernode.
	addr := freePort(t)
	loginURL := "http://" + addr
	start(t, nil, "login-server", "--listen", addr, "--data", t.TempDir())
	waitHTTP(t, loginURL+"/healthz")
	carol := userEnv(t, loginURL, "carol-password")
	mustRun(t, carol, "registered carol", "register", "carol")
	for _, args := range [][]string{{"lookup", "bob"}, {"call", "bob"}} {
		_, errOut, code := runParley(t, carol, args...)
		want := "parley: no supernode is listed by the login server at " + loginURL + ": start one (parley supernode) or run parley up\n"
		if code != 1 || errOut != want {
			t.Errorf("parley %s without a supernode: exit %d, stderr %q; want %q", strings.Join(args, " "), code, errOut, want)
		}
	}
	for _, tt := range []struct {
		env  []string
		want string
	}{
		{[]string{"PARLEY_LOGIN=" + loginURL, "PARLEY_HOME=" + t.TempDir(), "PARLEY_USER=carol", "PARLEY_PASSWORD=not-her-password"}, "parley: wrong user name or password\n"},
		{[]string{"PARLEY_LOGIN=" + loginURL, "PARLEY_HOME=" + t.TempDir(), "PARLEY_USER=zed", "PARLEY_PASSWORD=whatever-password"}, "parley: wrong user name or password\n"},
		{[]string{"PARLEY_LOGIN=" + loginURL, "PARLEY_HOME=" + t.TempDir(), "PARLEY_USER=carol", "PARLEY_PASSWORD="}, "parley: a password is needed: set PARLEY_PASSWORD or run interactively\n"},
	} {
		if _, errOut, code := runParley(t, tt.env, "lookup", "bob"); code != 1 || errOut != tt.want {
			t.Errorf("parley lookup bob (%s): exit %d, stderr %q; want %q", tt.env[2:], code, errOut, tt.want)
		}
	}
}
