package snapi

import "errors"

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
)
