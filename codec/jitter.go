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
	// Filled counts frames of comfort noise for audio the sender did not
	// send, which is neither lost nor concealed: one for each packet
	// without audio (Empty), and the time between packets whose RTP
	// timestamps ([JitterBuffer.PushRTP]) moved on by more frames than
	// their sequence numbers did (at most MaxGap at a time; the rest count
	// as Skipped).
	Filled uint64
	// Empty counts packets without audio ([IsEmpty]: a call's heartbeats on
	// hold, DTX) played, as comfort noise.
	Empty uint64
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
// Packets pushed with their RTP timestamps ([JitterBuffer.PushRTP]) also
// keep the output in step with the sender's clock where the sender sent
// nothing: when a packet's timestamp is further on than its sequence number
// accounts for (a sender on hold sends one packet without audio every 200
// ms, its timestamps following the time), the frames in between come out as
// comfort noise, at most MaxGap of them. A packet without audio ([IsEmpty])
// comes out as comfort noise too, without touching the decoder, and a lost
// packet next to one is filled with comfort noise, not concealed by PLC (which
// would extrapolate the audio from before the hold).
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
	next    uint16                // sequence number to play next
	pending map[uint16]heldPacket // held packets, all at or after next
	history [historySize]uint32
	stats   JitterStats

	noise     *ComfortNoise // fills what the sender did not send
	haveLast  bool          // lastSeq and lastTS are set
	lastSeq   uint16        // the last packet played that had a timestamp,
	lastTS    uint32        // and its timestamp
	lastEmpty bool          // the last packet played carried no audio
}

// heldPacket is a packet waiting to be played.
type heldPacket struct {
	payload []byte
	ts      uint32
	hasTS   bool
}

// NewJitterBuffer returns a jitter buffer that decodes with dec. If dec is
// nil the buffer makes its own Decoder (if that fails, Push and Flush
// return the error).
func NewJitterBuffer(dec *Decoder, cfg JitterConfig) *JitterBuffer {
	j := &JitterBuffer{
		dec:     dec,
		depth:   cfg.Depth,
		maxGap:  cfg.MaxGap,
		pending: make(map[uint16]heldPacket),
		noise:   NewComfortNoise(0x70617273),
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
	return j.push(seq, heldPacket{payload: payload})
}

// PushRTP is Push with the packet's RTP timestamp (48 kHz, FrameSamples a
// frame), so that time the sender did not fill with packets comes out as
// comfort noise (see [JitterBuffer]).
func (j *JitterBuffer) PushRTP(seq uint16, ts uint32, payload []byte) ([][]int16, error) {
	return j.push(seq, heldPacket{payload: payload, ts: ts, hasTS: true})
}

func (j *JitterBuffer) push(seq uint16, h heldPacket) ([][]int16, error) {
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
		j.haveLast = false
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
	h.payload = append([]byte(nil), h.payload...)
	j.pending[seq] = h
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
			var err error
			if out, err = j.play(out, p); err != nil {
				return out, err
			}
			j.next++
			continue
		}
		if len(j.pending) == 0 || (!all && len(j.pending) <= j.depth) {
			return out, nil
		}
		// Give up on the gap before the oldest held packet.
		first, gap := j.oldest()
		var err error
		out, err = j.conceal(out, gap, j.pending[first].payload)
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

// play appends the frames of the packet at next: comfort noise for the time
// before it that the sender sent nothing for, then its own frame (decoded,
// comfort noise when it has no audio, concealed if it does not decode).
func (j *JitterBuffer) play(out [][]int16, h heldPacket) ([][]int16, error) {
	if h.hasTS {
		if j.haveLast {
			// Frames by the timestamps, less those the sequence numbers
			// account for (played, concealed or skipped).
			unsent := int(int32(h.ts-j.lastTS))/FrameSamples - int(j.next-j.lastSeq)
			if unsent > 0 {
				n := min(unsent, j.maxGap)
				j.stats.Skipped += uint64(unsent - n)
				for range n {
					out = append(out, j.noise.Frame())
				}
				j.stats.Filled += uint64(n)
			}
		}
		j.haveLast, j.lastSeq, j.lastTS = true, j.next, h.ts
	}
	j.history[j.next%historySize] = uint32(j.next) + 1
	if j.lastEmpty = IsEmpty(h.payload); j.lastEmpty {
		j.stats.Empty++
		j.stats.Filled++
		return append(out, j.noise.Frame()), nil
	}
	frame, err := j.dec.Decode(h.payload)
	if err == nil {
		j.stats.Played++
		return append(out, frame), nil
	}
	j.stats.Invalid++
	j.history[j.next%historySize] = 0
	frame, err = j.dec.Conceal()
	if err != nil {
		return out, err
	}
	j.stats.Concealed++
	return append(out, frame), nil
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
	if j.lastEmpty || IsEmpty(after) {
		// Lost between packets without audio (on hold): more of the
		// same, not PLC of whatever was said before.
		for range n {
			out = append(out, j.noise.Frame())
		}
		j.stats.Concealed += uint64(n)
		return out, nil
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
