package login

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/parley/parley/wire/loginapi"
)

// The store of a user's own device list and of device removal (GET
// /api/v1/devices, DELETE /api/v1/devices/{key}): a removed device's key
// goes into revoked_devices, which refresh, device registration and every
// user endpoint consult, until a password login with the key deletes it.

func (s *sqlStore) revoked(ctx context.Context, user string, key []byte) (bool, error) {
	return s.revokedTx(ctx, s.db, user, key)
}

// revokedTx is revoked within q (a transaction or the database).
func (s *sqlStore) revokedTx(ctx context.Context, q queryRower, user string, key []byte) (bool, error) {
	var one int
	err := q.QueryRowContext(ctx, s.q(`SELECT 1 FROM revoked_devices WHERE user_name = ? AND ed_key = ?`), user, key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("login: store revocation of device %s of %s: %w", shortKey(key), user, err)
	}
	return true, nil
}

func (s *sqlStore) myDevices(ctx context.Context, user string, now time.Time) ([]loginapi.MyDevice, error) {
	byKey := map[string]*loginapi.MyDevice{}
	var order []string
	add := func(key []byte, registered, seen int64, enc bool) {
		d, ok := byKey[string(key)]
		if !ok {
			d = &loginapi.MyDevice{Key: key, Registered: registered, LastSeen: seen}
			byKey[string(key)] = d
			order = append(order, string(key))
		}
		if registered > 0 && (d.Registered == 0 || registered < d.Registered) {
			d.Registered = registered
		}
		d.LastSeen = max(d.LastSeen, seen)
		d.Encryption = d.Encryption || enc
	}
	scan := func(what, query string, enc bool, args ...any) error {
		rows, err := s.db.QueryContext(ctx, s.q(query), args...)
		if err != nil {
			return fmt.Errorf("login: store own devices of %s: %s: %w", user, what, err)
		}
		defer rows.Close()
		for rows.Next() {
			var key []byte
			var registered, seen int64
			if err := rows.Scan(&key, &registered, &seen); err != nil {
				return fmt.Errorf("login: store own devices of %s: %s: scan: %w", user, what, err)
			}
			add(key, registered, seen, enc)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("login: store own devices of %s: %s: %w", user, what, err)
		}
		return nil
	}
	if err := scan("registered", `SELECT ed_key, registered, last_seen FROM devices WHERE user_name = ?`, true, user); err != nil {
		return nil, err
	}
	// Tokens from before schema version 4 are bound to no key until their
	// next refresh: length 32 leaves them out.
	if err := scan("logged in", `SELECT t.ed_key, MIN(t.issued_at), MAX(t.used_at) FROM refresh_tokens t
			WHERE t.user_name = ? AND t.expires_at > ? AND length(t.ed_key) = 32
			AND NOT EXISTS (SELECT 1 FROM revoked_devices r WHERE r.user_name = t.user_name AND r.ed_key = t.ed_key)
			GROUP BY t.ed_key`, false, user, now.Unix()); err != nil {
		return nil, err
	}
	list := make([]loginapi.MyDevice, 0, len(order))
	for _, k := range order {
		list = append(list, *byKey[k])
	}
	slices.SortFunc(list, func(a, b loginapi.MyDevice) int {
		return cmp.Or(cmp.Compare(b.LastSeen, a.LastSeen), bytes.Compare(a.Key, b.Key))
	})
	return list, nil
}

func (s *sqlStore) removeDevice(ctx context.Context, user string, key []byte, now time.Time) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("login: store remove device %s of %s: begin: %w", shortKey(key), user, err)
	}
	defer tx.Rollback()
	// The user's row lock orders this against logins (which clear a
	// revocation) and device registrations on other PostgreSQL servers.
	if found, err := s.lockUsers(ctx, tx, user); err != nil || !found[user] {
		return false, err
	}
	exists := func(what, query string, args ...any) (bool, error) {
		var one int
		err := tx.QueryRowContext(ctx, s.q(query), args...).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		} else if err != nil {
			return false, fmt.Errorf("login: store remove device %s of %s: %s: %w", shortKey(key), user, what, err)
		}
		return true, nil
	}
	registered, err := exists("registration", `SELECT 1 FROM devices WHERE user_name = ? AND ed_key = ?`, user, key)
	if err != nil {
		return false, err
	}
	if !registered {
		loggedIn, err := exists("refresh tokens", `SELECT 1 FROM refresh_tokens WHERE user_name = ? AND ed_key = ? AND expires_at > ?
				AND NOT EXISTS (SELECT 1 FROM revoked_devices WHERE user_name = ? AND ed_key = ?)`, user, key, now.Unix(), user, key)
		if err != nil || !loggedIn {
			return false, err
		}
	}
	if err := s.dropDevice(ctx, tx, user, key); err != nil {
		return false, err
	}
	// The tokens bound to the key stay, refused (useRefresh), so that
	// their holder is told why; they expire as usual.
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO revoked_devices (user_name, ed_key, revoked_at) VALUES (?, ?, ?)
			ON CONFLICT (user_name, ed_key) DO UPDATE SET revoked_at = excluded.revoked_at`), user, key, now.Unix()); err != nil {
		return false, fmt.Errorf("login: store remove device %s of %s: revoke: %w", shortKey(key), user, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("login: store remove device %s of %s: commit: %w", shortKey(key), user, err)
	}
	return true, nil
}
