// Package audiotest makes test signals and measures received audio for
// tests across Parley (codec, client, CLI end-to-end tests).
//
// Everything is 48 kHz mono int16, like the codec package. [Speech] is a
// deterministic, non-periodic speech-like signal, so that a test can tell
// "the right audio arrived, with this delay" ([MatchEnvelope],
// [Correlate]) from "some audio arrived"; [RMSdB] and [Envelope] measure
// levels.
package audiotest

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// SampleRate of every signal in this package, in Hz.
const SampleRate = 48000

// EnvelopeWindow is the window MatchEnvelope uses.
const EnvelopeWindow = 10 * time.Millisecond

// SilenceDB is what RMSdB returns for digital silence or empty input.
const SilenceDB = -120.0

// CorrelateMaxRef is how much of the reference Correlate compares (its
// beginning), which bounds its work.
const CorrelateMaxRef = 4 * time.Second

// samples converts a duration to a sample count at 48 kHz (0 if negative).
func samples(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int(int64(d/time.Microsecond) * SampleRate / 1e6)
}

// duration converts a sample count at 48 kHz to a duration.
func duration(n int) time.Duration {
	return time.Duration(int64(n) * int64(time.Second) / SampleRate)
}

// rng is splitmix64.
type rng struct{ s uint64 }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float returns a uniform value in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// between returns a uniform value in [lo, hi).
func (r *rng) between(lo, hi float64) float64 { return lo + (hi-lo)*r.float() }

// noise returns a uniform value in [-1, 1).
func (r *rng) noise() float64 { return 2*r.float() - 1 }

// resonator is a two-pole band-pass section with unity gain at DC
// (Klatt-style); its centre and bandwidth may glide.
type resonator struct{ a, b, c, y1, y2 float64 }

func (f *resonator) set(freq, bw float64) {
	t := 1.0 / SampleRate
	f.c = -math.Exp(-2 * math.Pi * bw * t)
	f.b = 2 * math.Exp(-math.Pi*bw*t) * math.Cos(2*math.Pi*freq*t)
	f.a = 1 - f.b - f.c
}

func (f *resonator) step(x float64) float64 {
	y := f.a*x + f.b*f.y1 + f.c*f.y2
	f.y2, f.y1 = f.y1, y
	return y
}

// Speech returns d of a speech-like signal at 48 kHz mono, determined by
// seed. It is a sequence of "syllables" 80-300 ms long separated by gaps of
// 20-150 ms. About three in four syllables are voiced: a glottal pulse train
// whose pitch wanders between 100 and 250 Hz, shaped by three gliding
// formant resonances (F1 300-850 Hz, F2 900-2400 Hz, F3 2500-3300 Hz); the
// rest are unvoiced noise bursts resonating at 2.5-6 kHz. Syllable levels
// and envelopes vary at random. The whole signal is scaled to a peak of
// -6 dBFS. It is not periodic: no two of its windows correlate like those
// of a repeating signal.
func Speech(seed uint64, d time.Duration) []int16 {
	n := samples(d)
	buf := make([]float64, n)
	r := &rng{s: seed}
	pos := samples(time.Duration(r.between(20, 150) * float64(time.Millisecond)))
	for pos < n {
		length := samples(time.Duration(r.between(80, 300) * float64(time.Millisecond)))
		end := min(pos+length, n)
		if r.float() < 0.75 {
			voiced(r, buf[pos:end], length)
		} else {
			unvoiced(r, buf[pos:end], length)
		}
		pos += length + samples(time.Duration(r.between(20, 150)*float64(time.Millisecond)))
	}
	var peak float64
	for _, v := range buf {
		peak = max(peak, math.Abs(v))
	}
	out := make([]int16, n)
	if peak == 0 {
		return out
	}
	scale := 0.5 * math.MaxInt16 / peak // -6 dBFS
	for i, v := range buf {
		out[i] = int16(math.Round(v * scale))
	}
	return out
}

// envelopeAt is a syllable's amplitude at sample i of length: a raised
// cosine attack and decay around a slowly modulated plateau.
func envelopeAt(i, length, attack, decay int, mod, modFreq float64) float64 {
	e := 1.0
	if i < attack {
		e = 0.5 - 0.5*math.Cos(math.Pi*float64(i)/float64(attack))
	} else if j := length - i; j < decay {
		e = 0.5 - 0.5*math.Cos(math.Pi*float64(j)/float64(decay))
	}
	return e * (1 - mod + mod*math.Cos(2*math.Pi*modFreq*float64(i)/SampleRate))
}

// addScaled mixes seg into dst at the given RMS level.
func addScaled(dst, seg []float64, level float64) {
	var sum float64
	for _, v := range seg {
		sum += v * v
	}
	if sum == 0 {
		return
	}
	g := level / math.Sqrt(sum/float64(len(seg)))
	for i := range dst {
		dst[i] += g * seg[i]
	}
}

