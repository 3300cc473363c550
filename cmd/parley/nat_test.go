package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/codec"
	"github.com/parley/parley/internal/audiotest"
	"github.com/parley/parley/internal/netlab"
)

// The tests in this file run real calls between network namespaces: a public
// server host with the login server and a supernode (with its STUN service and
// relay), and callers on public addresses or behind real Linux NATs and
// firewalls. See docs/nat.md for the topologies.

// natLab is a lab with the servers up.
type natLab struct {
	lab      *netlab.Lab
	srv      *netlab.Host
	loginURL string
	sn       *proc // the supernode (startNATLab)
}

func startNATLab(t testing.TB, supernodeArgs ...string) *natLab {
	t.Helper()
	return startNATLabOn(t, netlab.NewForTest(t), 0, supernodeArgs...)
}

// startNATLabOn starts the servers in lab on a host srvDelay away from the
// internet (each way).
func startNATLabOn(t testing.TB, lab *netlab.Lab, srvDelay time.Duration, supernodeArgs ...string) *natLab {
	t.Helper()
	srv, err := lab.AddDistantHost("srv", srvDelay)
	if err != nil {
		t.Fatal(err)
	}
	ip := srv.IP.String()
	n := &natLab{lab: lab, srv: srv, loginURL: "http://" + ip + ":8080"}
	// It serves the page too, for the lab's browsers (browser_lab_test.go).
	startIn(t, srv.NS, nil, "login-server", "--max-registrations-per-addr", "1000", "--listen", ip+":8080", "--data", t.TempDir(), "--supernode-allow", labAllow, "--web")
	// The lab's internet is the benchmark range, which a public relay refuses
	// to relay to; this lab allows it, as an operator's lab would.
	sn := startIn(t, srv.NS, []string{"PARLEY_LOGIN=" + n.loginURL}, append([]string{"supernode",
		"--listen", ip + ":8081", "--public-addr", ip,
		"--turn-udp", ip + ":3478", "--turn-tcp", ip + ":3478",
		"--relay-allow-peer", "198.18.0.0/15"}, supernodeArgs...)...)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		_, errOut := sn.output()
		if strings.Contains(errOut, "listed by the login server") {
			n.sn = sn
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, errOut := sn.output()
	t.Fatalf("supernode did not start:\n%s", errOut)
	return nil
}

// conePair adds two hosts, each behind its own endpoint-independent NAT.
func (n *natLab) conePair(t testing.TB, aName, bName string) (a *netlab.Host, ra *netlab.Router, b *netlab.Host, rb *netlab.Router) {
	t.Helper()
	a, ra, err := n.lab.AddNATHost(aName, netlab.EndpointIndependent)
	must(t, err)
	b, rb, err = n.lab.AddNATHost(bName, netlab.EndpointIndependent)
	must(t, err)
	return a, ra, b, rb
}

// user registers name from host and returns its environment.
func (n *natLab) user(t testing.TB, h *netlab.Host, name string, extraEnv ...string) []string {
	t.Helper()
	env := append(userEnv(t, n.loginURL, "pw-"+name+"-secret"), extraEnv...)
	if out, errOut, code := runParleyIn(t, h.NS, env, "register", name); code != 0 {
		t.Fatalf("register %s on %s: exit %d\n%s%s", name, h.Name, code, out, errOut)
	}
	return env
}

// callResult is what one call between two lab hosts showed.
type callResult struct {
	callerPath, calleePath string
	corr                   float64
	callerOut, calleeOut   string
	callerErr              string // the caller's stderr (logs)
}

// call has the caller on ch call the callee on eh, playing a speech WAV that the
// callee records, and reports the paths both ends saw and the match.
func (n *natLab) call(t *testing.T, ch, eh *netlab.Host, caller, callee string, extra ...string) callResult {
	t.Helper()
	return n.callWith(t, ch, eh, caller, callee, nil, extra...)
}

// callWith is call with extra environment for both users.
func (n *natLab) callWith(t *testing.T, ch, eh *netlab.Host, caller, callee string, env []string, extra ...string) callResult {
	t.Helper()
	cenv, eenv := n.user(t, ch, caller, env...), n.user(t, eh, callee, env...)
	rec := filepath.Join(t.TempDir(), callee+".wav")
	listener := startIn(t, eh.NS, eenv, "listen", "--answer", "--record", rec, "--calls", "1", "--json")
	waitOnline(t, listener)
	ref := callSignal()
	args := append([]string{"call", callee, "--play", writeWAV(t, ref), "--json"}, extra...)
	out, errOut, code := runParleyIn(t, ch.NS, cenv, args...)
	if code != 0 {
		t.Fatalf("call: exit %d\n%s\n%s", code, out, errOut)
	}
	listener.wait(t, 15*time.Second)
	lout, _ := listener.output()
	got := readWAV(t, rec)
	corr, lag := audiotest.MatchEnvelope(ref, got, time.Second)
	r := callResult{callerPath: lastField(t, out, "path"), calleePath: lastField(t, lout, "path"), corr: corr, callerOut: out, calleeOut: lout, callerErr: errOut}
	t.Logf("%s → %s: caller path %q, callee path %q, correlation %.3f at lag %v", caller, callee, r.callerPath, r.calleePath, corr, lag)
	return r
}

// callSignal is what the caller plays in the lab calls.
func callSignal() []int16 {
	return append(audiotest.Speech(11, 3*time.Second), audiotest.Silence(500*time.Millisecond)...)
}

// encodeFrames encodes pcm as a call does: 20 ms frames, a fresh encoder with the
// default settings.
func encodeFrames(t *testing.T, pcm []int16) [][]byte {
	t.Helper()
	enc, err := codec.NewEncoder(codec.EncoderConfig{})
	must(t, err)
	src := codec.NewPCMFrameReader(pcm)
	var out [][]byte
	for {
		f, err := src.ReadFrame()
		if err != nil {
			return out
		}
		b, err := enc.Encode(f)
		must(t, err)
		out = append(out, b)
	}
}

// readPcap returns the transport payloads (UDP data, or TCP data) of a
// classic pcap file of Ethernet frames carrying IPv4.
func readPcap(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 {
		t.Fatalf("%s is not a little-endian pcap file", path)
	}
	var out [][]byte
	for off := 24; off+16 <= len(b); {
		incl := int(binary.LittleEndian.Uint32(b[off+8:]))
		off += 16
		if off+incl > len(b) {
			break
		}
		frame := b[off : off+incl]
		off += incl
		if len(frame) < 14+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
			continue
		}
		ip := frame[14:]
		ihl := int(ip[0]&0x0f) * 4
		if len(ip) < ihl {
			continue
		}
		l4 := ip[ihl:]
		switch ip[9] {
		case 17:
			if len(l4) >= 8 {
				out = append(out, l4[8:])
			}
		case 6:
			if len(l4) >= 20 {
				if doff := int(l4[12]>>4) * 4; len(l4) >= doff {
					out = append(out, l4[doff:])
				}
			}
		}
	}
	return out
}

