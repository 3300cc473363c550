package snapi

import (
	"encoding/json"
	"fmt"
	"time"
)

// ProtocolVersion is the version every frame carries in its "v" field.
const ProtocolVersion = 1

// MaxFrameSize caps one websocket message in either direction (bytes of JSON).
// An SDP offer with a full set of candidates is a few KiB; a 64 KiB IM (a later
// issue) plus its envelope fits too.
const MaxFrameSize = 96 << 10

// MaxPayloadSize caps the opaque payload of a "send"/"deliver" frame.
const MaxPayloadSize = 80 << 10

// Frame types. The direction is client→supernode (C→S) or supernode→client (S→C).
const (
	// TypeChallenge (S→C) opens every connection: Nonce (32 random bytes) and Server,
	// the name the supernode knows itself by (host:port of its advertised address).
	TypeChallenge = "challenge"
	// TypeAttach (C→S) answers the challenge: Credential (a login-server token) and
	// Sig, the user's signature with context [AttachContext] over
	// Nonce || Server (see [AttachMessage]); optionally Session, the id of a
	// session the client held here on a connection it lost, which the
	// supernode then closes (only one attached with the same key).
	TypeAttach = "attach"
	// TypeAttached (S→C) accepts the attach: User, Session (this connection's id),
	// ICEServers (STUN/TURN the client may use for calls), Supernodes (ws://
	// URLs of up to [MaxSupernodesListed] other live supernodes, for the
	// client's host cache) and Observed (the client's address as the supernode
	// sees it, host:port).
	TypeAttached = "attached"
	// TypeRenew (C→S) presents a fresh Credential for the same user and key before
	// the current one expires. Answered with TypeAttached, or TypeError and close.
	TypeRenew = "renew"
	// TypeSend (C→S) asks the supernode to deliver Payload to every device of user
	// To. ID is chosen by the sender and echoed in the TypeAck or TypeError reply.
	TypeSend = "send"
	// TypeAck (S→C) says the TypeSend with the same ID reached Delivered devices.
	TypeAck = "ack"
	// TypeDeliver (S→C) carries Payload from user From (as authenticated by the
	// supernode, session FromSession) to this client.
	TypeDeliver = "deliver"
	// TypeError (S→C) reports Code and a one-line Error; for a failed TypeSend it
	// carries the send's ID. Fatal errors are followed by a close.
	TypeError = "error"
	// TypeLookup (C→S) asks where user To is online. ID as for TypeSend.
	TypeLookup = "lookup"
	// TypeFound (S→C) answers a TypeLookup with the same ID: User, Delivered (the
	// number of attached devices, 0 when offline), Nodes (the supernodes they
	// are attached to) and Hops (overlay messages the lookup took in sequence:
	// 0 when this supernode knew, 1 when it asked one replica, 2 when it had to
	// ask the others too).
	TypeFound = "found"
	// TypeDialback (C→S) asks the supernode to check that the client could serve
	// as a supernode: URL is the ws:// URL it would serve (its host must be the
	// address the supernode sees the client at), NodeKey the node key that must
	// answer there (see internal/nodeid), UDP the host:port of its STUN/TURN
	// UDP port (same host). Answered with TypeDialbackResult or TypeError.
	TypeDialback = "dialback"
	// TypeDialbackResult (S→C) reports a TypeDialback with the same ID: TCP and
	// UDPOK say which checks passed; Error says why one failed.
	TypeDialbackResult = "dialback_result"
	// TypePresence (C→S) sets this connection's Status ([StatusOnline],
	// [StatusAway], [StatusBusy] or [StatusInvisible]), Device (the client's
	// own name for its device, ≤ [MaxIDLen] bytes, the same across failovers)
	// and Watch (≤ [MaxWatch] users, the user's contacts). The supernode pushes
	// the status to every watched user at once, "offline" to users dropped
	// from Watch, and "offline" to all of them when the connection ends.
	// Clients send it again unchanged every [PresenceRefresh] so watchers can
	// expire a device whose supernode died with it. An invalid one gets a
	// TypeError with its ID.
	//
	// TypePresence (S→C) tells a watcher that device Device of user From is
	// now Status (online, away, busy or offline: invisible is shown as
	// offline); FromSession is the session it is about (a device that moved
	// supernodes has a new one, and the old one's "offline" comes late). When a watcher that itself watches From receives a push that
	// is not a reply, its supernode pushes the watcher's own status back (so
	// both learn each other's state when one comes online).
	TypePresence = "presence"
)

