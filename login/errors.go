package login

import "errors"

// Sentinel errors of the server alone. The errors of the HTTP API, which the
// server and its Go client share, are in package wire/loginapi.
var (
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
