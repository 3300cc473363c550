package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/parley/parley/web"
)

// The page as a messenger: the conversation list with unread counts, the
// search, the conversation and its call bar, at 1280 and 390 px, checked
// with axe-core and under the page's Content-Security-Policy.

// unread is a JavaScript condition: the conversation list shows n unread
// messages on user's row (none for 0).
func unread(user string, n int) string {
	want := strconv.Itoa(n)
	if n == 0 {
		want = ""
	}
	return fmt.Sprintf(`(() => {
		const li = [...document.querySelectorAll("#contact-list li")].find((li) => li.querySelector(".name").textContent === %q);
		return !!li && (li.querySelector(".unread")?.textContent || "") === %q;
	})()`, user, want)
}

// watchCSP makes every document the browser opens from now on record the
// Content-Security-Policy violations it reports (window.__csp).
func (b *browser) watchCSP() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `
		window.__csp = [];
		document.addEventListener("securitypolicyviolation", (e) =>
			window.__csp.push(e.effectiveDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile + ":" + e.lineNumber));
	`})
	if err != nil {
		b.t.Fatalf("watching CSP violations: %v", err)
	}
}

// noCSPViolation fails the test if the page has reported a CSP violation.
func (b *browser) noCSPViolation(when string) {
	b.t.Helper()
	v := eval[[]string](b, `window.__csp || ["the CSP watcher is missing"]`, 5*time.Second)
	if len(v) > 0 {
		b.t.Errorf("%s: the page reported CSP violations: %q", when, v)
	}
}

// axeSource is axe-core's axe.min.js as scripts/deps.sh installs it, or ""
// (the accessibility checks then skip, and fail under CI).
func axeSource(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", ".cache", "npm", "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("axe-core is not installed (scripts/deps.sh installs it): %v", err)
		}
		t.Logf("skipping the accessibility checks: axe-core is not installed (run scripts/deps.sh): %v", err)
		return ""
	}
	return string(b)
}

type axeViolation struct {
	ID, Impact, Help string
	Nodes            []struct {
		Target         []any
		FailureSummary string
	}
}

// axe runs axe-core on the page as it is and fails the test on a serious or
// critical violation; lesser ones are logged.
func (b *browser) axe(src, view string) {
	b.t.Helper()
	if src == "" {
		return
	}
	if !eval[bool](b, `typeof window.axe === "object"`, 5*time.Second) {
		eval[bool](b, src+"\n;true", 20*time.Second)
	}
	raw := eval[string](b, `axe.run(document, {resultTypes: ["violations"]}).then((r) => JSON.stringify(r.violations))`, 60*time.Second)
	var vs []axeViolation
	if err := json.Unmarshal([]byte(raw), &vs); err != nil {
		b.t.Fatalf("axe on %s: %v", view, err)
	}
	for _, v := range vs {
		var where []string
		for _, n := range v.Nodes {
			where = append(where, fmt.Sprint(n.Target)+": "+strings.ReplaceAll(n.FailureSummary, "\n", " "))
		}
		msg := fmt.Sprintf("axe on %s: %s (%s): %s\n\t%s", view, v.ID, v.Impact, v.Help, strings.Join(where, "\n\t"))
		if v.Impact == "serious" || v.Impact == "critical" {
			b.t.Error(msg)
		} else {
			b.t.Log(msg)
		}
	}
	b.t.Logf("axe on %s: %d violations, none serious or critical unless reported above", view, len(vs))
}

// shots keeps screenshots of the page as it is at 1280 and at 390 px wide
// (a phone), in the artifact directory, and under docs/web/ when
// PARLEY_DOCS_SCREENSHOTS=1 (the pictures docs/web.md shows), then gives
// the page its own size again. ready, when set, is a JavaScript condition
// to wait for before each picture.
func (b *browser) shots(view, ready string) {
	b.t.Helper()
	b.shotsWith(view, ready, true)
}

