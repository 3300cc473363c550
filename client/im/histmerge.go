package im

import (
	"context"
	"encoding/json"
	"fmt"
)

// Conversation is one conversation of the history: its peer, the time of
// its newest message (Unix ms) and how many messages it holds.
type Conversation struct {
	Peer   string
	LastTS int64
	N      int
}

// Conversations lists the conversations of the history, newest first.
func (h *History) Conversations() ([]Conversation, error) {
	rows, err := h.db.Query(`SELECT peer, max(ts), count(*) FROM messages GROUP BY peer ORDER BY max(ts) DESC`)
	if err != nil {
		return nil, fmt.Errorf("client: history: conversations: %w", corrupt(err))
	}
	defer rows.Close()
	var out []Conversation
	for rows.Next() {
		var c Conversation
		if err := rows.Scan(&c.Peer, &c.LastTS, &c.N); err != nil {
			return nil, corrupt(err)
		}
		out = append(out, c)
	}
	return out, corrupt(rows.Err())
}

// Since returns the last limit messages of the conversation with peer dated
// at or after since (Unix ms), in conversation order.
func (h *History) Since(peer string, since int64, limit int) ([]Message, error) {
	rows, err := h.db.Query(`SELECT * FROM (
		SELECT id, peer, dir, from_device, seq, ts, text, state, sender FROM messages WHERE peer = ? AND ts >= ?
		ORDER BY ts DESC, seq DESC, id DESC LIMIT ?) ORDER BY ts, seq, id`, peer, since, limit)
	if err != nil {
		return nil, fmt.Errorf("client: history: conversation with %s: %w", peer, corrupt(err))
	}
	ms, err := scanMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("client: history: conversation with %s: %w", peer, err)
	}
	return ms, nil
}

// stateRank orders the states a message goes through: a merge only moves a
// message forward.
var stateRank = map[string]int{StateSending: 0, StateSent: 1, StateDelivered: 2, StateRead: 3, StateReceived: 0}

// Merge stores messages another device of this user sent (a history
// batch): each is checked first, and one that does not pass refuses the
// whole batch, storing nothing. A message already held keeps the further
// of the two states (sent before delivered before read; received before
// read). It returns how many messages were new.
func (h *History) Merge(ms []Message) (int, error) {
	for i, m := range ms {
		if err := checkSynced(m); err != nil {
			return 0, fmt.Errorf("client: history: merge: message %d: %w: %w", i, ErrBadHistory, err)
		}
	}
	ctx := context.Background()
	tx, err := h.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, corrupt(err)
	}
	defer tx.Rollback()
	ins, err := tx.PrepareContext(ctx, `INSERT OR IGNORE INTO messages (peer, dir, id, from_device, seq, ts, text, state, sender)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return 0, corrupt(err)
	}
	defer ins.Close()
	up, err := tx.PrepareContext(ctx, `UPDATE messages SET state = ? WHERE peer = ? AND dir = ? AND id = ? AND state IN (`+
		`SELECT value FROM json_each(?))`)
	if err != nil {
		return 0, corrupt(err)
	}
	defer up.Close()
	added := 0
	for _, m := range ms {
		res, err := ins.ExecContext(ctx, m.Peer, m.Dir, m.ID, []byte(m.FromDevice), m.Seq, m.TS, m.Text, m.State, m.From)
		if err != nil {
			return 0, fmt.Errorf("client: history: merge: %w", corrupt(err))
		}
		if n, _ := res.RowsAffected(); n > 0 {
			added++
			continue
		}
		if below := statesBelow(m.Dir, m.State); below != "[]" {
			if _, err := up.ExecContext(ctx, m.State, m.Peer, m.Dir, m.ID, below); err != nil {
				return 0, fmt.Errorf("client: history: merge: %w", corrupt(err))
			}
		}
	}
	return added, corrupt(tx.Commit())
}

// statesBelow returns, as a JSON list, the states of direction dir a
// message moves on from to reach state.
func statesBelow(dir, state string) string {
	out := []string{}
	for _, s := range []string{StateSending, StateSent, StateDelivered, StateReceived} {
		if (dir == DirIn) == (s == StateReceived) && stateRank[s] < stateRank[state] {
			out = append(out, s)
		}
	}
	b, _ := json.Marshal(out)
	return string(b)
}
