package client

import (
	"fmt"
	"strconv"
	"time"

	"github.com/parley/parley/wire/signal"
	"github.com/parley/parley/wire/snapi"
)

// Incoming frames. The supernode connection's reader hands every frame to
// deliver: presence pushes go to the presence state, IM envelopes to the
// messenger, and call signals, once verified and seen for the first time, to
// the one handler their kind has in the session's dispatch table. Signals
// about an established call reach the call through forCall, which checks that
// they come from the call's peer device.

// signalHandler handles one verified, first-seen signal (on the supernode
// reader goroutine: it must not block).
type signalHandler func(*signal.Signal)

// dispatchTable returns the session's handler for every signal kind.
func (s *Session) dispatchTable() map[string]signalHandler {
	toCaller := func(c *Call, sig *signal.Signal) { // ringing, answer, decline: for the caller waiting in Call
		select {
		case c.signals <- sig:
		default:
		}
	}
	return map[string]signalHandler{
		signal.KindOffer:      s.onOffer,
		signal.KindRinging:    s.forCall(toCaller),
		signal.KindAnswer:     s.forCall(toCaller),
		signal.KindDecline:    s.forCall(toCaller),
		signal.KindCandidate:  s.onCandidate,
		signal.KindAnswered:   s.onAnswered,
		signal.KindHangup:     s.onHangup,
		signal.KindPath:       s.forCall((*Call).onPathSignal),
		signal.KindHold:       s.forCall((*Call).onHoldSignal),
		signal.KindResume:     s.forCall((*Call).onHoldSignal),
		signal.KindRestart:    s.forCall((*Call).onRestartSignal),
		signal.KindReoffer:    s.forCall((*Call).onReofferSignal),
		signal.KindReanswer:   s.forCall((*Call).onReanswerSignal),
		signal.KindProbe:      s.onProbe,
		signal.KindProbeReply: s.onProbeReply,
		signal.KindStatus:     s.onStatus,
		signal.KindContacts:   func(*signal.Signal) { kick(s.contactsKick) },
		signal.KindConf:       s.onConf,
	}
}

// deliver handles a frame from the supernode (on its reader goroutine).
func (s *Session) deliver(f snapi.Frame) {
	<-s.ready
	if f.Type == snapi.TypePresence {
		s.onPresence(f)
		return
	}
	if isEnvelope(f.Payload) {
		s.im.enqueue(f.Payload, ViaSupernode)
		return
	}
	sig, err := signal.Decode(f.Payload)
	if err != nil {
		s.c.log.Debug("dropping undecodable payload", "from", f.From, "err", err)
		return
	}
	now := time.Now()
	if err := sig.Verify(s.c.loginKey(), f.From, s.user, now); err != nil {
		s.c.log.Warn("refusing signal", "from", f.From, "kind", sig.Kind, "err", err)
		s.refused(sig, f.From, err)
		return
	}
	if !s.firstSight(sig, now) {
		s.c.log.Warn("refusing a replayed signal", "from", f.From, "kind", sig.Kind, "call", sig.CallID)
		return
	}
	if h := s.handlers[sig.Kind]; h != nil {
		h(sig)
	}
}

// forCall adapts a handler of a call's signal: it runs only for a call of
// this session whose peer device sent the signal.
func (s *Session) forCall(h func(*Call, *signal.Signal)) signalHandler {
	return func(sig *signal.Signal) {
		if c := s.call(sig.CallID); c != nil && c.Peer == sig.From && c.fromPeer(sig) {
			h(c, sig)
		}
	}
}

// ringing returns the incoming call sig is about while it still rings, if
// sig comes from the device that offered it.
func (s *Session) ringing(sig *signal.Signal) *Incoming {
	s.mu.Lock()
	in := s.incoming[sig.CallID]
	s.mu.Unlock()
	if in != nil && in.Peer == sig.From && in.offer.Device == sig.Device {
		return in
	}
	return nil
}

