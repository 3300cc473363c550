package im

import (
	"context"
	"crypto/ed25519"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parley/parley/internal/identity"
)

// The message history of a home:
//
//	history.db   SQLite, mode 0600: every message this device sent or
//	             received (and copies of what the user's other devices sent),
//	             with its delivery state, and the conversation counters
//
// It is what `parley history USER` prints, and how a message that arrives more
// than once (over a data channel, through the supernodes, from the mailbox) is
// shown once: a message is stored once per (peer, direction, id). The id is
// scoped by peer and direction so that another user, who may see ids go by
// (on a supernode of theirs), cannot suppress or mark delivered a message of
// a conversation that is not theirs.
const historyFile = "history.db"

// historySchema is the user_version of the history database this client
// writes. 2 added the state "read"; 3 the sender of group messages and the
// groups' logs.
const historySchema = 3

// Directions of a message, from the point of view of the home's user.
const (
	DirIn  = "in"
	DirOut = "out"
)

// States of a message. Outgoing: sending (stored, not yet handed to a
// transport), sent (handed to a data channel, a supernode or the mailbox, or
// a copy of what another of my devices sent), delivered (a receipt came
// back), read (a read receipt came back). Incoming: received, then read
// once this device said it was read (a read receipt went to the sender).
const (
	StateSending   = "sending"
	StateSent      = "sent"
	StateDelivered = "delivered"
	StateRead      = "read"
	StateReceived  = "received"
)

// earlyAckTTL is how long a receipt for a message not (yet) in the history is
// kept: a receipt may overtake the copy of a message another of my devices
// sent.
const earlyAckTTL = 7 * 24 * time.Hour

// Message is one message of the history.
type Message struct {
	// ID is the envelope id.
	ID string
	// Peer is the other user of the conversation, or for a group's
	// GroupPeer(its id).
	Peer string
	// From is the user who sent a group message ("" in a 1:1
	// conversation: Peer or this user, by Dir).
	From string
	// Dir is DirIn (from Peer) or DirOut (to Peer, from one of my devices).
	Dir string
	// FromDevice is the Ed25519 key of the device that sent it.
	FromDevice ed25519.PublicKey
	// Seq is the sending device's counter for the conversation.
	Seq int64
	// TS is the sender's time, Unix milliseconds.
	TS int64
	// Text is the message.
	Text string
	// State is StateSending, StateSent, StateDelivered, StateRead or
	// StateReceived.
	State string
}

// Time returns TS as a time.
func (m Message) Time() time.Time { return time.UnixMilli(m.TS) }

// History is a home's message history. It is safe for concurrent use, also
// by several processes on one home.
type History struct {
	db   *sql.DB
	path string
}

// OpenHistory opens (creating it, mode 0600, on first use) the history of
// the home in dir.
func OpenHistory(dir string) (*History, error) {
	if dir == "" {
		return nil, fmt.Errorf("client: history: no directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("client: history %s: %w", dir, err)
	}
	p := filepath.Join(dir, historyFile)
	if strings.ContainsRune(p, '?') {
		return nil, fmt.Errorf("client: history %s: path contains '?'", p)
	}
	// Create the file ourselves so that it is private; SQLite gives the -wal
	// and -shm files the same mode.
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("client: history %s: %w", p, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("client: history %s: %w", p, err)
	}
	dsn := p + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)" +
		"&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("client: history %s: %w", p, err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	h := &History{db: db, path: p}
	if err := h.migrate(); err != nil {
		db.Close()
		return nil, fmt.Errorf("client: history %s: %w", p, err)
	}
	return h, nil
}

// Close closes the database.
func (h *History) Close() error {
	if err := h.db.Close(); err != nil {
		return fmt.Errorf("client: history %s: %w", h.path, err)
	}
	return nil
}

