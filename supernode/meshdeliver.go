package supernode

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/time/rate"
)

// Deliveries one member may forward to this supernode, per second and at
// once: the send limits of a few hundred of its clients talking here at once.
const (
	memberDeliverRate  = 2000
	memberDeliverBurst = 4000
)

// deliverAllowed takes one delivery from the sending member's budget.
func (m *mesh) deliverAllowed(from string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.limits[from]
	if l == nil {
		if len(m.limits) >= MaxMeshMembers {
			clear(m.limits) // members come and go; budgets start afresh
		}
		l = rate.NewLimiter(memberDeliverRate, memberDeliverBurst)
		m.limits[from] = l
	}
	return l.Allow()
}

// forward carries a send to the supernode a recipient is attached at and
// returns how many devices it reached there; an error when that supernode
// could not be reached (it may have died with the user's record still out).
func (m *mesh) forward(ctx context.Context, node string, d MeshDelivery) (int, error) {
	mb, ok := m.member(node)
	if !ok {
		return 0, fmt.Errorf("supernode: forward to %s: %w", node, ErrNotMember)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	r, err := m.call(ctx, mb, MeshMsg{Type: MeshDeliver, Deliver: &d}, mb.Key)
	if err != nil {
		m.s.log.Debug("forward failed", "node", node, "to", d.To, "err", err)
		return 0, err
	}
	return r.Delivered, nil
}
