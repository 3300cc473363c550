package im

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
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
