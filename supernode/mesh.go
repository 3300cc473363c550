package supernode

import (
	"context"
	"crypto/ed25519"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/parley/parley/internal/nodeid"
)

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
