package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/parley/parley/internal/netlab"
)

// BenchmarkLabCallSetup measures post-dial delay as a CLI user sees it, in
// the lab: the login server and supernode (with its STUN service and relay)
// sit 40 ms from the internet each way, so every round trip to them takes
// 80 ms; the caller and the echo user it calls are each behind their own NAT
// (endpoint-independent: the call goes direct; symmetric: through the relay).
// It reports the time from the caller's "online" to its "connected" event
// (dialing to media flowing, once attached) and from the process starting to
// "connected" (a cold start: reading the home, attaching, then the call).
// Needs root. Run: go test -run '^$' -bench LabCallSetup -benchtime 5x ./cmd/parley/
func BenchmarkLabCallSetup(b *testing.B) {
	n := startNATLabOn(b, netlab.NewForTest(b), 40*time.Millisecond)
	for i, nat := range []struct {
		name string
		kind netlab.NAT
	}{{"direct", netlab.EndpointIndependent}, {"udp-relay", netlab.Symmetric}} {
		// b.Run runs its function more than once: the hosts are made here.
		ch, _, err := n.lab.AddNATHost(fmt.Sprintf("bc%d", i), nat.kind)
		must(b, err)
		eh, _, err := n.lab.AddNATHost(fmt.Sprintf("be%d", i), nat.kind)
		must(b, err)
		caller, callee := fmt.Sprintf("caller%d", i), fmt.Sprintf("echo%d", i)
		cenv, eenv := n.user(b, ch, caller), n.user(b, eh, callee)
		waitOnline(b, startIn(b, eh.NS, eenv, "echo", callee, "--json", "--no-supernode"))
		b.Run(nat.name, func(b *testing.B) {
			var dial, cold time.Duration
			b.ResetTimer()
			for range b.N {
				began := time.Now()
				out, errOut, code := runParleyIn(b, ch.NS, cenv, "call", callee, "--for", "500ms", "--json")
				if code != 0 {
					b.Fatalf("call: exit %d\n%s\n%s", code, out, errOut)
				}
				var online, connected time.Time
				for _, ev := range jsonLines(b, out) {
					ts, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["ts"]))
					switch {
					case ev["event"] == "online" && online.IsZero():
						online = ts
					case ev["event"] == "call" && ev["state"] == "connected":
						connected = ts
						if ev["path"] != nat.name {
							b.Fatalf("the call is on %v, want %s", ev["path"], nat.name)
						}
					}
				}
				if online.IsZero() || connected.IsZero() {
					b.Fatalf("no online or connected event:\n%s", out)
				}
				dial += connected.Sub(online)
				cold += connected.Sub(began)
			}
			b.ReportMetric(float64(dial.Milliseconds())/float64(b.N), "ms-dial-to-media")
			b.ReportMetric(float64(cold.Milliseconds())/float64(b.N), "ms-start-to-media")
		})
	}
}
