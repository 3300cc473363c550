package console

import (
	"fmt"
	"time"

	"github.com/parley/parley/wire/loginapi"
)

// The results of the account commands: register and login, contact
// changes, status, and the user's devices.

// LoggedIn writes the result of `parley login USER` (cmd "login") or
// `parley register USER` (cmd "register"): "logged in as USER" or
// "registered USER and logged in"; with JSON {"ts","event":"result","cmd","user"}.
func (p *Printer) LoggedIn(cmd, user string) {
	text := "logged in as " + user
	if cmd == "register" {
		text = "registered " + user + " and logged in"
	}
	p.Result(cmd, text, "user", user)
}

// ContactResult writes the result of `parley contacts OP USER` (add, accept
// or decline) whose relation is state now: "contact request sent to USER",
// "USER is now a contact" or "USER is not a contact any more"; with JSON
// {"ts","event":"result","cmd":"contacts OP","peer","state"}.
func (p *Printer) ContactResult(op, user, state string) {
	text := "contact request sent to " + user
	if op == "decline" {
		text = user + " is not a contact any more"
	} else if state == loginapi.ContactAccepted {
		text = user + " is now a contact"
	}
	p.Result("contacts "+op, text, "peer", user, "state", state)
}

// StatusSet writes the result of `parley status STATUS`: "status set to
// STATUS", and when offline (no supernode answered) why running devices see
// it only at their next start; with JSON
// {"ts","event":"result","cmd":"status","status"[,"note"]}.
func (p *Printer) StatusSet(status string, offline error) {
	text, note := "status set to "+status, any(nil)
	if offline != nil {
		note = "running devices pick it up at their next start: " + UserMessage(offline)
		text += fmt.Sprintf(" (%s)", note)
	}
	p.Result("status", text, "status", status, "note", note)
}

// ShortDeviceKey is how the text output names a device: the first 12
// characters of its key as loginapi.DeviceKeyString writes it.
func ShortDeviceKey(d loginapi.MyDevice) string {
	s := loginapi.DeviceKeyString(d.Key)
	return s[:min(len(s), 12)]
}

// Devices writes the user's devices, one a line:
// KEY<TAB>last seen DATE TIME[<TAB>this device][<TAB>no encryption key],
// KEY being [ShortDeviceKey] and the time local; "no encryption key" marks a
// device that gets no messages (it logged in but registered no X25519
// key). With JSON {"key","registered","last_seen","encryption","self"}: the
// whole key, the times in RFC 3339.
func (p *Printer) Devices(ds []loginapi.MyDevice) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range ds {
		if p.JSON {
			p.writeJSON(struct {
				Key        string    `json:"key"`
				Registered time.Time `json:"registered"`
				LastSeen   time.Time `json:"last_seen"`
				Encryption bool      `json:"encryption"`
				Self       bool      `json:"self"`
			}{loginapi.DeviceKeyString(d.Key), time.Unix(d.Registered, 0).UTC(), time.Unix(d.LastSeen, 0).UTC(), d.Encryption, d.Self})
			continue
		}
		line := ShortDeviceKey(d) + "\tlast seen " + time.Unix(d.LastSeen, 0).Local().Format("2006-01-02 15:04:05")
		if d.Self {
			line += "\tthis device"
		}
		if !d.Encryption {
			line += "\tno encryption key"
		}
		fmt.Fprintln(p.W, line)
	}
}

// DeviceRemoved writes the result of `parley devices remove KEY`: "removed
// device KEY (last seen …)", or for this device itself a line saying it is
// logged out; with JSON {"ts","event":"result","cmd":"devices remove","key","self"}.
func (p *Printer) DeviceRemoved(d loginapi.MyDevice) {
	text := fmt.Sprintf("removed device %s (last seen %s): it gets nothing more", ShortDeviceKey(d),
		time.Unix(d.LastSeen, 0).Local().Format("2006-01-02 15:04:05"))
	if d.Self {
		text = fmt.Sprintf("removed this device (%s): log in again with the password to use it", ShortDeviceKey(d))
	}
	p.Result("devices remove", text, "key", loginapi.DeviceKeyString(d.Key), "self", d.Self)
}
