package client

import (
	"context"
	"fmt"
	"time"

	"github.com/parley/parley/wire/signal"
	"github.com/pion/webrtc/v4"
)

// updatePath reads the selected candidate pair: how this end reaches the peer
// (its own candidate's type and, for a relay candidate, the protocol it speaks to
// the relay), the relay's address, and the ICE round trip. When this end's view
// changes it is told to the peer, so that both ends report the same path.
func (c *Call) updatePath() {
	stats := c.pc.GetStats()
	var pair *webrtc.ICECandidatePairStats
	for _, s := range stats {
		if p, ok := s.(webrtc.ICECandidatePairStats); ok && p.Nominated && p.State == webrtc.StatsICECandidatePairStateSucceeded {
			pair = &p
			break
		}
	}
	if pair == nil {
		return
	}
	c.lastRTTNanos.Store(int64(pair.CurrentRoundTripTime * float64(time.Second)))
	var local, remote webrtc.ICECandidateStats
	for _, s := range stats {
		if cs, ok := s.(webrtc.ICECandidateStats); ok {
			switch cs.ID {
			case pair.LocalCandidateID:
				local = cs
			case pair.RemoteCandidateID:
				remote = cs
			}
		}
	}
	v := signal.Path{Local: local.CandidateType.String(), RelayProtocol: local.RelayProtocol}
	if local.CandidateType == webrtc.ICECandidateTypeRelay {
		v.Relay = local.URL
		if v.Relay == "" {
			v.Relay = fmt.Sprintf("%s:%d", local.IP, local.Port)
		}
	}
	v.RemoteRelay = remote.CandidateType == webrtc.ICECandidateTypeRelay
	c.via.Store(c.directVia(local, remote, peerHostAddrs(stats)))
	if c.setPathViews(&v, nil) {
		c.goOwned(func() {
			ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
			defer cancel()
			c.s.sendSignal(ctx, &signal.Signal{Kind: signal.KindPath, CallID: c.ID, To: c.Peer, Path: &v})
		})
	}
}

// combinePaths derives the call's path from both ends' views, the same on both
// ends: tcp-relay when either end reaches its relay over TCP or TLS, udp-relay
// when a relay is on the path, else direct.
func combinePaths(mine, theirs signal.Path) (path, relay string) {
	relayed := mine.Local == "relay" || theirs.Local == "relay" || mine.RemoteRelay || theirs.RemoteRelay
	tcp := mine.RelayProtocol == "tcp" || mine.RelayProtocol == "tls" || theirs.RelayProtocol == "tcp" || theirs.RelayProtocol == "tls"
	relay = mine.Relay
	if relay == "" {
		relay = theirs.Relay
	}
	switch {
	case relayed && tcp:
		return "tcp-relay", relay
	case relayed:
		return "udp-relay", relay
	}
	return "direct", ""
}

// onHoldSignal: the peer put the call on hold, or resumed it.
func (c *Call) onHoldSignal(sig *signal.Signal) {
	on := sig.Kind == signal.KindHold
	if c.peerHeld.Swap(on) != on {
		c.emitHold(on, "peer")
	}
}

// Hold puts the call on hold (or resumes it). On hold neither side is heard,
// but both keep sending a comfort-noise frame every 20 ms, so NAT bindings and
// relay permissions stay fresh and resuming needs no renegotiation: it only
// changes what the frames say. The peer is told with a signed hold/resume signal.
func (c *Call) Hold(on bool) {
	if c.held.Swap(on) == on {
		return
	}
	kind := signal.KindResume
	if on {
		kind = signal.KindHold
	}
	c.emitHold(on, "local")
	c.goOwned(func() {
		ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
		defer cancel()
		if err := c.s.sendSignal(ctx, &signal.Signal{Kind: kind, CallID: c.ID, To: c.Peer}); err != nil {
			c.s.c.log.Warn("telling the peer about hold", "err", err)
		}
	})
}

// OnHold reports whether either side has the call on hold.
func (c *Call) OnHold() bool { return c.held.Load() || c.peerHeld.Load() }

func (c *Call) emitHold(on bool, by string) {
	state := StateResumed
	if on {
		state = StateHeld
	}
	c.s.emit(Event{Event: "call", CallID: c.ID, Peer: c.Peer, Path: c.path.Load().(string), Relay: c.relay.Load().(string),
		CallState: &CallState{State: state, Reason: "by " + by, Direction: direction(c.Outgoing)}})
}

// onPathSignal takes the peer's view of the path.
func (c *Call) onPathSignal(sig *signal.Signal) {
	if sig.Path == nil {
		return
	}
	c.setPathViews(nil, sig.Path)
}

// setPathViews updates this end's and/or the peer's view of the path, recomputes
// the call's path, and reports whether this end's view changed.
func (c *Call) setPathViews(mine, theirs *signal.Path) (mineChanged bool) {
	c.mu.Lock()
	if mine != nil {
		mineChanged = *mine != c.localView
		c.localView = *mine
	}
	if theirs != nil {
		c.peerView = *theirs
	}
	path, relay := combinePaths(c.localView, c.peerView)
	c.path.Store(path)
	c.relay.Store(relay)
	show := c.started && (path != c.shownPath || relay != c.shownRelay)
	if show {
		c.shownPath, c.shownRelay = path, relay
	}
	c.mu.Unlock()
	if show {
		c.s.emit(Event{Event: "path", CallID: c.ID, Peer: c.Peer, Path: path, Relay: relay})
	}
	return mineChanged
}
