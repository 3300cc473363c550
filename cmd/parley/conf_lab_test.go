package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/audiotest"
	"github.com/parley/parley/internal/netlab"
)

// Conference calls in the network lab (docs/conference.md): eight devices
// in one call, one behind a symmetric NAT, each speaking in its own time
// slot; everyone hears everyone else in their slot (the envelope of the
// slot, its voice and the silence around it, correlates ≥ 0.8) and never
// themselves; the one who started the call is SIGKILLed and the others go on
// hearing each other; a ninth is refused.

// confTimeline is when each participant speaks, from the moment its audio
// starts (when it starts or joins the conference).
type confTimeline struct {
	lead, slot, speech time.Duration
	n                  int
}

// at is when participant i speaks in round r (0 or 1; round 1 is after
// participant 0's death and has no slot for it).
func (c confTimeline) at(i, r int) time.Duration {
	if r == 0 {
		return c.lead + time.Duration(i)*c.slot
	}
	// Participant 1's round-1 voice spans the moment participant 0 dies.
	return c.killAt() - c.speech/3 + time.Duration(i-1)*c.slot
}

// killAt is when participant 0 dies, after round 0 (while participant 1
// speaks).
func (c confTimeline) killAt() time.Duration { return c.lead + time.Duration(c.n)*c.slot + c.slot/2 }

func (c confTimeline) total() time.Duration { return c.at(c.n-1, 1) + c.slot }

// voice is participant i's speech in round r.
func (c confTimeline) voice(i, r int) []int16 { return audiotest.Speech(uint64(100+10*r+i), c.speech) }

// wav is participant i's whole file: silence, and its voice in its slots.
func (c confTimeline) wav(i int) []int16 {
	pcm := audiotest.Silence(c.total())
	for r := range 2 {
		if r == 1 && i == 0 {
			break
		}
		copy(pcm[int(c.at(i, r)*48000/time.Second):], c.voice(i, r))
	}
	return pcm
}

