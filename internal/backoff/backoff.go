// Package backoff computes the waits between retries: exponential growth with
// full jitter between a floor and a cap, overflow-free however many attempts
// have failed.
//
// Attempt n (0-based) waits a uniformly random duration in [Floor, ceil(n)],
// where ceil(n) = min(Cap, Base·2ⁿ), and never less than Floor. The ceiling
// is computed by doubling only while it is below Cap, so it never wraps
// around: after a million failures the wait is still between Floor and Cap.
// A floor keeps a loop against a dead peer from spinning even when the random
// draw is 0; the jitter spreads out many clients that failed at once.
package backoff

import (
	"math"
	"math/rand/v2"
	"time"
)

// Policy is the shape of a backoff. Its zero value is not useful: set Cap.
type Policy struct {
	// Floor is the shortest wait, for every attempt. Negative means 0.
	Floor time.Duration
	// Base is the ceiling of the first attempt's wait; each further attempt
	// doubles it, up to Cap. Zero or less means Floor (or Cap when Floor is
	// 0 too).
	Base time.Duration
	// Cap is the longest wait. When it is below Floor, Floor is the cap too
	// (every wait is Floor).
	Cap time.Duration
	// Rand returns a uniform random integer in [0, n) for n > 0; nil means
	// math/rand/v2's Int64N. Tests inject a seeded one (for example
	// rand.New(rand.NewPCG(1, 2)).Int64N).
	Rand func(n int64) int64
}

// Ceiling is the longest wait of attempt n (n < 0 counts as 0).
func (p Policy) Ceiling(n int) time.Duration {
	floor, capD := p.bounds()
	ceil := p.Base
	if ceil <= 0 {
		ceil = floor
		if ceil <= 0 {
			ceil = capD
		}
	}
	for i := 0; i < n && ceil < capD; i++ {
		if ceil > capD/2 {
			ceil = capD
			break
		}
		ceil *= 2
	}
	return max(floor, min(ceil, capD))
}

// Delay returns the wait before attempt n: uniform in [Floor, Ceiling(n)].
func (p Policy) Delay(n int) time.Duration {
	floor, _ := p.bounds()
	span := int64(p.Ceiling(n) - floor)
	if span <= 0 {
		return floor
	}
	draw := p.Rand
	if draw == nil {
		draw = rand.Int64N
	}
	if span < math.MaxInt64 {
		span++ // the ceiling itself is a possible wait
	}
	return floor + time.Duration(draw(span))
}

func (p Policy) bounds() (floor, capD time.Duration) {
	floor = max(p.Floor, 0)
	return floor, max(p.Cap, floor)
}

// Backoff counts failed attempts and hands out their waits. It is not safe
// for concurrent use.
type Backoff struct {
	p       Policy
	attempt int
}

// New returns a Backoff at attempt 0.
func New(p Policy) *Backoff { return &Backoff{p: p} }

// maxAttempt bounds the attempt counter: past it the ceiling is Cap for any
// Base ≥ 1 ns, and the counter itself can never overflow.
const maxAttempt = 64

// Next returns the wait before the next attempt and counts one more failure.
func (b *Backoff) Next() time.Duration {
	d := b.p.Delay(b.attempt)
	if b.attempt < maxAttempt {
		b.attempt++
	}
	return d
}

// Reset starts again from attempt 0 (after a success).
func (b *Backoff) Reset() { b.attempt = 0 }

// Attempt is the number of failures counted since the last Reset (at most
// 64).
func (b *Backoff) Attempt() int { return b.attempt }
