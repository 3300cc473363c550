package client

import (
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley/parley/internal/identity"
)

// Call signalling travels between clients as the opaque Payload of supernode
// send/deliver frames. Supernodes route it but cannot forge or alter it unseen:
// every signal carries the sender's credential and is signed with the sender's
// key. For an offer and an answer the signed message includes the DTLS
// fingerprints of the SDP, so a supernode that swaps in its own certificate (to
// sit in the middle of DTLS-SRTP) is caught by the receiver, which refuses the call.
//
// Flow of a call from A to B:
//
//	A → B  offer    SDP (candidates then trickle: "candidate" signals), A's credential, signature
//	B → A  ringing  B is alerting its user (or about to answer)
//	B → A  answer   SDP, B's credential, signature      — or —  decline, reason
//	either hangup   reason; the other side ends the call
//	A → B  answered the answering device's id: B's other devices stop ringing
//
// and, when a connected call's path dies (restart.go):
//
//	B → A  restart    (only when B noticed first) please restart ICE, reason
//	A → B  re-offer   SDP with new ICE credentials and candidates, same DTLS
//	                  fingerprint, signed; reason: the restart's number
//	B → A  re-answer  SDP, same DTLS fingerprint, signed; reason echoed
//
// Signal is the payload, JSON of at most snapi.MaxPayloadSize bytes:
//
//   - V: [SignalVersion].
//   - Kind: probe and probe-reply (relay round trips, JSON in Reason) before an
//     offer; offer, ringing, answer, decline, hangup; during a call path (this
//     end's view of the selected candidate pair, JSON in Reason), hold, resume,
//     and for an ICE restart restart, re-offer, re-answer; answered (to all of
//     the callee's devices); status (to the sender's own user).
//   - CallID: 16 hex characters chosen by the caller; all signals of a call carry it.
//   - From, To: sender and recipient user names (signed, so a supernode cannot
//     redirect a signal to someone else).
//   - Device: the sending session's random id (16 hex characters), the same
//     through failovers; a call is bound to the peer device that answered
//     (or offered), and the signals of the user's other devices are ignored.
//   - SDP: the session description (offer, answer, re-offer, re-answer only;
//     they must carry a DTLS fingerprint, and a re-offer's or re-answer's must be
//     the peer's first offer's or answer's).
//   - Relay: in an offer, the relay (host:port) chosen for the call (relays.go).
//   - Reason: why (decline, hangup, restart), the path view, or a restart's
//     number (re-offer, re-answer); ≤ 512 bytes.
//   - TS: when it was signed, Unix milliseconds; a receiver refuses signals more
//     than [SignalWindow] from its clock.
//   - Seq: a counter of the sending session; with From and TS it names the signal,
//     and a receiver refuses a name it has seen (a replay) within the window.
//   - Credential: the sender's login-server token.
//   - Sig: Ed25519 signature by the credential's key, context [SignalContext],
//     over [Signal.signedMessage].
type Signal struct {
	V          int    `json:"v"`
	Kind       string `json:"kind"`
	CallID     string `json:"call_id"`
	From       string `json:"from"`
	To         string `json:"to"`
	Device     string `json:"device"`
	SDP        string `json:"sdp,omitempty"`
	Relay      string `json:"relay,omitempty"`
	Reason     string `json:"reason,omitempty"`
	TS         int64  `json:"ts"`
	Seq        uint64 `json:"seq"`
	Credential string `json:"credential"`
	Sig        []byte `json:"sig"`
}

// SignalVersion is the version of [Signal]. Version 2 added Device (signed)
// and the ICE restart kinds.
const SignalVersion = 2

// SignalContext is the signature context of signals.
const SignalContext = "parley-signal-v1"

// Signal kinds.
const (
	KindOffer   = "offer"
	KindRinging = "ringing"
	KindAnswer  = "answer"
	KindDecline = "decline"
	KindHangup  = "hangup"
	// KindPath tells the peer how this end reaches it (JSON of pathView in
	// Reason), so both ends agree on direct, udp-relay or tcp-relay.
	KindPath = "path"
	// KindHold and KindResume tell the peer the call is (no longer) on hold.
	KindHold   = "hold"
	KindResume = "resume"
	// KindProbe and KindProbeReply carry each end's round trips to the relays
	// on offer (JSON in Reason) before an offer, to choose the call's relay.
	KindProbe      = "probe"
	KindProbeReply = "probe-reply"
	// KindRestart asks the caller to restart ICE (the callee's path died);
	// KindReoffer and KindReanswer are the restart's offer and answer, with
	// the DTLS fingerprints of the call's first offer and answer (restart.go).
	KindRestart  = "restart"
	KindReoffer  = "re-offer"
	KindReanswer = "re-answer"
	// KindAnswered tells the callee's devices which one took the call
	// (Reason: its Device): the others stop ringing, and one that answered
	// too late ends its side.
	KindAnswered = "answered"
	// KindStatus, from a user to their own user, tells their other running
	// devices the status they set (Reason); CallID is random.
	KindStatus = "status"
	// KindContacts, from a user whose contact entry with the receiver just
	// changed (accepted or declined), or from the receiver's own user, tells
	// the receiver's running devices to reread the contact list now, so that
	// presence starts (or stops) at once instead of at the next refresh.
	// CallID is random.
	KindContacts = "contacts"
	// KindCandidate carries one ICE candidate of a call's first negotiation
	// as it is found (trickle ICE): Reason is the JSON of an
	// RTCIceCandidateInit ({candidate, sdpMid, sdpMLineIndex,
	// usernameFragment}). The offer and the answer go out without waiting for
	// gathering; ICE restarts still carry all their candidates in the SDP.
	KindCandidate = "candidate"
)

