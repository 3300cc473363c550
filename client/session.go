package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/presence"
	"github.com/parley/parley/wire/signal"
	"github.com/parley/parley/wire/snapi"
)

// SessionConfig configures [Client.Online]. Zero values mean the documented
// defaults.
type SessionConfig struct {
	// OnIncoming is called, in its own goroutine, for every verified incoming
	// call. It must call Answer or Decline; returning without either declines.
	// Nil ignores incoming calls (no ringing, no decline), leaving them to the
	// user's other devices.
	OnIncoming func(*Incoming)
	// OnEvent receives every event (call state changes, stats, online/offline),
	// one at a time, in order. It must not block for long.
	OnEvent func(Event)
	// StatsInterval is how often a call emits a stats event. Default 1 s.
	StatsInterval time.Duration
	// RingTimeout is how long a caller waits for an answer. Default 30 s.
	RingTimeout time.Duration
	// ConnectTimeout is how long a call may take from answer to media.
	// Default 10 s.
	ConnectTimeout time.Duration
	// GatherTimeout bounds ICE candidate gathering before an ICE restart's
	// re-offer or re-answer is sent with the candidates found so far (an
	// unreachable STUN or TURN server must not hold up a call; a call's
	// first offer and answer trickle theirs). Default 4 s.
	GatherTimeout time.Duration
	// NoLoopback leaves loopback addresses out of ICE candidates. By default they
	// are included, so calls between processes on one host always connect.
	NoLoopback bool
	// Prefer is a supernode (ws://host:port/v1/ws) to try first, before the
	// measured choice (the CLI's --supernode). After it fails it is tried last
	// for a while, like any supernode that failed.
	Prefer string
	// RelayOnly gathers relay candidates only (ICE transport policy "relay"):
	// every call of this session goes through a relay. For tests of relayed
	// paths, and for users who do not want peers to learn their address.
	RelayOnly bool
	// NoPresence keeps the session out of presence: its contacts are not
	// told it is online (for one-shot commands such as sending one message).
	NoPresence bool
}

// Session is a client attached to a supernode: reachable, able to call and be
// called. It keeps itself attached: when its supernode goes away it moves to
// another (failover.go). Close ends every call and detaches.
type Session struct {
	c      *Client
	cfg    SessionConfig
	api    *webrtc.API
	user   string
	device string // this session's device id in signals, stable across supernodes

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// connMu guards the current supernode connection (nil while
	// reconnecting) and the choice's state.
	connMu   sync.Mutex
	conn     *snapi.Conn
	connURL  string
	onlineCh chan struct{}        // closed while attached; replaced when the connection drops
	others   []string             // the supernodes the current one listed
	excluded map[string]time.Time // supernodes that failed, until when they go last
	lostURL  string               // the supernode the last connection lost was to,
	lostID   string               // and its session id there (replaced at reattach)
	rng      *mathrand.Rand       // jitter and random picks; only the attach path (Online, then keepLoop) draws

	done     chan struct{} // closed when the session has ended for good
	doneOnce sync.Once
	err      error

	evMu sync.Mutex // serializes OnEvent

	ready chan struct{} // closed once conn and user are set: deliveries wait for it
	seq   atomic.Uint64 // numbers this session's signals

	mu        sync.Mutex
	calls     map[string]*Call
	incoming  map[string]*Incoming
	probes    map[string]chan relayRTTs // call id → the caller waiting for a probe reply
	probePeer map[string]string         // call id → whom the probe went to
	seen      map[string]time.Time      // signals accepted within the window (replay guard)
	pres      presenceState
	closed    bool

	contactsKick chan struct{} // reread the contacts now (a KindContacts signal)

	im *messenger // instant messages (messenger.go)
}