func (h *History) migrate() error {
	ctx := context.Background()
	tx, err := h.db.BeginTx(ctx, nil)
	if err != nil {
		return corrupt(err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return corrupt(err)
	}
	var qs []string
	indexes := []string{
		`CREATE INDEX messages_order ON messages(peer, ts, seq, id)`,
		`CREATE INDEX messages_pending ON messages(state) WHERE state IN ('sending', 'sent')`,
	}
	switch {
	case v == historySchema:
		return nil
	case v > historySchema:
		return fmt.Errorf("format %d, this client knows %d: %w", v, historySchema, ErrHistoryCorrupt)
	case v == 2:
		// 2 → 3: group messages name their sender; groups' logs.
		qs, indexes = append(qs, `ALTER TABLE messages ADD COLUMN sender TEXT NOT NULL DEFAULT ''`), nil
	case v == 0:
		qs = append(qs, messagesTable("messages"),
			// seqs: the next conversation counter of this device per peer.
			`CREATE TABLE seqs (
				peer TEXT PRIMARY KEY,
				last INTEGER NOT NULL
			)`,
			// early_acks: receipts for messages not (yet) in the history.
			`CREATE TABLE early_acks (
				peer TEXT NOT NULL,
				id   TEXT NOT NULL,
				at   INTEGER NOT NULL,
				PRIMARY KEY (peer, id)
			)`)
	default:
		// 1 → 2: the state "read". SQLite cannot change a CHECK
		// constraint: the table is made anew and the rows copied.
		qs = append(qs, messagesTable("messages_v2"),
			`INSERT INTO messages_v2 (peer, dir, id, from_device, seq, ts, text, state)
				SELECT peer, dir, id, from_device, seq, ts, text, state FROM messages`,
			`DROP TABLE messages`,
			`ALTER TABLE messages_v2 RENAME TO messages`)
	}
	qs = append(append(qs, indexes...),
		// group_ops: the verified operations of every group this device
		// has heard of (group.go), the log its state is replayed from.
		`CREATE TABLE group_ops (
			grp   TEXT NOT NULL,
			id    TEXT NOT NULL,
			clock INTEGER NOT NULL,
			op    BLOB NOT NULL,
			PRIMARY KEY (grp, id)
		)`,
		// group_held: group messages from a sender this device does not
		// know as a member yet (the operation that adds them is on its
		// way), kept across restarts until it comes.
		`CREATE TABLE group_held (
			grp  TEXT NOT NULL,
			mid  TEXT NOT NULL,
			at   INTEGER NOT NULL,
			msg  BLOB NOT NULL,
			PRIMARY KEY (grp, mid)
		)`,
		fmt.Sprintf(`PRAGMA user_version = %d`, historySchema))
	for _, q := range qs {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return corrupt(err)
		}
	}
	return corrupt(tx.Commit())
}

// messagesTable is the statement creating the messages table as name.
func messagesTable(name string) string {
	return `CREATE TABLE ` + name + ` (
		peer        TEXT NOT NULL,
		dir         TEXT NOT NULL CHECK (dir IN ('in', 'out')),
		id          TEXT NOT NULL,
		from_device BLOB NOT NULL,
		seq         INTEGER NOT NULL,
		ts          INTEGER NOT NULL,
		text        TEXT NOT NULL,
		state       TEXT NOT NULL CHECK (state IN ('sending', 'sent', 'delivered', 'read', 'received')),
		sender      TEXT NOT NULL DEFAULT '',
		PRIMARY KEY (peer, dir, id)
	)`
}

// corrupt wraps SQLite's "not a database" and "malformed" errors with
// ErrHistoryCorrupt.
func corrupt(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT:
			return fmt.Errorf("%w: %v", ErrHistoryCorrupt, err)
		}
	}
	return err
}

// checkMessagePeer checks the peer of a conversation: a user, or a group's
// GroupPeer.
func checkMessagePeer(peer string) error {
	if identity.CheckUser(peer) != nil && !isGroupPeer(peer) {
		return ErrBadEnvelope
	}
	return nil
}

func checkMessage(m Message) error {
	switch {
	case !validID(m.ID):
		return fmt.Errorf("id %q: %w", m.ID, ErrBadEnvelope)
	case checkMessagePeer(m.Peer) != nil:
		return fmt.Errorf("peer %q: %w", m.Peer, ErrBadEnvelope)
	case m.From != "" && (!isGroupPeer(m.Peer) || identity.CheckUser(m.From) != nil):
		return fmt.Errorf("from %q: %w", m.From, ErrBadEnvelope)
	case m.Dir != DirIn && m.Dir != DirOut:
		return fmt.Errorf("direction %q: %w", m.Dir, ErrBadEnvelope)
	case len(m.FromDevice) != ed25519.PublicKeySize:
		return fmt.Errorf("from device: %w", ErrBadEnvelope)
	}
	return CheckText(m.Text)
}

// AddOutgoing records a message this device is about to send, in state
// StateSending (or m.State, if StateSent). An id already in the
// conversation is refused with ErrDuplicateMessage.
func (h *History) AddOutgoing(m Message) error {
	m.Dir = DirOut
	if m.State != StateSent {
		m.State = StateSending
	}
	ok, err := h.add(m)
	if err != nil {
		return fmt.Errorf("client: history: add message %s to %s: %w", m.ID, m.Peer, err)
	}
	if !ok {
		return fmt.Errorf("client: history: add message %s to %s: %w", m.ID, m.Peer, ErrDuplicateMessage)
	}
	return nil
}

