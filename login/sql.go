package login

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/parley/parley/wire/loginapi"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

// migrations returns the schema steps; step i (from 1) takes the schema from
// version i-1 to i, and schema_version holds the last step applied. Never
// edit a released step: append a new one.
func migrations() [][]string {
	return [][]string{
		1: {
			`CREATE TABLE users (
			name       TEXT PRIMARY KEY,
			pass_hash  TEXT NOT NULL,
			created_at INTEGER NOT NULL
		)`,
			`CREATE TABLE refresh_tokens (
			token_hash BLOB PRIMARY KEY,
			user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
			expires_at INTEGER NOT NULL
		)`,
			`CREATE INDEX refresh_tokens_user ON refresh_tokens(user_name)`,
			`CREATE INDEX refresh_tokens_expires ON refresh_tokens(expires_at)`,
			`CREATE TABLE supernodes (
			addr      TEXT PRIMARY KEY,
			last_seen INTEGER NOT NULL
		)`,
			`CREATE INDEX supernodes_last_seen ON supernodes(last_seen)`,
		},
		2: {
			// Entries are listed only after a dial-back proved their node
			// key. Entries from before were never checked: drop them (live
			// supernodes are back, verified, at their next heartbeat).
			`DELETE FROM supernodes`,
			// node_key: the Ed25519 public key the last dial-back proved.
			`ALTER TABLE supernodes ADD COLUMN node_key BLOB NOT NULL DEFAULT ''`,
			// hb_ts: the signed ts (Unix seconds) of the last accepted heartbeat.
			`ALTER TABLE supernodes ADD COLUMN hb_ts INTEGER NOT NULL DEFAULT 0`,
			// verified_at: the last successful dial-back, Unix nanoseconds;
			// 0 never (a row written by an older server during an upgrade).
			`ALTER TABLE supernodes ADD COLUMN verified_at INTEGER NOT NULL DEFAULT 0`,
		},
		3: {
			// status: what the user set with PUT /api/v1/status.
			`ALTER TABLE users ADD COLUMN status TEXT NOT NULL DEFAULT 'online'`,
			// devices: one row per device key (the Ed25519 key of its
			// credential) with its signed X25519 key. Times Unix seconds.
			`CREATE TABLE devices (
			user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
			ed_key    BLOB NOT NULL,
			x25519    BLOB NOT NULL,
			sig       BLOB NOT NULL,
			last_seen INTEGER NOT NULL,
			PRIMARY KEY (user_name, ed_key)
		)`,
			// mailbox: opaque blobs per recipient device, oldest first by
			// seq. A sender's (recipient device, id) is stored once.
			`CREATE TABLE mailbox (
			seq         AUTOSEQ,
			to_user     TEXT NOT NULL,
			to_device   BLOB NOT NULL,
			from_user   TEXT NOT NULL,
			from_device BLOB NOT NULL,
			msg_id      TEXT NOT NULL,
			blob        BLOB NOT NULL,
			size        INTEGER NOT NULL,
			created     INTEGER NOT NULL,
			UNIQUE (to_user, to_device, from_user, msg_id)
		)`,
			`CREATE INDEX mailbox_device ON mailbox(to_user, to_device, seq)`,
			`CREATE INDEX mailbox_created ON mailbox(created)`,
			// contacts: two rows per relation, one from each side, with
			// state accepted, requested (user_name asked peer) or pending
			// (peer asked user_name).
			`CREATE TABLE contacts (
			user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
			peer      TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
			state     TEXT NOT NULL,
			since     INTEGER NOT NULL,
			PRIMARY KEY (user_name, peer)
		)`,
			`CREATE INDEX contacts_peer ON contacts(peer)`,
		},
		4: {
			// registered: when the device first registered its X25519 key,
			// Unix seconds (rows from before: their last_seen).
			`ALTER TABLE devices ADD COLUMN registered INTEGER NOT NULL DEFAULT 0`,
			`UPDATE devices SET registered = last_seen`,
			// ed_key: the device key a refresh token was last used with
			// (its login's, then each refresh's); '' for tokens from
			// before, bound at their next refresh. issued_at and used_at:
			// its login and last use, Unix seconds (0 before).
			`ALTER TABLE refresh_tokens ADD COLUMN ed_key BLOB NOT NULL DEFAULT ''`,
			`ALTER TABLE refresh_tokens ADD COLUMN issued_at INTEGER NOT NULL DEFAULT 0`,
			`ALTER TABLE refresh_tokens ADD COLUMN used_at INTEGER NOT NULL DEFAULT 0`,
			`CREATE INDEX refresh_tokens_key ON refresh_tokens(user_name, ed_key)`,
			// revoked_devices: device keys removed with DELETE
			// /api/v1/devices/{key}, refused until a password login with
			// the key deletes the row (or the janitor, once every token
			// and credential the device held has expired).
			`CREATE TABLE revoked_devices (
			user_name  TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
			ed_key     BLOB NOT NULL,
			revoked_at INTEGER NOT NULL,
			PRIMARY KEY (user_name, ed_key)
		)`,
			`CREATE INDEX revoked_devices_at ON revoked_devices(revoked_at)`,
		},
		5: {
			// The file store (POST /api/v1/files): stored_files are the
			// files, with their owner, plaintext size and creation (Unix
			// seconds; the janitor deletes them FileStoreTTL later);
			// stored_file_recipients the users who may fetch one (a
			// recipient's delete removes their row, the last one's the
			// file); stored_chunks the sealed chunks, opaque ciphertext,
			// size their length. Children go with their file.
			`CREATE TABLE stored_files (
			id      TEXT PRIMARY KEY,
			owner   TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
			size    INTEGER NOT NULL,
			created INTEGER NOT NULL
		)`,
			`CREATE INDEX stored_files_owner ON stored_files(owner)`,
			`CREATE INDEX stored_files_created ON stored_files(created)`,
			`CREATE TABLE stored_file_recipients (
			file_id   TEXT NOT NULL REFERENCES stored_files(id) ON DELETE CASCADE,
			user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
			PRIMARY KEY (file_id, user_name)
		)`,
			`CREATE TABLE stored_chunks (
			file_id TEXT NOT NULL REFERENCES stored_files(id) ON DELETE CASCADE,
			idx     INTEGER NOT NULL,
			data    BLOB NOT NULL,
			size    INTEGER NOT NULL,
			PRIMARY KEY (file_id, idx)
		)`,
		},
		6: {
			// fetched_at: when a device of the recipient took the file
			// (their DELETE), Unix seconds; 0 until then. A claim taken
			// stays FileFetchedGrace for the recipient's other devices;
			// the janitor deletes a file once every claim was taken that
			// long ago (or FileStoreTTL after its creation, as before).
			`ALTER TABLE stored_file_recipients ADD COLUMN fetched_at INTEGER NOT NULL DEFAULT 0`,
		},
	}
}

