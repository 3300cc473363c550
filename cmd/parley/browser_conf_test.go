package main

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/audiotest"
)

// The page's conference calls (docs/conference.md, web/static/js/conf.js):
// a full mesh of ordinary call legs, each page mixing what it hears.

// confLoop is a short looping voice for a fake microphone or --play: 1 s of
// speech, 0.5 s of silence, so that a 4 s recording holds two whole periods.
func confLoop(seed uint64) []int16 {
	return append(audiotest.Speech(seed, time.Second), audiotest.Silence(500*time.Millisecond)...)
}

// confHears checks that rec holds the looping voice ref, by the waveform
// of its spoken half-seconds, each searched near where the envelope match
// put it (chunkWave): at least 0.45, and 0.15 above that of voices not
// played or muted (controls). Seen: a voice heard alone 0.73 to 0.96; voices
// not there 0.06 to 0.57 (the most beside a loud, clean voice from the CLI). The envelope alone does not tell them apart well
// enough: speech-like envelopes are alike (0.45 to 0.8 for voices not
// there; 0.99 for the one heard, 0.75 to 0.9 when a jitter buffer stretches
// a period on these busy cores).
func confHears(t *testing.T, what string, ref, rec []int16, controls ...[]int16) {
	t.Helper()
	env, lag := matchLooped(ref, rec)
	wave := chunkWave(ref, rec, lag)
	ctl := 0.0
	for _, c := range append(controls, confLoop(491), confLoop(492)) {
		_, l := matchLooped(c, rec)
		ctl = max(ctl, chunkWave(c, rec, l))
	}
	t.Logf("%s: waveform correlation %.3f (voices not played or muted: at most %.3f), envelope %.3f at %v (%.1f s)", what, wave, ctl, env, lag, float64(len(rec))/48000)
	if wave < 0.45 || wave-ctl < 0.15 {
		t.Errorf("%s: waveform correlation %.3f, and up to %.3f for voices not played or muted: want ≥ 0.45 and 0.15 above", what, wave, ctl)
	}
}

// pageConfMember is one entry of window.parleyTest.confRoster().roster.
type pageConfMember struct {
	User     string `json:"user"`
	Device   string `json:"device"`
	Self     bool   `json:"self"`
	Speaking bool   `json:"speaking"`
	Muted    bool   `json:"muted"`
	Path     string `json:"path"`
}

// pageConfState is window.parleyTest.confRoster().
type pageConfState struct {
	ID         string           `json:"id"`
	Group      string           `json:"group"`
	Muted      bool             `json:"muted"`
	Roster     []pageConfMember `json:"roster"`
	Connecting []string         `json:"connecting"`
}

func (b *browser) pageConfState() pageConfState {
	b.t.Helper()
	var st pageConfState
	s := eval[string](b, `JSON.stringify(window.parleyTest.confRoster())`, 5*time.Second)
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		b.t.Fatalf("the page's roster %s: %v", s, err)
	}
	return st
}

