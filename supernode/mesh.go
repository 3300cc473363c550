package supernode

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/internal/nodeid"
	"github.com/parley/parley/wire/snapi"
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
}

// mesh is a supernode's membership view, its share of the directory and the
// messaging between supernodes. Its goroutines belong to the Server.
type mesh struct {
	s    *Server
	self Member
	key  ed25519.PrivateKey
	hc   *http.Client

	kickProbe   chan struct{} // probe now (a new candidate)
	kickPublish chan struct{} // publish dirty records now

	// The probe and publish loops stop before the goodbye goes out, so that
	// no ping of ours brings us back onto a ring we have just left.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu        sync.Mutex
	members   map[string]*memberState // by name, never self
	ring      *ring
	store     map[string]map[string]storedRecord // user → home node → record
	dirty     map[string]bool                    // local users whose records must go out
	dirtyAll  bool
	seq       int64
	nrecords  int       // records and tombstones in store
	round     int       // probe rounds so far
	closed    bool      // left: mesh requests are refused
	changedAt time.Time // when the ring last changed

	limits map[string]*rate.Limiter // per sending member: deliveries

	msgsOut, bytesOut, bytesIn atomic.Int64
	publishOut                 atomic.Int64 // bytes of publish requests sent
}

type storedRecord struct {
	Record
	expires time.Time
}

