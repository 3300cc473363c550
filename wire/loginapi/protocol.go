package loginapi

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/parley/parley/internal/identity"
)

// Signature contexts of the supernode requests (see identity.SignContext).
const (
	// HeartbeatContext signs POST /api/v1/supernodes.
	HeartbeatContext = "parley-heartbeat-v1"
	// LeaveContext signs DELETE /api/v1/supernodes.
	LeaveContext = "parley-leave-v1"
)

// SupernodeMessage returns the bytes a supernode signs, with its node key and
// HeartbeatContext or LeaveContext, for a heartbeat or a leave:
//
//	addr || 0x00 || key (32 bytes) || ts (8 bytes, big-endian, two's complement)
//
// addr is the "addr" field exactly as sent. key and ts have fixed lengths, so
// the message reads back unambiguously from its end.
func SupernodeMessage(addr string, key ed25519.PublicKey, ts int64) []byte {
	m := make([]byte, 0, len(addr)+1+len(key)+8)
	m = append(m, addr...)
	m = append(m, 0)
	m = append(m, key...)
	return binary.BigEndian.AppendUint64(m, uint64(ts))
}

// LoginResponse is the answer to login and refresh.
type LoginResponse struct {
	// User is the account name.
	User string `json:"user"`
	// Credential is the signed credential token (see package identity).
	Credential string `json:"credential"`
	// Expires is the end of the credential's validity, Unix seconds.
	Expires int64 `json:"expires"`
	// RefreshToken renews the credential without the password (see
	// [Client.Refresh]). It is a secret: store it like a password.
	RefreshToken string `json:"refresh_token"`
	// RefreshExpires is the end of the refresh token's validity, Unix
	// seconds; each refresh moves it forward.
	RefreshExpires int64 `json:"refresh_expires"`
	// LoginKey is the login server's Ed25519 public key (on the wire: base64,
	// standard alphabet, padded).
	LoginKey []byte `json:"login_key"`
	// Supernodes are the live supernodes, freshest first.
	Supernodes []SupernodeInfo `json:"supernodes"`
}

// SupernodeInfo is one entry of the supernode bootstrap list. The login
// server lists an entry only after dialling Addr back and seeing it answer
// with Key (package internal/nodeid).
type SupernodeInfo struct {
	// Addr is the supernode's websocket URL, ws:// or wss://.
	Addr string `json:"addr"`
	// LastSeen is the time of its last heartbeat, Unix seconds.
	LastSeen int64 `json:"last_seen"`
	// Key is the supernode's Ed25519 node key (on the wire: base64, standard
	// alphabet, padded), proved by the login server's last dial-back.
	Key ed25519.PublicKey `json:"key"`
}

type RegisterRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

type LoginRequest struct {
	User      string `json:"user"`
	Password  string `json:"password"`
	PublicKey string `json:"public_key"`
}

type RefreshRequest struct {
	User         string `json:"user"`
	RefreshToken string `json:"refresh_token"`
	PublicKey    string `json:"public_key"`
}

type PasswordRequest struct {
	User        string `json:"user"`
	Password    string `json:"password"`
	NewPassword string `json:"new_password"`
}

// signedRequest is a heartbeat (POST) or leave (DELETE) on
// /api/v1/supernodes. Key and Sig are standard base64.
type SignedRequest struct {
	Addr string `json:"addr"`
	Key  string `json:"key"`
	TS   int64  `json:"ts"`
	Sig  string `json:"sig"`
}

type UserResponse struct {
	User string `json:"user"`
}

type KeyResponse struct {
	Alg       string `json:"alg"`
	PublicKey []byte `json:"public_key"`
}

type HeartbeatResponse struct {
	TTL int64 `json:"ttl"`
}

type LeaveResponse struct {
	Removed bool `json:"removed"`
}

type SupernodesResponse struct {
	Supernodes []SupernodeInfo `json:"supernodes"`
}

type ErrorResponse struct {
	Error      string `json:"error"`
	RetryAfter int64  `json:"retry_after,omitempty"`
	// Item is the index of the refused item of a mailbox post.
	Item *int `json:"item,omitempty"`
}

