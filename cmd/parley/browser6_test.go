package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/parley/parley/wire/loginapi"
)

// The page's "Your devices" in Settings and help (docs/web.md, "Your
// devices"): the user's devices as GET /api/v1/devices lists them, and
// removing one with DELETE /api/v1/devices/{key}, this browser included.

// pageDevice is one row of the page's device list.
type pageDevice struct {
	Key     string   // the short key shown
	Self    bool     // marked "this browser"
	Text    string   // what the row says (but its buttons)
	Buttons []string // its buttons' accessible names
}

// pageDevices is the page's device list as it shows it.
func (b *browser) pageDevices() []pageDevice {
	b.t.Helper()
	var rows []pageDevice
	raw := eval[string](b, `JSON.stringify([...document.querySelectorAll("#device-list li")].map((li) => ({
		key: li.querySelector(".device-key").textContent,
		self: !!li.querySelector(".badge.self"),
		text: li.querySelector(".device-text").textContent.replace(/\s+/g, " ").trim(),
		buttons: [...li.querySelectorAll("button")].map((x) => x.getAttribute("aria-label") || x.textContent),
	})))`, 5*time.Second)
	if err := json.Unmarshal([]byte(raw), &rows); err != nil {
		b.t.Fatal(err)
	}
	return rows
}

// deviceCount is a JavaScript condition: the page lists n devices (and is
// not removing one).
func deviceCount(n int) string {
	return fmt.Sprintf(`document.querySelectorAll("#device-list li").length === %d && !document.querySelector("#device-list button:disabled")`, n)
}

// lastSeen is a "last seen" of a device that logged in during the test.
var lastSeen = regexp.MustCompile(`last seen (just now|[1-9] min ago)`)

// deviceRemovedLine is what the login server answers a removed device
// (docs/login.md), and `parley` prints for it.
const deviceRemovedLine = "device removed: this device was removed from the account; log in with the password on it to use it again"

