package login

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/parley/parley/wire/loginapi"
	"github.com/parley/parley/wire/presence"
)

// The store of the user endpoints: devices, mailbox, contacts, status and
// search. Where SQLite's immediate transactions serialize writers, the
// PostgreSQL store locks rows (SELECT … FOR UPDATE) in a fixed order.

// forUpdate is " FOR UPDATE" on PostgreSQL and "" on SQLite.
func (s *sqlStore) forUpdate() string {
	if s.pg {
		return " FOR UPDATE"
	}
	return ""
}

// lockUsers locks the rows of names (sorted, deduplicated) and returns the
// ones that exist.
func (s *sqlStore) lockUsers(ctx context.Context, tx *sql.Tx, names ...string) (map[string]bool, error) {
	names = slices.Clone(names)
	slices.Sort(names)
	names = slices.Compact(names)
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	q := `SELECT name FROM users WHERE name IN (` + strings.TrimSuffix(strings.Repeat("?,", len(names)), ",") + `) ORDER BY name` + s.forUpdate()
	rows, err := tx.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, fmt.Errorf("login: store lock users %s: %w", strings.Join(names, ", "), err)
	}
	defer rows.Close()
	found := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("login: store lock users %s: scan: %w", strings.Join(names, ", "), err)
		}
		found[n] = true
	}
	if err := rows.Err(); err != nil {
		return found, fmt.Errorf("login: store lock users %s: %w", strings.Join(names, ", "), err)
	}
	return found, nil
}

func (s *sqlStore) pruneMailbox(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM mailbox WHERE created <= ?`), cutoff.Unix())
	if err != nil {
		return 0, fmt.Errorf("login: store prune mailbox: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return n, fmt.Errorf("login: store prune mailbox: rows affected: %w", err)
	}
	return n, nil
}

func (s *sqlStore) putDevice(ctx context.Context, d deviceRow, now time.Time, maxDevices int) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("login: store put device %s of %s: begin: %w", shortKey(d.key), d.user, err)
	}
	defer tx.Rollback()
	if found, err := s.lockUsers(ctx, tx, d.user); err != nil {
		return 0, err
	} else if !found[d.user] {
		return 0, loginapi.ErrUnknownUser
	}
	if gone, err := s.revokedTx(ctx, tx, d.user, d.key); err != nil {
		return 0, err
	} else if gone {
		return 0, loginapi.ErrDeviceRemoved
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO devices (user_name, ed_key, x25519, sig, last_seen, registered) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (user_name, ed_key) DO UPDATE SET x25519 = excluded.x25519, sig = excluded.sig, last_seen = excluded.last_seen`),
		d.user, d.key, d.x25519, d.sig, now.Unix(), now.Unix()); err != nil {
		return 0, fmt.Errorf("login: store put device %s of %s: %w", shortKey(d.key), d.user, err)
	}
	// Drop the least recently seen devices beyond the cap (never this one).
	rows, err := tx.QueryContext(ctx, s.q(`SELECT ed_key FROM devices WHERE user_name = ? AND ed_key <> ?
			ORDER BY last_seen DESC, ed_key`), d.user, d.key)
	if err != nil {
		return 0, fmt.Errorf("login: store put device %s of %s: list other devices: %w", shortKey(d.key), d.user, err)
	}
	var others [][]byte
	for rows.Next() {
		var k []byte
		if err := rows.Scan(&k); err != nil {
			rows.Close()
			return 0, fmt.Errorf("login: store put device %s of %s: list other devices: scan: %w", shortKey(d.key), d.user, err)
		}
		others = append(others, k)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("login: store put device %s of %s: list other devices: %w", shortKey(d.key), d.user, err)
	}
	dropped := 0
	for i := max(maxDevices-1, 0); i < len(others); i++ {
		if err := s.dropDevice(ctx, tx, d.user, others[i]); err != nil {
			return 0, err
		}
		dropped++
	}
	if err := tx.Commit(); err != nil {
		return dropped, fmt.Errorf("login: store put device %s of %s: commit: %w", shortKey(d.key), d.user, err)
	}
	return dropped, nil
}

// dropDevice deletes a device and its mailbox within tx.
func (s *sqlStore) dropDevice(ctx context.Context, tx *sql.Tx, user string, key []byte) error {
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM devices WHERE user_name = ? AND ed_key = ?`), user, key); err != nil {
		return fmt.Errorf("login: store drop device %s of %s: %w", shortKey(key), user, err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM mailbox WHERE to_user = ? AND to_device = ?`), user, key); err != nil {
		return fmt.Errorf("login: store drop device %s of %s: delete mailbox: %w", shortKey(key), user, err)
	}
	return nil
}