// Limits and names of the user endpoints (devices, mailbox, contacts, status,
// search). Per-user quotas and rate limits are in [Config].
const (
	// DeviceContext signs PUT /api/v1/devices/self (see [DeviceMessage]).
	DeviceContext = "parley-device-v1"
	// X25519KeySize is the length of a device's X25519 public key.
	X25519KeySize = 32
	// MaxMessageIDBytes caps a mailbox item's sender-chosen id (1 to 64
	// bytes of printable UTF-8, no control characters).
	MaxMessageIDBytes = 64
	// MaxBlobBytes caps one mailbox item's blob, in its compact form.
	MaxBlobBytes = 100 << 10
	// MaxMailboxItems caps the items of one POST /api/v1/mailbox.
	MaxMailboxItems = 64
	// MaxMailboxBodyBytes caps the body of POST /api/v1/mailbox (the other
	// endpoints take MaxBodyBytes).
	MaxMailboxBodyBytes = 8 << 20
	// MaxMailboxFetch caps, and DefaultMailboxFetch is the default of, the
	// limit of GET /api/v1/mailbox.
	MaxMailboxFetch     = 100
	DefaultMailboxFetch = 32
	// MaxMailboxFetchBytes caps the blob bytes of one GET /api/v1/mailbox
	// answer (at least one item is always returned).
	MaxMailboxFetchBytes = 1 << 20
	// MaxAckSeqs caps the seqs of one POST /api/v1/mailbox/ack.
	MaxAckSeqs = 1000
	// MaxSearchResults caps, and is the default of, the limit of GET
	// /api/v1/users?prefix=.
	MaxSearchResults = 20
)

// Contact states, from the point of view of the user asking.
const (
	// ContactAccepted: both sides agreed.
	ContactAccepted = "accepted"
	// ContactRequested: I asked them; they have not answered.
	ContactRequested = "requested"
	// ContactPending: they asked me; I have not answered.
	ContactPending = "pending"
	// ContactNone: no relation (only in answers to decline).
	ContactNone = "none"
)

// DeviceMessage returns the bytes a device signs, with the Ed25519 key of its
// credential and DeviceContext, to register its X25519 key:
//
//	user || 0x00 || key (32 bytes) || x25519 (32 bytes)
//
// The signature binds the encryption key to the user and device key, so a
// sender can check every entry of GET /api/v1/users/{name}/devices itself:
// the login server cannot forge one.
func DeviceMessage(user string, key ed25519.PublicKey, x25519 []byte) []byte {
	m := make([]byte, 0, len(user)+1+len(key)+len(x25519))
	m = append(m, user...)
	m = append(m, 0)
	m = append(m, key...)
	return append(m, x25519...)
}

// Device is one registered device of a user.
type Device struct {
	// Key is the device's Ed25519 public key, the one in its credential
	// (base64 on the wire). It names the device's mailbox.
	Key ed25519.PublicKey `json:"key"`
	// X25519 is the device's 32-byte X25519 public key for end-to-end
	// encryption (base64 on the wire).
	X25519 []byte `json:"x25519"`
	// Sig is identity.SignContext(device key, DeviceContext,
	// DeviceMessage(user, Key, X25519)) (base64 on the wire).
	Sig []byte `json:"sig"`
	// LastSeen is the device's last registration or mailbox fetch, Unix
	// seconds.
	LastSeen int64 `json:"last_seen"`
}

// Verify reports whether d's signature binds its keys to user. Senders call
// it on every entry before encrypting to it ([Client.Devices] does).
func (d Device) Verify(user string) bool {
	return len(d.Key) == ed25519.PublicKeySize && len(d.X25519) == X25519KeySize &&
		identity.VerifyContext(d.Key, DeviceContext, DeviceMessage(user, d.Key, d.X25519), d.Sig)
}

// MailboxItem is one item to store in a recipient device's mailbox (POST
// /api/v1/mailbox). The server sees only routing and an opaque blob.
type MailboxItem struct {
	// ToUser is the recipient: the sender itself, an accepted contact, or
	// a user Pass admits the sender to.
	ToUser string `json:"to_user"`
	// ToDevice is the Ed25519 key of one registered device of ToUser
	// (base64 on the wire).
	ToDevice ed25519.PublicKey `json:"to_device"`
	// ID is chosen by the sender, 1 to MaxMessageIDBytes bytes of printable
	// UTF-8. (ToUser, ToDevice, sender, ID) is stored once: a resend is a
	// no-op while the item is in the mailbox.
	ID string `json:"id"`
	// Blob is the encrypted, signed message: any JSON value but null, at
	// most MaxBlobBytes in compact form. It is stored compacted (as by
	// json.Compact) and returned byte for byte; sign what is inside it, not
	// its whitespace.
	Blob json.RawMessage `json:"blob"`
	// Pass, when ToUser is not the sender's accepted contact, admits the
	// sender to ToUser's mailbox for this item: a [Pass] for ToUser (see
	// there). It must verify even when it is not needed. Omitted when nil.
	Pass *Pass `json:"pass,omitempty"`
}

