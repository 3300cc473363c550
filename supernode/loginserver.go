package supernode

import (
	"context"
	"errors"
	"time"

	"github.com/parley/parley/internal/backoff"
	"github.com/parley/parley/internal/nodeid"
	"github.com/parley/parley/wire/loginapi"
)

// listLoop reads the login server's supernode list for members to join.
func (s *Server) listLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.ListInterval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
		list, err := s.cfg.Login.Supernodes(ctx)
		cancel()
		if err != nil && s.ctx.Err() == nil {
			s.log.Debug("reading the supernode list", "err", err)
		}
		for _, sn := range list {
			if name, _, err := nodeid.HostPort(sn.Addr); err == nil {
				s.mesh.learn(Member{Name: name, URL: sn.Addr, Key: sn.Key}, false)
			}
		}
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// maxRetryAfter caps how long a login server's Retry-After may hold the
// heartbeat back.
const maxRetryAfter = 5 * time.Minute

// heartbeatRetry is the backoff after failed heartbeats: the first retry
// after a second (the first heartbeat may race the HTTP server's start, and
// the login server dials back), then full jitter between a second and the
// heartbeat interval, however long the login server stays down.
func heartbeatRetry(interval time.Duration) backoff.Policy {
	return backoff.Policy{Floor: min(time.Second, interval), Base: time.Second, Cap: interval}
}

func (s *Server) heartbeat() {
	defer close(s.hbDone)
	listed := false
	retry := backoff.New(heartbeatRetry(s.cfg.HeartbeatInterval))
	for {
		ctx, cancel := context.WithTimeout(s.hbCtx, 5*time.Second)
		_, err := s.cfg.Login.Heartbeat(ctx, s.cfg.Advertise, s.cfg.NodeKey)
		cancel()
		wait := s.cfg.HeartbeatInterval
		switch {
		case err != nil && s.hbCtx.Err() == nil:
			s.setLoginState(err)
			s.log.Warn("heartbeat to login server failed", "err", err)
			listed = false
			wait = retry.Next()
			var ae *loginapi.APIError
			if errors.As(err, &ae) && ae.RetryAfter > 0 {
				wait = max(wait, min(ae.RetryAfter, maxRetryAfter))
			}
		case err == nil:
			s.setLoginState(nil)
			retry.Reset()
			if !listed {
				s.log.Info("listed by the login server", "advertise", s.cfg.Advertise)
				listed = true
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-s.hbCtx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
