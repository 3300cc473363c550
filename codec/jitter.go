package codec

import (
	"fmt"
)

// Jitter buffer defaults, applied for zero JitterConfig fields.
const (
	DefaultJitterDepth = 3
	DefaultMaxGap      = 50
)

// resyncDistance: a packet this many sequence numbers (or more) behind the
// playout point is taken as the sender restarting its sequence, not as a
// late packet (20 s at 50 packets/s; real reordering is far shorter).
const resyncDistance = 1000

// historySize is how many recently played sequence numbers are remembered
// to tell a duplicate from a late packet.
const historySize = 64

// JitterConfig tunes NewJitterBuffer. The zero value gives the defaults.
// As for EncoderConfig, 0 means "default" and a negative value selects
// the literal 0.
type JitterConfig struct {
	// Depth is how many packets past a missing one the buffer holds while
	// waiting for it to arrive; when more than Depth are queued past a gap,
	// the gap is given up and concealed. 0 = 3. Negative = 0: never wait,
	// conceal as soon as any later packet arrives (reordered packets are
	// then counted as late).
	Depth int
	// MaxGap is the longest gap (in frames) concealed frame by frame.
	// Larger gaps, e.g. after a long outage or a sender's sequence jump,
	// are concealed with MaxGap frames only and the rest are skipped
	// (counted in JitterStats.Skipped). 0 = 50 (1 s). Negative = 0: gaps
	// are skipped, never concealed.
	MaxGap int
}

// JitterStats are the JitterBuffer's counters since it was made.
type JitterStats struct {
	// Played counts frames decoded from their own packet.
	Played uint64
	// Concealed counts frames synthesized by packet-loss concealment,
	// for lost packets and for packets that failed to decode.
	Concealed uint64
	// RecoveredFEC counts lost frames recovered from the in-band FEC of
	// the packet after them.
	RecoveredFEC uint64
	// Late counts packets dropped because their slot had already been
	// played out (concealed or skipped).
	Late uint64
	// Duplicate counts packets dropped because the same sequence number
	// was already held or recently played.
	Duplicate uint64
	// Skipped counts missing frames NOT emitted because their gap was
	// longer than MaxGap.
	Skipped uint64
	// Invalid counts received packets that failed to decode (malformed or
	// not 20 ms); each was replaced by a concealed frame.
	Invalid uint64
	// Resyncs counts restarts caused by a packet far (1000 or more
	// sequence numbers) behind the playout point, taken as the sender
	// restarting its sequence numbers.
	Resyncs uint64
}

// JitterBuffer reorders received RTP payloads by their 16-bit sequence
// number (wraparound-safe) and turns them into a gap-free stream of decoded
// 20 ms frames.
//
// It is packet-driven, with no wall clock: Push returns the frames that
// became ready. In-order packets come out at once. When a packet is
// missing, up to Depth later packets are held waiting for it; when more
// than Depth are queued, the gap is given up: a single missing frame is
// recovered from the next packet's in-band FEC (when that packet is a
// SILK/hybrid one that can carry it), otherwise each missing frame is
// synthesized by Opus PLC. Frames of a gap come out in one burst when the
// gap is resolved, in order. Packets arriving after their slot was played
// out are dropped (Late), as are second copies (Duplicate).
//
// The first packet pushed sets the starting sequence number; a packet
// older than it that arrives later counts as late. Payloads are copied.
// A JitterBuffer, and the Decoder it drives, are not safe for concurrent
// use, and the Decoder must not be used by anyone else meanwhile.
type JitterBuffer struct {
	dec     *Decoder
	decErr  error
	depth   int
	maxGap  int
	started bool
	next    uint16            // sequence number to play next
	pending map[uint16][]byte // held packets, all at or after next
	history [historySize]uint32
	stats   JitterStats
}

// NewJitterBuffer returns a jitter buffer that decodes with dec. If dec is
// nil the buffer makes its own Decoder (if that fails, Push and Flush
// return the error).
func NewJitterBuffer(dec *Decoder, cfg JitterConfig) *JitterBuffer {
	j := &JitterBuffer{
		dec:     dec,
		depth:   cfg.Depth,
		maxGap:  cfg.MaxGap,
		pending: make(map[uint16][]byte),
	}
	if j.dec == nil {
		j.dec, j.decErr = NewDecoder()
	}
	switch {
	case j.depth == 0:
		j.depth = DefaultJitterDepth
	case j.depth < 0:
		j.depth = 0
	}
	switch {
	case j.maxGap == 0:
		j.maxGap = DefaultMaxGap
	case j.maxGap < 0:
		j.maxGap = 0
	}
	return j
}