func TestConferenceInTheLab(t *testing.T) {
	n := startNATLab(t)
	tl := confTimeline{lead: 5 * time.Second, slot: 3 * time.Second, speech: 1500 * time.Millisecond, n: 8}
	type part struct {
		name string
		host *netlab.Host
		env  []string
		rec  string
		p    *proc    // a CLI's
		b    *browser // a page's
		pcm  []int16  // a page's recording
	}
	// Participant 0 starts the call from a public address; the others sit
	// behind every kind of router; 6 and 7 are pages in Chromium.
	kinds := []string{"public", "cone", "symmetric", "public", "cone", "public", "cone", "public", "public"}
	isPage := func(i int) bool { return i == 6 || i == 7 }
	parts := make([]*part, len(kinds))
	for i, k := range kinds {
		p := &part{name: fmt.Sprintf("conf%d", i)}
		var err error
		switch k {
		case "public":
			p.host, err = n.lab.AddPublicHost(fmt.Sprintf("c%d", i))
		case "cone":
			p.host, _, err = n.lab.AddNATHost(fmt.Sprintf("c%d", i), netlab.EndpointIndependent)
		case "symmetric":
			p.host, _, err = n.lab.AddNATHost(fmt.Sprintf("c%d", i), netlab.Symmetric)
		}
		must(t, err)
		parts[i] = p
		if isPage(i) {
			p.b = newBrowserOn(t, p.host, writeWAV(t, tl.wav(i)), n.loginURL)
			p.b.signUp(n.loginURL, p.name, p.name+"-password")
			eval[bool](p.b, `window.parleyTest.confAutoCapture(true)`, 5*time.Second)
			continue
		}
		p.env = n.user(t, p.host, p.name)
		p.rec = filepath.Join(t.TempDir(), p.name+".wav")
	}
	// The eight listeners join at once; the ninth lets the invitation ring
	// 6 s, by when the call is full.
	var users []string
	for i, p := range parts[1:] {
		users = append(users, p.name)
		if p.b != nil {
			continue
		}
		args := []string{"listen", "--answer", "--play", writeWAV(t, tl.wav(i+1)), "--record", p.rec, "--json", "--for", (tl.total() + 15*time.Second).String()}
		if i+1 == len(parts)-1 {
			args = []string{"listen", "--answer", "--answer-after", "6s", "--json", "--for", "20s"}
		}
		p.p = startIn(t, p.host.NS, p.env, args...)
	}
	for _, p := range parts[1:] {
		if p.p != nil {
			waitOnline(t, p.p)
		}
	}
	starter := parts[0]
	started := time.Now()
	starter.p = startIn(t, starter.host.NS, starter.env, append([]string{"call", "--play", writeWAV(t, tl.wav(0)), "--record", starter.rec, "--json"}, users...)...)

	// The pages take the invitation as a person would: Join. Their sound
	// (microphone and recording) starts then, the CLIs' when they start or
	// join the conference: about when the call starts.
	origin := make([]time.Time, len(parts))
	for i, p := range parts {
		origin[i] = started
		if p.b != nil {
			p.b.waitFor("the invitation", `window.parleyTest.confJoinInvite()`, 15*time.Second)
			p.b.waitFor("the recording", `window.parleyTest.confCaptureInfo().capturing`, 10*time.Second)
			origin[i] = time.UnixMilli(int64(eval[float64](p.b, `window.parleyTest.confCaptureInfo().startedAt`, 5*time.Second)))
			t.Logf("%s (a page) joined %v after the call started", p.name, origin[i].Sub(started).Round(time.Millisecond))
		}
	}

	// The ninth is refused: the call is full.
	ninth := parts[len(parts)-1]
	ninth.p.waitFor(t, "the ninth refused", 20*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "conference" && ev["conf_state"] == "left" && strings.Contains(fmt.Sprint(ev["conf_reason"]), "conference full (8 of 8)")
	})

	time.Sleep(time.Until(started.Add(tl.killAt())))
	starter.p.cmd.Process.Kill() // SIGKILL: no hangup reaches anyone
	t.Logf("%s killed %v after starting the call", starter.name, time.Since(started).Round(time.Millisecond))
	time.Sleep(time.Until(started.Add(tl.total() + time.Second)))
	for _, p := range parts[1 : len(parts)-1] {
		if p.b != nil {
			st := p.b.pageConfState()
			p.pcm = p.b.confCaptured()
			t.Logf("%s (a page): %d in its roster, %.1f s recorded", p.name, len(st.Roster), float64(len(p.pcm))/48000)
			eval[bool](p.b, `window.parleyTest.confLeave()`, 5*time.Second)
		}
	}
	for _, p := range parts[1 : len(parts)-1] {
		if p.p == nil {
			continue
		}
		if code := p.p.wait(t, 30*time.Second); code != 0 {
			t.Errorf("%s: exit %d", p.name, code)
		}
	}
	starter.p.wait(t, 5*time.Second)

	worst, lags := 1.0, []time.Duration{}
	acrossKill := map[int]int{} // where each survivor heard participant 1 speak through the death
	wavs := make([][]int16, len(parts))
	for i := range wavs {
		wavs[i] = tl.wav(i)
	}
	recording := func(p *part) []int16 {
		if p.b != nil {
			return p.pcm
		}
		return readWAV(t, p.rec)
	}
	for j, p := range parts[:len(parts)-1] {
		rec := recording(p)
		for i := range len(parts) - 1 {
			for r := range 2 {
				if r == 1 && (i == 0 || j == 0) {
					continue // the starter is dead by round 1
				}
				at := int(tl.at(i, r) * 48000 / time.Second)
				// Where it is in j's recording: each device's sound starts
				// when it starts (a CLI) or opens (a page) the conference.
				atRec := at + int(origin[i].Sub(origin[j])*48000/time.Second)
				if i == j {
					// Its own slot: silent in its own recording.
					from, to := min(len(rec), at+9600), min(len(rec), at+int(tl.speech*48000/time.Second)-9600)
					if db := audiotest.RMSdB(rec[from:to]); db > -50 {
						t.Errorf("%s hears itself: %.1f dBFS in its own slot", p.name, db)
					}
					continue
				}
				// A CLI's voice is within 1.5 s of its place; a page's
				// within 3.5 s: Chromium's fake microphone plays its file
				// on a timer that runs late when the cores are busy.
				radius := 1500 * time.Millisecond
				if parts[i].b != nil {
					radius = 3500 * time.Millisecond
				}
				from := max(0, atRec-int(radius*48000/time.Second))
				if from >= len(rec) {
					t.Errorf("%s's recording ends before %s's slot %d", p.name, parts[i].name, r)
					continue
				}
				// The slot: the voice with a quarter of a slot of silence
				// either side, as the speaker's file has it.
				pad := int(tl.slot / 4 * 48000 / time.Second)
				slotRef := wavs[i][at-pad : at+int(tl.speech*48000/time.Second)+pad]
				corr, lag := audiotest.MatchEnvelope(slotRef, rec[max(0, from-pad):], 2*radius)
				found := max(0, from-pad) + int(lag*48000/time.Second) + pad // where the voice starts in rec
				lag = time.Duration(found-atRec) * time.Second / 48000       // from the slot's place
				worst = min(worst, corr)
				lags = append(lags, lag)
				if i == 1 && r == 1 {
					acrossKill[j] = found
				}
				if corr < 0.8 {
					t.Errorf("%s hears %s in round %d: correlation %.2f (%v from its slot), want ≥ 0.8", p.name, parts[i].name, r, corr, lag)
				}
			}
		}
	}
	slices.Sort(lags)
	t.Logf("%d voices heard in their slots: worst correlation %.3f; offsets from the slot %v (min), %v (median), %v (max)", len(lags), worst, lags[0], lags[len(lags)/2], lags[len(lags)-1])
	// The death costs the survivors nothing: participant 1's voice, which
	// spans it, has no pause in any survivor's recording longer than its
	// own longest.
	own := longestPause(tl.voice(1, 1))
	var worstGap time.Duration
	for j, from := range acrossKill {
		rec := recording(parts[j])
		to := min(len(rec), from+int(tl.speech*48000/time.Second))
		if from < 0 || from >= to {
			continue
		}
		worstGap = max(worstGap, longestPause(rec[from:to])-own)
	}
	t.Logf("audio lost by the survivors when %s died: at most %v beyond the speech's own pauses (%v), over %d survivors", parts[0].name, worstGap, own, len(acrossKill))
	if worstGap > 3*time.Second-own {
		t.Errorf("survivors lost %v of audio when %s died, want under 3 s", worstGap, parts[0].name)
	}
	// Every leg reported a path; the symmetric NAT's took a relay where
	// nothing else would do.
	paths := map[string]int{}
	for _, p := range parts[1 : len(parts)-1] {
		if p.p == nil {
			continue // a page: its roster was logged above
		}
		out, _ := p.p.output()
		for _, m := range largestConfRoster(out) {
			if m.Self {
				continue
			}
			if m.Path == "" {
				t.Errorf("%s's leg with %s has no path", p.name, m.User)
			}
			paths[m.Path]++
		}
	}
	t.Logf("legs of the survivors, both ends counted, by path: %v", paths)
	if paths["udp-relay"] == 0 {
		t.Errorf("no relayed leg: the symmetric NAT's participant should need one")
	}
}

type confMember struct {
	User     string `json:"user"`
	Device   string `json:"device"`
	Path     string `json:"path"`
	Self     bool   `json:"self"`
	Speaking bool   `json:"speaking"`
}

// largestConfRoster is the largest roster of the roster events in out.
func largestConfRoster(out string) []confMember {
	var best []confMember
	for _, line := range strings.Split(out, "\n") {
		var ev struct {
			Event     string       `json:"event"`
			ConfState string       `json:"conf_state"`
			Roster    []confMember `json:"roster"`
		}
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Event == "conference" && ev.ConfState == "roster" && len(ev.Roster) > len(best) {
			best = ev.Roster
		}
	}
	return best
}

// longestPause is the longest run of 10 ms windows of pcm under −45 dBFS.
func longestPause(pcm []int16) time.Duration {
	var run, best int
	for _, e := range audiotest.Envelope(pcm, 10*time.Millisecond) {
		if e < 32768*0.0056 { // −45 dBFS
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return time.Duration(best) * 10 * time.Millisecond
}
