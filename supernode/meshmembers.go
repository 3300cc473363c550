package supernode

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/parley/parley/internal/backoff"
	"github.com/parley/parley/internal/nodeid"
)

// memberState is what this supernode knows of another one.
type memberState struct {
	Member
	// verified: it answered this supernode's own ping at Name with Key. Only
	// verified members are on the ring and may publish, look up and deliver.
	verified bool
	lastOK   time.Time // last answered ping
	since    time.Time // when it was learned or last went down
	left     bool      // said goodbye; not re-admitted until it pings again
	// An unverified one (a candidate, or a member that went down) is
	// pinged with a backoff: fails pings in a row failed, the next is due
	// at retryAt. Its own ping to us makes it due at once.
	fails   int
	retryAt time.Time
}

// probeRetry is the backoff of pings to a supernode that does not answer
// (and is not on the ring): from every ProbeInterval to every
// candidateRetryCap ProbeIntervals (30 s by default), with jitter.
func probeRetry(interval time.Duration) backoff.Policy {
	return backoff.Policy{Floor: interval, Base: interval, Cap: candidateRetryCap * interval}
}

// candidateRetryCap is probeRetry's cap, in ProbeIntervals.
const candidateRetryCap = 30

// learn notes a supernode heard of from a seed, the login server or gossip. A
// stranger becomes a candidate; only this supernode's own ping verifies it.
// fromItself is true when the member itself pinged us.
func (m *mesh) learn(mb Member, fromItself bool) {
	if mb.Name == m.self.Name || mb.Name == "" {
		return
	}
	if mb.URL != "" {
		// A member is dialled at its URL and known by its name: they must be
		// the same address, or a node could answer for another's name.
		if hp, _, err := nodeid.HostPort(mb.URL); err != nil || hp != mb.Name {
			return
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.members[mb.Name]
	if st == nil {
		if len(m.members) >= MaxMeshMembers || m.candidatesLocked() >= maxCandidates {
			return
		}
		m.members[mb.Name] = &memberState{Member: mb, since: m.s.now()}
		kick(m.kickProbe)
		return
	}
	if fromItself && st.left {
		st.left = false
		kick(m.kickProbe)
	}
	if fromItself && !st.verified {
		// It is up (at least it speaks from its address): ping it in the
		// next round, not at the end of its backoff.
		st.fails, st.retryAt = 0, time.Time{}
	}
	if !st.verified && len(mb.Key) == ed25519.PublicKeySize {
		st.Member = mb // a hint until our ping proves it
	}
}

func (m *mesh) candidatesLocked() int {
	n := 0
	for _, st := range m.members {
		if !st.verified {
			n++
		}
	}
	return n
}

// probeLoop pings every known supernode each ProbeInterval, admits those that
// answer, declares dead those silent for DeadAfter, and expires records.
func (m *mesh) probeLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.s.cfg.ProbeInterval)
	defer t.Stop()
	for {
		m.probeRound()
		m.expire()
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		case <-m.kickProbe:
		}
	}
}

