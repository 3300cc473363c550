package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"

	"github.com/parley/parley/codec"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// holdBeat is how often a call on hold sends a packet: one without audio
// (codec.EmptyPacket, 1 byte of Opus), a heartbeat that keeps the path's NAT
// bindings and relay permissions open and ICE from calling the path
// disconnected (after 2 s without a packet). Its RTP timestamp follows the
// time and its sequence number the packets, so the receiver fills the time
// between with comfort noise and counts nothing lost (codec.JitterBuffer).
const holdBeat = 200 * time.Millisecond

// holdBeatFrames is holdBeat in 20 ms frames.
const holdBeatFrames = int(holdBeat / codec.FrameDuration)

// Pacing (see send).
const (
	// firstWait is how long the first frame of the source is waited for.
	firstWait = 100 * time.Millisecond
	// lateWait is how long past its time a frame is waited for before
	// silence goes instead.
	lateWait = 15 * time.Millisecond
	// earlySlack is how much before the call's clock a frame of a live
	// source may go: frames that queued in a stall drain at a packet every
	// 10 ms.
	earlySlack = 10 * time.Millisecond
)

// send encodes a frame every 20 ms and writes it as an RTP packet: silence,
// mute and the end of the source change what is said, never whether a packet
// goes. On hold (either side) it sends a heartbeat every holdBeat instead.
//
// The packets keep the call's clock, a frame every 20 ms, with what the
// source has ready (a file, an echo: they go on the clock). A live source (a
// microphone, a pipe) hands out each frame once its 20 ms have been captured,
// on its own clock, so it sometimes has nothing ready when asked (a file read
// ahead always has): from then on its frame goes the moment it comes, and the
// call's clock follows the source's, so no frame waits up to 20 ms for a
// tick, frames that queued in a stall drain, and the call's clock drifting
// against the sound card's never makes them queue. A source late by more than
// lateWait gets silence in its place.
func (c *Call) send() {
	enc, err := codec.NewEncoder(codec.EncoderConfig{})
	if err != nil {
		c.failAsync(fmt.Errorf("client: encoder: %w", err))
		return
	}
	silence := make([]int16, codec.FrameSamples)
	seq := uint16(rand.Uint32())
	ts := rand.Uint32()
	sourceDone := c.media.Source == nil
	var src frameNexter
	if !sourceDone {
		src = newFrameNexter(c.ctx, c.media.Source)
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	due := time.Now()           // when the next frame is due, by the call's clock
	marker := true              // the first packet, and the first after a hold, start a talkspurt
	sinceBeat := holdBeatFrames // frames since the last packet on hold
	liveSource := false         // the source has had nothing ready when asked: a microphone, not a file
	for first := true; ; first = false {
		onHold := c.OnHold()
		frame := silence
		at, live := due, false // when the packet goes; whether the source set it
		redirect := c.redirect.Load()
		if onHold {
			// The source waits (a file resumes where it paused).
			sinceBeat++
		} else if redirect != nil {
			// A conference's leg now: its frames come from the conference
			// (an ImmediateSource that never blocks).
			if f, err := redirect.Source.ReadFrame(); err == nil {
				frame = f
			}
		} else if !sourceDone {
			wait := time.Until(due.Add(lateWait))
			if first {
				wait = firstWait // a file starts on time
			}
			waiting := src.ready()
			if waiting == 0 && !first {
				liveSource = true // nothing was ready: it is not read ahead
			}
			f, ok, err := src.next(wait)
			switch {
			case ok:
				frame = f
				if first || liveSource && waiting < prefetchAhead {
					// The first frame, or a live source's. It goes now,
					// no sooner than earlySlack before the call's clock
					// (frames that queued in a stall drain, a packet every
					// 10 ms), and the clock follows the source's. A file's
					// frames, and a live source's that queued all the way,
					// go on the clock.
					live = true
					at = maxTime(time.Now(), due.Add(-earlySlack))
				}
			case err != nil:
				if !errors.Is(err, io.EOF) {
					c.s.c.log.Warn("audio source failed", "call", c.ID, "err", err)
				}
				sourceDone = true
				if c.media.OnSourceEnd != nil {
					c.media.OnSourceEnd()
				}
			default:
				at = time.Now() // late: silence now
			}
		}
		if !sleepUntil(c.ctx, timer, at) {
			return
		}
		var payload []byte
		switch {
		case onHold && sinceBeat < holdBeatFrames:
			// Nothing this frame; its time passes (ts below).
		case onHold:
			payload, sinceBeat, marker = codec.EmptyPacket(), 0, true
		default:
			if c.muted.Load() {
				frame = silence
			}
			shared := c.media.Encoder
			if redirect != nil {
				shared = redirect.Encoder
			}
			if shared != nil && len(frame) > 0 && &frame[0] != &silence[0] {
				payload, err = shared.Encode(frame)
			} else {
				payload, err = enc.Encode(frame)
			}
			if err != nil {
				c.failAsync(fmt.Errorf("client: encode: %w", err))
				return
			}
			sinceBeat = holdBeatFrames
		}
		if payload != nil {
			pkt := &rtp.Packet{
				Header:  rtp.Header{Version: 2, Marker: marker && !onHold, SequenceNumber: seq, Timestamp: ts},
				Payload: payload,
			}
			if err := c.track.WriteRTP(pkt); err == nil {
				c.sent.Add(1)
				c.sentB.Add(uint64(len(payload)))
			}
			seq++
			if !onHold {
				marker = false
			}
		}
		ts += codec.FrameSamples
		if live {
			due = at.Add(codec.FrameDuration)
		} else if due = due.Add(codec.FrameDuration); due.Before(time.Now().Add(-codec.FrameDuration)) {
			due = time.Now() // far behind (a stall): go on from now, no burst
		}
	}
}

// sleepUntil waits on timer until t, and reports false if ctx ended first.
func sleepUntil(ctx context.Context, timer *time.Timer, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer.Reset(d)
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
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
	newJB := func() bool {
		dec, err := codec.NewDecoder()
		if err != nil {
			c.failAsync(fmt.Errorf("client: decoder: %w", err))
			return false
		}
		jb = codec.NewJitterBuffer(dec, codec.JitterConfig{})
		return true
	}
	if c.media.Sink != nil && !newJB() {
		return
	}
	write := func(frames [][]int16) {
		sink := c.media.Sink
		if r := c.redirect.Load(); r != nil {
			sink = r.Sink // the call became a conference's leg
		}
		for _, f := range frames {
			if err := sink.WriteFrame(f); err != nil {
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
		if jb == nil && c.redirect.Load() != nil && !newJB() {
			return
		}
		if jb != nil {
			frames, err := jb.PushRTP(pkt.SequenceNumber, pkt.Timestamp, pkt.Payload)
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
		DirectVia:       c.viaShown(),
	}
}

// rxStats follows RFC 3550's receiver statistics: extended highest sequence
// number, expected vs received packets, and interarrival jitter in timestamp units.
type rxStats struct {
	packets, bytes uint64
	last           time.Time // the last packet's arrival (call_watchdog.go)
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
	r.last = arrival
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
