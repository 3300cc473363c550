package main

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkBrowserCallSetup measures a call from the page to `echo` in
// headless Chromium, everything on loopback (`parley up`): from the click
// on Call to the page showing "Connected", and to the first audio packet
// from echo counted in the page's RTCPeerConnection stats (media). Both
// are timed in the page (performance.now), so Chromium's DevTools round
// trips are not in them. The page signs up once; each call is hung up and
// the next placed from the same page, as a person calling again would.
//
// Reported: the mean, and ms-p50/ms-p95 of connected and media over the
// calls; every call's figure is logged.
//
// Run: go test -run '^$' -bench BrowserCallSetup -benchtime 20x ./cmd/parley/
func BenchmarkBrowserCallSetup(b *testing.B) {
	chromiumPath(b)
	loginURL := upNetwork(b)
	_, wav := micWAV(b, 7)
	br := newBrowser(b, wav)
	br.signUp(loginURL, "bencher", "bencher-password")
	// The first call opens the microphone and the AudioContext; it is not
	// counted (a person's first call of a page's life pays that once).
	callEcho(br)
	var connected, media []float64
	b.ResetTimer()
	for i := range b.N {
		t := callEcho(br)
		b.Logf("call %d: connected %.0f ms, media %.0f ms", i, t[0], t[1])
		connected, media = append(connected, t[0]), append(media, t[1])
	}
	b.StopTimer()
	for _, m := range []struct {
		name string
		v    []float64
	}{{"connected", connected}, {"media", media}} {
		p50, p95 := percentile(m.v, 50), percentile(m.v, 95)
		b.ReportMetric(p50, "ms-p50-"+m.name)
		b.ReportMetric(p95, "ms-p95-"+m.name)
	}
}

// callEcho types echo into the search box, clicks Call, waits for the call to
// connect and for echo's first audio, hangs up, and returns the two times
// in ms from the click.
func callEcho(br *browser) [2]float64 {
	br.t.Helper()
	br.typeInto(searchBox, "echo") // Call by the search box clears it
	t := eval[[]float64](br, fmt.Sprintf(`(async () => {
		const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
		const button = () => {
			const r = document.evaluate(%q, document, null, XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null);
			for (let i = 0; i < r.snapshotLength; i++) {
				const el = r.snapshotItem(i);
				if (!el.disabled && el.checkVisibility({visibilityProperty: true})) return el;
			}
			return null;
		};
		let btn = null;
		for (let i = 0; i < 2000 && !(btn = button()); i++) await sleep(5);
		if (!btn) return [-1];
		const inc = document.getElementById("incall"), st = document.getElementById("call-state");
		const t0 = performance.now();
		btn.click();
		while (inc.hidden || !st.textContent.startsWith("Connected")) {
			if (performance.now() - t0 > 20000) return [-2];
			await sleep(1);
		}
		const connected = performance.now() - t0;
		for (;;) {
			const c = window.parley.call;
			if (c && c.pc) {
				let got = false;
				(await c.pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp" && s.packetsReceived > 0) got = true; });
				if (got) return [connected, performance.now() - t0];
			}
			if (performance.now() - t0 > 20000) return [-3];
			await sleep(2);
		}
	})()`, control("Call")), 30*time.Second)
	if len(t) != 2 {
		br.t.Fatalf("the call to echo did not connect, or no audio came, within 20 s (%v)\npage says: %s", t, br.pageText())
	}
	br.click("Hang up")
	br.shows("Call with echo ended", 10*time.Second)
	return [2]float64(t)
}

// percentile is the p-th percentile of v (nearest rank).
func percentile(v []float64, p int) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	i := (len(s)*p + 99) / 100
	return s[max(i-1, 0)]
}
