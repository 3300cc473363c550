package client

import (
	"context"
	"errors"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/parley/parley/codec"
)

// A conference's audio (docs/conference.md): one broadcaster reads the
// user's source every 20 ms and hands each frame to every leg's tap; one
// shared encoder encodes each frame once for all legs; each leg's decoded
// audio goes to a mixer input, and the mixer sums the inputs every 20 ms
// into the user's sink and measures who is speaking.

// confTapDepth caps the frames a leg's tap holds (its sender takes one every
// 20 ms on its own clock, and catches up after a stall); older ones are
// dropped. 500 ms: a sender starved of CPU that long loses nothing.
const confTapDepth = 25

// confMixDepth caps the frames a mixer input holds (the mixer catches up
// after a stall too); older ones are dropped. 1 s.
const confMixDepth = 50

// speakingLevel is the frame level (dBFS) above which a participant counts
// as speaking, and speakingHold how long after such a frame it still does.
const (
	speakingLevel = -45.0
	speakingHold  = 300 * time.Millisecond
)

// broadcaster reads a source on a 20 ms clock and fans each frame out to the
// taps. Mute sends silence in the source's place (the source is still read,
// so a file keeps its time); hold stops reading it.
type broadcaster struct {
	src FrameSource

	mu    sync.Mutex
	taps  map[*confTap]struct{}
	muted bool
	held  bool
	ended bool // the source said EOF (or failed): silence from now on
}

func newBroadcaster(src FrameSource) *broadcaster {
	return &broadcaster{src: src, taps: map[*confTap]struct{}{}}
}

// run reads the source until ctx ends.
func (b *broadcaster) run(ctx context.Context, onEnd func()) {
	silence := make([]int16, codec.FrameSamples)
	var next frameNexter
	if b.src != nil {
		next = newFrameNexter(ctx, b.src)
	}
	t := time.NewTimer(codec.FrameDuration)
	defer t.Stop()
	due := time.Now()
	for {
		b.mu.Lock()
		muted, held, ended := b.muted, b.held, b.ended || b.src == nil
		b.mu.Unlock()
		frame := silence
		if !held && !ended {
			f, ok, err := next.next(codec.FrameDuration)
			switch {
			case ok:
				frame = f
			case err != nil:
				b.mu.Lock()
				b.ended = true
				b.mu.Unlock()
				if onEnd != nil {
					onEnd()
				}
			}
		}
		if muted || held {
			frame = silence
		}
		if &frame[0] == &silence[0] {
			// Each frame handed out is a slice of its own: the shared
			// encoder knows frames by their first sample's address.
			frame = make([]int16, codec.FrameSamples)
		}
		b.mu.Lock()
		for tp := range b.taps {
			tp.put(frame)
		}
		b.mu.Unlock()
		due = due.Add(codec.FrameDuration)
		if d := time.Until(due); d < -time.Second {
			due = time.Now() // far behind (a stall): start the clock again
		}
		if !sleepUntil(ctx, t, due) {
			return
		}
	}
}

func (b *broadcaster) set(muted, held *bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if muted != nil {
		b.muted = *muted
	}
	if held != nil {
		b.held = *held
	}
}

// tap returns a new leg's source; drop removes and closes it.
func (b *broadcaster) tap() *confTap {
	tp := &confTap{q: make(chan []int16, confTapDepth), done: make(chan struct{})}
	b.mu.Lock()
	b.taps[tp] = struct{}{}
	b.mu.Unlock()
	return tp
}

func (b *broadcaster) drop(tp *confTap) {
	b.mu.Lock()
	delete(b.taps, tp)
	b.mu.Unlock()
	tp.close()
}

// closeAll closes every tap (the conference has ended).
func (b *broadcaster) closeAll() {
	b.mu.Lock()
	taps := b.taps
	b.taps = map[*confTap]struct{}{}
	b.mu.Unlock()
	for tp := range taps {
		tp.close()
	}
}

// confTap is one leg's source: the broadcaster's frames, silence when it has
// none ready (a fresh slice, so the shared encoder does not take it for a
// frame it has seen). It never blocks (an ImmediateSource: the leg's sender
// takes a frame on its own 20 ms clock); once closed it ends (io.EOF).
type confTap struct {
	q       chan []int16
	done    chan struct{}
	once    sync.Once
	reading atomic.Bool  // the leg's sender has started: until then nothing queues
	last    atomic.Int64 // when it last read (Unix nanoseconds)
	trim    queueTrim    // used by the reader only
}

// tapIdle is how long a leg's sender may not read (a call on hold reads
// nothing) before what queued meanwhile counts as stale and is dropped.
const tapIdle = time.Second

func (tp *confTap) put(f []int16) {
	if !tp.reading.Load() {
		return // the leg still connects: its first frame must be the current one, not a stale queue
	}
	for {
		select {
		case tp.q <- f:
			return
		default:
		}
		select {
		case <-tp.q: // drop the oldest
		default:
		}
	}
}

func (tp *confTap) close() { tp.once.Do(func() { close(tp.done) }) }

// ReadFrame returns the next frame, or silence.
func (tp *confTap) ReadFrame() ([]int16, error) {
	tp.reading.Store(true)
	now := time.Now().UnixNano()
	if last := tp.last.Swap(now); last != 0 && time.Duration(now-last) > tapIdle {
	drain: // back from hold: only the newest frame is current
		for len(tp.q) > 1 {
			select {
			case <-tp.q:
			default:
				break drain
			}
		}
	}
	if tp.trim.excess(len(tp.q), 1) {
		select {
		case <-tp.q:
		default:
		}
	}
	select {
	case f := <-tp.q:
		return f, nil
	case <-tp.done:
		return nil, io.EOF
	default:
		return make([]int16, codec.FrameSamples), nil
	}
}

