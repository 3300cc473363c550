package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley/parley/internal/netlab"
)

// BenchmarkLabFileTransfer: `parley send` of 50 MB and 200 MB from one lab
// host to another running `parley listen`, directly (both behind
// endpoint-independent NATs: hole-punched) and relayed (both behind
// symmetric NATs: through the supernode's relay, paced at 192 KiB/s). It
// reports MB/s from the send's start to the receiver's file event (hash
// checked), and the bytes sent twice. The relayed 200 MB takes some 18
// minutes: the pace is the point (docs/files.md).
func BenchmarkLabFileTransfer(b *testing.B) {
	n := startNATLab(b)
	for i, tc := range []struct {
		name  string
		kind  netlab.NAT
		route string
		size  int
	}{
		{"direct-50MB", netlab.EndpointIndependent, "direct", 50 << 20},
		{"direct-200MB", netlab.EndpointIndependent, "direct", 200 << 20},
		{"relayed-50MB", netlab.Symmetric, "relay", 50 << 20},
		{"relayed-200MB", netlab.Symmetric, "relay", 200 << 20},
	} {
		sh, _, err := n.lab.AddNATHost(fmt.Sprintf("fbs%d", i), tc.kind)
		must(b, err)
		rh, _, err := n.lab.AddNATHost(fmt.Sprintf("fbr%d", i), tc.kind)
		must(b, err)
		snd, rcv := fmt.Sprintf("fsender%d", i), fmt.Sprintf("freceiver%d", i)
		senv, renv := n.user(b, sh, snd), n.user(b, rh, rcv)
		runParleyIn(b, sh.NS, senv, "contacts", "add", rcv)
		runParleyIn(b, rh.NS, renv, "contacts", "accept", snd)
		path, data := randomFile(b, "bench.bin", tc.size)
		b.Run(tc.name, func(b *testing.B) {
			for range b.N {
				dl := b.TempDir()
				listen := startIn(b, rh.NS, renv, "listen", "--json", "--download-dir", dl)
				waitOnline(b, listen)
				start := time.Now()
				sp := startIn(b, sh.NS, senv, "send", rcv, path, "--json")
				code := sp.wait(b, 30*time.Minute)
				out, errOut := sp.output()
				if code != 0 {
					b.Fatalf("send: exit %d\n%s\n%s", code, out, errOut)
				}
				got := waitEventsTB(b, listen, "file", 60*time.Second)
				took := time.Since(start)
				sameFile(b, filepath.Join(dl, "bench.bin"), data)
				sent := lastEvent(b, out, "file-sent")
				if sent["file_route"] != tc.route || got["file_route"] != tc.route {
					b.Fatalf("route %v/%v, want %s", sent["file_route"], got["file_route"], tc.route)
				}
				resent, _ := sent["file_resent"].(float64)
				b.ReportMetric(float64(tc.size)/1e6/took.Seconds(), "MB/s")
				b.ReportMetric(took.Seconds(), "s/transfer")
				b.ReportMetric(resent, "bytes-resent")
				listen.cmd.Process.Signal(os.Interrupt)
				listen.wait(b, 10*time.Second)
			}
		})
	}
}

// waitEventsTB waits for p's first event of kind.
func waitEventsTB(tb testing.TB, p *proc, kind string, within time.Duration) map[string]any {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		out, _ := p.output()
		for _, ev := range jsonLines(tb, out) {
			if ev["event"] == kind {
				return ev
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no %q event after %v", kind, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
