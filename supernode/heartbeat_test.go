package supernode_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/parley/parley/supernode"
	"github.com/parley/parley/wire/loginapi"
)

// deadLogin is a login server that is never reachable: every request fails at
// once. It records when each heartbeat was sent.
type deadLogin struct {
	mu         sync.Mutex
	heartbeats []time.Time
	want       int
	done       chan struct{}
}

func (d *deadLogin) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && r.URL.Path == "/api/v1/supernodes" {
		d.mu.Lock()
		d.heartbeats = append(d.heartbeats, time.Now())
		if len(d.heartbeats) == d.want {
			close(d.done)
		}
		d.mu.Unlock()
	}
	return nil, errors.New("connection refused")
}

// logCounter counts the records with one message that reach the supernode's
// logger, and the "suppressed" counts reported for it.
type logCounter struct {
	msg        string
	mu         sync.Mutex
	through    int
	suppressed int64
	summaries  int
}

func (c *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCounter) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *logCounter) WithGroup(string) slog.Handler            { return c }
func (c *logCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Message != c.msg {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	summary := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "suppressed" {
			summary = true
			c.suppressed += a.Value.Int64()
		}
		return true
	})
	if summary {
		c.summaries++
	} else {
		c.through++
	}
	return nil
}

// runDeadLogin runs a supernode against a login server that always fails
// until it has sent n heartbeats, and returns their times and the time it
// took.
func runDeadLogin(t *testing.T, n int, log *slog.Logger) ([]time.Time, time.Duration) {
	d := &deadLogin{want: n, done: make(chan struct{})}
	pub, _, _ := ed25519.GenerateKey(nil)
	start := time.Now()
	srv, err := supernode.New(supernode.Config{
		LoginKey: pub, Name: "127.0.0.1:1", Advertise: "ws://127.0.0.1:1/v1/ws", Logger: log,
		Login: loginapi.NewClient("http://login.invalid", &http.Client{Transport: d}),
	})
	if err != nil {
		t.Fatal(err)
	}
	<-d.done
	took := time.Since(start)
	srv.Close()
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Time(nil), d.heartbeats...), took
}

// TestHeartbeatBackoffNeverSpins: 10,000 heartbeats to a login server that
// always fails. Every wait between them after the first few is at least a
// second and at most the heartbeat interval (10 s): the backoff neither
// overflows into zero waits (a tight loop) nor grows without bound.
func TestHeartbeatBackoffNeverSpins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		times, took := runDeadLogin(t, 10_000, nil)
		bad, zero := 0, 0
		first := -1
		for i := 1; i < len(times); i++ {
			gap := times[i].Sub(times[i-1])
			if gap == 0 {
				zero++
			}
			if i > 3 && (gap < time.Second || gap > 10*time.Second) {
				bad++
				if first < 0 {
					first = i
				}
			}
		}
		if bad > 0 {
			t.Fatalf("10,000 failed heartbeats took %v: %d waits outside [1s, 10s] (%d of them zero), the first after heartbeat %d",
				took, bad, zero, first)
		}
		t.Logf("10,000 failed heartbeats took %v (mean wait %v)", took, took/10_000)
	})
}

// TestRepeatedWarningsAreThrottled: the same 10,000 failed heartbeats reach
// the configured logger at most 10 times a minute; the rest are counted in
// "suppressed" summaries, so that every failure is accounted for.
func TestRepeatedWarningsAreThrottled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &logCounter{msg: "heartbeat to login server failed"}
		times, took := runDeadLogin(t, 10_000, slog.New(c))
		c.mu.Lock()
		defer c.mu.Unlock()
		windows := int(took/time.Minute) + 1
		if c.through > 10*windows {
			t.Fatalf("%d identical warnings reached the log in %v (%d minutes): want at most 10 a minute", c.through, took, windows)
		}
		if total := c.through + int(c.suppressed); total < len(times)-1 || total > len(times) {
			t.Fatalf("%d warnings through + %d suppressed, for %d failed heartbeats", c.through, c.suppressed, len(times))
		}
		t.Logf("%d failed heartbeats in %v: %d warnings through, %d suppressed in %d summaries", len(times), took, c.through, c.suppressed, c.summaries)
	})
}

// deadSeed is a mesh transport to a seed that never answers; it records when
// each ping went out.
type deadSeed struct {
	mu    sync.Mutex
	pings []time.Time
}

func (d *deadSeed) RoundTrip(r *http.Request) (*http.Response, error) {
	d.mu.Lock()
	d.pings = append(d.pings, time.Now())
	d.mu.Unlock()
	return nil, errors.New("connection refused")
}

// TestPingsToADeadSeedBackOff: a seed that never answers is pinged less and
// less often (at most every 30 s), not every ProbeInterval until it is
// forgotten.
func TestPingsToADeadSeedBackOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &deadSeed{}
		pub, _, _ := ed25519.GenerateKey(nil)
		srv, err := supernode.New(supernode.Config{
			LoginKey: pub, Name: "127.0.0.1:1", Seeds: []string{"ws://127.0.0.1:2/v1/ws"},
			MeshClient: &http.Client{Transport: d},
		})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(110 * time.Second) // it is forgotten after 2 minutes
		srv.Close()
		d.mu.Lock()
		defer d.mu.Unlock()
		for i := 1; i < len(d.pings); i++ {
			if gap := d.pings[i].Sub(d.pings[i-1]); gap < time.Second || gap > 30*time.Second {
				t.Errorf("ping %d came %v after the one before; want within [1s, 30s]", i, gap)
			}
		}
		if n := len(d.pings); n < 4 || n > 25 {
			t.Fatalf("%d pings to a dead seed in 110 s; want a backoff to one every ≤30 s (4–25)", n)
		}
		t.Logf("%d pings to a dead seed in 110 s", len(d.pings))
	})
}
