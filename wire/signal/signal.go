// Package signal is the call signalling that travels between clients (the Go
// client and the page) as the opaque payload of supernode send/deliver frames
// (package wire/snapi). It imports nothing of the project but the credential
// format (internal/identity) and the frame limits (wire/snapi).
//
// Supernodes route signals but cannot forge or alter them unseen: every signal
// carries the sender's credential and is signed with the sender's key. For an
// offer and an answer the signed message includes the DTLS fingerprints of the
// SDP, so a supernode that swaps in its own certificate (to sit in the middle
// of DTLS-SRTP) is caught by the receiver, which refuses the call.
//
// Flow of a call from A to B:
//
//	A ↔ B  probe, probe-reply  each end's relay round trips (RTTs), when
//	                           more than one relay is on offer
//	A → B  offer      SDP (candidates then trickle: "candidate" signals, one
//	                  Candidate each), A's credential, signature
//	B → A  ringing    B is alerting its user (or about to answer)
//	B → A  answer     SDP, B's credential, signature  — or —  decline, Reason
//	A → B  answered   Answerer: the answering device; B's other devices stop
//	                  ringing
//	either path       Path: this end's view of the selected candidate pair
//	either hold, resume
//	either hangup     Reason; the other side ends the call
//
// and, when a connected call's path dies:
//
//	B → A  restart    (only when B noticed first) please restart ICE, Reason
//	A → B  re-offer   SDP with new ICE credentials and candidates, same DTLS
//	                  fingerprint, signed; Attempt names the restart
//	B → A  re-answer  SDP, same DTLS fingerprint, signed; Attempt echoed
//
// Outside calls: status (to the sender's own user: Status) and contacts (the
// contact list changed: reread it).
package signal

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/snapi"
)