// lastField is a field of the last stats event in --json output.
func lastField(t testing.TB, out, field string) string {
	v := ""
	for _, ev := range jsonLines(t, out) {
		if ev["event"] == "stats" {
			v = fmt.Sprint(ev[field])
		}
	}
	return v
}

func TestNATPaths(t *testing.T) {
	n := startNATLab(t)
	lab := n.lab
	tests := []struct {
		name  string
		setup func(t *testing.T) (caller, callee *netlab.Host)
		want  string
	}{
		{"both public", func(t *testing.T) (*netlab.Host, *netlab.Host) {
			a, err := lab.AddPublicHost("pa")
			must(t, err)
			b, err := lab.AddPublicHost("pb")
			must(t, err)
			return a, b
		}, "direct"},
		{"both behind endpoint-independent NATs", func(t *testing.T) (*netlab.Host, *netlab.Host) {
			a, _, err := lab.AddNATHost("ea", netlab.EndpointIndependent)
			must(t, err)
			b, _, err := lab.AddNATHost("eb", netlab.EndpointIndependent)
			must(t, err)
			return a, b
		}, "direct"},
		{"both behind symmetric NATs", func(t *testing.T) (*netlab.Host, *netlab.Host) {
			a, _, err := lab.AddNATHost("sa", netlab.Symmetric)
			must(t, err)
			b, _, err := lab.AddNATHost("sb", netlab.Symmetric)
			must(t, err)
			return a, b
		}, "udp-relay"},
		{"caller behind a UDP-blocking firewall", func(t *testing.T) (*netlab.Host, *netlab.Host) {
			a, r, err := lab.AddNATHost("fa", netlab.EndpointIndependent)
			must(t, err)
			must(t, r.BlockUDP(443, 3478, 8080, 8081))
			b, _, err := lab.AddNATHost("fb", netlab.EndpointIndependent)
			must(t, err)
			return a, b
		}, "tcp-relay"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			caller, callee := tt.setup(t)
			r := n.call(t, caller, callee, fmt.Sprintf("caller%d", i), fmt.Sprintf("callee%d", i))
			if r.corr < 0.9 {
				t.Errorf("recording correlates %.3f, want ≥ 0.9", r.corr)
			}
			if r.callerPath != tt.want || r.calleePath != tt.want {
				t.Errorf("paths: caller %q, callee %q; want %q on both\ncaller:\n%s\ncallee:\n%s", r.callerPath, r.calleePath, tt.want, r.callerOut, r.calleeOut)
			}
		})
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestHoldKeepsShortNATBindingsOpen: both ends behind NATs whose UDP conntrack
// entries die after 10 s of silence. The call goes on hold for 40 s: both sides
// keep receiving RTP every second, and after resume audio flows both ways again
// with no new offer or ICE restart.
func TestHoldKeepsShortNATBindingsOpen(t *testing.T) {
	n := startNATLab(t)
	a, ra, b, rb := n.conePair(t, "ha", "hb")
	must(t, ra.SetUDPTimeouts(10, 10))
	must(t, rb.SetUDPTimeouts(10, 10))

	aenv, benv := n.user(t, a, "holda"), n.user(t, b, "holdb")
	aRec, bRec := filepath.Join(t.TempDir(), "a.wav"), filepath.Join(t.TempDir(), "b.wav")
	const holdAt, holdFor, total = 3 * time.Second, 40 * time.Second, 50 * time.Second
	listener := startIn(t, b.NS, benv, "listen", "--answer", "--calls", "1", "--json",
		"--play", writeWAV(t, audiotest.Speech(21, 20*time.Second)), "--record", bRec)
	waitOnline(t, listener)
	out, errOut, code := runParleyIn(t, a.NS, aenv, "call", "holdb", "--json",
		"--play", writeWAV(t, audiotest.Speech(22, 20*time.Second)), "--record", aRec,
		"--for", total.String(), "--hold-at", holdAt.String(), "--hold-for", holdFor.String())
	if code != 0 {
		t.Fatalf("call: exit %d\n%s\n%s", code, out, errOut)
	}
	listener.wait(t, 15*time.Second)
	lout, _ := listener.output()

	for _, side := range []struct {
		name, out, rec string
	}{{"caller", out, aRec}, {"callee", lout, bRec}} {
		evs := jsonLines(t, side.out)
		var holdStart, resume time.Time
		connected := 0
		type sample struct {
			at   time.Time
			recv float64
		}
		var stats []sample
		for _, ev := range evs {
			ts, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["ts"]))
			switch {
			case ev["event"] == "call" && ev["state"] == "connected":
				connected++
			case ev["event"] == "call" && ev["state"] == "held" && holdStart.IsZero():
				holdStart = ts
			case ev["event"] == "call" && ev["state"] == "resumed":
				resume = ts
			case ev["event"] == "stats":
				stats = append(stats, sample{ts, ev["packets_received"].(float64)})
			}
		}
		if connected != 1 || holdStart.IsZero() || resume.IsZero() {
			t.Fatalf("%s: %d connected events, hold at %v, resume at %v; want one connection, a hold and a resume:\n%s", side.name, connected, holdStart, resume, side.out)
		}
		// RTP arrived in every second of the hold.
		seconds := 0
		for i := 1; i < len(stats); i++ {
			if stats[i].at.Before(holdStart) || stats[i].at.After(resume) {
				continue
			}
			seconds++
			if got := stats[i].recv - stats[i-1].recv; got < 1 {
				t.Errorf("%s: no RTP received in the second before %v, on hold", side.name, stats[i].at.Format(time.TimeOnly))
			}
		}
		if seconds < int(holdFor/time.Second)-3 {
			t.Errorf("%s: only %d stats seconds during a %v hold", side.name, seconds, holdFor)
		}
		// The recording: speech, comfort noise while on hold, speech again.
		pcm := readWAV(t, side.rec)
		at := func(d time.Duration) int { return min(int(d.Seconds()*48000), len(pcm)) }
		holdLvl := audiotest.RMSdB(pcm[at(holdAt+2*time.Second):at(holdAt+holdFor-2*time.Second)])
		afterLvl := audiotest.RMSdB(pcm[at(holdAt+holdFor+2*time.Second):at(total-2*time.Second)])
		t.Logf("%s: on hold %.1f dBFS, after resume %.1f dBFS, %d seconds of hold with RTP", side.name, holdLvl, afterLvl, seconds)
		if holdLvl > -45 {
			t.Errorf("%s: heard %.1f dBFS while on hold, want comfort noise (≤ -45)", side.name, holdLvl)
		}
		if afterLvl < -35 {
			t.Errorf("%s: %.1f dBFS after resume, want speech (≥ -35)", side.name, afterLvl)
		}
	}
}