func (s *sqlStore) deleteDevice(ctx context.Context, user string, key []byte) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("login: store delete device %s of %s: begin: %w", shortKey(key), user, err)
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM devices WHERE user_name = ? AND ed_key = ?`+s.forUpdate()), user, key).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("login: store delete device %s of %s: %w", shortKey(key), user, err)
	}
	if err := s.dropDevice(ctx, tx, user, key); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return true, fmt.Errorf("login: store delete device %s of %s: commit: %w", shortKey(key), user, err)
	}
	return true, nil
}

func (s *sqlStore) devices(ctx context.Context, user string) ([]loginapi.Device, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT ed_key, x25519, sig, last_seen FROM devices WHERE user_name = ?
			ORDER BY last_seen DESC, ed_key`), user)
	if err != nil {
		return nil, fmt.Errorf("login: store devices of %s: %w", user, err)
	}
	defer rows.Close()
	list := []loginapi.Device{}
	for rows.Next() {
		var d loginapi.Device
		var key []byte
		if err := rows.Scan(&key, &d.X25519, &d.Sig, &d.LastSeen); err != nil {
			return nil, fmt.Errorf("login: store devices of %s: scan: %w", user, err)
		}
		d.Key = key
		list = append(list, d)
	}
	if err := rows.Err(); err != nil {
		return list, fmt.Errorf("login: store devices of %s: %w", user, err)
	}
	return list, nil
}

// deviceKey names a recipient device.
type deviceKey struct {
	user string
	key  string // the raw key bytes
}

func (s *sqlStore) postMailbox(ctx context.Context, from string, fromDevice []byte, items []mailItem, now time.Time, quota int) (int, int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("login: store mailbox post from %s: begin: %w", from, err)
	}
	defer tx.Rollback()
	// Check every item in order, so that the error names the first bad one.
	userOK := map[string]error{}
	passOK := map[passKey]bool{}
	devOK := map[deviceKey]bool{}
	for i, it := range items {
		uerr, seen := userOK[it.toUser]
		if !seen {
			uerr, err = s.recipientCheck(ctx, tx, from, it.toUser)
			if err != nil {
				return 0, 0, err
			}
			userOK[it.toUser] = uerr
		}
		// Not a contact: the item's own pass may admit the sender.
		if errors.Is(uerr, loginapi.ErrNotContact) && it.pass != nil {
			pk := passKey{it.toUser, it.pass.User, it.pass.By, string(it.pass.Device)}
			ok, seen := passOK[pk]
			if !seen {
				if ok, err = s.passAdmitsTx(ctx, tx, it.toUser, *it.pass); err != nil {
					return 0, 0, err
				}
				passOK[pk] = ok
			}
			if ok {
				uerr = nil
			}
		}
		if uerr != nil {
			return 0, 0, &mailError{index: i, err: uerr}
		}
		dk := deviceKey{it.toUser, string(it.toDevice)}
		if _, seen := devOK[dk]; !seen {
			var one int
			err := tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM devices WHERE user_name = ? AND ed_key = ?`), it.toUser, it.toDevice).Scan(&one)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return 0, 0, fmt.Errorf("login: store mailbox post from %s: check device %s of %s: %w", from, shortKey(it.toDevice), it.toUser, err)
			}
			devOK[dk] = err == nil
		}
		if !devOK[dk] {
			return 0, 0, &mailError{index: i, err: loginapi.ErrUnknownDevice}
		}
	}
	// Lock the recipient devices in a fixed order: concurrent posts to one
	// device then check its quota one at a time.
	devs := make([]deviceKey, 0, len(devOK))
	for dk := range devOK {
		devs = append(devs, dk)
	}
	slices.SortFunc(devs, func(a, b deviceKey) int {
		if c := strings.Compare(a.user, b.user); c != 0 {
			return c
		}
		return strings.Compare(a.key, b.key)
	})
	if s.pg {
		for _, dk := range devs {
			var one int
			err := tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM devices WHERE user_name = ? AND ed_key = ? FOR UPDATE`), dk.user, []byte(dk.key)).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				// Dropped since the check above.
				for i, it := range items {
					if it.toUser == dk.user && string(it.toDevice) == dk.key {
						return 0, 0, &mailError{index: i, err: loginapi.ErrUnknownDevice}
					}
				}
			}
			if err != nil {
				return 0, 0, fmt.Errorf("login: store mailbox post from %s: lock device %s of %s: %w", from, shortKey([]byte(dk.key)), dk.user, err)
			}
		}
	}
	stored := 0
	first := map[deviceKey]int{} // first new item per device, for the quota error
	for i, it := range items {
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO mailbox (to_user, to_device, from_user, from_device, msg_id, blob, size, created)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (to_user, to_device, from_user, msg_id) DO NOTHING`),
			it.toUser, it.toDevice, from, fromDevice, it.id, it.blob, len(it.blob), now.Unix())
		if err != nil {
			return 0, 0, fmt.Errorf("login: store mailbox post from %s: item %d to device %s of %s: %w", from, i, shortKey(it.toDevice), it.toUser, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, 0, fmt.Errorf("login: store mailbox post from %s: item %d to device %s of %s: rows affected: %w", from, i, shortKey(it.toDevice), it.toUser, err)
		}
		if n > 0 {
			stored++
			dk := deviceKey{it.toUser, string(it.toDevice)}
			if _, ok := first[dk]; !ok {
				first[dk] = i
			}
		}
	}
	for _, dk := range devs {
		i, ok := first[dk]
		if !ok {
			continue
		}
		var total int64
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COALESCE(SUM(size), 0) FROM mailbox WHERE to_user = ? AND to_device = ?`),
			dk.user, []byte(dk.key)).Scan(&total); err != nil {
			return 0, 0, fmt.Errorf("login: store mailbox post from %s: mailbox size of device %s of %s: %w", from, shortKey([]byte(dk.key)), dk.user, err)
		}
		if total > int64(quota) {
			return 0, 0, &mailError{index: i, err: loginapi.ErrQuota}
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, fmt.Errorf("login: store mailbox post from %s: commit: %w", from, err)
	}
	return stored, len(items) - stored, nil
}