// TestBrowserDevices: alice has a CLI device (`parley register` logged its
// home in), a device that logged in but registered no encryption key, and
// the page. The page's Settings list the three, its own first marked "this
// browser", the bare one with its note. Remove asks first (Keep it keeps
// it); yes removes the CLI device: `parley devices` on its home then fails
// with the "device removed" line (exit 1), and the list shows two. A
// device removed behind the page's back is a clear error, and the list
// shows one. "Sign out and remove this browser" signs the page out; a
// password login on it brings it back. A page that another device removes
// signs out by itself and says why. axe-core on the list with a
// confirmation open (light and dark), and no CSP violation.
func TestBrowserDevices(t *testing.T) {
	chromiumPath(t)
	began := time.Now()
	up := startUp(t)
	axeJS := axeSource(t)
	_, wav := micWAV(t, 201)
	b := newBrowser(t, wav)
	b.watchCSP()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// alice's CLI device, and one that logs in with a key of its own and
	// registers no X25519 key.
	cli := cliUser(t, up.loginURL, "alice")
	_, cliKey := devicesOf(t, cli)
	barePub, _, err := ed25519.GenerateKey(nil)
	histMust(t, err)
	lc := loginapi.NewClient(up.loginURL, nil)
	bare, err := lc.Login(ctx, "alice", "alice-password", barePub)
	histMust(t, err)
	bareKey := loginapi.DeviceKeyString(barePub)

	// The page signs in; its Settings list the three.
	b.do("open the page", 20*time.Second, chromedp.Navigate(up.loginURL+"/"))
	b.typeInto("Username", "alice")
	b.typeInto("Password", "alice-password")
	b.click("Sign in")
	b.waitOnline("alice online in the page")
	raw, err := base64.StdEncoding.DecodeString(eval[string](b, `window.parley.app.pub`, 5*time.Second))
	histMust(t, err)
	pageKey := loginapi.DeviceKeyString(raw)
	b.click("Settings and help")
	b.waitFor("the page's three devices", deviceCount(3), 10*time.Second)
	rows := b.pageDevices()
	want := []struct {
		key, text, button string
		self              bool
	}{
		{pageKey[:12], "Device " + pageKey[:12] + "this browserin use now", "Sign out and remove this browser", true},
		{cliKey[:12], "Device " + cliKey[:12] + "last seen just now", "Remove device " + cliKey[:12], false},
		{bareKey[:12], "Device " + bareKey[:12] + "last seen just nowNo encryption key: no messages are sent to it.", "Remove device " + bareKey[:12], false},
	}
	for i, w := range want {
		if i >= len(rows) {
			break
		}
		if i > 0 && rows[i].Key != w.key { // the others in the server's order: most recently seen first
			for j := 1; j < len(rows); j++ {
				if rows[j].Key == w.key {
					rows[i], rows[j] = rows[j], rows[i]
				}
			}
		}
		r := rows[i]
		r.Text = lastSeen.ReplaceAllString(r.Text, "last seen just now") // a slow machine
		if r.Key != w.key || r.Self != w.self || r.Text != w.text || len(r.Buttons) != 1 || r.Buttons[0] != w.button {
			t.Errorf("device row %d: %+v\nwant key %s, self %v, text %q, the button %q", i, r, w.key, w.self, w.text, w.button)
		}
	}
	if !strings.Contains(b.pageText(), "3 devices.") {
		t.Errorf("the settings do not say \"3 devices.\": %s", b.pageText())
	}

	// Remove asks first; Keep it keeps it.
	cliShort := cliKey[:12]
	b.click("Remove device " + cliShort)
	b.waitFor("the confirmation, its safe choice focused", `document.activeElement?.getAttribute("aria-label") === "Keep device `+cliShort+`"`, 5*time.Second)
	b.click("Keep device " + cliShort)
	b.waitFor("the confirmation gone, the Remove button focused", `document.activeElement?.getAttribute("aria-label") === "Remove device `+cliShort+`" && !document.querySelector(".device-confirm")`, 5*time.Second)
	if rows := b.pageDevices(); len(rows) != 3 {
		t.Fatalf("after Keep it the page lists %d devices, want 3", len(rows))
	}

	// Again, and yes: the CLI device is removed.
	b.click("Remove device " + cliShort)
	b.waitFor("the confirmation", `document.querySelector(".device-confirm")?.textContent.includes("Remove device `+cliShort+`?")`, 5*time.Second)
	b.axe(axeJS, "the settings: your devices, a removal to confirm")
	b.dark(true)
	b.axe(axeJS, "the settings: your devices, a removal to confirm, dark")
	b.dark(false)
	b.shots("devices", `(document.getElementById("devices-h").scrollIntoView({block: "start"}), true)`)
	removedAt := time.Now()
	b.click("Yes, remove device " + cliShort)
	b.waitFor("two devices in the page", deviceCount(2)+` && document.getElementById("devices-note").textContent === "Removed device `+cliShort+`: it gets nothing more. 2 devices."`, 10*time.Second)
	t.Logf("the CLI device removed and the list read again %v after the click", time.Since(removedAt).Round(time.Millisecond))
	for _, r := range b.pageDevices() {
		if r.Key == cliShort {
			t.Errorf("the page still lists the removed CLI device: %+v", r)
		}
	}
	out, errOut, code := runParley(t, cli, "devices")
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, deviceRemovedLine) {
		t.Errorf("parley devices on the removed CLI device: exit %d, stdout %q, stderr %q; want exit 1 and one line with %q", code, out, errOut, deviceRemovedLine)
	} else {
		t.Logf("parley devices on the removed home: exit 1, %s", strings.TrimSpace(errOut))
	}

	// A device removed behind the page's back (it removes itself): a clear
	// error, and the list read again shows the page alone.
	histMust(t, lc.RemoveDevice(ctx, bare.Credential, barePub))
	bareShort := bareKey[:12]
	b.click("Remove device " + bareShort)
	b.click("Yes, remove device " + bareShort)
	wantErr := "Device " + bareShort + " is not among your devices any more (removed already, perhaps from another device)."
	b.waitFor("the error, and the page alone", deviceCount(1)+` && document.getElementById("devices-error").textContent === `+jsString(wantErr)+
		` && document.getElementById("devices-note").textContent === "This browser is your only device."`, 10*time.Second)
	if rows := b.pageDevices(); len(rows) != 1 || !rows[0].Self || rows[0].Key != pageKey[:12] {
		t.Errorf("the page lists %+v, want this browser alone", rows)
	}

	// Sign out and remove this browser: asked first, then signed out; the
	// page's key no longer lists. A password login brings it back.
	b.click("Sign out and remove this browser")
	b.click("Yes, sign out and remove this browser")
	b.waitFor("the page signed out, saying why", `!document.getElementById("auth").hidden && !document.getElementById("settings").open && `+
		`document.getElementById("notices").textContent.includes("This browser was removed from your account and signed out.")`, 10*time.Second)
	if keys := aliceKeys(ctx, t, lc); len(keys) != 0 {
		t.Errorf("after the page removed itself alice has devices %v, want none", keys)
	}
	b.signIn("alice", "alice-password")
	b.waitOnline("alice online in the page again")
	if keys := aliceKeys(ctx, t, lc); len(keys) != 1 || !keys[pageKey] {
		t.Errorf("after signing in again alice has devices %v, want the page's %s", keys, pageKey)
	}
	b.click("Settings and help")
	b.waitFor("this browser listed again", deviceCount(1)+` && document.querySelector("#device-list .badge.self")`, 10*time.Second)

	// The CLI logs in again and removes the page (its settings open): the
	// page signs out by itself and says why.
	mustRun(t, cli, "logged in as alice", "login", "alice")
	mustRun(t, cli, "removed device "+pageKey[:12], "devices", "remove", pageKey[:12])
	goneAt := time.Now()
	b.waitFor("the page signed out by the removal", `!document.getElementById("auth").hidden && !document.getElementById("settings").open && `+
		`document.getElementById("notices").textContent.includes("This browser was removed from your account (on another of your devices): sign in with your password to use it again.")`, 10*time.Second)
	t.Logf("the page removed by the CLI signed out %v after", time.Since(goneAt).Round(time.Millisecond))

	b.noCSPViolation("alice, at the end")
	t.Logf("TestBrowserDevices took %v", time.Since(began).Round(100*time.Millisecond))
}

// aliceKeys is alice's devices (base64url keys), asked by a new device of
// hers that then removes itself.
func aliceKeys(ctx context.Context, t *testing.T, lc *loginapi.Client) map[string]bool {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(nil)
	histMust(t, err)
	resp, err := lc.Login(ctx, "alice", "alice-password", pub)
	histMust(t, err)
	list, err := lc.MyDevices(ctx, resp.Credential)
	histMust(t, err)
	keys := map[string]bool{}
	for _, d := range list {
		if !d.Self {
			keys[loginapi.DeviceKeyString(d.Key)] = true
		}
	}
	histMust(t, lc.RemoveDevice(ctx, resp.Credential, pub))
	return keys
}

// jsString is s as a JavaScript string literal.
func jsString(s string) string {
	j, _ := json.Marshal(s)
	return string(j)
}
