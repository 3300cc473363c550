package im

import (
	"bytes"
	"compress/flate"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"golang.org/x/crypto/hkdf"

	"github.com/parley/parley/internal/identity"
)

// SealMessage seals a text message from s to user to, for the devices of
// to and the sender's own other devices in devices (the sender's own device is
// skipped; records of other users are refused). Every record is verified
// first. Nothing is returned on error.
func SealMessage(s Sender, to string, devices []DeviceRecord, d Draft) (*Envelope, error) {
	id := d.ID
	if id == "" {
		id = NewMessageID()
	}
	if err := CheckText(d.Text); err != nil {
		return nil, fmt.Errorf("client: seal message %s to %s: %w", id, to, err)
	}
	if d.Seq < 1 {
		return nil, fmt.Errorf("client: seal message %s to %s: seq %d: %w", id, to, d.Seq, ErrBadEnvelope)
	}
	t := d.Time
	if t.IsZero() {
		t = time.Now()
	}
	e, err := seal(s, KindMessage, id, to, d.Seq, t, []byte(d.Text), devices)
	if err != nil {
		return nil, fmt.Errorf("client: seal message %s to %s: %w", id, to, err)
	}
	return e, nil
}

// receiptBody is the body of a receipt.
type receiptBody struct {
	State string   `json:"state"`
	Acked []string `json:"acked"`
}

// SealReceipt seals a receipt from s to user to acknowledging the messages
// acked (their ids) as delivered, for the devices in devices (as for
// [SealMessage]).
func SealReceipt(s Sender, to string, devices []DeviceRecord, acked []string, now time.Time) (*Envelope, error) {
	return SealReceiptState(s, to, devices, ReceiptDelivered, acked, now)
}

// SealReceiptState seals a receipt saying state ([ReceiptDelivered] or
// [ReceiptRead]) of the messages acked, as [SealReceipt] does.
func SealReceiptState(s Sender, to string, devices []DeviceRecord, state string, acked []string, now time.Time) (*Envelope, error) {
	id := NewMessageID()
	if state != ReceiptDelivered && state != ReceiptRead {
		return nil, fmt.Errorf("client: seal receipt to %s: state %q: %w", to, state, ErrBadEnvelope)
	}
	if len(acked) == 0 || len(acked) > MaxReceiptIDs {
		return nil, fmt.Errorf("client: seal receipt to %s: %d ids: %w", to, len(acked), ErrBadEnvelope)
	}
	for _, a := range acked {
		if !validID(a) {
			return nil, fmt.Errorf("client: seal receipt to %s: id %q: %w", to, a, ErrBadEnvelope)
		}
	}
	body, err := json.Marshal(receiptBody{State: state, Acked: acked})
	if err != nil {
		return nil, fmt.Errorf("client: seal receipt to %s: %w", to, err)
	}
	e, err := seal(s, KindReceipt, id, to, 0, now, body, devices)
	if err != nil {
		return nil, fmt.Errorf("client: seal receipt to %s: %w", to, err)
	}
	return e, nil
}

// typingBody is the body of a typing envelope.
type typingBody struct {
	State string `json:"state"`
}

// SealTyping seals a typing envelope from s to user to: [TypingActive]
// when active, else [TypingStopped], for the devices in devices (as for
// [SealMessage]; a sender seals it for the peer's devices alone).
func SealTyping(s Sender, to string, devices []DeviceRecord, active bool, now time.Time) (*Envelope, error) {
	state := TypingStopped
	if active {
		state = TypingActive
	}
	body, err := json.Marshal(typingBody{State: state})
	if err != nil {
		return nil, fmt.Errorf("client: seal typing to %s: %w", to, err)
	}
	e, err := seal(s, KindTyping, NewMessageID(), to, 0, now, body, devices)
	if err != nil {
		return nil, fmt.Errorf("client: seal typing to %s: %w", to, err)
	}
	return e, nil
}