// recipientCheck returns nil if from may post to user's mailbox (user
// exists and is from or an accepted contact of from), else ErrUnknownUser
// or ErrNotContact; a non-nil second result is a database failure. On
// ErrNotContact, postMailbox tries the item's pass (passAdmitsTx).
func (s *sqlStore) recipientCheck(ctx context.Context, tx *sql.Tx, from, user string) (error, error) {
	var one int
	err := tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM users WHERE name = ?`), user).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return loginapi.ErrUnknownUser, nil
	} else if err != nil {
		return nil, fmt.Errorf("login: store recipient check %s from %s: user: %w", user, from, err)
	}
	if user == from {
		return nil, nil
	}
	var state string
	err = tx.QueryRowContext(ctx, s.q(`SELECT state FROM contacts WHERE user_name = ? AND peer = ?`), from, user).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && state != loginapi.ContactAccepted) {
		return loginapi.ErrNotContact, nil
	}
	if err != nil {
		return nil, fmt.Errorf("login: store recipient check %s from %s: contact: %w", user, from, err)
	}
	return nil, nil
}

// passKey names what a verified pass's admission to a recipient depends on.
type passKey struct {
	to, user, by string
	device       string // the raw key bytes
}

func (s *sqlStore) passAdmits(ctx context.Context, user string, p loginapi.Pass) (bool, error) {
	return s.passAdmitsTx(ctx, s.db, user, p)
}

// passAdmitsTx is passAdmits within q (a transaction or the database): one
// query for the contact row (p.By towards user) joined with p.By's device.
func (s *sqlStore) passAdmitsTx(ctx context.Context, q queryRower, user string, p loginapi.Pass) (bool, error) {
	if p.User != user {
		return false, nil
	}
	var one int
	var err error
	if p.By == user {
		// A user's own pass: they let its holders reach them.
		err = q.QueryRowContext(ctx, s.q(`SELECT 1 FROM devices WHERE user_name = ? AND ed_key = ?`),
			user, []byte(p.Device)).Scan(&one)
	} else {
		err = q.QueryRowContext(ctx, s.q(`SELECT 1 FROM contacts c JOIN devices d ON d.user_name = c.user_name
			WHERE c.user_name = ? AND c.peer = ? AND c.state = ? AND d.ed_key = ?`),
			p.By, user, loginapi.ContactAccepted, []byte(p.Device)).Scan(&one)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("login: store pass for %s by %s (device %s): %w", user, p.By, shortKey(p.Device), err)
	}
	return true, nil
}

func (s *sqlStore) mailbox(ctx context.Context, user string, device []byte, limit, maxBytes int, now time.Time) ([]loginapi.MailboxEntry, bool, error) {
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE devices SET last_seen = ? WHERE user_name = ? AND ed_key = ?`),
		now.Unix(), user, device); err != nil {
		return nil, false, fmt.Errorf("login: store mailbox of device %s of %s: mark seen: %w", shortKey(device), user, err)
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT seq, from_user, from_device, msg_id, blob, created FROM mailbox
			WHERE to_user = ? AND to_device = ? ORDER BY seq LIMIT ?`), user, device, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("login: store mailbox of device %s of %s: %w", shortKey(device), user, err)
	}
	defer rows.Close()
	list := []loginapi.MailboxEntry{}
	size := 0
	more := false
	for rows.Next() {
		var e loginapi.MailboxEntry
		var fromDev, blob []byte
		if err := rows.Scan(&e.Seq, &e.FromUser, &fromDev, &e.ID, &blob, &e.Created); err != nil {
			return nil, false, fmt.Errorf("login: store mailbox of device %s of %s: scan: %w", shortKey(device), user, err)
		}
		if len(list) == limit || (len(list) > 0 && size+len(blob) > maxBytes) {
			more = true
			break
		}
		size += len(blob)
		e.FromDevice = fromDev
		e.Blob = blob
		list = append(list, e)
	}
	if err := rows.Err(); err != nil {
		return list, more, fmt.Errorf("login: store mailbox of device %s of %s: %w", shortKey(device), user, err)
	}
	return list, more, nil
}

func (s *sqlStore) ackMailbox(ctx context.Context, user string, device []byte, seqs []int64) (int, error) {
	if len(seqs) == 0 {
		return 0, nil
	}
	args := []any{user, device}
	for _, q := range seqs {
		args = append(args, q)
	}
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM mailbox WHERE to_user = ? AND to_device = ? AND seq IN (`+
		strings.TrimSuffix(strings.Repeat("?,", len(seqs)), ",")+`)`), args...)
	if err != nil {
		return 0, fmt.Errorf("login: store mailbox ack of device %s of %s: %w", shortKey(device), user, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return int(n), fmt.Errorf("login: store mailbox ack of device %s of %s: rows affected: %w", shortKey(device), user, err)
	}
	return int(n), nil
}

