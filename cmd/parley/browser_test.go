package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/parley/parley/internal/audiotest"
)

// The tests in this file drive Debian's headless Chromium (chromedp) against
// the web client that `parley up` serves, with a fake microphone fed from a
// WAV file, and act on the page as a person would: they find every control
// by its visible label or aria-label.

// chromiumPath finds Chromium; without it the test skips, or fails under CI.
func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("Chromium is not installed (scripts/deps.sh installs Debian's chromium)")
	}
	t.Skip("skipping browser test: Chromium is not installed (apt-get install chromium, or run scripts/deps.sh as root)")
	return ""
}

// browser is one headless Chromium with its own profile and fake microphone.
type browser struct {
	t   testing.TB
	ctx context.Context
}

// newBrowser starts Chromium whose microphone plays wav (looping), with
// extra command-line flags.
func newBrowser(t testing.TB, wav string, flags ...chromedp.ExecAllocatorOption) *browser {
	t.Helper()
	exe := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 900),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-audio-capture", wav),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
	)
	opts = append(opts, flags...)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelA()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("starting Chromium: %v", err)
	}
	// The page's console warnings and errors and its uncaught exceptions
	// are kept, and logged if the test fails.
	var mu sync.Mutex
	var console []string
	keep := func(s string) {
		mu.Lock()
		console = append(console, time.Now().Format("15:04:05.000 ")+s)
		mu.Unlock()
	}
	chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if ev.Type != runtime.ConsoleAPICalledTypeWarning && ev.Type != runtime.ConsoleAPICalledTypeError {
				return
			}
			var args []string
			for _, a := range ev.Args {
				if a.Value != nil {
					args = append(args, string(a.Value))
				} else {
					args = append(args, a.Description)
				}
			}
			keep(fmt.Sprintf("console %s: %s", ev.Type, strings.Join(args, " ")))
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails.Text
			if ev.ExceptionDetails.Exception != nil {
				d += " " + ev.ExceptionDetails.Exception.Description
			}
			keep("exception: " + d)
		}
	})
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() && len(console) > 0 {
			t.Logf("the page's console:\n%s", strings.Join(console, "\n"))
		}
	})
	return &browser{t: t, ctx: ctx}
}

// control is an XPath for the controls a person (or a screen reader) would
// call name: a button, field or list whose aria-label is name, or, without
// one, whose text or <label> is.
func control(name string) string {
	q := xpathString(name)
	return fmt.Sprintf(`//*[(self::button or self::input or self::textarea or self::select) and `+
		`(@aria-label=%[1]s or (not(@aria-label) and (normalize-space(.)=%[1]s or @id=//label[normalize-space(.)=%[1]s]/@for)))]`, q)
}

// searchBox is the name of the page's search field, where a person types
// a user name to find them, write to them, call them or add them.
const searchBox = "Search contacts and users"

func xpathString(s string) string {
	if !strings.Contains(s, `"`) {
		return `"` + s + `"`
	}
	return `'` + s + `'`
}

func (b *browser) do(what string, d time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v\npage says: %s", what, err, b.pageText())
	}
}

// click clicks, with the mouse, the first visible and enabled control
// called name (a conversation's row and its header may both offer one),
// once it stays put.
func (b *browser) click(name string) {
	b.t.Helper()
	find := fmt.Sprintf(`(() => {
		const r = document.evaluate(%q, document, null, XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null);
		for (let i = 0; i < r.snapshotLength; i++) {
			const el = r.snapshotItem(i);
			if (el.disabled || !el.checkVisibility({visibilityProperty: true})) continue;
			el.scrollIntoView({block: "nearest", inline: "nearest"});
			const a = el.getBoundingClientRect();
			if (a.width === 0 || a.height === 0) continue;
			return [a.left + a.width / 2, a.top + a.height / 2];
		}
		return [];
	})()`, control(name))
	deadline := time.Now().Add(20 * time.Second)
	var last []float64
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		at, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](find))
		cancel()
		if err == nil && len(at) == 2 {
			if slices.Equal(at, last) { // not moving (a notice coming or going shifts the page)
				b.do("click "+name, 5*time.Second, chromedp.MouseClickXY(at[0], at[1]))
				return
			}
			last = at
			time.Sleep(30 * time.Millisecond)
			continue
		}
		last = nil
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("click %s: no visible, enabled control of that name after 20s\npage says: %s", name, b.pageText())
}

func (b *browser) typeInto(name, text string) {
	b.t.Helper()
	b.do("type into "+name, 10*time.Second, chromedp.SendKeys(control(name), text, chromedp.NodeVisible))
}

// clearField empties a text field (as select-all and delete would).
func (b *browser) clearField(name string) {
	b.t.Helper()
	ok := eval[bool](b, fmt.Sprintf(`(() => {
		const el = document.evaluate(%q, document, null, XPathResult.FIRST_ORDERED_NODE_TYPE, null).singleNodeValue;
		if (!el) return false;
		el.select(); el.value = "";
		return true;
	})()`, control(name)), 5*time.Second)
	if !ok {
		b.t.Fatalf("clear %s: no such field", name)
	}
}

// eval evaluates js (awaiting a promise) and returns its value.
func eval[T any](b *browser, js string, d time.Duration) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluating %.60q: %v\npage says: %s", js, err, b.pageText())
	}
	return v
}

// pageText is what the page shows (for failure messages).
func (b *browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return strings.Join(strings.Fields(s), " ")
}

// waitFor polls the JavaScript condition cond until it is true.
func (b *browser) waitFor(what, cond string, d time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+cond+`)`))
		cancel()
		if err == nil && ok {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("waiting for %s: not after %v\npage says: %s", what, d, b.pageText())
}

// shows waits until the page shows text.
func (b *browser) shows(text string, d time.Duration) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("the page to show %q", text), fmt.Sprintf(`document.body.innerText.includes(%q)`, text), d)
}

// signUp opens the page and makes an account the way a person does.
func (b *browser) signUp(loginURL, user, password string) {
	b.t.Helper()
	b.do("open the page", 20*time.Second, chromedp.Navigate(loginURL+"/"))
	b.typeInto("Username", user)
	b.typeInto("Password", password)
	b.click("Sign up")
	b.waitOnline(user + " online")
}

