package supernode

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/parley/parley/internal/backoff"
)

type storedRecord struct {
	Record
	expires time.Time
}

// accept stores records published by their home supernode: only for users
// this supernode holds on its ring (with slack for views that differ while
// the ring changes), and at most MaxRecords in all. A record with no sessions
// is kept as a tombstone until it expires, so that a delayed older publish
// can't bring the user back.
func (m *mesh) accept(home string, recs []Record, now time.Time) {
	exp := now.Add(m.s.cfg.RecordTTL)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range recs {
		if r.Node != home {
			continue // a supernode speaks only for the users attached to it
		}
		if home != m.self.Name && !slices.Contains(m.ring.owners(r.User, m.s.cfg.Replicas+holderSlack), m.self.Name) {
			continue
		}
		byNode := m.store[r.User]
		old, ok := byNode[home]
		if ok && old.Seq > r.Seq {
			continue
		}
		if !ok && m.nrecords >= m.s.cfg.MaxRecords {
			continue
		}
		if byNode == nil {
			byNode = map[string]storedRecord{}
			m.store[r.User] = byNode
		}
		if !ok {
			m.nrecords++
		}
		byNode[home] = storedRecord{Record: r, expires: exp}
	}
}

// holderSlack is how many supernodes past its Replicas holders a supernode
// may be and still take a user's record.
const holderSlack = 2

// held returns the live records this supernode holds for user.
func (m *mesh) held(user string, now time.Time) []Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Record
	for _, r := range m.store[user] {
		if now.Before(r.expires) && len(r.Sessions) > 0 {
			out = append(out, r.Record)
		}
	}
	return out
}

func (m *mesh) expire() {
	now := m.s.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for u, byNode := range m.store {
		for n, r := range byNode {
			if !now.Before(r.expires) {
				delete(byNode, n)
				m.nrecords--
			}
		}
		if len(byNode) == 0 {
			delete(m.store, u)
		}
	}
}

// records returns the number of presence records held.
func (m *mesh) records() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, byNode := range m.store {
		for _, r := range byNode {
			if len(r.Sessions) > 0 {
				n++
			}
		}
	}
	return n
}

// markDirty queues user's record for publishing.
func (m *mesh) markDirty(user string) {
	m.mu.Lock()
	m.dirty[user] = true
	m.mu.Unlock()
	kick(m.kickPublish)
}

// publishLoop sends the records of the users attached here to the supernodes
// that hold them: at once when a user attaches or leaves or the ring changes,
// and every RefreshInterval for all of them (records are soft state).
func (m *mesh) publishLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.s.cfg.RefreshInterval)
	defer t.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	// Records a holder did not take are sent again soon, then less and less
	// often (the refresh every RefreshInterval sends them anyway).
	again := backoff.New(backoff.Policy{Floor: publishRetryFloor, Base: publishRetryBase, Cap: m.s.cfg.RefreshInterval})
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
			m.mu.Lock()
			m.dirtyAll = true
			m.mu.Unlock()
		case <-m.kickPublish:
			// Let a burst of attaches settle into one batch.
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		case <-retry.C:
		}
		if failed := m.publish(); failed {
			retry.Reset(again.Next())
		} else {
			again.Reset()
		}
	}
}

// The backoff of publishLoop's retries: the first within 250–500 ms, then
// doubling up to RefreshInterval.
const (
	publishRetryFloor = 250 * time.Millisecond
	publishRetryBase  = 500 * time.Millisecond
)

// publish sends out the dirty records; it reports whether some holder could
// not be reached (those records stay dirty and are retried).
func (m *mesh) publish() (failed bool) {
	m.mu.Lock()
	all := m.dirtyAll
	users := m.dirty
	m.dirty, m.dirtyAll = map[string]bool{}, false
	m.mu.Unlock()
	if all {
		for _, u := range m.s.localUsers() {
			users[u] = true
		}
	}
	return m.publishUsers(m.ctx, users)
}

// publishNow sends user's record to its holders and waits for them (at most
// a second), so that a client is findable by the time it is told it is
// attached: the replies to its first call must find it.
func (m *mesh) publishNow(ctx context.Context, user string) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if m.publishUsers(ctx, map[string]bool{user: true}) {
		kick(m.kickPublish) // the record stayed dirty: the loop retries it
	}
}

// publishUsers sends the records of users to their holders; those that could
// not be reached are marked dirty again.
func (m *mesh) publishUsers(ctx context.Context, users map[string]bool) (failed bool) {
	if len(users) == 0 {
		return false
	}
	byOwner := map[string][]Record{}
	m.mu.Lock()
	r := m.ring
	for u := range users {
		m.seq++
		sessions, hidden := m.s.sessionsAndHidden(u)
		rec := Record{User: u, Node: m.self.Name, Sessions: sessions, Hidden: hidden, Seq: m.seq}
		for _, o := range r.owners(u, m.s.cfg.Replicas) {
			byOwner[o] = append(byOwner[o], rec)
		}
	}
	m.mu.Unlock()
	now := m.s.now()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for owner, recs := range byOwner {
		if owner == m.self.Name {
			m.accept(owner, recs, now)
			continue
		}
		mb, ok := m.member(owner)
		if !ok {
			continue
		}
		for chunk := range slices.Chunk(recs, MaxMeshRecords/2) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				if _, err := m.call(ctx, mb, MeshMsg{Type: MeshPublish, Records: chunk}, mb.Key); err != nil {
					m.s.log.Debug("publish failed", "node", owner, "records", len(chunk), "err", err)
					mu.Lock()
					failed = true
					mu.Unlock()
					m.mu.Lock()
					for _, rec := range chunk {
						m.dirty[rec.User] = true
					}
					m.mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return failed
}
