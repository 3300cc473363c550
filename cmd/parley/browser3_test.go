package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
)

// The page as a messenger, part 2: calls that ring (a ringtone, the tab's
// title and icon, a system notification when the tab is hidden), missed
// calls in the conversation, the keyboard shortcuts of a call, read
// receipts and typing between pages and with the CLI, read receipts off,
// and the themes. The service worker's offline start is in
// TestBrowserReconnects.

// setHidden makes the page believe its tab is hidden (or visible again), as
// a tab in the background is: document.visibilityState and document.hidden
// say so, and a visibilitychange event fires.
func (b *browser) setHidden(hidden bool) {
	b.t.Helper()
	eval[bool](b, fmt.Sprintf(`(() => {
		if (%v) {
			Object.defineProperty(document, "visibilityState", {configurable: true, get: () => "hidden"});
			Object.defineProperty(document, "hidden", {configurable: true, get: () => true});
		} else {
			delete document.visibilityState;
			delete document.hidden;
		}
		document.dispatchEvent(new Event("visibilitychange"));
		return true;
	})()`, hidden), 5*time.Second)
}

// allowNotifications grants the page's origin the notification permission
// (as a person who said yes would) and records, in window.__notes, every
// notification the page makes from now on: {title, body, tag}.
func (b *browser) allowNotifications(origin string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
		Permission: &cdpbrowser.PermissionDescriptor{Name: "notifications"}, Setting: cdpbrowser.PermissionSettingGranted, Origin: origin,
	}); err != nil {
		b.t.Fatalf("granting notifications: %v", err)
	}
	if p := eval[string](b, `(() => {
		window.__notes = [];
		const N = window.Notification;
		window.Notification = class extends N {
			constructor(title, opts) {
				super(title, opts);
				window.__notes.push({title, body: opts?.body || "", tag: opts?.tag || ""});
			}
		};
		return Notification.permission;
	})()`, 5*time.Second); p != "granted" {
		b.t.Fatalf("Notification.permission is %q after granting it", p)
	}
}

// notes are the titles of the notifications the page made.
func (b *browser) notes() []string {
	return eval[[]string](b, `(window.__notes || []).map((n) => n.title)`, 5*time.Second)
}

// key presses Alt+Shift+letter, a call's keyboard shortcut.
func (b *browser) key(letter string) {
	b.t.Helper()
	b.do("press Alt+Shift+"+strings.ToUpper(letter), 5*time.Second,
		chromedp.KeyEvent(letter, chromedp.KeyModifiers(chromedp.ModifierAlt, chromedp.ModifierShift)))
}

// ringing is a JavaScript condition: the incoming call's banner shows and
// the ringtone plays (its AudioContext runs).
const ringing = `!document.getElementById("incoming").hidden && window.parley.ringtone.state === "running"`

// rangOff is a JavaScript condition: no call rings, and the ringtone's
// AudioContext is closed.
const rangOff = `document.getElementById("incoming").hidden && window.parley.ringtone.state === "stopped" &&
	window.parley.ringtone.last?.state === "closed"`

// callLines is a JavaScript expression: the texts of the calls in the open
// conversation.
const callLines = `[...document.querySelectorAll("#chat-log li.call .text")].map((e) => e.textContent)`

// icon is a JavaScript expression: the tab's icon.
const icon = `document.querySelector('link[rel~="icon"]').getAttribute("href")`