// MaxWatch caps the users one TypePresence frame watches.
const MaxWatch = 1000

// PresenceRefresh is how often a client repeats its TypePresence frame;
// watchers forget a device not heard of for 3×PresenceRefresh.
const PresenceRefresh = 60 * time.Second

// Error codes carried by TypeError frames.
const (
	CodeBadRequest = "bad_request" // the frame broke the protocol; the connection closes
	CodeAuth       = "auth"        // the credential or signature was refused; the connection closes
	CodeOffline    = "offline"     // the recipient of a send is not attached anywhere
	CodeOverload   = "overload"    // the recipient's queue is full; retry later
	// CodeLimit: a limit of the supernode was reached — too many sessions for
	// this user or from this address (sent instead of the challenge or the
	// attached frame), or the connection sent nothing for too long. The
	// connection closes; the client may try another supernode.
	CodeLimit = "limit"
)

// Admission control. A supernode that cannot take a connection now (too many
// attaches in flight, too many a second, its memory near its limit) answers
// the websocket upgrade of /v1/ws with HTTP [BusyStatus] (503), a
// Retry-After header in whole seconds (1 to [MaxRetryAfter]) and a JSON body
// [BusyBody], before any websocket frame. A client waits at least that long
// before trying that supernode again (trying another one meanwhile is
// fine), adding its own jitter so that refused clients do not come back
// together. [Dial] returns it as a [*BusyError].
const (
	BusyStatus = 503
	// MaxRetryAfter caps the Retry-After a client believes: a larger (or
	// unreadable) value is taken as this.
	MaxRetryAfter = 60 * time.Second
)

// BusyBody is the JSON body of a busy refusal: {"error": "...", "reason":
// "attaching"|"attach_rate"|"memory", "retry_after": seconds}.
type BusyBody struct {
	Error      string `json:"error"`
	Reason     string `json:"reason"`
	RetryAfter int    `json:"retry_after"`
}

// AttachContext is the signature context of the attach proof.
const AttachContext = "parley-attach-v1"

// Frame is the one message shape on the supernode websocket, JSON in a text
// message of at most [MaxFrameSize] bytes. Fields unused by a type are omitted.
//
//   - V: [ProtocolVersion]; frames with another version are refused.
//   - Type: one of the Type constants.
//   - ID: request id of a send (≤ 64 bytes), echoed in its ack or error.
//   - Nonce, Server: the challenge (Nonce is 32 bytes, base64 in JSON).
//   - Credential: a login-server token (≤ identity.MaxTokenLen).
//   - Sig: an Ed25519 signature (64 bytes).
//   - User, Session: who the connection is attached as.
//   - To, From, FromSession: routing of a send/deliver.
//   - Payload: opaque end-to-end JSON (≤ [MaxPayloadSize]); the supernode only routes it.
//   - Delivered: number of devices a send reached.
//   - ICEServers: STUN/TURN servers offered to the client.
//   - Code, Error: an error code and one readable line.
//   - Supernodes, Observed: attach extras (see TypeAttached).
//   - Nodes, Hops: a lookup's answer (see TypeFound).
//   - URL, UDP, NodeKey, TCPOK, UDPOK: a dial-back request and its result.
//   - Status, Device, Watch: presence (see TypePresence).
type Frame struct {
	V           int             `json:"v"`
	Type        string          `json:"type"`
	ID          string          `json:"id,omitempty"`
	Nonce       []byte          `json:"nonce,omitempty"`
	Server      string          `json:"server,omitempty"`
	Credential  string          `json:"credential,omitempty"`
	Sig         []byte          `json:"sig,omitempty"`
	User        string          `json:"user,omitempty"`
	Session     string          `json:"session,omitempty"`
	To          string          `json:"to,omitempty"`
	From        string          `json:"from,omitempty"`
	FromSession string          `json:"from_session,omitempty"`
	Payload     json.RawMessage `json:"payload,omitempty"`
	Delivered   int             `json:"delivered,omitempty"`
	ICEServers  []ICEServer     `json:"ice_servers,omitempty"`
	Code        string          `json:"code,omitempty"`
	Error       string          `json:"error,omitempty"`
	Supernodes  []string        `json:"supernodes,omitempty"`
	Observed    string          `json:"observed,omitempty"`
	Nodes       []string        `json:"nodes,omitempty"`
	Hops        int             `json:"hops,omitempty"`
	URL         string          `json:"url,omitempty"`
	UDP         string          `json:"udp,omitempty"`
	NodeKey     []byte          `json:"node_key,omitempty"`
	TCPOK       bool            `json:"tcp_ok,omitempty"`
	UDPOK       bool            `json:"udp_ok,omitempty"`
	Status      string          `json:"status,omitempty"`
	Device      string          `json:"device,omitempty"`
	Watch       []string        `json:"watch,omitempty"`
}

