package offload

import "errors"

// Sentinel errors returned by this package, wrapped with the operation
// (test with errors.Is).
var (
	// ErrUnsupported means the in-kernel fast path cannot run here: not
	// Linux, or the kernel refused the program (no root, no BPF, no TCX).
	ErrUnsupported = errors.New("kernel offload not supported")
	// ErrInvalidConfig means a Config field is missing or out of range.
	ErrInvalidConfig = errors.New("invalid offload config")
	// ErrNotIPv4 means a channel has an address that is not IPv4 (the
	// program forwards IPv4 only).
	ErrNotIPv4 = errors.New("not an IPv4 channel")
	// ErrClosed means the offload is closed.
	ErrClosed = errors.New("offload closed")
)
