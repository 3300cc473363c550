package audiotest

import (
	"math"
	"slices"
	"testing"
	"time"
)

func TestSpeechDeterministicAndLevel(t *testing.T) {
	a := Speech(1, 3*time.Second)
	b := Speech(1, 3*time.Second)
	if !slices.Equal(a, b) {
		t.Fatal("Speech(1) differs between calls")
	}
	if got, want := len(a), 3*SampleRate; got != want {
		t.Fatalf("len = %d, want %d", got, want)
	}
	if slices.Equal(a, Speech(2, 3*time.Second)) {
		t.Fatal("different seeds gave the same signal")
	}
	var peak int
	for _, s := range a {
		peak = max(peak, int(math.Abs(float64(s))))
	}
	if got := 20 * math.Log10(float64(peak)/32768); got < -6.5 || got > -5.5 {
		t.Errorf("peak = %.2f dBFS, want about -6", got)
	}
	if got := RMSdB(a); got < -30 || got > -12 {
		t.Errorf("RMS = %.1f dBFS, want a speech-like -30..-12", got)
	}
}

func TestSpeechHasPausesAndSyllables(t *testing.T) {
	env := Envelope(Speech(7, 5*time.Second), 10*time.Millisecond)
	var quiet, loud int
	for _, e := range env {
		switch db := 20 * math.Log10(e/32768+1e-12); {
		case db < -60:
			quiet++
		case db > -35:
			loud++
		}
	}
	// Gaps of 20-150 ms between syllables of 80-300 ms.
	if frac := float64(quiet) / float64(len(env)); frac < 0.1 || frac > 0.5 {
		t.Errorf("quiet fraction = %.2f, want 0.1..0.5", frac)
	}
	if frac := float64(loud) / float64(len(env)); frac < 0.3 {
		t.Errorf("loud fraction = %.2f, want >= 0.3", frac)
	}
}

func TestSpeechNonPeriodic(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		env := Envelope(Speech(seed, 10*time.Second), 10*time.Millisecond)
		worst, worstLag := -1.0, 0
		for lag := 5; lag <= 100; lag++ { // 50 ms .. 1 s
			if c := pearson(env[:len(env)-lag], env[lag:]); c > worst {
				worst, worstLag = c, lag
			}
		}
		t.Logf("seed %d: worst envelope autocorrelation %.2f at %d ms", seed, worst, worstLag*10)
		if worst >= 0.6 {
			t.Errorf("seed %d: envelope autocorrelation %.2f at %d ms, want < 0.6", seed, worst, worstLag*10)
		}
	}
}

func TestSpeechPitchRange(t *testing.T) {
	// The spectrum of voiced speech peaks at its harmonics; check that the
	// strongest periodicity of a loud stretch lies in 100-250 Hz.
	pcm := Speech(4, 3*time.Second)
	env := Envelope(pcm, 40*time.Millisecond)
	w := samples(40 * time.Millisecond)
	var checked int
	for i, e := range env {
		if e < 2000 || checked >= 10 {
			continue
		}
		seg := toFloat(pcm[i*w : (i+1)*w])
		best, bestLag := -1.0, 0
		for lag := SampleRate / 300; lag <= SampleRate/80; lag++ {
			if c := pearson(seg[:len(seg)-lag], seg[lag:]); c > best {
				best, bestLag = c, lag
			}
		}
		if best < 0.5 {
			continue // unvoiced or a transition
		}
		checked++
		if f0 := float64(SampleRate) / float64(bestLag); f0 < 90 || f0 > 270 {
			t.Errorf("window %d: pitch %.0f Hz, want 100..250", i, f0)
		}
	}
	if checked < 5 {
		t.Errorf("only %d voiced windows found", checked)
	}
}

func TestSilenceAndRMSdB(t *testing.T) {
	full := make([]int16, 480)
	for i := range full {
		full[i] = 32767
		if i%2 == 1 {
			full[i] = -32768
		}
	}
	tests := []struct {
		name string
		pcm  []int16
		want float64
	}{
		{"silence", Silence(100 * time.Millisecond), SilenceDB},
		{"empty", nil, SilenceDB},
		{"full scale square", full, 0},
		{"half scale dc", slices.Repeat([]int16{16384}, 100), -6.02},
	}
	for _, tt := range tests {
		if got := RMSdB(tt.pcm); math.Abs(got-tt.want) > 0.05 {
			t.Errorf("%s: RMSdB = %.2f, want %.2f", tt.name, got, tt.want)
		}
	}
	if got, want := len(Silence(20*time.Millisecond)), 960; got != want {
		t.Errorf("len(Silence(20ms)) = %d, want %d", got, want)
	}
	if got := len(Silence(-time.Second)); got != 0 {
		t.Errorf("len(Silence(-1s)) = %d, want 0", got)
	}
}