// TestBrowserRings: ben calls ann, whose tab is hidden: the ringtone plays
// (WebAudio, after her clicks on the page), the title and the icon change,
// and a system notification says who calls; ben gives up: the missed call
// is in the conversation, unread (the title counts it), with a notification,
// and the ring stops. Then ann answers, mutes, unmutes and hangs up with the
// keyboard, and declines with it; each stops the ring, and each call is a
// line in the conversation. A page that had no click yet rings silently
// and says so, and rings at the first click. axe-core passes on the ringing
// page; screenshots of ringing and of the missed call.
func TestBrowserRings(t *testing.T) {
	chromiumPath(t)
	up := startUp(t)
	axeJS := axeSource(t)
	_, wavA := micWAV(t, 151)
	_, wavB := micWAV(t, 152)
	a, bb := newBrowser(t, wavA), newBrowser(t, wavB)
	a.watchCSP()
	bb.watchCSP()
	a.signUp(up.loginURL, "ann", "ann-password")
	bb.signUp(up.loginURL, "ben", "ben-password")
	a.askContact("ben")
	bb.click("Accept ann")
	a.waitFor("ben online at ann's", badge("ben", "online"), 15*time.Second)
	a.click("Chat with ben")
	bb.click("Chat with ann")

	// ann's tab goes to the background; she allowed notifications.
	a.allowNotifications(up.loginURL)
	a.setHidden(true)
	bb.click("Call ann")
	a.waitFor("the call to ring at ann's", ringing, 20*time.Second)
	if title := eval[string](a, `document.title`, 5*time.Second); !strings.Contains(title, "ben is calling you") {
		t.Errorf("the title while ringing: %q, want it to say ben is calling", title)
	}
	if ic := eval[string](a, icon, 5*time.Second); ic != "icons/ringing.svg" {
		t.Errorf("the tab's icon while ringing: %q, want icons/ringing.svg", ic)
	}
	a.waitFor("the ringing notification", `(window.__notes || []).some((n) => n.title === "ben is calling you")`, 5*time.Second)
	a.axe(axeJS, "a ringing call")
	a.shots("ringing", ringing)

	// ben gives up before ann answers: a missed call.
	bb.click("Hang up")
	a.waitFor("the ring to stop", rangOff, 10*time.Second)
	a.waitFor("the missed call in the conversation", callLines+`.join() === "Missed call"`, 10*time.Second)
	a.waitFor("the missed call unread", unread("ben", 1)+` && document.title === "(1) Parley"`, 5*time.Second)
	if ic := eval[string](a, icon, 5*time.Second); ic != "favicon.svg" {
		t.Errorf("the tab's icon after the ring: %q, want favicon.svg", ic)
	}
	a.waitFor("the missed-call notification", `(window.__notes || []).some((n) => n.title === "Missed call from ben")`, 5*time.Second)
	t.Logf("ann's notifications: %q", a.notes())
	a.shots("missed-call", unread("ben", 1))
	// Back to the tab: the conversation is open, so the call is read.
	a.setHidden(false)
	a.waitFor("the missed call read", unread("ben", 0)+` && document.title === "Parley"`, 5*time.Second)

	// Visible, a call rings without a notification; ann answers, mutes,
	// unmutes and hangs up with the keyboard.
	before := len(a.notes())
	bb.click("Call ann")
	a.waitFor("the second call to ring", ringing, 20*time.Second)
	a.key("a")
	a.waitFor("the ring to stop on answering", rangOff, 5*time.Second)
	a.waitConnected(20 * time.Second)
	if n := len(a.notes()); n != before {
		t.Errorf("a call ringing in a visible tab made a notification: %q", a.notes()[before:])
	}
	a.key("m")
	a.waitFor("muted by the keyboard", `document.getElementById("mute").getAttribute("aria-pressed") === "true"`, 5*time.Second)
	a.key("m")
	a.waitFor("unmuted by the keyboard", `document.getElementById("mute").getAttribute("aria-pressed") === "false"`, 5*time.Second)
	a.key("h")
	bb.shows("ann hung up", 10*time.Second)
	a.waitFor("the call in the conversation", callLines+`.length === 2 && `+callLines+`[1].startsWith("Incoming call · 0:")`, 10*time.Second)

	// ann declines with the keyboard.
	bb.click("Call ann")
	a.waitFor("the third call to ring", ringing, 20*time.Second)
	a.key("d")
	a.waitFor("the ring to stop on declining", rangOff, 5*time.Second)
	bb.shows("ann declined the call.", 10*time.Second)
	a.waitFor("the declined call in the conversation", callLines+`.at(-1) === "Declined call"`, 10*time.Second)
	if !eval[bool](a, unread("ben", 0), 5*time.Second) {
		t.Errorf("an answered or declined call counts as unread")
	}

	// A page reloaded has had no click: the browser allows no sound yet.
	// The call rings silently, the banner says why, and the first click
	// on the page starts the ring.
	a.do("reload", 20*time.Second, chromedp.Reload())
	a.waitOnline("ann online again")
	bb.click("Call ann")
	a.waitFor("the call to show", `!document.getElementById("incoming").hidden`, 20*time.Second)
	a.waitFor("the banner to say the ring is silent", `!document.getElementById("ring-note").hidden`, 5*time.Second)
	if s := eval[string](a, `window.parley.ringtone.state`, 5*time.Second); s == "running" {
		t.Errorf("the ringtone plays before any click on the page")
	}
	a.do("click the page", 5*time.Second, chromedp.MouseClickXY(300, 400))
	a.waitFor("the ring after a click", ringing+` && document.getElementById("ring-note").hidden`, 5*time.Second)
	a.click("Decline")
	a.waitFor("the ring to stop", rangOff, 5*time.Second)
	bb.shows("ann declined the call.", 10*time.Second)

	a.noCSPViolation("ann, ringing")
	bb.noCSPViolation("ben, calling")
}

