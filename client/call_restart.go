package client

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/parley/parley/wire/signal"
	"github.com/pion/webrtc/v4"
)

// ICE restart.
//
// A connected call whose path dies (the relay it goes through went away with a
// supernode, a NAT rebound its mapping, the network changed) restarts ICE over
// signalling and continues on another relay or path. The caller drives every
// restart, so two restarts never cross (no glare): it sets the peer
// connection's ICE servers to those of the supernode it is attached to now
// (pion's SetConfiguration hands them to the ICE agent for its next
// gathering), creates an offer with ICERestart, gathers, and sends it as a
// signed "re-offer"; the callee takes the new ICE servers of its own supernode
// the same way, answers with a signed "re-answer", and both check that the
// other's DTLS fingerprints are those of the call's first offer and answer: the
// DTLS session, and so the keys media is encrypted with, carry on unchanged.
// The callee asks the caller to restart with a signed "restart" signal.
//
// Triggers: the call has heard nothing for mediaSilence (call_watchdog.go:
// the peer sends at least every 200 ms, so that is a dead path, noticed
// about 0.5 s after the last packet), the session re-attached to another
// supernode while a call goes through a relay of the old one (failover.go),
// or the ICE connection has been "disconnected" for iceDisconnectedGrace
// (ICE's own timeout, 2 s; a path that still carries consent checks but no
// media is the watchdog's). Once the new pair is selected, both
// ends tell each other their view again ("path" signals) and emit a "path" event.

const (
	// iceDisconnectedGrace is how long ICE may stay disconnected before a
	// restart is asked for.
	iceDisconnectedGrace = 500 * time.Millisecond
	// restartTimeout bounds one restart: a connection, the re-offer, the
	// re-answer and the new checks.
	restartTimeout = 8 * time.Second
	// restartTries is how many times in a row the caller tries.
	restartTries = 3
	// restartQuiet: a request arriving this soon after a successful restart,
	// with ICE connected, is taken as being about the old path and ignored.
	restartQuiet = 3 * time.Second
)

type restartRequest struct {
	why string
	at  time.Time
	// media: the request comes from the media watchdog (call_watchdog.go),
	// which counts silence only since the last restart ended: it stands
	// even while ICE still reports the path connected.
	media bool
}

// requestRestart asks for an ICE restart; requests made while one is pending
// are folded into it.
func (c *Call) requestRestart(req restartRequest) {
	req.at = time.Now()
	select {
	case c.restartReq <- req:
	default:
	}
}