// TestRelaySeesOnlyCiphertext captures every packet on the relay host during a
// call relayed between two symmetric NATs. The capture holds the call's SRTP
// (positive control: RTP headers with the Opus payload type, relayed both ways)
// and none of the Opus frames the caller encoded.
func TestRelaySeesOnlyCiphertext(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tcpdump not installed (scripts/deps.sh installs it)")
		}
		t.Skip("tcpdump not installed")
	}
	n := startNATLab(t)
	a, _, err := n.lab.AddNATHost("ca", netlab.Symmetric)
	must(t, err)
	b, _, err := n.lab.AddNATHost("cb", netlab.Symmetric)
	must(t, err)

	pcap := filepath.Join(t.TempDir(), "relay.pcap")
	dump := exec.Command("ip", "netns", "exec", n.srv.NS, "tcpdump", "-i", "eth0", "-U", "-s", "0", "-w", pcap, "udp or tcp port 3478")
	var dumpErr bytes.Buffer
	dump.Stderr = &dumpErr
	must(t, dump.Start())
	defer dump.Process.Kill()
	for i := 0; i < 50 && !strings.Contains(dumpErr.String(), "listening"); i++ {
		time.Sleep(100 * time.Millisecond)
	}

	r := n.call(t, a, b, "capa", "capb")
	dump.Process.Signal(os.Interrupt)
	dump.Wait()
	if r.callerPath != "udp-relay" {
		t.Fatalf("call path %q, want udp-relay for this test to mean anything", r.callerPath)
	}
	packets := readPcap(t, pcap)

	// Positive control: SRTP packets of the call cross the relay. Through TURN
	// they travel in ChannelData (4-byte header) or as-is on the relay's far
	// side; either way an RTP header (version 2, payload type 111) is there.
	srtp := 0
	for _, p := range packets {
		for _, off := range []int{0, 4} {
			if len(p) > off+12 && p[off]>>6 == 2 && p[off+1]&0x7f == 111 {
				srtp++
				break
			}
		}
	}
	// Negative: none of the caller's Opus frames is in the clear. The encoder
	// is deterministic, so encoding the same WAV again gives the frames the
	// caller sent.
	frames := encodeFrames(t, callSignal())
	if again := encodeFrames(t, callSignal()); !slices.EqualFunc(frames, again, bytes.Equal) {
		t.Fatal("the Opus encoder is not deterministic; this test cannot know what was sent")
	}
	blob := bytes.Join(packets, nil)
	leaked := 0
	for _, f := range frames {
		if len(f) >= 24 && bytes.Contains(blob, f[:24]) {
			leaked++
		}
	}
	t.Logf("capture: %d packets, %d carrying SRTP, %d of %d Opus frames found in the clear", len(packets), srtp, leaked, len(frames))
	if srtp < 100 {
		t.Errorf("only %d SRTP packets captured at the relay; the capture did not see the call", srtp)
	}
	if leaked > 0 {
		t.Errorf("%d Opus frames appear unencrypted at the relay", leaked)
	}
}

