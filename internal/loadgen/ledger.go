package loadgen

import (
	"slices"
	"sync"
)

// ledger records every message created and every delivery of it, so that
// the end of a run can say what was lost or delivered twice.
type ledger struct {
	mu   sync.Mutex
	msgs map[string]*msgRec
	// duplicates: one try of a message delivered more than once (a
	// supernode or the mesh repeating a send); misrouted: delivered to
	// another user than its recipient; unknown: a delivery of a message
	// never created.
	duplicates, misrouted, unknown, redelivered int64
}

type msgRec struct {
	to    string
	tries []int // the tries delivered
}

func newLedger() *ledger { return &ledger{msgs: map[string]*msgRec{}} }

func (l *ledger) created(id, to string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.msgs[id] = &msgRec{to: to}
}

func (l *ledger) delivered(id string, try int, to string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.msgs[id]
	switch {
	case r == nil:
		l.unknown++
	case r.to != to:
		l.misrouted++
	case slices.Contains(r.tries, try):
		l.duplicates++
	default:
		r.tries = append(r.tries, try)
		if len(r.tries) > 1 {
			l.redelivered++ // a resend whose receipt was lost: shown once (by id)
		}
	}
}

// ledgerCounts are the ledger's totals.
type ledgerCounts struct {
	created, delivered, lost, duplicates, misrouted, unknown, redelivered int64
	lostIDs                                                               []string // the first few
}

func (l *ledger) counts() ledgerCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := ledgerCounts{created: int64(len(l.msgs)), duplicates: l.duplicates, misrouted: l.misrouted,
		unknown: l.unknown, redelivered: l.redelivered}
	for id, r := range l.msgs {
		if len(r.tries) > 0 {
			c.delivered++
		} else {
			c.lost++
			if len(c.lostIDs) < 10 {
				c.lostIDs = append(c.lostIDs, id+"→"+r.to)
			}
		}
	}
	return c
}
