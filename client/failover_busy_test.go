package client

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/parley/parley/wire/snapi"
)

// TestReconnectHonoursRetryAfter: after a busy refusal the next attempt
// waits at least the Retry-After and at most half of it more, spread over
// that range; after any other failure it is the plain backoff.
func TestReconnectHonoursRetryAfter(t *testing.T) {
	busy := &snapi.BusyError{Host: "sn:1", RetryAfter: 2 * time.Second}
	tests := []struct {
		name     string
		attempt  int
		err      error
		min, max time.Duration
	}{
		{"no error", 0, nil, 0, firstRetryMax},
		{"unreachable", 3, snapi.ErrDisconnected, 0, 8 * firstRetryMax},
		{"busy", 0, busy, 2 * time.Second, 3 * time.Second},
		{"busy, joined with others", 1, fmt.Errorf("%w: %w", ErrNoSupernode, errors.Join(snapi.ErrDisconnected, busy)), 2 * time.Second, 3 * time.Second},
		{"busy, backoff longer", 20, busy, 0, retryCap},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lo, hi := time.Duration(1<<62), time.Duration(0)
			for range 2000 {
				d := reconnectDelay(tt.attempt, tt.err, r)
				lo, hi = min(lo, d), max(hi, d)
			}
			if lo < tt.min || hi > tt.max {
				t.Fatalf("waits in [%v, %v], want within [%v, %v]", lo, hi, tt.min, tt.max)
			}
			if _, isBusy := snapi.RetryAfter(tt.err); isBusy && tt.attempt == 0 && hi-lo < 400*time.Millisecond {
				t.Errorf("busy waits span only %v: refused clients would come back together", hi-lo)
			}
		})
	}
}
