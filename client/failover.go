package client

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/parley/parley/internal/backoff"
	"github.com/parley/parley/wire/signal"
	"github.com/parley/parley/wire/snapi"
)

// Keeping a supernode.
//
// A session outlives its supernode connections. When the connection drops (and
// the session is not closing) the session emits "offline" with the reason,
// waits a backoff with full jitter (the first attempt after a random
// 0–firstRetryMax, then uniformly up to firstRetryMax·2^n, capped at retryCap;
// reset once an attach has held for stableAfter), chooses again (hostcache.go)
// with the dead supernode excluded for excludeFor, re-attaches with the current
// credential and emits "online". A supernode shedding load (503 with a
// Retry-After, snapi.BusyError) is not counted as failed: it is tried last
// until its Retry-After has passed, and when every candidate failed the next
// attempt waits at least the Retry-After plus up to half of it again
// (reconnectDelay). The first attach (Online) waits the same way when every
// candidate refused and at least one of them was busy (firstAttach), for up
// to busyPatience; any other first failure is returned at once. Signals sent
// meanwhile wait for the new connection (sendSignal). Only Close or an unrecoverable credential problem
// ends the session for good (Done, Err).
//
// Calls do not depend on the supernode once connected: a direct call keeps
// going. A call relayed through a relay of the dead supernode restarts ICE over
// the new one (restart.go).

const (
	firstRetryMax = 300 * time.Millisecond
	retryCap      = 30 * time.Second
	// stableAfter: an attach that held this long resets the backoff. A
	// supernode that accepts and then drops its sessions within it makes
	// them back off more each time; a device whose network changes twice
	// in a minute (a call's ICE restarts wait for the reattach) does not.
	stableAfter = 5 * time.Second
	excludeFor  = time.Minute
	// dialTimeout bounds one attach attempt.
	dialTimeout = 5 * time.Second
	// signalRetryFor is how long a signal waits for a (new) supernode
	// connection before it is given up.
	signalRetryFor = 5 * time.Second
	// busyPatience bounds how long the first attach keeps waiting out busy
	// supernodes (a reconnect storm is spread over seconds, not minutes).
	busyPatience = 2 * time.Minute
)

// reconnectDelay is the wait before reconnect attempt n after the attempt
// before it failed with err: backoffDelay, and at least busyDelay when a
// supernode refused with a Retry-After (snapi.BusyError, admission control).
func reconnectDelay(n int, err error, r *rand.Rand) time.Duration {
	d := backoffDelay(n, r)
	if wait, ok := snapi.RetryAfter(err); ok {
		d = max(d, busyDelay(wait, r))
	}
	return d
}

// busyDelay is the wait after a busy refusal asking for wait: wait plus a
// jitter of up to half of it, so that clients refused together do not come
// back together.
func busyDelay(wait time.Duration, r *rand.Rand) time.Duration {
	return wait + time.Duration(r.Int64N(int64(wait/2)+1))
}

// backoffDelay is the wait before reconnect attempt n (0-based): full jitter,
// uniform in [0, min(retryCap, firstRetryMax·2^n)], for any n (the shared
// internal/backoff never overflows).
func backoffDelay(n int, r *rand.Rand) time.Duration {
	return backoff.Policy{Base: firstRetryMax, Cap: retryCap, Rand: r.Int64N}.Delay(n)
}

// connNow returns the current supernode connection, nil while reconnecting.
func (s *Session) connNow() *snapi.Conn {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return s.conn
}

// waitConn returns the current connection, waiting for one while reconnecting.
func (s *Session) waitConn(ctx context.Context) (*snapi.Conn, error) {
	for {
		s.connMu.Lock()
		conn, online := s.conn, s.onlineCh
		s.connMu.Unlock()
		if conn != nil {
			return conn, nil
		}
		select {
		case <-online:
		case <-s.done:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", snapi.ErrDisconnected, ctx.Err())
		}
	}
}

// Supernode is the URL of the supernode the session is attached to ("" while
// it is reconnecting).
func (s *Session) Supernode() string {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conn == nil {
		return ""
	}
	return s.connURL
}

// setConn installs a new connection; false when the session is closing (the
// caller closes conn).
func (s *Session) setConn(conn *snapi.Conn, url string) bool {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.ctx.Err() != nil {
		return false
	}
	s.conn, s.connURL = conn, url
	s.others = conn.Supernodes()
	close(s.onlineCh)
	return true
}

// dropConn marks the session offline after conn ended.
func (s *Session) dropConn(conn *snapi.Conn) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if s.conn == conn {
		s.conn = nil
		s.onlineCh = make(chan struct{})
	}
}