// TestNoPathFailsWithAReason: a caller whose firewall lets through only the
// login server and supernode (no UDP, no relay ports) calls someone behind a
// symmetric NAT. No path exists: the call fails with a reason, within 15 s of
// the callee answering.
func TestNoPathFailsWithAReason(t *testing.T) {
	n := startNATLab(t)
	a, ra, err := n.lab.AddNATHost("na", netlab.EndpointIndependent)
	must(t, err)
	must(t, ra.BlockUDP(8080, 8081))
	b, _, err := n.lab.AddNATHost("nb", netlab.Symmetric)
	must(t, err)
	aenv, benv := n.user(t, a, "nopatha"), n.user(t, b, "nopathb")
	waitOnline(t, startIn(t, b.NS, benv, "listen", "--answer", "--json"))
	out, errOut, code := runParleyIn(t, a.NS, aenv, "call", "nopathb", "--json", "--for", "5s")
	if code == 0 {
		t.Fatalf("a call with no possible path succeeded:\n%s", out)
	}
	if !strings.Contains(lastLine(errOut), "could not connect") {
		t.Errorf("stderr ends %q, want it to say the call could not connect", lastLine(errOut))
	}
	var ringing, ended time.Time
	for _, ev := range jsonLines(t, out) {
		ts, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["ts"]))
		if ev["event"] == "call" && ev["state"] == "ringing" {
			ringing = ts
		}
		if ev["event"] == "call" && ev["state"] == "ended" {
			ended = ts
		}
	}
	if ringing.IsZero() || ended.IsZero() {
		t.Fatalf("no ringing or ended event:\n%s", out)
	}
	t.Logf("failed %v after ringing: %s", ended.Sub(ringing).Round(100*time.Millisecond), lastLine(errOut))
	if d := ended.Sub(ringing); d > 15*time.Second {
		t.Errorf("took %v from ringing to failing, want ≤ 15 s", d)
	}
}