// sqlStore is the store on database/sql: SQLite (embedded, the default) or
// PostgreSQL (several login servers sharing one database). Queries are written
// once with '?' placeholders; q rewrites them for PostgreSQL.
type sqlStore struct {
	db *sql.DB
	pg bool
}

// q rewrites a query's '?' placeholders as $1, $2, … for PostgreSQL.
func (s *sqlStore) q(query string) string {
	if !s.pg {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// openSQLite opens (creating if needed, mode 0600) the database file at path
// and brings its schema up to date.
func openSQLite(ctx context.Context, path string) (*sqlStore, error) {
	if path == "" || strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("%w: database path %q must be non-empty and contain no '?'", ErrBadConfig, path)
	}
	// Create the file ourselves so that it is private: it holds password
	// hashes. SQLite gives the -wal and -shm files the same mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("login: store create database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("login: store create database file: %w", err)
	}
	dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("login: store open sqlite %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	s := &sqlStore{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *sqlStore) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("login: store migrate: begin: %w", err)
	}
	defer tx.Rollback()
	if s.pg {
		// Login servers sharing the database may start together: one
		// migrates, the others wait for it and then find nothing to do.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7244581)`); err != nil {
			return fmt.Errorf("login: store migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`)); err != nil {
		return fmt.Errorf("login: store migrate: create schema_version: %w", err)
	}
	var v int
	err = tx.QueryRowContext(ctx, s.q(`SELECT version FROM schema_version`)).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_version (version) VALUES (0)`)); err != nil {
			return fmt.Errorf("login: store migrate: init schema_version: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("login: store migrate: read schema_version: %w", err)
	}
	steps := migrations()
	schemaVersion := len(steps) - 1
	if v > schemaVersion {
		return fmt.Errorf("%w: version %d, this server knows %d", ErrSchemaVersion, v, schemaVersion)
	}
	for step := v + 1; step <= schemaVersion; step++ {
		for _, q := range steps[step] {
			if s.pg {
				// The same schema in PostgreSQL's types: 64-bit integers
				// (times are nanoseconds), bytea for token hashes.
				q = strings.NewReplacer("INTEGER", "BIGINT", "BLOB", "BYTEA",
					"AUTOSEQ", "BIGSERIAL PRIMARY KEY").Replace(q)
			} else {
				q = strings.ReplaceAll(q, "AUTOSEQ", "INTEGER PRIMARY KEY AUTOINCREMENT")
			}
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("migration %d: %w", step, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE schema_version SET version = ?`), schemaVersion); err != nil {
		return fmt.Errorf("login: store migrate to version %d: set schema_version: %w", schemaVersion, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("login: store migrate to version %d: commit: %w", schemaVersion, err)
	}
	return nil
}

