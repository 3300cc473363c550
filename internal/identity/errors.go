package identity

import "errors"

// Sentinel errors returned by this package, wrapped with the operation.
var (
	// ErrMalformed means a token or key is not in the documented encoding.
	ErrMalformed = errors.New("malformed credential")
	// ErrBadSignature means the login server's signature does not verify.
	ErrBadSignature = errors.New("credential signature does not verify")
	// ErrExpired means the credential's validity window has passed.
	ErrExpired = errors.New("credential expired")
	// ErrNotYetValid means the credential's validity window has not started.
	ErrNotYetValid = errors.New("credential not yet valid")
	// ErrBadUser means a user name breaks the naming rules.
	ErrBadUser = errors.New("invalid user name")
)
