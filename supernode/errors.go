package supernode

import "errors"

// Sentinel errors, wrapped with the operation.
var (
	ErrNoLoginKey = errors.New("no login server key configured")
	ErrClosed     = errors.New("supernode closed")
	ErrNotMember  = errors.New("not a member of the mesh")
	ErrMeshAuth   = errors.New("mesh message not authenticated")
)