// shotsWith is shots, leaving the notices when dismiss is false (when a
// notice is what the picture shows).
func (b *browser) shotsWith(view, ready string, dismiss bool) {
	b.t.Helper()
	dirs := []string{artifactDir(b.t)}
	if os.Getenv("PARLEY_DOCS_SCREENSHOTS") == "1" {
		d := filepath.Join("..", "..", "docs", "web")
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.t.Fatal(err)
		}
		dirs = append(dirs, d)
	}
	for _, w := range []int64{1280, 390} {
		h := int64(800)
		opts := []chromedp.EmulateViewportOption{}
		if w == 390 {
			h = 844
			opts = append(opts, chromedp.EmulateMobile, chromedp.EmulatePortrait)
		}
		b.do("resize to "+strconv.Itoa(int(w)), 5*time.Second, chromedp.EmulateViewport(w, h, opts...))
		// What the notices said is known by now: dismiss them, as a person would.
		if dismiss {
			eval[bool](b, `document.querySelectorAll("#notices button").forEach((x) => x.click()) || true`, 5*time.Second)
		}
		time.Sleep(300 * time.Millisecond) // layout, the meter, the graph
		if ready != "" {
			b.waitFor(view+" ready for its picture", ready, 10*time.Second)
		}
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		cancel()
		if err != nil {
			b.t.Fatalf("screenshot of %s at %d px: %v", view, w, err)
		}
		for _, d := range dirs {
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("%s-%d.png", view, w)), png, 0o644); err != nil {
				b.t.Fatal(err)
			}
		}
	}
	b.resetViewport()
}

// resetViewport gives the page the browser's own size again.
func (b *browser) resetViewport() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{}); err != nil {
		b.t.Fatalf("resize back: %v", err)
	}
}

// checkSecurityHeaders: every answer of base (the page, its module and
// style, the icon, the API, a 404) carries the page's security headers.
func checkSecurityHeaders(t *testing.T, base string) {
	t.Helper()
	for _, path := range []string{"/", "/index.html", "/js/app.js", "/js/wire.gen.js", "/style.css", "/favicon.svg", "/favicon.ico", "/api/v1/key", "/api/v1/nope", "/no-such-file"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		h := resp.Header
		for k, want := range map[string]string{
			"Content-Security-Policy": web.CSP, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
		} {
			if got := h.Get(k); got != want {
				t.Errorf("GET %s%s (%d): %s %q, want %q", base, path, resp.StatusCode, k, got, want)
			}
		}
		if n := len(h.Values("Content-Security-Policy")); n != 1 {
			t.Errorf("GET %s%s: %d Content-Security-Policy headers, want 1", base, path, n)
		}
		if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("GET %s%s: the CSP lets other sites frame the page", base, path)
		}
		if path == "/favicon.ico" && (resp.StatusCode != 200 || h.Get("Content-Type") != "image/svg+xml") {
			t.Errorf("GET %s/favicon.ico: %d %q, want 200 image/svg+xml", base, resp.StatusCode, h.Get("Content-Type"))
		}
	}
}

// meterValues samples the microphone meter every 100 ms for d.
func (b *browser) meterValues(d time.Duration) []float64 {
	return eval[[]float64](b, fmt.Sprintf(`(async () => {
		const out = [];
		for (let i = 0; i < %d; i++) {
			out.push(document.getElementById("mic-level").value);
			await new Promise((r) => setTimeout(r, 100));
		}
		return out;
	})()`, d/(100*time.Millisecond)), d+5*time.Second)
}

// callSeconds is the call bar's timer in seconds.
func (b *browser) callSeconds() int {
	b.t.Helper()
	s := eval[string](b, `document.getElementById("call-timer").textContent`, 5*time.Second)
	n := 0
	for _, part := range strings.Split(s, ":") {
		v, err := strconv.Atoi(part)
		if err != nil {
			b.t.Fatalf("the call timer shows %q", s)
		}
		n = n*60 + v
	}
	return n
}

