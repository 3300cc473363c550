package im

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"fmt"

	"github.com/parley/parley/internal/identity"
)

// DeviceContext is the signature context of device records.
const DeviceContext = "parley-device-v1"

// X25519KeySize is the length of an X25519 public or private key.
const X25519KeySize = 32

// DeviceRecord binds a device's X25519 encryption key to its user and its
// Ed25519 device key (the key of the device's credentials). On the wire (the
// login server's device list) the byte fields are standard base64.
//
//   - User: the user name.
//   - Key: the device's Ed25519 public key.
//   - X25519: the device's X25519 public key, 32 bytes.
//   - Sig: identity.SignContext(device key, [DeviceContext],
//     user || 0x00 || Key || X25519).
type DeviceRecord struct {
	User   string            `json:"user"`
	Key    ed25519.PublicKey `json:"key"`
	X25519 []byte            `json:"x25519"`
	Sig    []byte            `json:"sig"`
}

// NewDeviceRecord signs the record of the device with Ed25519 key key and
// X25519 key x for user.
func NewDeviceRecord(user string, key ed25519.PrivateKey, x *ecdh.PrivateKey) DeviceRecord {
	pub := key.Public().(ed25519.PublicKey)
	xpub := x.PublicKey().Bytes()
	return DeviceRecord{
		User:   user,
		Key:    pub,
		X25519: xpub,
		Sig:    identity.SignContext(key, DeviceContext, deviceMessage(user, pub, xpub)),
	}
}

// deviceMessage is what a device record's signature covers. Key and X25519
// have fixed lengths, so it reads back unambiguously from its end.
func deviceMessage(user string, key ed25519.PublicKey, x []byte) []byte {
	m := make([]byte, 0, len(user)+1+len(key)+len(x))
	m = append(m, user...)
	m = append(m, 0)
	m = append(m, key...)
	return append(m, x...)
}

// Verify checks that the record is well formed and signed by its own device
// key. A sender calls it on every record before encrypting to it; it says
// nothing about whether the device key belongs to User — that is what the
// credential in each message from the device proves.
func (d DeviceRecord) Verify() error {
	if err := identity.CheckUser(d.User); err != nil {
		return fmt.Errorf("client: device record: %w: %w", ErrBadDevice, err)
	}
	if len(d.Key) != ed25519.PublicKeySize || len(d.X25519) != X25519KeySize {
		return fmt.Errorf("client: device record of %s: key sizes: %w", d.User, ErrBadDevice)
	}
	if _, err := ecdh.X25519().NewPublicKey(d.X25519); err != nil {
		return fmt.Errorf("client: device record of %s: %w", d.User, ErrBadDevice)
	}
	if !identity.VerifyContext(d.Key, DeviceContext, deviceMessage(d.User, d.Key, d.X25519), d.Sig) {
		return fmt.Errorf("client: device record of %s: signature: %w", d.User, ErrBadDevice)
	}
	return nil
}

// SameDevice reports whether a and b are the same device key.
func SameDevice(a, b ed25519.PublicKey) bool { return bytes.Equal(a, b) }
