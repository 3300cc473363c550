//go:build !linux

package offload

import "fmt"

// Offload is the in-kernel fast path; on this system Open always fails.
type Offload struct{}

// Open fails with ErrUnsupported: the program needs Linux.
func Open(Config) (*Offload, error) {
	return nil, fmt.Errorf("offload: open: %w", ErrUnsupported)
}

// Close does nothing.
func (o *Offload) Close() error { return nil }

// Add fails with ErrUnsupported.
func (o *Offload) Add(Channel) error { return ErrUnsupported }

// Remove does nothing.
func (o *Offload) Remove(Channel) (Counts, error) { return Counts{}, nil }

// Counts reports nothing.
func (o *Offload) Counts(Channel) (Counts, bool) { return Counts{}, false }

// Len returns zeros.
func (o *Offload) Len() (chans, peers int) { return 0, 0 }

// SetBudget fails with ErrUnsupported.
func (o *Offload) SetBudget(uint32, int, int) error { return ErrUnsupported }

// RemoveBudget does nothing.
func (o *Offload) RemoveBudget(uint32) error { return nil }
