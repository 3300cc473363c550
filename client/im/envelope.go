package im

// Instant messages travel as an [Envelope]: over a WebRTC data channel when one
// is up, otherwise as the opaque payload of a supernode send/deliver frame,
// or, to a user who is offline, as the blob of a login-server mailbox item (one
// item per recipient device). Every hop but the two ends sees only the
// cleartext header (who, to whom, id, sequence number, time) and ciphertext:
//
//   - The body (the text, or a receipt) is sealed with AES-256-GCM under a
//     random 32-byte content key, with the header as associated data. (AES-GCM,
//     X25519, HKDF and Ed25519 are all in WebCrypto, so the browser client
//     seals and opens the same envelopes with no cryptographic code of its own.)
//   - The content key is wrapped for every device of the recipient and every
//     other device of the sender (so they see what was sent): an ephemeral
//     X25519 key per envelope, ECDH with the device's X25519 key (from its
//     signed [DeviceRecord]), HKDF-SHA256 with info binding the envelope id,
//     the ephemeral key and both of the device's keys, AES-256-GCM.
//   - The sending device signs everything (header, ephemeral key, wrapped keys,
//     ciphertext) with its Ed25519 key, context [EnvelopeContext]; the header
//     carries its credential, so a receiver checks user ↔ device with the login
//     server's key alone.
//
// A supernode, a relay or the login server can drop, delay or replay an
// envelope, but cannot read it, alter it or make one up: a replay has the same
// id and is shown once (history.go). Limits: text 1 to [MaxMessageBytes] bytes
// of UTF-8; at most [MaxEnvelopeDevices] devices; an envelope's JSON at most
// [MaxEnvelopeBytes], which ordinary text of MaxMessageBytes fits (a body over
// 16 KiB is deflated before it is sealed); text near the limit that does not
// compress is refused with [ErrMessageTooLong]. Receipts say "delivered" or
// "read" ([ReceiptRead]: the recipient had the messages on screen); typing
// envelopes ([KindTyping]) are online only, with limits of their own
// ([TypingInterval]). See docs/protocol.md ("Instant messages").

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/snapi"
)

// EnvelopeVersion is the version of [Envelope].
const EnvelopeVersion = 1

// EnvelopeContext is the signature context of envelopes.
const EnvelopeContext = "parley-im-v1"

// WrapInfo prefixes the HKDF info of a key wrap.
const WrapInfo = "parley-im-wrap-v1"

// Envelope kinds.
const (
	// KindMessage carries a text message.
	KindMessage = "msg"
	// KindReceipt acknowledges messages (by id) to their sender.
	KindReceipt = "receipt"
	// KindTyping says the sender is typing to the recipient, or has
	// stopped. It is online only: it goes over a data channel or a
	// supernode, never to a mailbox, is not stored, and is not
	// acknowledged.
	KindTyping = "typing"
)

// Receipt states: what happened to the messages a receipt acknowledges.
const (
	// ReceiptDelivered: the messages reached a device (and were stored in
	// its history).
	ReceiptDelivered = "delivered"
	// ReceiptRead: the recipient has had the messages on screen. Sent only
	// by users who let their contacts know (a setting of each client), so
	// its absence means nothing.
	ReceiptRead = "read"
)

// Typing states: the body of a [KindTyping] envelope.
const (
	// TypingActive: the sender is typing.
	TypingActive = "typing"
	// TypingStopped: the sender stopped typing (cleared the field, sent
	// the message, or paused).
	TypingStopped = "stopped"
)

// Typing limits. A sender sends [TypingActive] at most once every
// TypingInterval to one peer while the user types, and [TypingStopped]
// once when they stop; a receiver shows "typing" until TypingTimeout after
// the last TypingActive arrived (or a TypingStopped or a message from the
// sender does), drops a TypingActive that follows the last one it showed
// by less than TypingInterval/2, and drops a typing envelope dated more
// than TypingMaxAge before its arrival (held up on the way).
const (
	TypingInterval = 3 * time.Second
	TypingTimeout  = 6 * time.Second
	TypingMaxAge   = 30 * time.Second
)

