package audiotest

import (
	"math"
	"time"
)

// ClickLength is the length of one click of [Clicks]: 10 ms.
const ClickLength = 480

// click is one click: a Hann-windowed 10 ms burst of 1 kHz, peak 1. Short
// enough to time to a millisecond, long and tonal enough that a speech codec
// at a low bit rate keeps its shape.
func click() []float64 {
	c := make([]float64, ClickLength)
	for i := range c {
		w := 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(ClickLength-1))
		c[i] = w * math.Sin(2*math.Pi*1000*float64(i)/SampleRate)
	}
	return c
}

// Clicks returns d of a click train, a click (peak -6 dBFS) starting every
// period from the first one at first, digital silence between, and the
// sample index at which each click starts. For latency measurements: play
// it at one end, find the clicks in the other end's recording with
// [FindClicks].
func Clicks(first, period, d time.Duration) (pcm []int16, at []int) {
	pcm = make([]int16, samples(d))
	c := click()
	for t := first; samples(t)+ClickLength <= len(pcm); t += period {
		s := samples(t)
		for i, v := range c {
			pcm[s+i] = int16(math.Round(v * 0.5 * math.MaxInt16))
		}
		at = append(at, s)
	}
	return pcm, at
}

// FindClicks returns where clicks of [Clicks] start in rec, in order: the
// positions where rec's normalized correlation with a click peaks above
// 0.7 (and rec is louder than -40 dBFS there), at least minGap apart.
func FindClicks(rec []int16, minGap time.Duration) []int {
	c := click()
	var cc float64
	for _, v := range c {
		cc += v * v
	}
	x := toFloat(rec)
	cum := make([]float64, len(x)+1)
	for i, v := range x {
		cum[i+1] = cum[i] + v*v
	}
	floor := float64(ClickLength) * math.Pow(32768*math.Pow(10, -40.0/20), 2)
	gap := max(1, samples(minGap))
	var found []int
	bestAt, best := -1, 0.0
	for s := 0; s+ClickLength <= len(x); s++ {
		e := cum[s+ClickLength] - cum[s]
		var r float64
		if e > floor {
			var sxy float64
			for i, v := range c {
				sxy += v * x[s+i]
			}
			r = sxy / math.Sqrt(cc*e)
		}
		if bestAt >= 0 && s-bestAt >= gap {
			// The peak being followed is the best within minGap after it.
			found = append(found, bestAt)
			bestAt, best = -1, 0
		}
		if r > 0.7 && r > best {
			bestAt, best = s, r
		}
	}
	if bestAt >= 0 {
		found = append(found, bestAt)
	}
	return found
}
