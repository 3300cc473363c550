package client

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"time"

	"github.com/parley/parley/wire/loginapi"
	"github.com/parley/parley/wire/snapi"
)

// What a part built on a session (self-promotion, package promote; a bot)
// may use of it. Parts that start servers live outside this package, so that
// a client links no server code.

// Go runs f in a goroutine owned by the session: ctx ends when the session
// closes, and Close waits for f to return.
func (s *Session) Go(f func(ctx context.Context)) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f(s.ctx)
	}()
}

// WaitConn returns the current supernode connection, waiting for one while
// the session reconnects.
func (s *Session) WaitConn(ctx context.Context) (*snapi.Conn, error) { return s.waitConn(ctx) }

// Exclude keeps the session from attaching to the supernode at url until
// until (a promoted client must never attach to itself).
func (s *Session) Exclude(url string, until time.Time) { s.exclude(url, until) }

// Emit reports e to the session's OnEvent.
func (s *Session) Emit(e Event) { s.emit(e) }

// LoginClient returns a client of the home's login server.
func (s *Session) LoginClient() (*loginapi.Client, error) { return s.c.loginClient() }

// LoginKey returns the login server's pinned public key.
func (s *Session) LoginKey() ed25519.PublicKey { return s.c.loginKey() }

// HomeDir returns the directory of the session's home.
func (s *Session) HomeDir() string { return s.c.home.dir }

// Logger returns the session's logger.
func (s *Session) Logger() *slog.Logger { return s.c.log }
