package client_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/parley/parley/client"
	"github.com/parley/parley/codec"
	"github.com/parley/parley/internal/audiotest"
	"github.com/parley/parley/login"
	"github.com/parley/parley/relay"
	"github.com/parley/parley/supernode"
)

// mesh is a login server and supernodes on loopback, each with its own relay on
// its own loopback address (127.0.0.2, 127.0.0.3, ...), joined in one mesh.
// Clients reach them with Prefer and learn the others from the supernode they
// attach to.
type mesh struct {
	loginURL string
	nodes    []*meshNode
}

type meshNode struct {
	url, name string
	relayHost string
	sn        *supernode.Server
	relay     *relay.Server
	relayPC   net.PacketConn
	ln        *killableListener
	killOnce  sync.Once
}

// kill makes the supernode and its relay die at once, as a crashed host does:
// the listener and every connection close, the relay stops answering, and the
// mesh is not told.
func (n *meshNode) kill() {
	n.killOnce.Do(func() {
		// The relay's socket goes first: relay.Close may take a while to
		// wind its allocations down, and a crashed relay forwards nothing
		// in the meantime.
		n.relayPC.Close()
		n.ln.kill()
		n.relay.Close()
	})
}

// killableListener remembers the connections it accepted, so that hijacked
// websockets die with it too.
type killableListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
	dead  bool
}

func (l *killableListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead {
		c.Close()
		return nil, net.ErrClosed
	}
	l.conns = append(l.conns, c)
	return c, nil
}

func (l *killableListener) kill() {
	l.mu.Lock()
	l.dead = true
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	l.Listener.Close()
	for _, c := range conns {
		c.Close()
	}
}

func startMesh(t *testing.T, n int) *mesh {
	t.Helper()
	dir := t.TempDir()
	ls, err := login.New(login.Config{
		DB: filepath.Join(dir, "login.db"), DataDir: dir,
		Argon2:                  login.Argon2Params{Time: 1, Memory: 1024, Threads: 1},
		MaxRegistrationsPerAddr: 1000, // every test user comes from 127.0.0.1
	})
	if err != nil {
		t.Fatal(err)
	}
	lhs := httptest.NewServer(ls.Handler())
	t.Cleanup(func() { lhs.Close(); ls.Close() })
	m := &mesh{loginURL: lhs.URL}
	secret := []byte("a test secret of enough length")
	var seeds []string
	for i := range n {
		host := fmt.Sprintf("127.0.0.%d", 2+i)
		pc, err := net.ListenPacket("udp4", host+":0")
		if err != nil {
			t.Fatal(err)
		}
		rs, err := relay.New(relay.Config{
			PacketConn: pc, RelayIP: net.ParseIP(host), Secret: secret,
			AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		})
		if err != nil {
			t.Fatal(err)
		}
		udp, _, _ := rs.Addrs()
		hs := httptest.NewUnstartedServer(nil)
		kl := &killableListener{Listener: hs.Listener}
		hs.Listener = kl
		name := kl.Addr().String()
		url := "ws://" + name + "/v1/ws"
		sn, err := supernode.New(supernode.Config{
			LoginKey: ls.PublicKey(), Name: name, Seeds: slices.Clone(seeds),
			ProbeInterval: 200 * time.Millisecond, DeadAfter: time.Second,
			ICEServers: supernode.RelayOffer{Host: host, UDP: udp, Secret: secret, TTL: time.Hour}.ICEServers(),
		})
		if err != nil {
			t.Fatal(err)
		}
		hs.Config.Handler = sn.Handler()
		hs.Start()
		node := &meshNode{url: url, name: name, relayHost: host, sn: sn, relay: rs, relayPC: pc, ln: kl}
		t.Cleanup(func() {
			node.kill()
			sn.Close()
			hs.Close()
		})
		m.nodes = append(m.nodes, node)
		seeds = append(seeds, url)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, node := range m.nodes {
		for node.sn.Stats().Members != n {
			if time.Now().After(deadline) {
				t.Fatalf("supernode %s sees %d members, want %d", node.name, node.sn.Stats().Members, n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return m
}

// user registers name and brings it online at supernode i first.
func (m *mesh) user(t *testing.T, name string, i int, cfg client.SessionConfig) *client.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var logger *slog.Logger
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})).With("user", name)
	}
	c, err := client.New(client.Config{Home: t.TempDir(), LoginURL: m.loginURL, Logger: logger})
	must(t, err)
	must(t, c.Register(ctx, name, "password-"+name))
	must(t, c.Login(ctx, name, "password-"+name))
	cfg.Prefer = m.nodes[i].url
	s, err := c.Online(ctx, cfg)
	must(t, err)
	t.Cleanup(func() { s.Close() })
	if got := s.Supernode(); got != m.nodes[i].url {
		t.Fatalf("%s attached to %s, want %s", name, got, m.nodes[i].url)
	}
	return s
}