func seal(s Sender, kind, id, to string, seq int64, t time.Time, body []byte, devices []DeviceRecord) (*Envelope, error) {
	if len(s.Device) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("device key: %w", ErrBadEnvelope)
	}
	if !validID(id) {
		return nil, fmt.Errorf("id: %w", ErrBadEnvelope)
	}
	if err := identity.CheckUser(to); err != nil {
		return nil, err
	}
	me := s.Device.Public().(ed25519.PublicKey)
	cred, _, _, err := identity.Parse(s.Credential)
	if err != nil {
		return nil, fmt.Errorf("own credential: %w", err)
	}
	if cred.User != s.User || !SameDevice(cred.Key(), me) {
		return nil, fmt.Errorf("own credential is %s's, not this device's: %w", cred.User, ErrEnvelopeSender)
	}
	// The devices to wrap the content key for: verified, to or from's,
	// each once, not this one.
	var recips []DeviceRecord
	toDevices := 0
	for _, d := range devices {
		if err := d.Verify(); err != nil {
			return nil, err
		}
		if d.User != to && d.User != s.User {
			return nil, fmt.Errorf("device of %s: %w", d.User, ErrBadDevice)
		}
		if SameDevice(d.Key, me) || slices.ContainsFunc(recips, func(r DeviceRecord) bool { return SameDevice(r.Key, d.Key) }) {
			continue
		}
		recips = append(recips, d)
		if d.User == to {
			toDevices++
		}
	}
	if toDevices == 0 {
		return nil, fmt.Errorf("%s: %w", to, ErrNoDevices)
	}
	if len(recips) > MaxEnvelopeDevices {
		return nil, fmt.Errorf("%d devices, at most %d: %w", len(recips), MaxEnvelopeDevices, ErrTooManyDevices)
	}

	content, err := frameContent(body)
	if err != nil {
		return nil, err
	}
	if len(content) > MaxContent {
		return nil, fmt.Errorf("%w: a body of %d bytes", ErrMessageTooLong, len(body))
	}
	e := &Envelope{
		V: EnvelopeVersion, Kind: kind, ID: id,
		From: s.User, FromDevice: me, Credential: s.Credential,
		To: to, Seq: seq, TS: t.UnixMilli(),
	}
	ck := make([]byte, contentKeyLen)
	rand.Read(ck)
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	e.Ephemeral = eph.PublicKey().Bytes()
	for _, r := range recips {
		w, err := wrapKey(eph, e.Ephemeral, id, r.Key, r.X25519, ck)
		if err != nil {
			return nil, fmt.Errorf("wrap for a device of %s: %w", r.User, err)
		}
		e.Keys = append(e.Keys, WrappedKey{Device: r.Key, Key: w})
	}
	aead, err := newAEAD(ck)
	if err != nil {
		return nil, err
	}
	e.Ciphertext = aead.Seal(nil, zeroNonce(), content, e.headerBytes())
	e.Sig = identity.SignContext(s.Device, EnvelopeContext, e.signedMessage())

	if _, err := e.Encode(); err != nil {
		if kind == KindMessage || kind == KindGroup {
			return nil, fmt.Errorf("%w: %d bytes of text do not fit one envelope for %d devices", ErrMessageTooLong, len(body), len(recips))
		}
		return nil, err
	}
	return e, nil
}

// frameContent frames and pads body as the plaintext of an envelope:
//
//	encoding (1 byte: 0 raw, 1 deflate) || length (4 bytes, big-endian) ||
//	body as encoded || zero bytes up to a multiple of 64
func frameContent(body []byte) ([]byte, error) {
	enc, data := byte(bodyRaw), body
	if len(body) > CompressOver {
		var buf bytes.Buffer
		w, err := flate.NewWriter(&buf, flate.BestCompression)
		if err != nil {
			return nil, err
		}
		w.Write(body)
		if err := w.Close(); err != nil {
			return nil, err
		}
		if buf.Len() < len(body) {
			enc, data = bodyDeflate, buf.Bytes()
		}
	}
	n := 5 + len(data)
	n += (PadTo - n%PadTo) % PadTo
	c := make([]byte, 5, n)
	c[0] = enc
	binary.BigEndian.PutUint32(c[1:5], uint32(len(data)))
	c = append(c, data...)
	return c[:n], nil
}