// readMark is chatMark under its name for read receipts.
func readMark(text string) string { return chatMark(text, "read") }

// typingShown is a JavaScript condition: the open conversation's header
// says the peer is typing.
const typingShown = `document.getElementById("conv-sub").textContent === "typing…"`

// typingInList is a JavaScript condition: user's row in the list says they
// are typing.
func typingInList(user string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#contact-list li")].some((li) => `+
		`li.querySelector(".name").textContent === %q && li.querySelector(".preview.typing")?.textContent === "typing…")`, user)
}

// clearMessage empties the message field as a person deleting what they
// typed does (an input event follows).
func (b *browser) clearMessage() {
	b.t.Helper()
	eval[bool](b, `(() => {
		const t = document.getElementById("chat-text");
		t.value = "";
		t.dispatchEvent(new Event("input", {bubbles: true}));
		return true;
	})()`, 5*time.Second)
}

// readReceipts turns the read-receipts setting on or off in Settings and
// help.
func (b *browser) readReceipts(on bool) {
	b.t.Helper()
	b.click("Settings and help")
	b.waitFor("the settings", `document.getElementById("settings").open`, 5*time.Second)
	if eval[bool](b, `document.getElementById("read-receipts").checked`, 5*time.Second) != on {
		b.click("Read receipts")
	}
	if got := eval[bool](b, `document.getElementById("read-receipts").checked`, 5*time.Second); got != on {
		b.t.Fatalf("read receipts %v after the click, want %v", got, on)
	}
	b.click("Close")
	b.waitFor("the settings closed", `!document.getElementById("settings").open`, 5*time.Second)
}

