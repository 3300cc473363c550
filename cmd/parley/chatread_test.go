package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCLIReadAndTyping: read receipts and typing between two CLI users.
// alice runs a conversation with `parley chat bob --read --json`; bob is a
// bot (`listen --json --commands`). What bob writes is printed at alice's
// and acknowledged as read (bob gets a read event); bob's typing commands
// show at alice's as typing events; what alice writes bob marks read with
// the read command, and alice's conversation prints the read event. The
// history says read on both sides. Every line is checked against the
// schemas (startWith's cleanup, botProc.send).
func TestCLIReadAndTyping(t *testing.T) {
	loginURL := upNetwork(t)
	alice, bob := cliUser(t, loginURL, "alice"), cliUser(t, loginURL, "bob")
	if out, errOut, code := runParley(t, alice, "contacts", "add", "bob"); code != 0 {
		t.Fatalf("contacts add: %s%s", out, errOut)
	}
	if out, errOut, code := runParley(t, bob, "contacts", "accept", "alice"); code != 0 {
		t.Fatalf("contacts accept: %s%s", out, errOut)
	}
	if _, errOut, code := runParley(t, alice, "chat", "--read", "bob", "hi"); code != 2 || !strings.Contains(errOut, "--read goes with a conversation") {
		t.Errorf("chat --read with a message: exit %d, %q; want 2 and a usage error", code, errOut)
	}
	b := startBot(t, bob)
	waitOnline(t, b.proc)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	conv := startWith(t, "", r, alice, "chat", "bob", "--read", "--json")
	r.Close()
	t.Cleanup(func() { w.Close() })
	b.waitFor(t, "alice online at bob's", 15*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "presence" && ev["peer"] == "alice" && ev["status"] == "online"
	})

	// bob → alice: printed, so read.
	start := time.Now()
	id := b.do(t, map[string]any{"cmd": "chat", "peer": "alice", "text": "did you read this?"})["message_id"]
	waitLine(t, conv, "bob's message at alice's", 10*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "message" && ev["id"] == id
	})
	read := b.waitFor(t, "the read receipt at bob's", 10*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "read" && ev["peer"] == "alice" && slices.Contains(ev["ids"].([]any), id)
	})
	t.Logf("bob saw alice read his message %v after sending it (via %v)", time.Since(start).Round(time.Millisecond), read["via"])

	// bob types, then stops: alice's conversation prints both.
	for _, active := range []bool{true, false} {
		if res := b.do(t, map[string]any{"cmd": "typing", "peer": "alice", "active": active}); res["sent"] != true || res["active"] != active {
			t.Errorf("typing %v: %v, want sent", active, res)
		}
		waitLine(t, conv, fmt.Sprintf("bob typing %v at alice's", active), 10*time.Second, func(ev map[string]any) bool {
			return ev["event"] == "typing" && ev["peer"] == "bob" && ev["active"] == active && ev["via"] == "supernode"
		})
	}
	// A second start within the interval is skipped by the rate limit.
	b.do(t, map[string]any{"cmd": "typing", "peer": "alice"})
	if res := b.do(t, map[string]any{"cmd": "typing", "peer": "alice"}); res["sent"] != false {
		t.Errorf("a second typing within 3 s: %v, want skipped", res)
	}

	// alice → bob: bob reads it with the read command.
	if _, err := w.WriteString("and did you read mine?\n"); err != nil {
		t.Fatal(err)
	}
	mine := waitLine(t, conv, "the result of alice's line", 10*time.Second, func(ev map[string]any) bool { return ev["event"] == "sent" })["id"]
	b.waitFor(t, "alice's message at bob's", 10*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "message" && ev["id"] == mine
	})
	if res := b.do(t, map[string]any{"cmd": "read", "peer": "alice"}); fmt.Sprint(res["ids"]) != fmt.Sprint([]any{mine}) {
		t.Errorf("read: %v, want ids [%v]", res, mine)
	}
	if res := b.do(t, map[string]any{"cmd": "read", "peer": "alice", "ids": []string{mine.(string)}}); len(res["ids"].([]any)) != 0 {
		t.Errorf("read again: %v, want no ids", res)
	}
	waitLine(t, conv, "bob's read receipt at alice's", 10*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "read" && ev["peer"] == "bob" && slices.Contains(ev["ids"].([]any), mine)
	})

	// The history says read, both ways.
	out, errOut, code := runParley(t, alice, "history", "bob", "--json")
	if code != 0 {
		t.Fatalf("history: %s%s", out, errOut)
	}
	for _, m := range jsonObjects(out) {
		if m["state"] != "read" {
			t.Errorf("alice's history: %v, want read", m)
		}
	}
}

// jsonObjects parses the JSON objects among the lines of out (results of `chat`
// such as "sent" have no ts, and records no event: jsonLines refuses them).
func jsonObjects(out string) []map[string]any {
	var evs []map[string]any
	for _, l := range strings.Split(out, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			evs = append(evs, m)
		}
	}
	return evs
}

// waitLine returns the first JSON line p printed that ok accepts, waiting
// for it up to within.
func waitLine(t *testing.T, p *proc, what string, within time.Duration, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, _ := p.output()
		for _, ev := range jsonObjects(out) {
			if ok(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			out, errOut := p.output()
			t.Fatalf("no %s after %v\nstdout:\n%s\nstderr:\n%s", what, within, out, errOut)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