// unframeContent is the inverse of frameContent, refusing bodies over max
// bytes once decoded.
func unframeContent(c []byte, max int) ([]byte, error) {
	if len(c) < 5 || len(c)%PadTo != 0 {
		return nil, fmt.Errorf("content framing: %w", ErrBadEnvelope)
	}
	n := binary.BigEndian.Uint32(c[1:5])
	if uint64(n) > uint64(len(c)-5) {
		return nil, fmt.Errorf("content length: %w", ErrBadEnvelope)
	}
	data, pad := c[5:5+n], c[5+n:]
	if len(pad) >= PadTo {
		return nil, fmt.Errorf("content padding: %w", ErrBadEnvelope)
	}
	for _, z := range pad {
		if z != 0 {
			return nil, fmt.Errorf("content padding: %w", ErrBadEnvelope)
		}
	}
	switch c[0] {
	case bodyRaw:
		if len(data) > max {
			return nil, fmt.Errorf("body of %d bytes: %w", len(data), ErrBadEnvelope)
		}
		return data, nil
	case bodyDeflate:
		// Read one byte past the limit, so that a deflate bomb stops there.
		r := flate.NewReader(bytes.NewReader(data))
		defer r.Close()
		out, err := io.ReadAll(io.LimitReader(r, int64(max)+1))
		if err != nil {
			return nil, fmt.Errorf("deflated body: %w", ErrBadEnvelope)
		}
		if len(out) > max {
			return nil, fmt.Errorf("deflated body over %d bytes: %w", max, ErrBadEnvelope)
		}
		return out, nil
	}
	return nil, fmt.Errorf("content encoding %d: %w", c[0], ErrBadEnvelope)
}

// wrapKeyMaterial derives the wrapping key for one device.
func wrapKeyMaterial(shared []byte, id string, epk []byte, device ed25519.PublicKey, x []byte) ([]byte, error) {
	info := make([]byte, 0, len(WrapInfo)+len(id)+len(epk)+len(x)+len(device))
	info = append(info, WrapInfo...)
	info = append(info, id...)
	info = append(info, epk...)
	info = append(info, x...)
	info = append(info, device...)
	k := make([]byte, contentKeyLen)
	if _, err := io.ReadFull(hkdf.New(sha256.New, shared, nil, info), k); err != nil {
		return nil, err
	}
	return k, nil
}

func wrapKey(eph *ecdh.PrivateKey, epk []byte, id string, device ed25519.PublicKey, x, ck []byte) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(x)
	if err != nil {
		return nil, err
	}
	shared, err := eph.ECDH(pub)
	if err != nil {
		return nil, err
	}
	k, err := wrapKeyMaterial(shared, id, epk, device, x)
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(k)
	if err != nil {
		return nil, err
	}
	return aead.Seal(nil, zeroNonce(), ck, nil), nil
}

func unwrapKey(x *ecdh.PrivateKey, epk []byte, id string, device ed25519.PublicKey, w []byte) ([]byte, error) {
	pub, err := ecdh.X25519().NewPublicKey(epk)
	if err != nil {
		return nil, err
	}
	shared, err := x.ECDH(pub)
	if err != nil {
		return nil, err
	}
	k, err := wrapKeyMaterial(shared, id, epk, device, x.PublicKey().Bytes())
	if err != nil {
		return nil, err
	}
	aead, err := newAEAD(k)
	if err != nil {
		return nil, err
	}
	return aead.Open(nil, zeroNonce(), w, nil)
}

// maxTypingBody caps the body of a typing envelope.
const maxTypingBody = 256

// MessageClockSkew is how far in the future an envelope's TS may be.
const MessageClockSkew = 2 * time.Minute

// Open verifies and decrypts an envelope for user me on the device with
// Ed25519 key device and X25519 key x: the envelope is well formed, its
// credential is the login server's (loginKey), was valid at the envelope's
// TS and names From and FromDevice, the signature is FromDevice's, TS is not
// ahead of now by more than [MessageClockSkew], it is to or from me, it
// carries a key for this device, and everything decrypts. A message whose
// credential has since expired still opens (mailbox items wait for days).
func Open(e *Envelope, me string, device ed25519.PrivateKey, x *ecdh.PrivateKey, loginKey ed25519.PublicKey, now time.Time) (*Opened, error) {
	if e == nil {
		return nil, fmt.Errorf("client: open message: %w", ErrBadEnvelope)
	}
	o, err := open(e, me, device, x, loginKey, now)
	if err != nil {
		id := e.ID
		if !validID(id) {
			id = "(bad id)"
		}
		return nil, fmt.Errorf("client: open message %s from %.32q: %w", id, e.From, err)
	}
	return o, nil
}

