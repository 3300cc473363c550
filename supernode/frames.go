package supernode

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"

	"github.com/coder/websocket"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/snapi"
)

func (s *Server) readLoop(ctx context.Context, c *conn, remote string) error {
	nonce := make([]byte, 32)
	rand.Read(nonce)
	s.send(c, snapi.Frame{Type: snapi.TypeChallenge, Nonce: nonce, Server: s.cfg.Name})

	actx, cancel := context.WithTimeout(ctx, s.cfg.AttachTimeout)
	f, err := s.readFrame(actx, c)
	cancel()
	if err != nil {
		return err
	}
	s.m.frameIn(f.Type)
	if f.Type != snapi.TypeAttach {
		s.sendError(c, "", snapi.CodeBadRequest, "expected attach")
		return fmt.Errorf("supernode: attach: got %q: %w", f.Type, snapi.ErrBadFrame)
	}
	cred, err := s.checkCredential(f.Credential)
	if err != nil {
		s.m.refused(refuseCredential)
		s.sendError(c, "", snapi.CodeAuth, err.Error())
		return err
	}
	if !identity.VerifyContext(cred.Key(), snapi.AttachContext, snapi.AttachMessage(nonce, s.cfg.Name), f.Sig) {
		s.m.refused(refuseCredential)
		s.sendError(c, "", snapi.CodeAuth, "attach signature does not match the credential's key")
		return fmt.Errorf("supernode: attach %q: signature: %w", cred.User, snapi.ErrAuth)
	}
	c.user, c.key = cred.User, cred.Key()
	c.expires.Store(cred.Expires)
	c.session = newSessionID()
	if f.Session != "" {
		s.replace(c, f.Session)
	}
	if err := s.attach(c); err != nil {
		s.m.refused(refuseUserSessions)
		s.log.Warn("refused a session: too many for this user", "user", c.user, "remote", remote, "max", s.cfg.MaxSessionsPerUser)
		s.sendError(c, "", snapi.CodeLimit, fmt.Sprintf("too many sessions for this user (%d); close one or try another supernode", s.cfg.MaxSessionsPerUser))
		return err
	}
	c.attached = true
	s.mesh.publishNow(ctx, c.user)
	s.log.Info("attached", "user", c.user, "session", c.session, "remote", remote)
	s.send(c, snapi.Frame{Type: snapi.TypeAttached, User: c.user, Session: c.session, ICEServers: s.iceServers(c.user),
		Supernodes: s.mesh.liveURLs(snapi.MaxSupernodesListed), Observed: remote})

	for {
		f, err := s.readFrame(ctx, c)
		if err != nil {
			return err
		}
		s.m.frameIn(f.Type)
		switch _, queued := requestHandlers[f.Type]; {
		case f.Type == snapi.TypeRenew:
			cred, err := s.checkCredential(f.Credential)
			if err == nil && (cred.User != c.user || !cred.Key().Equal(c.key)) {
				err = fmt.Errorf("supernode: renew: credential for another user or key: %w", snapi.ErrAuth)
			}
			if err != nil {
				s.m.refused(refuseCredential)
				s.sendError(c, "", snapi.CodeAuth, err.Error())
				return err
			}
			c.expires.Store(cred.Expires)
			s.send(c, snapi.Frame{Type: snapi.TypeAttached, User: c.user, Session: c.session, ICEServers: s.iceServers(c.user)})
		case queued:
			if !c.sends.Allow() {
				// A sender over its rate is told so; it cannot fill a
				// recipient's queue and get them disconnected.
				s.m.refused(refuseSendRate)
				s.sendError(c, f.ID, snapi.CodeOverload, "sending too fast; slow down")
				continue
			}
			select {
			case c.reqs <- &f:
			default:
				s.m.refused(refuseInFlight)
				s.sendError(c, f.ID, snapi.CodeOverload, "too many requests in flight; slow down")
			}
		default:
			s.sendError(c, f.ID, snapi.CodeBadRequest, "unknown frame type "+truncate(f.Type, 32))
			return fmt.Errorf("supernode: read: type %q: %w", truncate(f.Type, 32), snapi.ErrBadFrame)
		}
	}
}

func (s *Server) readFrame(ctx context.Context, c *conn) (snapi.Frame, error) {
	typ, b, err := c.ws.Read(ctx)
	if err == nil {
		c.lastRead.Store(s.now().UnixNano())
	}
	if err != nil {
		if websocket.CloseStatus(err) != -1 {
			return snapi.Frame{}, io.EOF
		}
		return snapi.Frame{}, fmt.Errorf("supernode: read: %w", err)
	}
	if typ != websocket.MessageText {
		s.sendError(c, "", snapi.CodeBadRequest, "binary frames are not part of the protocol")
		return snapi.Frame{}, fmt.Errorf("supernode: read: binary: %w", snapi.ErrBadFrame)
	}
	f, err := snapi.DecodeFrame(b)
	if err != nil {
		s.sendError(c, "", snapi.CodeBadRequest, err.Error())
		return snapi.Frame{}, err
	}
	return f, nil
}

// requestQueue bounds one connection's sends, lookups and dial-backs waiting
// to be served.
const requestQueue = 64

// requestHandlers serves the frames a connection queues for serveRequests
// (rate-limited, in order), by type: readLoop queues exactly these.
var requestHandlers = map[string]func(s *Server, ctx context.Context, c *conn, f snapi.Frame){
	snapi.TypeSend:     (*Server).route,
	snapi.TypeLookup:   (*Server).lookup,
	snapi.TypeDialback: func(s *Server, ctx context.Context, c *conn, f snapi.Frame) { s.send(c, s.dialback(ctx, c, f)) },
	snapi.TypePresence: (*Server).setPresence,
}

// serveRequests serves one connection's requests in order, so a client's
// signals reach their recipient in the order it sent them.
func (s *Server) serveRequests(ctx context.Context, c *conn) {
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-c.reqs:
			if h := requestHandlers[f.Type]; h != nil {
				h(s, ctx, c, *f)
			}
		}
	}
}