// findable waits until s's supernode finds user (presence spreads through the
// mesh in the background).
func (m *mesh) findable(t *testing.T, s *client.Session, user string) {
	t.Helper()
	if !waitFor(5*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		f, err := s.Lookup(ctx, user)
		return err == nil && f.Devices > 0
	}) {
		t.Fatalf("%s cannot find %s", s.User(), user)
	}
}

// waitFor polls cond every 20 ms until it holds or d has passed.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// since returns the events after at that match pred.
func (e *events) since(at time.Time, pred func(client.Event) bool) []client.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []client.Event
	for _, ev := range e.all {
		if !ev.TS.Before(at) && pred(ev) {
			out = append(out, ev)
		}
	}
	return out
}

// TestFailoverToAnotherSupernode: alice's supernode dies; her session moves to
// the other supernode by itself, says so in events, and bob (on the other
// supernode) finds her and calls her within 5 s.
func TestFailoverToAnotherSupernode(t *testing.T) {
	m := startMesh(t, 2)
	var aliceEv events
	answered := make(chan *client.Call, 1)
	alice := m.user(t, "alice", 0, client.SessionConfig{OnEvent: aliceEv.add, OnIncoming: func(in *client.Incoming) {
		c, err := in.Answer(context.Background(), client.Media{})
		if err == nil {
			answered <- c
		}
	}})
	bob := m.user(t, "bob", 1, client.SessionConfig{})

	killed := time.Now()
	m.nodes[0].kill()

	if !waitFor(5*time.Second, func() bool { return alice.Supernode() == m.nodes[1].url }) {
		t.Fatalf("alice not attached to the second supernode 5 s after the first died (at %q)", alice.Supernode())
	}
	attached := time.Since(killed)
	found := waitFor(5*time.Second-attached, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		f, err := bob.Lookup(ctx, "alice")
		return err == nil && slices.Contains(f.Nodes, m.nodes[1].name)
	})
	findable := time.Since(killed)
	t.Logf("alice re-attached %v and was findable %v after her supernode died", attached.Round(time.Millisecond), findable.Round(time.Millisecond))
	if !found {
		t.Fatalf("bob cannot find alice at the second supernode 5 s after the first died")
	}
	off := aliceEv.since(killed, func(ev client.Event) bool { return ev.Event == "offline" })
	on := aliceEv.since(killed, func(ev client.Event) bool { return ev.Event == "online" })
	if len(off) != 1 || off[0].Info.Supernode != m.nodes[0].url || off[0].Info.Message == "" {
		t.Errorf("offline events %+v, want one naming %s with a reason", off, m.nodes[0].url)
	}
	if len(on) != 1 || on[0].Info.Supernode != m.nodes[1].url || on[0].Info.User != "alice" {
		t.Errorf("online events %+v, want one naming %s", on, m.nodes[1].url)
	}
	select {
	case <-alice.Done():
		t.Fatalf("alice's session ended: %v", alice.Err())
	default:
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call, err := bob.Call(ctx, "alice", client.Media{})
	if err != nil {
		t.Fatalf("bob calls alice after her failover: %v", err)
	}
	var ac *client.Call
	select {
	case ac = <-answered:
	case <-time.After(5 * time.Second):
		t.Fatal("alice's side never connected")
	}
	if !waitFor(3*time.Second, func() bool { return ac.Stats().PacketsReceived > 25 }) {
		t.Errorf("alice received %d packets from bob", ac.Stats().PacketsReceived)
	}
	call.Hangup("hangup")
	<-call.Done()
	<-ac.Done()
}

// rtpLog keeps the arrival time and RTP timestamp of every packet.
type rtpLog struct {
	mu      sync.Mutex
	arrived []time.Time
	ts      []uint32
}

func (r *rtpLog) add(ts uint32, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.arrived = append(r.arrived, at)
	r.ts = append(r.ts, ts)
}

