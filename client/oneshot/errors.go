package oneshot

import "errors"

// ErrUnknownOp means [Contact] was given an Op that is none of Add, Accept
// and Decline.
var ErrUnknownOp = errors.New("unknown contact operation")