// keepLoop waits for the connection to drop and re-attaches, until the session
// ends.
func (s *Session) keepLoop(conn *snapi.Conn, url string) {
	defer s.wg.Done()
	attempt := 0
	for {
		since := time.Now()
		select {
		case <-s.ctx.Done():
			return
		case <-conn.Done():
		}
		if s.ctx.Err() != nil {
			return
		}
		reason := conn.Err()
		conn.Close()
		oldICE := conn.ICEServers()
		s.connMu.Lock()
		s.lostURL, s.lostID = url, conn.Session()
		s.connMu.Unlock()
		s.dropConn(conn)
		s.c.hosts.failure(url)
		s.exclude(url, time.Now().Add(excludeFor))
		s.c.log.Warn("lost the supernode; reconnecting", "supernode", url, "err", reason)
		msg := "connection lost"
		if reason != nil {
			msg = reason.Error()
		}
		s.emit(Event{Event: "offline", Info: &Info{User: s.user, Supernode: url, Message: msg}})
		if time.Since(since) >= stableAfter {
			attempt = 0
		}
		authFailures := 0
		var lastErr error
		for {
			t := time.NewTimer(reconnectDelay(attempt, lastErr, s.rand()))
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			attempt++
			next, nextURL, err := s.attach(s.ctx, authFailures > 0)
			lastErr = err
			if err == nil {
				if !s.setConn(next, nextURL) {
					next.Close()
					return
				}
				conn, url = next, nextURL
				break
			}
			if s.ctx.Err() != nil {
				return
			}
			if fatal(err) {
				s.finish(err)
				return
			}
			if errors.Is(err, snapi.ErrAuth) {
				authFailures++
				if authFailures > 2 {
					s.finish(fmt.Errorf("client: reattach: %w", err))
					return
				}
			}
			s.c.log.Warn("reattaching failed; retrying", "attempt", attempt, "err", err)
		}
		s.c.log.Info("reattached", "supernode", url)
		s.emit(Event{Event: "online", Info: &Info{User: s.user, Supernode: url}})
		s.announce()
		s.im.checkMailbox()
		s.afterReattach(oldICE)
	}
}