// Limits.
const (
	// MaxMessageBytes caps the UTF-8 text of a message.
	MaxMessageBytes = 64 << 10
	// MaxEnvelopeBytes caps an envelope's JSON: a supernode payload.
	MaxEnvelopeBytes = snapi.MaxPayloadSize
	// MaxEnvelopeDevices caps the devices an envelope is encrypted to (the
	// recipient's and the sender's other devices together).
	MaxEnvelopeDevices = 32
	// MaxReceiptIDs caps the message ids one receipt acknowledges.
	MaxReceiptIDs = 1000
)

// Sizes of the sealed parts (the page checks and builds the same).
const (
	idBytes       = 16 // an envelope id: 16 random bytes, 32 hex characters
	contentKeyLen = 32 // AES-256
	// AEADOverhead is the AES-GCM tag a sealed content or wrapped key
	// carries.
	AEADOverhead = 16
	// WrappedKeyLen is the length of a wrapped content key.
	WrappedKeyLen = contentKeyLen + AEADOverhead
	// CompressOver: bodies longer than this are deflated before sealing
	// (only when that makes them shorter). Shorter bodies are not, so the
	// length of ordinary messages says nothing about their content beyond
	// their padded length.
	CompressOver = 16 << 10
	// PadTo: the sealed content is padded to a multiple of PadTo bytes.
	PadTo = 64
	// MaxContent caps the plaintext of an envelope (MaxMessageBytes of
	// text, its framing and padding).
	MaxContent = MaxMessageBytes + 5 + PadTo
)

// Encodings of the sealed content's body.
const (
	bodyRaw     = 0
	bodyDeflate = 1
)

// Envelope is an instant message or receipt as it travels. Byte fields are
// standard base64 in JSON.
//
// The header, in clear and signed:
//
//   - V: [EnvelopeVersion].
//   - Kind: [KindMessage], [KindReceipt], [KindTyping], [KindGroup] or
//     [KindHistory].
//   - ID: 16 random bytes, 32 lower-case hex characters, chosen by the sender;
//     a resend keeps it.
//   - From, FromDevice: the sender's user name and device Ed25519 key.
//   - Credential: the sender's login-server token; its user and key must be
//     From and FromDevice, and it must have been valid at TS.
//   - To: the recipient user (From itself for a note to one's other devices).
//   - Seq: the sending device's counter for the conversation with To (from 1;
//     0 for receipts and typing), to keep messages in order.
//   - TS: when it was sealed, Unix milliseconds, by the sender's clock.
//
// Then:
//
//   - Ephemeral: the envelope's ephemeral X25519 public key.
//   - Keys: the content key wrapped for each device, at most [MaxEnvelopeDevices].
//   - Ciphertext: the sealed content (AES-256-GCM, 12-byte zero nonce — each
//     content key seals one content — the header bytes as associated data).
//   - Sig: Ed25519 by FromDevice, context [EnvelopeContext], over the header,
//     Ephemeral, Keys and Ciphertext (see [Envelope.signedMessage]).
type Envelope struct {
	V          int               `json:"v"`
	Kind       string            `json:"kind"`
	ID         string            `json:"id"`
	From       string            `json:"from"`
	FromDevice ed25519.PublicKey `json:"from_device"`
	Credential string            `json:"credential"`
	To         string            `json:"to"`
	Seq        int64             `json:"seq"`
	TS         int64             `json:"ts"`
	Ephemeral  []byte            `json:"epk"`
	Keys       []WrappedKey      `json:"keys"`
	Ciphertext []byte            `json:"ct"`
	Sig        []byte            `json:"sig"`
}

