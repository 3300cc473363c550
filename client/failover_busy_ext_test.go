package client_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley/parley/client"
	"github.com/parley/parley/login"
	"github.com/parley/parley/supernode"
)

// shedCount reads parley_supernode_attaches_shed_total from reg.
func shedCount(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() == "parley_supernode_attaches_shed_total" {
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// TestReattachWaitsForABusySupernode: alice's supernode dies and the only
// other one is shedding load (its one attach slot held, Retry-After 3 s).
// She is refused once, asks again only after the Retry-After (not at her
// backoff's 300-600 ms), and attaches there once it has room.
// busyLab is a login server and a way to start supernodes on it whose
// listeners can be killed.
type busyLab struct {
	t   *testing.T
	ls  *login.Server
	url string
}

func newBusyLab(t *testing.T) *busyLab {
	dir := t.TempDir()
	ls, err := login.New(login.Config{DB: filepath.Join(dir, "login.db"), DataDir: dir,
		Argon2: login.Argon2Params{Time: 1, Memory: 1024, Threads: 1}, MaxRegistrationsPerAddr: 100})
	if err != nil {
		t.Fatal(err)
	}
	lhs := httptest.NewServer(ls.Handler())
	t.Cleanup(func() { lhs.Close(); ls.Close() })
	return &busyLab{t: t, ls: ls, url: lhs.URL}
}

func (b *busyLab) start(cfg supernode.Config) (*supernode.Server, *killableListener, string) {
	t := b.t
	hs := httptest.NewUnstartedServer(nil)
	kl := &killableListener{Listener: hs.Listener}
	hs.Listener = kl
	cfg.LoginKey, cfg.Name = b.ls.PublicKey(), kl.Addr().String()
	cfg.ProbeInterval, cfg.DeadAfter = 200*time.Millisecond, time.Second
	sn, err := supernode.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = sn.Handler()
	hs.Start()
	t.Cleanup(func() { kl.kill(); sn.Close(); hs.Close() })
	return sn, kl, "ws://" + kl.Addr().String() + "/v1/ws"
}

// holdSlot opens a websocket that never attaches: it holds one of the
// supernode's attach slots (MaxAttaching) until closed.
func holdSlot(t *testing.T, ctx context.Context, url string) *websocket.Conn {
	blocker, _, err := websocket.Dial(ctx, url, nil)
	must(t, err)
	t.Cleanup(func() { blocker.CloseNow() })
	if _, _, err := blocker.Read(ctx); err != nil { // the challenge
		t.Fatal(err)
	}
	return blocker
}

// TestReattachWaitsForABusySupernode: alice's supernode dies and the only
// other one is shedding load (its one attach slot held, Retry-After 3 s).
// She is refused once, asks again only after the Retry-After (not at her
// backoff's 300-600 ms), and attaches there once it has room.
func TestReattachWaitsForABusySupernode(t *testing.T) {
	lab := newBusyLab(t)
	start := lab.start
	reg := prometheus.NewRegistry()
	busy, _, busyURL := start(supernode.Config{MaxAttaching: 1, RetryAfter: 3 * time.Second, Metrics: reg})
	home, homeLn, homeURL := start(supernode.Config{Seeds: []string{busyURL}})
	if !waitFor(10*time.Second, func() bool { return busy.Stats().Members == 2 && home.Stats().Members == 2 }) {
		t.Fatal("no mesh of two")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(client.Config{Home: t.TempDir(), LoginURL: lab.url})
	must(t, err)
	must(t, c.Register(ctx, "alice", "password-alice"))
	must(t, c.Login(ctx, "alice", "password-alice"))
	s, err := c.Online(ctx, client.SessionConfig{Prefer: homeURL})
	must(t, err)
	t.Cleanup(func() { s.Close() })

	// A connection that never attaches holds the busy supernode's one slot.
	blocker := holdSlot(t, ctx, busyURL)

	homeLn.kill()
	time.Sleep(2500 * time.Millisecond)
	if got := shedCount(t, reg); got != 1 {
		t.Fatalf("refusals in the first 2.5 s: %v, want 1 (the next try waits for the Retry-After of 3 s)", got)
	}
	blocker.CloseNow()
	if !waitFor(10*time.Second, func() bool { return s.Supernode() == busyURL }) {
		t.Fatalf("alice is at %q, want the formerly busy %s", s.Supernode(), busyURL)
	}
	if got := shedCount(t, reg); got > 2 {
		t.Errorf("refused %v times in all, want at most 2", got)
	}
}

// TestFirstAttachWaitsForABusySupernode: the only supernode is shedding load
// when bob goes online (its one attach slot held, Retry-After 1 s). Online
// does not fail at the first 503: it waits out the Retry-After (with
// jitter), asks again, and attaches once there is room; a refusal comes at
// most once a Retry-After. Before, Online failed at once with
// ErrNoSupernode. An unreachable supernode still fails at once.
func TestFirstAttachWaitsForABusySupernode(t *testing.T) {
	lab := newBusyLab(t)
	reg := prometheus.NewRegistry()
	_, _, busyURL := lab.start(supernode.Config{MaxAttaching: 1, RetryAfter: time.Second, Metrics: reg})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(client.Config{Home: t.TempDir(), LoginURL: lab.url})
	must(t, err)
	must(t, c.Register(ctx, "bob", "password-bob"))
	must(t, c.Login(ctx, "bob", "password-bob"))

	blocker := holdSlot(t, ctx, busyURL)
	const busyFor = 2500 * time.Millisecond
	released := time.AfterFunc(busyFor, func() { blocker.CloseNow() })
	defer released.Stop()
	began := time.Now()
	s, err := c.Online(ctx, client.SessionConfig{Prefer: busyURL})
	if err != nil {
		t.Fatalf("online while the supernode was busy for %v: %v", busyFor, err)
	}
	t.Cleanup(func() { s.Close() })
	took := time.Since(began)
	if got := s.Supernode(); got != busyURL {
		t.Errorf("attached at %q, want %s", got, busyURL)
	}
	if took < busyFor {
		t.Errorf("online after %v, before the slot was free (%v)", took, busyFor)
	}
	// Retry-After is 1-2 s (drawn from [RetryAfter, 2*RetryAfter]) and each
	// wait is at least it: at most one refusal a second (3 in the 2.5 s),
	// where the plain backoff (300 ms, 600 ms, ...) would have asked about
	// 5 times.
	if got, most := shedCount(t, reg), 1+int(took/time.Second); got < 1 || int(got) > most {
		t.Errorf("refused %v times in %v, want 1 to %d (one each Retry-After)", got, took.Round(time.Millisecond), most)
	}

	// Nothing listening: not busy, so no waiting.
	_, deadLn, deadURL := lab.start(supernode.Config{})
	deadLn.kill()
	c2, err := client.New(client.Config{Home: t.TempDir(), LoginURL: lab.url})
	must(t, err)
	must(t, c2.Register(ctx, "carol", "password-carol"))
	must(t, c2.Login(ctx, "carol", "password-carol"))
	began = time.Now()
	if s2, err := c2.Online(ctx, client.SessionConfig{Prefer: deadURL}); err == nil {
		s2.Close()
		t.Errorf("online at a dead supernode %s", deadURL)
	} else if !errors.Is(err, client.ErrNoSupernode) {
		t.Errorf("online at a dead supernode: %v, want ErrNoSupernode", err)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("failing at a dead supernode took %v", d)
	}
}