// Signal is the payload, JSON of at most [MaxBytes] bytes. Each kind carries
// its own typed fields; fields a kind does not use are empty.
//
//   - V: [Version].
//   - Kind: one of the Kind constants.
//   - CallID: 16 hex characters chosen by the caller; all signals of a call
//     carry it (random for status and contacts).
//   - From, To: sender and recipient user names (signed, so a supernode cannot
//     redirect a signal to someone else).
//   - Device: the sending session's random id (1 to 64 bytes), the same through
//     failovers; a call is bound to the peer device that answered (or
//     offered), and the signals of the user's other devices are ignored.
//   - SDP: the session description (offer, answer, re-offer, re-answer only;
//     they must carry a DTLS fingerprint, and a re-offer's or re-answer's must
//     be the peer's first offer's or answer's).
//   - Relay: in an offer, the relay (host:port) chosen for the call.
//   - Reason: why, in words (decline, hangup, restart); ≤ [MaxReason] bytes.
//   - Status: the status the user set (status).
//   - Answerer: the Device that took the call (answered); in a conference
//     leg's offer, the device called.
//   - Attempt: names an ICE restart (re-offer, re-answer); ≤ 64 bytes.
//   - Path: this end's view of the selected candidate pair (path).
//   - Conf: the conference (a leg's offer, conf): see [Conf].
//   - RTTs: relay (host:port) → round trip in microseconds (probe,
//     probe-reply); at most [MaxRTTs] entries.
//   - Candidate: one trickled ICE candidate (candidate); its candidate line at
//     most [MaxCandidate] bytes.
//   - TS: when it was signed, Unix milliseconds; a receiver refuses signals
//     more than [Window] from its clock.
//   - Seq: a counter of the sending session; with From, Device and TS it
//     names the signal, and a receiver refuses a name it has seen (a replay)
//     within the window.
//   - Credential: the sender's login-server token.
//   - Sig: Ed25519 signature by the credential's key, context [Context], over
//     [Signal.SignedMessage].
type Signal struct {
	V        int    `json:"v"`
	Kind     string `json:"kind"`
	CallID   string `json:"call_id"`
	From     string `json:"from"`
	To       string `json:"to"`
	Device   string `json:"device"`
	SDP      string `json:"sdp,omitempty"`
	Relay    string `json:"relay,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Status   string `json:"status,omitempty"`
	Answerer string `json:"answerer,omitempty"`
	Attempt  string `json:"attempt,omitempty"`
	Path     *Path  `json:"path,omitempty"`
	// RTTs maps a relay (host:port) to this end's round trip to it, in
	// microseconds.
	RTTs      map[string]int64 `json:"rtts,omitempty"`
	Candidate *Candidate       `json:"candidate,omitempty"`
	// Conf: the conference of a leg's offer or of a KindConf signal
	// (conf.go).
	Conf       *Conf  `json:"conf,omitempty"`
	TS         int64  `json:"ts"`
	Seq        uint64 `json:"seq"`
	Credential string `json:"credential"`
	Sig        []byte `json:"sig"`
}

// Path is one end's view of a call's selected candidate pair, so that both
// ends report the same path (direct, udp-relay or tcp-relay).
type Path struct {
	Local         string `json:"local"`                    // host, srflx, prflx or relay
	RelayProtocol string `json:"relay_protocol,omitempty"` // udp, tcp or tls, for a relay candidate
	Relay         string `json:"relay,omitempty"`          // the relay's address, for a relay candidate
	RemoteRelay   bool   `json:"remote_relay,omitempty"`   // the peer's candidate is a relay
}

// Candidate is a trickled ICE candidate, as the browser's RTCIceCandidateInit.
type Candidate struct {
	Candidate        string  `json:"candidate"`
	SDPMid           *string `json:"sdpMid,omitempty"`
	SDPMLineIndex    *uint16 `json:"sdpMLineIndex,omitempty"`
	UsernameFragment *string `json:"usernameFragment,omitempty"`
}

// Version is the version of [Signal]. Version 2 added Device (signed) and the
// ICE restart kinds; version 3 gave each kind typed fields (Status, Answerer,
// Attempt, Path, RTTs, Candidate) instead of JSON inside Reason; version 4
// added conference calls (Conf, KindConf: conf.go).
const Version = 4

// Context is the signature context of signals.
const Context = "parley-signal-v1"

// Limits.
const (
	// MaxBytes caps a signal's JSON: the payload of one supernode frame.
	MaxBytes = snapi.MaxPayloadSize
	// MaxReason caps Reason; a longer one is cut (on a character boundary)
	// when signed.
	MaxReason = 512
	// MaxRTTs caps the relays of a probe or probe-reply.
	MaxRTTs = 16
	// MaxCandidate caps a trickled candidate's line.
	MaxCandidate = 1024
	// MaxTrickled caps the trickled candidates ([KindCandidate]) an end
	// keeps for a call whose description is not applied yet (a callee while
	// it rings, a caller until the answer is applied), and the candidates of
	// the peer it takes in all; more are dropped.
	MaxTrickled = 64
	// maxField caps the other short fields (names, devices, attempts,
	// relays, path words).
	maxField = 256
)

// ProbeTimeout paces relay choice ([KindProbe], [KindProbeReply]): an end
// measures its round trips to the relays on offer within 2×ProbeTimeout
// (ProbeTimeout per try: UDP, then TCP when UDP gets no answer), and a caller
// waits at most 3×ProbeTimeout for the callee's probe-reply before it
// chooses alone.
const ProbeTimeout = 800 * time.Millisecond

// Signal kinds.
const (
	KindOffer   = "offer"
	KindRinging = "ringing"
	KindAnswer  = "answer"
	KindDecline = "decline"
	KindHangup  = "hangup"
	// KindPath tells the peer how this end reaches it (Path), so both ends
	// agree on direct, udp-relay or tcp-relay.
	KindPath = "path"
	// KindHold and KindResume tell the peer the call is (no longer) on hold.
	KindHold   = "hold"
	KindResume = "resume"
	// KindProbe and KindProbeReply carry each end's round trips to the relays
	// on offer (RTTs) before an offer, to choose the call's relay.
	KindProbe      = "probe"
	KindProbeReply = "probe-reply"
	// KindRestart asks the caller to restart ICE (the callee's path died);
	// KindReoffer and KindReanswer are the restart's offer and answer, with
	// the DTLS fingerprints of the call's first offer and answer.
	KindRestart  = "restart"
	KindReoffer  = "re-offer"
	KindReanswer = "re-answer"
	// KindAnswered tells the callee's devices which one took the call
	// (Answerer): the others stop ringing, and one that answered too late
	// ends its side.
	KindAnswered = "answered"
	// KindStatus, from a user to their own user, tells their other running
	// devices the status they set (Status).
	KindStatus = "status"
	// KindContacts, from a user whose contact entry with the receiver just
	// changed (accepted or declined), or from the receiver's own user, tells
	// the receiver's running devices to reread the contact list now, so that
	// presence starts (or stops) at once instead of at the next refresh.
	KindContacts = "contacts"
	// KindCandidate carries one ICE candidate of a call's first negotiation
	// as it is found (trickle ICE, Candidate). The offer and the answer go
	// out without waiting for gathering; ICE restarts still carry all their
	// candidates in the SDP.
	KindCandidate = "candidate"
)

// Kinds lists every kind, in the order of the constants.
func Kinds() []string {
	return []string{KindOffer, KindRinging, KindAnswer, KindDecline, KindHangup, KindPath, KindHold, KindResume,
		KindProbe, KindProbeReply, KindRestart, KindReoffer, KindReanswer, KindAnswered, KindStatus, KindContacts, KindCandidate, KindConf}
}

// InCallKinds are the kinds about a call in progress: the sender retries
// them while the peer is offline (it may be failing over too).
func InCallKinds() []string {
	return []string{KindHangup, KindPath, KindHold, KindResume, KindReoffer, KindReanswer, KindRestart}
}

// Window is how far a signal's timestamp may be from the receiver's clock.
const Window = 2 * time.Minute

// SignedMessage is what the signature covers: every field but the credential
// and the signature, each on a line of its own, with the SDP reduced to its
// sorted DTLS fingerprints (the part that decides who the media is encrypted
// to):
//
//	kind, call_id, from, to, device, reason, relay, ts, seq, status,
//	answerer, attempt,
//	path:   "" or local SP relay_protocol SP relay SP (1 | 0)
//	rtts:   "" or relay=us pairs sorted by relay, joined by ","
//	candidate, sdpMid, sdpMLineIndex, usernameFragment: each "" when absent,
//	        else "=" and the value
//	conf:   "" or "=" id SP op SP group SP users SP members (lists joined
//	        by ",")
//	then one line per fingerprint.
//
// The page builds the same bytes (web/static/js/signal.js).
func (s *Signal) SignedMessage() []byte {
	var b bytes.Buffer
	line := func(f string) {
		b.WriteString(f)
		b.WriteByte('\n')
	}
	for _, f := range []string{s.Kind, s.CallID, s.From, s.To, s.Device, s.Reason, s.Relay,
		strconv.FormatInt(s.TS, 10), strconv.FormatUint(s.Seq, 10), s.Status, s.Answerer, s.Attempt} {
		line(f)
	}
	if p := s.Path; p != nil {
		remote := "0"
		if p.RemoteRelay {
			remote = "1"
		}
		line(p.Local + " " + p.RelayProtocol + " " + p.Relay + " " + remote)
	} else {
		line("")
	}
	pairs := make([]string, 0, len(s.RTTs))
	for _, r := range slices.Sorted(maps.Keys(s.RTTs)) {
		pairs = append(pairs, r+"="+strconv.FormatInt(s.RTTs[r], 10))
	}
	line(strings.Join(pairs, ","))
	opt := func(v *string) string {
		if v == nil {
			return ""
		}
		return "=" + *v
	}
	if c := s.Candidate; c != nil {
		line("=" + c.Candidate)
		line(opt(c.SDPMid))
		if c.SDPMLineIndex != nil {
			line("=" + strconv.Itoa(int(*c.SDPMLineIndex)))
		} else {
			line("")
		}
		line(opt(c.UsernameFragment))
	} else {
		line("")
		line("")
		line("")
		line("")
	}
	line(s.Conf.signedLine())
	for _, fp := range Fingerprints(s.SDP) {
		line(fp)
	}
	return b.Bytes()
}

// Sign completes s: version, credential, time, sequence number and signature.
// A Reason over MaxReason bytes is cut on a character boundary first.
func (s *Signal) Sign(key ed25519.PrivateKey, credential string, now time.Time, seq uint64) {
	s.V = Version
	s.Credential = credential
	s.TS, s.Seq = now.UnixMilli(), seq
	if len(s.Reason) > MaxReason {
		// Cut on a character boundary: JSON would replace half a character,
		// and the signature would no longer match.
		cut := MaxReason
		for cut > 0 && !utf8.RuneStart(s.Reason[cut]) {
			cut--
		}
		s.Reason = s.Reason[:cut]
	}
	s.Sig = identity.SignContext(key, Context, s.SignedMessage())
}

// Verify checks a received signal: the credential is the login server's and
// current, names the sender the supernode authenticated (from) and the claimed
// From, the signal is addressed to me, and the signature matches.
func (s *Signal) Verify(loginKey ed25519.PublicKey, from, me string, now time.Time) error {
	if s.V != Version {
		return fmt.Errorf("signal: version %d: %w", s.V, ErrBadSignal)
	}
	cred, err := identity.Verify(loginKey, s.Credential, now)
	if err != nil {
		return fmt.Errorf("signal: from %s: %w: %w", from, ErrBadSignal, err)
	}
	if cred.User != from || s.From != from {
		return fmt.Errorf("signal: from %s carries %s's credential: %w", from, cred.User, ErrBadSignal)
	}
	if d := now.Sub(time.UnixMilli(s.TS)); d > Window || d < -Window {
		return fmt.Errorf("signal: from %s dated %v away from now: %w", from, d.Round(time.Second), ErrBadSignal)
	}
	if s.To != me {
		return fmt.Errorf("signal: from %s addressed to %s: %w", from, s.To, ErrBadSignal)
	}
	if HasSDP(s.Kind) && len(Fingerprints(s.SDP)) == 0 {
		return fmt.Errorf("signal: %s from %s has no DTLS fingerprint: %w", s.Kind, from, ErrBadSignal)
	}
	if !identity.VerifyContext(cred.Key(), Context, s.SignedMessage(), s.Sig) {
		return fmt.Errorf("signal: %s from %s: DTLS fingerprint or signal not signed by %s's key: %w", s.Kind, from, from, ErrBadSignal)
	}
	return nil
}

// HasSDP reports whether signals of kind carry a session description.
func HasSDP(kind string) bool {
	switch kind {
	case KindOffer, KindAnswer, KindReoffer, KindReanswer:
		return true
	}
	return false
}

// Decode reads an untrusted payload: JSON of at most MaxBytes, a known kind,
// a call id of 16 characters, a device, and typed fields within their limits
// and free of line breaks (they are signed line by line). It does not verify
// the signature: see [Signal.Verify].
func Decode(b []byte) (*Signal, error) {
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("signal: decode: %d bytes: %w", len(b), ErrBadSignal)
	}
	var s Signal
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("signal: decode: %w: %v", ErrBadSignal, err)
	}
	if !slices.Contains(Kinds(), s.Kind) {
		return nil, fmt.Errorf("signal: decode: kind %q: %w", s.Kind, ErrBadSignal)
	}
	if len(s.CallID) != 16 {
		return nil, fmt.Errorf("signal: decode: call id: %w", ErrBadSignal)
	}
	if s.Device == "" || len(s.Device) > 64 {
		return nil, fmt.Errorf("signal: decode: device: %w", ErrBadSignal)
	}
	if err := s.checkFields(); err != nil {
		return nil, fmt.Errorf("signal: decode %s: %w: %v", s.Kind, ErrBadSignal, err)
	}
	return &s, nil
}

// checkFields checks the typed fields' limits, and that the fields signed as
// lines hold no line break.
func (s *Signal) checkFields() error {
	short := map[string]string{"call_id": s.CallID, "from": s.From, "to": s.To, "device": s.Device, "relay": s.Relay,
		"status": s.Status, "answerer": s.Answerer, "attempt": s.Attempt}
	for name, v := range short {
		if len(v) > maxField || strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("%s: too long or has a line break", name)
		}
	}
	if len(s.Reason) > MaxReason || strings.ContainsAny(s.Reason, "\r\n") {
		return fmt.Errorf("reason: too long or has a line break")
	}
	if p := s.Path; p != nil {
		for _, v := range []string{p.Local, p.RelayProtocol, p.Relay} {
			if len(v) > maxField || strings.ContainsAny(v, " \r\n") {
				return fmt.Errorf("path: a field too long or not one word")
			}
		}
	}
	if len(s.RTTs) > MaxRTTs {
		return fmt.Errorf("rtts: %d relays, at most %d", len(s.RTTs), MaxRTTs)
	}
	for r, us := range s.RTTs {
		if r == "" || len(r) > maxField || strings.ContainsAny(r, "=,\r\n") || us < 0 {
			return fmt.Errorf("rtts: entry %q", r)
		}
	}
	if err := s.Conf.check(s.Kind); err != nil {
		return err
	}
	if c := s.Candidate; c != nil {
		if c.Candidate == "" || len(c.Candidate) > MaxCandidate || strings.ContainsAny(c.Candidate, "\r\n") {
			return fmt.Errorf("candidate: empty, too long or has a line break")
		}
		for _, v := range []*string{c.SDPMid, c.UsernameFragment} {
			if v != nil && (len(*v) > maxField || strings.ContainsAny(*v, "\r\n")) {
				return fmt.Errorf("candidate: sdpMid or usernameFragment")
			}
		}
	}
	return nil
}

// Fingerprints returns the DTLS certificate fingerprints of an SDP
// ("a=fingerprint:" lines at session or media level), normalized to lower
// case and sorted.
func Fingerprints(sdp string) []string {
	var fps []string
	for _, line := range strings.Split(sdp, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "a=fingerprint:"); ok {
			fp := strings.ToLower(strings.Join(strings.Fields(v), " "))
			fps = append(fps, fp)
		}
	}
	slices.Sort(fps)
	// Session- and media-level copies of the same fingerprint count once.
	return slices.Compact(fps)
}