// TestRelayChoiceServesBothEnds offers two relays: the supernode's own, and a
// standalone `parley relay` sharing its secret. Both ends are behind symmetric
// NATs, so the call needs a relay; the callee's network blocks the supernode's
// relay. The caller's probe learns that, chooses the one relay both ends reach
// (though the other is as near to the caller), allocates only there, and the
// call goes through it.
func TestRelayChoiceServesBothEnds(t *testing.T) {
	lab := netlab.NewForTest(t)
	r2, err := lab.AddPublicHost("relay2")
	must(t, err)
	const secret = "a-secret-shared-by-relays-and-supernodes"
	ip2 := r2.IP.String()
	rl := startIn(t, r2.NS, nil, "relay", "--public-addr", ip2, "--turn-udp", ip2+":3478", "--turn-tcp", ip2+":3478",
		"--turn-secret-file", secretFile(t, secret), "--relay-allow-peer", "198.18.0.0/15")
	n := startNATLabOn(t, lab, 0, "--relay", ip2+":3478", "--turn-secret-file", secretFile(t, secret))
	for i := 0; i < 100; i++ {
		if _, errOut := rl.output(); strings.Contains(errOut, "relay listening") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	a, _, err := lab.AddNATHost("ra", netlab.Symmetric)
	must(t, err)
	b, rb, err := lab.AddNATHost("rb", netlab.Symmetric)
	must(t, err)
	srvIP := n.srv.IP.String()
	for _, proto := range []string{"udp", "tcp"} {
		must(t, rb.Run("iptables", "-I", "FORWARD", "-d", srvIP, "-p", proto, "--dport", "3478", "-j", "DROP"))
	}
	r := n.call(t, a, b, "choosea", "chooseb", "--log-level", "info")
	if !strings.Contains(r.callerErr, `msg="relay chosen"`) || !strings.Contains(r.callerErr, "relay="+ip2+":3478") {
		t.Errorf("the caller did not choose %s:3478:\n%s", ip2, r.callerErr)
	}
	if r.corr < 0.9 {
		t.Errorf("recording correlates %.3f, want ≥ 0.9", r.corr)
	}
	if r.callerPath != "udp-relay" || r.calleePath != "udp-relay" {
		t.Fatalf("paths %q/%q, want udp-relay", r.callerPath, r.calleePath)
	}
	for side, out := range map[string]string{"caller": r.callerOut, "callee": r.calleeOut} {
		if relay := lastField(t, out, "relay"); !strings.Contains(relay, ip2) {
			t.Errorf("%s's call went through relay %q, want the one both reach (%s)", side, relay, ip2)
		}
	}
}

// TestRelayChoicePrefersTheNearerRelay: two relays both ends reach, the
// supernode's own 80 ms away (each way) and a standalone one nearby. The probe
// measures both from both ends and the call goes through the nearer.
func TestRelayChoicePrefersTheNearerRelay(t *testing.T) {
	lab := netlab.NewForTest(t)
	r2, err := lab.AddPublicHost("near")
	must(t, err)
	const secret = "a-secret-shared-by-relays-and-supernodes"
	ip2 := r2.IP.String()
	rl := startIn(t, r2.NS, nil, "relay", "--public-addr", ip2, "--turn-udp", ip2+":3478", "--turn-tcp", ip2+":3478",
		"--turn-secret-file", secretFile(t, secret), "--relay-allow-peer", "198.18.0.0/15")
	n := startNATLabOn(t, lab, 80*time.Millisecond, "--relay", ip2+":3478", "--turn-secret-file", secretFile(t, secret))
	for i := 0; i < 100; i++ {
		if _, errOut := rl.output(); strings.Contains(errOut, "relay listening") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	a, _, err := lab.AddNATHost("pa", netlab.Symmetric)
	must(t, err)
	b, _, err := lab.AddNATHost("pb", netlab.Symmetric)
	must(t, err)
	r := n.call(t, a, b, "neara", "nearb", "--log-level", "info")
	if r.corr < 0.9 {
		t.Errorf("recording correlates %.3f, want ≥ 0.9", r.corr)
	}
	if !strings.Contains(r.callerErr, "relay="+ip2+":3478") {
		t.Errorf("the caller did not choose the near relay %s:3478:\n%s", ip2, r.callerErr)
	}
	for side, out := range map[string]string{"caller": r.callerOut, "callee": r.calleeOut} {
		if relay := lastField(t, out, "relay"); !strings.Contains(relay, ip2) {
			t.Errorf("%s's call went through %q, want the near relay %s", side, relay, ip2)
		}
	}
	for _, line := range strings.Split(r.callerErr, "\n") {
		if strings.Contains(line, "relay chosen") {
			t.Log(line)
		}
	}
}

// TestCallSurvivesANetworkChange: a call between two hosts behind
// endpoint-independent NATs (direct, hole punched) while first the caller's,
// then the callee's router gets a new public address, which wipes every NAT
// mapping of the hosts behind it (a new lease from the ISP, a move to another
// network). Each time ICE restarts over signalling and the audio comes back on
// a direct path; what the caller hears back from the echo at the end matches
// what it played.
func TestCallSurvivesANetworkChange(t *testing.T) {
	n := startNATLab(t)
	a, ra, b, rb := n.conePair(t, "mova", "movb")
	aenv, benv := n.user(t, a, "mover"), n.user(t, b, "stayer")
	echo := startIn(t, b.NS, benv, "echo", "stayer", "--json", "--no-supernode", "--log-level", "info")
	waitOnline(t, echo)

	long := append(audiotest.Speech(29, 30*time.Second), audiotest.Silence(500*time.Millisecond)...)
	rec := filepath.Join(t.TempDir(), "back.wav")
	call := startIn(t, a.NS, aenv, "call", "stayer", "--play", writeWAV(t, long), "--record", rec,
		"--json", "--stats-interval", "200ms", "--log-level", "info")
	first := waitEventWhere(t, call, "stats", 20*time.Second, func(ev map[string]any) bool {
		n, _ := ev["packets_received"].(float64)
		return ev["path"] != nil && n > 0
	})
	if first["path"] != "direct" {
		t.Fatalf("the call starts on %v, want direct", first["path"])
	}
	time.Sleep(3 * time.Second)

	// The caller's network changes, then, once the call is back, the callee's.
	var changes []time.Time
	for _, r := range []*netlab.Router{ra, rb} {
		old := r.WAN
		at := time.Now()
		wan, err := r.Renumber()
		must(t, err)
		changes = append(changes, at)
		t.Logf("router %s: %v → %v", r.NS, old, wan)
		waitRise(t, call, at, 15*time.Second)
		time.Sleep(3 * time.Second)
	}

	call.wait(t, 40*time.Second)
	out, _ := call.output()
	for i, at := range changes {
		end := at.Add(12 * time.Second)
		if i+1 < len(changes) {
			end = changes[i+1] // the next change's gap is its own
		}
		stall, _ := longestStall(t, statsUntil(t, out, end), at)
		t.Logf("network change %d: longest stretch without packets %v (stats every 200 ms)", i+1, stall.Round(time.Millisecond))
		if stall > 3*time.Second {
			t.Errorf("network change %d: no packets for %v; want back within 3 s", i+1, stall)
		}
	}
	if got := lastField(t, out, "path"); got != "direct" {
		t.Errorf("after the changes the call is on %q, want direct", got)
	}
	got := readWAV(t, rec)
	tail := len(long) - 48000*6 // the last 6 s, after both changes
	// Searched from 3 s before the recording's last 6 s, up to 6 s on: the
	// echo comes back late by the round trip and the jitter buffers, and
	// after the two gaps by up to a second more (found 3.9 s into this
	// window, 1.9 s into the 2 s window searched before).
	corr, lag := audiotest.MatchEnvelope(long[tail:], got[max(0, len(got)-(len(long)-tail)-3*48000):], 6*time.Second)
	t.Logf("the last 6 s correlate %.3f (found %v into the window)", corr, lag)
	if corr < 0.8 {
		t.Errorf("after the network changes: correlation %.3f, want ≥ 0.8", corr)
	}
}

// statsUntil is the lines of a --json call's output up to time end.
func statsUntil(t testing.TB, out string, end time.Time) string {
	t.Helper()
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		var ev struct{ TS time.Time }
		if json.Unmarshal([]byte(line), &ev) == nil && ev.TS.After(end) {
			break
		}
		keep = append(keep, line)
	}
	return strings.Join(keep, "\n")
}

// capturedPacket is one IPv4 packet of a pcap capture.
type capturedPacket struct {
	at               time.Time
	src, dst         netip.Addr
	proto            byte // 6 TCP, 17 UDP
	srcPort, dstPort uint16
	ipLen            int // the IPv4 packet's total length, headers included
	payload          []byte
}

// readPcapPackets reads a classic little-endian pcap file of Ethernet frames
// (as tcpdump writes for a veth or the loopback interface) and returns its IPv4
// TCP and UDP packets.
func readPcapPackets(t testing.TB, path string) []capturedPacket {
	t.Helper()
	b, err := os.ReadFile(path)
	must(t, err)
	if len(b) < 24 || binary.LittleEndian.Uint32(b) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(b[20:]) != 1 {
		t.Fatalf("%s is not a little-endian pcap file of Ethernet frames", path)
	}
	var out []capturedPacket
	for off := 24; off+16 <= len(b); {
		sec, usec := binary.LittleEndian.Uint32(b[off:]), binary.LittleEndian.Uint32(b[off+4:])
		incl := int(binary.LittleEndian.Uint32(b[off+8:]))
		off += 16
		if off+incl > len(b) {
			break
		}
		frame := b[off : off+incl]
		off += incl
		if len(frame) < 14+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
			continue
		}
		ip := frame[14:]
		ihl := int(ip[0]&0x0f) * 4
		if len(ip) < ihl+8 {
			continue
		}
		p := capturedPacket{at: time.Unix(int64(sec), int64(usec)*1000), proto: ip[9], ipLen: int(binary.BigEndian.Uint16(ip[2:])),
			src: netip.AddrFrom4([4]byte(ip[12:16])), dst: netip.AddrFrom4([4]byte(ip[16:20]))}
		l4 := ip[ihl:]
		p.srcPort, p.dstPort = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
		switch p.proto {
		case 17:
			p.payload = l4[8:]
		case 6:
			if len(l4) < 20 {
				continue
			}
			doff := int(l4[12]>>4) * 4
			if len(l4) < doff {
				continue
			}
			p.payload = l4[doff:]
		default:
			continue
		}
		out = append(out, p)
	}
	return out
}

