package client

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/parley/parley/client/im"
	"github.com/parley/parley/wire/signal"
)

// Call is one call between this device and a peer. Its goroutines (sender,
// receiver, RTCP reader, stats) are owned by the call and end with it; Done is
// closed after they all have.
type Call struct {
	ID       string
	Peer     string
	Outgoing bool

	s       *Session
	pc      *webrtc.PeerConnection
	dc      *webrtc.DataChannel // instant messages during the call
	track   *webrtc.TrackLocalStaticRTP
	sender  *webrtc.RTPSender
	media   Media
	signals chan *signal.Signal

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	connected chan struct{}
	connOnce  sync.Once
	done      chan struct{}

	relayChoice string // the relay chosen for the call ("": any on offer)

	negMu      sync.Mutex // serializes ICE restarts (restart.go)
	restartReq chan restartRequest
	reoffers   atomic.Int64 // re-offers received (a callee asking for one waits for this to move)
	reanswers  chan *signal.Signal
	restarts   atomic.Uint64
	peerAsks   chan string // the callee asked for a restart, and why (the caller's side)

	candMu  sync.Mutex // guards trickle
	trickle trickleState
	// The callee's last re-answer (guarded by negMu), sent again when the
	// same re-offer comes again.
	answeredTag, answeredSDP string

	mu         sync.Mutex
	peerDevice string   // the peer's device: signals from its other devices are ignored
	peerFP     []string // the peer's DTLS fingerprints, from its offer or answer
	localView  signal.Path
	peerView   signal.Path
	shownPath  string // the path and relay last reported in an event
	shownRelay string
	ending     bool
	reason     string
	err        error
	started    bool

	// redirect, once set, is the media of the conference this call became
	// a leg of (conference.go: adopt): what it sends and where what it hears
	// goes, instead of media.
	redirect atomic.Pointer[Media]

	muted        atomic.Bool
	held         atomic.Bool // this end put the call on hold
	peerHeld     atomic.Bool // the peer put the call on hold
	sent, sentB  atomic.Uint64
	recvMu       sync.Mutex
	rx           rxStats
	path, relay  atomic.Value // string
	pmap         *callPortMap // port mapping and what made the path direct (call_portmap.go)
	via          atomic.Value // string: what made this end's view of the path direct
	lastRTTNanos atomic.Int64
	restartedAt  atomic.Int64 // unix nanoseconds of the end of the last ICE restart (lastRestart)
}

// newCall makes the call's peer connection, with TURN from relay only when one
// was chosen (relays.go).
func (s *Session) newCall(ctx context.Context, id, peer string, outgoing bool, relay string, media Media) (*Call, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.mu.Unlock()
	conn, err := s.waitConn(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: call %s: %w", peer, err)
	}
	pc, err := s.api.NewPeerConnection(s.iceConfig(conn.ICEServers(), relay))
	if err != nil {
		return nil, fmt.Errorf("client: peer connection: %w", err)
	}
	c := &Call{
		ID: id, Peer: peer, Outgoing: outgoing, s: s, pc: pc, media: media, relayChoice: relay,
		signals: make(chan *signal.Signal, 8), connected: make(chan struct{}), done: make(chan struct{}),
		restartReq: make(chan restartRequest, 1), reanswers: make(chan *signal.Signal, 1), peerAsks: make(chan string, 1),
	}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.path.Store("")
	c.relay.Store("")
	c.via.Store("")
	c.pmap = newCallPortMap()
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		switch st {
		case webrtc.PeerConnectionStateConnected:
			c.connOnce.Do(func() { close(c.connected) })
		case webrtc.PeerConnectionStateFailed:
			c.failAsync(fmt.Errorf("client: call %s: %w: connection failed", c.Peer, ErrConnectFailed))
		}
	})
	pc.OnICEConnectionStateChange(func(st webrtc.ICEConnectionState) {
		if !c.isStarted() {
			return
		}
		switch st {
		case webrtc.ICEConnectionStateDisconnected:
			c.goOwned(func() {
				t := time.NewTimer(iceDisconnectedGrace)
				defer t.Stop()
				select {
				case <-c.ctx.Done():
				case <-t.C:
					if c.pc.ICEConnectionState() == webrtc.ICEConnectionStateDisconnected {
						c.requestRestart(restartRequest{why: "ICE disconnected"})
					}
				}
			})
		case webrtc.ICEConnectionStateConnected, webrtc.ICEConnectionStateCompleted:
			c.goOwned(c.updatePath)
		}
	})
	// Every call carries a data channel for instant messages, negotiated
	// out of band (id 0, both ends create it), so that it needs no signals
	// of its own and the browser client's calls have the same one.
	negotiated, dcID := true, uint16(0)
	dc, err := pc.CreateDataChannel(DataChannelLabel, &webrtc.DataChannelInit{Negotiated: &negotiated, ID: &dcID})
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("client: call %s: data channel: %w", peer, err)
	}
	dc.OnMessage(func(msg webrtc.DataChannelMessage) {
		if len(msg.Data) <= im.MaxEnvelopeBytes && isEnvelope(msg.Data) {
			s.im.enqueue(msg.Data, ViaDataChannel)
		}
	})
	c.dc = dc
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if tr.Kind() != webrtc.RTPCodecTypeAudio || !c.goOwned(func() { c.receive(tr) }) {
			return
		}
	})
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		pc.Close()
		return nil, ErrClosed
	}
	s.calls[id] = c
	s.mu.Unlock()
	return c, nil
}

