package login

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

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
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	dsn := path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
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
		return err
	}
	defer tx.Rollback()
	if s.pg {
		// Login servers sharing the database may start together: one
		// migrates, the others wait for it and then find nothing to do.
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7244581)`); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`)); err != nil {
		return err
	}
	var v int
	err = tx.QueryRowContext(ctx, s.q(`SELECT version FROM schema_version`)).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_version (version) VALUES (0)`)); err != nil {
			return err
		}
	} else if err != nil {
		return err
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
				q = strings.NewReplacer("INTEGER", "BIGINT", "BLOB", "BYTEA").Replace(q)
			}
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("migration %d: %w", step, err)
			}
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE schema_version SET version = ?`), schemaVersion); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *sqlStore) createUser(ctx context.Context, name, passHash string, created time.Time) error {
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO users (name, pass_hash, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`),
		name, passHash, created.Unix())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrUserExists
	}
	return nil
}

func (s *sqlStore) passwordHash(ctx context.Context, name string) (string, error) {
	var h string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT pass_hash FROM users WHERE name = ?`), name).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrUnknownUser
	}
	return h, err
}

func (s *sqlStore) userExists(ctx context.Context, name string) (bool, error) {
	var one int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT 1 FROM users WHERE name = ?`), name).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

func (s *sqlStore) replacePasswordHash(ctx context.Context, name, oldHash, newHash string, revoke bool) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.q(`UPDATE users SET pass_hash = ? WHERE name = ? AND pass_hash = ?`), newHash, name, oldHash)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrWrongPassword
	}
	if revoke {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM refresh_tokens WHERE user_name = ?`), name); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (s *sqlStore) addRefresh(ctx context.Context, tokenHash []byte, user string, expires time.Time, keep int) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if s.pg {
		// SQLite's immediate transactions serialize writers; PostgreSQL's
		// read committed does not. Lock the user's row so that logins of one
		// user on several servers trim to the newest keep tokens one at a time.
		if _, err := tx.ExecContext(ctx, s.q(`SELECT 1 FROM users WHERE name = ? FOR UPDATE`), user); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO refresh_tokens (token_hash, user_name, expires_at) VALUES (?, ?, ?)`),
		tokenHash, user, expires.Unix()); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM refresh_tokens WHERE user_name = ? AND token_hash NOT IN (
			SELECT token_hash FROM refresh_tokens WHERE user_name = ? ORDER BY expires_at DESC LIMIT ?)`),
		user, user, keep); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *sqlStore) useRefresh(ctx context.Context, tokenHash []byte, user string, now, newExpires time.Time) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE refresh_tokens SET expires_at = ? WHERE token_hash = ? AND user_name = ? AND expires_at > ?`),
		newExpires.Unix(), tokenHash, user, now.Unix())
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return ErrInvalidRefresh
	}
	return nil
}

func (s *sqlStore) heartbeat(ctx context.Context, addr string, now, cutoff time.Time, limit int) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if s.pg {
		// Count-then-insert must not interleave across servers, or two new
		// supernodes could both take the last free place: serialize
		// heartbeats (only heartbeats; listing does not wait).
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7244582)`); err != nil {
			return err
		}
	}
	var live int
	err = tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM supernodes WHERE addr = ? AND last_seen > ?`), addr, cutoff.UnixNano()).Scan(&live)
	if errors.Is(err, sql.ErrNoRows) {
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM supernodes WHERE last_seen > ?`), cutoff.UnixNano()).Scan(&live); err != nil {
			return err
		}
		if live >= limit {
			return ErrSupernodeListFull
		}
	} else if err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO supernodes (addr, last_seen) VALUES (?, ?)
			ON CONFLICT (addr) DO UPDATE SET last_seen = excluded.last_seen`), addr, now.UnixNano()); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *sqlStore) supernodes(ctx context.Context, cutoff time.Time, limit int) ([]SupernodeInfo, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT addr, last_seen FROM supernodes WHERE last_seen > ? ORDER BY last_seen DESC, addr LIMIT ?`),
		cutoff.UnixNano(), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	list := []SupernodeInfo{}
	for rows.Next() {
		var sn SupernodeInfo
		var seen int64
		if err := rows.Scan(&sn.Addr, &seen); err != nil {
			return nil, err
		}
		sn.LastSeen = time.Unix(0, seen).Unix()
		list = append(list, sn)
	}
	return list, rows.Err()
}

func (s *sqlStore) prune(ctx context.Context, now, cutoff time.Time) error {
	if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM refresh_tokens WHERE expires_at <= ?`), now.Unix()); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx, s.q(`DELETE FROM supernodes WHERE last_seen <= ?`), cutoff.UnixNano())
	return err
}

func (s *sqlStore) close() error { return s.db.Close() }
