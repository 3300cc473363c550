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
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/webrtc/v4"

	"github.com/parley/parley/codec"
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
	// OnConfInvite is called, in its own goroutine, for every verified
	// invitation to a conference (conference.go). It must call Join or
	// Decline; returning without either declines. Nil ignores invitations,
	// leaving them to the user's other devices.
	OnConfInvite func(*ConfInvite)
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
	// NoPortMapping never asks the router for a port mapping (NAT-PMP, UPnP
	// IGD). By default a session that shows presence, attached to a
	// supernode not on loopback, asks: each call maps its port and offers
	// the mapping to the peer when it is on the address the internet sees
	// (call_portmap.go).
	NoPortMapping bool
}

// Session is a client attached to a supernode: reachable, able to call and be
// called. It keeps itself attached: when its supernode goes away it moves to
// another (failover.go). Close ends every call and detaches.
type Session struct {
	c      *Client
	cfg    SessionConfig
	api    *webrtc.API
	turn   *turnCreds // the TURN passwords handed out, for the TURN guards (turnguard.go)
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

	handlers map[string]signalHandler // the dispatch table of call signals (dispatch.go)
	seq      atomic.Uint64            // numbers this session's signals

	mu          sync.Mutex
	calls       map[string]*Call
	incoming    map[string]*Incoming
	confs       map[string]*Conference    // the conferences this device is in, by id (conference.go)
	legConf     map[string]string         // call id → the conference it is a leg of
	confInvites map[string]*ConfInvite    // ringing invitations, by conference id
	probes      map[string]chan relayRTTs // call id → the caller waiting for a probe reply
	probePeer   map[string]string         // call id → whom the probe went to
	seen        map[string]time.Time      // signals accepted within the window (replay guard)
	pres        presenceState
	closed      bool

	contactsKick chan struct{} // reread the contacts now (a KindContacts signal)

	im *messenger // instant messages (messenger.go)

	pmap *sessionPortMap // nil: no port mapping (call_portmap.go)
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
	creds := &turnCreds{}
	api, err := newAPI(cfg, creds)
	if err != nil {
		return nil, err
	}
	var seed [32]byte
	rand.Read(seed[:])
	dev := make([]byte, 8)
	rand.Read(dev)
	s := &Session{c: c, cfg: cfg, api: api, turn: creds, ready: make(chan struct{}), device: hex.EncodeToString(dev),
		onlineCh: make(chan struct{}), excluded: map[string]time.Time{}, rng: mathrand.New(mathrand.NewChaCha8(seed)),
		done: make(chan struct{}), contactsKick: make(chan struct{}, 1),
		calls: map[string]*Call{}, incoming: map[string]*Incoming{}, confs: map[string]*Conference{}, legConf: map[string]string{}, confInvites: map[string]*ConfInvite{}, probes: map[string]chan relayRTTs{}, probePeer: map[string]string{}, seen: map[string]time.Time{}}
	s.handlers = s.dispatchTable()
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

	conn, url, err := s.firstAttach(ctx)
	if err != nil {
		s.im.hist.Close()
		s.cancel()
		if errors.Is(err, ErrNoSupernode) || errors.Is(err, snapi.ErrAuth) {
			return nil, fmt.Errorf("client: online: %w", err)
		}
		return nil, err
	}
	s.user = conn.User()
	s.pmap = newSessionPortMap(s, url)
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
		if !s.cfg.NoPresence { // a one-shot command does not ask for history
			if err := s.im.wantHistory(s.ctx, nil); err != nil && s.ctx.Err() == nil {
				s.c.log.Warn("asking the other devices for history", "err", err)
			}
		}
	}()
	return s, nil
}