func open(e *Envelope, me string, device ed25519.PrivateKey, x *ecdh.PrivateKey, loginKey ed25519.PublicKey, now time.Time) (*Opened, error) {
	if len(device) != ed25519.PrivateKeySize || x == nil {
		return nil, errors.New("no device keys")
	}
	if err := e.check(); err != nil {
		return nil, err
	}
	ts := time.UnixMilli(e.TS)
	cred, err := identity.Verify(loginKey, e.Credential, ts)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEnvelopeSender, err)
	}
	if cred.User != e.From || !SameDevice(cred.Key(), e.FromDevice) {
		return nil, fmt.Errorf("credential of %s for another device: %w", cred.User, ErrEnvelopeSender)
	}
	if !identity.VerifyContext(e.FromDevice, EnvelopeContext, e.signedMessage(), e.Sig) {
		return nil, ErrEnvelopeSignature
	}
	if d := ts.Sub(now); d > MessageClockSkew {
		return nil, fmt.Errorf("dated %v ahead of this clock: %w", d.Round(time.Second), ErrBadEnvelope)
	}
	if e.To != me && e.From != me {
		return nil, fmt.Errorf("addressed to %s: %w", e.To, ErrNotForMe)
	}
	mine := device.Public().(ed25519.PublicKey)
	i := slices.IndexFunc(e.Keys, func(k WrappedKey) bool { return SameDevice(k.Device, mine) })
	if i < 0 {
		return nil, ErrNoKeyForDevice
	}
	ck, err := unwrapKey(x, e.Ephemeral, e.ID, mine, e.Keys[i].Key)
	if err != nil {
		return nil, fmt.Errorf("content key: %w", ErrDecrypt)
	}
	aead, err := newAEAD(ck)
	if err != nil {
		return nil, fmt.Errorf("content key: %w", ErrDecrypt)
	}
	content, err := aead.Open(nil, zeroNonce(), e.Ciphertext, e.headerBytes())
	if err != nil {
		return nil, fmt.Errorf("body: %w", ErrDecrypt)
	}
	o := &Opened{Kind: e.Kind, ID: e.ID, From: e.From, FromDevice: e.FromDevice, To: e.To, Seq: e.Seq, TS: e.TS}
	switch e.Kind {
	case KindMessage:
		body, err := unframeContent(content, MaxMessageBytes)
		if err != nil {
			return nil, err
		}
		if err := CheckText(string(body)); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadEnvelope, err)
		}
		if e.Seq < 1 {
			return nil, fmt.Errorf("seq %d: %w", e.Seq, ErrBadEnvelope)
		}
		o.Text = string(body)
	case KindReceipt:
		body, err := unframeContent(content, MaxMessageBytes)
		if err != nil {
			return nil, err
		}
		var r receiptBody
		if err := json.Unmarshal(body, &r); err != nil {
			return nil, fmt.Errorf("receipt: %w", ErrBadEnvelope)
		}
		if (r.State != ReceiptDelivered && r.State != ReceiptRead) || len(r.Acked) == 0 || len(r.Acked) > MaxReceiptIDs || !allValidIDs(r.Acked) {
			return nil, fmt.Errorf("receipt: %w", ErrBadEnvelope)
		}
		o.Acked, o.State = r.Acked, r.State
	case KindHistory:
		h, err := openHistory(content, e.From, e.To, me, func(op *GroupOp) error { return VerifyGroupOp(op, loginKey) })
		if err != nil {
			return nil, err
		}
		o.History = h
	case KindGroup:
		g, err := openGroup(content, func(op *GroupOp) error { return VerifyGroupOp(op, loginKey) })
		if err != nil {
			return nil, err
		}
		o.Group = g
	case KindFile:
		if o.File, err = openFile(content); err != nil {
			return nil, err
		}
	case KindTyping:
		body, err := unframeContent(content, maxTypingBody)
		if err != nil {
			return nil, err
		}
		var r typingBody
		if err := json.Unmarshal(body, &r); err != nil || (r.State != TypingActive && r.State != TypingStopped) {
			return nil, fmt.Errorf("typing: %w", ErrBadEnvelope)
		}
		o.State = r.State
	}
	return o, nil
}

func allValidIDs(ids []string) bool {
	for _, id := range ids {
		if !validID(id) {
			return false
		}
	}
	return true
}

// zeroNonce is the nonce of every seal: each key (a content key, a wrapping
// key) seals exactly one plaintext, so it never repeats under a key.
func zeroNonce() []byte { return make([]byte, 12) }

// newAEAD returns AES-256-GCM under a 32-byte key.
func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}