// signIn fills in the sign-in form and presses Sign in.
func (b *browser) signIn(user, password string) {
	b.t.Helper()
	b.clearField("Username")
	b.typeInto("Username", user)
	b.clearField("Password")
	b.typeInto("Password", password)
	b.click("Sign in")
}

// waitOnline waits until the page is attached to a supernode.
func (b *browser) waitOnline(what string) {
	b.t.Helper()
	b.waitFor(what, `document.getElementById("conn").textContent.startsWith("Online")`, 20*time.Second)
}

// cliAndPage registers the CLI user cli and signs up the browser user web in
// a fresh browser whose microphone plays ref (micWAV(seed)).
func cliAndPage(t *testing.T, loginURL, cli, web string, seed uint64) (env []string, b *browser, ref []int16) {
	t.Helper()
	env = cliUser(t, loginURL, cli)
	ref, wav := micWAV(t, seed)
	b = newBrowser(t, wav)
	b.signUp(loginURL, web, web+"-password")
	return env, b, ref
}

// cliUser registers a CLI user (password: name-password) and returns their
// environment.
func cliUser(t *testing.T, loginURL, name string, env ...string) []string {
	t.Helper()
	e := append(userEnv(t, loginURL, name+"-password"), env...)
	if _, errOut, code := runParley(t, e, "register", name); code != 0 {
		t.Fatalf("register %s: %s", name, errOut)
	}
	return e
}

// callState is the call panel's state line.
func (b *browser) callState() string {
	return eval[string](b, `document.getElementById("call-state").textContent`, 5*time.Second)
}

// waitConnected waits until the call panel says the call is connected.
func (b *browser) waitConnected(d time.Duration) {
	b.t.Helper()
	b.waitFor("the call to connect", `!document.getElementById("incall").hidden && document.getElementById("call-state").textContent.startsWith("Connected")`, d)
}

// captureRemote starts recording, in the page, the audio the call receives
// (WebAudio, 48 kHz mono float → 16-bit PCM).
func (b *browser) captureRemote() {
	b.t.Helper()
	b.waitFor("the remote stream", `window.parley.call && window.parley.call.remoteStream`, 20*time.Second)
	eval[bool](b, `(async () => {
		const ctx = new AudioContext({sampleRate: 48000});
		await ctx.resume();
		const src = ctx.createMediaStreamSource(window.parley.call.remoteStream);
		const proc = ctx.createScriptProcessor(4096, 1, 1);
		const sink = ctx.createGain();
		sink.gain.value = 0;
		window.__captured = [];
		proc.onaudioprocess = (e) => window.__captured.push(new Float32Array(e.inputBuffer.getChannelData(0)));
		src.connect(proc); proc.connect(sink); sink.connect(ctx.destination);
		window.__capture = {ctx, src, proc};
		return true;
	})()`, 10*time.Second)
}

// captured stops the capture and returns what it recorded.
func (b *browser) captured() []int16 {
	b.t.Helper()
	s := eval[string](b, `(() => {
		const c = window.__capture; c.src.disconnect(); c.proc.disconnect(); c.ctx.close();
		let n = 0; for (const f of window.__captured) n += f.length;
		const out = new Int16Array(n); let o = 0;
		for (const f of window.__captured) for (const v of f) out[o++] = Math.max(-32768, Math.min(32767, Math.round(v * 32767)));
		const u8 = new Uint8Array(out.buffer); let bin = "";
		for (let i = 0; i < u8.length; i += 0x8000) bin += String.fromCharCode.apply(null, u8.subarray(i, i + 0x8000));
		return btoa(bin);
	})()`, 30*time.Second)
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b.t.Fatal(err)
	}
	pcm := make([]int16, len(raw)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return pcm
}

// stat reads one figure of the stats panel.
func (b *browser) stat(id string) string {
	return eval[string](b, `document.getElementById("`+id+`").textContent`, 5*time.Second)
}

