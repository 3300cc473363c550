package client

import (
	"context"
	"time"

	"github.com/parley/parley/wire/signal"
	"github.com/pion/webrtc/v4"
)

// Trickle ICE.
//
// A call's offer and answer go out as soon as they are made, without waiting
// for candidate gathering (a server-reflexive candidate costs a round trip to
// the supernode's STUN service, a relayed one two or three to its relay):
// each candidate follows in a signed "candidate" signal the moment it is
// found, through the same supernode connection as the offer or answer before
// it (so not necessarily in order). Candidates that arrive before the
// description they belong to is applied wait for it: a callee keeps the
// caller's while it rings (Incoming), a caller the callee's until the answer
// is applied. Only the first negotiation
// trickles; an ICE restart's re-offer and re-answer carry all their
// candidates (restart.go).

// trickleState is a call's trickle ICE state, guarded by Call.candMu.
type trickleState struct {
	on        bool                         // this side's first gathering is running: send what it finds
	ready     bool                         // the offer or answer is out: candidates may follow it
	queue     []webrtc.ICECandidateInit    // found before that
	out       chan webrtc.ICECandidateInit // to the sender goroutine
	remoteSet bool                         // the peer's description is applied
	remote    []webrtc.ICECandidateInit    // the peer's, received before that
	received  int                          // the peer\'s, in all
}

// startTrickle makes this side send its candidates as it finds them, from
// the next SetLocalDescription on, once trickleReady says the description
// is out.
func (c *Call) startTrickle() {
	c.candMu.Lock()
	c.trickle.on = true
	c.trickle.out = make(chan webrtc.ICECandidateInit, signal.MaxTrickled)
	out := c.trickle.out
	c.candMu.Unlock()
	c.pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		c.onLocalCandidate(cand) // port mapping (call_portmap.go)
		c.candMu.Lock()
		defer c.candMu.Unlock()
		switch {
		case !c.trickle.on:
		case cand == nil: // this gathering is complete; a restart's is not trickled
			c.trickle.on = false
		case !c.trickle.ready:
			if len(c.trickle.queue) < signal.MaxTrickled {
				c.trickle.queue = append(c.trickle.queue, cand.ToJSON())
			}
		default:
			select {
			case out <- cand.ToJSON():
			default:
			}
		}
	})
	c.goOwned(func() { c.sendCandidates(out) })
}

// stopTrickle ends the trickling of this side's candidates: an ICE restart
// gathers anew, and its candidates go in its description (a restart can come
// before the first gathering has completed, whose end pion then never
// reports).
func (c *Call) stopTrickle() {
	c.candMu.Lock()
	c.trickle.on = false
	c.candMu.Unlock()
}

// trickleReady lets the candidates found so far, and those to come, follow
// the offer or answer just sent.
func (c *Call) trickleReady() {
	c.candMu.Lock()
	defer c.candMu.Unlock()
	c.trickle.ready = true
	for _, cand := range c.trickle.queue {
		select {
		case c.trickle.out <- cand:
		default:
		}
	}
	c.trickle.queue = nil
}

// sendCandidates sends this side's candidates to the peer as they come, each
// without waiting for the supernode to acknowledge the one before: in turn,
// the last of half a dozen candidates (host, server-reflexive, relayed) left
// half a dozen supernode round trips after it was found. They may arrive in
// any order; ICE does not mind.
func (c *Call) sendCandidates(out <-chan webrtc.ICECandidateInit) {
	for {
		select {
		case <-c.ctx.Done():
			return
		case cand := <-out:
			c.goOwned(func() {
				ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
				err := c.s.sendSignal(ctx, &signal.Signal{Kind: signal.KindCandidate, CallID: c.ID, To: c.Peer, Candidate: candidateToWire(cand)})
				cancel()
				if err != nil && c.ctx.Err() == nil {
					c.s.c.log.Debug("sending a candidate", "call", c.ID, "err", err)
				}
			})
		}
	}
}

// addRemoteCandidate applies a candidate of the peer's, or keeps it until
// the peer's description is applied.
func (c *Call) addRemoteCandidate(cand webrtc.ICECandidateInit) {
	// Only for the first negotiation, and only so many: a peer cannot keep
	// adding addresses for this side to check.
	if c.isStarted() {
		return
	}
	c.candMu.Lock()
	if c.trickle.received >= signal.MaxTrickled {
		c.candMu.Unlock()
		return
	}
	c.trickle.received++
	if !c.trickle.remoteSet {
		c.trickle.remote = append(c.trickle.remote, cand)
		c.candMu.Unlock()
		return
	}
	c.candMu.Unlock()
	c.applyCandidates([]webrtc.ICECandidateInit{cand})
}

// remoteApplied follows SetRemoteDescription of the peer's offer or answer:
// the candidates kept for it (and early, those an Incoming kept) are applied.
func (c *Call) remoteApplied(early []webrtc.ICECandidateInit) {
	c.candMu.Lock()
	c.trickle.remoteSet = true
	c.trickle.received += len(early)
	kept := append(early, c.trickle.remote...)
	c.trickle.remote = nil
	c.candMu.Unlock()
	c.applyCandidates(kept)
}

func (c *Call) applyCandidates(cands []webrtc.ICECandidateInit) {
	for _, cand := range cands {
		c.notePeerMapped(cand)
		if err := c.pc.AddICECandidate(cand); err != nil {
			c.s.c.log.Debug("a candidate of the peer's", "call", c.ID, "err", err)
		}
	}
}

// candidateFromWire reads a "candidate" signal's candidate.
func candidateFromWire(sig *signal.Signal) (webrtc.ICECandidateInit, bool) {
	c := sig.Candidate
	if c == nil || c.Candidate == "" {
		return webrtc.ICECandidateInit{}, false
	}
	return webrtc.ICECandidateInit{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}, true
}

// candidateToWire is a candidate as a "candidate" signal carries it.
func candidateToWire(c webrtc.ICECandidateInit) *signal.Candidate {
	return &signal.Candidate{Candidate: c.Candidate, SDPMid: c.SDPMid, SDPMLineIndex: c.SDPMLineIndex, UsernameFragment: c.UsernameFragment}
}

// setLocalTrickle applies a local description and returns it at once, with
// whatever candidates are already known; the rest trickle.
func (c *Call) setLocalTrickle(d webrtc.SessionDescription) (string, error) {
	if err := c.pc.SetLocalDescription(d); err != nil {
		return "", err
	}
	if ld := c.pc.LocalDescription(); ld != nil {
		return ld.SDP, nil
	}
	return d.SDP, nil
}
