package login

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/parley/parley/wire/loginapi"
)

// The store of the file store endpoints (POST /api/v1/files and below):
// stored_files, stored_file_recipients and stored_chunks. Every write
// takes the file's row first (SQLite: the immediate transaction; PostgreSQL:
// SELECT … FOR UPDATE, or FOR SHARE for a chunk upload, so that uploads of
// one file run side by side and a delete waits for them), then its
// children, so writers of one file cannot deadlock; a creation locks its
// owner's user row, so that the quota holds across servers.

// storedFile is a stored file as the store returns it.
type storedFile struct {
	id, owner string
	size      int64
	created   int64 // Unix seconds
	have      int64 // chunks stored
}

// fileCreate is a checked POST /api/v1/files.
type fileCreate struct {
	id, owner  string
	size       int64
	recipients []string // valid names, each once
	now        time.Time
	quota      int64 // Config.FileQuotaPerUser
}

// recipientError: a recipient of a new stored file has no account.
type recipientError struct{ name string }

func (e *recipientError) Error() string { return "unknown recipient " + e.name }
func (e *recipientError) Unwrap() error { return loginapi.ErrUnknownUser }

// chunkError: a chunk index out of range or a chunk of the wrong length
// (400, with this message).
type chunkError struct{ msg string }

func (e *chunkError) Error() string { return e.msg }

// fileDeletion is what a DELETE /api/v1/files/{id} did.
type fileDeletion struct {
	deleted bool  // the file itself is gone (its owner deleted it)
	owner   bool  // the caller owned it
	last    bool  // a recipient's: every claim is taken now
	again   bool  // a recipient's claim taken before (another device of theirs)
	size    int64 // the file's size
}

// forShare is " FOR SHARE" on PostgreSQL and "" on SQLite.
func (s *sqlStore) forShare() string {
	if s.pg {
		return " FOR SHARE"
	}
	return ""
}

func (s *sqlStore) createFile(ctx context.Context, f fileCreate) (storedFile, bool, error) {
	fail := func(what string, err error) (storedFile, bool, error) {
		return storedFile{}, false, fmt.Errorf("login: store create file of %s: %s: %w", f.owner, what, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fail("begin", err)
	}
	defer tx.Rollback()
	// The owner's row orders creations of one owner across servers (quota).
	if found, err := s.lockUsers(ctx, tx, f.owner); err != nil {
		return storedFile{}, false, err
	} else if !found[f.owner] {
		return storedFile{}, false, loginapi.ErrUnauthorized
	}
	// Accounts are never deleted: a plain read of the recipients will do.
	args := make([]any, len(f.recipients))
	for i, n := range f.recipients {
		args[i] = n
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT name FROM users WHERE name IN (`+
		strings.TrimSuffix(strings.Repeat("?,", len(args)), ",")+`)`), args...)
	if err != nil {
		return fail("recipients", err)
	}
	known := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return fail("recipients: scan", err)
		}
		known[n] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fail("recipients", err)
	}
	for _, n := range f.recipients {
		if !known[n] {
			return storedFile{}, false, &recipientError{name: n}
		}
	}
	var old storedFile
	err = tx.QueryRowContext(ctx, s.q(`SELECT owner, size, created FROM stored_files WHERE id = ?`+s.forUpdate()), f.id).
		Scan(&old.owner, &old.size, &old.created)
	switch {
	case err == nil:
		if old.owner != f.owner {
			return storedFile{}, false, fmt.Errorf("%w: another user's stored file has id %s", loginapi.ErrFileExists, f.id)
		}
		if old.size != f.size {
			return storedFile{}, false, fmt.Errorf("%w: your stored file %s has %d bytes, not %d", loginapi.ErrFileExists, f.id, old.size, f.size)
		}
		old.id = f.id
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM stored_chunks WHERE file_id = ?`), f.id).Scan(&old.have); err != nil {
			return fail("count chunks", err)
		}
		return old, false, nil
	case !errors.Is(err, sql.ErrNoRows):
		return fail("look up id", err)
	}
	var used int64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COALESCE(SUM(size), 0) FROM stored_files WHERE owner = ?`), f.owner).Scan(&used); err != nil {
		return fail("quota", err)
	}
	if used+f.size > f.quota {
		return storedFile{}, false, fmt.Errorf("%w: your stored files hold %d bytes; %d more would pass your quota of %d",
			loginapi.ErrQuota, used, f.size, f.quota)
	}
	// Two owners racing for one id: the loser's insert finds it taken.
	res, err := tx.ExecContext(ctx, s.q(`INSERT INTO stored_files (id, owner, size, created) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`),
		f.id, f.owner, f.size, f.now.Unix())
	if err != nil {
		return fail("insert", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fail("insert: rows affected", err)
	} else if n == 0 {
		return storedFile{}, false, fmt.Errorf("%w: another user's stored file has id %s", loginapi.ErrFileExists, f.id)
	}
	for _, n := range f.recipients {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO stored_file_recipients (file_id, user_name) VALUES (?, ?)`), f.id, n); err != nil {
			return fail("recipient "+n, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fail("commit", err)
	}
	return storedFile{id: f.id, owner: f.owner, size: f.size, created: f.now.Unix()}, true, nil
}

