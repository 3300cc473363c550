// Package callscript holds the scripted call actions of the CLI.
//
// A [Script] drives a placed call the way `parley call` does: it puts the
// call on hold and resumes it at given times, and hangs up after a given
// time, or at the end of the audio played once the peer has had its last
// frames, or when its context ends. Every timer it starts belongs to
// [Script.Run] and is stopped before Run returns; it starts no goroutine.
//
// An [Answerer] is the answering side, as `parley listen` does: it declines
// incoming calls, or answers one at a time after letting it ring, telling a
// second caller "busy", and counts the calls that have ended.
package callscript

import (
	"context"
	"sync"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/codec"
)

// Call is the part of a *client.Call a Script drives.
type Call interface {
	Hold(on bool)
	Hangup(reason string)
	Done() <-chan struct{}
	Err() error
	Stats() client.Stats
}

// Config is a script. The zero value waits for the call to end and hangs up
// when Run's context ends.
type Config struct {
	// For hangs up this long after Run starts; 0 = no limit. With For set,
	// the end of the source does not end the call.
	For time.Duration
	// HoldAt puts the call on hold this long after Run starts; 0 = never.
	HoldAt time.Duration
	// HoldFor resumes a call put on hold by HoldAt after this long; 0 = it
	// stays on hold.
	HoldFor time.Duration
	// DrainPackets is how many packets the call must have sent after the
	// end of its source before hanging up: the packets that follow the last
	// frames release them from the peer's jitter buffer (which holds up to
	// codec.DefaultJitterDepth packets past a lost one). Default
	// codec.DefaultJitterDepth+1.
	DrainPackets uint64
	// MaxDrain bounds the wait after the end of the source, should the call
	// stop sending. Default 1 s.
	MaxDrain time.Duration
	// Reason is the reason the script hangs up with. Default "hangup".
	Reason string
}

// Script is a Config ready to drive one call.
type Script struct {
	cfg       Config
	sourceEnd chan struct{}
	once      sync.Once
}

// New returns a script for one call.
func New(cfg Config) *Script {
	if cfg.DrainPackets == 0 {
		cfg.DrainPackets = codec.DefaultJitterDepth + 1
	}
	if cfg.MaxDrain <= 0 {
		cfg.MaxDrain = time.Second
	}
	if cfg.Reason == "" {
		cfg.Reason = "hangup"
	}
	return &Script{cfg: cfg, sourceEnd: make(chan struct{})}
}

// SourceEnded says the call's source has ended: use it as the call's
// client.Media.OnSourceEnd. Unless Config.For is set, Run then hangs up once
// the peer has had the last frames. It never blocks and may be called more
// than once.
func (s *Script) SourceEnded() {
	s.once.Do(func() { close(s.sourceEnd) })
}

// Run drives call until it ends, and returns call.Err(). It hangs up when
// ctx ends, when Config.For has passed, or after the end of the source (see
// [Script.SourceEnded]) once the peer has had the last frames: when
// DrainPackets more packets have gone and one measured round trip has
// passed, or MaxDrain at most.
func (s *Script) Run(ctx context.Context, call Call) error {
	hold, stopHold := after(s.cfg.HoldAt)
	defer stopHold()
	timeout, stopTimeout := after(s.cfg.For)
	defer stopTimeout()
	sourceEnd := s.sourceEnd
	if s.cfg.For > 0 {
		sourceEnd = nil
	}
	var resume <-chan time.Time
loop:
	for {
		select {
		case <-call.Done():
			return call.Err()
		case <-hold:
			call.Hold(true)
			var stopResume func() bool
			resume, stopResume = after(s.cfg.HoldFor)
			defer stopResume()
		case <-resume:
			call.Hold(false)
		case <-sourceEnd:
			s.drain(ctx, call)
			break loop
		case <-timeout:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	call.Hangup(s.cfg.Reason)
	<-call.Done()
	return call.Err()
}

// drain waits until the peer has had the frames sent before the source
// ended: DrainPackets more packets sent and one round trip passed (as far as
// the call has measured it), checked at every frame, for MaxDrain at most.
func (s *Script) drain(ctx context.Context, call Call) {
	start := time.Now()
	sent := call.Stats().PacketsSent
	bound := time.NewTimer(s.cfg.MaxDrain)
	defer bound.Stop()
	tick := time.NewTicker(codec.FrameDuration)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-call.Done():
			return
		case <-bound.C:
			return
		case <-tick.C:
			st := call.Stats()
			rtt := time.Duration(st.RTTMS * float64(time.Millisecond))
			if st.PacketsSent >= sent+s.cfg.DrainPackets && time.Since(start) >= rtt {
				return
			}
		}
	}
}

// Place places what `parley call` does: a call to one user, or a conference
// with a group's other members and the users (more than one user, or a
// group), and runs the script on it until it ends.
func (s *Script) Place(ctx context.Context, sess *client.Session, group string, users []string, media client.Media) error {
	if group == "" && len(users) == 1 {
		call, err := sess.Call(ctx, users[0], media)
		if err != nil {
			return err
		}
		return s.Run(ctx, call)
	}
	cf, err := sess.StartConference(ctx, client.ConfConfig{Group: group, Users: users, Media: media})
	if err != nil {
		return err
	}
	return s.Run(ctx, cf)
}

// after returns a channel that receives once d has passed (nil, never, for
// d <= 0) and a function that stops its timer.
func after(d time.Duration) (<-chan time.Time, func() bool) {
	if d <= 0 {
		return nil, func() bool { return false }
	}
	t := time.NewTimer(d)
	return t.C, t.Stop
}
