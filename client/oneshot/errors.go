package oneshot

import "errors"

// ErrUnknownOp means [Contact] was given an Op that is none of Add, Accept
// and Decline.
var ErrUnknownOp = errors.New("unknown contact operation")

var (
	// ErrAmbiguousDevice: several of the user's devices have a key that
	// starts with the prefix given ([MatchDevice]).
	ErrAmbiguousDevice = errors.New("ambiguous device key")
	// ErrThisDevice: [RemoveDevice] was asked to remove the device it runs
	// on without self.
	ErrThisDevice = errors.New("that is this device")
)