// TestBrowserReadReceiptsAndTyping: ann types to ben (his list, then his
// conversation, says so; her message ends it); what each writes the other
// reads on screen, and the sender's mark goes to read; typing stops when
// the field is emptied. With ben's read receipts off, ann's next message
// stays delivered and no read receipt reaches her page; his own marks show
// delivered too. Page ↔ CLI: a bot (`listen --json --commands`) gets
// ann's typing and her read receipt as JSON events, and its typing and
// read commands show on her page; with ann's read receipts off the bot
// gets none. axe-core passes on the settings, in light and dark themes;
// screenshots of read marks and typing, and of the settings.
func TestBrowserReadReceiptsAndTyping(t *testing.T) {
	chromiumPath(t)
	up := startUp(t)
	axeJS := axeSource(t)
	_, wavA := micWAV(t, 161)
	_, wavB := micWAV(t, 162)
	a, bb := newBrowser(t, wavA), newBrowser(t, wavB)
	a.watchCSP()
	bb.watchCSP()
	a.signUp(up.loginURL, "ann", "ann-password")
	bb.signUp(up.loginURL, "ben", "ben-password")
	a.askContact("ben")
	bb.click("Accept ann")
	a.waitFor("ben online at ann's", badge("ben", "online"), 15*time.Second)
	bb.waitFor("ann online at ben's", badge("ann", "online"), 15*time.Second)

	// ann types: ben's list says so, then his conversation's header.
	a.click("Chat with ben")
	started := time.Now()
	a.typeInto("Message", "Hello Ben! Did you get the photos from Saturday?")
	bb.waitFor("ann typing in ben's list", typingInList("ann"), 5*time.Second)
	t.Logf("ben saw ann typing %v after she began", time.Since(started).Round(time.Millisecond))
	bb.click("Chat with ann")
	bb.waitFor("ann typing in the header", typingShown, 5*time.Second)
	a.click("Send")
	// The message ends the typing, and ben reads it on screen.
	bb.waitFor("ann's message instead of her typing", `!(`+typingShown+`) && `+chatLine("ann", "Hello Ben! Did you get the photos from Saturday?")+` === 1`, 10*time.Second)
	a.waitFor("ann's message read", readMark("Hello Ben! Did you get the photos from Saturday?"), 10*time.Second)
	bb.sendChat("Hi Ann! Yes, they are lovely, thank you.")
	a.waitFor("ben's message at ann's", chatLine("ben", "Hi Ann! Yes, they are lovely, thank you.")+` === 1`, 10*time.Second)
	bb.waitFor("ben's message read", readMark("Hi Ann! Yes, they are lovely, thank you."), 10*time.Second)
	a.sendChat("Great! Shall we meet on Friday?")
	a.waitFor("ann's second message read", readMark("Great! Shall we meet on Friday?"), 10*time.Second)

	// ben types and deletes it: ann sees him type, then stop.
	bb.typeInto("Message", "Friday works")
	a.waitFor("ben typing at ann's", typingShown, 5*time.Second)
	// Keep him typing while the pictures are taken (a stop comes 3 s after
	// the last key).
	eval[bool](bb, `(() => { window.__keys = setInterval(() => document.getElementById("chat-text").dispatchEvent(new Event("input", {bubbles: true})), 1000); return true; })()`, 5*time.Second)
	a.shots("read", typingShown)
	eval[bool](bb, `clearInterval(window.__keys) || true`, 5*time.Second)
	bb.clearMessage()
	stopped := time.Now()
	a.waitFor("ben's typing to end", `!(`+typingShown+`)`, 3*time.Second)
	t.Logf("ann saw ben stop typing %v after he emptied the field", time.Since(stopped).Round(time.Millisecond))
	sent := eval[map[string]float64](a, `window.parley.app.im.counts`, 5*time.Second)
	got := eval[map[string]float64](bb, `window.parley.app.im.counts`, 5*time.Second)
	t.Logf("ann's page: %v; ben's: %v", sent, got)

	// ben turns read receipts off: ann's next message stays delivered, and
	// no read receipt reaches her page; ben's own marks show delivered.
	bb.readReceipts(false)
	if !eval[bool](bb, chatMark("Hi Ann! Yes, they are lovely, thank you.", "delivered"), 5*time.Second) {
		t.Errorf("with read receipts off, ben still sees his message marked read")
	}
	readBefore := eval[float64](a, `window.parley.app.im.counts.readReceived`, 5*time.Second)
	a.sendChat("Are you reading this?")
	bb.onceIn("ann", "Are you reading this?") // on ben's screen for 1.5 s
	a.waitFor("the message delivered", chatMark("Are you reading this?", "delivered"), 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	if !eval[bool](a, chatMark("Are you reading this?", "delivered"), 5*time.Second) {
		t.Errorf("with ben's read receipts off, ann's message shows %q", eval[string](a, `[...document.querySelectorAll("#chat-log li.msg.out .mark")].at(-1).textContent`, 5*time.Second))
	}
	if n := eval[float64](a, `window.parley.app.im.counts.readReceived`, 5*time.Second); n != readBefore {
		t.Errorf("with ben's read receipts off, ann's page received %v read receipts, want none", n-readBefore)
	}
	bb.readReceipts(true)
	bb.waitFor("ben's marks read again", readMark("Hi Ann! Yes, they are lovely, thank you."), 5*time.Second)

	// The settings, light and dark.
	a.click("Settings and help")
	a.waitFor("the settings", `document.getElementById("settings").open`, 5*time.Second)
	a.shows("Alt+Shift+A", 5*time.Second)
	a.axe(axeJS, "the settings and help")
	a.shots("settings", "")
	a.dark(true)
	a.axe(axeJS, "the settings and help, dark")
	a.dark(false)
	a.click("Close")

	// Page ↔ CLI: carl is a bot.
	carl := cliUser(t, up.loginURL, "carl")
	if out, errOut, code := runParley(t, carl, "contacts", "add", "ann"); code != 0 {
		t.Fatalf("contacts add ann: %s%s", out, errOut)
	}
	a.click("Accept carl")
	bot := startBot(t, carl)
	waitOnline(t, bot.proc)
	a.click("Chat with carl")
	a.typeInto("Message", "Carl, are you a bot?")
	bot.waitFor(t, "ann's typing at the bot", 10*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "typing" && ev["peer"] == "ann" && ev["active"] == true
	})
	a.click("Send")
	msg := bot.waitFor(t, "ann's message at the bot", 10*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "message" && ev["text"] == "Carl, are you a bot?"
	})
	if res := bot.do(t, map[string]any{"cmd": "read", "peer": "ann"}); fmt.Sprint(res["ids"]) != fmt.Sprint([]any{msg["id"]}) {
		t.Errorf("the bot's read: %v, want ids [%v]", res, msg["id"])
	}
	a.waitFor("ann's message read by the bot", readMark("Carl, are you a bot?"), 10*time.Second)
	if res := bot.do(t, map[string]any{"cmd": "typing", "peer": "ann"}); res["sent"] != true {
		t.Errorf("the bot's typing: %v, want sent", res)
	}
	a.waitFor("the bot typing at ann's", typingShown, 5*time.Second)
	id := bot.do(t, map[string]any{"cmd": "chat", "peer": "ann", "text": "Beep. Yes."})["message_id"]
	a.waitFor("the bot's message instead of its typing", `!(`+typingShown+`) && `+chatLine("carl", "Beep. Yes.")+` === 1`, 10*time.Second)
	bot.waitFor(t, "ann's read receipt at the bot", 10*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "read" && ev["peer"] == "ann" && slices.Contains(ev["ids"].([]any), id)
	})
	// ann turns read receipts off: the bot's next message is delivered and
	// never read.
	a.readReceipts(false)
	res := bot.do(t, map[string]any{"cmd": "chat", "peer": "ann", "text": "Still there?"})
	a.onceIn("carl", "Still there?")
	if res["delivered"] != true {
		t.Errorf("the bot's message: %v, want delivered", res)
	}
	for _, ev := range bot.events(t, "read") {
		if slices.Contains(ev["ids"].([]any), res["message_id"]) {
			t.Errorf("with ann's read receipts off, the bot got a read receipt: %v", ev)
		}
	}

	a.noCSPViolation("ann")
	bb.noCSPViolation("ben")
}

// dark emulates the system's dark theme (prefers-color-scheme: dark), or
// the light one again.
func (b *browser) dark(on bool) {
	b.t.Helper()
	v := "light"
	if on {
		v = "dark"
	}
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: v}},
	}); err != nil {
		b.t.Fatalf("emulating the %s theme: %v", v, err)
	}
	want := `matchMedia("(prefers-color-scheme: dark)").matches`
	if !on {
		want = "!" + want
	}
	b.waitFor("the "+v+" theme", want, 5*time.Second)
	time.Sleep(100 * time.Millisecond) // the style applies
}
