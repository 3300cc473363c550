package im

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// isGroupPeer reports whether peer is a group conversation's.
func isGroupPeer(peer string) bool {
	id, ok := strings.CutPrefix(peer, GroupPeerPrefix)
	return ok && validID(id)
}

// GroupIDOf returns the group id of a group conversation's peer, and
// whether peer is one.
func GroupIDOf(peer string) (string, bool) {
	if !isGroupPeer(peer) {
		return "", false
	}
	return peer[len(GroupPeerPrefix):], true
}

// AddGroupOps stores verified operations of group id and returns those
// that were new, in the order given. It refuses (storing none) a batch
// that would take the log over MaxGroupOps with ErrGroupFull.
func (h *History) AddGroupOps(id string, ops []*GroupOp) ([]*GroupOp, error) {
	ctx := context.Background()
	tx, err := h.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, corrupt(err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM group_ops WHERE grp = ?`, id).Scan(&n); err != nil {
		return nil, fmt.Errorf("client: history: group %s: %w", id, corrupt(err))
	}
	var added []*GroupOp
	for _, o := range ops {
		if o.GroupOf() != id {
			return nil, fmt.Errorf("client: history: group %s: an operation of group %s: %w", id, o.GroupOf(), ErrBadGroupOp)
		}
		b, err := json.Marshal(o)
		if err != nil {
			return nil, fmt.Errorf("client: history: group %s: %w", id, err)
		}
		res, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO group_ops (grp, id, clock, op) VALUES (?, ?, ?, ?)`, id, o.ID(), o.Clock, b)
		if err != nil {
			return nil, fmt.Errorf("client: history: group %s: %w", id, corrupt(err))
		}
		if k, _ := res.RowsAffected(); k > 0 {
			added = append(added, o)
			n++
		}
	}
	if n > MaxGroupOps {
		return nil, fmt.Errorf("client: history: group %s: %d operations, at most %d: %w", id, n, MaxGroupOps, ErrGroupFull)
	}
	return added, corrupt(tx.Commit())
}

// GroupOps returns the stored operations of group id, in replay order.
func (h *History) GroupOps(id string) ([]*GroupOp, error) {
	rows, err := h.db.Query(`SELECT op FROM group_ops WHERE grp = ? ORDER BY clock, id`, id)
	if err != nil {
		return nil, fmt.Errorf("client: history: group %s: %w", id, corrupt(err))
	}
	defer rows.Close()
	var ops []*GroupOp
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, corrupt(err)
		}
		var o GroupOp
		if err := json.Unmarshal(b, &o); err != nil {
			return nil, fmt.Errorf("client: history: group %s: %w: %v", id, ErrHistoryCorrupt, err)
		}
		ops = append(ops, &o)
	}
	return ops, corrupt(rows.Err())
}

// Groups returns the ids of the groups whose logs this history holds.
func (h *History) Groups() ([]string, error) {
	rows, err := h.db.Query(`SELECT DISTINCT grp FROM group_ops ORDER BY grp`)
	if err != nil {
		return nil, fmt.Errorf("client: history: groups: %w", corrupt(err))
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, corrupt(err)
		}
		ids = append(ids, id)
	}
	return ids, corrupt(rows.Err())
}

// GroupOpsCount returns how many operations of group id the history holds.
func (h *History) GroupOpsCount(id string) (int, error) {
	var n int
	if err := h.db.QueryRow(`SELECT count(*) FROM group_ops WHERE grp = ?`, id).Scan(&n); err != nil {
		return 0, fmt.Errorf("client: history: group %s: %w", id, corrupt(err))
	}
	return n, nil
}

// HeldMessage is a group message held until its sender is known as a
// member ([History.Hold]).
type HeldMessage struct {
	Message
	// Via is how it came (a transport name, for the event shown later).
	Via string
}

// Hold keeps group message m of group id (m.Peer is GroupPeer(id)) until
// [History.Release] lets it go; beyond MaxHeldMessages the oldest held
// message is dropped.
func (h *History) Hold(id string, m HeldMessage) error {
	if err := checkMessage(m.Message); err != nil {
		return fmt.Errorf("client: history: hold %s: %w", m.ID, err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ctx := context.Background()
	tx, err := h.db.BeginTx(ctx, nil)
	if err != nil {
		return corrupt(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO group_held (grp, mid, at, msg) VALUES (?, ?, ?, ?)`,
		id, m.ID, time.Now().UnixMilli(), b); err != nil {
		return fmt.Errorf("client: history: hold %s: %w", m.ID, corrupt(err))
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM group_held WHERE rowid IN (
		SELECT rowid FROM group_held ORDER BY at DESC LIMIT -1 OFFSET ?)`, MaxHeldMessages); err != nil {
		return fmt.Errorf("client: history: hold %s: %w", m.ID, corrupt(err))
	}
	return corrupt(tx.Commit())
}

// Release returns and forgets the held messages of group id that keep
// says may go, oldest first.
func (h *History) Release(id string, keep func(HeldMessage) bool) ([]HeldMessage, error) {
	rows, err := h.db.Query(`SELECT mid, msg FROM group_held WHERE grp = ? ORDER BY at`, id)
	if err != nil {
		return nil, fmt.Errorf("client: history: held of group %s: %w", id, corrupt(err))
	}
	var out []HeldMessage
	var mids []string
	for rows.Next() {
		var mid string
		var b []byte
		if err := rows.Scan(&mid, &b); err != nil {
			rows.Close()
			return nil, corrupt(err)
		}
		var m HeldMessage
		if json.Unmarshal(b, &m) != nil || keep(m) {
			if m.ID != "" {
				out = append(out, m)
			}
			mids = append(mids, mid)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, corrupt(err)
	}
	for _, mid := range mids {
		if _, err := h.db.Exec(`DELETE FROM group_held WHERE grp = ? AND mid = ?`, id, mid); err != nil {
			return nil, fmt.Errorf("client: history: release %s: %w", mid, corrupt(err))
		}
	}
	return out, nil
}