func (m *mesh) probeRound() {
	m.mu.Lock()
	now0 := m.s.now()
	for name, st := range m.members {
		if !st.verified && now0.Sub(st.since) > forgetAfter {
			delete(m.members, name) // gone (or left) for long enough
		}
	}
	targets := make([]Member, 0, len(m.members))
	for _, st := range m.members {
		if !st.left && (st.verified || !now0.Before(st.retryAt)) {
			targets = append(targets, st.Member)
		}
	}
	// Gossip the member list every gossipEvery rounds, and every round for a
	// while after the ring changed; the pings in between are small.
	m.round++
	var gossip []Member
	if m.round%gossipEvery == 1 || m.s.now().Sub(m.changedAt) < gossipEvery*m.s.cfg.ProbeInterval {
		gossip = m.liveMembersLocked()
	}
	m.mu.Unlock()

	type result struct {
		name  string
		reply MeshMsg
		err   error
	}
	results := make(chan result, len(targets))
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(m.ctx, m.s.cfg.ProbeInterval)
			defer cancel()
			r, err := m.call(ctx, t, MeshMsg{Type: MeshPing, Members: gossip}, nil)
			results <- result{t.Name, r, err}
		}()
	}
	wg.Wait()
	close(results)

	now := m.s.now()
	changed := false
	var learned []Member
	m.mu.Lock()
	for r := range results {
		st := m.members[r.name]
		if st == nil {
			continue
		}
		if r.err == nil {
			if !st.verified || !bytes.Equal(st.Key, r.reply.From.Key) {
				m.s.log.Info("supernode joined the mesh", "node", r.name)
				changed = true
			}
			st.Member = r.reply.From
			st.verified, st.lastOK = true, now
			st.fails, st.retryAt = 0, time.Time{}
			learned = append(learned, r.reply.Members...)
			continue
		}
		switch {
		case st.verified && now.Sub(st.lastOK) >= m.s.cfg.DeadAfter:
			m.s.log.Warn("supernode dead", "node", r.name, "err", r.err)
			st.verified, st.since = false, now
			st.fails = 0
			changed = true
		case !st.verified && now.Sub(st.since) > forgetAfter:
			delete(m.members, r.name)
			continue
		}
		if !st.verified {
			st.retryAt = now.Add(probeRetry(m.s.cfg.ProbeInterval).Delay(st.fails))
			st.fails = min(st.fails+1, maxProbeFails)
		}
	}
	if changed {
		m.rebuildLocked()
	}
	m.mu.Unlock()
	for _, mb := range learned {
		m.learn(mb, false)
	}
}

// maxProbeFails bounds memberState.fails (the backoff is at its cap long
// before).
const maxProbeFails = 64

// gossipEvery is how many probe rounds pass between member-list exchanges.
const gossipEvery = 5

// forgetAfter is how long a supernode that never answers stays a candidate.
const forgetAfter = 2 * time.Minute

// rebuildLocked rebuilds the ring from the verified members and asks the
// publisher to republish every local record to its (possibly new) holders.
func (m *mesh) rebuildLocked() {
	names := []string{m.self.Name}
	for _, st := range m.members {
		if st.verified {
			names = append(names, st.Name)
		}
	}
	m.ring = newRing(names)
	m.changedAt = m.s.now()
	m.dirtyAll = true
	kick(m.kickPublish)
}

// liveMembersLocked returns this supernode and the verified members, at most
// maxGossip of them (a random sample beyond that), for gossip.
func (m *mesh) liveMembersLocked() []Member {
	out := []Member{m.self}
	for _, st := range m.members {
		if st.verified {
			out = append(out, st.Member)
		}
	}
	if len(out) > maxGossip {
		rest := out[1:]
		rand.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
		out = out[:maxGossip]
	}
	return out
}

// maxGossip caps the members one ping or pong carries (well under
// MaxMeshMembers and MaxMeshSize even with the longest names).
const maxGossip = 256

// maxCandidates caps the supernodes heard of but not (yet) verified.
const maxCandidates = 256

// member returns the verified member called name.
func (m *mesh) member(name string) (Member, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.members[name]
	if st == nil || !st.verified {
		return Member{}, false
	}
	return st.Member, true
}

// liveURLs returns up to n live members' client URLs, in random order.
func (m *mesh) liveURLs(n int) []string {
	m.mu.Lock()
	var out []string
	for _, st := range m.members {
		if st.verified && st.URL != "" {
			out = append(out, st.URL)
		}
	}
	m.mu.Unlock()
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:min(n, len(out))]
}

// size returns the number of live supernodes this one knows, itself
// included.
func (m *mesh) size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ring.nodes
}

// candidates returns the number of supernodes this one has heard of that are
// not on its ring (not verified yet, or gone down) and did not say goodbye.
func (m *mesh) candidates() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, st := range m.members {
		if !st.verified && !st.left {
			n++
		}
	}
	return n
}
