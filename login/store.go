package login

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/parley/parley/wire/loginapi"
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
	// addRefresh stores a refresh token hash for user (after a password
	// login), bound to the device key, keeping only the newest keep tokens
	// of that user. A password login proves the user: if key was a removed
	// device's, its revocation and the tokens it held are deleted, and
	// addRefresh reports it (reinstated).
	addRefresh(ctx context.Context, tokenHash []byte, user string, key []byte, now, expires time.Time, keep int) (reinstated bool, err error)
	// useRefresh checks that tokenHash belongs to user and has not expired at
	// now, then that neither key nor the key the token is bound to is a
	// removed device's (ErrDeviceRemoved), and moves its expiry to
	// newExpires, binding it to key; ErrInvalidRefresh when the token is
	// not valid.
	useRefresh(ctx context.Context, tokenHash []byte, user string, key []byte, now, newExpires time.Time) error
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
	supernodes(ctx context.Context, cutoff time.Time, limit int) ([]loginapi.SupernodeInfo, error)
	// prune deletes refresh tokens expired at now, supernodes last heard
	// at or before cutoff and device revocations made at or before
	// revokedCutoff.
	prune(ctx context.Context, now, cutoff, revokedCutoff time.Time) error
	// pruneMailbox deletes mailbox items created at or before cutoff and
	// returns how many.
	pruneMailbox(ctx context.Context, cutoff time.Time) (int64, error)
	// mailboxTotals returns the items waiting in all mailboxes and their
	// bytes (metrics).
	mailboxTotals(ctx context.Context) (items, bytes int64, err error)
	// ping checks that the database answers (/healthz).
	ping(ctx context.Context) error

	// putDevice stores (or replaces) d for d.user with last_seen now (and
	// registered now when new). When the user would have more than
	// maxDevices, the least recently seen others are dropped with their
	// mailboxes; it returns how many. ErrUnknownUser if the user has no
	// account, ErrDeviceRemoved if d.key is a removed device's.
	putDevice(ctx context.Context, d deviceRow, now time.Time, maxDevices int) (int, error)
	// myDevices lists user's devices: the registered ones and the keys
	// of live refresh tokens (not revoked), most recently seen first.
	// Self is left false.
	myDevices(ctx context.Context, user string, now time.Time) ([]loginapi.MyDevice, error)
	// removeDevice drops user's device key (its registration and
	// mailbox) and revokes it (see revoked); false, and nothing changes,
	// when user has no such device: neither registered nor holding a
	// live refresh token that is not already revoked.
	removeDevice(ctx context.Context, user string, key []byte, now time.Time) (bool, error)
	// revoked reports whether key is a removed device of user's.
	revoked(ctx context.Context, user string, key []byte) (bool, error)
	// deleteDevice drops a device and its mailbox; false if it was not
	// registered.
	deleteDevice(ctx context.Context, user string, key []byte) (bool, error)
	// devices lists user's devices, most recently seen first.
	devices(ctx context.Context, user string) ([]loginapi.Device, error)
	// postMailbox stores items from (user, device) in one transaction or
	// none: a *mailError names the first refused item. It returns the
	// numbers of items stored and already present.
	postMailbox(ctx context.Context, from string, fromDevice []byte, items []mailItem, now time.Time, quota int) (stored, dups int, err error)
	// mailbox returns up to limit of the device's items, oldest first, with
	// at most maxBytes of blobs (but at least one), whether more wait, and
	// marks the device seen at now.
	mailbox(ctx context.Context, user string, device []byte, limit, maxBytes int, now time.Time) ([]loginapi.MailboxEntry, bool, error)
	// ackMailbox deletes the device's items with these seqs and returns how
	// many there were.
	ackMailbox(ctx context.Context, user string, device []byte, seqs []int64) (int, error)

	// contacts lists user's contacts by name, with the stored status of
	// accepted ones (invisible reported as offline).
	contacts(ctx context.Context, user string) ([]loginapi.Contact, error)
	// contactState returns user's state towards peer, ContactNone if none.
	contactState(ctx context.Context, user, peer string) (string, error)
	// passAdmits reports whether p, a verified pass, admits its holder to
	// user: p names user, p.By is an accepted contact of user and p.Device
	// is a registered device of p.By.
	passAdmits(ctx context.Context, user string, p loginapi.Pass) (bool, error)
	// requestContact asks peer (accepting if peer asked user) and returns
	// the new state. A new request must pass allow (rate limit) and both
	// sides must have fewer than maxContacts entries (ErrQuota wrapped with
	// whose list is full). ErrUnknownUser if peer has no account.
	requestContact(ctx context.Context, user, peer string, now time.Time, maxContacts int, allow func() error) (string, error)
	// acceptContact accepts peer's pending request (idempotent when already
	// accepted); ErrNoRequest otherwise, ErrUnknownUser if no peer.
	acceptContact(ctx context.Context, user, peer string, now time.Time) (string, error)
	// declineContact removes the relation on both sides and returns the
	// state it had (ContactNone if none); ErrUnknownUser if no peer.
	declineContact(ctx context.Context, user, peer string) (string, error)
	// setStatus stores user's status; status returns it.
	setStatus(ctx context.Context, user, status string) error
	status(ctx context.Context, user string) (string, error)
	// searchUsers lists up to limit user names starting with prefix, in
	// byte order.
	searchUsers(ctx context.Context, prefix string, limit int) ([]string, error)

	// createFile stores a new file (see [fileCreate]) and reports it
	// (created true), or returns the caller's file of that id and size
	// unchanged (created false). Refusals, in this order:
	// *recipientError (a recipient has no account); ErrFileExists wrapped
	// with why (another owner's id, or the owner's with another size);
	// ErrQuota wrapped with the numbers when the owner's stored files and
	// this one would pass f.quota. ErrUnauthorized if the owner has no
	// account.
	createFile(ctx context.Context, f fileCreate) (file storedFile, created bool, err error)
	// putChunk stores (or replaces) sealed chunk index of owner's file id:
	// ErrUnknownFile when owner has no such file, a *chunkError when index
	// is out of range or data is not that chunk's sealed length.
	putChunk(ctx context.Context, owner, id string, index int64, data []byte) error
	// storedFile returns file id with its chunk count for its owner or a
	// recipient with a claim; ErrUnknownFile for anyone else.
	storedFile(ctx context.Context, user, id string) (storedFile, error)
	// chunk returns sealed chunk index of file id, for those storedFile
	// answers: ErrUnknownFile, *chunkError (index out of range) or
	// ErrNoChunk (not uploaded).
	chunk(ctx context.Context, user, id string, index int64) ([]byte, error)
	// deleteFile deletes file id with its chunks when user owns it, or
	// marks user's claim as a recipient taken at now (the first time; the
	// claim, and the file, stay for the user's other devices until
	// pruneFiles); ErrUnknownFile when user is neither.
	deleteFile(ctx context.Context, user, id string, now time.Time) (fileDeletion, error)
	// pruneFiles deletes the files created at or before cutoff, and those
	// whose every claim was taken at or before fetchedCutoff, and returns
	// how many and their bytes.
	pruneFiles(ctx context.Context, cutoff, fetchedCutoff time.Time) (files, bytes int64, err error)

	// close releases the database.
	close() error
}

// deviceRow is a checked device registration.
type deviceRow struct {
	user   string
	key    []byte // Ed25519, from the credential
	x25519 []byte
	sig    []byte
}

// mailItem is a checked mailbox item; blob is compact JSON; pass, if not
// nil, has been verified (loginapi.Pass.Verify).
type mailItem struct {
	toUser   string
	toDevice []byte
	id       string
	blob     []byte
	pass     *loginapi.Pass
}

// mailError names the first refused item of a mailbox post: err is
// ErrUnknownUser, ErrNotContact (not a contact, and no pass of the item
// admits the sender), ErrUnknownDevice or ErrQuota.
type mailError struct {
	index int
	err   error
}

func (e *mailError) Error() string { return fmt.Sprintf("item %d: %v", e.index, e.err) }
func (e *mailError) Unwrap() error { return e.err }
