package login

import (
	"errors"
	"time"
)

// Sentinel errors. The server wraps them with the operation; the [Client]
// returns them (inside an [*APIError] for server answers) so that callers can
// test with errors.Is and print one clear line.
var (
	// ErrUserExists: registration of a name that is taken (HTTP 409).
	ErrUserExists = errors.New("user already exists")
	// ErrUnknownUser: no account has this name (HTTP 404).
	ErrUnknownUser = errors.New("unknown user")
	// ErrWrongPassword: the password does not match (HTTP 401 on login and
	// password change).
	ErrWrongPassword = errors.New("wrong password")
	// ErrRateLimited: too many failed logins for the user or the client
	// address in the failure window (HTTP 429).
	ErrRateLimited = errors.New("too many failed logins")
	// ErrInvalidRefresh: the refresh token is unknown, expired, revoked or
	// belongs to another user (HTTP 401 on refresh).
	ErrInvalidRefresh = errors.New("invalid refresh token")
	// ErrBadRequest: the server refused the request as malformed (HTTP 400,
	// 413, 415); the server's message says why.
	ErrBadRequest = errors.New("bad request")
	// ErrSupernodeListFull: the supernode list already holds the maximum
	// number of live entries (HTTP 503 on heartbeat).
	ErrSupernodeListFull = errors.New("supernode list is full")
	// ErrUnreachable: the client could not reach the login server at all.
	ErrUnreachable = errors.New("login server unreachable")
	// ErrServer: the login server answered with a server error or a response
	// the client does not understand.
	ErrServer = errors.New("login server error")
	// ErrBadConfig: a Config field is out of range.
	ErrBadConfig = errors.New("invalid configuration")
	// ErrBadKeyFile: the signing key file exists but is not a 32-byte seed.
	ErrBadKeyFile = errors.New("malformed signing key file")
	// ErrSchemaVersion: the database was written by a newer server.
	ErrSchemaVersion = errors.New("database schema is newer than this server")
	// ErrBadHash: a stored password hash is not a valid argon2id PHC string.
	ErrBadHash = errors.New("malformed password hash")
	// ErrClosed: the server has been closed.
	ErrClosed = errors.New("login server closed")
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
	// RetryAfter is set on ErrRateLimited: how long to wait before trying
	// again.
	RetryAfter time.Duration
	// Kind is the sentinel this answer maps to.
	Kind error
	// detail is a second sentinel the message names, if any (for example
	// identity.ErrBadUser inside ErrBadRequest).
	detail error
}

// Error implements error.
func (e *APIError) Error() string {
	if e.Message == "" {
		return "login: " + e.Kind.Error()
	}
	return "login: " + e.Message
}

// Unwrap returns the sentinel Kind, and identity.ErrBadUser too when the
// server refused a user name.
func (e *APIError) Unwrap() []error {
	if e.detail != nil {
		return []error{e.Kind, e.detail}
	}
	return []error{e.Kind}
}
