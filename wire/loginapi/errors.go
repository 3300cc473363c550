package loginapi

import (
	"errors"
	"time"
)

// Sentinel errors of the login API. The server wraps them with the operation;
// the [Client] returns them (inside an [*APIError] for server answers) so that
// callers can test with errors.Is and print one clear line.
var (
	// ErrUserExists: registration of a name that is taken (HTTP 409).
	ErrUserExists = errors.New("user already exists")
	// ErrUnknownUser: no account has this name (HTTP 404 on the user
	// endpoints and GET /api/v1/users/{name}). Login and password change do
	// not return it: they answer an unknown user exactly like a wrong
	// password (ErrWrongPassword), so that they do not reveal which names
	// exist.
	ErrUnknownUser = errors.New("unknown user")
	// ErrWrongPassword: the user name or the password is wrong (HTTP 401 on
	// login and password change; the server does not say which, and its
	// message is "wrong user name or password").
	ErrWrongPassword = errors.New("wrong password")
	// ErrRateLimited: too many failed logins from the client address, or
	// for the user from that address, in the failure window (HTTP 429); the
	// client also returns it for the other 429s (too many registrations,
	// name lookups, searches or contact requests), whose message says
	// which.
	ErrRateLimited = errors.New("too many failed logins")
	// ErrUnauthorized: a user endpoint got no credential, or one that does
	// not verify with the login server's key or has expired (HTTP 401).
	ErrUnauthorized = errors.New("missing or invalid credential")
	// ErrNotContact: the user is neither the caller nor an accepted contact
	// of the caller, and no [Pass] sent with the request admits the caller
	// (HTTP 403 on mailbox post and device lists).
	ErrNotContact = errors.New("not a contact")
	// ErrNoRequest: accept without a pending contact request from that user
	// (HTTP 409).
	ErrNoRequest = errors.New("no contact request from this user")
	// ErrUnknownDevice: a mailbox item's to_device is not a registered
	// device of to_user (HTTP 400; the client returns it inside
	// ErrBadRequest), or DELETE /api/v1/devices/{key} names no device of
	// the caller's (HTTP 404, also for another user's device).
	ErrUnknownDevice = errors.New("not a registered device")
	// ErrDeviceRemoved: the device key was removed from the user's devices
	// (DELETE /api/v1/devices/{key}) and is revoked: refresh refuses to
	// renew a credential for it, and the user endpoints refuse a credential
	// naming it (HTTP 401, message starting "device removed"), until the
	// user logs in with the password on that device. The client's error
	// also matches ErrUnauthorized, and not ErrInvalidRefresh: a client
	// that falls back to a password login on ErrInvalidRefresh says this
	// instead.
	ErrDeviceRemoved = errors.New("device removed")
	// ErrQuota: a per-user or per-device quota is full: a device's mailbox
	// bytes, the caller's or the other user's contact list, or the bytes of
	// the caller's stored files (HTTP 507).
	ErrQuota = errors.New("quota exceeded")
	// ErrUnknownFile: no stored file has this id, or the caller is neither
	// its owner nor a recipient who still has a claim on it; for a chunk
	// upload, the caller owns no such file (HTTP 404 on the file store
	// endpoints: they do not tell whether another user's file exists).
	ErrUnknownFile = errors.New("no such stored file")
	// ErrNoChunk: the stored file exists but the chunk asked for has not
	// been uploaded (HTTP 404, message starting "chunk not stored").
	ErrNoChunk = errors.New("chunk not stored")
	// ErrFileExists: a stored file's id is taken by another user's file, or
	// by the caller's own with another size (HTTP 409 on POST
	// /api/v1/files).
	ErrFileExists = errors.New("file id already in use")
	// ErrTooLarge: a stored file is larger than the server takes
	// (Config.MaxStoredFile), or a request body is larger than its cap
	// (HTTP 413 on the file store endpoints; the client's error also
	// matches ErrBadRequest).
	ErrTooLarge = errors.New("too large")
	// ErrInvalidRefresh: the refresh token is unknown, expired, revoked or
	// belongs to another user (HTTP 401 on refresh).
	ErrInvalidRefresh = errors.New("invalid refresh token")
	// ErrBadRequest: the server refused the request as malformed (HTTP 400,
	// 413, 415); the server's message says why. A 413 of the file store
	// endpoints is ErrTooLarge, which matches ErrBadRequest too.
	ErrBadRequest = errors.New("bad request")
	// ErrSupernodeListFull: the supernode list already holds the maximum
	// number of live entries (HTTP 503 on heartbeat).
	ErrSupernodeListFull = errors.New("supernode list is full")
	// ErrDialBack: the login server dialled the heartbeat's address back
	// (GET /v1/identify, package internal/nodeid) and it did not prove the
	// heartbeat's node key: no answer, another key, another name or a bad
	// signature (HTTP 422 on heartbeat). The address is not listed.
	ErrDialBack = errors.New("dial-back failed")
	// ErrDialBackDenied: the heartbeat's address is, or resolves to, an IP
	// the login server will not dial (loopback, private, link-local and other
	// special-purpose ranges unless Config.DialBackAllow admits them) (HTTP
	// 403 on heartbeat).
	ErrDialBackDenied = errors.New("address not allowed for dial-back")
	// ErrDialBackLimited: too many dial-backs were asked for from the client
	// address in Config.DialBackWindow (HTTP 429 on heartbeat; see
	// [APIError.RetryAfter]).
	ErrDialBackLimited = errors.New("too many dial-backs")
	// ErrKeyMismatch: a leave for an address that is listed with another
	// node key (HTTP 403 on leave).
	ErrKeyMismatch = errors.New("supernode is listed with another key")
	// ErrBadSignature: a heartbeat's, leave's or device registration's
	// signature does not verify
	// (HTTP 400; the client returns it inside ErrBadRequest).
	ErrBadSignature = errors.New("signature does not verify")
	// ErrBadPass: a [Pass] is malformed or its signature does not verify:
	// the Parley-Pass header of a device list (HTTP 400 naming the header)
	// or a mailbox item's pass (HTTP 400 naming items[i].pass, with Item).
	// [ParsePass], [UnmarshalPass] and [Pass.Verify] return it too. The
	// client returns it inside ErrBadRequest. A well-formed pass that does
	// not admit the caller is ErrNotContact (403).
	ErrBadPass = errors.New("malformed pass")
	// ErrClockSkew: a heartbeat's or leave's ts is further than identity.Skew
	// from the server's clock (HTTP 400; inside ErrBadRequest).
	ErrClockSkew = errors.New("ts is outside the allowed clock skew")
	// ErrReplayed: a heartbeat's or leave's ts is older than the last one
	// accepted for the address and key (HTTP 400; inside ErrBadRequest).
	ErrReplayed = errors.New("ts is older than the last accepted one")
	// ErrUnreachable: the client could not reach the login server at all.
	ErrUnreachable = errors.New("login server unreachable")
	// ErrServer: the login server answered with a server error or a response
	// the client does not understand.
	ErrServer = errors.New("login server error")
)