// AddIncoming records a message that arrived: from Peer (Dir DirIn, stored
// as StateReceived) or a copy of one another of my devices sent (DirOut,
// stored as StateSent, or StateDelivered when its receipt came first). It
// reports whether the message is new: false when it was already stored (it
// came another way too), and then it must not be shown again.
func (h *History) AddIncoming(m Message) (isNew bool, err error) {
	if m.Dir == DirIn {
		m.State = StateReceived
	} else {
		m.State = StateSent
	}
	ok, err := h.add(m)
	if err != nil {
		return false, fmt.Errorf("client: history: add message %s from %s: %w", m.ID, m.Peer, err)
	}
	return ok, nil
}

func (h *History) add(m Message) (bool, error) {
	if err := checkMessage(m); err != nil {
		return false, err
	}
	ctx := context.Background()
	tx, err := h.db.BeginTx(ctx, nil)
	if err != nil {
		return false, corrupt(err)
	}
	defer tx.Rollback()
	if m.Dir == DirOut {
		res, err := tx.ExecContext(ctx, `DELETE FROM early_acks WHERE peer = ? AND id = ?`, m.Peer, m.ID)
		if err != nil {
			return false, corrupt(err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			m.State = StateDelivered
		}
	}
	res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO messages (peer, dir, id, from_device, seq, ts, text, state, sender)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, m.Peer, m.Dir, m.ID, []byte(m.FromDevice), m.Seq, m.TS, m.Text, m.State, m.From)
	if err != nil {
		return false, corrupt(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	if n == 0 {
		return false, nil // keep the early ack for a message that really is new
	}
	return true, corrupt(tx.Commit())
}

// MarkSent moves outgoing messages to peer from StateSending to StateSent.
func (h *History) MarkSent(peer string, ids []string) error {
	if _, err := h.mark(peer, ids, StateSent, `state = 'sending'`, false); err != nil {
		return fmt.Errorf("client: history: mark sent to %s: %w", peer, err)
	}
	return nil
}

// MarkDelivered marks outgoing messages to peer as delivered, as a receipt
// from peer says. Only messages to peer can be marked: a receipt from one user
// cannot mark a message to another. It returns the ids newly marked (in the
// order given), for the user to see "delivered" once; an id not in the
// history is remembered for a while, in case the message is a copy from
// another of my devices that has not arrived yet.
func (h *History) MarkDelivered(peer string, ids []string) ([]string, error) {
	done, err := h.mark(peer, ids, StateDelivered, `state IN ('sending', 'sent')`, true)
	if err != nil {
		return nil, fmt.Errorf("client: history: mark delivered to %s: %w", peer, err)
	}
	return done, nil
}

// MarkRead marks outgoing messages to peer as read, as a read receipt from
// peer says (only messages to peer, as for [History.MarkDelivered]). It
// returns the ids newly marked.
func (h *History) MarkRead(peer string, ids []string) ([]string, error) {
	done, err := h.mark(peer, ids, StateRead, `state IN ('sending', 'sent', 'delivered')`, false)
	if err != nil {
		return nil, fmt.Errorf("client: history: mark read by %s: %w", peer, err)
	}
	return done, nil
}

// MarkSeen marks incoming messages from peer as read by this user, ids in
// the given order, or, when ids is empty, every one still unread, oldest
// first. It returns the ids newly marked: those a read receipt should
// acknowledge.
func (h *History) MarkSeen(peer string, ids []string) ([]string, error) {
	if len(ids) == 0 {
		rows, err := h.db.Query(`SELECT id FROM messages WHERE peer = ? AND dir = 'in' AND state = 'received'
			ORDER BY ts, seq, id`, peer)
		if err != nil {
			return nil, fmt.Errorf("client: history: unread from %s: %w", peer, corrupt(err))
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return nil, fmt.Errorf("client: history: unread from %s: %w", peer, corrupt(err))
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("client: history: unread from %s: %w", peer, corrupt(err))
		}
		rows.Close()
		if len(ids) == 0 {
			return nil, nil
		}
	}
	done, err := h.mark(peer, ids, StateRead, `state = 'received'`, false, DirIn)
	if err != nil {
		return nil, fmt.Errorf("client: history: mark seen from %s: %w", peer, err)
	}
	return done, nil
}

// mark moves messages with peer (outgoing, or in dir when given) whose
// state matches the condition from to state, and returns the ids it moved.
// With early, an outgoing id not in the history is kept in early_acks.
func (h *History) mark(peer string, ids []string, state, from string, early bool, dir ...string) ([]string, error) {
	d := DirOut
	if len(dir) > 0 {
		d = dir[0]
	}
	ctx := context.Background()
	tx, err := h.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, corrupt(err)
	}
	defer tx.Rollback()
	now := time.Now()
	if early {
		if _, err := tx.ExecContext(ctx, `DELETE FROM early_acks WHERE at < ?`, now.Add(-earlyAckTTL).Unix()); err != nil {
			return nil, corrupt(err)
		}
	}
	var done []string
	for _, id := range ids {
		if !validID(id) {
			continue
		}
		res, err := tx.ExecContext(ctx, `UPDATE messages SET state = ? WHERE peer = ? AND dir = ? AND id = ? AND `+from, state, peer, d, id)
		if err != nil {
			return nil, corrupt(err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			done = append(done, id)
			continue
		}
		if !early {
			continue
		}
		var one int
		err = tx.QueryRowContext(ctx, `SELECT 1 FROM messages WHERE peer = ? AND dir = 'out' AND id = ?`, peer, id).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO early_acks (peer, id, at) VALUES (?, ?, ?)`, peer, id, now.Unix())
		}
		if err != nil {
			return nil, corrupt(err)
		}
	}
	return done, corrupt(tx.Commit())
}

// NextSeq returns the next conversation counter of this device for peer
// (from 1). It is stored, so order survives restarts.
func (h *History) NextSeq(peer string) (int64, error) {
	var n int64
	err := h.db.QueryRow(`INSERT INTO seqs (peer, last) VALUES (?, 1)
		ON CONFLICT (peer) DO UPDATE SET last = last + 1 RETURNING last`, peer).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("client: history: next seq for %s: %w", peer, corrupt(err))
	}
	return n, nil
}

// Conversation returns the last limit messages with peer (all if limit ≤ 0),
// in conversation order: by time, then seq, then id.
func (h *History) Conversation(peer string, limit int) ([]Message, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := h.db.Query(`SELECT * FROM (
		SELECT id, peer, dir, from_device, seq, ts, text, state, sender FROM messages WHERE peer = ?
		ORDER BY ts DESC, seq DESC, id DESC LIMIT ?) ORDER BY ts, seq, id`, peer, limit)
	if err != nil {
		return nil, fmt.Errorf("client: history: conversation with %s: %w", peer, corrupt(err))
	}
	ms, err := scanMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("client: history: conversation with %s: %w", peer, err)
	}
	return ms, nil
}

// Pending returns the outgoing messages to peer (to anyone if peer is "")
// not yet delivered, in conversation order, to resend after a restart. It
// includes copies of what my other devices sent: resend only those whose
// FromDevice is this device.
func (h *History) Pending(peer string) ([]Message, error) {
	rows, err := h.db.Query(`SELECT id, peer, dir, from_device, seq, ts, text, state, sender FROM messages
		WHERE state IN ('sending', 'sent') AND dir = 'out' AND (? = '' OR peer = ?)
		ORDER BY peer, ts, seq, id`, peer, peer)
	if err != nil {
		return nil, fmt.Errorf("client: history: pending to %s: %w", peer, corrupt(err))
	}
	ms, err := scanMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("client: history: pending to %s: %w", peer, err)
	}
	return ms, nil
}

func scanMessages(rows *sql.Rows) ([]Message, error) {
	defer rows.Close()
	var ms []Message
	for rows.Next() {
		var m Message
		var dev []byte
		if err := rows.Scan(&m.ID, &m.Peer, &m.Dir, &dev, &m.Seq, &m.TS, &m.Text, &m.State, &m.From); err != nil {
			return nil, corrupt(err)
		}
		m.FromDevice = ed25519.PublicKey(dev)
		ms = append(ms, m)
	}
	return ms, corrupt(rows.Err())
}

// State returns the state of message id of the conversation with peer in
// direction dir, and whether it is stored.
func (h *History) State(peer, dir, id string) (string, bool, error) {
	var st string
	err := h.db.QueryRow(`SELECT state FROM messages WHERE peer = ? AND dir = ? AND id = ?`, peer, dir, id).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("client: history: message %s of %s: %w", id, peer, corrupt(err))
	}
	return st, true, nil
}