func (r *rtpLog) snapshot() ([]time.Time, []uint32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.arrived), slices.Clone(r.ts)
}

// gapAfter returns the longest silence between arrivals from at on, and the
// index of the first packet after it.
func gapAfter(arrived []time.Time, at time.Time) (time.Duration, int) {
	var longest time.Duration
	idx := -1
	for i := 1; i < len(arrived); i++ {
		if arrived[i].Before(at) {
			continue
		}
		prev := arrived[i-1]
		if prev.Before(at) {
			prev = at
		}
		if d := arrived[i].Sub(prev); d > longest {
			longest, idx = d, i
		}
	}
	return longest, idx
}

// TestRelayedCallRestartsICE: a call goes through the relay of one end's
// supernode; that supernode and its relay die. The session moves to the other
// supernode, ICE restarts over it (driven by the caller, asked for by the callee
// when the callee is the one that moved), and the audio goes on through the
// other supernode's relay within 5 s: the callee hears the right speech again,
// and both ends report the new path.
func TestRelayedCallRestartsICE(t *testing.T) {
	for _, tt := range []struct {
		name        string
		callerOn    int // supernode the caller starts on (0 dies)
		callerRelay bool
	}{
		{"caller's relay dies", 0, true},
		{"callee's relay dies", 1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := startMesh(t, 2)
			calleeOn := 1 - tt.callerOn
			rec := &recorder{}
			var rtps rtpLog
			var bobEv, aliceEv events
			bobCall := make(chan *client.Call, 1)
			m.user(t, "bob", calleeOn, client.SessionConfig{
				RelayOnly: !tt.callerRelay, OnEvent: bobEv.add,
				OnIncoming: func(in *client.Incoming) {
					c, err := in.Answer(context.Background(), client.Media{Sink: rec, OnRTP: func(h rtp.Header, at time.Time) { rtps.add(h.Timestamp, at) }})
					if err != nil {
						t.Errorf("answer: %v", err)
						return
					}
					bobCall <- c
				},
			})
			alice := m.user(t, "alice", tt.callerOn, client.SessionConfig{RelayOnly: tt.callerRelay, OnEvent: aliceEv.add})
			m.findable(t, alice, "bob")

			ref := audiotest.Speech(11, 16*time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			call, err := alice.Call(ctx, "bob", client.Media{Source: codec.NewPCMFrameReader(ref)})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { call.Hangup("hangup"); <-call.Done() }()
			var bc *client.Call
			select {
			case bc = <-bobCall:
			case <-time.After(5 * time.Second):
				t.Fatal("bob never answered")
			}
			dying := m.nodes[0].relayHost
			if !waitFor(3*time.Second, func() bool {
				st := call.Stats()
				return st.Path == "udp-relay" && strings.HasPrefix(st.Relay, dying+":")
			}) {
				t.Fatalf("call path %q via %q, want udp-relay via %s", call.Stats().Path, call.Stats().Relay, dying)
			}
			time.Sleep(2 * time.Second)

			killed := time.Now()
			m.nodes[0].kill()
			t.Logf("the supernode and its relay took %v to die", time.Since(killed).Round(time.Millisecond))

			// Wait for the audio to come back, then let it flow a while.
			if !waitFor(8*time.Second, func() bool {
				at, _ := rtps.snapshot()
				gap, i := gapAfter(at, killed)
				return i > 0 && len(at)-i > 50 && time.Since(at[len(at)-1]) < 100*time.Millisecond && time.Since(killed) > gap+time.Second
			}) {
				at, _ := rtps.snapshot()
				gap, _ := gapAfter(at, killed)
				t.Fatalf("audio did not resume: longest gap since the kill %v, %d packets in all", gap, len(at))
			}
			time.Sleep(3 * time.Second)
			arrived, stamps := rtps.snapshot()
			gap, i := gapAfter(arrived, killed)
			if gap < 200*time.Millisecond {
				// The audio never stopped (ICE already held a pair through
				// the other relay and moved to it): check from the kill on.
				i = sort.Search(len(arrived), func(k int) bool { return !arrived[k].Before(killed) })
			}
			resumed := max(arrived[i].Sub(killed), 0)
			t.Logf("audio stopped for %v and resumed %v after the supernode died", gap.Round(time.Millisecond), resumed.Round(time.Millisecond))
			if resumed > 5*time.Second {
				t.Errorf("audio resumed %v after the supernode died, want ≤ 5 s", resumed)
			}

			// The speech after the restart is the speech sent then: two
			// seconds from the first packet a second after the audio resumed.
			j := i
			for j < len(arrived) && arrived[j].Before(arrived[i].Add(time.Second)) {
				j++
			}
			if j+100 > len(arrived) {
				t.Fatalf("only %d packets arrived after the restart", len(arrived)-i)
			}
			frame := int((stamps[j] - stamps[0]) / codec.FrameSamples)
			from, to := frame*codec.FrameSamples, (frame+100)*codec.FrameSamples
			if to > len(ref) {
				t.Fatalf("source ran out before the check (frame %d)", frame)
			}
			got, _, _ := rec.snapshot()
			corr, _ := audiotest.MatchEnvelope(ref[from:to], got, time.Duration(len(got)/48)*time.Millisecond)
			t.Logf("speech after the restart: envelope correlation %.3f", corr)
			if corr < 0.9 {
				t.Errorf("speech after the restart correlates %.3f with what was sent, want ≥ 0.9", corr)
			}

			other := m.nodes[1].relayHost
			for who, ev := range map[string]*events{"alice": &aliceEv, "bob": &bobEv} {
				paths := ev.since(killed, func(e client.Event) bool {
					return e.Event == "path" && e.Path == "udp-relay" && strings.HasPrefix(e.Relay, other+":")
				})
				if len(paths) == 0 {
					t.Errorf("%s saw no path event naming the relay at %s", who, other)
				}
			}
			for who, c := range map[string]*client.Call{"alice": call, "bob": bc} {
				select {
				case <-c.Done():
					t.Errorf("%s's call ended: %s", who, c.Reason())
				default:
				}
			}
		})
	}
}

