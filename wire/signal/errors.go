package signal

import "errors"

// ErrBadSignal: a signal is malformed, or fails verification (credential,
// addressee, time window, DTLS fingerprint or signature). Wrapped with why.
var ErrBadSignal = errors.New("signal failed verification")
