package relay

import "errors"

// Sentinel errors returned by this package, wrapped with the operation
// (test with errors.Is).
var (
	// ErrInvalidConfig means a Config field is missing or out of range; the
	// wrapping message names the field.
	ErrInvalidConfig = errors.New("invalid relay config")
	// ErrWrongRealm means a request named a realm other than the relay's.
	ErrWrongRealm = errors.New("wrong TURN realm")
	// ErrQuota means the user already holds MaxAllocationsPerUser allocations.
	ErrQuota = errors.New("allocation quota reached")
	// ErrTCPRelay means a client asked for an RFC 6062 TCP allocation; the relay
	// relays UDP only (clients may still reach it over TCP or TLS).
	ErrTCPRelay = errors.New("TCP relay allocations are not supported")
	// ErrAddressFamily means a client asked for an allocation of an address
	// family the relay has no address of (RelayIP, SecondRelayIP).
	ErrAddressFamily = errors.New("address family not relayed")
	// ErrClosed means the server is closed or closing.
	ErrClosed = errors.New("relay closed")
	// ErrCloseTimeout means Close gave up waiting for the TURN server's
	// goroutines to finish.
	ErrCloseTimeout = errors.New("relay close timed out")
)
