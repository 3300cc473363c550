package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Choosing a supernode, and the host cache.
//
// The candidates are the login server's list, the host cache (supernodes.json in
// the home) and the other supernodes the last attached one listed. Up to
// maxMeasured of them are measured at once (an HTTP GET of /healthz on the
// websocket URL's host, measureTimeout each): the recently good ones from the
// cache first, then random others. The client attaches to the nearest, falling
// back in round-trip order, then to those not measured, then to those that did
// not answer. SessionConfig.Prefer is tried before all of them, unmeasured.
// Supernodes that just failed are excluded for a while (they go last).
//
// The host cache remembers every supernode seen from any source, with the time
// of its last successful attach and its last measured round trip, so that a
// client finds a supernode when the login server is down. It is capped at
// hostCacheMax entries; entries not seen or used for hostCacheMaxAge, and those
// failing hostCacheMaxFails times in a row with no success for a day, age out.

const (
	hostCacheFile     = "supernodes.json"
	hostCacheMax      = 64
	hostCacheMaxAge   = 7 * 24 * time.Hour
	hostCacheMaxFails = 5
	recentlyGood      = 24 * time.Hour
	maxMeasured       = 5
	maxRecentMeasured = 3
	measureTimeout    = time.Second
)

// hostEntry is one supernode in the host cache. Times are Unix seconds.
type hostEntry struct {
	URL   string  `json:"url"`
	Seen  int64   `json:"seen"`             // last listed by a source
	OK    int64   `json:"ok,omitempty"`     // last successful attach
	RTTMS float64 `json:"rtt_ms,omitempty"` // last measured round trip
	Fails int     `json:"fails,omitempty"`  // consecutive failures since OK
}

type hostCacheFileV1 struct {
	Version    int         `json:"version"`
	Supernodes []hostEntry `json:"supernodes"`
}

// hostCache is the home's supernodes.json. It is safe for concurrent use.
type hostCache struct {
	path string

	mu      sync.Mutex
	entries map[string]*hostEntry
}

// openHostCache reads the cache; an unreadable one starts empty (it is only a hint).
func openHostCache(dir string) *hostCache {
	h := &hostCache{path: filepath.Join(dir, hostCacheFile), entries: map[string]*hostEntry{}}
	b, err := os.ReadFile(h.path)
	if err != nil {
		return h
	}
	var f hostCacheFileV1
	if json.Unmarshal(b, &f) != nil {
		return h
	}
	for _, e := range f.Supernodes {
		if validWSURL(e.URL) {
			e := e
			h.entries[e.URL] = &e
		}
	}
	return h
}

func validWSURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "ws" || u.Scheme == "wss") && u.Host != ""
}

// reset forgets every entry (saved with the next save).
func (h *hostCache) reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.entries = map[string]*hostEntry{}
}

// merge records that a source listed urls.
func (h *hostCache) merge(urls []string, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range urls {
		if !validWSURL(u) {
			continue
		}
		e := h.entries[u]
		if e == nil {
			e = &hostEntry{URL: u}
			h.entries[u] = e
		}
		e.Seen = now.Unix()
	}
}

// success records an attach to u (and its measured round trip, if any).
func (h *hostCache) success(u string, rtt time.Duration, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entries[u]
	if e == nil {
		if !validWSURL(u) {
			return
		}
		e = &hostEntry{URL: u, Seen: now.Unix()}
		h.entries[u] = e
	}
	e.OK, e.Fails = now.Unix(), 0
	if rtt > 0 {
		e.RTTMS = float64(rtt) / float64(time.Millisecond)
	}
}

// measured records a round trip to u.
func (h *hostCache) measured(u string, rtt time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.entries[u]; e != nil {
		e.RTTMS = float64(rtt) / float64(time.Millisecond)
	}
}

// failure records a failed attach to (or measurement of) u.
func (h *hostCache) failure(u string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.entries[u]; e != nil {
		e.Fails++
	}
}

// snapshot returns a copy of the entries.
func (h *hostCache) snapshot() map[string]hostEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]hostEntry, len(h.entries))
	for k, e := range h.entries {
		out[k] = *e
	}
	return out
}

// save ages out dead entries, caps the cache and writes it (mode 0600).
func (h *hostCache) save(now time.Time) error {
	h.mu.Lock()
	list := pruneHosts(h.entries, now)
	h.entries = make(map[string]*hostEntry, len(list))
	for i := range list {
		h.entries[list[i].URL] = &list[i]
	}
	b, err := json.MarshalIndent(hostCacheFileV1{Version: 1, Supernodes: list}, "", "  ")
	h.mu.Unlock()
	if err != nil {
		return fmt.Errorf("client: host cache: %w", err)
	}
	if err := writeFileAtomic(h.path, b); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("client: host cache: %w", err)
	}
	return nil
}

