package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/parley/parley/wire/loginapi"
)

// deviceRow is one line of `parley devices --json`.
type deviceRow struct {
	Key        string `json:"key"`
	Registered string `json:"registered"`
	LastSeen   string `json:"last_seen"`
	Encryption bool   `json:"encryption"`
	Self       bool   `json:"self"`
}

// devicesOf runs `parley devices --json` in env: the devices by key, and
// this home's key.
func devicesOf(t *testing.T, env []string) (rows map[string]deviceRow, self string) {
	t.Helper()
	out, errOut, code := runParley(t, env, "devices", "--json")
	if code != 0 {
		t.Fatalf("devices --json: exit %d: %s%s", code, out, errOut)
	}
	rows = map[string]deviceRow{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r deviceRow
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("devices --json: not a JSON line: %q", line)
		}
		rows[r.Key] = r
		if r.Self {
			if self != "" {
				t.Fatalf("devices --json: two devices marked self:\n%s", out)
			}
			self = r.Key
		}
	}
	return rows, self
}

// sealedTo returns the keys a sender (bob, from a device of his own) would
// seal a message to alice for: her device list, from the login API.
func sealedTo(t *testing.T, loginURL string) map[string]bool {
	t.Helper()
	ctx := context.Background()
	lc := loginapi.NewClient(loginURL, nil)
	pub, _, _ := ed25519.GenerateKey(nil)
	resp, err := lc.Login(ctx, "bob", "bob-password", pub)
	if err != nil {
		t.Fatal(err)
	}
	list, err := lc.Devices(ctx, resp.Credential, "alice")
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]bool{}
	for _, d := range list {
		keys[loginapi.DeviceKeyString(d.Key)] = true
	}
	return keys
}