// restartLoop serves restart requests for the life of the call.
func (c *Call) restartLoop() {
	var lastStart time.Time
	for {
		var req restartRequest
		select {
		case <-c.ctx.Done():
			return
		case req = <-c.restartReq:
		}
		lastDone := c.lastRestart()
		if req.at.Before(lastStart) || (req.media && req.at.Before(lastDone)) ||
			(!req.media && c.iceConnected() && time.Since(lastDone) < restartQuiet) {
			continue // about a path a restart has replaced since
		}
		if !c.Outgoing {
			lastStart = time.Now()
			c.askRestart(req.why)
			c.restartedAt.Store(time.Now().UnixNano())
			continue
		}
		lastStart = time.Now()
		for try := 1; try <= restartTries; try++ {
			err := c.restartICE(req.why)
			if err == nil {
				c.restartedAt.Store(time.Now().UnixNano())
				break
			}
			if c.ctx.Err() != nil {
				return
			}
			c.s.c.log.Warn("ICE restart failed", "call", c.ID, "try", try, "err", err)
			t := time.NewTimer(500 * time.Millisecond)
			select {
			case <-c.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}
}

// askRestart is the callee's side: it asks the caller to restart, and asks
// again until a re-offer comes. A request sent while the caller is itself
// reattaching reaches only the caller's other devices (or none).
func (c *Call) askRestart(why string) {
	before := c.reoffers.Load()
	for try := 1; try <= restartTries; try++ {
		c.s.c.log.Info("asking the caller to restart ICE", "call", c.ID, "why", why, "try", try)
		ctx, cancel := context.WithTimeout(c.ctx, signalRetryFor+time.Second)
		err := c.s.sendSignal(ctx, &signal.Signal{Kind: signal.KindRestart, CallID: c.ID, To: c.Peer, Reason: why})
		cancel()
		if err != nil && c.ctx.Err() == nil {
			c.s.c.log.Warn("asking for an ICE restart", "call", c.ID, "err", err)
		}
		t := time.NewTimer(restartAskAgain)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if c.reoffers.Load() != before {
			return
		}
	}
}

// lastRestart is when the last ICE restart ended (zero: none yet).
func (c *Call) lastRestart() time.Time {
	if ns := c.restartedAt.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// restartReattached is the reason of the restart request a callee sends
// when it reattaches during a call whose path is down.
const restartReattached = "reattached"

// reofferAgainAfter: a callee's request for a restart arriving this long
// after the re-offer went out means the re-offer was lost.
const reofferAgainAfter = time.Second

// restartAskAgain is how long a callee waits for the re-offer it asked for
// before asking again.
const restartAskAgain = 1500 * time.Millisecond

func (c *Call) iceConnected() bool {
	st := c.pc.ICEConnectionState()
	return st == webrtc.ICEConnectionStateConnected || st == webrtc.ICEConnectionStateCompleted
}

// restartICE is the caller's side of one restart.
func (c *Call) restartICE(why string) error {
	c.negMu.Lock()
	defer c.negMu.Unlock()
	c.stopTrickle()
	start := time.Now()
	ctx, cancel := context.WithTimeout(c.ctx, restartTimeout)
	defer cancel()
	conn, err := c.s.waitConn(ctx)
	if err != nil {
		return fmt.Errorf("client: ICE restart: %w", err)
	}
	if err := c.pc.SetConfiguration(c.s.iceConfig(conn.ICEServers(), c.relayChoice)); err != nil {
		return fmt.Errorf("client: ICE restart: configuration: %w", err)
	}
	var sdp string
	if pending := c.pc.PendingLocalDescription(); pending != nil && c.pc.SignalingState() == webrtc.SignalingStateHaveLocalOffer {
		// An earlier try's re-offer never got its answer: its ICE
		// credentials are already in force, so send it again (pion cannot
		// roll a local offer back).
		sdp = pending.SDP
		if ld := c.pc.LocalDescription(); ld != nil {
			sdp = ld.SDP // with the candidates gathered since
		}
	} else {
		offer, err := c.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
		if err != nil {
			return fmt.Errorf("client: ICE restart: offer: %w", err)
		}
		if sdp, err = c.setLocal(ctx, offer); err != nil {
			return err
		}
	}
	tag := strconv.FormatUint(c.restarts.Add(1), 10)
	for len(c.reanswers) > 0 { // answers to earlier tries
		<-c.reanswers
	}
	c.s.c.log.Info("restarting ICE", "call", c.ID, "peer", c.Peer, "why", why, "supernode", c.s.Supernode())
	reoffer := func() error {
		select {
		case <-c.peerAsks: // asked before this re-offer went out
		default:
		}
		if err := c.s.sendSignal(ctx, &signal.Signal{Kind: signal.KindReoffer, CallID: c.ID, To: c.Peer, SDP: sdp, Attempt: tag}); err != nil {
			return fmt.Errorf("client: ICE restart: %w", err)
		}
		return nil
	}
	if err := reoffer(); err != nil {
		return err
	}
	sentAt := time.Now()
	var answer *signal.Signal
	for answer == nil {
		select {
		case sig := <-c.reanswers:
			if sig.Attempt == tag {
				answer = sig
			}
		case why := <-c.peerAsks:
			// The callee asks again well after the re-offer went out, or
			// says it has just reattached: it never got it (say, it went
			// to a session of the callee that a network change had left
			// half-open). The same re-offer again.
			// (pion holds relay pairs back for SetRelayAcceptanceMinWait
			// from the restart, which has passed by now: the call may
			// settle on a relay pair before a direct one is punched.)
			if why != restartReattached && time.Since(sentAt) < reofferAgainAfter {
				continue
			}
			c.s.c.log.Info("the peer is still asking; sending the re-offer again", "call", c.ID, "peer", c.Peer)
			if err := reoffer(); err != nil {
				return err
			}
			sentAt = time.Now()
		case <-ctx.Done():
			return fmt.Errorf("client: ICE restart: no re-answer: %w", ctx.Err())
		}
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer.SDP}); err != nil {
		return fmt.Errorf("client: ICE restart: remote answer: %w", err)
	}
	if err := c.waitICE(ctx); err != nil {
		return err
	}
	c.s.c.log.Info("ICE restarted", "call", c.ID, "took", time.Since(start))
	c.updatePath()
	return nil
}

// waitICE waits for the ICE connection to be up again.
func (c *Call) waitICE(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !c.iceConnected() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("client: ICE restart: not connected: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// onReoffer is the callee's side of a restart (in a goroutine of the call).
func (c *Call) onReoffer(sig *signal.Signal) {
	c.negMu.Lock()
	defer c.negMu.Unlock()
	c.stopTrickle()
	c.reoffers.Add(1)
	if !c.samePeerFingerprints(sig.SDP) {
		c.s.c.log.Warn("refusing a re-offer with other DTLS fingerprints", "call", c.ID, "peer", c.Peer)
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, restartTimeout)
	defer cancel()
	if sig.Attempt == c.answeredTag && c.answeredSDP != "" {
		// A re-offer already answered, sent again: the re-answer was lost.
		if err := c.s.sendSignal(ctx, &signal.Signal{Kind: signal.KindReanswer, CallID: c.ID, To: c.Peer, SDP: c.answeredSDP, Attempt: sig.Attempt}); err != nil {
			c.s.c.log.Warn("ICE restart: sending the re-answer again", "call", c.ID, "err", err)
		}
		return
	}
	if conn := c.s.connNow(); conn != nil {
		if err := c.pc.SetConfiguration(c.s.iceConfig(conn.ICEServers(), c.relayChoice)); err != nil {
			c.s.c.log.Warn("ICE restart: configuration", "call", c.ID, "err", err)
		}
	}
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sig.SDP}); err != nil {
		c.s.c.log.Warn("ICE restart: remote offer", "call", c.ID, "err", err)
		return
	}
	answer, err := c.pc.CreateAnswer(nil)
	if err != nil {
		c.s.c.log.Warn("ICE restart: answer", "call", c.ID, "err", err)
		return
	}
	sdp, err := c.setLocal(ctx, answer)
	if err != nil {
		return
	}
	c.answeredTag, c.answeredSDP = sig.Attempt, sdp
	if err := c.s.sendSignal(ctx, &signal.Signal{Kind: signal.KindReanswer, CallID: c.ID, To: c.Peer, SDP: sdp, Attempt: sig.Attempt}); err != nil {
		c.s.c.log.Warn("ICE restart: sending the re-answer", "call", c.ID, "err", err)
		return
	}
	c.s.c.log.Info("answered an ICE restart", "call", c.ID, "peer", c.Peer)
}

// onReanswer hands a re-answer to the restart waiting for it.
func (c *Call) onReanswer(sig *signal.Signal) {
	if !c.samePeerFingerprints(sig.SDP) {
		c.s.c.log.Warn("refusing a re-answer with other DTLS fingerprints", "call", c.ID, "peer", c.Peer)
		return
	}
	select {
	case c.reanswers <- sig:
	default:
	}
}

// samePeerFingerprints reports whether sdp carries the DTLS fingerprints of the
// peer's first offer or answer.
func (c *Call) samePeerFingerprints(sdp string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.peerFP) > 0 && slices.Equal(signal.Fingerprints(sdp), c.peerFP)
}

// localRelayHost is the host of the relay this end's selected candidate goes
// through ("" when it is not a relay candidate).
func (c *Call) localRelayHost() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.localView.Local != "relay" {
		return ""
	}
	h, _, err := net.SplitHostPort(c.localView.Relay)
	if err != nil {
		return c.localView.Relay
	}
	return h
}

// onRestartSignal: the callee asks the caller to restart ICE.
func (c *Call) onRestartSignal(sig *signal.Signal) {
	if c.Outgoing && c.isStarted() {
		select {
		case c.peerAsks <- sig.Reason:
		default:
		}
		c.requestRestart(restartRequest{why: "the peer asked: " + sig.Reason})
	}
}

// onReofferSignal: the caller restarts ICE; the callee answers.
func (c *Call) onReofferSignal(sig *signal.Signal) {
	if !c.Outgoing && c.isStarted() {
		c.goOwned(func() { c.onReoffer(sig) })
	}
}

// onReanswerSignal: the callee answered the caller's restart.
func (c *Call) onReanswerSignal(sig *signal.Signal) {
	if c.Outgoing {
		c.onReanswer(sig)
	}
}