// artifactDir is where browser tests keep screenshots: $PARLEY_ARTIFACTS, or
// docs/artifacts in the repository (ignored by git).
func artifactDir(t testing.TB) string {
	dir := os.Getenv("PARLEY_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "docs", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// micWAV is a looping speech-like signal for a fake microphone: one period
// of speech and a pause, so that envelopes line up unambiguously.
func micWAV(t testing.TB, seed uint64) ([]int16, string) {
	ref := append(audiotest.Speech(seed, 2*time.Second), audiotest.Silence(time.Second)...)
	return ref, writeWAV(t, ref)
}

// matchLooped is the best envelope correlation of one period of a looping
// ref (a fake microphone) with any stretch of rec. Chromium's fake capture
// device, on two busy cores, now and then skips a few tens of milliseconds
// of its file, which shifts everything after; each period between two skips
// is still the file's.
func matchLooped(ref, rec []int16) (float64, time.Duration) {
	maxLag := time.Duration(max(0, len(rec)-len(ref))) * time.Second / 48000
	return audiotest.MatchEnvelope(ref, rec, maxLag)
}

// TestBrowserCallsCLI: a browser user signs up and calls a CLI user who
// answers and records; the recording matches the browser's microphone.
func TestBrowserCallsCLI(t *testing.T) {
	chromiumPath(t)
	loginURL := upNetwork(t)
	bob, b, ref := cliAndPage(t, loginURL, "bob", "alice", 11)
	rec := filepath.Join(t.TempDir(), "bob.wav")
	listener := start(t, bob, "listen", "--answer", "--record", rec, "--calls", "1", "--json")
	waitOnline(t, listener)
	cliContacts(t, b, bob, "bob", "alice")
	b.typeInto(searchBox, "bob")
	b.click("Call")
	b.waitConnected(20 * time.Second)
	// A chat message in a call goes over the call's data channel.
	b.click("Chat with bob")
	b.sendChat("in the call")
	waitOutput(t, listener, `"text":"in the call","sent":`, 20*time.Second)
	b.waitFor("the message to be delivered", chatMark("in the call", "delivered"), 20*time.Second)
	if evs := cliMessages(listener, "in the call"); len(evs) != 1 || evs[0].Via != "datachannel" || evs[0].Peer != "alice" {
		out, _ := listener.output()
		t.Errorf("the CLI's events for the message: %+v, want one from alice via datachannel\n%s", evs, out)
	}
	time.Sleep(12 * time.Second)
	path := b.stat("st-path")
	rtt := b.stat("st-rtt")
	codecName := b.stat("st-codec")
	t.Logf("browser stats: path %q, round trip %q, codec %q", path, rtt, codecName)
	b.click("Hang up")
	if c := listener.wait(t, 15*time.Second); c != 0 {
		t.Fatalf("listen exited %d", c)
	}
	b.shows("Call with bob ended", 10*time.Second)

	if !strings.HasPrefix(path, "direct") {
		t.Errorf("browser shows path %q, want direct", path)
	}
	if !strings.Contains(strings.ToLower(codecName), "opus") {
		t.Errorf("browser shows codec %q, want opus", codecName)
	}
	out, _ := listener.output()
	if !strings.Contains(out, `"path":"direct"`) {
		t.Errorf("the CLI never reported a direct path:\n%s", out)
	}
	got := readWAV(t, rec)
	keepWAV(t, "browser-to-cli-recorded.wav", got)
	keepWAV(t, "browser-to-cli-mic.wav", ref)
	corr, lag := matchLooped(ref, got)
	t.Logf("browser → CLI: envelope correlation %.3f at lag %v (%.1f s recorded)", corr, lag, float64(len(got))/48000)
	if corr < 0.85 {
		t.Errorf("the CLI's recording correlates %.3f with the browser's microphone, want ≥ 0.85", corr)
	}
}

// TestCLICallsBrowser: a CLI user calls the browser user, who presses
// Answer; what the page receives is what the CLI played.
func TestCLICallsBrowser(t *testing.T) {
	chromiumPath(t)
	loginURL := upNetwork(t)
	alice, b, _ := cliAndPage(t, loginURL, "alice", "carol", 21)

	ref := append(append(audiotest.Speech(7, 3*time.Second), audiotest.Silence(time.Second)...), audiotest.Speech(8, 1500*time.Millisecond)...)
	call := start(t, alice, "call", "carol", "--play", writeWAV(t, ref), "--json")
	b.shows("is calling you", 20*time.Second)
	if who := eval[string](b, `document.getElementById("incoming-peer").textContent`, 5*time.Second); who != "alice" {
		t.Errorf("incoming call shows %q, want alice", who)
	}
	b.click("Answer")
	b.captureRemote()
	b.waitConnected(20 * time.Second)
	if c := call.wait(t, 30*time.Second); c != 0 {
		out, errOut := call.output()
		t.Fatalf("call exited %d\n%s\n%s", c, out, errOut)
	}
	b.shows("alice hung up", 10*time.Second)
	got := b.captured()
	out, _ := call.output()
	if !strings.Contains(out, `"state":"connected"`) {
		t.Errorf("the CLI never connected:\n%s", out)
	}
	env, elag := audiotest.MatchEnvelope(ref, got, 4*time.Second)
	wave := chunkWave(ref, got, elag)
	// The same kind of signal that was not played: what the waveform
	// correlation of audio that merely sounds alike comes to.
	other := append(append(audiotest.Speech(9, 3*time.Second), audiotest.Silence(time.Second)...), audiotest.Speech(10, 1500*time.Millisecond)...)
	control := chunkWave(other, got, elag)
	keepWAV(t, "cli-to-browser-captured.wav", got)
	t.Logf("CLI → browser: envelope correlation %.3f at %v, waveform correlation %.3f (control %.3f; %.1f s captured)",
		env, elag, wave, control, float64(len(got))/48000)
	if env < 0.85 {
		t.Errorf("the page's audio has envelope correlation %.3f with what the CLI played, want ≥ 0.85", env)
	}
	// Comfort noise, or any other sound with a similar envelope, would not
	// match the waveform itself.
	if wave < 0.5 || wave < 2*control {
		t.Errorf("the page's audio has waveform correlation %.3f with what the CLI played (%.3f with a signal that was not played), want ≥ 0.5 and twice the control", wave, control)
	}
}

// chunkWave is the median waveform correlation of ref's spoken half-seconds
// with rec, each searched within 100 ms of where the envelope put it (lag):
// the receiver's jitter buffer stretches time a little, so one alignment
// does not hold for a whole signal, but it does for half a second.
func chunkWave(ref, rec []int16, lag time.Duration) float64 {
	const chunk, slack = 24000, 4800
	at := int(lag * 48000 / time.Second)
	var cs []float64
	for s := 0; s+chunk <= len(ref); s += chunk {
		part := ref[s : s+chunk]
		if audiotest.RMSdB(part) < -50 {
			continue
		}
		from := max(0, at+s-slack)
		if from >= len(rec) {
			cs = append(cs, 0)
			continue
		}
		c, _ := audiotest.Correlate(part, rec[from:], 2*slack*time.Second/48000)
		cs = append(cs, c)
	}
	if len(cs) == 0 {
		return 0
	}
	slices.Sort(cs)
	return cs[len(cs)/2]
}

// annAndBen starts `parley up` and two browsers, signed up as ann and ben;
// ann's microphone plays refA (seed), ben's another signal (seed+1).
func annAndBen(t *testing.T, seed uint64) (a, bb *browser, refA []int16) {
	t.Helper()
	chromiumPath(t)
	loginURL := upNetwork(t)
	refA, wavA := micWAV(t, seed)
	_, wavB := micWAV(t, seed+1)
	a = newBrowser(t, wavA)
	bb = newBrowser(t, wavB)
	a.signUp(loginURL, "ann", "ann-password")
	bb.signUp(loginURL, "ben", "ben-password")
	return a, bb, refA
}

// askContact asks user to be a contact, from the search field.
func (b *browser) askContact(user string) {
	b.t.Helper()
	b.typeInto(searchBox, user)
	b.click("Add contact")
	b.shows("Contact request sent to "+user, 10*time.Second)
}

// TestBrowserCallsBrowser: two browsers call each other, hold and resume;
// a screenshot of the page in the call is kept as an artifact.
func TestBrowserCallsBrowser(t *testing.T) {
	a, bb, refA := annAndBen(t, 31)

	// ann asks ben to be a contact; ben accepts; each sees the other online.
	a.askContact("ben")
	bb.click("Accept ann")
	bb.shows("ann is now a contact", 10*time.Second)
	a.waitFor("ben online in ann's contacts", badge("ben", "online"), 15*time.Second)
	bb.waitFor("ann online in ben's contacts", badge("ann", "online"), 15*time.Second)
	// ben goes away; ann sees it without asking.
	bb.typeInto("My status", "a")
	a.waitFor("ben away in ann's contacts", badge("ben", "away"), 15*time.Second)
	bb.typeInto("My status", kb.ArrowUp) // back to Online
	a.waitFor("ben online again in ann's contacts", badge("ben", "online"), 15*time.Second)

	a.click("Chat with ben")
	a.click("Call ben")
	bb.shows("ann is calling you", 20*time.Second)
	bb.click("Answer")
	bb.captureRemote()
	a.waitConnected(20 * time.Second)
	bb.waitConnected(20 * time.Second)
	time.Sleep(9 * time.Second)

	for _, p := range []*browser{a, bb} {
		if path := p.stat("st-path"); !strings.HasPrefix(path, "direct") {
			t.Errorf("path %q, want direct", path)
		}
	}
	shot := a.screenshot()
	dir := artifactDir(t)
	file := filepath.Join(dir, "web-in-call.png")
	if err := os.WriteFile(file, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the page in a call: %s", file)

	got := bb.captured()
	corr, lag := matchLooped(refA, got)
	t.Logf("browser → browser: envelope correlation %.3f at lag %v (%.1f s captured)", corr, lag, float64(len(got))/48000)
	if corr < 0.85 {
		t.Errorf("ben hears ann with envelope correlation %.3f, want ≥ 0.85", corr)
	}

	a.click("Hold")
	bb.waitFor("ben to see the hold", `document.getElementById("call-state").textContent.includes("On hold by ann")`, 10*time.Second)
	if s := a.callState(); s != "On hold" {
		t.Errorf("ann's call state %q, want On hold", s)
	}
	// Packets keep flowing on hold.
	before := eval[float64](bb, `window.parley.call.stats.packetsReceived`, 5*time.Second)
	time.Sleep(2 * time.Second)
	after := eval[float64](bb, `window.parley.call.stats.packetsReceived`, 5*time.Second)
	if after-before < 50 {
		t.Errorf("on hold ben received %v packets in 2 s, want ≥ 50 (packets must keep flowing)", after-before)
	}
	a.click("Resume")
	bb.waitFor("ben to see the resume", `document.getElementById("call-state").textContent === "Connected"`, 10*time.Second)
	a.click("Mute")
	if p := eval[string](a, `document.getElementById("mute").getAttribute("aria-pressed")`, 5*time.Second); p != "true" {
		t.Errorf("Mute is not pressed after a click (aria-pressed %q)", p)
	}
	a.click("Hang up")
	bb.shows("ann hung up", 10*time.Second)
	a.shows("Call with ben ended", 10*time.Second)
}

// keepWAV keeps pcm in the artifact directory (for listening to a failure).
func keepWAV(t *testing.T, name string, pcm []int16) {
	src := writeWAV(t, pcm)
	b, err := os.ReadFile(src)
	if err == nil {
		err = os.WriteFile(filepath.Join(artifactDir(t), name), b, 0o644)
	}
	if err != nil {
		t.Logf("keeping %s: %v", name, err)
	}
}

// badge is a JavaScript condition: the contact list shows user with presence.
func badge(user, presence string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#contact-list li")].some((li) => `+
		`li.querySelector(".name").textContent === %q && li.querySelector(".badge").textContent === %q)`, user, presence)
}

func (b *browser) screenshot() []byte {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot: %v", err)
	}
	return png
}

// TestWebServed: `parley login-server --web` and `parley supernode --web`
// serve the web client with the right types and the page's security
// headers (on the API too), and the supernode passes the page's API
// requests on to its login server (one origin for the page).
func TestWebServed(t *testing.T) {
	ports := freePorts(t, 3)
	lAddr, sAddr, turn := ports[0], ports[1], ports[2]
	start(t, nil, "login-server", "--max-registrations-per-addr", "1000", "--web", "--listen", lAddr, "--data", t.TempDir(), "--supernode-allow", "127.0.0.0/8")
	loginURL := "http://" + lAddr
	waitHTTP(t, loginURL+"/healthz")
	start(t, []string{"PARLEY_LOGIN=" + loginURL}, "supernode", "--web", "--listen", sAddr,
		"--turn-udp", turn, "--turn-tcp", turn, "--relay-allow-peer", "127.0.0.0/8")
	snURL := "http://" + sAddr
	waitHTTP(t, snURL+"/healthz")
	for _, base := range []string{loginURL, snURL} {
		for path, typ := range map[string]string{
			"/": "text/html", "/js/app.js": "text/javascript", "/js/phone.js": "text/javascript", "/style.css": "text/css",
		} {
			resp, err := http.Get(base + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), typ) || len(body) == 0 {
				t.Errorf("GET %s%s: %d %q (%d bytes), want 200 %s", base, path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), typ)
			}
		}
		resp, err := http.Get(base + "/api/v1/key")
		if err != nil {
			t.Fatal(err)
		}
		var k struct {
			Alg string `json:"alg"`
		}
		json.NewDecoder(resp.Body).Decode(&k)
		resp.Body.Close()
		if resp.StatusCode != 200 || k.Alg != "Ed25519" {
			t.Errorf("GET %s/api/v1/key: %d alg %q, want the login server's key", base, resp.StatusCode, k.Alg)
		}
		// The page's security headers on every answer, API included.
		checkSecurityHeaders(t, base)
	}
}