// confCaptured stops the page's recording of its mixed conference output.
func (b *browser) confCaptured() []int16 {
	b.t.Helper()
	raw, err := base64.StdEncoding.DecodeString(eval[string](b, `window.parleyTest.confCaptured()`, 30*time.Second))
	if err != nil {
		b.t.Fatal(err)
	}
	pcm := make([]int16, len(raw)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return pcm
}

// rosterUsers is a JS condition: the page's roster lists exactly users
// (sorted, comma-joined), every leg connected.
func rosterUsers(users string) string {
	return `(() => { const s = window.parleyTest.confRoster(); return s && s.connecting.length === 0 && ` +
		`s.roster.map((m) => m.user).sort().join(",") === ` + fmt.Sprintf("%q", users) + `; })()`
}

// TestBrowserConf: ann calls her group from the page; ben and cid, in
// pages of their own, join from the invitation, and the three hold a full
// mesh. Each speaks alone in a slot of their own (the others muted): the
// two others' recordings of the mixed conference carry the speaker's
// voice, the speaker's own carries nothing (no one sends anyone's voice but
// their own). Every roster lists the three, with direct paths, who is
// muted and who is speaking; dan, not invited, cannot dial in; when ben
// leaves, ann and cid go on.
func TestBrowserConf(t *testing.T) {
	chromiumPath(t)
	axeJS := axeSource(t)
	began := time.Now()
	loginURL := upNetwork(t)
	names := []string{"ann", "ben", "cid"}
	refs := map[string][]int16{}
	pages := map[string]*browser{}
	for i, n := range names {
		ref := confLoop(uint64(401 + i))
		refs[n] = ref
		pages[n] = newBrowser(t, writeWAV(t, ref))
		pages[n].watchCSP()
		pages[n].signUp(loginURL, n, n+"-password")
	}
	ann, ben, cid := pages["ann"], pages["ben"], pages["cid"]
	ann.askContact("ben")
	ann.askContact("cid")
	ben.click("Accept ann")
	cid.click("Accept ann")
	ben.shows("ann is now a contact", 10*time.Second)
	cid.shows("ann is now a contact", 10*time.Second)
	ann.waitFor("ben and cid as ann's contacts", `window.parley.app.contacts.filter((c) => c.state === "accepted").length === 2`, 10*time.Second)
	eval[string](ann, `window.parley.app.im.groups.create("Club", ["ben", "cid"]).then((g) => g.id)`, 15*time.Second)
	ann.click("Group Club")
	ben.waitFor("the group at ben's", `[...window.parley.groups().values()].some((g) => g.name === "Club")`, 15*time.Second)
	cid.waitFor("the group at cid's", `[...window.parley.groups().values()].some((g) => g.name === "Club")`, 15*time.Second)
	t.Logf("three pages, contacts and a group after %v", time.Since(began).Round(100*time.Millisecond))

	ann.click("Call group")
	for _, p := range []*browser{ben, cid} {
		p.shows("Conference with ann (group Club)", 20*time.Second)
		if p == cid {
			p.axe(axeJS, "an invitation to a conference")
		}
		p.click("Join")
	}
	joined := time.Now()
	for _, n := range names {
		pages[n].waitFor(n+"'s roster of the three", rosterUsers("ann,ben,cid"), 20*time.Second)
	}
	t.Logf("a mesh of three connected %v after the invitations were taken", time.Since(joined).Round(10*time.Millisecond))
	id := ann.pageConfState().ID
	ann.axe(axeJS, "a conference")
	file := filepath.Join(artifactDir(t), "web-conference.png")
	if err := os.WriteFile(file, ann.screenshot(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the page in a conference: %s", file)
	for _, n := range names {
		st := pages[n].pageConfState()
		if st.ID != id {
			t.Errorf("%s is in conference %q, ann in %q", n, st.ID, id)
		}
		for _, m := range st.Roster {
			if !m.Self && m.Path != "direct" {
				t.Errorf("%s's leg to %s: path %q, want direct", n, m.User, m.Path)
			}
		}
	}

	// Slots: one speaks, the others are muted.
	for _, speaker := range names {
		for _, n := range names {
			mute := n != speaker
			if n == "ben" {
				// ben mutes with the panel's button, the others with the hook.
				want := fmt.Sprint(mute)
				if eval[string](ben, `document.getElementById("conf-mute").getAttribute("aria-pressed")`, 5*time.Second) != want {
					ben.click("Mute in the conference")
				}
				continue
			}
			eval[bool](pages[n], fmt.Sprintf(`window.parleyTest.confMute(%v)`, mute), 5*time.Second)
		}
		for _, n := range names {
			for _, o := range names {
				if o != n {
					pages[n].waitFor(fmt.Sprintf("%s to see %s (un)muted", n, o),
						fmt.Sprintf(`window.parleyTest.confRoster().roster.find((m) => m.user === %q).muted === %v`, o, o != speaker), 10*time.Second)
				}
			}
		}
		time.Sleep(500 * time.Millisecond) // what was in flight plays out
		for _, n := range names {
			eval[bool](pages[n], `window.parleyTest.confCaptureStart()`, 5*time.Second)
		}
		for _, n := range names {
			if n != speaker {
				pages[n].waitFor(n+" to show "+speaker+" speaking",
					fmt.Sprintf(`window.parleyTest.confRoster().roster.find((m) => m.user === %q).speaking`, speaker), 3*time.Second)
			}
		}
		time.Sleep(4 * time.Second)
		for _, n := range names {
			rec := pages[n].confCaptured()
			keepWAV(t, fmt.Sprintf("conf-%s-hears-%s.wav", n, speaker), rec)
			secs := float64(len(rec)) / 48000
			if n == speaker {
				level := audiotest.RMSdB(rec)
				t.Logf("%s speaking: %s's own recording %.1f dBFS (%.1f s)", speaker, n, level, secs)
				if level > -50 {
					t.Errorf("%s, alone unmuted, hears %.1f dBFS in the conference, want silence (below -50): no one sends anyone's voice but their own", n, level)
				}
				continue
			}
			var muted [][]int16
			for _, o := range names {
				if o != speaker {
					muted = append(muted, refs[o])
				}
			}
			confHears(t, fmt.Sprintf("%s speaking: %s hears it", speaker, n), refs[speaker], rec, muted...)
		}
	}

	// dan is not invited: ann refuses his leg, and the roster stays.
	_, wavD := micWAV(t, 409)
	dan := newBrowser(t, wavD)
	dan.signUp(loginURL, "dan", "dan-password")
	var annDev string
	for _, m := range ann.pageConfState().Roster {
		if m.Self {
			annDev = m.Device
		}
	}
	got := eval[[]string](dan, fmt.Sprintf(`window.parleyTest.confJoin(%q, [%q])`, id, "ann/"+annDev), 30*time.Second)
	if len(got) != 0 {
		t.Errorf("dan, uninvited, joined with legs to %v", got)
	}
	dan.shows("ann refused the call (not invited to this conference)", 10*time.Second)
	if st := ann.pageConfState(); len(st.Roster) != 3 {
		t.Errorf("ann's roster after dan tried: %+v, want the three", st.Roster)
	}

	// ben leaves; ann and cid go on.
	ben.click("Leave the conference")
	ben.shows("You left the conference.", 10*time.Second)
	ann.waitFor("ann's roster without ben", rosterUsers("ann,cid"), 10*time.Second)
	cid.waitFor("cid's roster without ben", rosterUsers("ann,cid"), 10*time.Second)
	ann.shows("ben left the conference.", 10*time.Second)
	if s := ben.pageConfState(); s.ID != "" {
		t.Errorf("ben is still in conference %q after leaving", s.ID)
	}
	ann.click("Leave the conference")
	cid.shows("Everyone else left the conference.", 10*time.Second)

	// A 1:1 call becomes a conference: ann calls ben, then adds cid.
	ann.click("Chat with ben")
	ann.click("Call ben")
	ben.shows("ann is calling you", 20*time.Second)
	ben.click("Answer")
	ann.waitConnected(20 * time.Second)
	ben.waitConnected(20 * time.Second)
	ann.click("Add someone to the call")
	ann.typeInto("Add to the call", "cid")
	ann.click("Add to the call and make it a conference")
	cid.shows("Conference with ann, ben", 20*time.Second)
	cid.click("Join")
	for _, n := range names {
		pages[n].waitFor(n+"'s roster of the three, from the 1:1 call", rosterUsers("ann,ben,cid"), 20*time.Second)
	}
	for _, p := range []*browser{ann, ben} {
		p.waitFor("the call bar to give way to the conference's", `document.getElementById("incall").hidden && !document.getElementById("conference").hidden`, 5*time.Second)
	}
	// ben hears ann on the leg that was the 1:1 call (cid muted).
	eval[bool](cid, `window.parleyTest.confMute(true)`, 5*time.Second)
	ben.waitFor("cid muted at ben's", `window.parleyTest.confRoster().roster.find((m) => m.user === "cid").muted`, 10*time.Second)
	time.Sleep(500 * time.Millisecond)
	eval[bool](ben, `window.parleyTest.confCaptureStart()`, 5*time.Second)
	time.Sleep(4 * time.Second)
	rec := ben.confCaptured()
	confHears(t, "after the upgrade ben hears ann", refs["ann"], rec, refs["cid"])
	for _, n := range names {
		eval[bool](pages[n], `window.parleyTest.confLeave()`, 5*time.Second)
	}

	// Glare: ben and cid, both in a conference, dial each other at once;
	// one leg stays, offered by the smaller "user/device".
	self := func(b *browser) string {
		return eval[string](b, `window.parley.app.user + "/" + window.parley.app.device`, 5*time.Second)
	}
	benKey, cidKey := self(ben), self(cid)
	glares := func(b *browser) int { return eval[int](b, `window.parleyTest.confRoster().glares`, 5*time.Second) }
	before := glares(ben) + glares(cid)
	gid := "0123456789abcdef0123456789abcdef"
	pair := []struct {
		b     *browser
		other string
	}{{ben, cidKey}, {cid, benKey}}
	for _, j := range pair {
		eval[bool](j.b, fmt.Sprintf(`window.parleyTest.confOpen(%q, [%q])`, gid, j.other), 5*time.Second)
	}
	for _, j := range pair {
		eval[bool](j.b, fmt.Sprintf(`(window.parleyTest.confDial(%q), true)`, j.other), 5*time.Second)
	}
	ben.waitFor("ben's roster with cid", rosterUsers("ben,cid"), 20*time.Second)
	cid.waitFor("cid's roster with ben", rosterUsers("ben,cid"), 20*time.Second)
	time.Sleep(time.Second) // a second leg, had glare let one through, would show by now
	for _, p := range []*browser{ben, cid} {
		if n := eval[int](p, `window.parley.conf.current.live().length`, 5*time.Second); n != 1 {
			t.Errorf("after both dialled, a page holds %d legs, want 1", n)
		}
	}
	t.Logf("ben and cid dialled each other: %d offers given up to glare", glares(ben)+glares(cid)-before)
	for _, n := range names {
		pages[n].noCSPViolation(n + "'s page")
	}
	t.Logf("the whole test took %v", time.Since(began).Round(100*time.Millisecond))
}

// TestBrowserConfCLI: two pages and a CLI device in one conference. ann
// calls her group from the page; ben (a page) joins with Join, carl (`parley
// listen --answer`) at once; the CLI dials the page it learns of from ann's
// roster. carl plays a voice all along and records his mix; ann and ben take
// turns (the other muted), then both are muted. Each page, in a slot where
// carl is the only one not muted, hears carl; carl's recording holds ann
// alone, ben alone, and, with both muted, silence — never his own voice.
func TestBrowserConfCLI(t *testing.T) {
	chromiumPath(t)
	began := time.Now()
	loginURL := upNetwork(t)
	refs := map[string][]int16{"ann": confLoop(421), "ben": confLoop(422), "carl": confLoop(423)}
	pages := map[string]*browser{}
	for _, n := range []string{"ann", "ben"} {
		pages[n] = newBrowser(t, writeWAV(t, refs[n]))
		pages[n].signUp(loginURL, n, n+"-password")
	}
	ann, ben := pages["ann"], pages["ben"]
	carl := cliUser(t, loginURL, "carl")
	var play []int16
	for range 30 { // 45 s: longer than the test needs (the end of --play ends carl's part)
		play = append(play, refs["carl"]...)
	}
	rec := filepath.Join(t.TempDir(), "carl.wav")
	listener := start(t, carl, "listen", "--answer", "--play", writeWAV(t, play), "--record", rec, "--calls", "1", "--json")
	waitOnline(t, listener)
	ann.askContact("ben")
	ben.click("Accept ann")
	mustRun(t, carl, "contact request sent to ann", "contacts", "add", "ann")
	ann.click("Accept carl")
	ann.waitFor("ben and carl as ann's contacts", `window.parley.app.contacts.filter((c) => c.state === "accepted").length === 2`, 10*time.Second)
	eval[string](ann, `window.parley.app.im.groups.create("Club", ["ben", "carl"]).then((g) => g.id)`, 15*time.Second)
	ann.click("Group Club")
	ben.waitFor("the group at ben's", `[...window.parley.groups().values()].some((g) => g.name === "Club")`, 15*time.Second)
	t.Logf("two pages, a CLI, contacts and a group after %v", time.Since(began).Round(100*time.Millisecond))

	ann.click("Call group")
	ben.shows("Conference with ann (group Club)", 20*time.Second)
	ben.click("Join")
	for _, n := range []string{"ann", "ben"} {
		pages[n].waitFor(n+"'s roster of the three", rosterUsers("ann,ben,carl"), 20*time.Second)
		for _, m := range pages[n].pageConfState().Roster {
			if !m.Self && m.Path != "direct" {
				t.Errorf("%s's leg to %s: path %q, want direct", n, m.User, m.Path)
			}
		}
	}
	waitOutput(t, listener, `"conf_state":"joined"`, 5*time.Second)

	// Slots: ann alone (ben muted), ben alone (ann muted), both muted.
	for _, slot := range []struct{ annMuted, benMuted bool }{{false, true}, {true, false}, {true, true}} {
		muted := map[string]bool{"ann": slot.annMuted, "ben": slot.benMuted}
		for n, m := range muted {
			eval[bool](pages[n], fmt.Sprintf(`window.parleyTest.confMute(%v)`, m), 5*time.Second)
		}
		for n := range muted {
			for o, m := range muted {
				if o != n {
					pages[n].waitFor(fmt.Sprintf("%s to see %s's mute", n, o),
						fmt.Sprintf(`window.parleyTest.confRoster().roster.find((m) => m.user === %q).muted === %v`, o, m), 10*time.Second)
				}
			}
		}
		time.Sleep(500 * time.Millisecond)
		for n := range muted {
			eval[bool](pages[n], `window.parleyTest.confCaptureStart()`, 5*time.Second)
		}
		time.Sleep(4 * time.Second)
		for n := range muted {
			got := pages[n].confCaptured()
			keepWAV(t, fmt.Sprintf("conf-cli-%s-ann%v-ben%v.wav", n, slot.annMuted, slot.benMuted), got)
			other := map[string]string{"ann": "ben", "ben": "ann"}[n]
			if !muted[other] {
				continue // carl and the other page together
			}
			confHears(t, fmt.Sprintf("ann muted %v, ben muted %v: %s hears carl", slot.annMuted, slot.benMuted, n), refs["carl"], got, refs[other])
		}
	}
	out, _ := listener.output()
	if !strings.Contains(out, `"conf_state":"roster"`) || !strings.Contains(out, `"user":"ann"`) || !strings.Contains(out, `"user":"ben"`) {
		t.Errorf("carl's events show no roster with ann and ben:\n%s", out)
	}

	// The pages leave; carl, alone, is out, and his recording is written.
	ben.click("Leave the conference")
	ann.waitFor("ann's roster without ben", rosterUsers("ann,carl"), 10*time.Second)
	ann.click("Leave the conference")
	if c := listener.wait(t, 20*time.Second); c != 0 {
		t.Fatalf("listen exited %d", c)
	}
	got := readWAV(t, rec)
	keepWAV(t, "conf-carl-recorded.wav", got)
	for _, n := range []string{"ann", "ben"} {
		confHears(t, "carl hears "+n, refs[n], got, refs["carl"])
	}
	// carl played all along: a stretch of silence in what he heard (both
	// pages muted) shows his own voice never came back to him.
	quiet := -200.0
	for i := 0; i+3*48000 <= len(got); i += 4800 {
		quiet = max(quiet, -audiotest.RMSdB(got[i:i+3*48000]))
	}
	t.Logf("the quietest 3 s of carl's recording: %.1f dBFS", -quiet)
	if -quiet > -50 {
		t.Errorf("carl's recording has no 3 s below -50 dBFS (the quietest %.1f dBFS): he hears something while everyone else is muted", -quiet)
	}

	// Now carl calls the group from the command line; the pages join (a new
	// conference starts unmuted), mute, and ben hears carl.
	caller := start(t, carl, "call", "--group", "Club", "--play", writeWAV(t, play), "--for", "20s", "--json")
	for _, p := range []*browser{ann, ben} {
		p.shows("Conference with carl (group Club)", 20*time.Second)
		p.click("Join")
	}
	for _, n := range []string{"ann", "ben"} {
		pages[n].waitFor(n+"'s roster of carl's conference", rosterUsers("ann,ben,carl"), 20*time.Second)
	}
	for _, n := range []string{"ann", "ben"} {
		eval[bool](pages[n], `window.parleyTest.confMute(true)`, 5*time.Second)
	}
	for _, n := range []string{"ann", "ben"} {
		other := map[string]string{"ann": "ben", "ben": "ann"}[n]
		pages[n].waitFor(n+" to see "+other+" muted", fmt.Sprintf(`window.parleyTest.confRoster().roster.find((m) => m.user === %q).muted`, other), 10*time.Second)
	}
	time.Sleep(500 * time.Millisecond)
	eval[bool](ben, `window.parleyTest.confCaptureStart()`, 5*time.Second)
	time.Sleep(4 * time.Second)
	got = ben.confCaptured()
	confHears(t, "in carl's conference ben hears carl", refs["carl"], got, refs["ann"], refs["ben"])
	ann.click("Leave the conference")
	ben.click("Leave the conference")
	if c := caller.wait(t, 20*time.Second); c != 0 {
		out, errOut := caller.output()
		t.Fatalf("call --group exited %d\n%s\n%s", c, out, errOut)
	}
	t.Logf("the whole test took %v", time.Since(began).Round(100*time.Millisecond))
}
