package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley/parley/internal/audiotest"
	"github.com/parley/parley/internal/netlab"
)

// BenchmarkLoopbackFileTransfer: `parley send` of 50 MB and 200 MB to a
// user running `parley listen --download-dir` on the same host, through
// `parley up` on 127.0.0.1 (no lab, no NAT), timed from the send's start
// to the receiver's file event (hash checked). Directly only: the CLI has
// no way to make a session relay-only (client.SessionConfig.RelayOnly is
// not exposed), and on loopback ICE always finds the host pair.
//
// Run: go test -run '^$' -bench LoopbackFileTransfer -benchtime 1x ./cmd/parley/
func BenchmarkLoopbackFileTransfer(b *testing.B) {
	u := startUp(b)
	senv, renv := userEnv(b, u.loginURL, "pw-lsender-secret"), userEnv(b, u.loginURL, "pw-lreceiver-secret")
	for _, c := range []struct {
		env  []string
		args []string
	}{
		{senv, []string{"register", "lsender"}},
		{renv, []string{"register", "lreceiver"}},
		{senv, []string{"contacts", "add", "lreceiver"}},
		{renv, []string{"contacts", "accept", "lsender"}},
	} {
		if out, errOut, code := runParleyIn(b, "", c.env, c.args...); code != 0 {
			b.Fatalf("%v: exit %d\n%s%s", c.args, code, out, errOut)
		}
	}
	for _, size := range []int{50 << 20, 200 << 20} {
		path, data := randomFile(b, "loop.bin", size)
		b.Run(fmt.Sprintf("direct-%dMB", size>>20), func(b *testing.B) {
			for range b.N {
				dl := b.TempDir()
				listen := start(b, renv, "listen", "--json", "--download-dir", dl)
				waitOnline(b, listen)
				began := time.Now()
				sp := start(b, senv, "send", "lreceiver", path, "--json")
				code := sp.wait(b, 30*time.Minute)
				out, errOut := sp.output()
				if code != 0 {
					b.Fatalf("send: exit %d\n%s\n%s", code, out, errOut)
				}
				got := waitEventsTB(b, listen, "file", 60*time.Second)
				took := time.Since(began)
				sameFile(b, filepath.Join(dl, "loop.bin"), data)
				sent := lastEvent(b, out, "file-sent")
				if sent["file_route"] != "direct" || got["file_route"] != "direct" {
					b.Fatalf("route %v/%v, want direct", sent["file_route"], got["file_route"])
				}
				resent, _ := sent["file_resent"].(float64)
				b.ReportMetric(float64(size)/1e6/took.Seconds(), "MB/s")
				b.ReportMetric(took.Seconds(), "s/transfer")
				b.ReportMetric(resent, "bytes-resent")
				listen.cmd.Process.Signal(os.Interrupt)
				listen.wait(b, 10*time.Second)
			}
		})
	}
}