func (s *sqlStore) createUser(ctx context.Context, name, passHash string, created time.Time) error {
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO users (name, pass_hash, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`),
		name, passHash, created.Unix())
	if err != nil {
		return fmt.Errorf("login: store create user %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("login: store create user %s: rows affected: %w", name, err)
	} else if n == 0 {
		return loginapi.ErrUserExists
	}
	return nil
}

func (s *sqlStore) passwordHash(ctx context.Context, name string) (string, error) {
	var h string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT pass_hash FROM users WHERE name = ?`), name).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", loginapi.ErrUnknownUser
	}
	if err != nil {
		return h, fmt.Errorf("login: store password hash of %s: %w", name, err)
	}
	return h, nil
}

func (s *sqlStore) userExists(ctx context.Context, name string) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT 1 FROM users WHERE name = ?`), name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("login: store user exists %s: %w", name, err)
	}
	return true, nil
}

func (s *sqlStore) replacePasswordHash(ctx context.Context, name, oldHash, newHash string, revoke bool) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("login: store replace password hash of %s: begin: %w", name, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.q(`UPDATE users SET pass_hash = ? WHERE name = ? AND pass_hash = ?`), newHash, name, oldHash)
	if err != nil {
		return fmt.Errorf("login: store replace password hash of %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("login: store replace password hash of %s: rows affected: %w", name, err)
	} else if n == 0 {
		return loginapi.ErrWrongPassword
	}
	if revoke {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM refresh_tokens WHERE user_name = ?`), name); err != nil {
			return fmt.Errorf("login: store replace password hash of %s: revoke refresh tokens: %w", name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("login: store replace password hash of %s: commit: %w", name, err)
	}
	return nil
}

