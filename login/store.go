package login

import (
	"context"
	"crypto/ed25519"
	"errors"
	"time"
)

// errNeedDialBack: the heartbeat's (addr, key) has no dial-back within
// Config.DialBackInterval; the server must dial back before listing it.
var errNeedDialBack = errors.New("dial-back needed")

// heartbeat is a checked, signed heartbeat as the store records it. Times come
// from the server's clock.
type heartbeat struct {
	addr           string // canonical
	key            ed25519.PublicKey
	ts             int64     // signed time, Unix seconds
	now            time.Time // last_seen (and verified_at when verified)
	cutoff         time.Time // entries last seen at or before are stale
	verifiedCutoff time.Time // dial-backs at or before are too old
	verified       bool      // a dial-back just proved key at addr
}

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
	// heartbeat records a signed heartbeat (see [heartbeat]), in this order:
	// when hb.addr is not live and limit live entries exist,
	// ErrSupernodeListFull; when the entry holds hb.key and a later ts,
	// ErrReplayed. Then, if hb.verified (a dial-back just proved that addr
	// answers with key), the entry is stored with key, ts and last_seen =
	// verified_at = now, replacing another key. Otherwise the entry must
	// already hold key, verified after hb.verifiedCutoff: its last_seen and
	// ts are refreshed; if not, errNeedDialBack and nothing changes.
	heartbeat(ctx context.Context, hb heartbeat, limit int) error
	// leave deletes addr's entry if it holds key and no later ts and reports
	// whether there was one: ErrKeyMismatch if it holds another key,
	// ErrReplayed if a later ts; (false, nil) if there is no entry.
	leave(ctx context.Context, addr string, key []byte, ts int64) (bool, error)
	// supernodes lists entries heard from after cutoff, freshest first.
	supernodes(ctx context.Context, cutoff time.Time, limit int) ([]SupernodeInfo, error)
	// prune deletes refresh tokens expired at now and supernodes last heard
	// at or before cutoff.
	prune(ctx context.Context, now, cutoff time.Time) error
	// close releases the database.
	close() error
}
