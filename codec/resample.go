package codec

import "math"

// Resampler design: a Kaiser-windowed sinc low-pass (48 zero crossings
// each side, beta 8) with its cut-off at 95% of the lower of the two
// Nyquist frequencies: flat (±0.1 dB) to 90% of it, about 80 dB down from
// 100% on, so nothing folds back. It runs as a polyphase filter, about 100
// multiply-adds per output sample when upsampling.
const (
	resampleZeroCrossings = 48
	resampleRolloff       = 0.95
	resampleKaiserBeta    = 8.0
	// resampleTableBudget caps the coefficient table (float64s). Rational
	// ratios whose exact polyphase table fits use it; others interpolate
	// linearly between finely spaced phases.
	resampleTableBudget = 1 << 18
)

// Resample converts mono int16 samples from rate from to rate to (both in
// Hz, both > 0) with a band-limited windowed-sinc interpolator, and returns
// floor(len(in)*to/from) samples. The filter is zero-phase (no delay);
// samples before and after in are taken as silence. If from == to it
// returns a copy; if either rate is not positive it returns nil.
func Resample(in []int16, from, to int) []int16 {
	if from <= 0 || to <= 0 {
		return nil
	}
	if from == to {
		return append([]int16{}, in...)
	}
	g := gcd(from, to)
	up, down := int64(to/g), int64(from/g) // output step = down/up input samples
	outLen := int(int64(len(in)) * int64(to) / int64(from))
	out := make([]int16, outLen)
	if outLen == 0 {
		return out
	}

	fc := resampleRolloff // cut-off relative to the input Nyquist frequency
	if to < from {
		fc *= float64(to) / float64(from)
	}
	half := resampleZeroCrossings / fc // kernel half-width in input samples
	k := int(math.Ceil(half))
	taps := 2 * k

	exact := up*int64(taps) <= resampleTableBudget
	phases := int(up)
	if !exact {
		phases = max(8, int(math.Ceil(512*fc)))
	}
	table := resampleTable(phases+1, taps, k, fc, half)

	var frac []float64
	if !exact {
		frac = make([]float64, taps)
	}
	for j := range out {
		num := int64(j) * down
		n := int(num / up)
		rem := num % up
		var coef []float64
		if exact {
			row := int(rem)
			coef = table[row*taps : (row+1)*taps]
		} else {
			pos := float64(rem) / float64(up) * float64(phases)
			p := int(pos)
			a := pos - float64(p)
			r0 := table[p*taps : (p+1)*taps]
			r1 := table[(p+1)*taps : (p+2)*taps]
			for i := range frac {
				frac[i] = r0[i] + a*(r1[i]-r0[i])
			}
			coef = frac
		}
		start := n - k + 1
		var acc float64
		if start >= 0 && start+taps <= len(in) {
			src := in[start : start+taps]
			for i, c := range coef {
				acc += c * float64(src[i])
			}
		} else {
			for i, c := range coef {
				if idx := start + i; idx >= 0 && idx < len(in) {
					acc += c * float64(in[idx])
				}
			}
		}
		out[j] = clamp16(math.Round(acc))
	}
	return out
}

// resampleTable returns rows x taps coefficients; row p holds the kernel
// for a fractional output position p/(rows-1) past input sample n, tap i
// weighting input n-k+1+i. Each row is normalized to unit DC gain.
func resampleTable(rows, taps, k int, fc, half float64) []float64 {
	table := make([]float64, rows*taps)
	i0beta := besselI0(resampleKaiserBeta)
	for p := 0; p < rows; p++ {
		f := float64(p) / float64(rows-1)
		row := table[p*taps : (p+1)*taps]
		var sum float64
		for i := range row {
			x := float64(i-k+1) - f
			if math.Abs(x) >= half {
				continue
			}
			r := x / half
			w := besselI0(resampleKaiserBeta*math.Sqrt(1-r*r)) / i0beta
			row[i] = fc * sinc(fc*x) * w
			sum += row[i]
		}
		if sum != 0 {
			for i := range row {
				row[i] /= sum
			}
		}
	}
	return table
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// besselI0 is the zeroth-order modified Bessel function of the first kind.
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 50; k++ {
		term *= (x / (2 * float64(k))) * (x / (2 * float64(k)))
		sum += term
		if term < sum*1e-12 {
			break
		}
	}
	return sum
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