// stunKind names what a STUN or TURN message in payload is, when it is one
// that acts on a peer's address: an ICE connectivity check (a Binding request
// with ICE's USERNAME or role attributes), or a TURN request or indication that
// sends to or permits a peer (CreatePermission, ChannelBind, Send, ChannelData).
// A plain Binding request (finding one's own public address) and TURN's
// Allocate and Refresh are "".
func stunKind(payload []byte) string {
	if len(payload) >= 4 && payload[0]&0xc0 == 0x40 {
		return "TURN ChannelData"
	}
	if len(payload) < 20 || payload[0]&0xc0 != 0 || binary.BigEndian.Uint32(payload[4:]) != 0x2112a442 {
		return ""
	}
	switch binary.BigEndian.Uint16(payload) {
	case 0x0008:
		return "TURN CreatePermission"
	case 0x0009:
		return "TURN ChannelBind"
	case 0x0016:
		return "TURN Send"
	case 0x0001: // Binding request: look for ICE's attributes
		attrs := payload[20:min(len(payload), 20+int(binary.BigEndian.Uint16(payload[2:])))]
		for len(attrs) >= 4 {
			typ, n := binary.BigEndian.Uint16(attrs), int(binary.BigEndian.Uint16(attrs[2:]))
			switch typ {
			case 0x0006, 0x8029, 0x802a, 0x0025: // USERNAME, ICE-CONTROLLED, ICE-CONTROLLING, USE-CANDIDATE
				return "ICE connectivity check"
			}
			attrs = attrs[min(len(attrs), 4+(n+3)&^3):]
		}
	}
	return ""
}

