package client_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/codec"
	"github.com/parley/parley/internal/audiotest"
)

// Conference benchmarks (docs/performance.md#conference-calls), run by make
// bench:
//
//   - BenchmarkConferenceMesh: N devices in one conference on loopback,
//     everyone speaking at once for 10 s; per participant: CPU (the
//     process's, divided by N) and upload (RTP payload plus 50 bytes of
//     RTP, SRTP, UDP and IPv4 headers a packet).
//   - BenchmarkHostMixing: what a Skype-style mixing host would do for N
//     voices every 20 ms (decode N−1 streams, make N−1 mixes each leaving
//     one voice out, encode each), as CPU of one core.

// packetOverhead is RTP (12), the SRTP tag (10), UDP (8) and IPv4 (20).
const packetOverhead = 50

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func BenchmarkConferenceMesh(b *testing.B) {
	for _, voices := range []int{4, 8} {
		b.Run(fmt.Sprintf("voices=%d", voices), func(b *testing.B) {
			for range b.N {
				confMeshOnce(b, voices)
			}
		})
	}
}

func confMeshOnce(b *testing.B, voices int) {
	n := startNetwork(b, nil)
	sessions := make([]*client.Session, voices)
	medias := make([]client.Media, voices)
	for i := range voices {
		medias[i] = client.Media{Source: &loopSource{pcm: audiotest.Speech(uint64(i+1), 3*time.Second)}, Sink: &recorder{}}
		m := medias[i]
		sessions[i] = n.user(b, fmt.Sprintf("v%d", i), client.SessionConfig{OnConfInvite: func(inv *client.ConfInvite) {
			if cf, err := inv.Join(context.Background(), m); err == nil {
				<-cf.Done()
			}
		}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var users []string
	for i := 1; i < voices; i++ {
		users = append(users, fmt.Sprintf("v%d", i))
	}
	cf, err := sessions[0].StartConference(ctx, client.ConfConfig{Users: users, Media: medias[0]})
	if err != nil {
		b.Fatal(err)
	}
	for ctx.Err() == nil && len(cf.Roster()) < voices {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second) // every leg's roster settles
	const run = 10 * time.Second
	st0, cpu0, t0 := cf.Stats(), cpuTime(), time.Now()
	time.Sleep(run)
	st1, cpu1, el := cf.Stats(), cpuTime(), time.Since(t0)
	// cf.Stats: the payload bytes of every leg, and the packets of the leg
	// that sent least (each leg sends 50 a second).
	pkts := float64(st1.PacketsSent-st0.PacketsSent) * float64(voices-1)
	bytes := float64(st1.BytesSent-st0.BytesSent) + pkts*packetOverhead
	b.ReportMetric(float64(cpu1-cpu0)/float64(el)/float64(voices)*100, "%cpu/participant")
	b.ReportMetric(bytes*8/el.Seconds()/1000, "kbit/s-up/participant")
	b.ReportMetric(0, "ns/op")
	cf.Leave()
	<-cf.Done()
	for _, s := range sessions {
		s.Close()
	}
}

// loopSource plays pcm again and again, a frame a call (read on the
// conference's 20 ms clock).
type loopSource struct {
	pcm []int16
	at  int
}

func (l *loopSource) ReadFrame() ([]int16, error) {
	f := make([]int16, codec.FrameSamples)
	for i := range f {
		f[i] = l.pcm[l.at%len(l.pcm)]
		l.at++
	}
	return f, nil
}

func BenchmarkHostMixing(b *testing.B) {
	for _, voices := range []int{4, 8} {
		b.Run(fmt.Sprintf("voices=%d", voices), func(b *testing.B) {
			// The host hears N−1 streams.
			enc, err := codec.NewEncoder(codec.EncoderConfig{})
			if err != nil {
				b.Fatal(err)
			}
			var streams [][][]byte
			for i := 1; i < voices; i++ {
				pcm := audiotest.Speech(uint64(i), time.Second)
				var pkts [][]byte
				for f := 0; f+codec.FrameSamples <= len(pcm); f += codec.FrameSamples {
					p, err := enc.Encode(pcm[f : f+codec.FrameSamples])
					if err != nil {
						b.Fatal(err)
					}
					pkts = append(pkts, append([]byte(nil), p...))
				}
				streams = append(streams, pkts)
			}
			decs := make([]*codec.Decoder, voices-1)
			encs := make([]*codec.Encoder, voices-1) // one per participant's mix
			for i := range decs {
				if decs[i], err = codec.NewDecoder(); err != nil {
					b.Fatal(err)
				}
			}
			for i := range encs {
				if encs[i], err = codec.NewEncoder(codec.EncoderConfig{}); err != nil {
					b.Fatal(err)
				}
			}
			host := audiotest.Speech(99, time.Second)
			pcms := make([][]int16, voices-1)
			sum := make([]int32, codec.FrameSamples)
			mix := make([]int16, codec.FrameSamples)
			b.ResetTimer()
			for k := range b.N {
				frame := k % len(streams[0])
				clear(sum)
				for i, d := range decs {
					pcm, err := d.Decode(streams[i][frame])
					if err != nil {
						b.Fatal(err)
					}
					pcms[i] = pcm
					for j, v := range pcm {
						sum[j] += int32(v)
					}
				}
				hostFrame := host[(frame*codec.FrameSamples)%(len(host)-codec.FrameSamples):][:codec.FrameSamples]
				// Each participant gets everyone but itself: the sum, the
				// host's voice, less its own.
				for i := range voices - 1 {
					for j := range mix {
						mix[j] = int16(max(-32768, min(32767, sum[j]+int32(hostFrame[j])-int32(pcms[i][j]))))
					}
					if _, err := encs[i].Encode(mix); err != nil {
						b.Fatal(err)
					}
				}
			}
			perFrame := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(perFrame)/float64(codec.FrameDuration)*100, "%cpu-host")
			b.ReportMetric(float64(perFrame.Microseconds()), "µs/frame")
		})
	}
}
