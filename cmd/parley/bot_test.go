package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/codec"
	"github.com/parley/parley/internal/audiotest"
)

// botProc is `parley listen --json --commands` with its stdin.
type botProc struct {
	*proc
	in *os.File
	n  int // commands sent
}

// startBot starts the bot mode as the user of env.
func startBot(t *testing.T, env []string) *botProc {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := startWith(t, "", r, env, "listen", "--json", "--commands")
	r.Close() // the child has it
	t.Cleanup(func() { w.Close() })
	return &botProc{proc: p, in: w}
}

// do sends cmd (with an id added), checks it against the command schema,
// and returns its result, failing the test on an error event.
func (b *botProc) do(t *testing.T, cmd map[string]any) map[string]any {
	t.Helper()
	ev := b.send(t, cmd)
	if ev["event"] != "result" || ev["cmd"] != cmd["cmd"] {
		t.Fatalf("%v: got %v, want its result", cmd, ev)
	}
	return ev
}

// send sends cmd with an id and returns the result or error event with that id.
func (b *botProc) send(t *testing.T, cmd map[string]any) map[string]any {
	t.Helper()
	b.n++
	id := fmt.Sprintf("c%d", b.n)
	cmd["id"] = id
	line, err := json.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	checkSchema(t, "command", []string{string(line)}, commandSchema)
	if _, err := b.in.Write(append(line, '\n')); err != nil {
		t.Fatal(err)
	}
	return b.waitFor(t, fmt.Sprintf("the reply to %s", line), 20*time.Second, func(ev map[string]any) bool {
		return ev["id"] == id && (ev["event"] == "result" || ev["event"] == "error")
	})
}

