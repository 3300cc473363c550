package client

import (
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
	// whatever the source says: there is no silence suppression.
	Source FrameSource
	// Sink receives what the peer says; nil discards it (it is still counted).
	Sink FrameSink
	// OnSourceEnd is called once when Source returns io.EOF (for example to hang
	// up at the end of a file). It must not block.
	OnSourceEnd func()
	// OnRTP observes every received RTP header with its arrival time.
	OnRTP func(h rtp.Header, arrival time.Time)
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

// ReadFrame returns the oldest queued frame, or silence.
func (e *Echo) ReadFrame() ([]int16, error) {
	select {
	case f := <-e.q:
		return f, nil
	default:
		return make([]int16, codec.FrameSamples), nil
	}
}
