package turncred

import "errors"

// Sentinel errors of TURN-REST credentials, wrapped with the operation.
var (
	// ErrBadUsername means a TURN username is not "EXPIRY:user" with a decimal
	// Unix expiry and a valid Parley user name.
	ErrBadUsername = errors.New("malformed TURN-REST username")
	// ErrExpired means a TURN-REST credential's expiry has passed.
	ErrExpired = errors.New("TURN credential expired")
	// ErrTooFarAhead means a TURN-REST credential expires more than
	// MaxCredentialTTL (plus clock skew) from now.
	ErrTooFarAhead = errors.New("TURN credential expiry too far ahead")
)
