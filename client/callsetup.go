package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/signal"
	"github.com/pion/webrtc/v4"
)

func (s *Session) onOffer(sig *signal.Signal) {
	if sig.Conf != nil {
		s.onConfLeg(sig) // a conference's leg (conference.go)
		return
	}
	if s.cfg.OnIncoming == nil {
		// This device does not take calls (say, a CLI placing one); another
		// device of the user may. Stay silent rather than decline for them.
		return
	}
	in := s.newIncoming(sig)
	if in == nil {
		return
	}

	s.emit(Event{Event: "call", CallID: in.CallID, Peer: in.Peer, CallState: &CallState{State: StateRinging, Direction: "incoming"}})
	s.sendAsync(&signal.Signal{Kind: signal.KindRinging, CallID: in.CallID, To: in.Peer})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			delete(s.incoming, in.CallID)
			s.mu.Unlock()
			in.cancel()
		}()
		s.cfg.OnIncoming(in)
		if in.ctx.Err() != nil && in.take() {
			// Ringing ended before an answer: the caller hung up, or
			// another device of mine answered.
			s.emit(Event{Event: "call", CallID: in.CallID, Peer: in.Peer, CallState: &CallState{State: StateEnded, Reason: in.why(), Direction: "incoming"}})
			return
		}
		in.mu.Lock()
		handled := in.handled
		in.mu.Unlock()
		if !handled {
			in.Decline("declined")
		}
	}()
}

// newIncoming registers the offer sig as ringing here (so that the caller's
// trickled candidates wait with it), or returns nil if it is known already.
// The caller must end it (s.endIncoming) when it stops ringing.
func (s *Session) newIncoming(sig *signal.Signal) *Incoming {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.calls[sig.CallID] != nil || s.incoming[sig.CallID] != nil {
		return nil
	}
	in := &Incoming{CallID: sig.CallID, Peer: sig.From, s: s, offer: sig}
	in.ctx, in.cancel = context.WithCancel(s.ctx)
	s.incoming[sig.CallID] = in
	return in
}

// AnsweredElsewhere is the reason a call ends on a device of the callee when
// another of their devices answered it.
const AnsweredElsewhere = "answered on another device"

// Incoming is a verified call offer waiting for Answer or Decline.
type Incoming struct {
	CallID string
	Peer   string

	s      *Session
	offer  *signal.Signal
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	handled bool
	reason  string // why ringing stopped

	cands []webrtc.ICECandidateInit // the caller's, while ringing (guarded by Session.mu)
}

// Cancelled is closed when ringing stops before this device answered: the
// caller hung up, or another device of the user answered.
func (in *Incoming) Cancelled() <-chan struct{} { return in.ctx.Done() }

// stop ends the ringing for reason.
func (in *Incoming) stop(reason string) {
	in.mu.Lock()
	if in.reason == "" {
		in.reason = reason
	}
	in.mu.Unlock()
	in.cancel()
}

// why says why ringing stopped.
func (in *Incoming) why() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.reason == "" {
		return "caller hung up"
	}
	return in.reason
}

func (in *Incoming) take() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.handled {
		return false
	}
	in.handled = true
	return true
}

// Decline refuses the call with a reason the caller sees ("declined", "busy").
func (in *Incoming) Decline(reason string) {
	if !in.take() {
		return
	}
	if reason == "" {
		reason = "declined"
	}
	s := in.s
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	if err := s.sendSignal(ctx, &signal.Signal{Kind: signal.KindDecline, CallID: in.CallID, To: in.Peer, Reason: reason}); err != nil {
		s.c.log.Debug("decline not delivered", "err", err)
	}
	s.emit(Event{Event: "call", CallID: in.CallID, Peer: in.Peer, CallState: &CallState{State: StateEnded, Reason: reason, Direction: "incoming"}})
}

