package client

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/parley/parley/codec"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// send encodes one frame every 20 ms and writes it as an RTP packet: silence,
// mute and the end of the source change what is said, never whether a packet goes.
func (c *Call) send() {
	enc, err := codec.NewEncoder(codec.EncoderConfig{})
	if err != nil {
		c.failAsync(fmt.Errorf("client: encoder: %w", err))
		return
	}
	silence := make([]int16, codec.FrameSamples)
	noise := codec.NewComfortNoise(rand.Uint64())
	seq := uint16(rand.Uint32())
	ts := rand.Uint32()
	sourceDone := c.media.Source == nil
	var src frameNexter
	if !sourceDone {
		src = newFrameNexter(c.ctx, c.media.Source)
	}
	tick := time.NewTicker(codec.FrameDuration)
	defer tick.Stop()
	for first := true; ; first = false {
		frame := silence
		onHold := c.OnHold()
		if onHold {
			// Not heard, but a packet still goes: comfort noise keeps the
			// path's NAT bindings open. The source waits (a file resumes
			// where it paused).
			frame = noise.Frame()
		} else if !sourceDone {
			// The first frame may wait a little (a file starts on time);
			// later ones never hold up the clock.
			wait := time.Duration(0)
			if first {
				wait = 100 * time.Millisecond
			}
			f, ok, err := src.next(wait)
			switch {
			case ok:
				frame = f
			case err != nil:
				if !errors.Is(err, io.EOF) {
					c.s.c.log.Warn("audio source failed", "call", c.ID, "err", err)
				}
				sourceDone = true
				if c.media.OnSourceEnd != nil {
					c.media.OnSourceEnd()
				}
			}
		}
		if c.muted.Load() && !onHold {
			frame = silence
		}
		payload, err := enc.Encode(frame)
		if err != nil {
			c.failAsync(fmt.Errorf("client: encode: %w", err))
			return
		}
		pkt := &rtp.Packet{
			Header:  rtp.Header{Version: 2, Marker: first, SequenceNumber: seq, Timestamp: ts},
			Payload: payload,
		}
		if err := c.track.WriteRTP(pkt); err == nil {
			c.sent.Add(1)
			c.sentB.Add(uint64(len(payload)))
		}
		seq++
		ts += codec.FrameSamples
		select {
		case <-c.ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// readRTCP drains RTCP for the sender so pion's interceptors see reports.
func (c *Call) readRTCP() {
	buf := make([]byte, 1500)
	for {
		if _, _, err := c.sender.Read(buf); err != nil {
			return
		}
	}
}

// receive reads the peer's RTP, keeps statistics, and feeds the jitter buffer
// whose gap-free output goes to the sink.
func (c *Call) receive(tr *webrtc.TrackRemote) {
	var jb *codec.JitterBuffer
	if c.media.Sink != nil {
		dec, err := codec.NewDecoder()
		if err != nil {
			c.failAsync(fmt.Errorf("client: decoder: %w", err))
			return
		}
		jb = codec.NewJitterBuffer(dec, codec.JitterConfig{})
	}
	write := func(frames [][]int16) {
		for _, f := range frames {
			if err := c.media.Sink.WriteFrame(f); err != nil {
				c.s.c.log.Warn("audio sink failed", "call", c.ID, "err", err)
			}
		}
	}
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			if jb != nil {
				frames, _ := jb.Flush()
				write(frames)
			}
			return
		}
		now := time.Now()
		c.recvMu.Lock()
		c.rx.add(pkt.SequenceNumber, pkt.Timestamp, len(pkt.Payload), now)
		c.recvMu.Unlock()
		if c.media.OnRTP != nil {
			c.media.OnRTP(pkt.Header, now)
		}
		if jb != nil {
			frames, err := jb.Push(pkt.SequenceNumber, pkt.Payload)
			if err != nil {
				c.s.c.log.Debug("jitter buffer", "err", err)
			}
			write(frames)
		}
	}
}

func (c *Call) statsLoop() {
	t := time.NewTicker(c.s.cfg.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.updatePath()
			c.emitStats()
		}
	}
}

func (c *Call) emitStats() {
	st := c.Stats()
	c.s.emit(Event{Event: "stats", CallID: c.ID, Peer: c.Peer, Path: st.Path, Relay: st.Relay, Stats: &st})
}

// Stats returns the call's statistics so far.
func (c *Call) Stats() Stats {
	c.recvMu.Lock()
	rx := c.rx
	c.recvMu.Unlock()
	return Stats{
		PacketsSent:     c.sent.Load(),
		BytesSent:       c.sentB.Load(),
		PacketsReceived: rx.packets,
		BytesReceived:   rx.bytes,
		Loss:            rx.loss(),
		JitterMS:        rx.jitter / (codec.SampleRate / 1000),
		RTTMS:           float64(c.lastRTTNanos.Load()) / float64(time.Millisecond),
		Path:            c.path.Load().(string),
		Relay:           c.relay.Load().(string),
		RelayProtocol:   c.localRelayProtocol(),
	}
}

// rxStats follows RFC 3550's receiver statistics: extended highest sequence
// number, expected vs received packets, and interarrival jitter in timestamp units.
type rxStats struct {
	packets, bytes uint64
	started        bool
	baseSeq        uint32
	maxSeq         uint16
	cycles         uint32
	lastTransit    float64
	jitter         float64
}

func (r *rxStats) add(seq uint16, ts uint32, n int, arrival time.Time) {
	r.packets++
	r.bytes += uint64(n)
	transit := float64(arrival.UnixNano())*codec.SampleRate/1e9 - float64(ts)
	if !r.started {
		r.started = true
		r.baseSeq, r.maxSeq = uint32(seq), seq
		r.lastTransit = transit
		return
	}
	if d := seq - r.maxSeq; d != 0 && d < 1<<15 {
		if seq < r.maxSeq {
			r.cycles += 1 << 16
		}
		r.maxSeq = seq
	}
	d := transit - r.lastTransit
	r.lastTransit = transit
	if d < 0 {
		d = -d
	}
	r.jitter += (d - r.jitter) / 16
}

func (r *rxStats) loss() float64 {
	if !r.started {
		return 0
	}
	expected := float64(r.cycles+uint32(r.maxSeq)) - float64(r.baseSeq) + 1
	if expected <= 0 {
		return 0
	}
	lost := expected - float64(r.packets)
	if lost <= 0 {
		return 0
	}
	return lost / expected
}