func (s *sqlStore) addRefresh(ctx context.Context, tokenHash []byte, user string, key []byte, now, expires time.Time, keep int) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("login: store add refresh token for %s: begin: %w", user, err)
	}
	defer tx.Rollback()
	if s.pg {
		// SQLite's immediate transactions serialize writers; PostgreSQL's
		// read committed does not. Lock the user's row so that logins of one
		// user on several servers trim to the newest keep tokens one at a
		// time, and a device removal and a login with its key do not
		// interleave.
		if _, err := tx.ExecContext(ctx, s.q(`SELECT 1 FROM users WHERE name = ? FOR UPDATE`), user); err != nil {
			return false, fmt.Errorf("login: store add refresh token for %s: lock user: %w", user, err)
		}
	}
	// A password login proves the user: it brings a removed device back.
	res, err := tx.ExecContext(ctx, s.q(`DELETE FROM revoked_devices WHERE user_name = ? AND ed_key = ?`), user, key)
	if err != nil {
		return false, fmt.Errorf("login: store add refresh token for %s: clear revocation of %s: %w", user, shortKey(key), err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("login: store add refresh token for %s: clear revocation of %s: rows affected: %w", user, shortKey(key), err)
	}
	reinstated := n > 0
	if reinstated {
		// The tokens it held before its removal stay dead.
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM refresh_tokens WHERE user_name = ? AND ed_key = ?`), user, key); err != nil {
			return false, fmt.Errorf("login: store add refresh token for %s: drop old tokens of %s: %w", user, shortKey(key), err)
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO refresh_tokens (token_hash, user_name, expires_at, ed_key, issued_at, used_at) VALUES (?, ?, ?, ?, ?, ?)`),
		tokenHash, user, expires.Unix(), key, now.Unix(), now.Unix()); err != nil {
		return false, fmt.Errorf("login: store add refresh token for %s: %w", user, err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM refresh_tokens WHERE user_name = ? AND token_hash NOT IN (
			SELECT token_hash FROM refresh_tokens WHERE user_name = ? ORDER BY expires_at DESC LIMIT ?)`),
		user, user, keep); err != nil {
		return false, fmt.Errorf("login: store add refresh token for %s: trim to %d: %w", user, keep, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("login: store add refresh token for %s: commit: %w", user, err)
	}
	return reinstated, nil
}

func (s *sqlStore) useRefresh(ctx context.Context, tokenHash []byte, user string, key []byte, now, newExpires time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("login: store use refresh token of %s: begin: %w", user, err)
	}
	defer tx.Rollback()
	if _, err := s.lockUsers(ctx, tx, user); err != nil {
		return err
	}
	var bound []byte
	err = tx.QueryRowContext(ctx, s.q(`SELECT ed_key FROM refresh_tokens WHERE token_hash = ? AND user_name = ? AND expires_at > ?`+s.forUpdate()),
		tokenHash, user, now.Unix()).Scan(&bound)
	if errors.Is(err, sql.ErrNoRows) {
		return loginapi.ErrInvalidRefresh
	} else if err != nil {
		return fmt.Errorf("login: store use refresh token of %s: %w", user, err)
	}
	// Neither the key asked for nor the one the token is bound to may be a
	// removed device's.
	var one int
	err = tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM revoked_devices WHERE user_name = ? AND ed_key IN (?, ?)`), user, key, bound).Scan(&one)
	if err == nil {
		return loginapi.ErrDeviceRemoved
	} else if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("login: store use refresh token of %s: revocation: %w", user, err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE refresh_tokens SET expires_at = ?, ed_key = ?, used_at = ?,
			issued_at = CASE WHEN issued_at = 0 THEN ? ELSE issued_at END WHERE token_hash = ?`),
		newExpires.Unix(), key, now.Unix(), now.Unix(), tokenHash); err != nil {
		return fmt.Errorf("login: store use refresh token of %s: %w", user, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("login: store use refresh token of %s: commit: %w", user, err)
	}
	return nil
}

// lockSupernodes serializes the supernode writes of several PostgreSQL
// servers. SQLite's immediate transactions already serialize writers.
func (s *sqlStore) lockSupernodes(ctx context.Context, tx *sql.Tx) error {
	if !s.pg {
		return nil
	}
	// Count-then-insert must not interleave across servers, or two new
	// supernodes could both take the last free place; nor may a key check
	// and the write it allows. Only writers wait; listing does not.
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7244582)`); err != nil {
		return fmt.Errorf("login: store lock supernodes: %w", err)
	}
	return nil
}

// supernodeRow is a stored entry; found is false when there is none.
type supernodeRow struct {
	found      bool
	key        []byte
	lastSeen   int64 // Unix ns
	hbTS       int64 // Unix s
	verifiedAt int64 // Unix ns
}

func (s *sqlStore) supernodeRow(ctx context.Context, tx *sql.Tx, addr string) (supernodeRow, error) {
	var r supernodeRow
	err := tx.QueryRowContext(ctx, s.q(`SELECT node_key, last_seen, hb_ts, verified_at FROM supernodes WHERE addr = ?`), addr).
		Scan(&r.key, &r.lastSeen, &r.hbTS, &r.verifiedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return r, nil
	}
	if err != nil {
		return r, fmt.Errorf("login: store read supernode %s: %w", addr, err)
	}
	r.found = true
	return r, nil
}