// WrappedKey is an envelope's content key sealed for one device.
//
//   - Device: the device's Ed25519 key (names it; its X25519 key is the one of
//     its [DeviceRecord]).
//   - Key: AES-256-GCM (12-byte zero nonce; each wrapping key seals one content
//     key) of the content key under HKDF-SHA256(ikm = X25519(ephemeral,
//     device), salt = none, info = "parley-im-wrap-v1" || id || ephemeral
//     public || device X25519 public || device Ed25519 key), 48 bytes.
type WrappedKey struct {
	Device ed25519.PublicKey `json:"d"`
	Key    []byte            `json:"k"`
}

// Sender is what a device needs to seal messages.
type Sender struct {
	// User is the sender's user name.
	User string
	// Device is the device's Ed25519 key (the key of its credentials).
	Device ed25519.PrivateKey
	// Credential is the device's current credential from the login server.
	Credential string
}

// Draft is a text message to seal.
type Draft struct {
	// ID is the message's id: empty for a new message (a random one is
	// chosen), the same one for a resend.
	ID string
	// Seq is the conversation counter (see [History.NextSeq]); at least 1.
	Seq int64
	// Time is when the message was written; the zero time means now.
	Time time.Time
	// Text is the message, 1 to MaxMessageBytes bytes of UTF-8.
	Text string
}

// Opened is an envelope that verified and decrypted.
type Opened struct {
	Kind       string
	ID         string
	From       string
	FromDevice ed25519.PublicKey
	To         string
	Seq        int64
	// TS is the sender's time, Unix milliseconds.
	TS int64
	// Text is the message (KindMessage).
	Text string
	// Acked and State are the message ids a receipt acknowledges and what
	// happened to them, ReceiptDelivered or ReceiptRead (KindReceipt); for
	// KindTyping, State is TypingActive or TypingStopped.
	Acked []string
	State string
	// Group is the body of a KindGroup envelope, its operations verified.
	Group *GroupBody
	// History is the body of a KindHistory envelope (from this user's own
	// device), its operations verified.
	History *HistoryBody
	// File is the body of a KindFile envelope (filebody.go).
	File *FileBody
}

// Message returns an opened text message as the history of user me keeps it:
// from me (a copy of what another of my devices sent) it is outgoing to To;
// otherwise incoming from From.
func (o *Opened) Message(me string) Message {
	m := Message{ID: o.ID, Peer: o.From, Dir: DirIn, FromDevice: o.FromDevice, Seq: o.Seq, TS: o.TS, Text: o.Text, State: StateReceived}
	if o.From == me {
		m.Peer, m.Dir, m.State = o.To, DirOut, StateSent
	}
	return m
}

// NewMessageID returns a new random envelope id.
func NewMessageID() string {
	b := make([]byte, idBytes)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// CheckText reports whether text can be sent: [ErrEmptyMessage],
// [ErrMessageTooLong] or [ErrMessageNotText] if not.
func CheckText(text string) error {
	switch {
	case len(text) > MaxMessageBytes:
		return fmt.Errorf("%w: %d bytes", ErrMessageTooLong, len(text))
	case !utf8.ValidString(text):
		return ErrMessageNotText
	case strings.TrimSpace(text) == "":
		return ErrEmptyMessage
	}
	return nil
}

// appendField appends b with its length (4 bytes, big-endian) before it.
func appendField(m, b []byte) []byte {
	m = binary.BigEndian.AppendUint32(m, uint32(len(b)))
	return append(m, b...)
}

// headerBytes is the header as the body's associated data and the start of
// the signed message: "parley-im-header" then each of v, kind, id, from,
// from_device, credential, to, seq, ts as a length-prefixed field (numbers as
// 8 bytes big-endian). JSON is not signed: hops may re-encode it.
func (e *Envelope) headerBytes() []byte {
	var n [8]byte
	m := appendField(nil, []byte("parley-im-header"))
	binary.BigEndian.PutUint64(n[:], uint64(e.V))
	m = appendField(m, n[:])
	m = appendField(m, []byte(e.Kind))
	m = appendField(m, []byte(e.ID))
	m = appendField(m, []byte(e.From))
	m = appendField(m, e.FromDevice)
	m = appendField(m, []byte(e.Credential))
	m = appendField(m, []byte(e.To))
	binary.BigEndian.PutUint64(n[:], uint64(e.Seq))
	m = appendField(m, n[:])
	binary.BigEndian.PutUint64(n[:], uint64(e.TS))
	return appendField(m, n[:])
}

// signedMessage is what Sig covers: headerBytes, then Ephemeral, the number of
// Keys (4 bytes), each key's Device and Key, and Ciphertext, each
// length-prefixed.
func (e *Envelope) signedMessage() []byte {
	m := e.headerBytes()
	m = appendField(m, e.Ephemeral)
	m = binary.BigEndian.AppendUint32(m, uint32(len(e.Keys)))
	for _, k := range e.Keys {
		m = appendField(m, k.Device)
		m = appendField(m, k.Key)
	}
	return appendField(m, e.Ciphertext)
}

// Encode returns the envelope's JSON, refusing one over [MaxEnvelopeBytes].
func (e *Envelope) Encode() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("client: encode envelope %s: %w", e.ID, err)
	}
	if len(b) > MaxEnvelopeBytes {
		return nil, fmt.Errorf("client: encode envelope %s: %d bytes, over %d: %w", e.ID, len(b), MaxEnvelopeBytes, ErrBadEnvelope)
	}
	return b, nil
}

