package snapi

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors of the client protocol, shared by the supernode and its
// Go client ([Conn]).
var (
	ErrBadFrame     = errors.New("malformed frame")
	ErrFrameTooBig  = errors.New("frame too big")
	ErrVersion      = errors.New("unsupported protocol version")
	ErrAuth         = errors.New("attach refused")
	ErrWrongServer  = errors.New("challenge names another supernode")
	ErrOffline      = errors.New("user is offline")
	ErrOverload     = errors.New("recipient overloaded")
	ErrDisconnected = errors.New("disconnected from supernode")
	ErrDialback     = errors.New("dial-back failed")
	ErrLimit        = errors.New("supernode limit reached") // a CodeLimit error frame
	// ErrBusy: the supernode refused the websocket upgrade with 503 and a
	// Retry-After (admission control); the error is a [*BusyError].
	ErrBusy = errors.New("supernode busy")
)

// BusyError is a supernode's refusal to take a connection now: the upgrade
// of /v1/ws was answered 503 Service Unavailable with a Retry-After header
// (see [BusyStatus]). It matches [ErrBusy] with errors.Is.
type BusyError struct {
	// Host is the supernode's host:port.
	Host string
	// RetryAfter is the wait the supernode asked for (at least a second).
	RetryAfter time.Duration
	// Reason is the refusal's reason from the JSON body ("" if none).
	Reason string
}

func (e *BusyError) Error() string {
	msg := fmt.Sprintf("supernode: dial %s: %v, retry after %v", e.Host, ErrBusy, e.RetryAfter)
	if e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	return msg
}

func (e *BusyError) Unwrap() error { return ErrBusy }

// RetryAfter is the wait a supernode asked for in err (a [*BusyError]
// anywhere in its chain), and whether it asked.
func RetryAfter(err error) (time.Duration, bool) {
	var b *BusyError
	if errors.As(err, &b) {
		return b.RetryAfter, true
	}
	return 0, false
}
