package loadgen

import "errors"

// Sentinel errors of the load client.
var (
	ErrNoLoginURL   = errors.New("no login server URL")
	ErrNoHome       = errors.New("calls need a home directory for the calling users")
	ErrNoSupernodes = errors.New("the login server lists no supernode")
	ErrLost         = errors.New("messages lost, delivered twice, or users not found")
)
