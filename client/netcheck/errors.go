package netcheck

import "errors"

// ErrBadServer means a STUN server given was not HOST:PORT.
var ErrBadServer = errors.New("netcheck: bad STUN server")