// iceConfig is a call's peer connection configuration with servers (only the
// chosen relay's TURN URLs when one was chosen, relays.go).
func (s *Session) iceConfig(servers []snapi.ICEServer, relay string) webrtc.Configuration {
	var ice []webrtc.ICEServer
	for _, is := range onlyRelay(servers, relay) {
		s.turn.add(is.Username, is.Credential)
		ice = append(ice, webrtc.ICEServer{URLs: is.URLs, Username: is.Username, Credential: is.Credential})
	}
	cfg := webrtc.Configuration{ICEServers: ice}
	if s.cfg.RelayOnly {
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	return cfg
}

func newAPI(cfg SessionConfig, creds *turnCreds) (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: opusCapability, PayloadType: 111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("client: media engine: %w", err)
	}
	// Not pion's default interceptors: their NACK (no audio packet is ever
	// resent), transport-wide congestion control (a header extension a
	// browser writes on every packet, and feedback ten times a second, for
	// a bandwidth estimate nothing here reads) and simulcast header
	// extensions cost bits and serve no one. No RTP header extension is
	// negotiated at all. What stays: RTCP sender and receiver reports, every
	// 5 s (RFC 3550's minimum; browsers read the loss and round trip they
	// carry), and pion's statistics, which cost nothing on the wire. The
	// call's own statistics (Stats) come from the received RTP and the ICE
	// pair. docs/performance.md has what each costs.
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReportsWithOptions(ir,
		[]report.ReceiverOption{report.ReceiverInterval(rtcpReportInterval)},
		report.SenderInterval(rtcpReportInterval)); err != nil {
		return nil, fmt.Errorf("client: interceptors: %w", err)
	}
	if err := webrtc.ConfigureStatsInterceptor(ir); err != nil {
		return nil, fmt.Errorf("client: interceptors: %w", err)
	}
	se := webrtc.SettingEngine{}
	n, err := newBoundedNet(creds)
	if err != nil {
		return nil, err
	}
	se.SetNet(n)
	se.SetIncludeLoopbackCandidate(!cfg.NoLoopback)
	se.SetICEMulticastDNSMode(0) // ice.MulticastDNSModeDisabled
	// SRTP with a 10-byte tag (AES-CM with HMAC-SHA1-80, WebRTC's
	// mandatory profile) before the AES-GCM profiles pion prefers, whose
	// tag is 16 bytes: 2.4 kbit/s less at 50 packets a second. Pion has no
	// 4-byte (SHA1_32) profile. A browser's DTLS server may still choose GCM.
	se.SetSRTPProtectionProfiles(srtpAES128CMHMACSHA1_80, srtpAEADAES128GCM, srtpAEADAES256GCM)
	// Media flows both ways at 50 packets a second, and on hold at least
	// every holdBeat (call_media.go), so 2 s without a packet means the path
	// is gone. Pion checks that, and sends a consent check on the selected
	// pair, every keepalive interval, here 2 s (a check is 116 bytes each
	// way on average, request and answer; every 2 s they cost 0.93 kbit/s
	// a direction): "disconnected" shows 2 to 4 s after the last packet,
	// and a restart (call_restart.go) is asked for half a second later, well
	// before "failed" ends the call. The media watchdog (call_watchdog.go)
	// asks for one much sooner, 0.5 s after the last packet: this is its
	// second guard.
	se.SetICETimeouts(2*time.Second, 12*time.Second, iceKeepalive)
	se.SetSTUNGatherTimeout(3 * time.Second)
	// Relay pairs are accepted 0.5 s after checking starts rather than
	// pion's 2 s: a call that needs a relay connects sooner, and one
	// restarting onto a relay is heard again within the failover budget.
	// A direct pair that works is found well within that (the peers'
	// checks need no relay's round trips), and of the pairs that work the
	// direct one is taken. Server-reflexive (a punched hole) and
	// peer-reflexive pairs are taken the moment they work, not after pion's
	// 0.5 s and 1 s, which are for a host pair to win: host pairs that work
	// (one host, one LAN) work as fast. Pion takes the best pair that works
	// and, while that one may not be taken yet, none: a peer-reflexive pair
	// (the peer's host socket through its NAT outranks its server-reflexive
	// candidate) held calls back a whole second. A peer's relay seen first
	// as peer-reflexive keeps the relay's low priority (pion takes it from
	// the check), so it never outranks a direct pair that works.
	se.SetRelayAcceptanceMinWait(relayAcceptanceWait)
	se.SetPrflxAcceptanceMinWait(0)
	se.SetSrflxAcceptanceMinWait(0)
	// The DTLS server answers the first ClientHello with its ServerHello,
	// without a HelloVerifyRequest cookie round trip first (one round trip
	// less to media: 80 ms over the relay of the 80 ms lab). The cookie
	// proves the client's address is not spoofed, so that a DTLS server
	// cannot be made to flood a victim; here DTLS runs only over the ICE
	// pair that passed a connectivity check, a STUN exchange with the
	// MESSAGE-INTEGRITY of the ICE password from the peer's signed offer
	// or answer, which already proved the address answers. Browsers'
	// WebRTC stacks skip it too.
	se.SetDTLSInsecureSkipHelloVerify(true)
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

// relayAcceptanceWait is how long after checking starts a relay pair may be
// nominated.
const relayAcceptanceWait = 500 * time.Millisecond

// iceKeepalive is how often pion sends a consent check on the selected pair,
// and checks whether it has gone quiet. Every 2 s (RFC 7675 asks for one
// every 4 to 6 s): a call's liveness is the media watchdog's, so checking
// every second, as before it, bought nothing for 0.9 kbit/s.
const iceKeepalive = 2 * time.Second

// DTLS-SRTP protection profiles (RFC 5764, RFC 7714), by their numbers (the
// type is pion/dtls's).
const (
	srtpAES128CMHMACSHA1_80 = 0x0001
	srtpAEADAES128GCM       = 0x0007
	srtpAEADAES256GCM       = 0x0008
)

// rtcpReportInterval is how often RTCP sender and receiver reports go.
const rtcpReportInterval = 5 * time.Second

// opusCapability is how calls offer Opus. maxaveragebitrate asks the peer
// to encode at most at the rate this end encodes at (codec.DefaultBitrate,
// RFC 7587): a browser would otherwise send 32 kbit/s.
var opusCapability = webrtc.RTPCodecCapability{
	MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
	SDPFmtpLine: "minptime=10;useinbandfec=1;maxaveragebitrate=" + strconv.Itoa(codec.DefaultBitrate),
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
	if e.CallID != "" && e.Conf == "" {
		s.mu.Lock()
		e.Conf = s.legConf[e.CallID]
		s.mu.Unlock()
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
