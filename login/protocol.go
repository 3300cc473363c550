package login

import (
	"crypto/ed25519"
	"encoding/binary"
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

type registerRequest struct {
	User     string `json:"user"`
	Password string `json:"password"`
}

type loginRequest struct {
	User      string `json:"user"`
	Password  string `json:"password"`
	PublicKey string `json:"public_key"`
}

type refreshRequest struct {
	User         string `json:"user"`
	RefreshToken string `json:"refresh_token"`
	PublicKey    string `json:"public_key"`
}

type passwordRequest struct {
	User        string `json:"user"`
	Password    string `json:"password"`
	NewPassword string `json:"new_password"`
}

// signedRequest is a heartbeat (POST) or leave (DELETE) on
// /api/v1/supernodes. Key and Sig are standard base64.
type signedRequest struct {
	Addr string `json:"addr"`
	Key  string `json:"key"`
	TS   int64  `json:"ts"`
	Sig  string `json:"sig"`
}

type userResponse struct {
	User string `json:"user"`
}

type keyResponse struct {
	Alg       string `json:"alg"`
	PublicKey []byte `json:"public_key"`
}

type heartbeatResponse struct {
	TTL int64 `json:"ttl"`
}

type leaveResponse struct {
	Removed bool `json:"removed"`
}

type supernodesResponse struct {
	Supernodes []SupernodeInfo `json:"supernodes"`
}

type errorResponse struct {
	Error      string `json:"error"`
	RetryAfter int64  `json:"retry_after,omitempty"`
}
