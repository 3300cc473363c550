package supernode

import "errors"

// Sentinel errors, wrapped with the operation.
var (
	ErrBadFrame     = errors.New("malformed frame")
	ErrFrameTooBig  = errors.New("frame too big")
	ErrVersion      = errors.New("unsupported protocol version")
	ErrAuth         = errors.New("attach refused")
	ErrNoLoginKey   = errors.New("no login server key configured")
	ErrClosed       = errors.New("supernode closed")
	ErrWrongServer  = errors.New("challenge names another supernode")
	ErrOffline      = errors.New("user is offline")
	ErrOverload     = errors.New("recipient overloaded")
	ErrDisconnected = errors.New("disconnected from supernode")
	ErrDialback     = errors.New("dial-back failed")
	ErrNotMember    = errors.New("not a member of the mesh")
	ErrMeshAuth     = errors.New("mesh message not authenticated")
)
