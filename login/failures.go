package login

import (
	"sync"
	"time"
)

// failureLimiter counts failed password checks (a wrong password or an
// unknown user name: the two are never told apart) in a sliding window,
// three ways:
//
//   - per client address (maxAddr): limits an address that guesses many
//     users;
//   - per (address, user) (maxPair): limits an address that guesses one
//     user;
//   - per user, over all addresses (maxUser): a ceiling that applies only
//     to addresses that have already failed for that user in the window, so
//     that a distributed attack gets one guess per fresh address once it
//     is reached, while a correct password from an address that did not
//     fail for the user is never refused because of others' failures.
//
// So failures limit the addresses they come from, never the victim. An
// attempt is recorded as a failure before the password is checked (so that
// concurrent guesses cannot overshoot the limits) and taken back when it
// turns out not to be one.
type failureLimiter struct {
	window  time.Duration
	maxAddr int
	maxPair int
	maxUser int

	mu    sync.Mutex
	addrs map[string][]time.Time
	pairs map[addrUser][]time.Time
	users map[string][]time.Time
}

type addrUser struct{ addr, user string }

func newFailureLimiter(window time.Duration, maxAddr, maxPair, maxUser int) *failureLimiter {
	return &failureLimiter{
		window:  window,
		maxAddr: maxAddr,
		maxPair: maxPair,
		maxUser: maxUser,
		addrs:   map[string][]time.Time{},
		pairs:   map[addrUser][]time.Time{},
		users:   map[string][]time.Time{},
	}
}

// begin checks the limits for an attempt on user from addr at now. When one
// is reached it returns how long until an attempt would be allowed again
// and records nothing. Otherwise it records a provisional failure and
// returns 0.
func (l *failureLimiter) begin(user, addr string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := addrUser{addr, user}
	a := recent(l.addrs, addr, now, l.window)
	p := recent(l.pairs, k, now, l.window)
	u := recent(l.users, user, now, l.window)
	d := max(wait(a, l.maxAddr, now, l.window), wait(p, l.maxPair, now, l.window))
	if len(p) > 0 {
		// The per-user ceiling binds only an address that has failed for
		// this user: it cannot lock out a clean address.
		d = max(d, wait(u, l.maxUser, now, l.window))
	}
	if d > 0 {
		return d
	}
	l.addrs[addr] = append(a, now)
	l.pairs[k] = append(p, now)
	l.users[user] = append(u, now)
	return 0
}

// succeeded records that the attempt begun at "at" was a correct password:
// its provisional failure is taken back and the address's failures for the
// user are cleared (a typo before the right password does not linger). The
// user's count over all addresses and the address's own count stay: a
// success does not give an attacker a fresh budget.
func (l *failureLimiter) succeeded(user, addr string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	takeBack(l.addrs, addr, at)
	takeBack(l.users, user, at)
	delete(l.pairs, addrUser{addr, user})
}

// abandon takes back the provisional failure of an attempt that ended
// without a verdict (server error, client gone).
func (l *failureLimiter) abandon(user, addr string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	takeBack(l.addrs, addr, at)
	takeBack(l.pairs, addrUser{addr, user}, at)
	takeBack(l.users, user, at)
}

// prune drops failures older than the window and empty entries.
func (l *failureLimiter) prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.addrs {
		recent(l.addrs, k, now, l.window)
	}
	for k := range l.pairs {
		recent(l.pairs, k, now, l.window)
	}
	for k := range l.users {
		recent(l.users, k, now, l.window)
	}
}

// size returns the number of tracked addresses, (address, user) pairs and
// users.
func (l *failureLimiter) size() (int, int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.addrs), len(l.pairs), len(l.users)
}