const maxReason = 512

// SignalWindow is how far a signal's timestamp may be from the receiver's clock.
const SignalWindow = 2 * time.Minute

// signedMessage is what the signature covers: every field but the credential and
// the signature, with the SDP reduced to its sorted DTLS fingerprints (the part
// that decides who the media is encrypted to).
func (s *Signal) signedMessage() []byte {
	var b strings.Builder
	for _, f := range []string{s.Kind, s.CallID, s.From, s.To, s.Device, s.Reason, s.Relay, strconv.FormatInt(s.TS, 10), strconv.FormatUint(s.Seq, 10)} {
		b.WriteString(f)
		b.WriteByte('\n')
	}
	for _, fp := range Fingerprints(s.SDP) {
		b.WriteString(fp)
		b.WriteByte('\n')
	}
	return []byte(b.String())
}

func (s *Signal) sign(key ed25519.PrivateKey, credential string, now time.Time, seq uint64) {
	s.V = SignalVersion
	s.Credential = credential
	s.TS, s.Seq = now.UnixMilli(), seq
	if len(s.Reason) > maxReason {
		// Cut on a character boundary: JSON would replace half a character,
		// and the signature would no longer match.
		cut := maxReason
		for cut > 0 && !utf8.RuneStart(s.Reason[cut]) {
			cut--
		}
		s.Reason = s.Reason[:cut]
	}
	s.Sig = identity.SignContext(key, SignalContext, s.signedMessage())
}

// verify checks a received signal: the credential is the login server's and
// current, names the sender the supernode authenticated (from) and the claimed
// From, the signal is addressed to me, and the signature matches.
func (s *Signal) verify(loginKey ed25519.PublicKey, from, me string, now time.Time) error {
	if s.V != SignalVersion {
		return fmt.Errorf("client: signal version %d: %w", s.V, ErrBadSignal)
	}
	cred, err := identity.Verify(loginKey, s.Credential, now)
	if err != nil {
		return fmt.Errorf("client: signal from %s: %w: %w", from, ErrBadSignal, err)
	}
	if cred.User != from || s.From != from {
		return fmt.Errorf("client: signal from %s carries %s's credential: %w", from, cred.User, ErrBadSignal)
	}
	if d := now.Sub(time.UnixMilli(s.TS)); d > SignalWindow || d < -SignalWindow {
		return fmt.Errorf("client: signal from %s dated %v away from now: %w", from, d.Round(time.Second), ErrBadSignal)
	}
	if s.To != me {
		return fmt.Errorf("client: signal from %s addressed to %s: %w", from, s.To, ErrBadSignal)
	}
	if hasSDP(s.Kind) && len(Fingerprints(s.SDP)) == 0 {
		return fmt.Errorf("client: %s from %s has no DTLS fingerprint: %w", s.Kind, from, ErrBadSignal)
	}
	if !identity.VerifyContext(cred.Key(), SignalContext, s.signedMessage(), s.Sig) {
		return fmt.Errorf("client: %s from %s: DTLS fingerprint or signal not signed by %s's key: %w", s.Kind, from, from, ErrBadSignal)
	}
	return nil
}

// hasSDP reports whether signals of kind carry a session description.
func hasSDP(kind string) bool {
	switch kind {
	case KindOffer, KindAnswer, KindReoffer, KindReanswer:
		return true
	}
	return false
}

func decodeSignal(b []byte) (*Signal, error) {
	var s Signal
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("client: decode signal: %w: %v", ErrBadSignal, err)
	}
	switch s.Kind {
	case KindOffer, KindRinging, KindAnswer, KindDecline, KindHangup, KindPath, KindHold, KindResume, KindProbe, KindProbeReply,
		KindRestart, KindReoffer, KindReanswer, KindAnswered, KindStatus, KindContacts, KindCandidate:
	default:
		return nil, fmt.Errorf("client: decode signal: kind %q: %w", s.Kind, ErrBadSignal)
	}
	if len(s.CallID) != 16 {
		return nil, fmt.Errorf("client: decode signal: call id: %w", ErrBadSignal)
	}
	if s.Device == "" || len(s.Device) > 64 {
		return nil, fmt.Errorf("client: decode signal: device: %w", ErrBadSignal)
	}
	return &s, nil
}

// Fingerprints returns the DTLS certificate fingerprints of an SDP ("a=fingerprint:"
// lines at session or media level), normalized to lower case and sorted.
func Fingerprints(sdp string) []string {
	var fps []string
	for _, line := range strings.Split(sdp, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "a=fingerprint:"); ok {
			fp := strings.ToLower(strings.Join(strings.Fields(v), " "))
			fps = append(fps, fp)
		}
	}
	sort.Strings(fps)
	// Session- and media-level copies of the same fingerprint count once.
	out := fps[:0]
	for i, fp := range fps {
		if i == 0 || fp != fps[i-1] {
			out = append(out, fp)
		}
	}
	return out
}
