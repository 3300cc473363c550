package login

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// limiter counts events per user and per client address in a sliding
// window: searches (both), dial-backs, contact requests, registrations and
// name lookups (addresses only, or a user as the key). Failed password checks
// have their own [failureLimiter].
type limiter struct {
	window  time.Duration
	maxUser int
	maxAddr int

	mu    sync.Mutex
	users map[string][]time.Time
	addrs map[string][]time.Time
}

func newLimiter(window time.Duration, maxUser, maxAddr int) *limiter {
	return &limiter{
		window:  window,
		maxUser: maxUser,
		maxAddr: maxAddr,
		users:   map[string][]time.Time{},
		addrs:   map[string][]time.Time{},
	}
}

// begin checks both limits at now. When either is reached it returns how long
// until an attempt would be allowed again and records nothing. Otherwise it
// records a provisional failure for user and addr and returns 0.
func (l *limiter) begin(user, addr string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.recent(l.users, user, now)
	a := l.recent(l.addrs, addr, now)
	wait := max(l.wait(u, l.maxUser, now), l.wait(a, l.maxAddr, now))
	if wait > 0 {
		return wait
	}
	l.users[user] = append(u, now)
	l.addrs[addr] = append(a, now)
	return 0
}

// beginAddr checks only the per-address limit at now. When it is reached it
// returns how long until an event would be allowed again and records nothing;
// otherwise it records an event for addr that is never taken back. The
// dial-back limiter counts every dial-back this way.
func (l *limiter) beginAddr(addr string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.recent(l.addrs, addr, now)
	if wait := l.wait(a, l.maxAddr, now); wait > 0 {
		return wait
	}
	l.addrs[addr] = append(a, now)
	return 0
}

// cancelAddr takes back the event recorded for addr at "at" by beginAddr.
func (l *limiter) cancelAddr(addr string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	takeBack(l.addrs, addr, at)
}

// prune drops failures older than the window and empty entries.
func (l *limiter) prune(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range []map[string][]time.Time{l.users, l.addrs} {
		for k := range m {
			l.recent(m, k, now)
		}
	}
}

// size returns the number of tracked users and addresses.
func (l *limiter) size() (int, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.users), len(l.addrs)
}

// recent prunes m[key] to events within the window ending at now, deleting
// the key when none remain, and returns them.
func (l *limiter) recent(m map[string][]time.Time, key string, now time.Time) []time.Time {
	return recent(m, key, now, l.window)
}

// wait returns how long until fewer than limit events of f lie in the
// window, or 0 if that is already so.
func (l *limiter) wait(f []time.Time, limit int, now time.Time) time.Duration {
	return wait(f, limit, now, l.window)
}

// recent prunes m[key] to events within the window ending at now, deleting
// the key when none remain, and returns them.
func recent[K comparable](m map[K][]time.Time, key K, now time.Time, window time.Duration) []time.Time {
	f := m[key]
	cut := now.Add(-window)
	i := 0
	for i < len(f) && !f[i].After(cut) {
		i++
	}
	f = f[i:]
	if len(f) == 0 {
		delete(m, key)
		return nil
	}
	m[key] = f
	return f
}

// wait returns how long until fewer than limit events of f lie in the
// window, or 0 if that is already so.
func wait(f []time.Time, limit int, now time.Time, window time.Duration) time.Duration {
	if len(f) < limit {
		return 0
	}
	d := f[len(f)-limit].Add(window).Sub(now)
	return max(d, time.Nanosecond)
}

// takeBack removes the event at "at" from m[key], deleting the key when none
// remain.
func takeBack[K comparable](m map[K][]time.Time, key K, at time.Time) {
	f := m[key]
	for i := len(f) - 1; i >= 0; i-- {
		if f[i].Equal(at) {
			f = append(f[:i:i], f[i+1:]...)
			break
		}
	}
	if len(f) == 0 {
		delete(m, key)
		return
	}
	m[key] = f
}

// clientAddr returns the rate-limiting key for the request's client: the
// direct peer (peerAddr), or, when that is one of cfg.TrustedProxies, the
// last address in X-Forwarded-For.
func (s *Server) clientAddr(r *http.Request) string {
	direct := peerIP(r)
	if !direct.IsValid() || len(s.cfg.TrustedProxies) == 0 {
		return addrKey(direct, r.RemoteAddr)
	}
	trusted := false
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(direct) {
			trusted = true
			break
		}
	}
	xff := r.Header.Values("X-Forwarded-For")
	if !trusted || len(xff) == 0 {
		return addrKey(direct, r.RemoteAddr)
	}
	last := xff[len(xff)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	ip, err := netip.ParseAddr(strings.TrimSpace(last))
	if err != nil {
		return addrKey(direct, r.RemoteAddr)
	}
	return addrKey(ip.Unmap(), "")
}

// peerAddr is the rate-limiting key of the direct peer (RemoteAddr), never
// a forwarded address.
func peerAddr(r *http.Request) string { return addrKey(peerIP(r), r.RemoteAddr) }

func peerIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return ip.Unmap()
}

// addrKey is ip as a key, IPv6 grouped by its /64 prefix (one subscriber
// usually holds a whole /64); raw when ip is not valid.
func addrKey(ip netip.Addr, raw string) string {
	if !ip.IsValid() {
		return raw
	}
	if ip.Is6() {
		p, err := ip.WithZone("").Prefix(64)
		if err == nil {
			return p.String()
		}
	}
	return ip.String()
}

// retrySeconds rounds d up to whole seconds, at least 1.
func retrySeconds(d time.Duration) int64 {
	s := int64((d + time.Second - 1) / time.Second)
	return max(s, 1)
}
