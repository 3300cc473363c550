package main

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// contactRow is one line of `parley contacts list --json`.
type contactRow struct {
	User     string `json:"user"`
	State    string `json:"state"`
	Presence string `json:"presence"`
}

func contactsOf(t *testing.T, env []string) map[string]contactRow {
	t.Helper()
	out, errOut, code := runParley(t, env, "contacts", "list", "--json")
	if code != 0 {
		t.Fatalf("contacts list: exit %d: %s%s", code, out, errOut)
	}
	rows := map[string]contactRow{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var r contactRow
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("contacts list --json: not a JSON line: %q", line)
		}
		rows[r.User] = r
	}
	return rows
}

// waitPresence polls env's contact list until user shows presence want.
func waitPresence(t *testing.T, env []string, user, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var got contactRow
	for time.Now().Before(deadline) {
		got = contactsOf(t, env)[user]
		if got.State == "accepted" && got.Presence == want {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s in the contact list: %+v, want accepted and %q", user, got, want)
}

func mustRun(t *testing.T, env []string, wantOut string, args ...string) {
	t.Helper()
	out, errOut, code := runParley(t, env, args...)
	if code != 0 || !strings.Contains(out, wantOut) {
		t.Fatalf("parley %s: exit %d, stdout %q, want %q\nstderr: %s", strings.Join(args, " "), code, out, wantOut, errOut)
	}
}

// TestCLIContactsStatusSearch: requests, accept, decline and the contact list
// with live presence, status and search, through the real binary.
func TestCLIContactsStatusSearch(t *testing.T) {
	loginURL := upNetwork(t)
	alice, bob, carol := userEnv(t, loginURL, "alice-password"), userEnv(t, loginURL, "bob-password"), userEnv(t, loginURL, "carol-password")
	for name, env := range map[string][]string{"alice": alice, "bob": bob, "carol": carol} {
		mustRun(t, env, "registered", "register", name)
	}

	mustRun(t, alice, "contact request sent to bob", "contacts", "add", "bob")
	if got := contactsOf(t, bob)["alice"]; got.State != "pending" || got.Presence != "" {
		t.Errorf("bob's list: alice is %+v, want pending", got)
	}
	if got := contactsOf(t, alice)["bob"]; got.State != "requested" {
		t.Errorf("alice's list: bob is %+v, want requested", got)
	}
	mustRun(t, bob, "alice is now a contact", "contacts", "accept", "alice")
	if got := contactsOf(t, bob)["alice"]; got.State != "accepted" || got.Presence != "offline" {
		t.Errorf("bob's list: alice is %+v, want accepted and offline", got)
	}
	if got := contactsOf(t, alice)["bob"]; got.State != "accepted" || got.Presence != "offline" {
		t.Errorf("alice's list: bob is %+v, want accepted and offline", got)
	}

	// Presence: bob online, away, invisible, back, then gone.
	listener := start(t, bob, "listen", "--json")
	waitOnline(t, listener)
	waitPresence(t, alice, "bob", "online")
	out, _, _ := runParley(t, alice, "contacts", "list")
	if !strings.Contains(out, "bob\taccepted\tonline") {
		t.Errorf("contacts list (text) = %q, want a line bob, accepted, online", out)
	}
	mustRun(t, bob, "status set to away", "status", "away")
	mustRun(t, bob, "away", "status")
	waitPresence(t, alice, "bob", "away")
	mustRun(t, bob, "status set to invisible", "status", "invisible")
	mustRun(t, bob, "invisible", "status")
	waitPresence(t, alice, "bob", "offline")
	mustRun(t, bob, "status set to online", "status", "online")
	waitPresence(t, alice, "bob", "online")
	listener.cmd.Process.Signal(os.Interrupt)
	listener.wait(t, 10*time.Second)
	waitPresence(t, alice, "bob", "offline")

	// Decline ends the relation on both sides; adding a user who asked accepts.
	mustRun(t, carol, "contact request sent to alice", "contacts", "add", "alice")
	mustRun(t, alice, "carol is not a contact", "contacts", "decline", "carol")
	if _, ok := contactsOf(t, alice)["carol"]; ok {
		t.Error("alice's list still has carol after declining")
	}
	if _, ok := contactsOf(t, carol)["alice"]; ok {
		t.Error("carol's list still has alice after alice declined")
	}
	mustRun(t, carol, "contact request sent to alice", "contacts", "add", "alice")
	mustRun(t, alice, "carol is now a contact", "contacts", "add", "carol")
	if got := contactsOf(t, carol)["alice"]; got.State != "accepted" {
		t.Errorf("carol's list: alice is %+v, want accepted", got)
	}

	// Search.
	out, errOut, code := runParley(t, alice, "search", "bo")
	if code != 0 || !slices.Contains(strings.Fields(out), "bob") {
		t.Errorf("search bo: exit %d, %q, want bob\n%s", code, out, errOut)
	}
	out, _, _ = runParley(t, alice, "search", "c", "--limit", "1", "--json")
	if strings.TrimSpace(out) != `{"user":"carol"}` {
		t.Errorf("search c --limit 1 --json = %q, want {\"user\":\"carol\"}", out)
	}

	// What a user can get wrong: one clear line and the right exit code.
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"contacts"}, 2, "subcommand"},
		{[]string{"contacts", "frob"}, 2, "unknown subcommand"},
		{[]string{"contacts", "add"}, 2, "USER"},
		{[]string{"contacts", "add", "Not A User"}, 2, "invalid user name"},
		{[]string{"contacts", "add", "zed"}, 1, "add contact zed: unknown user"},
		{[]string{"contacts", "accept", "bob"}, 1, "no contact request"},
		{[]string{"status", "bogus"}, 2, "online, away, busy, invisible"},
		{[]string{"status", "away", "busy"}, 2, "status"},
		{[]string{"search", ""}, 2, "empty"},
		{[]string{"search"}, 2, "TEXT"},
		{[]string{"search", "a", "--limit", "0"}, 2, "--limit"},
	} {
		env := alice
		if tt.args[0] == "contacts" && len(tt.args) > 2 && tt.args[1] == "accept" {
			env = carol // carol has no request from bob
		}
		_, errOut, code := runParley(t, env, tt.args...)
		last := lastLine(errOut)
		if code != tt.code || !strings.HasPrefix(last, "parley: ") || !strings.Contains(last, tt.want) {
			t.Errorf("parley %q: exit %d, last line %q; want exit %d and a line mentioning %q\nstderr:\n%s", tt.args, code, last, tt.code, tt.want, errOut)
		}
		if strings.Contains(errOut, "goroutine ") {
			t.Errorf("parley %q: stack trace:\n%s", tt.args, errOut)
		}
	}
}