// TestWebFrontKeepsBrowsersApart: a supernode serving the page passes the
// browser's address on (X-Forwarded-For), and a login server that trusts it
// (--trusted-proxy) limits each browser by its own address: one that has
// used up its failed sign-ins does not lock out another behind the same
// supernode.
func TestWebFrontKeepsBrowsersApart(t *testing.T) {
	ports := freePorts(t, 3)
	lAddr, sAddr, turn := ports[0], ports[1], ports[2]
	start(t, nil, "login-server", "--max-registrations-per-addr", "1000", "--listen", lAddr, "--data", t.TempDir(),
		"--supernode-allow", "127.0.0.0/8", "--trusted-proxy", "127.0.0.1/32")
	loginURL := "http://" + lAddr
	waitHTTP(t, loginURL+"/healthz")
	start(t, []string{"PARLEY_LOGIN=" + loginURL}, "supernode", "--web", "--listen", sAddr,
		"--turn-udp", turn, "--turn-tcp", turn, "--relay-allow-peer", "127.0.0.0/8")
	waitHTTP(t, "http://"+sAddr+"/healthz")
	users := []string{"u1", "u2", "u3", "u4", "u5"}
	for _, u := range users {
		cliUser(t, loginURL, u)
	}
	from := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	signIn := func(c *http.Client, user string) int {
		t.Helper()
		body := strings.NewReader(`{"user":"` + user + `","password":"not-the-password","public_key":"` +
			base64.StdEncoding.EncodeToString(make([]byte, 32)) + `"}`)
		resp, err := c.Post("http://"+sAddr+"/api/v1/login", "application/json", body)
		must(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	// The first browser (127.0.0.2) fails 4 times for each of 5 users: 20
	// failures, its limit.
	a := from("127.0.0.2")
	for _, u := range users {
		for range 4 {
			if code := signIn(a, u); code != http.StatusUnauthorized {
				t.Fatalf("a wrong password for %s answered %d, want 401", u, code)
			}
		}
	}
	if code := signIn(a, "u1"); code != http.StatusTooManyRequests {
		t.Errorf("the first browser's 21st failure answered %d, want 429", code)
	}
	// Another browser (127.0.0.3) behind the same supernode is not locked out.
	if code := signIn(from("127.0.0.3"), "u1"); code != http.StatusUnauthorized {
		t.Errorf("another browser's first try answered %d, want 401 (its own limit)", code)
	}
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	waitHTTPWith(t, http.DefaultClient, url)
}

// waitHTTPWith waits until url answers 200 to client.
func waitHTTPWith(t *testing.T, client *http.Client, url string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not answer", url)
}

// TestBrowserErrors: what a person can get wrong reads as a plain sentence.
func TestBrowserErrors(t *testing.T) {
	chromiumPath(t)
	loginURL := upNetwork(t)
	dave := cliUser(t, loginURL, "dave")
	cliUser(t, loginURL, "carol")
	// dave is online and declines calls (listen without --answer).
	waitOnline(t, start(t, dave, "listen", "--json"))
	_, wav := micWAV(t, 41)
	b := newBrowser(t, wav)
	b.signUp(loginURL, "erin", "erin-password")
	b.click("Sign out")
	b.signIn("erin", "not-her-password")
	b.shows("Wrong user name or password.", 10*time.Second)
	b.signIn("erin", "erin-password")
	b.waitOnline("erin online")

	for _, tt := range []struct{ who, want string }{
		{"carol", "carol is offline."},
		{"nobody-here", "There is no user called nobody-here."},
		{"dave", "dave declined the call."},
	} {
		b.clearField(searchBox)
		b.typeInto(searchBox, tt.who)
		b.click("Call")
		b.shows(tt.want, 20*time.Second)
	}

	// In a browser where the person said no to the microphone (no fake
	// consent, and the site's permission set to denied): no call, and the
	// page says why.
	nomic := newBrowser(t, wav, chromedp.Flag("use-fake-ui-for-media-stream", false))
	ctx, cancel := context.WithTimeout(nomic.ctx, 5*time.Second)
	defer cancel()
	if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
		Permission: &cdpbrowser.PermissionDescriptor{Name: "microphone"}, Setting: cdpbrowser.PermissionSettingDenied, Origin: loginURL,
	}); err != nil {
		t.Fatalf("denying the microphone: %v", err)
	}
	nomic.do("open the page", 20*time.Second, chromedp.Navigate(loginURL+"/"))
	nomic.signIn("erin", "erin-password")
	nomic.waitOnline("erin online in the second browser")
	b = nomic
	b.typeInto(searchBox, "dave")
	b.click("Call")
	b.shows("Microphone access was denied. Allow the microphone for this page to make calls.", 10*time.Second)
	if eval[bool](b, `!document.getElementById("incall").hidden`, 5*time.Second) {
		t.Errorf("the call panel is open without a microphone")
	}
}

