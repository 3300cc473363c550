package client

import (
	"context"
	"io"
	"math"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/parley/parley/codec"
	"github.com/parley/parley/internal/audiotest"
)

// sentPacket is one packet a call's sender wrote, and when.
type sentPacket struct {
	h       rtp.Header
	payload []byte
	at      time.Time
}

// packetTrap is a TrackLocalContext whose write stream keeps what is written.
type packetTrap struct {
	mu   sync.Mutex
	pkts []sentPacket
}

func (p *packetTrap) CodecParameters() []webrtc.RTPCodecParameters {
	return []webrtc.RTPCodecParameters{{RTPCodecCapability: opusCapability, PayloadType: 111}}
}
func (p *packetTrap) HeaderExtensions() []webrtc.RTPHeaderExtensionParameter { return nil }
func (p *packetTrap) SSRC() webrtc.SSRC                                      { return 1 }
func (p *packetTrap) SSRCRetransmission() webrtc.SSRC                        { return 0 }
func (p *packetTrap) SSRCForwardErrorCorrection() webrtc.SSRC                { return 0 }
func (p *packetTrap) WriteStream() webrtc.TrackLocalWriter                   { return p }
func (p *packetTrap) ID() string                                             { return "trap" }
func (p *packetTrap) RTCPReader() interceptor.RTCPReader                     { return nil }
func (p *packetTrap) Write(b []byte) (int, error)                            { return len(b), nil }
func (p *packetTrap) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pkts = append(p.pkts, sentPacket{*h, append([]byte(nil), payload...), time.Now()})
	return len(payload), nil
}

func (p *packetTrap) packets() []sentPacket {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]sentPacket(nil), p.pkts...)
}

// sendingCall starts a call's sender alone, its packets caught in the
// returned trap; the sender ends with the test's bubble (synctest).
func sendingCall(t *testing.T, src FrameSource) (*Call, *packetTrap) {
	t.Helper()
	tr, err := webrtc.NewTrackLocalStaticRTP(opusCapability, "audio", "parley")
	if err != nil {
		t.Fatal(err)
	}
	trap := &packetTrap{}
	if _, err := tr.Bind(trap); err != nil {
		t.Fatal(err)
	}
	c := &Call{ID: "test", track: tr, media: Media{Source: src}}
	c.path.Store("")
	c.relay.Store("")
	c.ctx, c.cancel = context.WithCancel(t.Context())
	t.Cleanup(c.cancel)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.send()
	}()
	t.Cleanup(func() {
		c.cancel()
		<-done
	})
	return c, trap
}

// TestSendOnHoldSendsHeartbeats: the product rule of hold. A call on hold
// sends a packet at least every holdBeat (keeping NAT bindings open and ICE
// from calling the path disconnected), each without audio; sequence
// numbers stay consecutive and timestamps follow the time, so the receiver
// counts nothing lost. Off hold, a packet goes every 20 ms; the first after
// the hold starts a talkspurt (marker).
func TestSendOnHoldSendsHeartbeats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c, trap := sendingCall(t, nil)
		start := time.Now()
		// Hold and resume between two packets; each takes effect from the
		// next packet but one at the latest (the sender decides a packet
		// up to 20 ms before it goes).
		time.Sleep(time.Second + 10*time.Millisecond)
		holdAt := time.Now()
		c.held.Store(true)
		time.Sleep(3 * time.Second)
		resumeAt := time.Now()
		c.held.Store(false)
		time.Sleep(2 * time.Second)
		c.cancel()
		synctest.Wait()

		settled := func(from time.Time) time.Time { return from.Add(codec.FrameDuration) }
		pkts := trap.packets()
		var before, on, after int
		for i, p := range pkts {
			if i > 0 {
				prev := pkts[i-1]
				if p.h.SequenceNumber != prev.h.SequenceNumber+1 {
					t.Fatalf("packet %d: sequence %d after %d", i, p.h.SequenceNumber, prev.h.SequenceNumber)
				}
				// The timestamp follows the time between the packets
				// (their 20 ms slots).
				slots := int(p.at.Sub(prev.at).Round(codec.FrameDuration) / codec.FrameDuration)
				if d := p.h.Timestamp - prev.h.Timestamp; d != uint32(slots*codec.FrameSamples) {
					t.Errorf("packet %d, %v after the last: timestamp +%d, want +%d", i, p.at.Sub(prev.at), d, slots*codec.FrameSamples)
				}
				if gap := p.at.Sub(prev.at); gap > holdBeat {
					t.Errorf("%v between packets %d and %d; want at most %v", gap, i-1, i, holdBeat)
				}
			}
			empty := codec.IsEmpty(p.payload)
			switch {
			case !p.at.After(holdAt):
				if empty {
					t.Errorf("packet %d before the hold carries no audio", i)
				}
				if p.at.Before(start.Add(time.Second)) {
					before++
				}
			case p.at.After(settled(holdAt)) && !p.at.After(resumeAt):
				on++
				if !empty {
					t.Errorf("packet %d on hold is %d bytes, want a heartbeat without audio", i, len(p.payload))
				}
			case p.at.After(settled(resumeAt)):
				if empty {
					t.Errorf("packet %d after the hold carries no audio", i)
				}
				if p.at.After(settled(resumeAt).Add(time.Second)) {
					break
				}
				after++
			}
			if i > 0 && !empty && codec.IsEmpty(pkts[i-1].payload) && !p.h.Marker {
				t.Errorf("packet %d, the first after the hold, has no marker", i)
			}
		}
		if !pkts[0].h.Marker || !pkts[0].at.Equal(start) {
			t.Errorf("first packet at %v, marker %v; want at once, with the marker", pkts[0].at.Sub(start), pkts[0].h.Marker)
		}
		if before != 50 || after != 50 {
			t.Errorf("%d packets in the second before the hold and %d in the one after, want 50", before, after)
		}
		if want := int(3*time.Second/holdBeat) - 1; on < want {
			t.Errorf("%d packets in 3 s on hold, want at least %d", on, want)
		}
		if c.Stats().PacketsSent != uint64(len(pkts)) {
			t.Errorf("stats count %d packets sent, the track saw %d", c.Stats().PacketsSent, len(pkts))
		}
	})
}

