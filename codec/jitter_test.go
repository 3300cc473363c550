package codec

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// push is one packet handed to the jitter buffer: seq, and the index of
// the test packet to send (-1 for a garbage payload).
type push struct {
	seq uint16
	pkt int
}

// run builds pushes of packets idx... with seq = start + index.
func run(start uint16, idx ...int) []push {
	out := make([]push, len(idx))
	for i, k := range idx {
		out[i] = push{start + uint16(k), k}
	}
	return out
}

func span(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func cat(parts ...[]int) []int { return slices.Concat(parts...) }

// expected replays a plan on a fresh decoder: "dN" decodes packet N, "fN"
// recovers the frame before packet N from its FEC, "c" conceals.
func expected(t *testing.T, pkts [][]byte, plan string) [][]int16 {
	t.Helper()
	d := newDecoder(t)
	var out [][]int16
	for _, op := range strings.Fields(plan) {
		var f []int16
		var err error
		switch op[0] {
		case 'c':
			n := 1
			if len(op) > 1 {
				n, _ = strconv.Atoi(op[1:])
			}
			for i := 0; i < n; i++ {
				if f, err = d.Conceal(); err != nil {
					t.Fatal(err)
				}
				out = append(out, f)
			}
			continue
		case 'd', 'f':
			k, _ := strconv.Atoi(op[1:])
			if op[0] == 'd' {
				f, err = d.Decode(pkts[k])
			} else {
				f, err = d.DecodeFEC(pkts[k])
			}
		default:
			t.Fatalf("bad plan op %q", op)
		}
		if err != nil {
			t.Fatalf("plan op %s: %v", op, err)
		}
		out = append(out, f)
	}
	return out
}

func planOf(ops ...string) string { return strings.Join(ops, " ") }

func decodes(from, to int) string {
	var ops []string
	for i := from; i <= to; i++ {
		ops = append(ops, fmt.Sprintf("d%d", i))
	}
	return strings.Join(ops, " ")
}

func TestJitterBuffer(t *testing.T) {
	_, pkts := speechPackets(t, 1, 3*time.Second)
	for i := range 120 {
		if !hasFEC(pkts[i]) {
			t.Fatalf("test packet %d is CELT-only; pick another seed", i)
		}
	}
	tests := []struct {
		name       string
		cfg        JitterConfig
		pushes     []push
		flush      bool
		wantCounts []int // frames returned by each Push (nil: not checked)
		wantFlush  int
		plan       string
		want       JitterStats
	}{
		{
			name:       "in order",
			pushes:     run(100, span(0, 9)...),
			wantCounts: []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1},
			plan:       decodes(0, 9),
			want:       JitterStats{Played: 10},
		},
		{
			name:       "reordered within depth",
			pushes:     run(100, 0, 2, 1, 3, 6, 5, 4, 7, 8, 9),
			wantCounts: []int{1, 0, 2, 1, 0, 0, 3, 1, 1, 1},
			plan:       decodes(0, 9),
			want:       JitterStats{Played: 10},
		},
		{
			name:       "one lost, FEC from the next",
			pushes:     run(100, cat(span(0, 2), span(4, 9))...),
			wantCounts: []int{1, 1, 1, 0, 0, 0, 5, 1, 1},
			plan:       planOf(decodes(0, 2), "f4", decodes(4, 9)),
			want:       JitterStats{Played: 9, RecoveredFEC: 1},
		},
		{
			name:   "one lost, depth 1",
			cfg:    JitterConfig{Depth: 1},
			pushes: run(100, cat(span(0, 2), span(4, 9))...),
			// 4 is held; 5 arrives: 2 queued > 1, give up.
			wantCounts: []int{1, 1, 1, 0, 3, 1, 1, 1, 1},
			plan:       planOf(decodes(0, 2), "f4", decodes(4, 9)),
			want:       JitterStats{Played: 9, RecoveredFEC: 1},
		},
		{
			name:       "one lost, depth -1 (no waiting)",
			cfg:        JitterConfig{Depth: -1},
			pushes:     run(100, 0, 1, 3, 2, 4),
			wantCounts: []int{1, 1, 2, 0, 1},
			plan:       planOf(decodes(0, 1), "f3", decodes(3, 4)),
			want:       JitterStats{Played: 4, RecoveredFEC: 1, Late: 1},
		},
		{
			name:       "burst of 3 lost, PLC",
			pushes:     run(100, cat(span(0, 2), span(6, 12))...),
			wantCounts: []int{1, 1, 1, 0, 0, 0, 7, 1, 1, 1},
			plan:       planOf(decodes(0, 2), "c3", decodes(6, 12)),
			want:       JitterStats{Played: 10, Concealed: 3},
		},
		{
			name:   "two separate single losses",
			pushes: run(100, cat(span(0, 2), span(4, 7), span(9, 14))...),
			plan:   planOf(decodes(0, 2), "f4", decodes(4, 7), "f9", decodes(9, 14)),
			want:   JitterStats{Played: 13, RecoveredFEC: 2},
		},
		{
			name:       "duplicates played and held",
			pushes:     run(100, 0, 1, 1, 3, 3, 2, 2, 0, 4),
			wantCounts: []int{1, 1, 0, 0, 0, 2, 0, 0, 1},
			plan:       decodes(0, 4),
			want:       JitterStats{Played: 5, Duplicate: 4},
		},
		{
			name:       "late after concealment",
			pushes:     run(100, cat(span(0, 2), span(4, 7), []int{3, 8})...),
			wantCounts: []int{1, 1, 1, 0, 0, 0, 5, 0, 1},
			plan:       planOf(decodes(0, 2), "f4", decodes(4, 8)),
			want:       JitterStats{Played: 8, RecoveredFEC: 1, Late: 1},
		},
		{
			name:   "late after burst concealment",
			pushes: run(100, cat(span(0, 1), span(4, 8), []int{2, 3}, span(9, 10))...),
			plan:   planOf(decodes(0, 1), "c2", decodes(4, 10)),
			want:   JitterStats{Played: 9, Concealed: 2, Late: 2},
		},
		{
			name:       "wraparound in order",
			pushes:     run(65533, span(0, 7)...),
			wantCounts: []int{1, 1, 1, 1, 1, 1, 1, 1},
			plan:       decodes(0, 7),
			want:       JitterStats{Played: 8},
		},
		{
			name:   "wraparound reordered",
			pushes: run(65533, 0, 1, 3, 2, 5, 4, 6, 7),
			plan:   decodes(0, 7),
			want:   JitterStats{Played: 8},
		},
		{
			name:   "wraparound, 65535 lost",
			pushes: run(65533, cat(span(0, 1), span(3, 9))...),
			plan:   planOf(decodes(0, 1), "f3", decodes(3, 9)),
			want:   JitterStats{Played: 9, RecoveredFEC: 1},
		},
		{
			name:   "wraparound, 0 lost, late arrival",
			pushes: run(65533, cat(span(0, 2), span(4, 8), []int{3})...),
			plan:   planOf(decodes(0, 2), "f4", decodes(4, 8)),
			want:   JitterStats{Played: 8, RecoveredFEC: 1, Late: 1},
		},
		{
			name:       "waiting then flush",
			pushes:     run(100, 0, 2, 3),
			wantCounts: []int{1, 0, 0},
			flush:      true,
			wantFlush:  3,
			plan:       planOf("d0", "f2", decodes(2, 3)),
			want:       JitterStats{Played: 3, RecoveredFEC: 1},
		},
		{
			name:      "flush conceals gaps between held packets",
			pushes:    run(100, 0, 3, 5),
			flush:     true,
			wantFlush: 5,
			plan:      planOf("d0", "c2", "d3", "f5", "d5"),
			want:      JitterStats{Played: 3, Concealed: 2, RecoveredFEC: 1},
		},
		{
			name:      "flush of empty buffer",
			pushes:    run(100, 0, 1),
			flush:     true,
			wantFlush: 0,
			plan:      decodes(0, 1),
			want:      JitterStats{Played: 2},
		},
		{
			name:       "gap beyond MaxGap after outage",
			cfg:        JitterConfig{MaxGap: 5, Depth: -1},
			pushes:     run(100, 0, 1, 100, 101),
			wantCounts: []int{1, 1, 6, 1},
			plan:       planOf(decodes(0, 1), "c5", decodes(100, 101)),
			want:       JitterStats{Played: 4, Concealed: 5, Skipped: 93},
		},
		{
			name:       "default MaxGap 50",
			cfg:        JitterConfig{Depth: -1},
			pushes:     run(100, 0, 110),
			wantCounts: []int{1, 51},
			plan:       planOf("d0", "c50", "d110"),
			want:       JitterStats{Played: 2, Concealed: 50, Skipped: 59},
		},
		{
			name:   "MaxGap -1 skips gaps",
			cfg:    JitterConfig{MaxGap: -1, Depth: -1},
			pushes: run(100, 0, 2, 6),
			plan:   planOf("d0", "d2", "d6"),
			want:   JitterStats{Played: 3, Skipped: 4},
		},
		{
			name:   "invalid payload concealed",
			pushes: []push{{100, 0}, {101, -1}, {102, 2}, {103, 3}},
			plan:   planOf("d0", "c", "d2", "d3"),
			want:   JitterStats{Played: 3, Concealed: 1, Invalid: 1},
		},
		{
			name:   "first packet sets start; older one is late",
			pushes: run(100, 1, 0, 2, 3),
			plan:   decodes(1, 3),
			want:   JitterStats{Played: 3, Late: 1},
		},
		{
			name: "sender restarts its sequence far behind",
			pushes: append(run(5000, 0, 1, 3),
				push{200, 4}, push{201, 5}, push{199, 6}),
			wantCounts: []int{1, 1, 0, 3, 1, 0},
			plan:       planOf(decodes(0, 1), "f3", decodes(3, 5)),
			want:       JitterStats{Played: 5, RecoveredFEC: 1, Resyncs: 1, Late: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jb := NewJitterBuffer(newDecoder(t), tt.cfg)
			var got [][]int16
			var counts []int
			for _, p := range tt.pushes {
				payload := []byte{0xff} // garbage
				if p.pkt >= 0 {
					payload = append([]byte(nil), pkts[p.pkt]...)
				}
				out, err := jb.Push(p.seq, payload)
				if err != nil {
					t.Fatalf("Push(%d): %v", p.seq, err)
				}
				clear(payload) // the buffer must have copied it
				counts = append(counts, len(out))
				got = append(got, out...)
			}
			if tt.wantCounts != nil && !slices.Equal(counts, tt.wantCounts) {
				t.Errorf("frames per push = %v, want %v", counts, tt.wantCounts)
			}
			if tt.flush {
				out, err := jb.Flush()
				if err != nil {
					t.Fatal(err)
				}
				if len(out) != tt.wantFlush {
					t.Errorf("Flush = %d frames, want %d", len(out), tt.wantFlush)
				}
				got = append(got, out...)
				if jb.Held() != 0 {
					t.Errorf("Held after Flush = %d, want 0", jb.Held())
				}
			}
			want := expected(t, pkts, tt.plan)
			if len(got) != len(want) {
				t.Fatalf("got %d frames, want %d", len(got), len(want))
			}
			for i := range want {
				if len(got[i]) != FrameSamples {
					t.Fatalf("frame %d: %d samples, want %d", i, len(got[i]), FrameSamples)
				}
				if !slices.Equal(got[i], want[i]) {
					t.Errorf("frame %d differs from plan %q", i, tt.plan)
					break
				}
			}
			if st := jb.Stats(); st != tt.want {
				t.Errorf("Stats = %+v, want %+v", st, tt.want)
			}
		})
	}
}