func (s *sqlStore) contacts(ctx context.Context, user string) ([]loginapi.Contact, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT c.peer, c.state, u.status FROM contacts c JOIN users u ON u.name = c.peer
			WHERE c.user_name = ? ORDER BY c.peer`+s.collateC()), user)
	if err != nil {
		return nil, fmt.Errorf("login: store contacts of %s: %w", user, err)
	}
	defer rows.Close()
	list := []loginapi.Contact{}
	for rows.Next() {
		var c loginapi.Contact
		var status string
		if err := rows.Scan(&c.User, &c.State, &status); err != nil {
			return nil, fmt.Errorf("login: store contacts of %s: scan: %w", user, err)
		}
		if c.State == loginapi.ContactAccepted {
			c.Status = presence.Shown(status)
		}
		list = append(list, c)
	}
	if err := rows.Err(); err != nil {
		return list, fmt.Errorf("login: store contacts of %s: %w", user, err)
	}
	return list, nil
}

// collateC makes ORDER BY on PostgreSQL sort by bytes, as SQLite does.
func (s *sqlStore) collateC() string {
	if s.pg {
		return ` COLLATE "C"`
	}
	return ""
}

func (s *sqlStore) contactState(ctx context.Context, user, peer string) (string, error) {
	return s.stateTx(ctx, s.db, user, peer)
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s *sqlStore) stateTx(ctx context.Context, q queryRower, user, peer string) (string, error) {
	var state string
	err := q.QueryRowContext(ctx, s.q(`SELECT state FROM contacts WHERE user_name = ? AND peer = ?`), user, peer).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return loginapi.ContactNone, nil
	}
	if err != nil {
		return state, fmt.Errorf("login: store contact state of %s towards %s: %w", user, peer, err)
	}
	return state, nil
}

// contactTx runs f in a transaction holding the locks of both users' rows,
// with user's current state towards peer; ErrUnknownUser if peer has no
// account.
func (s *sqlStore) contactTx(ctx context.Context, user, peer string, f func(tx *sql.Tx, state string) (string, error)) (string, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("login: store contact %s and %s: begin: %w", user, peer, err)
	}
	defer tx.Rollback()
	found, err := s.lockUsers(ctx, tx, user, peer)
	if err != nil {
		return "", err
	}
	if !found[peer] || !found[user] {
		return "", loginapi.ErrUnknownUser
	}
	state, err := s.stateTx(ctx, tx, user, peer)
	if err != nil {
		return "", err
	}
	next, err := f(tx, state)
	if err != nil {
		// f wraps its own store errors; the others are sentinels and
		// refusals whose text the HTTP layer sends as it is.
		return "", err
	}
	if err := tx.Commit(); err != nil {
		return next, fmt.Errorf("login: store contact %s and %s: commit: %w", user, peer, err)
	}
	return next, nil
}

// setPair writes both rows of a relation.
func (s *sqlStore) setPair(ctx context.Context, tx *sql.Tx, user, peer, userState, peerState string, now time.Time) error {
	for _, r := range [][3]string{{user, peer, userState}, {peer, user, peerState}} {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO contacts (user_name, peer, state, since) VALUES (?, ?, ?, ?)
				ON CONFLICT (user_name, peer) DO UPDATE SET state = excluded.state, since = excluded.since`),
			r[0], r[1], r[2], now.Unix()); err != nil {
			return fmt.Errorf("login: store set contact %s of %s to %s: %w", r[1], r[0], r[2], err)
		}
	}
	return nil
}

