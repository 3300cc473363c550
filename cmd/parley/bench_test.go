package main

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parley/parley/internal/netlab"
)

// BenchmarkLabCallSetup measures post-dial delay as a CLI user sees it, in
// the lab: the login server and supernode (with its STUN service and relay)
// sit 40 ms from the internet each way, so every round trip to them takes
// 80 ms; the caller and the user it calls are each behind their own NAT
// (endpoint-independent: the call goes direct; symmetric: through the relay).
//
//   - direct, udp-relay: the callee is an echo user, which answers the moment
//     it rings. Reported: from the caller's "online" to its "connected" event
//     (dialling to media flowing, once attached), and from the process
//     starting to "connected" (a cold start: the home, attaching, the call).
//   - answered-after-2s: the callee is `listen --answer --answer-after 2s`, as
//     a person picking up; reported: from the answer to media flowing on the
//     callee's side (its "connected" less its "ringing" and the 2 s).
//   - direct-no-delay: as direct, in a second lab whose servers are as near
//     as the NATs (no added delay); reported: from the caller's "ringing" to
//     its "connected" (what is left once signalling costs nothing; when the
//     answer overtakes the ringing signal, "ringing" shows as it arrives).
//
// Reported as the mean over the calls, and ms-p50 their median; every
// call's figure is logged, for percentiles over several runs.
//
// Needs root. Run: go test -run '^$' -bench LabCallSetup -benchtime 5x ./cmd/parley/
func BenchmarkLabCallSetup(b *testing.B) {
	far := startNATLabOn(b, netlab.NewForTest(b), 40*time.Millisecond)
	var near *natLab // the same without the delay, made when needed
	for i, tc := range []struct {
		name, path  string
		kind        netlab.NAT
		answerAfter time.Duration // 0: the echo user
		near        bool          // the servers without added delay
	}{
		{"direct", "direct", netlab.EndpointIndependent, 0, false},
		{"udp-relay", "udp-relay", netlab.Symmetric, 0, false},
		{"answered-after-2s", "direct", netlab.EndpointIndependent, 2 * time.Second, false},
		{"direct-no-delay", "direct", netlab.EndpointIndependent, 0, true},
	} {
		n := far
		if tc.near {
			if near == nil {
				near = startNATLabOn(b, netlab.NewForTest(b), 0)
			}
			n = near
		}
		// b.Run runs its function more than once: the hosts are made here.
		ch, _, err := n.lab.AddNATHost(fmt.Sprintf("bc%d", i), tc.kind)
		must(b, err)
		eh, _, err := n.lab.AddNATHost(fmt.Sprintf("be%d", i), tc.kind)
		must(b, err)
		caller, callee := fmt.Sprintf("caller%d", i), fmt.Sprintf("callee%d", i)
		cenv, eenv := n.user(b, ch, caller), n.user(b, eh, callee)
		args := []string{"echo", callee, "--json", "--no-supernode"}
		if tc.answerAfter > 0 {
			args = []string{"listen", "--answer", "--answer-after", tc.answerAfter.String(), "--json", "--no-supernode"}
		}
		answerer := startIn(b, eh.NS, eenv, args...)
		waitOnline(b, answerer)
		b.Run(tc.name, func(b *testing.B) {
			var dial, cold, answer time.Duration
			var each []time.Duration // dial, answer or ringing to media, per call
			b.ResetTimer()
			for range b.N {
				began := time.Now()
				out, errOut, code := runParleyIn(b, ch.NS, cenv, "call", callee, "--for", "500ms", "--json")
				if code != 0 {
					b.Fatalf("call: exit %d\n%s\n%s", code, out, errOut)
				}
				online := eventTime(b, out, "", "online", "")
				connected := eventTime(b, out, "", "call", "connected")
				if ev := lastField(b, out, "path"); ev != tc.path {
					b.Fatalf("the call is on %q, want %s", ev, tc.path)
				}
				dial += connected.Sub(online)
				cold += connected.Sub(began)
				if tc.answerAfter > 0 {
					lout, _ := answerer.output()
					id := fmt.Sprint(lastEvent(b, out, "call")["call_id"])
					d := eventTime(b, lout, id, "call", "connected").Sub(eventTime(b, lout, id, "call", "ringing").Add(tc.answerAfter))
					answer += d
					each = append(each, d)
				} else if tc.near {
					each = append(each, connected.Sub(eventTime(b, out, "", "call", "ringing")))
				} else {
					each = append(each, connected.Sub(online))
				}
			}
			// Every call's figure, for percentiles over several runs.
			b.Logf("%s: %v", tc.name, each)
			slices.Sort(each)
			b.ReportMetric(float64(each[len(each)/2].Milliseconds()), "ms-p50")
			if tc.answerAfter > 0 {
				b.ReportMetric(float64(answer.Milliseconds())/float64(b.N), "ms-answer-to-media")
				return
			}
			if tc.near {
				var ring time.Duration
				for _, d := range each {
					ring += d
				}
				b.ReportMetric(float64(ring.Milliseconds())/float64(b.N), "ms-ringing-to-media")
				return
			}
			b.ReportMetric(float64(dial.Milliseconds())/float64(b.N), "ms-dial-to-media")
			b.ReportMetric(float64(cold.Milliseconds())/float64(b.N), "ms-start-to-media")
		})
	}
}

// eventTime is the time of the first event of kind (and call state, and call
// id, when given) in --json output.
func eventTime(tb testing.TB, out, callID, kind, state string) time.Time {
	tb.Helper()
	for _, ev := range jsonLines(tb, out) {
		if ev["event"] == kind && (state == "" || ev["state"] == state) && (callID == "" || ev["call_id"] == callID) {
			ts, err := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["ts"]))
			if err != nil {
				tb.Fatal(err)
			}
			return ts
		}
	}
	tb.Fatalf("no %s %s event in:\n%s", kind, state, out)
	return time.Time{}
}

// lastEvent is the last event of kind in --json output.
func lastEvent(tb testing.TB, out, kind string) map[string]any {
	tb.Helper()
	var last map[string]any
	for _, ev := range jsonLines(tb, out) {
		if ev["event"] == kind {
			last = ev
		}
	}
	return last
}
