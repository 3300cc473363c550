package client

import (
	"context"
	"fmt"

	"github.com/parley/parley/wire/snapi"
)

// Lookup asks the supernode mesh where user is online: how many devices, on
// which supernodes, and how many overlay hops the lookup took. An offline
// user is not an error (Devices is 0).
func (s *Session) Lookup(ctx context.Context, user string) (snapi.Found, error) {
	conn, err := s.waitConn(ctx)
	if err != nil {
		return snapi.Found{}, fmt.Errorf("client: lookup %s: %w", user, err)
	}
	f, err := conn.Lookup(ctx, user)
	if err != nil {
		return f, fmt.Errorf("client: lookup %s: %w", user, err)
	}
	return f, nil
}