// TestBrowserMessenger: ann and ben, in two browsers, find each other with
// the search, become contacts, write (unread counts rise in the list and
// the tab's title, and clear when the conversation is opened), call (the
// timer runs, the microphone meter follows the voice, Mute shows its state,
// the stats are a click away), and ben's page closes: ann sees him offline
// within a second, and still after a reload. Every view passes axe-core at
// 1280 and 390 px, is kept as a screenshot, and reports no CSP violation.
func TestBrowserMessenger(t *testing.T) {
	chromiumPath(t)
	up := startUp(t)
	checkSecurityHeaders(t, up.loginURL)
	axeJS := axeSource(t)
	_, wavA := micWAV(t, 131)
	_, wavB := micWAV(t, 132)
	a := newBrowser(t, wavA)
	bb := newBrowser(t, wavB)
	a.watchCSP()
	bb.watchCSP()

	// The sign-in view.
	a.do("open the page", 20*time.Second, chromedp.Navigate(up.loginURL+"/"))
	a.waitFor("the sign-in form", `!document.getElementById("auth").hidden`, 10*time.Second)
	a.axe(axeJS, "the sign-in view")
	a.shots("signin", "")
	a.dark(true)
	a.axe(axeJS, "the sign-in view, dark")
	a.dark(false)
	a.typeInto("Username", "ann")
	a.typeInto("Password", "ann-password")
	a.click("Sign up")
	a.waitOnline("ann online")
	bb.signUp(up.loginURL, "ben", "ben-password")

	// ann finds ben with the search and starts a conversation.
	a.typeInto(searchBox, "be")
	a.waitFor("ben among the users found", `!!document.querySelector('#search-results button[aria-label="Chat with ben"]')`, 10*time.Second)
	a.shots("search", "")
	a.click("Chat with ben")
	a.waitFor("the conversation with ben", `!document.getElementById("conv").hidden && document.getElementById("chat-h").textContent === "ben"`, 5*time.Second)
	if v := eval[string](a, `document.getElementById("search").value`, 5*time.Second); v != "" {
		t.Errorf("the search box still says %q after starting the conversation", v)
	}
	a.click("Add contact")
	a.shows("Contact request sent to ben", 10*time.Second)
	bb.click("Accept ann")
	a.waitFor("ben online in ann's list", badge("ben", "online"), 15*time.Second)
	bb.waitFor("ann online in ben's list", badge("ann", "online"), 15*time.Second)

	// ann closes the conversation (Escape); ben writes twice: the count
	// rises in ann's list and title, and clears when she opens it.
	a.do("press Escape", 5*time.Second, chromedp.KeyEvent(kb.Escape))
	a.waitFor("the conversation closed", `document.getElementById("conv").hidden`, 5*time.Second)
	bb.click("Chat with ann")
	bb.sendChat("Hi Ann! Are we still on for tomorrow?")
	a.waitFor("1 unread from ben", unread("ben", 1)+` && document.title === "(1) Parley"`, 20*time.Second)
	bb.sendChat("I can call you in five minutes if that suits you.")
	a.waitFor("2 unread from ben", unread("ben", 2)+` && document.title === "(2) Parley"`, 20*time.Second)
	a.shows("I can call you in five minutes", 5*time.Second) // the last message, in the list
	a.axe(axeJS, "the conversation list")
	a.shots("list", "")
	a.dark(true)
	a.axe(axeJS, "the conversation list, dark")
	a.dark(false)
	a.click("Chat with ben")
	a.waitFor("the unread count cleared", unread("ben", 0)+` && document.title === "Parley"`, 5*time.Second)
	a.onceIn("ben", "Hi Ann! Are we still on for tomorrow?")
	if day := eval[string](a, `[...document.querySelectorAll("#chat-log li.day")].map((li) => li.textContent).join("|")`, 5*time.Second); day != "Today" {
		t.Errorf("the conversation's day separators: %q, want one, Today", day)
	}
	a.sendChat("Sure, call me whenever you like.")
	bb.waitFor("ann's answer at ben's", chatLine("ann", "Sure, call me whenever you like.")+` === 1`, 20*time.Second)
	// Read where it arrived (ben's conversation with ann is open): the
	// mark goes to read.
	a.waitFor("ann's answer read", chatMark("Sure, call me whenever you like.", "read"), 20*time.Second)
	// Read where it arrived (ben's conversation with ann is open): no count.
	if !eval[bool](bb, unread("ann", 0)+` && document.title === "Parley"`, 5*time.Second) {
		t.Errorf("ben's open conversation counts ann's answer as unread")
	}
	a.noCSPViolation("ann, in a chat")
	bb.noCSPViolation("ben, in a chat")
	a.axe(axeJS, "a conversation")
	a.shots("conversation", "")
	a.dark(true)
	a.axe(axeJS, "a conversation, dark")
	a.shots("dark", "")
	a.dark(false)

	// ben calls ann from the conversation; she answers.
	bb.click("Call ann")
	a.shows("ben is calling you", 20*time.Second)
	a.shots("incoming", "")
	a.click("Answer")
	a.waitConnected(20 * time.Second)
	bb.waitConnected(20 * time.Second)
	t0 := a.callSeconds()
	time.Sleep(3 * time.Second)
	if t1 := a.callSeconds(); t1 < t0+2 || t1 > t0+4 {
		t.Errorf("the call timer went from %d s to %d s in 3 s", t0, t1)
	}
	if p := eval[string](a, `document.getElementById("call-path").textContent`, 5*time.Second); p != "Direct" {
		t.Errorf("the call bar shows the path %q, want Direct", p)
	}
	// The meter follows the microphone: speech, then a second of silence.
	vals := a.meterValues(3 * time.Second)
	lo, hi, distinct := 1.0, 0.0, map[float64]bool{}
	for _, v := range vals {
		lo, hi = min(lo, v), max(hi, v)
		distinct[v] = true
	}
	t.Logf("the microphone meter over 3 s: from %.2f to %.2f, %d values", lo, hi, len(distinct))
	if hi < 0.3 || hi-lo < 0.25 || len(distinct) < 8 {
		t.Errorf("the microphone meter does not follow the voice: %.2f", vals)
	}
	a.click("Mute")
	if p := eval[string](a, `document.getElementById("mute").getAttribute("aria-pressed")`, 5*time.Second); p != "true" {
		t.Errorf("Mute is not pressed after a click (aria-pressed %q)", p)
	}
	if s := a.callState(); !strings.HasSuffix(s, "muted") {
		t.Errorf("the call state says %q when muted", s)
	}
	time.Sleep(800 * time.Millisecond)
	if vals := a.meterValues(time.Second); slicesMax(vals) > 0.05 {
		t.Errorf("the meter moves while muted: %.2f", vals)
	}
	a.click("Mute")
	if p := eval[string](a, `document.getElementById("mute").getAttribute("aria-pressed")`, 5*time.Second); p != "false" {
		t.Errorf("Mute is still pressed after a second click (aria-pressed %q)", p)
	}
	// The stats are one click away.
	a.click("Stats")
	a.waitFor("the stats panel", `!document.getElementById("stats").hidden && document.getElementById("stats-toggle").getAttribute("aria-expanded") === "true"`, 5*time.Second)
	a.axe(axeJS, "a call")
	a.shots("call", `document.getElementById("mic-level").value > 0.5`)
	a.dark(true)
	a.axe(axeJS, "a call, dark")
	a.shots("dark-call", `document.getElementById("mic-level").value > 0.5`)
	a.dark(false)
	// At 390 px the call is in front; back in the list, a bar leads back to it.
	a.do("resize to 390", 5*time.Second, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait))
	a.click("Back to conversations")
	a.waitFor("the list in front", `getComputedStyle(document.querySelector(".pane")).display === "none"`, 5*time.Second)
	a.click("Return to the call with ben")
	a.waitFor("the call in front again", `getComputedStyle(document.querySelector(".side")).display === "none" && !document.getElementById("incall").hidden`, 5*time.Second)
	a.resetViewport()
	a.noCSPViolation("ann, in a call")
	bb.noCSPViolation("ben, in a call")
	bb.click("Hang up")
	a.shows("ben hung up", 10*time.Second)

	// ben's page closes: ann sees him offline within a second.
	a.waitFor("ben online", badge("ben", "online"), 10*time.Second)
	eval[bool](a, `(() => {
		window.__offAt = 0;
		const iv = setInterval(() => { if (`+badge("ben", "offline")+`) { window.__offAt = Date.now(); clearInterval(iv); } }, 10);
		return true;
	})()`, 5*time.Second)
	closed := time.Now()
	bb.do("close ben's page", 10*time.Second, chromedp.Navigate("about:blank"))
	a.waitFor("ben offline", `window.__offAt > 0`, 5*time.Second)
	took := time.UnixMilli(int64(eval[float64](a, `window.__offAt`, 5*time.Second))).Sub(closed)
	t.Logf("ann saw ben offline %v after his page began to close", took.Round(time.Millisecond))
	if took > time.Second {
		t.Errorf("ann saw ben offline %v after his page closed, want within 1 s", took.Round(time.Millisecond))
	}
	// A page opened after that knows at once too: never online, offline
	// within a second of being attached.
	a.do("reload", 20*time.Second, chromedp.Reload())
	a.waitFor("ann attached again", `document.getElementById("conn").textContent.startsWith("Online")`, 20*time.Second)
	attached := time.Now()
	a.waitFor("ben offline after the reload", badge("ben", "offline"), 3*time.Second)
	if d := time.Since(attached); d > time.Second {
		t.Errorf("after a reload, ann saw ben offline %v after attaching, want within 1 s", d.Round(time.Millisecond))
	}
	a.noCSPViolation("ann, after all")
}

func slicesMax(v []float64) float64 {
	m := 0.0
	for _, x := range v {
		m = max(m, x)
	}
	return m
}
