package codec

import (
	"math"
	"testing"
	"time"

	"github.com/parley/parley/internal/audiotest"
)

// sine returns n samples of a sine of freq Hz at rate, peak amp.
func sine(freq float64, amp float64, rate, n int) []int16 {
	out := make([]int16, n)
	for i := range out {
		out[i] = int16(math.Round(amp * math.Sin(2*math.Pi*freq*float64(i)/float64(rate))))
	}
	return out
}

// goertzelRatio returns the fraction of pcm's energy at freq (Hz, at rate).
func goertzelRatio(pcm []int16, freq float64, rate int) float64 {
	w := 2 * math.Pi * freq / float64(rate)
	coeff := 2 * math.Cos(w)
	var s1, s2, total float64
	for _, v := range pcm {
		x := float64(v)
		s1, s2 = x+coeff*s1-s2, s1
		total += x * x
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2
	if total == 0 {
		return 0
	}
	// A pure tone of energy E has Goertzel power E*N/2.
	return power / (total * float64(len(pcm)) / 2)
}

// zeroCrossingFreq estimates a tone's frequency from its zero crossings.
func zeroCrossingFreq(pcm []int16, rate int) float64 {
	var n int
	for i := 1; i < len(pcm); i++ {
		if (pcm[i-1] < 0) != (pcm[i] < 0) {
			n++
		}
	}
	return float64(n) / 2 / (float64(len(pcm)) / float64(rate))
}

func rms(pcm []int16) float64 {
	var s float64
	for _, v := range pcm {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(pcm)))
}

// frames splits pcm into whole 20 ms frames.
func frames(pcm []int16) [][]int16 {
	var out [][]int16
	for i := 0; i+FrameSamples <= len(pcm); i += FrameSamples {
		out = append(out, pcm[i:i+FrameSamples])
	}
	return out
}

// speechPackets encodes d of audiotest.Speech(seed) with the default
// encoder and returns the frames and their packets.
func speechPackets(t testing.TB, seed uint64, d time.Duration) ([][]int16, [][]byte) {
	t.Helper()
	enc, err := NewEncoder(EncoderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	fr := frames(audiotest.Speech(seed, d))
	pkts := make([][]byte, len(fr))
	for i, f := range fr {
		if pkts[i], err = enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	return fr, pkts
}

func newDecoder(t testing.TB) *Decoder {
	t.Helper()
	d, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func concat(frames [][]int16) []int16 {
	var out []int16
	for _, f := range frames {
		out = append(out, f...)
	}
	return out
}