// checkChunk returns a *chunkError when index is out of range for a file
// of size bytes or n is not the length of its sealed chunk (n < 0: not
// checked).
func checkChunk(size, index int64, n int) error {
	want := loginapi.SealedChunkSize(size, index)
	if want < 0 {
		chunks := loginapi.StoreChunks(size)
		return &chunkError{fmt.Sprintf("chunk index %d out of range: the file has %d chunks (0 to %d)", index, chunks, chunks-1)}
	}
	if n >= 0 && int64(n) != want {
		return &chunkError{fmt.Sprintf("chunk %d is %d bytes, want %d (its plaintext and the %d-byte tag)",
			index, n, want, loginapi.StoreChunkOverhead)}
	}
	return nil
}

func (s *sqlStore) putChunk(ctx context.Context, owner, id string, index int64, data []byte) error {
	fail := func(what string, err error) error {
		return fmt.Errorf("login: store put chunk %d of a file of %s: %s: %w", index, owner, what, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fail("begin", err)
	}
	defer tx.Rollback()
	var size int64
	err = tx.QueryRowContext(ctx, s.q(`SELECT size FROM stored_files WHERE id = ? AND owner = ?`+s.forShare()), id, owner).Scan(&size)
	if errors.Is(err, sql.ErrNoRows) {
		return loginapi.ErrUnknownFile
	} else if err != nil {
		return fail("look up file", err)
	}
	if err := checkChunk(size, index, len(data)); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO stored_chunks (file_id, idx, data, size) VALUES (?, ?, ?, ?)
			ON CONFLICT (file_id, idx) DO UPDATE SET data = excluded.data, size = excluded.size`),
		id, index, data, len(data)); err != nil {
		return fail("insert", err)
	}
	if err := tx.Commit(); err != nil {
		return fail("commit", err)
	}
	return nil
}

// fileFor returns file id if user owns it or is a recipient with a claim
// on it (have not counted); ErrUnknownFile otherwise.
func (s *sqlStore) fileFor(ctx context.Context, q queryRower, user, id string) (storedFile, error) {
	f := storedFile{id: id}
	err := q.QueryRowContext(ctx, s.q(`SELECT owner, size, created FROM stored_files f WHERE id = ? AND (owner = ?
			OR EXISTS (SELECT 1 FROM stored_file_recipients r WHERE r.file_id = f.id AND r.user_name = ?))`), id, user, user).
		Scan(&f.owner, &f.size, &f.created)
	if errors.Is(err, sql.ErrNoRows) {
		return f, loginapi.ErrUnknownFile
	} else if err != nil {
		return f, fmt.Errorf("login: store stored file for %s: %w", user, err)
	}
	return f, nil
}

func (s *sqlStore) storedFile(ctx context.Context, user, id string) (storedFile, error) {
	f, err := s.fileFor(ctx, s.db, user, id)
	if err != nil {
		return f, err
	}
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM stored_chunks WHERE file_id = ?`), id).Scan(&f.have); err != nil {
		return f, fmt.Errorf("login: store stored file for %s: count chunks: %w", user, err)
	}
	return f, nil
}

