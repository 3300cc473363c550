package main

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/audiotest"
	"github.com/parley/parley/internal/netlab"
)

// BenchmarkLabNetworkChange measures the audio gap a network change costs a
// call: two hosts behind endpoint-independent NATs in the lab (servers
// without added delay), a call from one to an echo user on the other, and
// b.N changes, each renumbering one end's router (the caller's and the
// callee's in turn) once the call has had audio for 2 s. The gap is the
// longest stretch in which the caller's received-packet count stood still
// (stats every 50 ms, so a gap is over-counted by up to 50 ms), from the
// change until the next. Reported: the median and the 95th percentile
// (nearest rank) over the changes; every change's gap is logged.
//
// Needs root. Run: go test -run '^$' -bench LabNetworkChange -benchtime 20x ./cmd/parley/
func BenchmarkLabNetworkChange(b *testing.B) {
	n := startNATLab(b)
	ch, rc, eh, re := n.conePair(b, "ncc", "nce")
	cenv, eenv := n.user(b, ch, "nchanger"), n.user(b, eh, "nechoer")
	echo := startIn(b, eh.NS, eenv, "echo", "nechoer", "--json", "--no-supernode", "--log-level", "info")
	waitOnline(b, echo)
	routers := []*netlab.Router{rc, re}
	b.Run("direct", func(b *testing.B) {
		speech := audiotest.Speech(31, time.Duration(b.N)*4*time.Second+10*time.Second)
		call := startIn(b, ch.NS, cenv, "call", "nechoer", "--play", writeWAV(b, speech), "--json", "--stats-interval", "50ms",
			"--log-level", "info")
		waitEventWhere(b, call, "stats", 20*time.Second, func(ev map[string]any) bool {
			got, _ := ev["packets_received"].(float64)
			return ev["path"] == "direct" && got > 0
		})
		var changes []time.Time
		b.ResetTimer()
		for i := range b.N {
			time.Sleep(2 * time.Second)
			at := time.Now()
			if _, err := routers[i%2].Renumber(); err != nil {
				b.Fatal(err)
			}
			changes = append(changes, at)
			waitRise(b, call, at, 15*time.Second)
		}
		b.StopTimer()
		time.Sleep(time.Second)
		out, _ := call.output()
		gaps := make([]time.Duration, len(changes))
		for i, at := range changes {
			end := time.Now()
			if i+1 < len(changes) {
				end = changes[i+1]
			}
			gaps[i], _ = longestStall(b, statsUntil(b, out, end), at)
		}
		b.Logf("gaps after each change: %v", gaps)
		if slices.Max(gaps) > 2*time.Second { // what the ends did about it
			_, callLog := call.output()
			_, echoLog := echo.output()
			for _, l := range strings.Split(callLog+echoLog, "\n") {
				if strings.Contains(l, "ICE") || strings.Contains(l, "media") || strings.Contains(l, "attach") {
					b.Logf("%.300s", l)
				}
			}
		}
		ms := make([]float64, len(gaps))
		for i, g := range gaps {
			ms[i] = float64(g.Milliseconds())
		}
		b.ReportMetric(percentile(ms, 50), "ms-gap-p50")
		b.ReportMetric(percentile(ms, 95), "ms-gap-p95")
	})
}

// waitRise waits until the call's received-packet count rises in stats
// taken a second or more after at (audio is back after a change).
func waitRise(tb testing.TB, call *proc, at time.Time, within time.Duration) {
	tb.Helper()
	last := -1.0
	waitEventWhere(tb, call, "stats", within, func(ev map[string]any) bool {
		ts, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["ts"]))
		got, _ := ev["packets_received"].(float64)
		if ts.Before(at.Add(time.Second)) {
			return false
		}
		back := last >= 0 && got > last
		last = got
		return back
	})
}