// TestRingingCalleeSendsNothingToTheCaller: the privacy rule of ringing. Both
// ends are behind NATs that would let a direct call through; the callee lets
// the call ring 3 s before answering. Everything the callee's host sends is
// captured (its LAN interface and its loopback). Until it answers, it sends
// nothing to any address the caller's offer and candidates name (the caller's
// LAN address, its loopback, its NAT's public address, its relay allocations:
// any port of the relay host but the servers' own), no ICE connectivity check
// to anyone, and no TURN permission, channel or data for any peer. Positive
// control: after the answer, the same capture shows the callee's connectivity
// checks and packets to the caller's public address.
func TestRingingCalleeSendsNothingToTheCaller(t *testing.T) {
	if _, err := exec.LookPath("tcpdump"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tcpdump not installed (scripts/deps.sh installs it)")
		}
		t.Skip("tcpdump not installed")
	}
	n := startNATLab(t)
	a, ra, b, _ := n.conePair(t, "pra", "prb")
	aenv, benv := n.user(t, a, "privcaller"), n.user(t, b, "privcallee")
	const ringFor = 3 * time.Second
	listener := startIn(t, b.NS, benv, "listen", "--answer", "--answer-after", ringFor.String(), "--calls", "1", "--json")
	waitOnline(t, listener)

	dir := t.TempDir()
	var dumps []*exec.Cmd
	for _, ifname := range []string{"eth0", "lo"} {
		dump := exec.Command("ip", "netns", "exec", b.NS, "tcpdump", "-i", ifname, "-U", "-n", "-s", "0", "-w", filepath.Join(dir, ifname+".pcap"), "ip")
		var dumpErr bytes.Buffer
		dump.Stderr = &dumpErr
		must(t, dump.Start())
		t.Cleanup(func() {
			dump.Process.Kill()
			dump.Wait()
		})
		for i := 0; i < 50 && !strings.Contains(dumpErr.String(), "listening"); i++ {
			time.Sleep(100 * time.Millisecond)
		}
		dumps = append(dumps, dump)
	}

	out, errOut, code := runParleyIn(t, a.NS, aenv, "call", "privcallee", "--for", "2s", "--json")
	if code != 0 {
		t.Fatalf("call: exit %d\n%s\n%s", code, out, errOut)
	}
	listener.wait(t, 15*time.Second)
	time.Sleep(200 * time.Millisecond)
	for _, dump := range dumps {
		dump.Process.Signal(os.Interrupt)
		dump.Wait()
	}
	lout, _ := listener.output()
	id := fmt.Sprint(lastEvent(t, out, "call")["call_id"])
	ringing := eventTime(t, lout, id, "call", "ringing")
	// The answer starts ringFor after ringing; a margin keeps the clock's
	// granularity and the answer's first steps out of the window.
	answered := ringing.Add(ringFor - 100*time.Millisecond)
	if path := lastField(t, out, "path"); path != "direct" {
		t.Fatalf("the call is on %q, want direct (the topology where a ringing callee could punch a hole)", path)
	}

	srv := n.srv.IP
	servers := map[uint16]bool{3478: true, 8080: true, 8081: true}
	// toCaller says whether a packet goes to an address the caller could have
	// named: its LAN address, its NAT's public address, anything on the
	// loopback, or a port of the relay host that is none of the servers'
	// (an allocation's relayed address).
	toCaller := func(p capturedPacket, ifname string) bool {
		switch {
		case ifname == "lo":
			return true
		case p.dst == a.IP, p.dst == ra.WAN:
			return true
		case p.dst == srv && !servers[p.dstPort]:
			return true
		}
		return false
	}
	var before, after []string
	var checksAfter, toCallerAfter int
	total := 0
	for _, ifname := range []string{"eth0", "lo"} {
		for _, p := range readPcapPackets(t, filepath.Join(dir, ifname+".pcap")) {
			if p.src != b.IP && p.src.String() != "127.0.0.1" {
				continue // only what the callee sends
			}
			total++
			why := ""
			if toCaller(p, ifname) {
				why = "to an address of the caller's"
			}
			if k := stunKind(p.payload); k != "" {
				why = strings.TrimSpace(why + " " + k)
			}
			if why == "" {
				continue
			}
			line := fmt.Sprintf("%s %s %s:%d → %s:%d (%s, %d bytes)", p.at.Format("15:04:05.000"), ifname, p.src, p.srcPort, p.dst, p.dstPort, why, len(p.payload))
			if p.at.Before(answered) {
				before = append(before, line)
				continue
			}
			after = append(after, line)
			if strings.Contains(why, "ICE connectivity check") {
				checksAfter++
			}
			if p.dst == ra.WAN {
				toCallerAfter++
			}
		}
	}
	t.Logf("callee sent %d packets; rang %v → %v; before the answer %d of concern, after it %d (%d connectivity checks, %d to the caller's public address)",
		total, ringing.Format("15:04:05.000"), answered.Format("15:04:05.000"), len(before), len(after), checksAfter, toCallerAfter)
	if len(before) > 0 {
		t.Errorf("while ringing, before answering, the callee sent:\n%s", strings.Join(before, "\n"))
	}
	// Positive control: the capture sees the callee's ICE once it answers.
	if checksAfter == 0 || toCallerAfter == 0 {
		t.Errorf("after the answer the capture shows %d connectivity checks and %d packets to the caller's public address %v; the capture does not see the call:\n%s",
			checksAfter, toCallerAfter, ra.WAN, strings.Join(after, "\n"))
	}
}