// onHangup stops a call ringing here, or ends an established one.
func (s *Session) onHangup(sig *signal.Signal) {
	if in := s.ringing(sig); in != nil {
		in.stop("caller hung up")
	}
	s.forCall(func(c *Call, sig *signal.Signal) {
		reason := "remote hangup"
		if sig.Reason != "" && sig.Reason != "hangup" {
			reason = sig.From + ": " + sig.Reason
		}
		c.end(reason, false)
	})(sig)
}

// onAnswered: another device of mine took the call; stop ringing, or end
// my side if I answered too late.
func (s *Session) onAnswered(sig *signal.Signal) {
	if sig.Answerer == s.device {
		return // this device took the call
	}
	if in := s.ringing(sig); in != nil {
		in.stop(AnsweredElsewhere)
	}
	s.forCall(func(c *Call, _ *signal.Signal) {
		if !c.Outgoing {
			c.end(AnsweredElsewhere, false)
		}
	})(sig)
}

// onCandidate takes a trickled candidate: kept by a ringing call until it is
// answered, applied by an established one.
func (s *Session) onCandidate(sig *signal.Signal) {
	cand, ok := candidateFromWire(sig)
	if !ok {
		return
	}
	// Under s.mu, so that a candidate lands either with the ringing
	// Incoming (before Answer registers the call) or with the call.
	s.mu.Lock()
	c := s.calls[sig.CallID]
	if in := s.incoming[sig.CallID]; c == nil && in != nil && in.Peer == sig.From && in.offer.Device == sig.Device && len(in.cands) < signal.MaxTrickled {
		in.cands = append(in.cands, cand)
	}
	s.mu.Unlock()
	if c != nil && c.Peer == sig.From && c.fromPeer(sig) {
		c.addRemoteCandidate(cand)
	}
}

// onProbeReply hands the callee's relay round trips to the caller waiting
// in chooseRelay.
func (s *Session) onProbeReply(sig *signal.Signal) {
	s.mu.Lock()
	ch := s.probes[sig.CallID]
	want := s.probePeer[sig.CallID]
	s.mu.Unlock()
	if ch != nil && want == sig.From {
		select {
		case ch <- rttsFromWire(sig.RTTs):
		default:
		}
	}
}

// refused handles a signal that failed verification: an offer is declined; an
// answer ends the outgoing call it answers, if that call is still waiting for
// one. Nothing else is acted on: an unverified signal must not end anything.
func (s *Session) refused(sig *signal.Signal, from string, err error) {
	reason := "refused: " + err.Error()
	switch sig.Kind {
	case signal.KindOffer:
		s.emit(Event{Event: "call", CallID: sig.CallID, Peer: from, CallState: &CallState{State: StateEnded, Reason: reason, Direction: "incoming"}})
		s.sendAsync(&signal.Signal{Kind: signal.KindDecline, CallID: sig.CallID, To: from, Reason: "refused: signature check failed"})
	case signal.KindAnswer:
		if c := s.call(sig.CallID); c != nil && c.Outgoing && c.Peer == from && !c.isStarted() {
			c.failAsync(fmt.Errorf("client: call %s: %w: %w", from, ErrRefused, err))
		}
	}
}

// firstSight records a verified signal and reports whether it is new: a
// supernode may replay a signed signal, but not within the window unseen, and
// outside it the timestamp check refuses it. A signal is named by its user,
// device, time and sequence number: each device counts its own, so two
// devices of one user answering the same offer in the same millisecond send
// signals with the same time and number (a name without the device took
// one's answer for a replay of the other's candidate).
func (s *Session) firstSight(sig *signal.Signal, now time.Time) bool {
	key := sig.From + "|" + sig.Device + "|" + strconv.FormatInt(sig.TS, 10) + "|" + strconv.FormatUint(sig.Seq, 10)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.seen[key]; dup {
		return false
	}
	if len(s.seen) > 1024 {
		for k, t := range s.seen {
			if now.Sub(t) > 2*signal.Window {
				delete(s.seen, k)
			}
		}
	}
	s.seen[key] = now
	return true
}

func (s *Session) call(id string) *Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[id]
}