func (s *sqlStore) chunk(ctx context.Context, user, id string, index int64) ([]byte, error) {
	f, err := s.fileFor(ctx, s.db, user, id)
	if err != nil {
		return nil, err
	}
	if err := checkChunk(f.size, index, -1); err != nil {
		return nil, err
	}
	var data []byte
	err = s.db.QueryRowContext(ctx, s.q(`SELECT data FROM stored_chunks WHERE file_id = ? AND idx = ?`), id, index).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, loginapi.ErrNoChunk
	} else if err != nil {
		return nil, fmt.Errorf("login: store chunk %d of a file for %s: %w", index, user, err)
	}
	return data, nil
}

// dropFile deletes file id, its recipients and its chunks within tx.
func (s *sqlStore) dropFile(ctx context.Context, tx *sql.Tx, id string) error {
	for _, q := range []string{
		`DELETE FROM stored_chunks WHERE file_id = ?`,
		`DELETE FROM stored_file_recipients WHERE file_id = ?`,
		`DELETE FROM stored_files WHERE id = ?`,
	} {
		if _, err := tx.ExecContext(ctx, s.q(q), id); err != nil {
			return fmt.Errorf("login: store drop stored file: %w", err)
		}
	}
	return nil
}

func (s *sqlStore) deleteFile(ctx context.Context, user, id string, now time.Time) (fileDeletion, error) {
	var d fileDeletion
	fail := func(what string, err error) (fileDeletion, error) {
		return d, fmt.Errorf("login: store delete stored file for %s: %s: %w", user, what, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fail("begin", err)
	}
	defer tx.Rollback()
	var owner string
	err = tx.QueryRowContext(ctx, s.q(`SELECT owner, size FROM stored_files WHERE id = ?`+s.forUpdate()), id).Scan(&owner, &d.size)
	if errors.Is(err, sql.ErrNoRows) {
		return d, loginapi.ErrUnknownFile
	} else if err != nil {
		return fail("look up file", err)
	}
	if owner == user {
		d.owner, d.deleted = true, true
	} else {
		// The claim is marked taken, not removed: the recipient's other
		// devices fetch the file too, until the janitor deletes it.
		var taken int64
		err := tx.QueryRowContext(ctx, s.q(`SELECT fetched_at FROM stored_file_recipients WHERE file_id = ? AND user_name = ?`), id, user).Scan(&taken)
		if errors.Is(err, sql.ErrNoRows) {
			return d, loginapi.ErrUnknownFile
		} else if err != nil {
			return fail("look up claim", err)
		}
		if taken != 0 {
			d.again = true
		} else {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE stored_file_recipients SET fetched_at = ? WHERE file_id = ? AND user_name = ?`),
				max(now.Unix(), 1), id, user); err != nil {
				return fail("take claim", err)
			}
			var left int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM stored_file_recipients WHERE file_id = ? AND fetched_at = 0`), id).Scan(&left); err != nil {
				return fail("count claims", err)
			}
			d.last = left == 0
		}
	}
	if d.deleted {
		if err := s.dropFile(ctx, tx, id); err != nil {
			return d, err
		}
	}
	if err := tx.Commit(); err != nil {
		return fail("commit", err)
	}
	return d, nil
}

func (s *sqlStore) pruneFiles(ctx context.Context, cutoff, fetchedCutoff time.Time) (files, bytes int64, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("login: store prune stored files: begin: %w", err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, s.q(`SELECT id, size FROM stored_files f WHERE created <= ? OR NOT EXISTS (
			SELECT 1 FROM stored_file_recipients r WHERE r.file_id = f.id AND (r.fetched_at = 0 OR r.fetched_at > ?)) ORDER BY id`+s.forUpdate()),
		cutoff.Unix(), fetchedCutoff.Unix())
	if err != nil {
		return 0, 0, fmt.Errorf("login: store prune stored files: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		var size int64
		if err := rows.Scan(&id, &size); err != nil {
			rows.Close()
			return 0, 0, fmt.Errorf("login: store prune stored files: scan: %w", err)
		}
		ids = append(ids, id)
		bytes += size
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, 0, fmt.Errorf("login: store prune stored files: %w", err)
	}
	for _, id := range ids {
		if err := s.dropFile(ctx, tx, id); err != nil {
			return 0, 0, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, fmt.Errorf("login: store prune stored files: commit: %w", err)
	}
	return int64(len(ids)), bytes, nil
}
