package login

import (
	"context"
	"time"
)

// store is what the server needs from its database. sqlStore implements it on
// SQLite and on PostgreSQL (several login servers sharing one database). Times are passed in from the
// server's clock so that the store never reads a clock itself.
type store interface {
	// createUser adds an account; ErrUserExists if the name is taken.
	createUser(ctx context.Context, name, passHash string, created time.Time) error
	// passwordHash returns the stored PHC hash; ErrUnknownUser if none.
	passwordHash(ctx context.Context, name string) (string, error)
	// userExists reports whether the account exists.
	userExists(ctx context.Context, name string) (bool, error)
	// replacePasswordHash swaps oldHash for newHash (compare-and-swap: if the
	// stored hash is no longer oldHash it returns ErrWrongPassword) and, if
	// revoke, deletes every refresh token of the user in the same transaction.
	replacePasswordHash(ctx context.Context, name, oldHash, newHash string, revoke bool) error
	// addRefresh stores a refresh token hash for user, keeping only the
	// newest keep tokens of that user.
	addRefresh(ctx context.Context, tokenHash []byte, user string, expires time.Time, keep int) error
	// useRefresh checks that tokenHash belongs to user and has not expired at
	// now, and moves its expiry to newExpires; ErrInvalidRefresh otherwise.
	useRefresh(ctx context.Context, tokenHash []byte, user string, now, newExpires time.Time) error
	// heartbeat records that addr was heard from at now. Entries last heard
	// at or before cutoff are stale. When addr is not already live and limit
	// live entries exist it returns ErrSupernodeListFull.
	heartbeat(ctx context.Context, addr string, now, cutoff time.Time, limit int) error
	// supernodes lists entries heard from after cutoff, freshest first.
	supernodes(ctx context.Context, cutoff time.Time, limit int) ([]SupernodeInfo, error)
	// prune deletes refresh tokens expired at now and supernodes last heard
	// at or before cutoff.
	prune(ctx context.Context, now, cutoff time.Time) error
	// close releases the database.
	close() error
}