// waitFor returns the first event p printed that ok accepts, waiting for it
// up to within.
func (p *proc) waitFor(t *testing.T, what string, within time.Duration, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, _ := p.output()
		for _, ev := range jsonLines(t, out) {
			if ok(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v", what, within)
		}
		select {
		case <-p.done:
			t.Fatalf("parley exited waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestBotDrivesCommands drives `parley listen --json --commands` as a
// script would: it accepts a contact request, answers a call playing a
// file (what the caller records is what was played), holds and resumes
// it, hangs up, replies to a message and sets its status; a bad command
// gets an error event and the bot goes on; at the end of stdin it keeps
// running until interrupted. Every line either side prints is checked
// against docs/schema (startWith's cleanup), every command sent too.
func TestBotDrivesCommands(t *testing.T) {
	loginURL := upNetwork(t)
	alice, bob := userEnv(t, loginURL, "alice-password"), userEnv(t, loginURL, "bob-password")
	alice2 := userEnv(t, loginURL, "alice-password") // a second device of alice's
	for _, r := range []struct {
		env  []string
		args []string
	}{{alice, []string{"register", "alice"}}, {bob, []string{"register", "bob"}}, {alice2, []string{"login", "alice"}}} {
		if out, errOut, code := runParley(t, r.env, r.args...); code != 0 {
			t.Fatalf("parley %v: exit %d: %s%s", r.args, code, out, errOut)
		}
	}
	bot := startBot(t, bob)
	waitOnline(t, bot.proc)

	// A contact request: the bot sees it pending and accepts it.
	if out, errOut, code := runParley(t, alice, "contacts", "add", "bob"); code != 0 {
		t.Fatalf("contacts add: exit %d: %s%s", code, out, errOut)
	}
	bot.waitFor(t, "pending contact event", 10*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "contact" && ev["peer"] == "alice" && ev["status"] == "pending"
	})
	if res := bot.do(t, map[string]any{"cmd": "contacts", "op": "accept", "peer": "alice"}); res["state"] != "accepted" {
		t.Errorf("contacts accept: %v, want state accepted", res)
	}

	// A bad command: an error event naming it, and the bot goes on.
	if ev := bot.send(t, map[string]any{"cmd": "hangup", "call_id": "0123456789abcdef"}); ev["event"] != "error" ||
		ev["error"] != "hangup: no call 0123456789abcdef" {
		t.Errorf("hangup of an unknown call: %v, want an error event", ev)
	}

	// Alice calls; the bot answers, playing a file; alice records.
	ref := append(audiotest.Speech(7, 2*time.Second), audiotest.Silence(500*time.Millisecond)...)
	rec := filepath.Join(t.TempDir(), "alice.wav")
	caller := start(t, alice, "call", "bob", "--record", rec, "--json")
	ringing := bot.waitFor(t, "incoming ringing call event", 15*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "call" && ev["state"] == "ringing" && ev["direction"] == "incoming"
	})
	callID := ringing["call_id"]
	if res := bot.do(t, map[string]any{"cmd": "answer", "call_id": callID, "play": writeWAV(t, ref)}); res["call_id"] != callID || res["peer"] != "alice" {
		t.Errorf("answer: %v, want call %v with alice", res, callID)
	}
	// Until the file has played: its frames and as many again to drain.
	frames := float64(len(ref)/codec.FrameSamples + 25)
	bot.waitFor(t, "stats past the end of the file", 20*time.Second, func(ev map[string]any) bool {
		n, _ := ev["packets_sent"].(float64)
		return ev["event"] == "stats" && ev["call_id"] == callID && n >= frames
	})
	for _, c := range []struct{ cmd, state string }{{"hold", "held"}, {"resume", "resumed"}} {
		bot.do(t, map[string]any{"cmd": c.cmd, "call_id": callID})
		bot.waitFor(t, c.state+" call event", 5*time.Second, func(ev map[string]any) bool {
			return ev["event"] == "call" && ev["call_id"] == callID && ev["state"] == c.state && ev["reason"] == "by local"
		})
	}
	if res := bot.do(t, map[string]any{"cmd": "mute", "call_id": callID, "on": false}); res["muted"] != false {
		t.Errorf("mute on false: %v, want muted false", res)
	}
	bot.do(t, map[string]any{"cmd": "hangup", "call_id": callID})
	bot.waitFor(t, "ended call event", 10*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "call" && ev["call_id"] == callID && ev["state"] == "ended" && ev["reason"] == "hangup"
	})
	if code := caller.wait(t, 15*time.Second); code != 0 {
		t.Fatalf("alice's call exited %d", code)
	}
	got := readWAV(t, rec)
	corr, lag := audiotest.MatchEnvelope(ref, got, time.Second)
	t.Logf("the bot's file, as alice recorded it: envelope correlation %.3f at lag %v", corr, lag)
	if corr < 0.9 {
		t.Errorf("alice's recording correlates %.3f with the bot's file, want ≥ 0.9", corr)
	}
	if ev := bot.send(t, map[string]any{"cmd": "hold", "call_id": callID}); ev["event"] != "error" {
		t.Errorf("hold after the call ended: %v, want an error event", ev)
	}

	// A message from alice's other device; the bot replies, alice's
	// listening device gets the reply; the bot's status reaches it.
	listener := start(t, alice, "listen", "--json")
	waitOnline(t, listener)
	if out, errOut, code := runParley(t, alice2, "chat", "bob", "are you a bot?"); code != 0 {
		t.Fatalf("chat: exit %d: %s%s", code, out, errOut)
	}
	bot.waitFor(t, "message from alice", 10*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "message" && ev["from"] == "alice" && ev["text"] == "are you a bot?"
	})
	res := bot.do(t, map[string]any{"cmd": "chat", "peer": "alice", "text": "I am."})
	if res["delivered"] != true {
		t.Errorf("chat: %v, want delivered (alice is online)", res)
	}
	reply := listener.waitFor(t, "the bot's reply", 10*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "message" && ev["from"] == "bob" && ev["text"] == "I am."
	})
	if reply["id"] != res["message_id"] {
		t.Errorf("alice got message %v, the bot's result says %v", reply["id"], res["message_id"])
	}
	bot.do(t, map[string]any{"cmd": "status", "status": "away"})
	listener.waitFor(t, "bob's presence away", 10*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "presence" && ev["peer"] == "bob" && ev["status"] == "away"
	})

	// The end of stdin: the bot keeps running until interrupted.
	bot.in.Close()
	select {
	case <-bot.done:
		t.Fatal("the bot exited at the end of stdin")
	case <-time.After(500 * time.Millisecond):
	}
	bot.cmd.Process.Signal(os.Interrupt)
	if code := bot.wait(t, 10*time.Second); code != 0 {
		_, errOut := bot.output()
		t.Errorf("the bot exited %d on interrupt: %s", code, errOut)
	}
	if out, _ := bot.output(); strings.Count(out, `"event":"error"`) != 2 {
		t.Errorf("the bot printed %d error events, want the 2 asked for:\n%s", strings.Count(out, `"event":"error"`), out)
	}
}

// TestBotFlags: bot mode answers calls by command only; the flags of
// listen's own answering are a usage error with it.
func TestBotFlags(t *testing.T) {
	for _, args := range [][]string{{"--answer"}, {"--calls", "1"}, {"--play", "x.wav"}, {"--record", "y.wav"}} {
		_, errOut, code := runParley(t, nil, append([]string{"listen", "--commands"}, args...)...)
		if code != 2 || !strings.Contains(errOut, "--commands answers calls by command") {
			t.Errorf("listen --commands %s: exit %d, stderr %q; want exit 2 and why", strings.Join(args, " "), code, errOut)
		}
	}
}

