package supernode

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/parley/parley/wire/snapi"
)

// location is where a lookup found a user: the supernodes their devices are
// attached to and how many devices in all; shown counts only the devices that
// are not invisible.
type location struct {
	nodes   map[string]int // supernode name → sessions
	shown   map[string]int // supernode name → sessions not invisible
	devices int
	hops    int
}

// lookup finds where user is attached, asking the record holders: hops is 0
// when this supernode knew, 1 when the first holder answered, 2 when it had
// to ask the others too. It is counted in the lookup metrics.
func (m *mesh) lookup(ctx context.Context, user string) location {
	loc := m.find(ctx, user)
	m.s.m.lookup(loc.hops, loc.devices > 0)
	return loc
}

// find is lookup without the counting.
func (m *mesh) find(ctx context.Context, user string) location {
	loc := location{nodes: map[string]int{}, shown: map[string]int{}}
	found := false // a live record was found (perhaps of this supernode's own)
	add := func(recs []Record) {
		for _, r := range recs {
			if len(r.Sessions) == 0 || len(loc.nodes) >= snapi.MaxNodesFound {
				continue
			}
			if _, ok := m.member(r.Node); !ok && r.Node != m.self.Name {
				continue // only records naming live members are believed
			}
			found = true
			if r.Node != m.self.Name { // this supernode's own sessions are counted live below
				loc.nodes[r.Node] = max(loc.nodes[r.Node], len(r.Sessions))
				loc.shown[r.Node] = max(loc.shown[r.Node], len(r.Sessions)-len(r.Hidden), 0)
			}
		}
	}
	m.mu.Lock()
	owners := m.ring.owners(user, m.s.cfg.Replicas)
	m.mu.Unlock()
	if i := slices.Index(owners, m.self.Name); i >= 0 {
		add(m.held(user, m.s.now()))
		owners = slices.Delete(owners, i, i+1)
		if found || len(owners) == 0 {
			return m.withLocal(user, loc)
		}
		loc.hops = 1
		add(m.askAll(ctx, user, owners))
		return m.withLocal(user, loc)
	}
	if len(owners) == 0 {
		return m.withLocal(user, loc)
	}
	loc.hops = 1
	if recs, err := m.ask(ctx, owners[0], user); err == nil && len(recs) > 0 {
		add(recs)
		if found {
			return m.withLocal(user, loc)
		}
	}
	if len(owners) > 1 {
		loc.hops = 2
		add(m.askAll(ctx, user, owners[1:]))
	}
	return m.withLocal(user, loc)
}

func (m *mesh) withLocal(user string, loc location) location {
	if sessions, hidden := m.s.sessionsAndHidden(user); len(sessions) > 0 {
		loc.nodes[m.self.Name] = len(sessions)
		loc.shown[m.self.Name] = len(sessions) - len(hidden)
	}
	for _, n := range loc.nodes {
		loc.devices += n
	}
	return loc
}

func (m *mesh) ask(ctx context.Context, owner, user string) ([]Record, error) {
	mb, ok := m.member(owner)
	if !ok {
		return nil, fmt.Errorf("supernode: lookup at %s: %w", owner, ErrNotMember)
	}
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	r, err := m.call(ctx, mb, MeshMsg{Type: MeshLookup, User: user}, mb.Key)
	if err != nil {
		return nil, err
	}
	return r.Records, nil
}

// lookupTimeout bounds one holder's answer; a dead holder that hasn't been
// noticed yet costs at most this.
const lookupTimeout = time.Second

func (m *mesh) askAll(ctx context.Context, user string, owners []string) []Record {
	var mu sync.Mutex
	var out []Record
	var wg sync.WaitGroup
	for _, o := range owners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			recs, _ := m.ask(ctx, o, user)
			mu.Lock()
			out = append(out, recs...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}