// liveSource hands out frame i once its 20 ms have been captured, at
// start + phase + (i+1)·period, as a sound card does; it says a loud tone.
type liveSource struct {
	start         time.Time
	phase, period time.Duration
	n             int
	frames        int
	ready         []time.Time
	stop          chan struct{}
	// Frames stallAt to stallAt+stall-1 come late, all at once, with
	// frame stallAt+stall.
	stallAt, stall int
}

func (l *liveSource) ReadFrame() ([]int16, error) {
	if l.n == l.frames {
		<-l.stop // a microphone that stops delivering
		return nil, io.EOF
	}
	i := l.n
	if l.stall > 0 && i >= l.stallAt && i < l.stallAt+l.stall {
		i = l.stallAt + l.stall
	}
	at := l.start.Add(l.phase + time.Duration(i+1)*l.period)
	time.Sleep(time.Until(at))
	f := make([]int16, codec.FrameSamples)
	for i := range f {
		f[i] = int16(16000 * math.Sin(2*math.Pi*500*float64(i)/codec.SampleRate)) // 500 Hz at -9 dBFS RMS
	}
	l.ready = append(l.ready, at)
	l.n++
	return f, nil
}

// TestSendFollowsALiveSource: frames of a live source go the moment they
// are captured, not at the sender's next 20 ms tick, whatever the source's
// phase and whether its clock runs a little fast or slow; frames that queue
// in a stall drain; when the source stops, silence goes on at 50 packets a
// second.
func TestSendFollowsALiveSource(t *testing.T) {
	for _, tc := range []struct {
		name           string
		phase          time.Duration
		period         time.Duration
		stallAt, stall int
	}{
		{"in phase", 0, codec.FrameDuration, 0, 0},
		{"7 ms behind", 7 * time.Millisecond, codec.FrameDuration, 0, 0},
		{"17 ms behind", 17 * time.Millisecond, codec.FrameDuration, 0, 0},
		{"19 ms behind", 19 * time.Millisecond, codec.FrameDuration, 0, 0},
		// Clocks 0.5% off: a sound card's is off by 0.01% or less, which
		// takes longer to show.
		{"fast clock", 11 * time.Millisecond, codec.FrameDuration - 100*time.Microsecond, 0, 0},
		{"slow clock", 3 * time.Millisecond, codec.FrameDuration + 100*time.Microsecond, 0, 0},
		{"stall of 100 ms", 5 * time.Millisecond, codec.FrameDuration, 100, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				src := &liveSource{start: time.Now(), phase: tc.phase, period: tc.period, frames: 500, stop: make(chan struct{}),
					stallAt: tc.stallAt, stall: tc.stall}
				c, trap := sendingCall(t, src)
				time.Sleep(12 * time.Second)
				c.cancel()
				close(src.stop)
				synctest.Wait()
				pkts := trap.packets()
				// Every frame goes in its own packet, in order, and no
				// silence between them but in a stall: the first frame
				// comes within the first wait (100 ms), the first packet.
				dec, err := codec.NewDecoder()
				if err != nil {
					t.Fatal(err)
				}
				var late time.Duration
				k := 0 // the packet
				for i, at := range src.ready {
					for ; ; k++ {
						if k >= len(pkts) {
							t.Fatalf("%d packets for %d frames", len(pkts), len(src.ready))
						}
						pcm, err := dec.Decode(pkts[k].payload)
						if err != nil {
							t.Fatal(err)
						}
						if audiotest.RMSdB(pcm) > -20 {
							break
						}
						if tc.stall == 0 || i < tc.stallAt || i > tc.stallAt+tc.stall {
							t.Fatalf("packet %d is silence while the source delivered", k)
						}
					}
					// After a stall the queued frames drain, 10 ms a packet.
					if d := pkts[k].at.Sub(at); tc.stall == 0 || i > tc.stallAt+3*tc.stall {
						late = max(late, d)
					}
					k++
				}
				if late > 0 {
					t.Errorf("a frame went up to %v after it was captured, want at once", late)
				}
				// The 2 s after the source stopped: silence, 50 packets a second.
				var n int
				stopped := src.ready[len(src.ready)-1]
				for _, p := range pkts[k:] {
					if p.at.After(stopped.Add(500*time.Millisecond)) && !p.at.After(stopped.Add(1500*time.Millisecond)) {
						n++
					}
				}
				if n < 49 || n > 51 {
					t.Errorf("%d packets a second after the source stopped, want 50", n)
				}
			})
		})
	}
}

// TestSendPacesAFileSource: a source whose frames are always ready (a file)
// goes out on the call's clock, one packet every 20 ms.
func TestSendPacesAFileSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		_, trap := sendingCall(t, &endless{})
		time.Sleep(2 * time.Second)
		synctest.Wait()
		pkts := trap.packets()
		for i, p := range pkts {
			if want := start.Add(time.Duration(i) * codec.FrameDuration); !p.at.Equal(want) {
				t.Fatalf("packet %d went at %v, want %v", i, p.at.Sub(start), want.Sub(start))
			}
		}
		if len(pkts) < 100 {
			t.Errorf("%d packets in 2 s, want 100", len(pkts))
		}
	})
}