// TestBotConference: the bot starts a conference with two users of `parley
// listen --answer` (alice plays a voice, the bot records the mix), sees
// the roster of the three, mutes (alice's roster shows it) and leaves;
// then dave's conference invites it (`parley call bob carol`: carol, still
// with alice, is busy) and it joins by command and leaves. What the bot
// recorded holds alice's voice.
func TestBotConference(t *testing.T) {
	loginURL := upNetwork(t)
	alice, bob, carol, dave := cliUser(t, loginURL, "alice"), cliUser(t, loginURL, "bob"), cliUser(t, loginURL, "carol"), cliUser(t, loginURL, "dave")
	period := append(audiotest.Speech(31, time.Second), audiotest.Silence(500*time.Millisecond)...)
	var voice []int16
	for range 30 { // 45 s: longer than the test needs
		voice = append(voice, period...)
	}
	listeners := map[string]*proc{
		"alice": start(t, alice, "listen", "--answer", "--play", writeWAV(t, voice), "--json"),
		"carol": start(t, carol, "listen", "--answer", "--json"),
	}
	bot := startBot(t, bob)
	for _, p := range []*proc{listeners["alice"], listeners["carol"], bot.proc} {
		waitOnline(t, p)
	}
	roster := func(ev map[string]any) []string {
		var out []string
		list, _ := ev["roster"].([]any)
		for _, m := range list {
			m, _ := m.(map[string]any)
			s, _ := m["user"].(string)
			if m["muted"] == true {
				s += "(muted)"
			}
			out = append(out, s)
		}
		return out
	}
	rosterEvent := func(p *proc, who, conf string, want ...string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			out, _ := p.output()
			var confEvents []string
			for _, ev := range jsonLines(t, out) {
				if ev["event"] == "conference" || ev["event"] == "call" && ev["conf"] != nil {
					if ev["event"] == "conference" && ev["conf"] == conf && ev["conf_state"] == "roster" && slices.Equal(roster(ev), want) {
						return
					}
					confEvents = append(confEvents, fmt.Sprint(ev))
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("no roster %v at %s's within 20 s; its conference events:\n%s", want, who, strings.Join(confEvents, "\n"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	rec := filepath.Join(t.TempDir(), "mix.wav")
	res := bot.do(t, map[string]any{"cmd": "conference", "op": "start", "users": []string{"alice", "carol"}, "record": rec})
	conf, _ := res["conf"].(string)
	if len(conf) != 32 || fmt.Sprint(res["users"]) != "[alice carol]" {
		t.Fatalf("start: %v, want a conference id and users alice, carol", res)
	}
	rosterEvent(bot.proc, "the bot", conf, "bob", "alice", "carol")
	if got := roster(bot.do(t, map[string]any{"cmd": "conference", "op": "roster", "conf": conf})); !slices.Equal(got, []string{"bob", "alice", "carol"}) {
		t.Errorf("roster: %v, want bob, alice, carol", got)
	}
	// 4 s of alice's voice: more than two periods of it.
	bot.waitFor(t, "4 s from alice", 20*time.Second, func(ev map[string]any) bool {
		n, _ := ev["packets_received"].(float64)
		return ev["event"] == "stats" && ev["conf"] == conf && ev["peer"] == "alice" && n >= 200
	})
	if res := bot.do(t, map[string]any{"cmd": "conference", "op": "mute", "conf": conf}); res["muted"] != true {
		t.Errorf("mute: %v, want muted true", res)
	}
	rosterEvent(listeners["alice"], "alice", conf, "alice", "bob(muted)", "carol")
	if res := bot.do(t, map[string]any{"cmd": "conference", "op": "leave", "conf": conf}); res["reason"] != "left the conference" {
		t.Errorf("leave: %v, want reason left the conference", res)
	}
	rosterEvent(listeners["carol"], "carol", conf, "carol", "alice")
	if ev := bot.send(t, map[string]any{"cmd": "conference", "op": "roster", "conf": conf}); ev["error"] != "conference: no conference "+conf {
		t.Errorf("roster after leaving: %v, want an error", ev)
	}

	// dave's conference: the invitation rings at the bot until it joins.
	caller := start(t, dave, "call", "bob", "carol", "--for", "30s", "--json")
	inv := bot.waitFor(t, "dave's invitation", 20*time.Second, func(ev map[string]any) bool {
		return ev["event"] == "conference" && ev["conf_state"] == "invited" && ev["conf_from"] == "dave"
	})
	dconf, _ := inv["conf"].(string)
	res = bot.do(t, map[string]any{"cmd": "conference", "op": "join", "conf": dconf})
	if res["peer"] != "dave" || !slices.Equal(roster(res), []string{"bob", "dave"}) {
		t.Errorf("join: %v, want dave's conference with dave in it", res)
	}
	rosterEvent(caller, "dave", dconf, "dave", "bob")
	bot.do(t, map[string]any{"cmd": "conference", "op": "leave", "conf": dconf})
	if code := caller.wait(t, 20*time.Second); code != 0 {
		_, errOut := caller.output()
		t.Errorf("dave's call exited %d once the bot left: %s", code, errOut)
	}

	// The bot's recording is finished when it exits.
	bot.in.Close()
	bot.cmd.Process.Signal(os.Interrupt)
	if code := bot.wait(t, 10*time.Second); code != 0 {
		t.Errorf("the bot exited %d on interrupt", code)
	}
	got := readWAV(t, rec)
	corr, lag := matchLooped(period, got)
	t.Logf("alice's voice in the bot's recording (%.1f s): envelope correlation %.3f at %v", float64(len(got))/48000, corr, lag)
	if corr < 0.8 {
		t.Errorf("the bot's recording correlates %.3f with alice's voice, want ≥ 0.8", corr)
	}
}