// fromPeer reports whether sig comes from the peer device this call is with. An
// outgoing call is bound to the device whose answer it takes; signals of the
// user's other devices (a second answer, their hangups) are ignored.
func (c *Call) fromPeer(sig *signal.Signal) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.peerDevice == "" {
		if sig.Kind == signal.KindAnswer {
			c.peerDevice = sig.Device
		}
		return true
	}
	return sig.Device == c.peerDevice
}

func (c *Call) localRelayProtocol() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.localView.RelayProtocol
}

func (c *Call) isStarted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.started
}

// goOwned runs f in a goroutine owned by the call, unless the call is ending.
func (c *Call) goOwned(f func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ending {
		return false
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
	return true
}

func (c *Call) addTrack() error {
	tr, err := webrtc.NewTrackLocalStaticRTP(opusCapability, "audio", "parley")
	if err != nil {
		return fmt.Errorf("client: track: %w", err)
	}
	sender, err := c.pc.AddTrack(tr)
	if err != nil {
		return fmt.Errorf("client: add track: %w", err)
	}
	c.track, c.sender = tr, sender
	return nil
}

// setLocal applies a local description and waits for ICE gathering, returning
// the complete SDP to signal.
func (c *Call) setLocal(ctx context.Context, d webrtc.SessionDescription) (string, error) {
	gathered := webrtc.GatheringCompletePromise(c.pc)
	start := time.Now()
	if err := c.pc.SetLocalDescription(d); err != nil {
		return "", fmt.Errorf("client: local description: %w", err)
	}
	t := time.NewTimer(c.s.cfg.GatherTimeout)
	defer t.Stop()
	select {
	case <-gathered:
	case <-t.C: // go with the candidates we have
	case <-ctx.Done():
		return "", ctx.Err()
	}
	c.s.c.log.Debug("gathered", "call", c.ID, "type", d.Type, "took", time.Since(start))
	return c.pc.LocalDescription().SDP, nil
}

func (c *Call) waitConnected(ctx context.Context) error {
	t := time.NewTimer(c.s.cfg.ConnectTimeout)
	defer t.Stop()
	select {
	case <-c.connected:
	case <-t.C:
		c.end("could not connect", true)
		<-c.done
		return fmt.Errorf("client: call %s: %w within %v", c.Peer, ErrConnectFailed, c.s.cfg.ConnectTimeout)
	case <-c.done:
		if err := c.Err(); err != nil {
			return err
		}
		return fmt.Errorf("client: call %s: %w (%s)", c.Peer, ErrConnectFailed, c.Reason())
	case <-ctx.Done():
		c.end("cancelled", true)
		<-c.done
		return ctx.Err()
	}
	c.updatePath()
	c.mu.Lock()
	c.started = true
	c.shownPath, c.shownRelay = c.path.Load().(string), c.relay.Load().(string)
	c.mu.Unlock()
	c.goOwned(c.send)
	c.goOwned(c.readRTCP)
	c.goOwned(c.statsLoop)
	c.goOwned(c.restartLoop)
	c.goOwned(c.watchMedia)
	c.s.emit(Event{Event: "call", CallID: c.ID, Peer: c.Peer, Path: c.path.Load().(string), Relay: c.relay.Load().(string),
		CallState: &CallState{State: StateConnected, Direction: direction(c.Outgoing)}})
	return nil
}

// Hangup ends the call and tells the peer. It does not wait: use Done.
func (c *Call) Hangup(reason string) {
	if reason == "" {
		reason = "hangup"
	}
	c.end(reason, true)
}

// SetMuted stops (or resumes) sending the source; silence frames keep flowing.
func (c *Call) SetMuted(m bool) { c.muted.Store(m) }

// Done is closed when the call has ended and all its goroutines have finished.
func (c *Call) Done() <-chan struct{} { return c.done }

// Reason says why the call ended (after Done).
func (c *Call) Reason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

// Err is the error that ended the call, nil for a normal hangup (after Done).
func (c *Call) Err() error {
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// fail ends the call with err and returns it once the call is torn down.
func (c *Call) fail(err error) error {
	reason := strings.TrimPrefix(err.Error(), "client: ")
	reason = strings.TrimPrefix(reason, "call "+c.Peer+": ")
	return c.failReason(reason, err)
}

func (c *Call) failReason(reason string, err error) error {
	c.mu.Lock()
	if c.err == nil && !c.ending {
		c.err = err
	}
	c.mu.Unlock()
	c.end(reason, false)
	<-c.done
	return err
}

// end starts tearing the call down once; it never blocks, so it may be called
// from the call's own goroutines and from pion's callbacks.
func (c *Call) end(reason string, notify bool) {
	c.mu.Lock()
	if c.ending {
		c.mu.Unlock()
		return
	}
	c.ending = true
	c.reason = reason
	c.mu.Unlock()
	c.cancel()
	c.s.wg.Add(1)
	go func() {
		defer c.s.wg.Done()
		if notify {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			c.s.sendSignal(ctx, &signal.Signal{Kind: signal.KindHangup, CallID: c.ID, To: c.Peer, Reason: reason})
			cancel()
		}
		c.pc.Close()
		c.wg.Wait()
		c.s.mu.Lock()
		delete(c.s.calls, c.ID)
		c.s.mu.Unlock()
		c.mu.Lock()
		started := c.started
		c.mu.Unlock()
		if started { // a call that never connected has no media to report
			c.emitStats()
		}
		c.s.emit(Event{Event: "call", CallID: c.ID, Peer: c.Peer, CallState: &CallState{
			State: StateEnded, Reason: reason, Direction: direction(c.Outgoing),
		}})
		close(c.done)
	}()
}

// failAsync ends the call with err without waiting (for pion's callbacks and
// the call's own goroutines) and tells the peer.
func (c *Call) failAsync(err error) {
	c.mu.Lock()
	if c.err == nil && !c.ending {
		c.err = err
	}
	c.mu.Unlock()
	reason := strings.TrimPrefix(err.Error(), "client: ")
	c.end(strings.TrimPrefix(reason, "call "+c.Peer+": "), true)
}

// DataChannelLabel is the label of every call's instant-message data channel
// (negotiated, id 0). Each message on it is one IM envelope, as JSON text.
const DataChannelLabel = "parley-im"

// sendDataChannel sends an envelope to user over the data channel of a
// connected call with them, and reports whether it went.
func (s *Session) sendDataChannel(user string, b []byte) bool {
	s.mu.Lock()
	var dcs []*webrtc.DataChannel
	for _, c := range s.calls {
		if c.Peer == user && c.dc != nil && c.isStarted() {
			dcs = append(dcs, c.dc)
		}
	}
	s.mu.Unlock()
	for _, dc := range dcs {
		if dc.ReadyState() == webrtc.DataChannelStateOpen && dc.SendText(string(b)) == nil {
			return true
		}
	}
	return false
}