// Online logs in if needed, attaches to a supernode and returns the session.
func (c *Client) Online(ctx context.Context, cfg SessionConfig) (*Session, error) {
	if cfg.StatsInterval <= 0 {
		cfg.StatsInterval = time.Second
	}
	if cfg.RingTimeout <= 0 {
		cfg.RingTimeout = 30 * time.Second
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.GatherTimeout <= 0 {
		cfg.GatherTimeout = 4 * time.Second
	}
	if _, _, err := c.credential(ctx, false); err != nil {
		return nil, err
	}
	api, err := newAPI(cfg)
	if err != nil {
		return nil, err
	}
	var seed [32]byte
	rand.Read(seed[:])
	dev := make([]byte, 8)
	rand.Read(dev)
	s := &Session{c: c, cfg: cfg, api: api, ready: make(chan struct{}), device: hex.EncodeToString(dev),
		onlineCh: make(chan struct{}), excluded: map[string]time.Time{}, rng: mathrand.New(mathrand.NewChaCha8(seed)),
		done: make(chan struct{}), contactsKick: make(chan struct{}, 1),
		calls: map[string]*Call{}, incoming: map[string]*Incoming{}, probes: map[string]chan relayRTTs{}, probePeer: map[string]string{}, seen: map[string]time.Time{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.pres = presenceState{status: presence.Online, seen: map[string]map[string]devicePresence{}, shown: map[string]string{}}
	if s.im, err = newMessenger(s); err != nil {
		s.cancel()
		return nil, err
	}
	s.user = c.User()
	if err := s.im.register(ctx); err != nil {
		s.im.hist.Close()
		s.cancel()
		return nil, err
	}
	if err := s.loadPresence(ctx); err != nil {
		s.im.hist.Close()
		s.cancel()
		return nil, err
	}

	conn, url, err := s.attach(ctx, false)
	if err != nil {
		s.im.hist.Close()
		s.cancel()
		if errors.Is(err, ErrNoSupernode) || errors.Is(err, snapi.ErrAuth) {
			return nil, fmt.Errorf("client: online: %w", err)
		}
		return nil, err
	}
	s.user = conn.User()
	s.setConn(conn, url)
	close(s.ready)
	s.emit(Event{Event: "online", Info: &Info{User: s.user, Supernode: url}})
	s.announce()
	s.im.checkMailbox()
	s.wg.Add(5)
	go s.renewLoop()
	go s.keepLoop(conn, url)
	go s.presenceLoop()
	go s.im.run()
	go func() {
		defer s.wg.Done()
		s.im.resendPending(s.ctx)
	}()
	return s, nil
}

// iceConfig is a call's peer connection configuration with servers (only the
// chosen relay's TURN URLs when one was chosen, relays.go).
func (s *Session) iceConfig(servers []snapi.ICEServer, relay string) webrtc.Configuration {
	var ice []webrtc.ICEServer
	for _, is := range onlyRelay(servers, relay) {
		ice = append(ice, webrtc.ICEServer{URLs: is.URLs, Username: is.Username, Credential: is.Credential})
	}
	cfg := webrtc.Configuration{ICEServers: ice}
	if s.cfg.RelayOnly {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	return cfg
}

func newAPI(cfg SessionConfig) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: opusCapability, PayloadType: 111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("client: media engine: %w", err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, fmt.Errorf("client: interceptors: %w", err)
	}
	se := webrtc.SettingEngine{}
	n, err := newBoundedNet()
	if err != nil {
		return nil, err
	}
	se.SetNet(n)
	se.SetIncludeLoopbackCandidate(!cfg.NoLoopback)
	se.SetICEMulticastDNSMode(0) // ice.MulticastDNSModeDisabled
	// Media flows at 50 packets a second both ways, on hold too, so 2 s
	// without a packet means the path is gone (checked every second, with a
	// consent check each second); a restart (restart.go) is asked for half a
	// second later, well before "failed" ends the call.
	se.SetICETimeouts(2*time.Second, 12*time.Second, time.Second)
	se.SetSTUNGatherTimeout(3 * time.Second)
	// Relay pairs are accepted after 1 s rather than pion's 2 s, so a call
	// restarting onto a relay is heard again within the failover budget;
	// direct pairs, found in milliseconds, still win when they work.
	se.SetRelayAcceptanceMinWait(time.Second)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

var opusCapability = webrtc.RTPCodecCapability{
	MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
	SDPFmtpLine: "minptime=10;useinbandfec=1",
}

// User is who this session is attached as.
func (s *Session) User() string { return s.user }

// Done is closed when the session has ended for good: Close was called, or it
// cannot attach again by itself (its credential cannot be renewed, or every
// supernode refuses it). Losing a supernode is not the end: the session moves
// to another and emits "offline" and "online" events.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err says why the session ended (after Done): nil after Close.
func (s *Session) Err() error {
	<-s.done
	return s.err
}

// Close hangs up every call, detaches from the supernode and waits for every
// goroutine the session started.
func (s *Session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	calls := make([]*Call, 0, len(s.calls))
	for _, c := range s.calls {
		calls = append(calls, c)
	}
	s.mu.Unlock()
	for _, c := range calls {
		c.Hangup("hangup")
	}
	for _, c := range calls {
		<-c.Done()
	}
	s.cancel()
	if conn := s.connNow(); conn != nil {
		conn.Close()
	}
	s.wg.Wait()
	s.im.hist.Close()
	s.finish(nil)
	return nil
}

func (s *Session) renewLoop() {
	defer s.wg.Done()
	for {
		_, cred, err := s.c.credential(s.ctx, false)
		wait := 10 * time.Second
		if err == nil {
			wait = time.Until(cred.ExpiresAt().Add(-s.c.renewBefore(cred))) + time.Second
			wait = max(wait, time.Second)
		} else if s.ctx.Err() == nil {
			s.c.log.Warn("renewing credential", "err", err)
		}
		t := time.NewTimer(wait)
		select {
		case <-s.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		token, _, err := s.c.credential(s.ctx, false)
		if err == nil {
			// While reconnecting there is nothing to renew: the next attach
			// presents the fresh credential.
			if conn := s.connNow(); conn != nil {
				ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
				err = conn.Renew(ctx, token)
				cancel()
			}
		}
		if err != nil && s.ctx.Err() == nil {
			s.c.log.Warn("renewing credential", "err", err)
		} else if err == nil {
			s.emit(Event{Event: "credential", Info: &Info{User: s.user, Message: "credential renewed"}})
		}
	}
}

func (s *Session) emit(e Event) {
	if s.cfg.OnEvent == nil {
		return
	}
	if e.TS.IsZero() {
		e.TS = time.Now()
	}
	s.evMu.Lock()
	defer s.evMu.Unlock()
	s.cfg.OnEvent(e)
}

// sendSignal signs sig with the current credential and sends it to its To.
// While the session is reconnecting it waits for the new supernode, and a
// signal about a call in progress is retried while its recipient is offline
// (the peer may be failing over too), for up to signalRetryFor: a hangup or a
// re-offer is not lost to a failover. A resent signal is the same signed
// signal, so a copy that did arrive is dropped by the replay guard.
func (s *Session) sendSignal(ctx context.Context, sig *signal.Signal) error {
	token, err := s.c.Credential(ctx)
	if err != nil {
		return err
	}
	sig.From, sig.Device = s.user, s.device
	sig.Sign(s.c.key, token, time.Now(), s.seq.Add(1))
	b, err := json.Marshal(sig)
	if err != nil {
		return fmt.Errorf("client: signal: %w", err)
	}
	retryOffline := slices.Contains(signal.InCallKinds(), sig.Kind)
	rctx, cancel := context.WithTimeout(ctx, signalRetryFor)
	defer cancel()
	for {
		var conn *snapi.Conn
		conn, err = s.waitConn(rctx)
		if err == nil {
			_, err = conn.Send(rctx, sig.To, b)
		}
		if err == nil {
			return nil
		}
		retry := errors.Is(err, snapi.ErrDisconnected) || retryOffline && errors.Is(err, snapi.ErrOffline)
		if !retry || rctx.Err() != nil {
			break
		}
		t := time.NewTimer(100 * time.Millisecond)
		select {
		case <-rctx.Done():
		case <-s.done:
		case <-t.C:
		}
		t.Stop()
		if rctx.Err() != nil {
			break
		}
	}
	if errors.Is(err, snapi.ErrOffline) {
		return fmt.Errorf("client: send to %s: %w", sig.To, ErrOffline)
	}
	return err
}

// sendAsync sends a signal from a goroutine owned by the session (for replies
// made on the supernode reader goroutine, which must not block).
func (s *Session) sendAsync(sig *signal.Signal) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		defer cancel()
		if err := s.sendSignal(ctx, sig); err != nil && s.ctx.Err() == nil {
			s.c.log.Debug("signal not delivered", "kind", sig.Kind, "to", sig.To, "err", err)
		}
	}()
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
	if sig.Kind == signal.KindOffer {
		s.onOffer(sig)
		return
	}
	if sig.Kind == signal.KindStatus {
		if sig.From == s.user {
			s.onStatus(sig)
		}
		return
	}
	if sig.Kind == signal.KindContacts {
		kick(s.contactsKick)
		return
	}
	switch sig.Kind {
	case signal.KindProbe:
		s.onProbe(sig)
		return
	case signal.KindProbeReply:
		rtts := rttsFromWire(sig.RTTs)
		s.mu.Lock()
		ch := s.probes[sig.CallID]
		want := s.probePeer[sig.CallID]
		s.mu.Unlock()
		if ch != nil && want == sig.From {
			select {
			case ch <- rtts:
			default:
			}
		}
		return
	case signal.KindCandidate:
		cand, ok := candidateFromWire(sig)
		if !ok {
			return
		}
		// Under s.mu, so that a candidate lands either with the ringing
		// Incoming (before Answer registers the call) or with the call.
		s.mu.Lock()
		c := s.calls[sig.CallID]
		if in := s.incoming[sig.CallID]; c == nil && in != nil && in.Peer == sig.From && in.offer.Device == sig.Device && len(in.cands) < maxTrickled {
			in.cands = append(in.cands, cand)
		}
		s.mu.Unlock()
		if c != nil && c.Peer == sig.From && c.fromPeer(sig) {
			c.addRemoteCandidate(cand)
		}
		return
	case signal.KindHangup:
		s.mu.Lock()
		in := s.incoming[sig.CallID]
		s.mu.Unlock()
		if in != nil && in.Peer == sig.From && in.offer.Device == sig.Device {
			in.stop("caller hung up")
		}
	case signal.KindAnswered:
		s.mu.Lock()
		in := s.incoming[sig.CallID]
		s.mu.Unlock()
		if sig.Answerer == s.device {
			return // this device took the call
		}
		if in != nil && in.Peer == sig.From && in.offer.Device == sig.Device {
			in.stop(AnsweredElsewhere)
		}
		if c := s.call(sig.CallID); c != nil && !c.Outgoing && c.Peer == sig.From && c.fromPeer(sig) {
			c.end(AnsweredElsewhere, false)
		}
		return
	}
	c := s.call(sig.CallID)
	if c == nil || c.Peer != sig.From || !c.fromPeer(sig) {
		return
	}
	switch sig.Kind {
	case signal.KindHangup:
		reason := "remote hangup"
		if sig.Reason != "" && sig.Reason != "hangup" {
			reason = sig.From + ": " + sig.Reason
		}
		c.end(reason, false)
	case signal.KindPath, signal.KindHold, signal.KindResume:
		c.onInCall(sig)
	case signal.KindReoffer:
		if !c.Outgoing && c.isStarted() {
			c.goOwned(func() { c.onReoffer(sig) })
		}
	case signal.KindReanswer:
		if c.Outgoing {
			c.onReanswer(sig)
		}
	case signal.KindRestart:
		if c.Outgoing && c.isStarted() {
			select {
			case c.peerAsks <- sig.Reason:
			default:
			}
			c.requestRestart("the peer asked: " + sig.Reason)
		}
	default: // ringing, answer, decline: for the caller waiting in Call
		select {
		case c.signals <- sig:
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
// outside it the timestamp check refuses it.
func (s *Session) firstSight(sig *signal.Signal, now time.Time) bool {
	key := sig.From + "|" + strconv.FormatInt(sig.TS, 10) + "|" + strconv.FormatUint(sig.Seq, 10)
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

func (s *Session) onOffer(sig *signal.Signal) {
	if s.cfg.OnIncoming == nil {
		// This device does not take calls (say, a CLI placing one); another
		// device of the user may. Stay silent rather than decline for them.
		return
	}
	s.mu.Lock()
	if s.closed || s.calls[sig.CallID] != nil || s.incoming[sig.CallID] != nil {
		s.mu.Unlock()
		return
	}
	in := &Incoming{CallID: sig.CallID, Peer: sig.From, s: s, offer: sig}
	in.ctx, in.cancel = context.WithCancel(s.ctx)
	s.incoming[sig.CallID] = in
	s.mu.Unlock()

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

// onProbe measures this end's round trips to the relays it was offered and
// answers the caller's probe with them.
func (s *Session) onProbe(sig *signal.Signal) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, 2*probeTimeout)
		defer cancel()
		conn := s.connNow()
		if conn == nil {
			return
		}
		rtts := measureRelays(ctx, conn.ICEServers())
		s.sendAsync(&signal.Signal{Kind: signal.KindProbeReply, CallID: sig.CallID, To: sig.From, RTTs: rtts.wire()})
	}()
}

// chooseRelay picks the relay for a call to peer: with more than one relay on
// offer, the one with the lowest round trip summed over both ends.
func (s *Session) chooseRelay(ctx context.Context, callID, peer string) string {
	conn, err := s.waitConn(ctx)
	if err != nil {
		return ""
	}
	servers := conn.ICEServers()
	if len(relaysOf(servers)) < 2 {
		return ""
	}
	reply := make(chan relayRTTs, 1)
	s.mu.Lock()
	s.probes[callID], s.probePeer[callID] = reply, peer
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.probes, callID)
		delete(s.probePeer, callID)
		s.mu.Unlock()
	}()
	mctx, cancel := context.WithTimeout(ctx, 2*probeTimeout)
	defer cancel()
	mine := measureRelays(mctx, servers)
	var theirs relayRTTs
	if err := s.sendSignal(ctx, &signal.Signal{Kind: signal.KindProbe, CallID: callID, To: peer, RTTs: mine.wire()}); err == nil {
		t := time.NewTimer(3 * probeTimeout)
		select {
		case theirs = <-reply:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	choice := chooseRelay(mine, theirs)
	s.c.log.Info("relay chosen", "peer", peer, "relay", choice, "mine_ms", mine, "theirs_ms", theirs)
	return choice
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
	if err := identity.CheckUser(peer); err != nil {
		return nil, fmt.Errorf("client: call: %w", err)
	}
	id := newCallID()
	relay := s.chooseRelay(ctx, id, peer)
	c, err := s.newCall(ctx, id, peer, true, relay, media)
	if err != nil {
		return nil, err
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
	if err := s.sendSignal(ctx, &signal.Signal{Kind: signal.KindOffer, CallID: c.ID, To: peer, SDP: sdp, Relay: relay}); err != nil {
		if errors.Is(err, ErrOffline) {
			err = fmt.Errorf("client: call %s: %w", peer, ErrOffline)
			if ok, xerr := s.c.UserExists(ctx, peer); xerr == nil && !ok {
				err = fmt.Errorf("client: call %s: %w", peer, ErrUnknownUser)
			}
		}
		return nil, c.fail(err)
	}
	c.trickleReady()
	ring := time.NewTimer(s.cfg.RingTimeout)
	defer ring.Stop()
	for {
		select {
		case sig := <-c.signals:
			switch sig.Kind {
			case signal.KindRinging:
				s.emit(Event{Event: "call", CallID: c.ID, Peer: peer, CallState: &CallState{State: StateRinging, Direction: "outgoing"}})
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