func TestJitterBufferOwnDecoder(t *testing.T) {
	_, pkts := speechPackets(t, 1, 200*time.Millisecond)
	jb := NewJitterBuffer(nil, JitterConfig{})
	for i, p := range pkts {
		out, err := jb.Push(uint16(i), p)
		if err != nil || len(out) != 1 {
			t.Fatalf("Push(%d) = %d frames, %v", i, len(out), err)
		}
	}
}

func TestJitterBufferContinuesAfterFlush(t *testing.T) {
	_, pkts := speechPackets(t, 1, 200*time.Millisecond)
	jb := NewJitterBuffer(newDecoder(t), JitterConfig{})
	for _, k := range []int{0, 2} {
		if _, err := jb.Push(uint16(k), pkts[k]); err != nil {
			t.Fatal(err)
		}
	}
	if out, _ := jb.Flush(); len(out) != 2 {
		t.Fatalf("Flush = %d frames, want 2", len(out))
	}
	if out, _ := jb.Push(3, pkts[3]); len(out) != 1 {
		t.Errorf("Push(3) after Flush = %d frames, want 1", len(out))
	}
	if out, _ := jb.Push(1, pkts[1]); len(out) != 0 || jb.Stats().Late != 1 {
		t.Errorf("Push(1) after Flush = %d frames, Late %d; want 0, 1", len(out), jb.Stats().Late)
	}
}

