package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/audiotest"
	"github.com/parley/parley/internal/netlab"
)

// TestCLIFileRelayed: 10 MB CLI to CLI between two hosts behind symmetric
// NATs (no direct path) goes through the supernode's relay, paced under
// the relay's per-user budget so the relay drops nothing, and arrives
// byte-identical with the signed hash checked. A call between the same two
// users through the same relay in the middle of it keeps its voice.
func TestCLIFileRelayed(t *testing.T) {
	n := startNATLab(t)
	a, _, err := n.lab.AddNATHost("fsa", netlab.Symmetric)
	must(t, err)
	b, _, err := n.lab.AddNATHost("fsb", netlab.Symmetric)
	must(t, err)
	alice, bob := n.user(t, a, "alice"), n.user(t, b, "bob")
	for _, c := range []struct {
		h    *netlab.Host
		env  []string
		args []string
	}{{a, alice, []string{"contacts", "add", "bob"}}, {b, bob, []string{"contacts", "accept", "alice"}}} {
		if out, errOut, code := runParleyIn(t, c.h.NS, c.env, c.args...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", c.args, code, out, errOut)
		}
	}
	path, data := randomFile(t, "relayed.bin", 10<<20)
	dl, rec := t.TempDir(), filepath.Join(t.TempDir(), "bob.wav")
	bobListen := startIn(t, b.NS, bob, "listen", "--json", "--download-dir", dl, "--answer", "--record", rec)
	waitOnline(t, bobListen)

	start := time.Now()
	send := startIn(t, a.NS, alice, "send", "bob", path, "--json")
	waitProgress(t, bobListen, "relayed.bin", 1<<20)
	ref := callSignal()
	callOut, callErr, code := runParleyIn(t, a.NS, alice, "call", "bob", "--play", writeWAV(t, ref), "--json")
	if code != 0 {
		t.Fatalf("call: exit %d\n%s\n%s", code, callOut, callErr)
	}
	code = send.wait(t, 120*time.Second)
	took := time.Since(start)
	out, errOut := send.output()
	if code != 0 {
		t.Fatalf("parley send: exit %d\n%s\n%s", code, out, errOut)
	}
	sent := lastEvent(t, out, "file-sent")
	got := bobListen.waitEvents(t, "file", 1, 30*time.Second)[0]
	sameFile(t, filepath.Join(dl, "relayed.bin"), data)
	rate := float64(len(data)) / took.Seconds() / 1024
	resent, _ := sent["file_resent"].(float64)
	t.Logf("10 MB through the relay in %v: %.0f KiB/s, %.0f bytes sent twice", took.Round(time.Millisecond), rate, resent)
	if sent["file_route"] != "relay" || got["file_route"] != "relay" {
		t.Errorf("routes: sent %v, received %v; want relay", sent["file_route"], got["file_route"])
	}
	// Paced at 192 KiB/s: never above the relay's 256 KiB/s budget; the
	// connection held (nothing was sent twice), and the relay dropped no
	// packet for a user over their budget.
	if rate > 200 || resent > 0 {
		t.Errorf("%.0f KiB/s and %.0f bytes sent twice; want at most 192 KiB/s (paced) and none", rate, resent)
	}
	if drops := relayDrops(t, n, a); drops != 0 {
		t.Errorf("the relay dropped %v packets of users over their budget, want none", drops)
	}
	// The call beside the file: relayed, and bob heard alice.
	bobListen.cmd.Process.Signal(os.Interrupt)
	bobListen.wait(t, 10*time.Second)
	corr, _ := audiotest.MatchEnvelope(ref, readWAV(t, rec), time.Second)
	loss := lastField(t, callOut, "loss")
	t.Logf("the call beside the file: path %s, loss %s, correlation %.3f", lastField(t, callOut, "path"), loss, corr)
	if p := lastField(t, callOut, "path"); p != "udp-relay" || corr < 0.9 || (loss != "0" && !strings.HasPrefix(loss, "0.00")) {
		t.Errorf("the call beside the file: path %s, loss %s, correlation %.3f; want udp-relay, under 1%% and ≥ 0.9", p, loss, corr)
	}
}

// relayDrops reads the supernode's parley_relay_dropped_packets_total for
// reason "bandwidth" (from host h, over the lab's internet).
func relayDrops(t *testing.T, n *natLab, h *netlab.Host) float64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", h.NS, "curl", "-s", "--max-time", "5", "http://"+n.srv.IP.String()+":8081/metrics").Output()
	if err != nil {
		t.Fatalf("reading the supernode's metrics: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "parley_relay_dropped_packets_total{") && strings.Contains(line, `reason="bandwidth"`) {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			return v
		}
	}
	if !strings.Contains(string(out), "parley_relay_") {
		t.Fatalf("the supernode's metrics have no relay metrics:\n%.2000s", out)
	}
	return 0 // no line: nothing dropped for any reason yet
}
