package codec

import (
	"testing"
	"time"
)

// Benchmarks run on 10 s of audiotest.Speech, cycled, one 20 ms frame (or
// packet) per op. A 20 ms frame must take well under 20 ms.

func BenchmarkEncode(b *testing.B) {
	fr, _ := speechPackets(b, 1, 10*time.Second)
	e, err := NewEncoder(EncoderConfig{})
	if err != nil {
		b.Fatal(err)
	}
	var i, total int
	for b.Loop() {
		p, err := e.Encode(fr[i%len(fr)])
		if err != nil {
			b.Fatal(err)
		}
		total += len(p)
		i++
	}
	b.ReportMetric(float64(total)/float64(i), "bytes/frame")
}

func BenchmarkDecode(b *testing.B) {
	_, pkts := speechPackets(b, 1, 10*time.Second)
	d := newDecoder(b)
	var i, total int
	for b.Loop() {
		p := pkts[i%len(pkts)]
		if _, err := d.Decode(p); err != nil {
			b.Fatal(err)
		}
		total += len(p)
		i++
	}
	b.ReportMetric(float64(total)/float64(i), "bytes/frame")
}

// BenchmarkJitterPush pushes packets with 2% loss and some reordering; each
// op is one Push, including decoding and concealment.
func BenchmarkJitterPush(b *testing.B) {
	_, pkts := speechPackets(b, 1, 10*time.Second)
	// One round: indices 0..n-1, every 50th lost, every 25th pair swapped.
	var order []int
	for k := 0; k < len(pkts); k++ {
		switch {
		case k%50 == 7:
			continue
		case k%25 == 11 && k+1 < len(pkts):
			order = append(order, k+1, k)
			k++
		default:
			order = append(order, k)
		}
	}
	jb := NewJitterBuffer(newDecoder(b), JitterConfig{})
	var i, frames int
	for b.Loop() {
		k := order[i%len(order)]
		round := i / len(order)
		seq := uint16(round*len(pkts) + k)
		out, err := jb.Push(seq, pkts[k])
		if err != nil {
			b.Fatal(err)
		}
		frames += len(out)
		i++
	}
	b.ReportMetric(float64(frames)/float64(i), "frames/push")
}