// Immediate marks confTap an ImmediateSource.
func (tp *confTap) Immediate() {}

// sharedEncoder encodes each frame once however many legs send it: a frame
// (known by the address of its first sample) encoded for one leg is handed
// to the others from a small cache. Frames come to it in the broadcaster's
// order, give or take a leg being a frame behind, so the Opus encoder's
// state follows one stream.
type sharedEncoder struct {
	mu    sync.Mutex
	enc   *codec.Encoder
	cache [16]struct {
		key     *int16
		payload []byte
	}
	next int
}

func newSharedEncoder() (*sharedEncoder, error) {
	enc, err := codec.NewEncoder(codec.EncoderConfig{})
	if err != nil {
		return nil, err
	}
	return &sharedEncoder{enc: enc}, nil
}

// Encode returns the frame's Opus payload; callers must not change it.
func (e *sharedEncoder) Encode(frame []int16) ([]byte, error) {
	if len(frame) == 0 {
		return nil, errors.New("client: shared encoder: empty frame")
	}
	key := &frame[0]
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.cache {
		if c.key == key {
			return c.payload, nil
		}
	}
	p, err := e.enc.Encode(frame)
	if err != nil {
		return nil, err
	}
	p = append([]byte(nil), p...) // the encoder may reuse its buffer
	e.cache[e.next].key, e.cache[e.next].payload = key, p
	e.next = (e.next + 1) % len(e.cache)
	return p, nil
}

// mixer sums its inputs every 20 ms into a sink.
type mixer struct {
	sink FrameSink

	mu     sync.Mutex
	inputs map[*mixInput]struct{}
}

func newMixer(sink FrameSink) *mixer { return &mixer{sink: sink, inputs: map[*mixInput]struct{}{}} }

// mixInput is one leg's sink: its frames queue for the mixer, and their level
// says whether the leg's participant is speaking.
type mixInput struct {
	mu     sync.Mutex
	q      [][]int16
	loudAt time.Time
	trim   queueTrim
}

// queueTrim keeps a queue that absorbs stalls from holding on to the delay
// they leave: when for a whole second (50 frames taken) the queue never
// held fewer than keep frames, one frame goes, so the delay shrinks back
// by 20 ms a second and audio is never cut by more than a frame at a time.
type queueTrim struct {
	taken, least int
}

// excess reports, as a frame is taken from a queue of n, whether to drop
// one more.
func (qt *queueTrim) excess(n, keep int) bool {
	if qt.taken == 0 || n < qt.least {
		qt.least = n
	}
	qt.taken++
	if qt.taken < 50 {
		return false
	}
	qt.taken = 0
	return qt.least > keep
}

func (m *mixer) input() *mixInput {
	in := &mixInput{}
	m.mu.Lock()
	m.inputs[in] = struct{}{}
	m.mu.Unlock()
	return in
}

func (m *mixer) drop(in *mixInput) {
	m.mu.Lock()
	delete(m.inputs, in)
	m.mu.Unlock()
}

// WriteFrame queues a copy of f (the jitter buffer reuses its frames).
func (in *mixInput) WriteFrame(f []int16) error {
	cp := append([]int16(nil), f...)
	loud := frameLevel(cp) > speakingLevel
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.q) >= confMixDepth {
		in.q = in.q[1:]
	}
	in.q = append(in.q, cp)
	if loud {
		in.loudAt = time.Now()
	}
	return nil
}

func (in *mixInput) pop() []int16 {
	in.mu.Lock()
	defer in.mu.Unlock()
	if len(in.q) == 0 {
		return nil
	}
	if in.trim.excess(len(in.q), 2) {
		in.q = in.q[1:]
	}
	f := in.q[0]
	in.q = in.q[1:]
	return f
}

// speaking reports whether a frame above speakingLevel came within
// speakingHold of now.
func (in *mixInput) speaking(now time.Time) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return !in.loudAt.IsZero() && now.Sub(in.loudAt) < speakingHold
}

// frameLevel is a frame's RMS level in dBFS (-inf for silence).
func frameLevel(f []int16) float64 {
	var sum float64
	for _, v := range f {
		sum += float64(v) * float64(v)
	}
	if sum == 0 {
		return math.Inf(-1)
	}
	return 10*math.Log10(sum/float64(len(f))) - 20*math.Log10(32768)
}

// run mixes every 20 ms until ctx ends, calling tick after each frame.
func (m *mixer) run(ctx context.Context, tick func()) {
	t := time.NewTimer(codec.FrameDuration)
	defer t.Stop()
	sum := make([]int32, codec.FrameSamples)
	due := time.Now()
	for {
		due = due.Add(codec.FrameDuration)
		if d := time.Until(due); d < -time.Second {
			due = time.Now()
		}
		if !sleepUntil(ctx, t, due) {
			return
		}
		clear(sum)
		m.mu.Lock()
		for in := range m.inputs {
			if f := in.pop(); f != nil {
				for i, v := range f {
					sum[i] += int32(v)
				}
			}
		}
		m.mu.Unlock()
		if m.sink != nil {
			out := make([]int16, codec.FrameSamples)
			for i, v := range sum {
				out[i] = int16(max(math.MinInt16, min(math.MaxInt16, v)))
			}
			if err := m.sink.WriteFrame(out); err != nil && !errors.Is(err, io.ErrClosedPipe) {
				// A failed recording must not stop the conference.
				m.sink = nil
			}
		}
		if tick != nil {
			tick()
		}
	}
}
