package codec

import "math"

// ComfortNoiseLevel is the RMS level of ComfortNoise output in dBFS.
const ComfortNoiseLevel = -60.0

// Pink-noise filter (Paul Kellet's "economy" three-pole approximation of a
// -3 dB/octave slope): three one-pole low-passes plus a direct path.
const (
	pinkPole0, pinkPole1, pinkPole2 = 0.99765, 0.96300, 0.57000
	pinkGain0, pinkGain1, pinkGain2 = 0.0990460, 0.2965164, 1.0526913
	pinkDirect                      = 0.1848
)

// pinkFilter returns the filter's poles and gains.
func pinkFilter() (poles, gains [3]float64) {
	return [3]float64{pinkPole0, pinkPole1, pinkPole2}, [3]float64{pinkGain0, pinkGain1, pinkGain2}
}

// ComfortNoise produces low-level pink noise (about -60 dBFS RMS) for
// filling silence, e.g. while no packets arrive, so the line does not sound
// dead. Output is deterministic for a given seed. A ComfortNoise is not safe
// for concurrent use.
type ComfortNoise struct {
	rng   uint64
	state [3]float64
	scale float64
}

// NewComfortNoise returns a generator seeded with seed.
func NewComfortNoise(seed uint64) *ComfortNoise {
	c := &ComfortNoise{rng: seed}
	// Output variance of the pink filter for unit-variance white input:
	// sum over n of h[n]^2, with h[n] = d*delta[n] + sum_i g_i*p_i^n.
	pinkPoles, pinkGains := pinkFilter()
	d := pinkDirect
	energy := d * d
	for i := range pinkPoles {
		energy += 2 * d * pinkGains[i]
		for j := range pinkPoles {
			energy += pinkGains[i] * pinkGains[j] / (1 - pinkPoles[i]*pinkPoles[j])
		}
	}
	const whiteVar = 1.0 / 3 // uniform in [-1, 1)
	target := 32768 * math.Pow(10, ComfortNoiseLevel/20)
	c.scale = target / math.Sqrt(energy*whiteVar)
	// Let the slowest pole settle so the first frame is at full level.
	for i := 0; i < 2*FrameSamples; i++ {
		c.next()
	}
	return c
}

// splitmix64 step, mapped to a uniform float in [-1, 1).
func (c *ComfortNoise) white() float64 {
	c.rng += 0x9e3779b97f4a7c15
	z := c.rng
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>11)/(1<<52) - 1
}

func (c *ComfortNoise) next() float64 {
	w := c.white()
	out := pinkDirect * w
	pinkPoles, pinkGains := pinkFilter()
	for i := range c.state {
		c.state[i] = pinkPoles[i]*c.state[i] + pinkGains[i]*w
		out += c.state[i]
	}
	return out * c.scale
}

// Frame returns the next FrameSamples samples of noise (a fresh slice).
func (c *ComfortNoise) Frame() []int16 {
	out := make([]int16, FrameSamples)
	for i := range out {
		out[i] = clamp16(math.Round(c.next()))
	}
	return out
}

// clamp16 converts to int16 with saturation.
func clamp16(v float64) int16 {
	if v > math.MaxInt16 {
		return math.MaxInt16
	}
	if v < math.MinInt16 {
		return math.MinInt16
	}
	return int16(v)
}