func newMesh(s *Server) *mesh {
	m := &mesh{
		s: s, key: s.cfg.NodeKey, hc: s.cfg.MeshClient,
		self:        Member{Name: s.cfg.Name, URL: s.advertise(), Key: s.cfg.NodeKey.Public().(ed25519.PublicKey)},
		kickProbe:   make(chan struct{}, 1),
		kickPublish: make(chan struct{}, 1),
		members:     map[string]*memberState{},
		store:       map[string]map[string]storedRecord{},
		dirty:       map[string]bool{},
		limits:      map[string]*rate.Limiter{},
		seq:         s.now().UnixNano(),
	}
	m.ring = newRing([]string{m.self.Name})
	m.ctx, m.cancel = context.WithCancel(s.ctx)
	for _, u := range s.cfg.Seeds {
		if name, _, err := nodeid.HostPort(u); err == nil {
			m.learn(Member{Name: name, URL: u}, false)
		}
	}
	return m
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

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
		if !st.left {
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
			learned = append(learned, r.reply.Members...)
			continue
		}
		switch {
		case st.verified && now.Sub(st.lastOK) >= m.s.cfg.DeadAfter:
			m.s.log.Warn("supernode dead", "node", r.name, "err", r.err)
			st.verified, st.since = false, now
			changed = true
		case !st.verified && now.Sub(st.since) > forgetAfter:
			delete(m.members, r.name)
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

// start runs the probe and publish loops.
func (m *mesh) start() {
	m.wg.Add(2)
	go m.probeLoop()
	go m.publishLoop()
}

// leave stops the loops and tells every live member that this supernode is
// going away, so they take it off their rings at once instead of after
// DeadAfter.
func (m *mesh) leave(ctx context.Context) {
	m.cancel()
	m.wg.Wait()
	m.mu.Lock()
	m.closed = true
	live := m.liveMembersLocked()[1:]
	m.mu.Unlock()
	var wg sync.WaitGroup
	for _, mb := range live {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.call(ctx, mb, MeshMsg{Type: MeshLeave}, mb.Key)
		}()
	}
	wg.Wait()
}

// call sends one signed request to mb and returns its verified reply. want is
// the key the reply must be signed with; nil accepts the key the reply names
// (a ping: answering at mb.Name with a key is the proof).
func (m *mesh) call(ctx context.Context, mb Member, msg MeshMsg, want ed25519.PublicKey) (MeshMsg, error) {
	_, base, err := nodeid.HostPort(memberURL(mb))
	if err != nil {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: %w", msg.Type, mb.Name, err)
	}
	msg.V, msg.From, msg.To, msg.TS = snapi.ProtocolVersion, m.self, mb.Name, m.s.now().UnixMilli()
	body, err := json.Marshal(msg)
	if err != nil {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: %w", msg.Type, mb.Name, err)
	}
	sig := identity.SignContext(m.key, MeshContext, body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+MeshPath, bytes.NewReader(body))
	if err != nil {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: %w", msg.Type, mb.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(MeshSigHeader, base64.StdEncoding.EncodeToString(sig))
	m.msgsOut.Add(1)
	m.bytesOut.Add(int64(len(body)))
	if msg.Type == MeshPublish {
		m.publishOut.Add(int64(len(body)))
	}
	resp, err := m.hc.Do(req)
	if err != nil {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: %w: %v", msg.Type, mb.Name, snapi.ErrDisconnected, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, MaxMeshSize+1))
	if err != nil {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: %w: %v", msg.Type, mb.Name, snapi.ErrDisconnected, err)
	}
	m.bytesIn.Add(int64(len(rb)))
	reply, err := DecodeMeshMsg(rb)
	if err != nil {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: reply: %w", msg.Type, mb.Name, err)
	}
	if reply.From.Name != mb.Name || reply.To != m.self.Name || !sameAddr(reply.From, mb.Name) {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: reply from %q: %w", msg.Type, mb.Name, reply.From.Name, ErrMeshAuth)
	}
	key := ed25519.PublicKey(reply.From.Key)
	if want != nil && !key.Equal(want) {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: reply signed by another key: %w", msg.Type, mb.Name, ErrMeshAuth)
	}
	rsig, _ := base64.StdEncoding.DecodeString(resp.Header.Get(MeshSigHeader))
	if !identity.VerifyContext(key, MeshReplyContext, replyMessage(sig, rb), rsig) {
		return MeshMsg{}, fmt.Errorf("supernode: mesh %s to %s: reply signature: %w", msg.Type, mb.Name, ErrMeshAuth)
	}
	if reply.Type == MeshError {
		return reply, fmt.Errorf("supernode: mesh %s to %s: %w: %s", msg.Type, mb.Name, ErrNotMember, reply.Error)
	}
	return reply, nil
}

// sameAddr reports whether mb's URL (if any) is at name.
func sameAddr(mb Member, name string) bool {
	if mb.URL == "" {
		return true
	}
	hp, _, err := nodeid.HostPort(mb.URL)
	return err == nil && hp == name
}

// memberURL is where mb's mesh endpoint lives: its client URL's server, or
// plain http at its name.
func memberURL(mb Member) string {
	if mb.URL != "" {
		return mb.URL
	}
	return "http://" + mb.Name
}

// serveMesh answers one mesh request.
func (s *Server) serveMesh(w http.ResponseWriter, r *http.Request) {
	m := s.mesh
	if r.Method != http.MethodPost {
		writeMeshErr(w, http.StatusMethodNotAllowed, "use POST")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxMeshSize+1))
	if err != nil {
		return
	}
	m.bytesIn.Add(int64(len(body)))
	msg, err := DecodeMeshMsg(body)
	if err != nil {
		writeMeshErr(w, http.StatusBadRequest, err.Error())
		return
	}
	sig, _ := base64.StdEncoding.DecodeString(r.Header.Get(MeshSigHeader))
	now := s.now()
	switch {
	case msg.To != m.self.Name:
		writeMeshErr(w, http.StatusMisdirectedRequest, "this supernode is "+m.self.Name)
		return
	case absDuration(now.Sub(time.UnixMilli(msg.TS))) > identity.Skew:
		writeMeshErr(w, http.StatusBadRequest, "timestamp outside the allowed clock skew")
		return
	case !identity.VerifyContext(msg.From.Key, MeshContext, body, sig):
		writeMeshErr(w, http.StatusUnauthorized, "signature does not verify")
		return
	}
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	if closed {
		writeMeshErr(w, http.StatusServiceUnavailable, "this supernode has left the mesh")
		return
	}
	// A stranger is taken as a candidate only when it speaks from the
	// address it names (so nobody can make this supernode ping third
	// parties), and only verified members' gossip is listened to.
	fromItself := sameIP(msg.From.Name, r.RemoteAddr)
	from, isMember := m.member(msg.From.Name)
	isMember = isMember && bytes.Equal(from.Key, msg.From.Key)
	var reply MeshMsg
	if msg.Type == MeshPing {
		if fromItself {
			m.learn(msg.From, true)
		}
		if isMember {
			for _, mb := range msg.Members {
				m.learn(mb, false)
			}
		}
		reply = MeshMsg{Type: MeshPong}
		if len(msg.Members) > 0 { // gossip is answered with gossip
			m.mu.Lock()
			reply.Members = m.liveMembersLocked()
			m.mu.Unlock()
		}
	} else if !isMember {
		if fromItself {
			m.learn(msg.From, true)
		}
		reply = MeshMsg{Type: MeshError, Error: "not a member of this supernode's mesh (yet)"}
	} else {
		switch msg.Type {
		case MeshLeave:
			m.mu.Lock()
			if st := m.members[msg.From.Name]; st != nil {
				st.verified, st.left, st.since = false, true, now
				m.rebuildLocked()
			}
			m.mu.Unlock()
			s.log.Info("supernode left the mesh", "node", msg.From.Name)
			reply = MeshMsg{Type: MeshOK}
		case MeshPublish:
			m.accept(msg.From.Name, msg.Records, now)
			reply = MeshMsg{Type: MeshOK}
		case MeshLookup:
			reply = MeshMsg{Type: MeshFound, Records: m.held(msg.User, now)}
		case MeshDeliver:
			if msg.Deliver == nil {
				reply = MeshMsg{Type: MeshError, Error: "deliver without a delivery"}
				break
			}
			if !m.deliverAllowed(msg.From.Name) {
				// A member can't flood this supernode's users past what
				// its own clients' send limits would allow.
				reply = MeshMsg{Type: MeshDelivered}
				break
			}
			reply = MeshMsg{Type: MeshDelivered, Delivered: s.deliverLocal(*msg.Deliver, nil)}
		default:
			reply = MeshMsg{Type: MeshError, Error: "unknown type " + truncate(msg.Type, 32)}
		}
	}
	reply.V, reply.From, reply.To, reply.TS = snapi.ProtocolVersion, m.self, msg.From.Name, now.UnixMilli()
	rb, err := json.Marshal(reply)
	if err != nil {
		writeMeshErr(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(MeshSigHeader, base64.StdEncoding.EncodeToString(
		identity.SignContext(m.key, MeshReplyContext, replyMessage(sig, rb))))
	if reply.Type == MeshError {
		w.WriteHeader(http.StatusForbidden)
	}
	w.Write(rb)
}

// sameIP reports whether name (host:port) has the IP of remote (host:port).
func sameIP(name, remote string) bool {
	n, err1 := netip.ParseAddrPort(name)
	r, err2 := netip.ParseAddrPort(remote)
	return err1 == nil && err2 == nil && n.Addr().Unmap() == r.Addr().Unmap()
}

func writeMeshErr(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": truncate(msg, 200)})
}

func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

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
			retry.Reset(500 * time.Millisecond)
		}
	}
}

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
// to ask the others too.
func (m *mesh) lookup(ctx context.Context, user string) location {
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
