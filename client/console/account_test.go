package console

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/wire/loginapi"
)

func TestDevicesPrinter(t *testing.T) {
	k1, k2 := ed25519.PublicKey(bytes.Repeat([]byte{0xfb}, 32)), ed25519.PublicKey(bytes.Repeat([]byte{1}, 32))
	seen := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	ds := []loginapi.MyDevice{
		{Key: k1, Registered: seen.Unix() - 60, LastSeen: seen.Unix(), Encryption: true, Self: true},
		{Key: k2, Registered: seen.Unix() - 120, LastSeen: seen.Unix() - 60},
	}
	local := func(u int64) string { return time.Unix(u, 0).Local().Format("2006-01-02 15:04:05") }
	var b bytes.Buffer
	(&Printer{W: &b}).Devices(ds)
	want := "-_v7-_v7-_v7\tlast seen " + local(seen.Unix()) + "\tthis device\n" +
		"AQEBAQEBAQEB\tlast seen " + local(seen.Unix()-60) + "\tno encryption key\n"
	if b.String() != want {
		t.Errorf("text:\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	(&Printer{W: &b, JSON: true}).Devices(ds)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 || lines[0] != `{"key":"`+loginapi.DeviceKeyString(k1)+`","registered":"2026-03-04T05:05:07Z","last_seen":"2026-03-04T05:06:07Z","encryption":true,"self":true}` {
		t.Errorf("JSON:\n%s", b.String())
	}
	b.Reset()
	(&Printer{W: &b, JSON: true}).Devices(nil)
	if b.Len() != 0 {
		t.Errorf("no devices: %q, want nothing", b.String())
	}

	now := func() time.Time { return seen }
	for _, tt := range []struct {
		d          loginapi.MyDevice
		text, json string
	}{
		{ds[1], "removed device AQEBAQEBAQEB (last seen " + local(seen.Unix()-60) + "): it gets nothing more\n",
			`{"ts":"2026-03-04T05:06:07Z","event":"result","cmd":"devices remove","key":"` + loginapi.DeviceKeyString(k2) + `","self":false}` + "\n"},
		{ds[0], "removed this device (-_v7-_v7-_v7): log in again with the password to use it\n",
			`{"ts":"2026-03-04T05:06:07Z","event":"result","cmd":"devices remove","key":"` + loginapi.DeviceKeyString(k1) + `","self":true}` + "\n"},
	} {
		b.Reset()
		(&Printer{W: &b}).DeviceRemoved(tt.d)
		if b.String() != tt.text {
			t.Errorf("DeviceRemoved text: %q, want %q", b.String(), tt.text)
		}
		b.Reset()
		(&Printer{W: &b, JSON: true, Now: now}).DeviceRemoved(tt.d)
		if b.String() != tt.json {
			t.Errorf("DeviceRemoved JSON: %s want %s", b.String(), tt.json)
		}
	}
}

// TestAccountResults: the one-shot results of login, contacts and status,
// as text and JSON.
func TestAccountResults(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC) }
	for _, tt := range []struct {
		name       string
		print      func(p *Printer)
		text, json string
	}{
		{"login", func(p *Printer) { p.LoggedIn("login", "alice") }, "logged in as alice", `{"cmd":"login","user":"alice"}`},
		{"register", func(p *Printer) { p.LoggedIn("register", "alice") }, "registered alice and logged in", `{"cmd":"register","user":"alice"}`},
		{"add", func(p *Printer) { p.ContactResult("add", "bob", loginapi.ContactRequested) }, "contact request sent to bob",
			`{"cmd":"contacts add","peer":"bob","state":"requested"}`},
		{"add accepts", func(p *Printer) { p.ContactResult("add", "bob", loginapi.ContactAccepted) }, "bob is now a contact",
			`{"cmd":"contacts add","peer":"bob","state":"accepted"}`},
		{"accept", func(p *Printer) { p.ContactResult("accept", "bob", loginapi.ContactAccepted) }, "bob is now a contact",
			`{"cmd":"contacts accept","peer":"bob","state":"accepted"}`},
		{"decline", func(p *Printer) { p.ContactResult("decline", "bob", loginapi.ContactNone) }, "bob is not a contact any more",
			`{"cmd":"contacts decline","peer":"bob","state":"none"}`},
		{"status", func(p *Printer) { p.StatusSet("away", nil) }, "status set to away", `{"cmd":"status","status":"away"}`},
		{"status offline", func(p *Printer) { p.StatusSet("busy", errors.New("client: no supernode")) },
			"status set to busy (running devices pick it up at their next start: no supernode)",
			`{"cmd":"status","status":"busy","note":"running devices pick it up at their next start: no supernode"}`},
	} {
		var b bytes.Buffer
		tt.print(&Printer{W: &b})
		if b.String() != tt.text+"\n" {
			t.Errorf("%s: text %q, want %q", tt.name, b.String(), tt.text)
		}
		b.Reset()
		tt.print(&Printer{W: &b, JSON: true, Now: now})
		var got, want map[string]any
		json.Unmarshal(b.Bytes(), &got)
		json.Unmarshal([]byte(tt.json), &want)
		want["ts"], want["event"] = "2026-03-04T05:06:07Z", "result"
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if !bytes.Equal(gb, wb) || !strings.HasPrefix(b.String(), `{"ts":`) {
			t.Errorf("%s: JSON %s, want %s", tt.name, b.String(), wb)
		}
	}
}