// Push hands the buffer one received packet and returns the frames (each
// FrameSamples samples) that are now ready, in playout order; often none
// or one. Late and duplicate packets are dropped and counted. Undecodable
// payloads are concealed and counted, not returned as errors; an error is
// returned only if the decoder itself fails, together with the frames made
// before the failure.
func (j *JitterBuffer) Push(seq uint16, payload []byte) ([][]int16, error) {
	if j.decErr != nil {
		return nil, fmt.Errorf("codec: jitter push: %w", j.decErr)
	}
	if !j.started {
		j.started = true
		j.next = seq
	}
	var out [][]int16
	if d := int16(seq - j.next); d < 0 {
		if int(d) > -resyncDistance {
			if j.history[seq%historySize] == uint32(seq)+1 {
				j.stats.Duplicate++
			} else {
				j.stats.Late++
			}
			return nil, nil
		}
		// The sender restarted its sequence: play out what is held and
		// start again from this packet.
		j.stats.Resyncs++
		var err error
		if out, err = j.drain(out, true); err != nil {
			return out, fmt.Errorf("codec: jitter push: %w", err)
		}
		j.next = seq
	}
	if _, ok := j.pending[seq]; ok {
		j.stats.Duplicate++
		return out, nil
	}
	j.pending[seq] = append([]byte(nil), payload...)
	out, err := j.drain(out, false)
	if err != nil {
		return out, fmt.Errorf("codec: jitter push: %w", err)
	}
	return out, nil
}

// Flush returns every frame still held, with the gaps between held packets
// concealed as in Push, and leaves the buffer empty. The buffer stays
// usable: playout continues after the last flushed packet.
func (j *JitterBuffer) Flush() ([][]int16, error) {
	if j.decErr != nil {
		return nil, fmt.Errorf("codec: jitter flush: %w", j.decErr)
	}
	out, err := j.drain(nil, true)
	if err != nil {
		return out, fmt.Errorf("codec: jitter flush: %w", err)
	}
	return out, nil
}

// Stats returns a snapshot of the counters.
func (j *JitterBuffer) Stats() JitterStats { return j.stats }

// Held returns how many packets the buffer is holding, waiting for a gap.
func (j *JitterBuffer) Held() int { return len(j.pending) }

// drain plays out every ready frame; with all set it also gives up on
// every gap, emptying the buffer.
func (j *JitterBuffer) drain(out [][]int16, all bool) ([][]int16, error) {
	for {
		if p, ok := j.pending[j.next]; ok {
			delete(j.pending, j.next)
			frame, err := j.play(p)
			if err != nil {
				return out, err
			}
			out = append(out, frame)
			j.next++
			continue
		}
		if len(j.pending) == 0 || (!all && len(j.pending) <= j.depth) {
			return out, nil
		}
		// Give up on the gap before the oldest held packet.
		first, gap := j.oldest()
		var err error
		out, err = j.conceal(out, gap, j.pending[first])
		if err != nil {
			return out, err
		}
		j.next = first
	}
}

// oldest returns the held sequence number closest after next and its
// distance from next (at least 1 when next itself is not held).
func (j *JitterBuffer) oldest() (uint16, int) {
	best, bestDist := uint16(0), -1
	for s := range j.pending {
		dist := int(s - j.next)
		if bestDist < 0 || dist < bestDist {
			best, bestDist = s, dist
		}
	}
	return best, bestDist
}

// play decodes a received packet, concealing it if it does not decode.
func (j *JitterBuffer) play(p []byte) ([]int16, error) {
	frame, err := j.dec.Decode(p)
	if err == nil {
		j.stats.Played++
		j.history[j.next%historySize] = uint32(j.next) + 1
		return frame, nil
	}
	j.stats.Invalid++
	j.history[j.next%historySize] = 0
	frame, err = j.dec.Conceal()
	if err != nil {
		return nil, err
	}
	j.stats.Concealed++
	return frame, nil
}

// conceal emits frames for the gap of gap frames starting at next; after
// is the packet following the gap.
func (j *JitterBuffer) conceal(out [][]int16, gap int, after []byte) ([][]int16, error) {
	for i := 0; i < gap && i < historySize; i++ {
		j.history[(j.next+uint16(i))%historySize] = 0
	}
	n := gap
	if n > j.maxGap {
		j.stats.Skipped += uint64(n - j.maxGap)
		n = j.maxGap
	}
	if n == 1 && gap == 1 && hasFEC(after) {
		if frame, err := j.dec.DecodeFEC(after); err == nil {
			j.stats.RecoveredFEC++
			return append(out, frame), nil
		}
	}
	for i := 0; i < n; i++ {
		frame, err := j.dec.Conceal()
		if err != nil {
			return out, err
		}
		j.stats.Concealed++
		out = append(out, frame)
	}
	return out, nil
}