func TestEnvelope(t *testing.T) {
	pcm := append(slices.Repeat([]int16{1000}, 480), slices.Repeat([]int16{-3000}, 500)...)
	got := Envelope(pcm, 10*time.Millisecond)
	want := []float64{1000, 3000}
	if len(got) != len(want) {
		t.Fatalf("Envelope = %v, want %v", got, want)
	}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-9 {
			t.Errorf("Envelope[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if got := Envelope(pcm, 0); got != nil {
		t.Errorf("Envelope(window 0) = %v, want nil", got)
	}
}

// delayed returns pcm preceded by d of silence.
func delayed(pcm []int16, d time.Duration) []int16 {
	return append(Silence(d), pcm...)
}

func TestMatchEnvelope(t *testing.T) {
	ref := Speech(1, 5*time.Second)
	noisy := delayed(ref, 300*time.Millisecond)
	r := &rng{s: 99}
	for i := range noisy {
		noisy[i] += int16(200 * r.noise()) // about -45 dBFS of noise
	}
	half := make([]int16, len(ref))
	for i, s := range ref {
		half[i] = s / 2
	}
	tests := []struct {
		name     string
		rec      []int16
		minCorr  float64
		maxCorr  float64
		wantLag  time.Duration
		checkLag bool
	}{
		{"same", ref, 0.999, 1.01, 0, true},
		{"shift 300ms", delayed(ref, 300*time.Millisecond), 0.99, 1.01, 300 * time.Millisecond, true},
		{"shift 1234ms", delayed(ref, 1234*time.Millisecond), 0.99, 1.01, 1234 * time.Millisecond, true},
		{"shift 300ms with noise", noisy, 0.95, 1.01, 300 * time.Millisecond, true},
		{"half level", half, 0.99, 1.01, 0, true},
		{"other seed", Speech(2, 7*time.Second), -1, 0.4, 0, false},
		{"silence", Silence(7 * time.Second), -1, 0.01, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			corr, lag := MatchEnvelope(ref, tt.rec, 2*time.Second)
			t.Logf("corr %.4f lag %v", corr, lag)
			if corr < tt.minCorr || corr > tt.maxCorr {
				t.Errorf("corr = %.3f, want %.2f..%.2f", corr, tt.minCorr, tt.maxCorr)
			}
			if tt.checkLag && (lag < tt.wantLag-time.Millisecond || lag > tt.wantLag+time.Millisecond) {
				t.Errorf("lag = %v, want %v", lag, tt.wantLag)
			}
		})
	}
}

func TestCorrelate(t *testing.T) {
	ref := Speech(3, 4*time.Second)
	// Noise with the reference's envelope: matches by energy, not waveform.
	r := &rng{s: 5}
	envNoise := make([]int16, len(ref)+samples(200*time.Millisecond))
	env := Envelope(ref, time.Millisecond)
	w := samples(time.Millisecond)
	for i := range env {
		for k := 0; k < w; k++ {
			envNoise[samples(200*time.Millisecond)+i*w+k] = int16(env[i] * math.Sqrt(3) * r.noise())
		}
	}
	tests := []struct {
		name     string
		rec      []int16
		minCorr  float64
		maxCorr  float64
		wantLag  time.Duration
		checkLag bool
	}{
		{"same", ref, 0.999, 1.01, 0, true},
		{"shift 200ms", delayed(ref, 200*time.Millisecond), 0.999, 1.01, 200 * time.Millisecond, true},
		{"shift 777 samples", append(make([]int16, 777), ref...), 0.999, 1.01, duration(777), true},
		{"other seed", Speech(4, 5*time.Second), -1, 0.3, 0, false},
		{"noise with same envelope", envNoise, -1, 0.3, 0, false},
		{"silence", Silence(5 * time.Second), 0, 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			corr, lag := Correlate(ref, tt.rec, time.Second)
			t.Logf("corr %.4f lag %v", corr, lag)
			if corr < tt.minCorr || corr > tt.maxCorr {
				t.Errorf("corr = %.3f, want %.2f..%.2f", corr, tt.minCorr, tt.maxCorr)
			}
			if tt.checkLag && lag != tt.wantLag {
				t.Errorf("lag = %v, want %v", lag, tt.wantLag)
			}
		})
	}
	// The envelope alone cannot tell the noise from the speech.
	if c, _ := MatchEnvelope(ref, envNoise, time.Second); c < 0.8 {
		t.Errorf("MatchEnvelope(noise with same envelope) = %.2f, want >= 0.8", c)
	}
}

func TestFindClicks(t *testing.T) {
	pcm, at := Clicks(37*time.Millisecond, 253*time.Millisecond, 3*time.Second)
	if len(at) != 12 {
		t.Fatalf("%d clicks in 3 s at 253 ms, want 12", len(at))
	}
	// Delayed by 1234 samples, quieter, with noise.
	r := &rng{s: 3}
	rec := make([]int16, len(pcm)+2000)
	for i, v := range pcm {
		rec[i+1234] = int16(0.3*float64(v) + 30*r.noise())
	}
	got := FindClicks(rec, 100*time.Millisecond)
	if len(got) != len(at) {
		t.Fatalf("found %d clicks, want %d: %v", len(got), len(at), got)
	}
	for i := range got {
		if d := got[i] - at[i] - 1234; d < -2 || d > 2 {
			t.Errorf("click %d found at %d, want %d", i, got[i], at[i]+1234)
		}
	}
	if got := FindClicks(Speech(1, 2*time.Second), 100*time.Millisecond); len(got) > 2 {
		t.Errorf("found %d clicks in speech, want (almost) none", len(got))
	}
	if got := FindClicks(Silence(time.Second), 100*time.Millisecond); len(got) != 0 {
		t.Errorf("found %d clicks in silence", len(got))
	}
}