// TestDirectCallSurvivesSupernodeDeath: a direct call's media never touches
// the supernode, so its death leaves no gap in the audio either way.
func TestDirectCallSurvivesSupernodeDeath(t *testing.T) {
	m := startMesh(t, 2)
	var bobRTP, aliceRTP rtpLog
	bobCall := make(chan *client.Call, 1)
	m.user(t, "bob", 1, client.SessionConfig{OnIncoming: func(in *client.Incoming) {
		c, err := in.Answer(context.Background(), client.Media{OnRTP: func(h rtp.Header, at time.Time) { bobRTP.add(h.Timestamp, at) }})
		if err == nil {
			bobCall <- c
		}
	}})
	var aliceEv events
	alice := m.user(t, "alice", 0, client.SessionConfig{OnEvent: aliceEv.add})
	m.findable(t, alice, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	call, err := alice.Call(ctx, "bob", client.Media{OnRTP: func(h rtp.Header, at time.Time) { aliceRTP.add(h.Timestamp, at) }})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { call.Hangup("hangup"); <-call.Done() }()
	bc := <-bobCall
	if !waitFor(3*time.Second, func() bool { return call.Stats().Path == "direct" }) {
		t.Fatalf("path %q, want direct", call.Stats().Path)
	}
	time.Sleep(time.Second)
	killed := time.Now()
	m.nodes[0].kill()
	if !waitFor(5*time.Second, func() bool { return alice.Supernode() == m.nodes[1].url }) {
		t.Fatal("alice did not fail over")
	}
	time.Sleep(3 * time.Second)
	for who, r := range map[string]*rtpLog{"bob": &bobRTP, "alice": &aliceRTP} {
		at, _ := r.snapshot()
		gap, _ := gapAfter(at, killed.Add(-time.Second))
		n := 0
		for _, a := range at {
			if a.After(killed) {
				n++
			}
		}
		t.Logf("%s: longest gap around the supernode's death %v, %d packets since", who, gap.Round(time.Millisecond), n)
		if gap > 250*time.Millisecond {
			t.Errorf("%s's audio stopped for %v when alice's supernode died", who, gap)
		}
		if n < 120 {
			t.Errorf("%s received %d packets in the 3+ s after the supernode died, want ~150+", who, n)
		}
	}
	if ev := aliceEv.since(killed, func(e client.Event) bool { return e.Event == "path" }); len(ev) != 0 {
		t.Errorf("the direct call changed path: %+v", ev)
	}
	for who, c := range map[string]*client.Call{"alice": call, "bob": bc} {
		select {
		case <-c.Done():
			t.Errorf("%s's call ended: %s", who, c.Reason())
		default:
		}
	}
}
