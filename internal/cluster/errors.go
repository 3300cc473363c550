package cluster

import "errors"

// Sentinel errors, wrapped with the operation ("cluster: supernode: …").
// Test with errors.Is.
var (
	// ErrConfig means a Config is incomplete or inconsistent: a required
	// field is missing, or two fields that go together are not both set.
	ErrConfig = errors.New("invalid configuration")
)