func voiced(r *rng, dst []float64, length int) {
	f0a, f0b := r.between(100, 250), r.between(100, 250)
	f1a, f1b := r.between(300, 850), r.between(300, 850)
	f2a, f2b := r.between(900, 2400), r.between(900, 2400)
	f3 := r.between(2500, 3300)
	attack := samples(time.Duration(r.between(10, 40) * float64(time.Millisecond)))
	decay := samples(time.Duration(r.between(20, 70) * float64(time.Millisecond)))
	mod, modFreq := r.between(0, 0.4), r.between(2, 7)
	level := r.between(0.3, 1)

	var f1, f2, f3r resonator
	var tilt, phase float64
	seg := make([]float64, len(dst))
	for i := range seg {
		t := float64(i) / float64(length)
		if i%48 == 0 {
			f1.set(f1a+(f1b-f1a)*t, 90)
			f2.set(f2a+(f2b-f2a)*t, 130)
			f3r.set(f3, 220)
		}
		f0 := f0a + (f0b-f0a)*t
		phase += f0 / SampleRate
		var x float64
		if phase >= 1 {
			// A new glottal pulse, with a little period jitter.
			phase -= 1 + 0.03*r.noise()
			x = 1
		}
		x += 0.02 * r.noise() // aspiration
		tilt = 0.9*tilt + x
		y := f3r.step(f2.step(f1.step(tilt)))
		seg[i] = y * envelopeAt(i, length, attack, decay, mod, modFreq)
	}
	addScaled(dst, seg, level)
}

func unvoiced(r *rng, dst []float64, length int) {
	fc, bw := r.between(2500, 6000), r.between(1000, 2000)
	attack := samples(time.Duration(r.between(5, 30) * float64(time.Millisecond)))
	decay := samples(time.Duration(r.between(10, 50) * float64(time.Millisecond)))
	level := r.between(0.08, 0.3)
	var f resonator
	f.set(fc, bw)
	seg := make([]float64, len(dst))
	for i := range seg {
		seg[i] = (f.step(r.noise()) - 0.6*f.y2) * envelopeAt(i, length, attack, decay, 0, 0)
	}
	addScaled(dst, seg, level)
}

// Silence returns d of digital silence at 48 kHz.
func Silence(d time.Duration) []int16 {
	return make([]int16, samples(d))
}

// Envelope returns the RMS of pcm in consecutive windows of the given
// length, in linear units (full scale = 32768). A final partial window is
// left out. It returns nil if window is shorter than one sample.
func Envelope(pcm []int16, window time.Duration) []float64 {
	w := samples(window)
	if w < 1 {
		return nil
	}
	env := make([]float64, len(pcm)/w)
	for i := range env {
		var sum float64
		for _, s := range pcm[i*w : (i+1)*w] {
			sum += float64(s) * float64(s)
		}
		env[i] = math.Sqrt(sum / float64(w))
	}
	return env
}

// RMSdB returns the RMS level of pcm in dBFS (a full-scale square wave is
// 0 dBFS), or SilenceDB (-120) for silence or empty input.
func RMSdB(pcm []int16) float64 {
	if len(pcm) == 0 {
		return SilenceDB
	}
	var sum float64
	for _, s := range pcm {
		sum += float64(s) * float64(s)
	}
	rms := math.Sqrt(sum / float64(len(pcm)))
	if rms == 0 {
		return SilenceDB
	}
	return max(SilenceDB, 20*math.Log10(rms/32768))
}

// pearson returns the Pearson correlation of x and y (same length), 0 if
// either is constant.
func pearson(x, y []float64) float64 {
	n := float64(len(x))
	if n == 0 {
		return 0
	}
	var sx, sy, sxx, syy, sxy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
		sxx += x[i] * x[i]
		syy += y[i] * y[i]
		sxy += x[i] * y[i]
	}
	vx := sxx - sx*sx/n
	vy := syy - sy*sy/n
	if vx <= 0 || vy <= 0 {
		return 0
	}
	return (sxy - sx*sy/n) / math.Sqrt(vx*vy)
}