// MailboxEntry is one item of the caller device's mailbox (GET
// /api/v1/mailbox).
type MailboxEntry struct {
	// Seq orders the mailbox (oldest first) and names the item for ack.
	Seq int64 `json:"seq"`
	// FromUser and FromDevice are the sender as its credential named it
	// (FromDevice base64 on the wire).
	FromUser   string            `json:"from_user"`
	FromDevice ed25519.PublicKey `json:"from_device"`
	// ID is the sender's id for the item.
	ID string `json:"id"`
	// Blob is the blob as stored (compact JSON).
	Blob json.RawMessage `json:"blob"`
	// Created is when the item was stored, Unix seconds.
	Created int64 `json:"created"`
}

// MailboxResult is the answer to POST /api/v1/mailbox.
type MailboxResult struct {
	// Stored counts the items newly stored.
	Stored int `json:"stored"`
	// Duplicates counts the items already in their mailbox (resends).
	Duplicates int `json:"duplicates"`
}

// Contact is one entry of GET /api/v1/contacts, or the answer to a contact
// request, accept or decline.
type Contact struct {
	// User is the other user.
	User string `json:"user"`
	// State is ContactAccepted, ContactRequested or ContactPending
	// (ContactNone after a decline).
	State string `json:"state"`
	// Status is, for accepted contacts in GET /api/v1/contacts, their stored
	// status: online, away, busy, or offline for invisible users. Clients
	// combine it with live presence. Empty otherwise.
	Status string `json:"status,omitempty"`
}

// MyDevice is one entry of GET /api/v1/devices: a device of the caller's
// own user. The login server knows a device by its Ed25519 key from two
// sources: a password login or refresh with the key (which lasts as long as
// the refresh token bound to it), and a registration of its X25519 key (PUT
// /api/v1/devices/self).
type MyDevice struct {
	// Key is the device's Ed25519 public key (base64 on the wire; in the
	// path of DELETE /api/v1/devices/{key} it is base64url, see
	// [DeviceKeyString]).
	Key ed25519.PublicKey `json:"key"`
	// Registered is when the login server first knew the key (its first
	// login, or its X25519 registration), Unix seconds.
	Registered int64 `json:"registered"`
	// LastSeen is the device's last login, refresh, registration or
	// mailbox fetch, Unix seconds.
	LastSeen int64 `json:"last_seen"`
	// Encryption: the device has registered an X25519 key, so messages
	// are sealed to it and wait in its mailbox. A device without one
	// (logged in, never registered, or dropped by the device cap) gets no
	// messages.
	Encryption bool `json:"encryption"`
	// Self: this is the device of the credential that asked.
	Self bool `json:"self"`
}

// MyDevicesResponse is the answer to GET /api/v1/devices.
type MyDevicesResponse struct {
	Devices []MyDevice `json:"devices"`
}

// DeviceKeyString is a device key as DELETE /api/v1/devices/{key} takes it
// and the CLI shows it: base64url without padding (43 characters).
func DeviceKeyString(key ed25519.PublicKey) string {
	return base64.RawURLEncoding.EncodeToString(key)
}

// ParseDeviceKey reads a device key written by [DeviceKeyString].
func ParseDeviceKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("device key must be a 32-byte Ed25519 key in base64url without padding (%d characters): %w",
			base64.RawURLEncoding.EncodedLen(ed25519.PublicKeySize), ErrBadRequest)
	}
	return ed25519.PublicKey(b), nil
}

type DeviceRequest struct {
	X25519 string `json:"x25519"`
	Sig    string `json:"sig"`
}

type DevicesResponse struct {
	User    string   `json:"user"`
	Devices []Device `json:"devices"`
}

type RemovedResponse struct {
	Removed int `json:"removed"`
}

// MailboxItemWire is a MailboxItem as the server decodes it (to_device and
// pass checked by hand for a clear message naming the item: pass with
// [UnmarshalPass]; absent or null means none).
type MailboxItemWire struct {
	ToUser   string          `json:"to_user"`
	ToDevice string          `json:"to_device"`
	ID       string          `json:"id"`
	Blob     json.RawMessage `json:"blob"`
	Pass     json.RawMessage `json:"pass,omitempty"`
}

type MailboxPostRequest struct {
	Items []MailboxItemWire `json:"items"`
}

type MailboxClientRequest struct {
	Items []MailboxItem `json:"items"`
}

type MailboxResponse struct {
	Items []MailboxEntry `json:"items"`
	// More: further items wait (the answer hit its limit or byte cap).
	More bool `json:"more"`
}

type AckRequest struct {
	Seqs []int64 `json:"seqs"`
}

type ContactsResponse struct {
	Contacts []Contact `json:"contacts"`
}

type StatusBody struct {
	Status string `json:"status"`
}

type SearchResponse struct {
	Users []string `json:"users"`
}
