package client

import (
	"slices"
	"testing"
	"time"
)

// TestSilenceWatch runs the watchdog's decision over timelines of ticks
// (every mediaTick) and packets.
func TestSilenceWatch(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	tests := []struct {
		name     string
		packets  []int // ms of packets received
		restarts []int // ms at which a restart ended
		until    int   // ticks run to this ms
		want     []int // ms of the ticks that ask for a restart
	}{
		{name: "speech every 20 ms", packets: every(0, 3000, 20), until: 3000},
		{name: "hold heartbeats every 200 ms", packets: every(0, 3000, 200), until: 3000},
		{name: "nothing ever received", until: 3000},
		// Last packet at 1000: silence reaches 400 ms at the 1400 tick, is
		// confirmed at 1500, and asked again every 2 s while it lasts.
		{name: "path dies at 1 s", packets: every(0, 1000, 20), until: 6000, want: []int{1500, 3500, 5500}},
		// A stall: at the tick that sees 400 ms of silence the reader has
		// not run yet; before the confirmation, it has drained what waited.
		{name: "a 450 ms stall of this process", packets: append(every(0, 1000, 20), every(1460, 3000, 20)...), until: 3000},
		{name: "a restart ends at 2 s: silence counts from there", packets: every(0, 1000, 20), restarts: []int{2000}, until: 3000,
			want: []int{1500, 2500}},
		{name: "silence after a restart asks again", packets: append(every(0, 1000, 20), every(1800, 3000, 20)...),
			restarts: []int{1800}, until: 5000, want: []int{1500, 3500}},
		{name: "back after the ask: a new silence asks at once", packets: append(every(0, 1000, 20), every(1700, 2000, 20)...),
			until: 3000, want: []int{1500, 2500}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := silenceWatch{since: t0}
			var last time.Time
			var got []int
			p, r := 0, 0
			for now := mediaTick; now <= time.Duration(tt.until)*time.Millisecond; now += mediaTick {
				for p < len(tt.packets) && time.Duration(tt.packets[p])*time.Millisecond <= now {
					last = ms(tt.packets[p])
					p++
				}
				for r < len(tt.restarts) && time.Duration(tt.restarts[r])*time.Millisecond <= now {
					r++
				}
				if r > 0 { // told on every tick, as the call's loop does
					w.restarted(ms(tt.restarts[r-1]))
				}
				if w.tick(t0.Add(now), last) {
					got = append(got, int(now/time.Millisecond))
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("asked at %v ms, want %v", got, tt.want)
			}
		})
	}
}

// every is from, from+step, … up to and including to.
func every(from, to, step int) []int {
	var out []int
	for v := from; v <= to; v += step {
		out = append(out, v)
	}
	return out
}