// DecodeEnvelope parses untrusted bytes (a data channel message, a supernode
// payload, a mailbox blob) and checks the envelope's form: version, kind,
// sizes, limits. It does not check the signature or the sender: [Open] does.
func DecodeEnvelope(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelopeBytes {
		return nil, fmt.Errorf("client: decode envelope: %d bytes, over %d: %w", len(b), MaxEnvelopeBytes, ErrBadEnvelope)
	}
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, fmt.Errorf("client: decode envelope: %w: %v", ErrBadEnvelope, err)
	}
	if err := e.check(); err != nil {
		return nil, fmt.Errorf("client: decode envelope %.32q: %w", e.ID, err)
	}
	return &e, nil
}

// check checks an envelope's form.
func (e *Envelope) check() error {
	bad := func(what string) error { return fmt.Errorf("%s: %w", what, ErrBadEnvelope) }
	switch {
	case e.V != EnvelopeVersion:
		return fmt.Errorf("version %d, this client knows %d: %w", e.V, EnvelopeVersion, ErrBadEnvelope)
	case !IsKind(e.Kind):
		return bad("kind")
	case !validID(e.ID):
		return bad("id")
	case identity.CheckUser(e.From) != nil:
		return bad("from")
	case identity.CheckUser(e.To) != nil:
		return bad("to")
	case len(e.FromDevice) != ed25519.PublicKeySize:
		return bad("from device")
	case e.Credential == "" || len(e.Credential) > identity.MaxTokenLen:
		return bad("credential")
	case e.Seq < 0 || e.TS < 0:
		return bad("seq or ts")
	case len(e.Ephemeral) != X25519KeySize:
		return bad("ephemeral key")
	case len(e.Keys) == 0 || len(e.Keys) > MaxEnvelopeDevices:
		return bad("number of wrapped keys")
	case len(e.Ciphertext) < AEADOverhead+PadTo || len(e.Ciphertext) > MaxContent+AEADOverhead:
		return bad("ciphertext size")
	case len(e.Sig) != ed25519.SignatureSize:
		return bad("signature")
	}
	for i, k := range e.Keys {
		if len(k.Device) != ed25519.PublicKeySize || len(k.Key) != WrappedKeyLen {
			return bad("wrapped key")
		}
		for _, o := range e.Keys[:i] {
			if SameDevice(o.Device, k.Device) {
				return bad("device wrapped twice")
			}
		}
	}
	return nil
}

// IsKind reports whether kind is an envelope kind this client knows.
func IsKind(kind string) bool {
	return kind == KindMessage || kind == KindReceipt || kind == KindTyping || kind == KindGroup || kind == KindHistory || kind == KindFile
}

// validID reports whether id is 32 lower-case hex characters.
func validID(id string) bool {
	if len(id) != 2*idBytes {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