// TestJitterBufferFillsWhatTheSenderDidNotSend: a call on hold sends one
// packet without audio every 200 ms, its RTP timestamps following the time.
// The buffer's output keeps time (a frame for every 20 ms of the sender's
// clock), the hold is comfort noise, nothing counts as lost or concealed, and
// a heartbeat lost on hold is filled with comfort noise, not PLC of the
// speech before the hold.
func TestJitterBufferFillsWhatTheSenderDidNotSend(t *testing.T) {
	_, pkts := speechPackets(t, 1, time.Second)
	const beat = 10 // frames between heartbeats
	type pkt struct {
		seq     uint16
		ts      uint32
		payload []byte
	}
	var in []pkt
	seq, ts := uint16(65530), uint32(1<<32-5*FrameSamples) // both wrap
	add := func(p []byte, frames int) {
		in = append(in, pkt{seq, ts, p})
		seq++
		ts += uint32(frames * FrameSamples)
	}
	for _, p := range pkts[:20] {
		add(p, 1)
	}
	holdFrom := len(in)
	for range 10 {
		add(EmptyPacket(), beat)
	}
	holdTo := 20 + 10*beat // in frames
	for _, p := range pkts[20:40] {
		add(p, 1)
	}
	wantFrames := 20 + 10*beat + 20

	for _, lose := range []int{-1, holdFrom + 4} {
		t.Run(fmt.Sprintf("lose %d", lose), func(t *testing.T) {
			jb := NewJitterBuffer(newDecoder(t), JitterConfig{})
			var out [][]int16
			for i, p := range in {
				if i == lose {
					continue
				}
				f, err := jb.PushRTP(p.seq, p.ts, p.payload)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, f...)
			}
			f, err := jb.Flush()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, f...)
			st := jb.Stats()
			if len(out) != wantFrames {
				t.Fatalf("%d frames out, want %d (%+v)", len(out), wantFrames, st)
			}
			if st.Played != 40 || st.Skipped != 0 || st.Invalid != 0 {
				t.Errorf("stats %+v: want 40 played, nothing skipped or invalid", st)
			}
			wantEmpty, wantConcealed := uint64(10), uint64(0)
			if lose >= 0 {
				wantEmpty, wantConcealed = 9, 1
			}
			if st.Empty != wantEmpty || st.Concealed != wantConcealed || st.Filled != uint64(10*beat)-wantConcealed {
				t.Errorf("stats %+v: want %d empty, %d concealed, %d filled", st, wantEmpty, wantConcealed, uint64(10*beat)-wantConcealed)
			}
			// The hold: quiet comfort noise throughout, not the speech
			// before it extrapolated.
			hold := concat(out[20:holdTo])
			if lvl := 20 * math.Log10(rms(hold)/32768+1e-12); lvl > -50 || lvl < -75 {
				t.Errorf("the hold came out at %.1f dBFS, want comfort noise (about -60)", lvl)
			}
			for i := 20; i < holdTo; i++ {
				if lvl := 20 * math.Log10(rms(out[i])/32768+1e-12); lvl > -45 {
					t.Errorf("frame %d of the hold at %.1f dBFS", i, lvl)
				}
			}
		})
	}

	// Without timestamps (Push), a packet without audio is one frame of
	// comfort noise.
	jb := NewJitterBuffer(newDecoder(t), JitterConfig{})
	out, err := jb.Push(7, EmptyPacket())
	if err != nil || len(out) != 1 || jb.Stats().Empty != 1 {
		t.Fatalf("Push(empty) = %d frames, %v, stats %+v; want 1 frame of comfort noise", len(out), err, jb.Stats())
	}
	// A timestamp jump longer than MaxGap fills MaxGap frames.
	if out, _ = jb.PushRTP(8, 0, pkts[0]); len(out) != 1 {
		t.Fatalf("%d frames, want 1", len(out))
	}
	out, _ = jb.PushRTP(9, 100*FrameSamples, pkts[1])
	if st := jb.Stats(); len(out) != DefaultMaxGap+1 || st.Skipped != 99-DefaultMaxGap {
		t.Errorf("a jump of 100 frames: %d frames out, %d skipped; want %d and %d", len(out), st.Skipped, DefaultMaxGap+1, 99-DefaultMaxGap)
	}
}

func TestEmptyPacket(t *testing.T) {
	p := EmptyPacket()
	if !IsEmpty(p) || checkPacket(p) != nil {
		t.Fatalf("EmptyPacket() = %x: empty %v, %v", p, IsEmpty(p), checkPacket(p))
	}
	_, pkts := speechPackets(t, 1, time.Second)
	for _, q := range pkts {
		if IsEmpty(q) {
			t.Fatalf("an encoded frame %x counts as empty", q)
		}
	}
}