func (s *sqlStore) heartbeat(ctx context.Context, hb heartbeat, limit int) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("login: store heartbeat of %s: begin: %w", hb.addr, err)
	}
	defer tx.Rollback()
	if err := s.lockSupernodes(ctx, tx); err != nil {
		return err
	}
	row, err := s.supernodeRow(ctx, tx, hb.addr)
	if err != nil {
		return err
	}
	if !row.found || row.lastSeen <= hb.cutoff.UnixNano() {
		var live int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM supernodes WHERE last_seen > ?`), hb.cutoff.UnixNano()).Scan(&live); err != nil {
			return fmt.Errorf("login: store heartbeat of %s: count live supernodes: %w", hb.addr, err)
		}
		if live >= limit {
			return loginapi.ErrSupernodeListFull
		}
	}
	sameKey := row.found && bytes.Equal(row.key, hb.key)
	if sameKey && hb.ts < row.hbTS {
		return fmt.Errorf("%w (%d < %d)", loginapi.ErrReplayed, hb.ts, row.hbTS)
	}
	if !hb.verified {
		if !sameKey || row.verifiedAt <= hb.verifiedCutoff.UnixNano() {
			return errNeedDialBack
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE supernodes SET last_seen = ?, hb_ts = ? WHERE addr = ?`),
			hb.now.UnixNano(), hb.ts, hb.addr); err != nil {
			return fmt.Errorf("login: store heartbeat of %s: refresh: %w", hb.addr, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("login: store heartbeat of %s: commit: %w", hb.addr, err)
		}
		return nil
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO supernodes (addr, node_key, last_seen, hb_ts, verified_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (addr) DO UPDATE SET node_key = excluded.node_key, last_seen = excluded.last_seen,
			hb_ts = excluded.hb_ts, verified_at = excluded.verified_at`),
		hb.addr, []byte(hb.key), hb.now.UnixNano(), hb.ts, hb.now.UnixNano()); err != nil {
		return fmt.Errorf("login: store heartbeat of %s: store verified entry: %w", hb.addr, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("login: store heartbeat of %s: commit: %w", hb.addr, err)
	}
	return nil
}

func (s *sqlStore) leave(ctx context.Context, addr string, key []byte, ts int64) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("login: store leave of %s: begin: %w", addr, err)
	}
	defer tx.Rollback()
	if err := s.lockSupernodes(ctx, tx); err != nil {
		return false, err
	}
	row, err := s.supernodeRow(ctx, tx, addr)
	switch {
	case err != nil:
		return false, err
	case !row.found:
		return false, nil
	case !bytes.Equal(row.key, key):
		return false, loginapi.ErrKeyMismatch
	case ts < row.hbTS:
		return false, fmt.Errorf("%w (%d < %d)", loginapi.ErrReplayed, ts, row.hbTS)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM supernodes WHERE addr = ?`), addr); err != nil {
		return false, fmt.Errorf("login: store leave of %s: delete: %w", addr, err)
	}
	if err := tx.Commit(); err != nil {
		return true, fmt.Errorf("login: store leave of %s: commit: %w", addr, err)
	}
	return true, nil
}

func (s *sqlStore) supernodes(ctx context.Context, cutoff time.Time, limit int) ([]loginapi.SupernodeInfo, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT addr, node_key, last_seen FROM supernodes
			WHERE last_seen > ? AND verified_at > 0 ORDER BY last_seen DESC, addr LIMIT ?`),
		cutoff.UnixNano(), limit)
	if err != nil {
		return nil, fmt.Errorf("login: store list supernodes: %w", err)
	}
	defer rows.Close()
	list := []loginapi.SupernodeInfo{}
	for rows.Next() {
		var sn loginapi.SupernodeInfo
		var key []byte
		var seen int64
		if err := rows.Scan(&sn.Addr, &key, &seen); err != nil {
			return nil, fmt.Errorf("login: store list supernodes: scan: %w", err)
		}
		sn.LastSeen = time.Unix(0, seen).Unix()
		sn.Key = ed25519.PublicKey(key)
		list = append(list, sn)
	}
	if err := rows.Err(); err != nil {
		return list, fmt.Errorf("login: store list supernodes: %w", err)
	}
	return list, nil
}

func (s *sqlStore) prune(ctx context.Context, now, cutoff, revokedCutoff time.Time) error {
	if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM refresh_tokens WHERE expires_at <= ?`), now.Unix()); err != nil {
		return fmt.Errorf("login: store prune expired refresh tokens: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM revoked_devices WHERE revoked_at <= ?`), revokedCutoff.Unix()); err != nil {
		return fmt.Errorf("login: store prune old device revocations: %w", err)
	}
	if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM supernodes WHERE last_seen <= ?`), cutoff.UnixNano()); err != nil {
		return fmt.Errorf("login: store prune stale supernodes: %w", err)
	}
	return nil
}

func (s *sqlStore) close() error { return s.db.Close() }

func (s *sqlStore) ping(ctx context.Context) error { return s.db.PingContext(ctx) }

func (s *sqlStore) mailboxTotals(ctx context.Context) (items, bytes int64, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(size), 0) FROM mailbox`).Scan(&items, &bytes)
	if err != nil {
		return 0, 0, fmt.Errorf("login: store mailbox totals: %w", err)
	}
	return items, bytes, nil
}
