package codec

import (
	"math"
	"slices"
	"testing"
)

func TestResampleLengthAndEdgeCases(t *testing.T) {
	in := sine(440, 10000, 44100, 48000)
	tests := []struct {
		name     string
		in       []int16
		from, to int
		wantLen  int
		wantNil  bool
	}{
		{"44.1k->48k", in[:44100], 44100, 48000, 48000, false},
		{"48k->44.1k", in[:48000], 48000, 44100, 44100, false},
		{"8k->48k", in[:8000], 8000, 48000, 48000, false},
		{"48k->8k", in[:4801], 48000, 8000, 800, false},
		{"odd rate", in[:44056], 44056, 48000, 48000, false},
		{"same rate", in[:100], 48000, 48000, 100, false},
		{"empty", nil, 8000, 48000, 0, false},
		{"zero from", in, 0, 48000, 0, true},
		{"negative to", in, 44100, -1, 0, true},
	}
	for _, tt := range tests {
		got := Resample(tt.in, tt.from, tt.to)
		if (got == nil) != tt.wantNil || len(got) != tt.wantLen {
			t.Errorf("%s: len %d (nil %v), want %d (nil %v)", tt.name, len(got), got == nil, tt.wantLen, tt.wantNil)
		}
	}
	same := Resample(in[:100], 48000, 48000)
	same[0]++
	if same[0] == in[0] {
		t.Error("Resample at the same rate must return a copy")
	}
}

func TestResampleDC(t *testing.T) {
	for _, r := range [][2]int{{44100, 48000}, {48000, 44100}, {8000, 48000}, {48000, 8000}, {44056, 48000}, {192000, 48000}} {
		in := slices.Repeat([]int16{12345}, r[0]/10)
		out := Resample(in, r[0], r[1])
		for i := len(out) / 4; i < len(out)*3/4; i++ {
			if d := int(out[i]) - 12345; d < -1 || d > 1 {
				t.Errorf("%d->%d: DC sample %d = %d, want 12345", r[0], r[1], i, out[i])
				break
			}
		}
	}
}

func TestResampleTones(t *testing.T) {
	tests := []struct {
		from, to int
		freq     float64
	}{
		{44100, 48000, 1000},
		{44100, 48000, 15000},
		{48000, 44100, 1000},
		{8000, 48000, 1000},
		{8000, 48000, 3500},
		{16000, 48000, 7000},
		{48000, 8000, 3000},
		{44056, 48000, 1000},
		{96000, 48000, 20000},
	}
	for _, tt := range tests {
		in := sine(tt.freq, 10000, tt.from, tt.from/2)
		out := Resample(in, tt.from, tt.to)
		mid := out[len(out)/10 : len(out)*9/10]
		if r := goertzelRatio(mid, tt.freq, tt.to); r < 0.999 {
			t.Errorf("%d->%d %v Hz: %.5f of the energy at the tone, want > 0.999", tt.from, tt.to, tt.freq, r)
		}
		if db := 20 * math.Log10(rms(mid)/(10000/math.Sqrt2)); math.Abs(db) > 0.1 {
			t.Errorf("%d->%d %v Hz: level off by %.3f dB", tt.from, tt.to, tt.freq, db)
		}
	}
}

func TestResampleRejectsAliases(t *testing.T) {
	// Tones above the output's Nyquist frequency must be filtered out,
	// not folded back.
	tests := []struct {
		from, to int
		freq     float64
	}{
		{48000, 8000, 6000},
		{48000, 44100, 23000},
		{192000, 48000, 30000},
	}
	for _, tt := range tests {
		in := sine(tt.freq, 10000, tt.from, tt.from/2)
		out := Resample(in, tt.from, tt.to)
		mid := out[len(out)/10 : len(out)*9/10]
		if db := 20 * math.Log10(rms(mid)/(10000/math.Sqrt2)+1e-9); db > -60 {
			t.Errorf("%d->%d %v Hz: alias at %.1f dB, want < -60", tt.from, tt.to, tt.freq, db)
		}
	}
}

func BenchmarkResample44100(b *testing.B) {
	in := sine(1000, 10000, 44100, 44100)
	b.SetBytes(int64(2 * len(in)))
	for b.Loop() {
		Resample(in, 44100, 48000)
	}
}