// APIError is an error answer from the login server as the [Client] returns it.
// Error() is "login: " followed by the server's one-line message, for example
// "login: wrong password". Unwrap returns the matching sentinel (Kind), so
// errors.Is(err, ErrWrongPassword) works.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Message is the server's "error" field (or a description of the
	// response when it had none).
	Message string
	// RetryAfter is set on ErrRateLimited and ErrDialBackLimited: how long
	// to wait before trying again (at most MaxRetryAfter).
	RetryAfter time.Duration
	// Item is the index of the item a refused mailbox post names (the
	// first one that could not be stored); -1 when the answer names none.
	Item int
	// Kind is the sentinel this answer maps to.
	Kind error
	// detail is a second sentinel the message names, if any (for example
	// identity.ErrBadUser or ErrBadSignature inside ErrBadRequest).
	detail error
}

// Error implements error.
func (e *APIError) Error() string {
	if e.Message == "" {
		return "login: " + e.Kind.Error()
	}
	return "login: " + e.Message
}

// Unwrap returns the sentinel Kind, and a detail sentinel inside
// ErrBadRequest when the message names one: identity.ErrBadUser (a refused
// user name), ErrBadSignature, ErrClockSkew, ErrReplayed, ErrUnknownDevice
// or ErrBadPass; ErrUnauthorized with Kind ErrDeviceRemoved; ErrBadRequest
// with Kind ErrTooLarge.
func (e *APIError) Unwrap() []error {
	if e.detail != nil {
		return []error{e.Kind, e.detail}
	}
	return []error{e.Kind}
}