// chatLine is a JavaScript expression: how many lines of the open
// conversation show text (from who: "me" or the peer).
func chatLine(who, text string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#chat-log li.msg")].filter((li) => `+
		`li.querySelector(".who").textContent === %q && li.querySelector(".text").textContent === %q).length`, who, text)
}

// chatMark is a JavaScript condition: my message text shows the mark.
func chatMark(text, mark string) string {
	return fmt.Sprintf(`[...document.querySelectorAll("#chat-log li.msg.out")].some((li) => `+
		`li.querySelector(".text").textContent === %q && li.querySelector(".mark").textContent === %q)`, text, mark)
}

// sendChat types text into Message and presses Send.
func (b *browser) sendChat(text string) {
	b.t.Helper()
	b.typeInto("Message", text)
	b.click("Send")
}

// onceIn checks, a moment after it appeared, that a line shows exactly once.
func (b *browser) onceIn(who, text string) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("%q from %s in the conversation", text, who), chatLine(who, text)+` >= 1`, 20*time.Second)
	time.Sleep(1500 * time.Millisecond)
	if n := eval[float64](b, chatLine(who, text), 5*time.Second); n != 1 {
		b.t.Errorf("%q from %s shows %v times, want once\npage says: %s", text, who, n, b.pageText())
	}
}

// cliContacts makes the CLI user (env) and the browser user contacts: the
// CLI asks, the page accepts.
func cliContacts(t *testing.T, b *browser, env []string, cliUser, webUser string) {
	t.Helper()
	if out, errOut, code := runParley(t, env, "contacts", "add", webUser); code != 0 {
		t.Fatalf("contacts add %s: exit %d\n%s\n%s", webUser, code, out, errOut)
	}
	b.click("Accept " + cliUser)
	b.shows(cliUser+" is now a contact", 15*time.Second)
}

// waitOutput waits until a process has printed want.
func waitOutput(t *testing.T, p *proc, want string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if out, _ := p.output(); strings.Contains(out, want) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	out, errOut := p.output()
	t.Fatalf("parley never printed %s\nstdout:\n%s\nstderr:\n%s", want, out, errOut)
}

// cliEvent is a message event of `parley listen --json`.
type cliEvent struct{ Event, Peer, Text, Via string }

// cliMessages returns the message events of p with text.
func cliMessages(p *proc, text string) []cliEvent {
	out, _ := p.output()
	var evs []cliEvent
	for _, line := range strings.Split(out, "\n") {
		var ev cliEvent
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Event == "message" && ev.Text == text {
			evs = append(evs, ev)
		}
	}
	return evs
}

