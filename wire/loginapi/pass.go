package loginapi

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/parley/parley/internal/identity"
)

// PassContext is the signature context of a Pass (see identity.SignContext).
const PassContext = "parley-pass-v1"

// MaxPassBytes caps a pass's encoded form: the value of the Parley-Pass header
// (base64url of its JSON), and a mailbox item's "pass" object. A pass with
// names of 32 characters takes about 320 bytes.
const MaxPassBytes = 1024

// PassHeader carries a pass, in its [Pass.Encode] form, on GET
// /api/v1/users/{name}/devices.
const PassHeader = "Parley-Pass"

// Pass lets whoever holds it reach User — read User's device list and post to
// User's mailbox — as if they were User's contact. By, an accepted contact of
// User or User themselves, signed it with one of By's registered devices
// (Device). Group chats
// use it: whoever adds a member signs the member's pass, and it reaches the
// other members inside the group's encrypted membership log.
//
// A pass is a bearer capability: it names neither its holder nor an expiry.
// The login server admits it while By and User are accepted contacts (or By
// is User) and Device is a registered device of By; removing the contact, or the device,
// revokes every pass By signed for User with it.
//
// On the wire (the header's JSON, a mailbox item's "pass"):
//
//	{"user": "bob", "by": "alice", "device": "<32 bytes, base64>", "sig": "<64 bytes, base64>"}
//
// with device and sig in standard base64 with padding, as elsewhere in this
// package.
type Pass struct {
	// User is the user the pass reaches (a valid user name).
	User string `json:"user"`
	// By is the user who signed it, an accepted contact of User or User
	// (a valid user name).
	By string `json:"by"`
	// Device is the Ed25519 key of the device of By that signed it.
	Device ed25519.PublicKey `json:"device"`
	// Sig is identity.SignContext(device key, PassContext,
	// PassMessage(User, By)).
	Sig []byte `json:"sig"`
}

// PassMessage returns the bytes a pass's device signs, with PassContext:
//
//	user || 0x00 || by
//
// User names hold no 0x00, so the message reads back unambiguously.
func PassMessage(user, by string) []byte {
	m := make([]byte, 0, len(user)+1+len(by))
	m = append(m, user...)
	m = append(m, 0)
	return append(m, by...)
}

// NewPass returns the pass that lets its holder reach user, signed by user's
// contact by with key, the private key of one of by's registered devices.
// It does not check the names: [Pass.Verify] does.
func NewPass(user, by string, key ed25519.PrivateKey) Pass {
	return Pass{
		User:   user,
		By:     by,
		Device: key.Public().(ed25519.PublicKey),
		Sig:    identity.SignContext(key, PassContext, PassMessage(user, by)),
	}
}

// Verify checks that p is well formed (User and By valid user names, a
// 32-byte Device, a 64-byte Sig) and that Device signed it. Errors wrap
// ErrBadPass. It does not check that Device is By's or that By is User's
// contact: the login server does, when the pass is used.
func (p Pass) Verify() error {
	for _, f := range []struct{ name, v string }{{"user", p.User}, {"by", p.By}} {
		if len(f.v) > identity.MaxUserLen {
			return fmt.Errorf("%w: %s: %v: must be 1 to %d characters", ErrBadPass, f.name, identity.ErrBadUser, identity.MaxUserLen)
		}
		if err := identity.CheckUser(f.v); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrBadPass, f.name, err)
		}
	}
	if len(p.Device) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: device is %d bytes, want %d", ErrBadPass, len(p.Device), ed25519.PublicKeySize)
	}
	if len(p.Sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: sig is %d bytes, want %d", ErrBadPass, len(p.Sig), ed25519.SignatureSize)
	}
	if !identity.VerifyContext(p.Device, PassContext, PassMessage(p.User, p.By), p.Sig) {
		return fmt.Errorf("%w: %v (context %s over user and by)", ErrBadPass, ErrBadSignature, PassContext)
	}
	return nil
}

// Encode returns p's header form: its JSON in base64url without padding.
func (p Pass) Encode() string {
	b, err := json.Marshal(p)
	if err != nil {
		// A struct of strings and byte slices always marshals.
		panic("loginapi: encode pass: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParsePass parses a pass in its header form ([Pass.Encode]) from untrusted
// input of at most MaxPassBytes and verifies it ([Pass.Verify]). Errors wrap
// ErrBadPass and do not quote the input.
func ParsePass(s string) (Pass, error) {
	if len(s) > MaxPassBytes {
		return Pass{}, fmt.Errorf("%w: %d bytes, at most %d", ErrBadPass, len(s), MaxPassBytes)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return Pass{}, fmt.Errorf("%w: not base64url without padding", ErrBadPass)
	}
	return UnmarshalPass(b)
}

// UnmarshalPass decodes a pass's JSON (a mailbox item's "pass") from
// untrusted input of at most MaxPassBytes and verifies it ([Pass.Verify]).
// Errors wrap ErrBadPass and do not quote the input.
func UnmarshalPass(b []byte) (Pass, error) {
	if len(b) > MaxPassBytes {
		return Pass{}, fmt.Errorf("%w: %d bytes, at most %d", ErrBadPass, len(b), MaxPassBytes)
	}
	var p Pass
	if err := json.Unmarshal(b, &p); err != nil {
		return Pass{}, fmt.Errorf("%w: not a JSON object with user, by, device and sig (device and sig in standard base64)", ErrBadPass)
	}
	if err := p.Verify(); err != nil {
		return Pass{}, err
	}
	return p, nil
}