func (s *sqlStore) requestContact(ctx context.Context, user, peer string, now time.Time, maxContacts int, allow func() error) (string, error) {
	return s.contactTx(ctx, user, peer, func(tx *sql.Tx, state string) (string, error) {
		switch state {
		case loginapi.ContactAccepted, loginapi.ContactRequested:
			return state, nil
		case loginapi.ContactPending:
			return loginapi.ContactAccepted, s.setPair(ctx, tx, user, peer, loginapi.ContactAccepted, loginapi.ContactAccepted, now)
		}
		for _, who := range []string{user, peer} {
			var n int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM contacts WHERE user_name = ?`), who).Scan(&n); err != nil {
				return "", fmt.Errorf("login: store contact request %s by %s: count contacts of %s: %w", peer, user, who, err)
			}
			if n >= maxContacts {
				whose := "your"
				if who == peer {
					whose = peer + "'s"
				}
				return "", fmt.Errorf("%w: %s contact list is full (%d entries)", loginapi.ErrQuota, whose, maxContacts)
			}
		}
		if err := allow(); err != nil {
			return "", err
		}
		return loginapi.ContactRequested, s.setPair(ctx, tx, user, peer, loginapi.ContactRequested, loginapi.ContactPending, now)
	})
}

func (s *sqlStore) acceptContact(ctx context.Context, user, peer string, now time.Time) (string, error) {
	return s.contactTx(ctx, user, peer, func(tx *sql.Tx, state string) (string, error) {
		switch state {
		case loginapi.ContactAccepted:
			return state, nil
		case loginapi.ContactPending:
			return loginapi.ContactAccepted, s.setPair(ctx, tx, user, peer, loginapi.ContactAccepted, loginapi.ContactAccepted, now)
		}
		return "", loginapi.ErrNoRequest
	})
}

func (s *sqlStore) declineContact(ctx context.Context, user, peer string) (string, error) {
	return s.contactTx(ctx, user, peer, func(tx *sql.Tx, state string) (string, error) {
		if state == loginapi.ContactNone {
			return state, nil
		}
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM contacts WHERE (user_name = ? AND peer = ?) OR (user_name = ? AND peer = ?)`),
			user, peer, peer, user)
		if err != nil {
			return state, fmt.Errorf("login: store contact decline %s by %s: %w", peer, user, err)
		}
		return state, nil
	})
}

func (s *sqlStore) setStatus(ctx context.Context, user, status string) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE users SET status = ? WHERE name = ?`), status, user)
	if err != nil {
		return fmt.Errorf("login: store set status of %s to %s: %w", user, status, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("login: store set status of %s to %s: rows affected: %w", user, status, err)
	} else if n == 0 {
		return loginapi.ErrUnknownUser
	}
	return nil
}

func (s *sqlStore) status(ctx context.Context, user string) (string, error) {
	var st string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT status FROM users WHERE name = ?`), user).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", loginapi.ErrUnknownUser
	}
	if err != nil {
		return st, fmt.Errorf("login: store status of %s: %w", user, err)
	}
	return st, nil
}

func (s *sqlStore) searchUsers(ctx context.Context, prefix string, limit int) ([]string, error) {
	// substr rather than LIKE: '_' is a LIKE wildcard and SQLite's LIKE
	// ignores case; rather than a range: PostgreSQL's collation may not sort
	// by bytes.
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT name FROM users WHERE substr(name, 1, ?) = ? ORDER BY name`+s.collateC()+` LIMIT ?`),
		len(prefix), prefix, limit)
	if err != nil {
		return nil, fmt.Errorf("login: store search users %s: %w", prefix, err)
	}
	defer rows.Close()
	list := []string{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("login: store search users %s: scan: %w", prefix, err)
		}
		list = append(list, n)
	}
	if err := rows.Err(); err != nil {
		return list, fmt.Errorf("login: store search users %s: %w", prefix, err)
	}
	return list, nil
}
