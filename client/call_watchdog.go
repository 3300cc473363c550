package client

import (
	"time"
)

// The media watchdog.
//
// Both ends of a call send a packet at least every holdBeat (50 a second in
// speech and in silence, a heartbeat every 200 ms on hold; a browser sends
// comfort noise at 50 a second), so a call that has heard nothing for
// mediaSilence has lost its path: a NAT got a new address, the network
// changed, a relay went away. ICE notices the same only after its
// disconnected timeout (2 s, checked with each consent check, every 2 s: 2 to 4 s), because
// its checks are paced for consent, not for audio. The watchdog asks for an
// ICE restart at once instead: the caller restarts, the callee asks the
// caller to (call_restart.go).
//
// A stall of this process is not a dead path: the packets wait in the
// socket and are read in a burst once it runs again. So silence must still
// hold mediaConfirm after the watchdog first saw it, the reader having had
// that long to drain what waited. A stall of the peer longer than
// mediaSilence does restart ICE on a path that was working; that costs a
// round trip of checks on a call that has just gone that long without
// audio anyway.

const (
	// mediaSilence is how long a started call may hear nothing before its
	// path is taken for dead: two hold heartbeats.
	mediaSilence = 400 * time.Millisecond
	// mediaConfirm is how long silence must go on after the watchdog first
	// saw it.
	mediaConfirm = 100 * time.Millisecond
	// mediaTick is the watchdog's tick.
	mediaTick = 50 * time.Millisecond
	// mediaAskAgain: while silence goes on, the restart is asked for again
	// this often (a request made while one is under way is folded into it,
	// and one about a path a restart has since replaced is dropped).
	mediaAskAgain = 2 * time.Second
)

// silenceWatch decides, tick by tick, when a call's silence means a dead
// path. It holds no clock of its own: now and the last packet's time are
// given, so a test can run it on any timeline.
type silenceWatch struct {
	since   time.Time // the reference: the call's start or the last restart that completed
	seenAt  time.Time // when this silence was first seen (zero: none now)
	askedAt time.Time // when the watchdog last asked
}

// tick reports whether to ask for a restart now, given the time of the last
// packet received (zero: none yet, and then ICE's own timeout is the guard:
// a peer that has never sent may not have started to).
func (w *silenceWatch) tick(now, lastPacket time.Time) bool {
	last := w.since
	if lastPacket.After(last) {
		last = lastPacket
	}
	if lastPacket.IsZero() || now.Sub(last) < mediaSilence {
		w.seenAt = time.Time{}
		return false
	}
	if w.seenAt.IsZero() || w.seenAt.Before(last) {
		w.seenAt = now // confirm on a later tick
	}
	if now.Sub(w.seenAt) < mediaConfirm {
		return false
	}
	if !w.askedAt.IsZero() && now.Sub(w.askedAt) < mediaAskAgain && !w.askedAt.Before(last) {
		return false
	}
	w.askedAt = now
	return true
}

// restarted moves the reference to the end of a restart: silence counts
// from there.
func (w *silenceWatch) restarted(at time.Time) {
	if at.After(w.since) {
		w.since = at
		w.seenAt = time.Time{}
	}
}

// watchMedia is the watchdog's loop, for the life of a started call.
func (c *Call) watchMedia() {
	t := time.NewTicker(mediaTick)
	defer t.Stop()
	w := silenceWatch{since: time.Now()}
	for {
		select {
		case <-c.ctx.Done():
			return
		case now := <-t.C:
			w.restarted(c.lastRestart())
			last := c.lastPacket()
			if w.tick(now, last) {
				c.s.c.log.Info("no media; asking for an ICE restart", "call", c.ID, "silent", now.Sub(last).Round(time.Millisecond))
				c.requestRestart(restartRequest{why: "no media for " + mediaSilence.String(), media: true})
			}
		}
	}
}

// lastPacket is when the call last received an RTP packet (zero: never).
func (c *Call) lastPacket() time.Time {
	c.recvMu.Lock()
	defer c.recvMu.Unlock()
	return c.rx.last
}

// pathDown reports whether the call's path is down: ICE says so, or nothing
// has been heard for mediaSilence.
func (c *Call) pathDown() bool {
	if !c.iceConnected() {
		return true
	}
	last := c.lastPacket()
	return !last.IsZero() && time.Since(last) >= mediaSilence
}
