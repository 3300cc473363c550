package client

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHostCacheIsWrittenAndKept: entries from every source are saved to
// supernodes.json (0600) with their last success and round trip, come back on
// the next start, and dead ones age out; the cache never exceeds its cap.
func TestHostCacheIsWrittenAndKept(t *testing.T) {
	dir := t.TempDir()
	now := time.Unix(1_800_000_000, 0)
	h := openHostCache(dir)
	h.merge([]string{"ws://a:1/v1/ws", "ws://b:1/v1/ws", "http://not-a-supernode", "ws://"}, now)
	h.success("ws://a:1/v1/ws", 0, now)
	h.measured("ws://a:1/v1/ws", 12*time.Millisecond)
	h.merge([]string{"ws://old:1/v1/ws"}, now.Add(-8*24*time.Hour)) // not seen for 8 days
	h.merge([]string{"ws://flaky:1/v1/ws"}, now)
	for range hostCacheMaxFails {
		h.failure("ws://flaky:1/v1/ws")
	}
	if err := h.save(now); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, hostCacheFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", hostCacheFile, fi.Mode().Perm())
	}
	got := openHostCache(dir).snapshot()
	if len(got) != 2 {
		t.Fatalf("cache after reload holds %v, want a and b", got)
	}
	a := got["ws://a:1/v1/ws"]
	if a.OK != now.Unix() || a.RTTMS != 12 || a.Fails != 0 {
		t.Errorf("a = %+v, want its success and round trip", a)
	}
	if _, ok := got["ws://b:1/v1/ws"]; !ok {
		t.Error("b, listed but never used, was dropped")
	}

	for i := range 2 * hostCacheMax {
		h.merge([]string{fmt.Sprintf("ws://n%d:1/v1/ws", i)}, now.Add(time.Duration(i)*time.Second))
	}
	if err := h.save(now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, hostCacheFile))
	var f hostCacheFileV1
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Supernodes) != hostCacheMax {
		t.Fatalf("cache holds %d entries, want the cap %d", len(f.Supernodes), hostCacheMax)
	}
	if f.Supernodes[0].URL != "ws://a:1/v1/ws" {
		t.Errorf("first entry %q, want the one that worked", f.Supernodes[0].URL)
	}
}

// TestChoiceUsesTheHostCache: with the login server down, a session chooses
// among the cached supernodes by measured round trip; Prefer comes first, a
// supernode that just failed last, and one that does not answer after those
// that do.
func TestChoiceUsesTheHostCache(t *testing.T) {
	health := func(delay time.Duration) string {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(delay)
			fmt.Fprintln(w, `{"ok":true}`)
		}))
		t.Cleanup(hs.Close)
		return "ws://" + strings.TrimPrefix(hs.URL, "http://") + "/v1/ws"
	}
	slow, fast, excluded, prefer := health(80*time.Millisecond), health(0), health(0), health(0)
	dead := "ws://127.0.0.1:1/v1/ws"

	home := t.TempDir()
	h := openHostCache(home)
	now := time.Now()
	h.merge([]string{slow, fast, dead, excluded}, now)
	if err := h.save(now); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Home: home, LoginURL: "http://127.0.0.1:1"}) // no login server
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{c: c, cfg: SessionConfig{Prefer: prefer}, rng: rand.New(rand.NewPCG(1, 2)),
		excluded: map[string]time.Time{excluded: time.Now().Add(time.Minute)}}
	got, _ := s.candidates(context.Background())
	want := []string{prefer, fast, slow, dead, excluded}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("candidates\n got %q\nwant %q", got, want)
	}
}

func TestPickToMeasure(t *testing.T) {
	now := time.Now()
	var cands []string
	cache := map[string]hostEntry{}
	for i := range 20 {
		u := fmt.Sprintf("ws://n%d:1/v1/ws", i)
		cands = append(cands, u)
		if i < 5 { // five recently good, n0 the nearest
			cache[u] = hostEntry{URL: u, OK: now.Add(-time.Hour).Unix(), RTTMS: float64(10 + i)}
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	seenOthers := map[string]bool{}
	for range 50 {
		got := pickToMeasure(cands, cache, now, r)
		if len(got) != maxMeasured {
			t.Fatalf("measured %d, want %d", len(got), maxMeasured)
		}
		if got[0] != "ws://n0:1/v1/ws" || got[1] != "ws://n1:1/v1/ws" || got[2] != "ws://n2:1/v1/ws" {
			t.Fatalf("the three nearest recently good ones are not measured first: %q", got)
		}
		for _, u := range got[3:] {
			seenOthers[u] = true
		}
	}
	if len(seenOthers) < 10 {
		t.Errorf("only %d different others measured in 50 rounds: not random", len(seenOthers))
	}
	if got := pickToMeasure(cands[:3], cache, now, r); len(got) != 3 {
		t.Errorf("with 3 candidates, measured %d", len(got))
	}
}

// TestBackoffJitter: reconnect waits are full jitter: the first within 0–300 ms,
// then uniform up to 300 ms·2ⁿ, never above 30 s, and spread over the whole
// range (so a mass restart does not come back in step).
func TestBackoffJitter(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for n := range 40 {
		limit := min(retryCap, firstRetryMax<<min(n, 20))
		lo, hi := time.Duration(1<<62), time.Duration(0)
		for range 2000 {
			d := backoffDelay(n, r)
			if d < 0 || d > limit {
				t.Fatalf("attempt %d: wait %v outside [0, %v]", n, d, limit)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		if lo > limit/20 || hi < limit*19/20 {
			t.Errorf("attempt %d: waits span [%v, %v], want most of [0, %v]", n, lo, hi, limit)
		}
	}
	if limit := backoffDelay(0, rand.New(rand.NewPCG(7, 8))); limit > firstRetryMax {
		t.Errorf("first wait %v, want ≤ %v", limit, firstRetryMax)
	}
}

// Supernodes are timed through the transport of Config.HTTPClient (here: one
// that trusts a test certificate), not a client of the package's own.
func TestHealthUsesConfiguredTransport(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ws := "wss://" + strings.TrimPrefix(srv.URL, "https://") + "/v1/ws"
	for _, tc := range []struct {
		name string
		hc   *http.Client
		want bool
	}{
		{"configured transport", srv.Client(), true},
		{"default transport", nil, false}, // the test certificate is not trusted
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{Home: t.TempDir(), HTTPClient: tc.hc})
			if err != nil {
				t.Fatal(err)
			}
			rtts, failed := measureAll(t.Context(), c.health, []string{ws})
			if got := rtts[ws] > 0 && !failed[ws]; got != tc.want {
				t.Errorf("measured = %v (rtts %v, failed %v), want %v", got, rtts, failed, tc.want)
			}
		})
	}
}
