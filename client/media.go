package client

import (
	"context"
	"time"

	"github.com/pion/rtp"

	"github.com/parley/parley/codec"
)

// FrameSource supplies 20 ms frames (codec.FrameSamples samples of 48 kHz mono)
// to send. io.EOF ends the source; silence is sent after it.
type FrameSource interface {
	ReadFrame() ([]int16, error)
}

// FrameSink receives decoded 20 ms frames, gap-free and in order.
type FrameSink interface {
	WriteFrame([]int16) error
}

// Media says what a call sends and where what it receives goes.
type Media struct {
	// Source is read every 20 ms; nil sends silence. Packets flow at 50 a second
	// whatever the source says: there is no silence suppression. (On hold
	// the source is not read, and a heartbeat goes every 200 ms.)
	Source FrameSource
	// Sink receives what the peer says; nil discards it (it is still counted).
	Sink FrameSink
	// OnSourceEnd is called once when Source returns io.EOF (for example to hang
	// up at the end of a file). It must not block.
	OnSourceEnd func()
	// OnRTP observes every received RTP header with its arrival time.
	OnRTP func(h rtp.Header, arrival time.Time)
	// OnPlaced is called once by Session.Call with the call's id when the
	// offer has gone out, before the peer answers (a bot reports the id
	// then, and may hang up while it rings). It must not block. Unused by
	// Incoming.Answer.
	OnPlaced func(callID string)
	// Encoder, when set, encodes the frames read from Source (silence, a
	// muted call's frames and hold heartbeats use the call's own encoder):
	// a conference's legs share one, so a voice is encoded once for all of
	// them (conf_media.go).
	Encoder FrameEncoder
}

// FrameEncoder encodes a 20 ms frame as Opus.
type FrameEncoder interface {
	Encode(frame []int16) ([]byte, error)
}

// ImmediateSource is a FrameSource whose ReadFrame never blocks. The sender
// reads it on its 20 ms clock directly, not through a prefetch goroutine.
type ImmediateSource interface {
	FrameSource
	Immediate()
}

// Echo is a FrameSink and a FrameSource at once: what it hears it says back. The
// echo user answers calls with one. It holds at most a second of audio and says
// silence when it has nothing; it never blocks and never ends.
type Echo struct{ q chan []int16 }

// NewEcho returns an empty echo.
func NewEcho() *Echo { return &Echo{q: make(chan []int16, 50)} }

// WriteFrame queues a frame, dropping the oldest when a second is already queued.
func (e *Echo) WriteFrame(f []int16) error {
	for {
		select {
		case e.q <- f:
			return nil
		default:
			select {
			case <-e.q:
			default:
			}
		}
	}
}

// Immediate marks Echo as an [ImmediateSource].
func (e *Echo) Immediate() {}

// ReadFrame returns the oldest queued frame, or silence.
func (e *Echo) ReadFrame() ([]int16, error) {
	select {
	case f := <-e.q:
		return f, nil
	default:
		return make([]int16, codec.FrameSamples), nil
	}
}

// prefetch reads a FrameSource on its own goroutine, a few frames ahead, so the
// sender's 20 ms clock never waits on a slow source (a pipe on stdin) and ending
// a call never waits on a blocked read. Its goroutine ends when the source
// returns an error (io.EOF at the end); a read that blocks for ever — an idle
// pipe — is abandoned with the call, which does not wait for it. A file fills
// its queue; a live source (a microphone) never does: it hands out each frame
// when it has been captured (see Call.send).
type prefetch struct {
	frames chan []int16
	err    error // why the source ended; set before frames is closed
}

// frameNexter is how the sender reads its source: a prefetch, or an immediate
// source read directly.
type frameNexter interface {
	next(wait time.Duration) (frame []int16, ok bool, err error)
	// ready is how many frames wait to be taken: a prefetch's queue fills
	// from a file (or a pipe fed faster than real time) but not from a live
	// source, which hands out each frame when it has been captured. An
	// immediate source reports one.
	ready() int
}

type immediate struct{ src FrameSource }

func (i immediate) ready() int { return 1 }

func (i immediate) next(time.Duration) ([]int16, bool, error) {
	f, err := i.src.ReadFrame()
	return f, err == nil, err
}

// newFrameNexter reads src directly when it never blocks, else through a prefetch.
// A prefetch's goroutine ends with ctx (the call's): it never blocks on a
// full queue after the call has ended.
func newFrameNexter(ctx context.Context, src FrameSource) frameNexter {
	if _, ok := src.(ImmediateSource); ok {
		return immediate{src}
	}
	return newPrefetch(ctx, src)
}

func newPrefetch(ctx context.Context, src FrameSource) *prefetch {
	p := &prefetch{frames: make(chan []int16, prefetchAhead)}
	go func() {
		defer close(p.frames)
		for {
			f, err := src.ReadFrame()
			if err != nil {
				p.err = err
				return
			}
			select {
			case p.frames <- f:
			case <-ctx.Done():
				return
			}
		}
	}()
	return p
}

func (p *prefetch) ready() int { return len(p.frames) }

// prefetchAhead is how many frames a prefetch reads ahead.
const prefetchAhead = 10

// next returns the next frame if one is ready, waiting at most wait. ok is
// false when none is; err is set once the source has ended.
func (p *prefetch) next(wait time.Duration) (frame []int16, ok bool, err error) {
	var t <-chan time.Time
	if wait > 0 {
		timer := time.NewTimer(wait)
		defer timer.Stop()
		t = timer.C
	}
	select {
	case f, open := <-p.frames:
		if !open {
			return nil, false, p.err
		}
		return f, true, nil
	default:
	}
	if t == nil {
		return nil, false, nil
	}
	select {
	case f, open := <-p.frames:
		if !open {
			return nil, false, p.err
		}
		return f, true, nil
	case <-t:
		return nil, false, nil
	}
}
