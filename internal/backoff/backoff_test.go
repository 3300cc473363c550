package backoff_test

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/parley/parley/internal/backoff"
)

// TestDelayStaysBetweenFloorAndCapForever: however many attempts failed, the
// wait is between the floor and the cap — no overflow into negative or zero
// waits (the heartbeat's "retry *= 2" turned negative after ~35 failures).
func TestDelayStaysBetweenFloorAndCapForever(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	p := backoff.Policy{Floor: time.Second, Base: time.Second, Cap: 10 * time.Second, Rand: r.Int64N}
	b := backoff.New(p)
	for i := range 100_000 {
		d := b.Next()
		if d < time.Second || d > 10*time.Second {
			t.Fatalf("attempt %d: wait %v, want within [1s, 10s]", i, d)
		}
	}
	for _, n := range []int{-5, 0, 1, 30, 35, 62, 63, 64, 1000, math.MaxInt} {
		if c := p.Ceiling(n); c < time.Second || c > 10*time.Second {
			t.Errorf("Ceiling(%d) = %v", n, c)
		}
		if d := p.Delay(n); d < time.Second || d > 10*time.Second {
			t.Errorf("Delay(%d) = %v", n, d)
		}
	}
}

func TestCeilingDoublesUpToCap(t *testing.T) {
	p := backoff.Policy{Floor: 100 * time.Millisecond, Base: 300 * time.Millisecond, Cap: 30 * time.Second}
	want := []time.Duration{300 * time.Millisecond, 600 * time.Millisecond, 1200 * time.Millisecond, 2400 * time.Millisecond,
		4800 * time.Millisecond, 9600 * time.Millisecond, 19200 * time.Millisecond, 30 * time.Second, 30 * time.Second}
	for n, w := range want {
		if got := p.Ceiling(n); got != w {
			t.Errorf("Ceiling(%d) = %v, want %v", n, got, w)
		}
	}
}

// TestFullJitterCoversTheRange: the draws spread over [Floor, ceiling],
// reaching both ends.
func TestFullJitterCoversTheRange(t *testing.T) {
	p := backoff.Policy{Floor: 0, Base: time.Second, Cap: time.Minute, Rand: func(n int64) int64 { return n - 1 }}
	if d := p.Delay(3); d != 8*time.Second {
		t.Errorf("highest draw of attempt 3 = %v, want 8s", d)
	}
	p.Rand = func(int64) int64 { return 0 }
	p.Floor = 2 * time.Second
	if d := p.Delay(3); d != 2*time.Second {
		t.Errorf("lowest draw of attempt 3 = %v, want the floor 2s", d)
	}
	// The default random source stays in range too.
	p.Rand = nil
	lo, hi := time.Hour, time.Duration(0)
	for range 10_000 {
		d := p.Delay(2)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 2*time.Second || hi > 4*time.Second || hi-lo < time.Second {
		t.Errorf("10,000 draws of attempt 2 spanned [%v, %v], want most of [2s, 4s]", lo, hi)
	}
}

func TestDegenerateBounds(t *testing.T) {
	tests := []struct {
		name string
		p    backoff.Policy
		n    int
		min  time.Duration
		max  time.Duration
	}{
		{"cap below floor", backoff.Policy{Floor: 5 * time.Second, Cap: time.Second}, 3, 5 * time.Second, 5 * time.Second},
		{"no base", backoff.Policy{Floor: time.Second, Cap: 4 * time.Second}, 0, time.Second, time.Second},
		{"no base no floor", backoff.Policy{Cap: 4 * time.Second}, 0, 0, 4 * time.Second},
		{"huge cap", backoff.Policy{Base: time.Nanosecond, Cap: math.MaxInt64}, 1 << 20, 0, math.MaxInt64},
		{"negative floor", backoff.Policy{Floor: -time.Second, Base: time.Second, Cap: time.Second}, 9, 0, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 1000 {
				if d := tt.p.Delay(tt.n); d < tt.min || d > tt.max {
					t.Fatalf("Delay(%d) = %v, want within [%v, %v]", tt.n, d, tt.min, tt.max)
				}
			}
		})
	}
}

func TestResetStartsOver(t *testing.T) {
	b := backoff.New(backoff.Policy{Floor: time.Second, Base: time.Second, Cap: time.Hour, Rand: func(n int64) int64 { return n - 1 }})
	for range 100 {
		b.Next()
	}
	if b.Attempt() != 64 {
		t.Errorf("Attempt = %d after 100 failures, want it held at 64", b.Attempt())
	}
	if d := b.Next(); d != time.Hour {
		t.Errorf("wait after 100 failures = %v, want the cap", d)
	}
	b.Reset()
	if d := b.Next(); d != time.Second {
		t.Errorf("first wait after Reset = %v, want 1s", d)
	}
}