// BenchmarkLabCallBesideFile: a 30 s relayed call between two users behind
// symmetric NATs in the lab (caller plays speech, callee answers and
// records), alone, then with a 10 MB file going from the caller to the
// callee through the same relay during the whole call (paced at 192 KiB/s,
// the file takes some 55 s; the call starts once the file is flowing).
// Reported: the last stats event's loss (%) and jitter on each end (and
// the largest jitter any stats event showed), the recording's correlation
// with what was played, and the file's rate (its send's start to its file
// event). That the file arrives
// intact and relayed is checked.
//
// Needs root. Run: go test -run '^$' -bench LabCallBesideFile -benchtime 1x ./cmd/parley/
func BenchmarkLabCallBesideFile(b *testing.B) {
	n := startNATLab(b)
	ch, _, err := n.lab.AddNATHost("cbfa", netlab.Symmetric)
	must(b, err)
	eh, _, err := n.lab.AddNATHost("cbfb", netlab.Symmetric)
	must(b, err)
	caller, callee := "cbfcaller", "cbfcallee"
	cenv, eenv := n.user(b, ch, caller), n.user(b, eh, callee)
	runParleyIn(b, ch.NS, cenv, "contacts", "add", callee)
	runParleyIn(b, eh.NS, eenv, "contacts", "accept", caller)
	ref := append(audiotest.Speech(11, 30*time.Second), audiotest.Silence(500*time.Millisecond)...)
	wav := writeWAV(b, ref)
	path, data := randomFile(b, "beside.bin", 10<<20)
	for _, withFile := range []bool{false, true} {
		name := "alone"
		if withFile {
			name = "beside-10MB-file"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				dl, rec := b.TempDir(), filepath.Join(b.TempDir(), "callee.wav")
				listen := startIn(b, eh.NS, eenv, "listen", "--json", "--answer", "--record", rec, "--download-dir", dl)
				waitOnline(b, listen)
				var send *proc
				began := time.Now()
				if withFile {
					send = startIn(b, ch.NS, cenv, "send", callee, path, "--json")
					waitEventsTB(b, listen, "file-progress", 60*time.Second)
				}
				out, errOut, code := runParleyIn(b, ch.NS, cenv, "call", callee, "--play", wav, "--json", "--stats-interval", "1s")
				if code != 0 {
					b.Fatalf("call: exit %d\n%s\n%s", code, out, errOut)
				}
				if withFile {
					select {
					case <-send.done:
						b.Fatal("the file was done before the call: it did not go beside the whole call")
					default:
					}
					code := send.wait(b, 5*time.Minute)
					sout, serr := send.output()
					if code != 0 {
						b.Fatalf("send: exit %d\n%s\n%s", code, sout, serr)
					}
					got := waitEventsTB(b, listen, "file", 60*time.Second)
					if sent := lastEvent(b, sout, "file-sent"); sent["file_route"] != "relay" || got["file_route"] != "relay" {
						b.Fatalf("file route %v/%v, want relay", sent["file_route"], got["file_route"])
					}
					sameFile(b, filepath.Join(dl, "beside.bin"), data)
					b.ReportMetric(float64(len(data))/1024/time.Since(began).Seconds(), "file-KiB/s")
				}
				listen.cmd.Process.Signal(os.Interrupt)
				listen.wait(b, 10*time.Second)
				lout, _ := listen.output()
				if cp, ep := lastField(b, out, "path"), lastField(b, lout, "path"); cp != "udp-relay" || ep != "udp-relay" {
					b.Fatalf("call paths: caller %q, callee %q; want udp-relay", cp, ep)
				}
				corr, _ := audiotest.MatchEnvelope(ref, readWAV(b, rec), time.Second)
				b.Logf("%s: caller loss %s jitter %s ms; callee loss %s jitter %s ms; correlation %.3f", name,
					lastField(b, out, "loss"), lastField(b, out, "jitter_ms"), lastField(b, lout, "loss"), lastField(b, lout, "jitter_ms"), corr)
				b.ReportMetric(100*lastStat(b, lout, "loss"), "callee-loss-%")
				b.ReportMetric(lastStat(b, lout, "jitter_ms"), "callee-jitter-ms")
				b.ReportMetric(100*lastStat(b, out, "loss"), "caller-loss-%")
				b.ReportMetric(lastStat(b, out, "jitter_ms"), "caller-jitter-ms")
				b.ReportMetric(maxStat(b, lout, "jitter_ms"), "callee-jitter-max-ms")
				b.ReportMetric(maxStat(b, out, "jitter_ms"), "caller-jitter-max-ms")
				b.ReportMetric(corr, "correlation")
			}
		})
	}
}

// lastStat is a numeric field of the last stats event in --json output.
func lastStat(tb testing.TB, out, field string) float64 {
	tb.Helper()
	ev := lastEvent(tb, out, "stats")
	v, ok := ev[field].(float64)
	if !ok {
		tb.Fatalf("the last stats event has no number %q: %v", field, ev)
	}
	return v
}

// maxStat is the largest value of a numeric field over the stats events in
// --json output.
func maxStat(tb testing.TB, out, field string) float64 {
	tb.Helper()
	m := 0.0
	for _, ev := range jsonLines(tb, out) {
		if v, ok := ev[field].(float64); ok && ev["event"] == "stats" {
			m = max(m, v)
		}
	}
	return m
}