// TestBrowserChatCLI: a browser user and a CLI user who are contacts
// exchange messages both ways; each side shows the other's once, and the
// page marks its message delivered.
func TestBrowserChatCLI(t *testing.T) {
	chromiumPath(t)
	loginURL := upNetwork(t)
	bob, b, _ := cliAndPage(t, loginURL, "bob", "alice", 51)
	cliContacts(t, b, bob, "bob", "alice")
	listener := start(t, bob, "listen", "--json")
	waitOnline(t, listener)

	// Browser → CLI.
	b.click("Chat with bob")
	b.sendChat("hello bob, from the browser")
	waitOutput(t, listener, `"text":"hello bob, from the browser"`, 20*time.Second)
	b.waitFor("the message to be delivered", chatMark("hello bob, from the browser", "delivered"), 20*time.Second)
	if evs := cliMessages(listener, "hello bob, from the browser"); len(evs) != 1 || evs[0].Via != "supernode" || evs[0].Peer != "alice" {
		out, _ := listener.output()
		t.Errorf("the CLI's events for the message: %+v, want one from alice via supernode\n%s", evs, out)
	}

	// CLI → browser.
	res, errOut, code := runParley(t, bob, "chat", "alice", "hi alice, from the CLI")
	if code != 0 {
		t.Fatalf("chat alice: exit %d\n%s\n%s", code, res, errOut)
	}
	t.Logf("parley chat: %s", strings.TrimSpace(res))
	b.onceIn("bob", "hi alice, from the CLI")
	if !strings.Contains(res, "delivered") {
		t.Errorf("parley chat says %q, want delivered (the page acknowledges)", res)
	}

	// The page removes bob, then accepts him again: the CLI's running
	// device follows within 2 s (the page signals the change).
	presence := func(status string, n int) {
		t.Helper()
		start := time.Now()
		deadline := start.Add(2 * time.Second)
		for {
			k := 0
			for _, ev := range listener.events(t, "presence") {
				if ev["peer"] == "alice" && ev["status"] == status {
					k++
				}
			}
			if k >= n {
				t.Logf("bob's listen sees alice %s after %v", status, time.Since(start).Round(time.Millisecond))
				return
			}
			if time.Now().After(deadline) {
				out, _ := listener.output()
				t.Fatalf("bob's listen did not see alice %s (event %d) within 2 s:\n%s", status, n, out)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	presence("online", 1)
	b.click("Remove bob")
	presence("offline", 1)
	if out, errOut, code := runParley(t, bob, "contacts", "add", "alice"); code != 0 {
		t.Fatalf("contacts add alice: exit %d\n%s\n%s", code, out, errOut)
	}
	// The request shows at once, not at the page's next 5 s poll.
	b.waitFor("bob's request on the page", `!!document.querySelector('button[aria-label="Accept bob"]')`, 2*time.Second)
	b.click("Accept bob")
	presence("online", 2)
}

// TestBrowserChatBrowser: two browsers who are contacts send a message each
// way; each shows the other's once and marks its own read (the other has
// it on screen).
func TestBrowserChatBrowser(t *testing.T) {
	a, bb, _ := annAndBen(t, 61)
	a.askContact("ben")
	// Until ben accepts, ann cannot write to him.
	a.click("Chat with ben")
	a.sendChat("too early")
	a.shows("ben is not your contact yet", 10*time.Second)
	a.clearField("Message")
	bb.click("Accept ann")
	bb.shows("ann is now a contact", 10*time.Second)

	a.click("Chat with ben")
	a.sendChat("ben, are you there?")
	bb.waitFor("ann's message unread at ben's", unread("ann", 1), 20*time.Second)
	bb.click("Chat with ann")
	bb.onceIn("ann", "ben, are you there?")
	// ben has it on screen: read.
	a.waitFor("ann's message read", chatMark("ben, are you there?", "read"), 20*time.Second)

	bb.sendChat("yes, ann: here")
	a.onceIn("ben", "yes, ann: here")
	bb.waitFor("ben's message read", chatMark("yes, ann: here", "read"), 20*time.Second)
	if n := eval[float64](a, chatLine("me", "ben, are you there?"), 5*time.Second); n != 1 {
		t.Errorf("ann's own message shows %v times, want once", n)
	}

	// An envelope altered after it was signed (its date moved by 1 ms) is
	// dropped with a notice, not shown.
	eval[bool](bb, `(async () => {
		const im = await import("/js/im.js");
		const m = window.parley.app.im;
		const devs = [...await m.devicesOf("ann"), ...await m.devicesOf("ben")];
		const { env } = await im.sealMessage(await m.sender(), "ann", devs, { seq: 99, text: "forged" });
		env.ts += 1;
		await window.parley.app.link.send("ann", env);
		return true;
	})()`, 10*time.Second)
	a.shows("Dropped a message claiming to be from ben that failed its checks", 10*time.Second)
	if n := eval[float64](a, chatLine("ben", "forged"), 5*time.Second); n != 0 {
		t.Errorf("the altered message shows %v times, want never", n)
	}
}

// TestBrowserChatOffline: a CLI user writes to a browser user who is signed
// out; the message waits in the mailbox and shows once after sign-in.
func TestBrowserChatOffline(t *testing.T) {
	chromiumPath(t)
	loginURL := upNetwork(t)
	erik, b, _ := cliAndPage(t, loginURL, "erik", "dora", 71)
	cliContacts(t, b, erik, "erik", "dora")
	b.click("Sign out")

	res, errOut, code := runParley(t, erik, "chat", "dora", "while you were out")
	if code != 0 {
		t.Fatalf("chat dora: exit %d\n%s\n%s", code, res, errOut)
	}
	t.Logf("parley chat: %s", strings.TrimSpace(res))
	b.signIn("dora", "dora-password")
	b.waitOnline("dora online")
	b.waitFor("erik's message unread", unread("erik", 1), 20*time.Second)
	b.click("Chat with erik")
	b.onceIn("erik", "while you were out")
	// A reload (a new attach, the mailbox read again) still shows it once.
	b.do("reload", 20*time.Second, chromedp.Reload())
	b.waitOnline("dora online again")
	b.click("Chat with erik")
	b.onceIn("erik", "while you were out")
}

// TestBrowserReconnects: the network the page is on crashes and comes back
// on the same addresses. The page says it lost the connection and reconnects
// by itself; a message written meanwhile waits ("sending…") and goes when the
// network is back; one still unsent when the page was closed goes when the
// page is opened again — opened while the server is still down, from the
// service worker's copy, saying it is offline, and signing in by itself
// once the server is back. The CLI user gets each once, and the page marks
// each delivered.
func TestBrowserReconnects(t *testing.T) {
	chromiumPath(t)
	up := startUp(t)
	bob, b, _ := cliAndPage(t, up.loginURL, "bob", "alice", 81)
	cliContacts(t, b, bob, "bob", "alice")
	listener := start(t, bob, "listen", "--json")
	waitOnline(t, listener)
	b.click("Chat with bob")

	// The network goes away under an open page.
	const during, closed = "written while the network was down", "left unsent when the page closed"
	up.crash()
	b.shows("Lost the connection to the Parley network; reconnecting by itself", 10*time.Second)
	b.sendChat(during)
	b.waitFor("the message waiting", chatMark(during, "sending…"), 10*time.Second)
	b.shows("No connection: the message goes by itself as soon as it is back.", 15*time.Second)
	up.restart()
	back := time.Now()
	b.shows("Connected again.", 30*time.Second)
	t.Logf("the page was online again within %v of the network", time.Since(back).Round(100*time.Millisecond))
	waitOutput(t, listener, `"text":"`+during+`"`, 40*time.Second)
	b.waitFor("the message delivered", chatMark(during, "delivered"), 30*time.Second)

	// It goes away again; the page is closed with a message unsent, and
	// opened again while the network is still down: the service worker's
	// copy of the page opens, says it is offline, and shows the
	// conversation as this browser keeps it. When the network is back it
	// signs in by itself.
	up.crash()
	b.shows("Lost the connection to the Parley network; reconnecting by itself", 10*time.Second)
	b.sendChat(closed)
	b.waitFor("the message waiting", chatMark(closed, "sending…"), 10*time.Second)
	b.do("close the page", 10*time.Second, chromedp.Navigate("about:blank"))
	b.do("open the page with the server down", 20*time.Second, chromedp.Navigate(up.loginURL+"/"))
	b.shows("You are offline: the Parley server cannot be reached.", 15*time.Second)
	if c := eval[string](b, `document.getElementById("conn").textContent`, 5*time.Second); c != "Offline" {
		t.Errorf("the page opened offline says %q, want Offline", c)
	}
	b.click("Chat with bob")
	b.waitFor("the unsent message, offline", chatMark(closed, "sending…")+` && `+chatLine("me", during)+` === 1`, 10*time.Second)
	b.shotsWith("offline", "", false)
	up.restart()
	back = time.Now()
	b.waitOnline("alice signed in again by herself")
	t.Logf("the page opened offline signed in %v after the network was back", time.Since(back).Round(100*time.Millisecond))
	waitOutput(t, listener, `"text":"`+closed+`"`, 40*time.Second)
	b.click("Chat with bob")
	b.waitFor("the message delivered", chatMark(closed, "delivered"), 30*time.Second)

	time.Sleep(2 * time.Second) // a duplicate would have come by now
	for _, text := range []string{during, closed} {
		if evs := cliMessages(listener, text); len(evs) != 1 || evs[0].Peer != "alice" {
			out, _ := listener.output()
			t.Errorf("the CLI's events for %q: %+v, want one from alice\n%s", text, evs, out)
		}
		if n := eval[float64](b, chatLine("me", text), 5*time.Second); n != 1 {
			t.Errorf("the page shows %q %v times, want once", text, n)
		}
	}
}

// TestBrowserOverTLS: a login server and a supernode given a certificate
// serve the page over https and the websocket over wss. At a host name that
// is not localhost, a browser gives keys and a microphone only to a secure
// origin: from the https page a person signs up and calls a CLI user; the
// same page served over plain http says plainly that it needs https.
func TestBrowserOverTLS(t *testing.T) {
	chromiumPath(t)
	cert, key := writeCert(t, net.ParseIP("127.0.0.1"), "parley.test")
	trust := "SSL_CERT_FILE=" + cert
	ports := freePorts(t, 4)
	lAddr, sAddr, turn, plain := ports[0], ports[1], ports[2], ports[3]
	start(t, []string{trust}, "login-server", "--max-registrations-per-addr", "1000", "--web", "--listen", lAddr, "--data", t.TempDir(),
		"--supernode-allow", "127.0.0.0/8", "--tls-cert", cert, "--tls-key", key)
	loginURL := "https://" + lAddr
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(cert)
	must(t, err)
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	waitHTTPWith(t, client, loginURL+"/healthz")
	start(t, []string{"PARLEY_LOGIN=" + loginURL, trust}, "supernode", "--web", "--listen", sAddr,
		"--tls-cert", cert, "--tls-key", key, "--turn-udp", turn, "--turn-tcp", turn, "--relay-allow-peer", "127.0.0.0/8")
	waitHTTPWith(t, client, "https://"+sAddr+"/")
	// The supernode's page asks its login server over TLS too.
	resp, err := client.Get("https://" + sAddr + "/api/v1/key")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET https://%s/api/v1/key: %d, want 200", sAddr, resp.StatusCode)
	}

	bob := cliUser(t, loginURL, "bob", trust)
	listener := start(t, bob, "listen", "--answer", "--calls", "1", "--json")
	waitOnline(t, listener)

	_, wav := micWAV(t, 91)
	b := newBrowser(t, wav,
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("host-resolver-rules", "MAP parley.test 127.0.0.1"))
	_, lPort, _ := net.SplitHostPort(lAddr)
	page := "https://parley.test:" + lPort
	b.signUp(page, "alice", "alice-password")
	if !eval[bool](b, `isSecureContext && window.parley.app.link.url.startsWith("wss://")`, 5*time.Second) {
		t.Errorf("the page is not a secure context on a wss:// link (link %q)", eval[string](b, `window.parley.app.link.url`, 5*time.Second))
	}
	b.typeInto(searchBox, "bob")
	b.click("Call")
	b.waitConnected(20 * time.Second)
	time.Sleep(2 * time.Second)
	b.click("Hang up")
	if c := listener.wait(t, 15*time.Second); c != 0 {
		t.Fatalf("listen exited %d", c)
	}
	out, _ := listener.output()
	if !strings.Contains(out, `"state":"connected"`) {
		t.Errorf("the CLI never connected:\n%s", out)
	}

	// The same page over plain http at that name.
	start(t, nil, "login-server", "--max-registrations-per-addr", "1000", "--web", "--listen", plain, "--data", t.TempDir())
	waitHTTP(t, "http://"+plain+"/healthz")
	_, pPort, _ := net.SplitHostPort(plain)
	b.do("open the page over http", 20*time.Second, chromedp.Navigate("http://parley.test:"+pPort+"/"))
	b.shows("This page needs a secure origin (HTTPS or localhost)", 10*time.Second)
}

// waitErr waits until a process has logged want on stderr.
func waitErr(t *testing.T, p *proc, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, errOut := p.output(); strings.Contains(errOut, want) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, errOut := p.output()
	t.Fatalf("parley never logged %q:\n%s", want, errOut)
}

// TestBrowserChoosesRelay: two relays are on offer, and one of them (a
// standalone relay with another secret) refuses this network's credentials.
// The page times both as well as a page can (a TURN allocation each): as
// callee it answers a CLI caller's probe with the one relay it can use, and
// the caller picks that one; as caller it picks it too and names it in its
// offer. Both calls connect.
func TestBrowserChoosesRelay(t *testing.T) {
	chromiumPath(t)
	lAddr := freePort(t)
	start(t, nil, "login-server", "--max-registrations-per-addr", "1000", "--web", "--listen", lAddr, "--data", t.TempDir(), "--supernode-allow", "127.0.0.0/8")
	loginURL := "http://" + lAddr
	waitHTTP(t, loginURL+"/healthz")
	on3 := freePortsOn(t, "127.0.0.3", 2)
	good, snListen, bad := on3[0], on3[1], freePortsOn(t, "127.0.0.2", 1)[0]
	rl := start(t, nil, "relay", "--public-addr", "127.0.0.2", "--turn-udp", bad, "--turn-tcp", bad,
		"--turn-secret-file", secretFile(t, "not-the-secret-of-this-network"), "--relay-allow-peer", "127.0.0.0/8")
	waitErr(t, rl, "relay listening")
	sn := start(t, []string{"PARLEY_LOGIN=" + loginURL}, "supernode", "--listen", snListen,
		"--turn-udp", good, "--turn-tcp", good, "--turn-secret-file", secretFile(t, "the-secret-of-this-parley-network"),
		"--relay", bad, "--relay-allow-peer", "127.0.0.0/8")
	waitErr(t, sn, "listed by the login server")

	bob, b, _ := cliAndPage(t, loginURL, "bob", "alice", 101)

	// The CLI calls the page: the page's probe reply names only the relay it
	// can allocate on, so the caller chooses that one.
	call := start(t, bob, "call", "alice", "--for", "2s", "--json", "--log-level", "info")
	b.shows("bob is calling you", 20*time.Second)
	b.click("Answer")
	b.waitConnected(20 * time.Second)
	if c := call.wait(t, 30*time.Second); c != 0 {
		out, errOut := call.output()
		t.Fatalf("call exited %d\n%s\n%s", c, out, errOut)
	}
	_, errOut := call.output()
	var chosen string
	for _, line := range strings.Split(errOut, "\n") {
		if strings.Contains(line, `msg="relay chosen"`) {
			chosen = line
		}
	}
	t.Logf("the CLI caller: %s", chosen)
	_, theirs, _ := strings.Cut(chosen, "theirs_ms=")
	if !strings.Contains(chosen, "relay="+good+" ") || !strings.Contains(theirs, good+":") || strings.Contains(theirs, bad) {
		t.Errorf("the CLI caller chose %q, want %s from the page's table of %s alone", chosen, good, good)
	}

	// The page calls the CLI.
	listener := start(t, bob, "listen", "--answer", "--calls", "1", "--json")
	waitOnline(t, listener)
	b.clearField(searchBox)
	b.typeInto(searchBox, "bob")
	b.click("Call")
	b.waitConnected(20 * time.Second)
	probe := eval[string](b, `JSON.stringify(window.parley.app.phone.lastProbe)`, 5*time.Second)
	t.Logf("the page as caller: %s", probe)
	var p struct {
		Mine, Theirs map[string]float64
		Relay        string
	}
	must(t, json.Unmarshal([]byte(probe), &p))
	if _, ok := p.Mine[bad]; ok || p.Mine[good] <= 0 {
		t.Errorf("the page measured %v, want %s alone", p.Mine, good)
	}
	if _, ok := p.Theirs[bad]; !ok || len(p.Theirs) != 2 {
		t.Errorf("the CLI answered the probe with %v, want both relays", p.Theirs)
	}
	if p.Relay != good {
		t.Errorf("the page chose %q, want %s", p.Relay, good)
	}
	b.click("Hang up")
	if c := listener.wait(t, 15*time.Second); c != 0 {
		t.Fatalf("listen exited %d", c)
	}
}

// TestBrowserCallsEcho is `make up` as a newcomer meets it: sign up on the
// page, type echo in the search box (not a contact), press Call, and hear yourself:
// what the page receives matches its own microphone.
func TestBrowserCallsEcho(t *testing.T) {
	chromiumPath(t)
	loginURL := upNetwork(t)
	ref, wav := micWAV(t, 111)
	b := newBrowser(t, wav)
	b.signUp(loginURL, "newcomer", "newcomer-password")
	b.typeInto(searchBox, "echo")
	b.click("Call")
	b.waitConnected(20 * time.Second)
	b.captureRemote()
	// Over 11 s: on busy cores Chromium's fake microphone skips now and
	// then, and matchLooped needs one 3 s period of its file without a skip.
	time.Sleep(11 * time.Second)
	got := b.captured()
	b.click("Hang up")
	b.shows("Call with echo ended", 10*time.Second)
	keepWAV(t, "browser-echo-captured.wav", got)
	corr, lag := matchLooped(ref, got)
	t.Logf("browser → echo → browser: envelope correlation %.3f at lag %v (%.1f s captured)", corr, lag, float64(len(got))/48000)
	if corr < 0.85 {
		t.Errorf("what echo sends back correlates %.3f with the page's microphone, want ≥ 0.85", corr)
	}
}