// firstAttach is the session's first attach (Online). When it fails only
// because supernodes shed load (at least one refused with a Retry-After, the
// others were unreachable or busy too), it waits as a reattach does, the
// longer of the jittered backoff and the Retry-After plus up to half of it,
// and tries again, until it attaches, ctx ends or busyPatience has passed.
// Any other failure is returned at once.
func (s *Session) firstAttach(ctx context.Context) (*snapi.Conn, string, error) {
	giveUp := time.Now().Add(busyPatience)
	for attempt := 0; ; attempt++ {
		conn, url, err := s.attach(ctx, false)
		if _, busy := snapi.RetryAfter(err); err == nil || !busy || ctx.Err() != nil {
			return conn, url, err
		}
		d := reconnectDelay(attempt, err, s.rand())
		if time.Now().Add(d).After(giveUp) {
			return nil, "", err
		}
		s.c.log.Info("every supernode busy or unreachable; waiting before attaching", "attempt", attempt+1, "wait", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, "", errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}

// fatal reports whether err means the session cannot come back by itself: the
// home has no credential it can renew.
func fatal(err error) bool {
	return errors.Is(err, ErrNoUser) || errors.Is(err, ErrNeedPassword) || errors.Is(err, ErrLoginKeyChange) || errors.Is(err, ErrHomeCorrupt)
}

// finish ends the session for good with err (nil: closed).
func (s *Session) finish(err error) {
	s.doneOnce.Do(func() {
		s.err = err
		if err != nil {
			s.c.log.Error("session ended", "err", err)
		}
		close(s.done)
	})
}

func (s *Session) exclude(url string, until time.Time) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	s.excluded[url] = until
}

func (s *Session) rand() *rand.Rand {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	return s.rng
}

// attach chooses a supernode and attaches to it, trying the candidates in
// order. forceRenew renews the credential first (after a refused one).
func (s *Session) attach(ctx context.Context, forceRenew bool) (*snapi.Conn, string, error) {
	token, _, err := s.c.credential(ctx, forceRenew)
	if err != nil {
		return nil, "", err
	}
	order, listErr := s.candidates(ctx)
	if len(order) == 0 {
		if listErr != nil {
			return nil, "", fmt.Errorf("%w: %w", ErrNoSupernode, listErr)
		}
		return nil, "", noneListed{s.c.state().LoginURL}
	}
	var errs []error
	allAuth := true
	for _, u := range order {
		dctx, cancel := context.WithTimeout(ctx, dialTimeout)
		start := time.Now()
		s.connMu.Lock()
		replaces := ""
		if u == s.lostURL {
			// Back at the supernode the connection was lost to: it may
			// not have noticed yet (a network change leaves the old
			// connection half-open), and would hand the old session
			// what is meant for this one.
			replaces = s.lostID
		}
		s.connMu.Unlock()
		conn, err := snapi.Dial(dctx, snapi.DialConfig{
			URL: u, Credential: token, Key: s.c.key, Logger: s.c.log, Deliver: s.deliver, Replaces: replaces,
		})
		cancel()
		if err == nil {
			now := s.c.now()
			s.c.hosts.success(u, 0, now)
			s.c.hosts.merge(conn.Supernodes(), now)
			if err := s.c.hosts.save(now); err != nil {
				s.c.log.Warn("saving the host cache", "err", err)
			}
			s.c.log.Debug("attached", "supernode", u, "took", time.Since(start))
			return conn, u, nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		if wait, busy := snapi.RetryAfter(err); busy {
			// Shedding load: not dead, but not to be asked again before
			// it said; the others are tried first meanwhile.
			s.c.log.Info("supernode busy", "addr", u, "retry_after", wait)
			s.exclude(u, time.Now().Add(wait))
			allAuth = false
			errs = append(errs, err)
			continue
		}
		s.c.log.Warn("supernode unreachable", "addr", u, "err", err)
		s.c.hosts.failure(u)
		allAuth = allAuth && errors.Is(err, snapi.ErrAuth)
		errs = append(errs, err)
	}
	if err := s.c.hosts.save(s.c.now()); err != nil {
		s.c.log.Warn("saving the host cache", "err", err)
	}
	if allAuth {
		return nil, "", errors.Join(errs...)
	}
	return nil, "", fmt.Errorf("%w: %w", ErrNoSupernode, errors.Join(errs...))
}

// noneListed is ErrNoSupernodeListed (and ErrNoSupernode) at a login server.
type noneListed struct{ loginURL string }

func (e noneListed) Error() string   { return ErrNoSupernodeListed.Error() + " at " + e.loginURL }
func (e noneListed) Unwrap() []error { return []error{ErrNoSupernodeListed, ErrNoSupernode} }

// candidates returns the supernodes to try, in order: Prefer, then the
// choice described in hostcache.go; listErr says why the login server did
// not list any.
func (s *Session) candidates(ctx context.Context) (order []string, listErr error) {
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	list, listErr := s.c.supernodes(lctx)
	cancel()
	now := s.c.now()
	var listed []string
	for _, sn := range list {
		listed = append(listed, sn.Addr)
	}
	s.connMu.Lock()
	others := append([]string(nil), s.others...)
	excluded := map[string]bool{}
	wall := time.Now()
	for u, until := range s.excluded {
		if wall.Before(until) {
			excluded[u] = true
		} else {
			delete(s.excluded, u)
		}
	}
	s.connMu.Unlock()
	s.c.hosts.merge(listed, now)
	s.c.hosts.merge(others, now)
	cache := s.c.hosts.snapshot()

	seen := map[string]bool{}
	var all []string
	add := func(u string) {
		if validWSURL(u) && !seen[u] {
			seen[u] = true
			all = append(all, u)
		}
	}
	for _, u := range listed {
		add(u)
	}
	for _, u := range others {
		add(u)
	}
	for u := range cache {
		add(u)
	}
	prefer := s.cfg.Prefer
	var rest []string
	for _, u := range all {
		if u != prefer {
			rest = append(rest, u)
		}
	}
	var toMeasure []string
	for _, u := range rest {
		if !excluded[u] {
			toMeasure = append(toMeasure, u)
		}
	}
	rtts, failed := map[string]time.Duration{}, map[string]bool{}
	if len(toMeasure) > 1 {
		picked := pickToMeasure(toMeasure, cache, now, s.rand())
		rtts, failed = measureAll(ctx, s.c.health, picked)
		for u, rtt := range rtts {
			s.c.hosts.measured(u, rtt)
		}
		s.c.log.Debug("measured supernodes", "rtts", rtts, "failed", len(failed))
	}
	order = orderCandidates(rest, rtts, failed, excluded, cache)
	if prefer != "" {
		if excluded[prefer] {
			order = append(order, prefer)
		} else {
			order = append([]string{prefer}, order...)
		}
	}
	return order, listErr
}

// afterReattach restarts ICE for the calls relayed through a relay the old
// supernode offered: that relay may have died with it. (A relayed candidate's
// address is on the relay's host, so the host names the relay.) A caller also
// restarts every call not on a direct path.
func (s *Session) afterReattach(oldICE []snapi.ICEServer) {
	hosts := map[string]bool{}
	for _, urls := range relaysOf(oldICE) {
		for _, u := range urls {
			hosts[u.Host] = true
		}
	}
	s.mu.Lock()
	calls := make([]*Call, 0, len(s.calls))
	for _, c := range s.calls {
		calls = append(calls, c)
	}
	s.mu.Unlock()
	for _, c := range calls {
		switch {
		case !c.isStarted():
		case hosts[c.localRelayHost()]:
			c.requestRestart(restartRequest{why: "the supernode offering its relay went away"})
		case !c.Outgoing && c.pathDown():
			// Back while the call's path is down: a re-offer sent meanwhile
			// may have gone to the lost connection (a network change leaves
			// it half-open). Tell the caller at once.
			c.goOwned(func() {
				ctx, cancel := context.WithTimeout(c.ctx, signalRetryFor)
				defer cancel()
				if err := s.sendSignal(ctx, &signal.Signal{Kind: signal.KindRestart, CallID: c.ID, To: c.Peer, Reason: restartReattached}); err != nil && c.ctx.Err() == nil {
					s.c.log.Warn("asking for an ICE restart after reattaching", "call", c.ID, "err", err)
				}
			})
		case c.Outgoing && c.path.Load() != "direct":
			// The relay may be the peer's, whose supernode may have died in
			// the same failure: its request to restart could reach only the
			// user's other devices while this one was reattaching.
			c.requestRestart(restartRequest{why: "reattached while the call is relayed"})
		}
	}
}