// Answer accepts the call, streams media and returns once it is connected.
func (in *Incoming) Answer(ctx context.Context, media Media) (*Call, error) {
	if !in.take() {
		return nil, fmt.Errorf("client: answer %s: already answered or declined", in.CallID)
	}
	s := in.s
	if in.ctx.Err() != nil {
		s.emit(Event{Event: "call", CallID: in.CallID, Peer: in.Peer, CallState: &CallState{State: StateEnded, Reason: in.why(), Direction: "incoming"}})
		return nil, fmt.Errorf("client: answer %s: %s", in.CallID, in.why())
	}
	c, err := s.newCall(ctx, in.CallID, in.Peer, false, in.offer.Relay, media)
	if err != nil {
		s.sendAsync(&signal.Signal{Kind: signal.KindDecline, CallID: in.CallID, To: in.Peer, Reason: "could not answer"})
		return nil, err
	}
	c.mu.Lock()
	c.peerDevice = in.offer.Device
	c.peerFP = signal.Fingerprints(in.offer.SDP)
	c.mu.Unlock()
	// Until the answer is sent, a failure must still tell the caller, who would
	// otherwise ring on until "no answer".
	failed := func(err error) error {
		s.sendAsync(&signal.Signal{Kind: signal.KindDecline, CallID: in.CallID, To: in.Peer, Reason: "could not answer"})
		return c.fail(err)
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: in.offer.SDP}); err != nil {
		return nil, failed(fmt.Errorf("client: answer: remote offer: %w", err))
	}
	s.mu.Lock()
	early := in.cands // the caller's candidates that came while ringing
	in.cands = nil
	s.mu.Unlock()
	c.remoteApplied(early)
	if err := c.addTrack(); err != nil {
		return nil, failed(err)
	}
	answer, err := c.pc.CreateAnswer(nil)
	if err != nil {
		return nil, failed(fmt.Errorf("client: answer: %w", err))
	}
	c.startTrickle()
	sdp, err := c.setLocalTrickle(answer)
	if err != nil {
		return nil, failed(fmt.Errorf("client: answer: local description: %w", err))
	}
	if err := s.sendSignal(ctx, &signal.Signal{Kind: signal.KindAnswer, CallID: c.ID, To: c.Peer, SDP: sdp}); err != nil {
		return nil, failed(fmt.Errorf("client: answer %s: %w", c.Peer, err))
	}
	c.trickleReady()
	if err := c.waitConnected(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Call places a call to peer and returns once media flows. Errors: ErrUnknownUser,
// ErrOffline, ErrDeclined, ErrRefused, ErrNoAnswer, ErrConnectFailed.
func (s *Session) Call(ctx context.Context, peer string, media Media) (*Call, error) {
	return s.place(ctx, peer, media, nil)
}

// legTarget says which conference a placed call is a leg of, and which
// device of the peer it calls.
type legTarget struct {
	conf, device string
	onCall       func(*Call) // called with the call once its offer went out
}

// place places a call, or with leg a conference's leg (which chooses no relay
// by probing: every relay on offer is used).
func (s *Session) place(ctx context.Context, peer string, media Media, leg *legTarget) (*Call, error) {
	if err := identity.CheckUser(peer); err != nil {
		return nil, fmt.Errorf("client: call: %w", err)
	}
	id := newCallID()
	relay := ""
	if leg == nil {
		relay = s.chooseRelay(ctx, id, peer)
	} else {
		s.mu.Lock()
		s.legConf[id] = leg.conf
		s.mu.Unlock()
	}
	c, err := s.newCall(ctx, id, peer, true, relay, media)
	if err != nil {
		return nil, err
	}
	offerSig := &signal.Signal{Kind: signal.KindOffer, CallID: c.ID, To: peer, Relay: relay}
	if leg != nil {
		c.mu.Lock()
		c.peerDevice = leg.device // only that device's answer counts
		c.mu.Unlock()
		offerSig.Conf, offerSig.Answerer = &signal.Conf{ID: leg.conf}, leg.device
	}
	if err := c.addTrack(); err != nil {
		return nil, c.fail(err)
	}
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		return nil, c.fail(fmt.Errorf("client: call: %w", err))
	}
	c.startTrickle()
	sdp, err := c.setLocalTrickle(offer)
	if err != nil {
		return nil, c.fail(fmt.Errorf("client: call: local description: %w", err))
	}
	offerSig.SDP = sdp
	if err := s.sendSignal(ctx, offerSig); err != nil {
		if errors.Is(err, ErrOffline) {
			err = fmt.Errorf("client: call %s: %w", peer, ErrOffline)
			if ok, xerr := s.c.UserExists(ctx, peer); xerr == nil && !ok {
				err = fmt.Errorf("client: call %s: %w", peer, ErrUnknownUser)
			}
		}
		return nil, c.fail(err)
	}
	c.trickleReady()
	if media.OnPlaced != nil {
		media.OnPlaced(c.ID)
	}
	if leg != nil && leg.onCall != nil {
		leg.onCall(c)
	}
	ring := time.NewTimer(s.cfg.RingTimeout)
	defer ring.Stop()
	rang := false
	ringing := func() {
		if !rang {
			rang = true
			s.emit(Event{Event: "call", CallID: c.ID, Peer: peer, CallState: &CallState{State: StateRinging, Direction: "outgoing"}})
		}
	}
	for {
		select {
		case sig := <-c.signals:
			switch sig.Kind {
			case signal.KindRinging:
				ringing()
				continue
			case signal.KindDecline:
				reason := sig.Reason
				if reason == "" {
					reason = "declined"
				}
				err := fmt.Errorf("client: call %s: %w", peer, ErrDeclined)
				switch {
				case strings.HasPrefix(reason, "refused:"):
					err = fmt.Errorf("client: call %s: %w by %s (%s)", peer, ErrRefused, peer, strings.TrimSpace(strings.TrimPrefix(reason, "refused:")))
				case reason != "declined":
					err = fmt.Errorf("client: call %s: %w (%s)", peer, ErrDeclined, reason)
				}
				return nil, c.failReason(reason, err)
			case signal.KindAnswer:
				// An answer can overtake the callee's "ringing" (sent on
				// its own); it rang all the same, and the caller's states
				// go calling, ringing, connected in that order.
				ringing()
				if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sig.SDP}); err != nil {
					return nil, c.fail(fmt.Errorf("client: call %s: remote answer: %w", peer, err))
				}
				c.remoteApplied(nil)
				c.mu.Lock()
				c.peerFP = signal.Fingerprints(sig.SDP)
				c.mu.Unlock()
				// Tell the callee's devices which one took the call.
				s.sendAsync(&signal.Signal{Kind: signal.KindAnswered, CallID: c.ID, To: peer, Answerer: sig.Device})
				if err := c.waitConnected(ctx); err != nil {
					return nil, err
				}
				return c, nil
			}
		case <-ring.C:
			c.end("no answer", true)
			<-c.Done()
			return nil, fmt.Errorf("client: call %s: %w", peer, ErrNoAnswer)
		case <-c.Done():
			if err := c.Err(); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("client: call %s: %w (%s)", peer, ErrDeclined, c.Reason())
		case <-ctx.Done():
			c.end("cancelled", true)
			<-c.Done()
			return nil, fmt.Errorf("client: call %s: %w", peer, ctx.Err())
		}
	}
}

func newCallID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func direction(outgoing bool) string {
	if outgoing {
		return "outgoing"
	}
	return "incoming"
}