// MatchEnvelope finds where ref's energy envelope best matches rec's, for
// a recording lagging behind the reference by 0..maxLag. Envelopes are RMS
// over 10 ms windows; candidate lags are tried every 1 ms and compared over
// the reference's whole length (a recording that ends early counts as
// silence from there). It returns the best Pearson correlation and its lag;
// (0, 0) if ref is shorter than one window.
func MatchEnvelope(ref, rec []int16, maxLag time.Duration) (corr float64, lag time.Duration) {
	w := samples(EnvelopeWindow)
	x := Envelope(ref, EnvelopeWindow)
	if len(x) == 0 {
		return 0, 0
	}
	// Prefix sums of squares make each window of rec O(1) at any offset.
	cum := make([]float64, len(rec)+1)
	for i, s := range rec {
		cum[i+1] = cum[i] + float64(s)*float64(s)
	}
	energy := func(from, to int) float64 {
		from, to = min(from, len(rec)), min(to, len(rec))
		return cum[to] - cum[from]
	}
	step := samples(time.Millisecond)
	y := make([]float64, len(x))
	best, bestLag := math.Inf(-1), 0
	for off := 0; off <= samples(maxLag); off += step {
		for i := range y {
			y[i] = math.Sqrt(energy(off+i*w, off+(i+1)*w) / float64(w))
		}
		if c := pearson(x, y); c > best {
			best, bestLag = c, off
		}
	}
	return best, duration(bestLag)
}

// Correlate returns the best normalized cross-correlation between the raw
// waveforms of ref and rec, for rec lagging ref by 0..maxLag, and that
// lag. Only the first CorrelateMaxRef (4 s) of ref is compared, to bound
// the work; rec past its end counts as silence. The search runs on a
// pyramid: every lag on 16x box-decimated copies, then the best few peaks
// are refined at 4x and finally per sample. A value near 1 means rec is
// ref's waveform (not merely noise with a similar envelope). It returns
// (0, 0) if either signal is silent.
func Correlate(ref, rec []int16, maxLag time.Duration) (corr float64, lag time.Duration) {
	seg := ref[:min(len(ref), samples(CorrelateMaxRef))]
	maxL := max(0, samples(maxLag))
	rec = rec[:min(len(rec), maxL+len(seg))]

	const keep = 4 // peaks carried from one level to the next
	// cands holds the surviving lags in units of 4 samples.
	var cands []int
	for _, f := range []int{16, 4, 1} {
		x, y := decimate(seg, f), newCorrSignal(decimate(rec, f))
		var sxx float64
		for _, v := range x {
			sxx += v * v
		}
		hi := maxL / f
		var lags []int
		if cands == nil {
			for l := 0; l <= hi; l++ {
				lags = append(lags, l)
			}
		} else {
			seen := make(map[int]bool)
			for _, c := range cands {
				for l := max(0, c*4/f-8); l <= min(hi, c*4/f+8); l++ {
					if !seen[l] {
						seen[l] = true
						lags = append(lags, l)
					}
				}
			}
		}
		scores := make([]float64, len(lags))
		for i, l := range lags {
			scores[i] = y.corr(x, sxx, l)
		}
		cands = cands[:0]
		if f == 1 {
			best, bestLag := 0.0, 0
			for i, c := range scores {
				if c > best {
					best, bestLag = c, lags[i]
				}
			}
			return best, duration(bestLag)
		}
		// Keep the best local maxima.
		type peak struct {
			c   float64
			lag int
		}
		var peaks []peak
		for i, c := range scores {
			if (i == 0 || c >= scores[i-1]) && (i == len(scores)-1 || c >= scores[i+1]) {
				peaks = append(peaks, peak{c, lags[i]})
			}
		}
		slices.SortFunc(peaks, func(a, b peak) int { return cmp.Compare(b.c, a.c) })
		for i := 0; i < len(peaks) && i < keep; i++ {
			cands = append(cands, peaks[i].lag*f/4)
		}
	}
	return 0, 0
}

// corrSignal is a signal with prefix sums of squares for O(1) energy.
type corrSignal struct {
	v   []float64
	cum []float64
}

func newCorrSignal(v []float64) corrSignal {
	cum := make([]float64, len(v)+1)
	for i, s := range v {
		cum[i+1] = cum[i] + s*s
	}
	return corrSignal{v, cum}
}

// corr is sum(x[i]*y[i+lag]) / sqrt(sxx * sum(y[lag:lag+len(x)]^2)), with
// y zero past its end; 0 if either part is silent.
func (y corrSignal) corr(x []float64, sxx float64, lag int) float64 {
	if lag >= len(y.v) || sxx == 0 {
		return 0
	}
	end := min(len(y.v), lag+len(x))
	syy := y.cum[end] - y.cum[lag]
	if syy <= 0 {
		return 0
	}
	var sxy float64
	for i, v := range y.v[lag:end] {
		sxy += x[i] * v
	}
	return sxy / math.Sqrt(sxx*syy)
}

// decimate averages groups of n samples.
func decimate(pcm []int16, n int) []float64 {
	out := make([]float64, len(pcm)/n)
	for i := range out {
		var s float64
		for _, v := range pcm[i*n : (i+1)*n] {
			s += float64(v)
		}
		out[i] = s / float64(n)
	}
	return out
}

func toFloat(pcm []int16) []float64 {
	out := make([]float64, len(pcm))
	for i, v := range pcm {
		out[i] = float64(v)
	}
	return out
}