// pruneHosts drops entries that aged out and keeps the hostCacheMax best:
// the most recently successful first, then the most recently seen.
func pruneHosts(entries map[string]*hostEntry, now time.Time) []hostEntry {
	var list []hostEntry
	for _, e := range entries {
		last := time.Unix(max(e.Seen, e.OK), 0)
		if now.Sub(last) > hostCacheMaxAge {
			continue
		}
		if e.Fails >= hostCacheMaxFails && now.Sub(time.Unix(e.OK, 0)) > recentlyGood {
			continue
		}
		list = append(list, *e)
	}
	sort.Slice(list, func(i, j int) bool {
		a, b := list[i], list[j]
		if a.OK != b.OK {
			return a.OK > b.OK
		}
		if a.Seen != b.Seen {
			return a.Seen > b.Seen
		}
		return a.URL < b.URL
	})
	if len(list) > hostCacheMax {
		list = list[:hostCacheMax]
	}
	return list
}

// pickToMeasure chooses at most maxMeasured of cands to measure: up to
// maxRecentMeasured that attached recently (lowest cached round trip first),
// then random others.
func pickToMeasure(cands []string, cache map[string]hostEntry, now time.Time, r *rand.Rand) []string {
	if len(cands) <= maxMeasured {
		return append([]string(nil), cands...)
	}
	var recent, others []string
	for _, u := range cands {
		if e, ok := cache[u]; ok && e.OK > 0 && now.Sub(time.Unix(e.OK, 0)) <= recentlyGood {
			recent = append(recent, u)
		} else {
			others = append(others, u)
		}
	}
	sort.SliceStable(recent, func(i, j int) bool { return cache[recent[i]].RTTMS < cache[recent[j]].RTTMS })
	if len(recent) > maxRecentMeasured {
		others = append(others, recent[maxRecentMeasured:]...)
		recent = recent[:maxRecentMeasured]
	}
	r.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
	out := append(recent, others...)
	return out[:maxMeasured]
}

// orderCandidates orders cands for attaching: measured ones by round trip,
// then the unmeasured (recently successful first), then those whose
// measurement failed, then the excluded.
func orderCandidates(cands []string, rtts map[string]time.Duration, failed, excluded map[string]bool, cache map[string]hostEntry) []string {
	var measured, unmeasured, bad, ex []string
	for _, u := range cands {
		switch {
		case excluded[u]:
			ex = append(ex, u)
		case failed[u]:
			bad = append(bad, u)
		case rtts[u] > 0:
			measured = append(measured, u)
		default:
			unmeasured = append(unmeasured, u)
		}
	}
	sort.SliceStable(measured, func(i, j int) bool { return rtts[measured[i]] < rtts[measured[j]] })
	sort.SliceStable(unmeasured, func(i, j int) bool { return cache[unmeasured[i]].OK > cache[unmeasured[j]].OK })
	return append(append(append(measured, unmeasured...), bad...), ex...)
}

// healthURL is the /healthz address on a ws:// or wss:// URL's host.
func healthURL(wsURL string) (string, error) {
	u, err := url.Parse(wsURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("client: supernode URL %q: not a ws:// or wss:// URL", wsURL)
	}
	switch u.Scheme {
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("client: supernode URL %q: not a ws:// or wss:// URL", wsURL)
	}
	u.Path, u.RawQuery, u.Fragment = "/healthz", "", ""
	return u.String(), nil
}

// healthClient returns the client that times supernodes: hc's transport
// (the default one when hc or its transport is nil) without keep-alives.
func healthClient(hc *http.Client) *http.Client {
	var rt http.RoundTripper = &http.Transport{DisableKeepAlives: true}
	if hc != nil && hc.Transport != nil {
		rt = hc.Transport
		if t, ok := hc.Transport.(*http.Transport); ok {
			t = t.Clone()
			t.DisableKeepAlives = true
			rt = t
		}
	}
	return &http.Client{Timeout: measureTimeout, Transport: rt}
}

// measureHealth times a GET of the supernode's /healthz (connect included).
func measureHealth(ctx context.Context, hc *http.Client, wsURL string) (time.Duration, error) {
	hu, err := healthURL(wsURL)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, measureTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, hu, nil)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("client: %s: %s", hu, resp.Status)
	}
	return max(time.Since(start), time.Microsecond), nil
}

// measureAll measures urls concurrently; those that did not answer are in failed.
func measureAll(ctx context.Context, hc *http.Client, urls []string) (rtts map[string]time.Duration, failed map[string]bool) {
	rtts, failed = map[string]time.Duration{}, map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rtt, err := measureHealth(ctx, hc, u)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed[u] = true
			} else {
				rtts[u] = rtt
			}
		}()
	}
	wg.Wait()
	return rtts, failed
}
