// Package identity holds what every Parley part agrees on about who somebody is:
// user names, Ed25519 key pairs, and the short-lived credential the login server signs.
//
// A credential token is two base64url (unpadded) parts joined by a dot:
//
//	base64url(JSON payload) "." base64url(Ed25519 signature over the JSON bytes)
//
// The payload is a [Credential]: version 1, the algorithm name "Ed25519", the user name,
// the user's 32-byte public key, and the validity window in Unix seconds. Tokens are at
// most [MaxTokenLen] bytes. Anyone holding the login server's public key checks a token
// offline with [Verify]; the login server is not on the path of presence or calls.
//
// Signatures made by users (attach challenges, DTLS fingerprints, messages) use
// [SignContext], which prefixes a context string so that a signature made for one
// purpose can never be replayed as another.
package identity

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Version is the credential format version.
const Version = 1

// Alg names the signature algorithm of user keys and credentials.
const Alg = "Ed25519"

// MaxTokenLen caps the length of an encoded credential token.
const MaxTokenLen = 1024

// MaxUserLen is the longest user name.
const MaxUserLen = 32

// Skew is the clock difference tolerated when checking validity windows.
const Skew = 60 * time.Second

// Credential is the payload the login server signs at login.
//
//   - V: format version, 1.
//   - Alg: "Ed25519", the algorithm of PublicKey (the browser client names it too).
//   - User: the user name (see [CheckUser]).
//   - PublicKey: the user's 32-byte Ed25519 public key, made on their device.
//   - NotBefore, Expires: the validity window, Unix seconds.
type Credential struct {
	V         int    `json:"v"`
	Alg       string `json:"alg"`
	User      string `json:"user"`
	PublicKey []byte `json:"pub"`
	NotBefore int64  `json:"nbf"`
	Expires   int64  `json:"exp"`
}

// ExpiresAt returns the end of the validity window.
func (c Credential) ExpiresAt() time.Time { return time.Unix(c.Expires, 0) }

// Key returns the credential's public key.
func (c Credential) Key() ed25519.PublicKey { return ed25519.PublicKey(c.PublicKey) }

var b64 = base64.RawURLEncoding

// Issue signs c with the login server's private key and returns the token.
func Issue(priv ed25519.PrivateKey, c Credential) (string, error) {
	if c.V == 0 {
		c.V = Version
	}
	if c.Alg == "" {
		c.Alg = Alg
	}
	if err := CheckUser(c.User); err != nil {
		return "", fmt.Errorf("identity: issue: %w", err)
	}
	if len(c.PublicKey) != ed25519.PublicKeySize {
		return "", fmt.Errorf("identity: issue: public key: %w", ErrMalformed)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("identity: issue: %w", err)
	}
	sig := ed25519.Sign(priv, payload)
	return b64.EncodeToString(payload) + "." + b64.EncodeToString(sig), nil
}

// Parse decodes a token without checking its signature or window. Use it only to
// read a credential one already trusts (one's own); otherwise use [Verify].
func Parse(token string) (Credential, []byte, []byte, error) {
	var c Credential
	if len(token) > MaxTokenLen {
		return c, nil, nil, fmt.Errorf("identity: parse: token too long: %w", ErrMalformed)
	}
	p, s, ok := strings.Cut(token, ".")
	if !ok {
		return c, nil, nil, fmt.Errorf("identity: parse: %w", ErrMalformed)
	}
	payload, err := b64.DecodeString(p)
	if err != nil {
		return c, nil, nil, fmt.Errorf("identity: parse payload: %w", ErrMalformed)
	}
	sig, err := b64.DecodeString(s)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return c, nil, nil, fmt.Errorf("identity: parse signature: %w", ErrMalformed)
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, nil, nil, fmt.Errorf("identity: parse payload: %w", ErrMalformed)
	}
	if c.V != Version || c.Alg != Alg || len(c.PublicKey) != ed25519.PublicKeySize {
		return c, nil, nil, fmt.Errorf("identity: parse: version %d alg %q: %w", c.V, c.Alg, ErrMalformed)
	}
	if err := CheckUser(c.User); err != nil {
		return c, nil, nil, fmt.Errorf("identity: parse: %w", err)
	}
	return c, payload, sig, nil
}

// Verify checks token against the login server's public key and the time now, and
// returns the credential it carries.
func Verify(loginKey ed25519.PublicKey, token string, now time.Time) (Credential, error) {
	c, payload, sig, err := Parse(token)
	if err != nil {
		return Credential{}, err
	}
	if len(loginKey) != ed25519.PublicKeySize || !ed25519.Verify(loginKey, payload, sig) {
		return Credential{}, fmt.Errorf("identity: verify %q: %w", c.User, ErrBadSignature)
	}
	if now.Add(Skew).Before(time.Unix(c.NotBefore, 0)) {
		return Credential{}, fmt.Errorf("identity: verify %q: %w", c.User, ErrNotYetValid)
	}
	if !now.Add(-Skew).Before(time.Unix(c.Expires, 0)) {
		return Credential{}, fmt.Errorf("identity: verify %q: %w", c.User, ErrExpired)
	}
	return c, nil
}

// CheckUser reports whether name is a valid user name: 1 to 32 characters of
// lower-case ASCII letters, digits, '.', '_' and '-', starting with a letter.
func CheckUser(name string) error {
	if name == "" || len(name) > MaxUserLen {
		return fmt.Errorf("%w: %q must be 1 to %d characters", ErrBadUser, name, MaxUserLen)
	}
	for i := 0; i < len(name); i++ {
		ch := name[i]
		switch {
		case ch >= 'a' && ch <= 'z':
		case i > 0 && (ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-'):
		default:
			return fmt.Errorf("%w: %q: use a-z, 0-9, '.', '_' and '-', starting with a letter", ErrBadUser, name)
		}
	}
	return nil
}

// SignContext signs msg for the purpose named by ctx (for example "parley-attach-v1").
func SignContext(priv ed25519.PrivateKey, ctx string, msg []byte) []byte {
	return ed25519.Sign(priv, contextMessage(ctx, msg))
}

// VerifyContext checks a signature made by [SignContext].
func VerifyContext(pub ed25519.PublicKey, ctx string, msg, sig []byte) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub, contextMessage(ctx, msg), sig)
}

func contextMessage(ctx string, msg []byte) []byte {
	b := make([]byte, 0, len(ctx)+1+len(msg))
	b = append(b, ctx...)
	b = append(b, 0)
	return append(b, msg...)
}