// TestCLIDevices: two devices of one user (two homes) list each other, this
// one marked; one removes the other, which then gets nothing more: the
// login server refuses its credential and its renewal with a clear error,
// and senders no longer seal messages to it; a password login on it brings
// it back.
func TestCLIDevices(t *testing.T) {
	loginURL := upNetwork(t)
	home1, home2 := userEnv(t, loginURL, "alice-password"), userEnv(t, loginURL, "alice-password")
	bob := userEnv(t, loginURL, "bob-password")
	mustRun(t, home1, "registered", "register", "alice")
	mustRun(t, home2, "logged in as alice", "login", "alice")
	mustRun(t, bob, "registered", "register", "bob")
	mustRun(t, bob, "contact request sent to alice", "contacts", "add", "alice")
	mustRun(t, home2, "bob is now a contact", "contacts", "accept", "bob")

	rows1, key1 := devicesOf(t, home1)
	rows2, key2 := devicesOf(t, home2)
	if len(rows1) != 2 || len(rows2) != 2 || key1 == "" || key2 == "" || key1 == key2 {
		t.Fatalf("devices: home1 sees %v (self %s), home2 %v (self %s); want both in each, each marking itself", rows1, key1, rows2, key2)
	}
	for _, r := range rows1 {
		if !r.Encryption || r.Registered == "" || r.LastSeen == "" {
			t.Errorf("device %+v: want registered (encryption) with times", r)
		}
	}
	if _, ok := rows1[key2]; !ok {
		t.Errorf("home1's list lacks home2's device %s", key2)
	}
	if got := sealedTo(t, loginURL); len(got) != 2 {
		t.Errorf("bob would seal to %v, want both of alice's devices", got)
	}
	out, _, _ := runParley(t, home1, "devices")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(out, key1[:12]+"\tlast seen ") || !strings.Contains(out, key2[:12]+"\tlast seen ") ||
		strings.Count(out, "\tthis device") != 1 || !strings.Contains(lines[0]+lines[1], key1[:12]) {
		t.Errorf("devices (text):\n%s\nwant a line per device, short keys %s and %s, %s marked this device", out, key1[:12], key2[:12], key1[:12])
	}
	for _, l := range lines {
		if strings.HasPrefix(l, key1[:12]) != strings.HasSuffix(l, "\tthis device") {
			t.Errorf("line %q: want \"this device\" on home1's own line only", l)
		}
	}

	// Mistakes: one line on stderr, exit 2 for the command line, 1 otherwise.
	unknown := "zzzzzzzzzz"
	if strings.HasPrefix(key1, unknown) || strings.HasPrefix(key2, unknown) {
		unknown = "yyyyyyyyyy"
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"devices", "remove"}, 2, "parley: devices remove: expected KEY"},
		{[]string{"devices", "remove", key2[:7]}, 2, "give 8 to 43 characters"},
		{[]string{"devices", "remove", key2[:8] + "+"}, 2, "base64url"},
		{[]string{"devices", "remove", key2[:8], key1[:8]}, 2, "devices remove"},
		{[]string{"devices", "--self"}, 2, "unknown flag --self"},
		{[]string{"devices", "remove", unknown}, 1, "parley: remove device " + unknown + ": not a registered device: none of your 2 devices has a key starting with it"},
		{[]string{"devices", "remove", key1[:8]}, 1, "that is this device"},
		{[]string{"devices", "remove", key1[:8], "--json"}, 1, "that is this device"},
	} {
		out, errOut, code := runParley(t, home1, tt.args...)
		what := "parley " + strings.Join(tt.args, " ")
		if code != tt.code || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tt.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d, one line with %q", what, code, errOut, tt.code, tt.want)
		}
		if !strings.Contains(what, "--json") && out != "" {
			t.Errorf("%s: stdout %q, want nothing", what, out)
		}
	}
	if rows, _ := devicesOf(t, home1); len(rows) != 2 {
		t.Fatalf("a refused removal removed something: %v", rows)
	}

	// home1 removes home2 by a prefix of its key.
	wantDoc(t, "devices remove", oneDoc(t, home1, "devices", "remove", key2[:10], "--json"),
		`{"event":"result","cmd":"devices remove","key":"`+key2+`","self":false}`)
	if rows, self := devicesOf(t, home1); len(rows) != 1 || self != key1 {
		t.Errorf("after the removal home1 sees %v, want itself only", rows)
	}
	if got := sealedTo(t, loginURL); len(got) != 1 || !got[key1] {
		t.Errorf("after the removal bob would seal to %v, want home1's device only", got)
	}

	// The removed device: its credential is refused at once, and so is its
	// renewal (it does not fall back to PARLEY_PASSWORD by itself).
	const removed = "device removed: this device was removed from the account; log in with the password on it to use it again"
	for _, args := range [][]string{{"devices"}, {"contacts", "list"}, {"status"}} {
		if out, errOut, code := runParley(t, home2, args...); code != 1 || out != "" || !strings.Contains(errOut, removed) {
			t.Errorf("parley %s on the removed device: exit %d, stdout %q, stderr %q; want exit 1 and %q",
				strings.Join(args, " "), code, out, errOut, removed)
		}
	}
	dropCredential(t, home2)
	if _, errOut, code := runParley(t, home2, "status"); code != 1 || !strings.Contains(errOut, removed) {
		t.Errorf("status on the removed device needing a renewal: exit %d, stderr %q; want exit 1 and %q", code, errOut, removed)
	}

	// A password login on it brings it back.
	mustRun(t, home2, "logged in as alice", "login", "alice")
	rows2, self2 := devicesOf(t, home2)
	if len(rows2) != 2 || self2 != key2 || !rows2[key2].Encryption {
		t.Errorf("after logging in again home2 sees %v (self %s), want both, itself %s registered", rows2, self2, key2)
	}
	if got := sealedTo(t, loginURL); len(got) != 2 || !got[key2] {
		t.Errorf("after logging in again bob would seal to %v, want both of alice's devices", got)
	}

	// A device may remove itself with --self.
	mustRun(t, home2, "removed this device ("+key2[:12]+"): log in again with the password to use it", "devices", "remove", key2[:8], "--self")
	if _, errOut, code := runParley(t, home2, "devices"); code != 1 || !strings.Contains(errOut, removed) {
		t.Errorf("devices after removing itself: exit %d, stderr %q", code, errOut)
	}
	if rows, _ := devicesOf(t, home1); len(rows) != 1 {
		t.Errorf("home1 sees %v after home2 removed itself, want itself only", rows)
	}
}

// dropCredential blanks the credential in env's home, as if it had expired:
// the next command must renew it with the refresh token.
func dropCredential(t *testing.T, env []string) {
	t.Helper()
	var home string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PARLEY_HOME="); ok {
			home = v
		}
	}
	p := filepath.Join(home, "state.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st["refresh_token"] == nil {
		t.Fatal("the home keeps no refresh token")
	}
	delete(st, "credential")
	delete(st, "expires")
	if b, err = json.Marshal(st); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
