package supernode

import (
	"context"
	"time"

	"github.com/parley/parley/internal/nodeid"
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

func (s *Server) heartbeat() {
	defer close(s.hbDone)
	listed := false
	retry := 500 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(s.hbCtx, 5*time.Second)
		_, err := s.cfg.Login.Heartbeat(ctx, s.cfg.Advertise, s.cfg.NodeKey)
		cancel()
		wait := s.cfg.HeartbeatInterval
		switch {
		case err != nil && s.hbCtx.Err() == nil:
			// The first heartbeat may race the HTTP server's start (the login
			// server dials back): retry soon, backing off to the interval.
			s.log.Warn("heartbeat to login server failed", "err", err)
			listed = false
			wait = min(retry, wait)
			retry *= 2
		case err == nil && !listed:
			s.log.Info("listed by the login server", "advertise", s.cfg.Advertise)
			listed = true
			retry = 500 * time.Millisecond
		}
		select {
		case <-s.hbCtx.Done():
			return
		case <-time.After(wait):
		}
	}
}