// ICEServer is a STUN or TURN server offered to attached clients, in the shape
// WebRTC's RTCIceServer uses (so the browser client can pass it straight on).
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// MaxSupernodesListed caps TypeAttached's Supernodes.
const MaxSupernodesListed = 16

// MaxNodesFound caps TypeFound's Nodes (a user's devices are on at most this
// many supernodes; more are left out).
const MaxNodesFound = 32

// MaxIDLen caps a send's ID.
const MaxIDLen = 64

// EncodeFrame marshals f with the current version.
func EncodeFrame(f Frame) ([]byte, error) {
	f.V = ProtocolVersion
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("supernode: encode %s: %w", f.Type, err)
	}
	if len(b) > MaxFrameSize {
		return nil, fmt.Errorf("supernode: encode %s: %d bytes: %w", f.Type, len(b), ErrFrameTooBig)
	}
	return b, nil
}

// DecodeFrame parses and checks one frame from untrusted bytes.
func DecodeFrame(b []byte) (Frame, error) {
	var f Frame
	if len(b) > MaxFrameSize {
		return f, fmt.Errorf("supernode: decode: %d bytes: %w", len(b), ErrFrameTooBig)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("supernode: decode: %w: %v", ErrBadFrame, err)
	}
	if f.V != ProtocolVersion {
		return f, fmt.Errorf("supernode: decode: version %d: %w", f.V, ErrVersion)
	}
	switch {
	case f.Type == "":
		return f, fmt.Errorf("supernode: decode: no type: %w", ErrBadFrame)
	case len(f.ID) > MaxIDLen:
		return f, fmt.Errorf("supernode: decode: id too long: %w", ErrBadFrame)
	case len(f.Supernodes) > MaxSupernodesListed, len(f.Nodes) > MaxNodesFound:
		return f, fmt.Errorf("supernode: decode: too many supernodes: %w", ErrBadFrame)
	case len(f.Payload) > MaxPayloadSize:
		return f, fmt.Errorf("supernode: decode: payload %d bytes: %w", len(f.Payload), ErrFrameTooBig)
	case len(f.Watch) > MaxWatch:
		return f, fmt.Errorf("supernode: decode: watching %d users: %w", len(f.Watch), ErrBadFrame)
	case len(f.Device) > MaxIDLen:
		return f, fmt.Errorf("supernode: decode: device name too long: %w", ErrBadFrame)
	case len(f.Session) > MaxIDLen:
		return f, fmt.Errorf("supernode: decode: session id too long: %w", ErrBadFrame)
	}
	return f, nil
}

// AttachMessage is what a client signs to answer a challenge: the nonce followed by
// the server name, so a proof made for one supernode is useless at another.
func AttachMessage(nonce []byte, server string) []byte {
	m := make([]byte, 0, len(nonce)+len(server))
	m = append(m, nonce...)
	return append(m, server...)
}
