package client_test

import (
	"context"
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
func TestReattachWaitsForABusySupernode(t *testing.T) {
	dir := t.TempDir()
	ls, err := login.New(login.Config{DB: filepath.Join(dir, "login.db"), DataDir: dir,
		Argon2: login.Argon2Params{Time: 1, Memory: 1024, Threads: 1}, MaxRegistrationsPerAddr: 100})
	if err != nil {
		t.Fatal(err)
	}
	lhs := httptest.NewServer(ls.Handler())
	t.Cleanup(func() { lhs.Close(); ls.Close() })
	start := func(cfg supernode.Config) (*supernode.Server, *killableListener, string) {
		hs := httptest.NewUnstartedServer(nil)
		kl := &killableListener{Listener: hs.Listener}
		hs.Listener = kl
		cfg.LoginKey, cfg.Name = ls.PublicKey(), kl.Addr().String()
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
	reg := prometheus.NewRegistry()
	busy, _, busyURL := start(supernode.Config{MaxAttaching: 1, RetryAfter: 3 * time.Second, Metrics: reg})
	home, homeLn, homeURL := start(supernode.Config{Seeds: []string{busyURL}})
	if !waitFor(10*time.Second, func() bool { return busy.Stats().Members == 2 && home.Stats().Members == 2 }) {
		t.Fatal("no mesh of two")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.New(client.Config{Home: t.TempDir(), LoginURL: lhs.URL})
	must(t, err)
	must(t, c.Register(ctx, "alice", "password-alice"))
	must(t, c.Login(ctx, "alice", "password-alice"))
	s, err := c.Online(ctx, client.SessionConfig{Prefer: homeURL})
	must(t, err)
	t.Cleanup(func() { s.Close() })

	// A connection that never attaches holds the busy supernode's one slot.
	blocker, _, err := websocket.Dial(ctx, busyURL, nil)
	must(t, err)
	defer blocker.CloseNow()
	if _, _, err := blocker.Read(ctx); err != nil {
		t.Fatal(err)
	}

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
