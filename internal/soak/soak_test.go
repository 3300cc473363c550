package soak

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley/parley/internal/cluster"
	"github.com/parley/parley/internal/loadgen"
	"github.com/parley/parley/internal/netlab"
	"github.com/parley/parley/login"
)

// The soak's knobs: `make soak SOAK_DURATION=1h` sets -soak.duration; `make
// test` runs the defaults (about three minutes in all).
var (
	soakDuration   = flag.Duration("soak.duration", 80*time.Second, "how long the load runs (the whole test takes about 2 minutes more)")
	soakUsers      = flag.Int("soak.users", 2000, "simulated users, one websocket each")
	soakSupernodes = flag.Int("soak.supernodes", 3, "supernodes (3 to 5), each a process of its own")
	soakCalls      = flag.Int("soak.calls", 0, "calls to echo up at once (0: 10 for runs of 10 minutes or more, else 3)")
	soakKillEvery  = flag.Duration("soak.kill-every", 40*time.Second, "mean time between random supernode kills")
	soakReport     = flag.String("soak.report", "", "write the numbers as JSON to `FILE`")
	soakProfiles   = flag.String("soak.profiles", "", "write each supernode's heap profiles at the baseline and the end into `DIR`")
)

// The supernodes' admission settings in the soak: tighter than the
// defaults, so that the reconnect storm of the cascade meets them.
const (
	soakAttachRate   = 200
	soakMaxAttaching = 128
	soakRetryAfter   = time.Second
	reattachBound    = 30 * time.Second
	heapTolerance    = 0.10
	// heapSlack is the least a supernode's heap may grow over its baseline
	// (both after GC). The runtime keeps every goroutine descriptor it
	// ever made (480 B each), so a cascade survivor that ran a few thousand
	// goroutines more at once than in the warm-up (a storm's handshakes in
	// flight) ends that much over with nothing leaked: CI runs ended 0.7
	// and 0.75 MiB over (11–14%), and one 1.55 MiB (31%, a survivor of a
	// 631-user storm). A leak of the soak's sessions would be tens of MiB.
	heapSlack = 2 << 20
	// snPort is every supernode's port, each on a lab host of its own.
	snPort = 7001
	// loadProcs is the number of load clients, each a process on a lab
	// host of its own; every second one is behind a NAT.
	loadProcs      = 2
	goroutineSlack = 2 // transient goroutines (a presence push, a mesh probe) at the moment of counting
)

// labInternet is the lab's internet (netlab's benchmark range): the login
// server's dial-backs and the relays may reach it.
var labInternet = netip.MustParsePrefix("198.18.0.0/15")

// Report is what a soak run measured (docs/reliability.md quotes it).
type Report struct {
	Duration       string          `json:"duration"`
	Wall           string          `json:"wall"`
	Supernodes     int             `json:"supernodes"`
	Kills          int             `json:"kills"`
	Load           loadgen.Stats   `json:"load"`
	Unfindable     []string        `json:"unfindable"`
	PerSupernode   []SupernodeNums `json:"per_supernode"`
	Cascade        *CascadeNums    `json:"cascade,omitempty"`
	QuiesceTook    string          `json:"quiesce_took"`
	UnexpectedExit []string        `json:"unexpected_exits"`
}

// SupernodeNums are one supernode slot's numbers.
type SupernodeNums struct {
	Starts         int    `json:"starts"`
	PeakRSS        int64  `json:"peak_rss"`
	BaselineHeap   uint64 `json:"baseline_heap"`
	FinalHeap      uint64 `json:"final_heap"`
	BaselineGorout int    `json:"baseline_goroutines"`
	FinalGorout    int    `json:"final_goroutines"`
	BaselineOwn    int    `json:"baseline_own_goroutines"`
	FinalOwn       int    `json:"final_own_goroutines"`
}

// CascadeNums are the cascade's: a third of the supernodes killed at once.
type CascadeNums struct {
	Killed        int    `json:"killed"`
	UsersOnKilled int    `json:"users_on_killed"`
	Dropped       int64  `json:"dropped"`
	Reattached    int    `json:"reattached"`
	P50           string `json:"reattach_p50"`
	P99           string `json:"reattach_p99"`
	Max           string `json:"reattach_max"`
	AllBackIn     string `json:"all_back_in"`
	BusyRefusals  int64  `json:"busy_refusals"`
	// Shed are the survivors' parley_supernode_attaches_shed_total by
	// reason, summed, at the end of the storm (their whole life so far).
	Shed          map[string]float64 `json:"survivors_shed"`
	SurvivorPeaks []int64            `json:"survivor_peak_rss"`
	SurvivorsUp   bool               `json:"survivors_up"`
	Problems      []string           `json:"problems,omitempty"`
}

// TestSoak: users attach, message, leave, come back and call echo while
// supernodes are killed and restarted (and a third of them at once); at the
// end nothing is lost or delivered twice, every online user is findable,
// and each supernode's heap and goroutines are back to their baseline.
func TestSoak(t *testing.T) {
	begin := time.Now()
	n := min(max(*soakSupernodes, 3), 5)
	calls := *soakCalls
	if calls == 0 {
		calls = 3
		if *soakDuration >= 10*time.Minute {
			calls = 10
		}
	}
	// The lab: the login server, each supernode, each load client and the
	// echo user on a host of its own; the second load client behind a NAT.
	lab := netlab.NewForTest(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lh, err := lab.AddPublicHost("login")
	if err != nil {
		t.Fatal(err)
	}
	// ctl reaches the lab's servers from this process (health, metrics, the
	// supernodes' debug endpoints), from the login server's host.
	ctl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: lh.DialContext, MaxIdleConnsPerHost: 2}}
	loginURL := startLogin(t, ctx, dir, lh)
	var loadHosts []*netlab.Host
	for i := range loadProcs {
		var h *netlab.Host
		if i%2 == 0 {
			h, err = lab.AddPublicHost(fmt.Sprintf("load%d", i))
		} else {
			h, _, err = lab.AddNATHost(fmt.Sprintf("load%d", i), netlab.EndpointIndependent)
		}
		if err != nil {
			t.Fatal(err)
		}
		loadHosts = append(loadHosts, h)
	}
	echoHost, err := lab.AddPublicHost("echo")
	if err != nil {
		t.Fatal(err)
	}

	procs := make([]*snProc, n)
	var urls []string
	var hosts []*netlab.Host
	for i := range n {
		h, err := lab.AddPublicHost(fmt.Sprintf("sn%d", i))
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
		urls = append(urls, fmt.Sprintf("ws://%s:%d/v1/ws", h.IP, snPort))
	}
	for i, h := range hosts {
		seeds := slices.Clone(urls)
		seeds = slices.Delete(seeds, i, i+1)
		procs[i] = &snProc{t: t, idx: i, host: h, ctl: ctl, url: urls[i], httpURL: fmt.Sprintf("http://%s:%d", h.IP, snPort), dir: dir,
			cfg: childConfig{LoginURL: loginURL, Listen: fmt.Sprintf("%s:%d", h.IP, snPort), DebugListen: h.IP.String() + ":0",
				AllowPeers:  []netip.Prefix{labInternet},
				NodeKeyFile: filepath.Join(dir, fmt.Sprintf("node%d.key", i)), Seeds: seeds,
				AttachRate: soakAttachRate, MaxAttaching: soakMaxAttaching, RetryAfter: soakRetryAfter,
				RecordTTL: 10 * time.Second, RefreshInterval: 3 * time.Second}}
		procs[i].start()
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.stop()
		}
	})
	waitMesh(t, ctx, procs, n)
	t.Logf("%d supernodes in a mesh after %v (logs in %s)", n, time.Since(begin).Round(time.Millisecond), dir)

	if *soakProfiles != "" {
		for i, p := range procs {
			saveHeapProfile(ctx, p, filepath.Join(*soakProfiles, fmt.Sprintf("sn%d-fresh.pb.gz", i)))
		}
	}
	// Warm-up: the whole population attaches twice, each time to all
	// supernodes but a third of them (another third each time), and leaves:
	// every supernode holds once what it holds after a cascade, so that the baseline is of a supernode that has
	// held that many sessions. (Go keeps a goroutine's descriptor for reuse
	// and maps do not shrink: a supernode's idle heap after holding N
	// sessions stays a little above a fresh one's. A leak is growth beyond
	// that.)
	lcfg := loadgen.Config{LoginURL: loginURL, Users: *soakUsers, Prefix: "soak",
		AttachConcurrency: 64, MessageEvery: -1, Contacts: 5}
	k := cascadeSize(n)
	for i := range 2 {
		lcfg.Supernodes = nil
		for j, u := range urls {
			if (j-i*k+n)%n >= k { // round 0 leaves out the first k, round 1 the next k
				lcfg.Supernodes = append(lcfg.Supernodes, u)
			}
		}
		warm := startLoads(t, loadHosts, dir, fmt.Sprintf("warm%d-", i), lcfg)
		t.Logf("warm-up %d: %d users attached (%v) after %v", i, warm.Online(), warm.OnlineAt(), time.Since(begin).Round(time.Millisecond))
		if *soakProfiles != "" {
			for j, p := range procs {
				saveHeapProfile(ctx, p, filepath.Join(*soakProfiles, fmt.Sprintf("sn%d-warm%d.pb.gz", j, i)))
			}
		}
		if err := warm.Close(); err != nil {
			t.Error(err)
		}
	}
	lcfg.Supernodes = urls
	baseline := idleStats(t, ctx, procs)
	t.Logf("baseline after %v: %+v", time.Since(begin).Round(time.Millisecond), baseline)

	// The echo user comes after the baseline and goes before the final
	// reading: both are of supernodes without any session.
	echoProc := startEcho(t, echoHost, dir, loginURL)
	lcfg.MessageEvery, lcfg.MeanOnline, lcfg.MeanOffline = 30*time.Second, 90*time.Second, 10*time.Second
	lcfg.Calls, lcfg.Home = calls, filepath.Join(dir, "callers")
	l := startLoads(t, loadHosts, dir, "", lcfg)
	loadStart := time.Now()
	t.Logf("load: %d users online, %d calls, after %v", l.Online(), calls, time.Since(begin).Round(time.Millisecond))

	var wg sync.WaitGroup
	sampleCtx, stopSampling := context.WithCancel(ctx)
	wg.Go(func() {
		for sampleCtx.Err() == nil {
			for _, p := range procs {
				p.sample()
			}
			select {
			case <-sampleCtx.Done():
			case <-time.After(500 * time.Millisecond):
			}
		}
	})

	rep := &Report{Duration: soakDuration.String(), Supernodes: n}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 25))
	cascadeAt := loadStart.Add(*soakDuration * 6 / 10)
	quietFrom, quietUntil := cascadeAt.Add(-10*time.Second), cascadeAt.Add(reattachBound+10*time.Second)
	nextKill := loadStart.Add(time.Duration(rng.ExpFloat64() * float64(*soakKillEvery)))
	cascaded := false
	end := loadStart.Add(*soakDuration)
	for now := time.Now(); now.Before(end); now = time.Now() {
		switch {
		case !cascaded && !now.Before(cascadeAt):
			cascaded = true
			rep.Cascade = cascade(t, l, procs, rng)
			rep.Kills += rep.Cascade.Killed
		case !now.Before(nextKill):
			nextKill = now.Add(time.Duration(rng.ExpFloat64() * float64(*soakKillEvery)))
			if (now.After(quietFrom) && now.Before(quietUntil)) || now.Add(15*time.Second).After(end) {
				break
			}
			p := procs[rng.IntN(n)]
			if !p.running() {
				break
			}
			p.kill()
			rep.Kills++
			down := 2*time.Second + time.Duration(rng.Int64N(int64(6*time.Second)))
			t.Logf("%v: killed supernode %d (%d users online), back in %v", time.Since(loadStart).Round(time.Second), p.idx, l.Online(), down)
			time.Sleep(down)
			p.start()
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, p := range procs { // any still down comes back before the end
		if !p.running() {
			p.start()
		}
	}
	waitMesh(t, ctx, procs, n)

	qstart := time.Now()
	if err := l.Quiesce(2 * time.Minute); err != nil {
		t.Errorf("quiesce: %v", err)
	}
	rep.QuiesceTook = time.Since(qstart).Round(time.Millisecond).String()
	if rep.Unfindable, err = l.Check(time.Minute); err != nil {
		t.Errorf("check: %v", err)
	}
	rep.Load = l.Stats()
	if err := l.Close(); err != nil {
		t.Error(err)
	}
	if err := echoProc.stop(); err != nil {
		t.Errorf("echo: %v", err)
	}
	final := idleStats(t, ctx, procs)
	stopSampling()
	wg.Wait()

	for i, p := range procs {
		p.sample()
		p.mu.Lock()
		rep.UnexpectedExit = append(rep.UnexpectedExit, p.unexpected...)
		rep.PerSupernode = append(rep.PerSupernode, SupernodeNums{Starts: p.starts, PeakRSS: p.peakRSS,
			BaselineHeap: baseline[i].HeapAlloc, FinalHeap: final[i].HeapAlloc,
			BaselineGorout: baseline[i].Goroutines, FinalGorout: final[i].Goroutines,
			BaselineOwn: baseline[i].Own, FinalOwn: final[i].Own})
		p.mu.Unlock()
	}
	rep.Wall = time.Since(begin).Round(time.Second).String()
	writeReport(t, rep)
	checkReport(t, rep)
}

// checkReport asserts the soak's invariants.
func checkReport(t *testing.T, rep *Report) {
	st := rep.Load
	if st.Lost != 0 || st.Duplicates != 0 || st.Misrouted != 0 || st.Delivered != st.Messages {
		t.Errorf("messages: %d created, %d delivered, %d lost (%v), %d duplicates, %d misrouted", st.Messages, st.Delivered, st.Lost, st.LostIDs, st.Duplicates, st.Misrouted)
	}
	if st.Messages == 0 || st.Leaves == 0 || rep.Kills == 0 {
		t.Errorf("no load to speak of: %d messages, %d leaves, %d kills", st.Messages, st.Leaves, rep.Kills)
	}
	if len(rep.Unfindable) > 0 {
		t.Errorf("%d online users not findable: %v", len(rep.Unfindable), rep.Unfindable[:min(10, len(rep.Unfindable))])
	}
	if st.CallsConnected == 0 {
		t.Errorf("no call to echo connected (%d placed, %d failed)", st.CallsPlaced, st.CallsFailed)
	}
	for _, e := range rep.UnexpectedExit {
		t.Errorf("%s", e)
	}
	for i, s := range rep.PerSupernode {
		if float64(s.FinalHeap) > max(float64(s.BaselineHeap)*(1+heapTolerance), float64(s.BaselineHeap+heapSlack)) {
			t.Errorf("supernode %d: heap after GC %d B, baseline %d B: more than %.0f%% (and %d MiB) over", i, s.FinalHeap, s.BaselineHeap, heapTolerance*100, heapSlack>>20)
		}
		if s.FinalOwn > s.BaselineOwn+goroutineSlack {
			t.Errorf("supernode %d: %d goroutines (besides HTTP keep-alives), baseline %d", i, s.FinalOwn, s.BaselineOwn)
		}
		if s.PeakRSS >= memLimit {
			t.Errorf("supernode %d: peak resident memory %d B, over its limit %d B", i, s.PeakRSS, memLimit)
		}
	}
	if c := rep.Cascade; c == nil {
		t.Errorf("no cascade ran (the load ran %s)", rep.Duration)
	} else {
		for _, p := range c.Problems {
			t.Errorf("cascade: %s", p)
		}
	}
}

// cascade kills a third of the supernodes at once and watches the storm:
// every user that dropped must be attached again within 30 s, and no
// survivor may exit or pass its memory limit. The killed ones come back
// afterwards.
func cascade(t *testing.T, l loads, procs []*snProc, rng *rand.Rand) *CascadeNums {
	k := cascadeSize(len(procs))
	// The victims are the supernodes holding the most users: the worst storm.
	at := l.OnlineAt()
	victims := slices.Clone(procs)
	rng.Shuffle(len(victims), func(i, j int) { victims[i], victims[j] = victims[j], victims[i] })
	slices.SortStableFunc(victims, func(a, b *snProc) int { return at[b.url] - at[a.url] })
	victims = victims[:k]
	survivors := slices.DeleteFunc(slices.Clone(procs), func(p *snProc) bool { return slices.Contains(victims, p) })
	c := &CascadeNums{Killed: k}
	for _, v := range victims {
		if !v.running() {
			v.start() // a random kill's victim: back first, so that k really die
		}
		c.UsersOnKilled += at[v.url]
	}
	before := l.Stats()
	start := time.Now()
	var wg sync.WaitGroup
	for _, v := range victims {
		wg.Go(v.kill)
	}
	wg.Wait()
	t.Logf("cascade: killed %d of %d supernodes at once, %d users were on them", k, len(procs), c.UsersOnKilled)
	deadline := start.Add(reattachBound)
	for {
		time.Sleep(250 * time.Millisecond)
		dropped := l.Drops() - before.Drops
		back := l.Reattaches(start)
		if dropped > 0 && int64(len(back)) >= dropped && time.Since(start) > 2*time.Second {
			c.AllBackIn = time.Since(start).Round(time.Millisecond).String()
			break
		}
		if time.Now().After(deadline) {
			c.Problems = append(c.Problems, fmt.Sprintf("%d of %d dropped users not attached again within %v", dropped-int64(len(back)), dropped, reattachBound))
			break
		}
	}
	after := l.Stats()
	back := l.Reattaches(start)
	c.Dropped, c.Reattached = after.Drops-before.Drops, len(back)
	p50, p99, mx := loadgen.Percentiles(back)
	c.P50, c.P99, c.Max = p50.Round(time.Millisecond).String(), p99.Round(time.Millisecond).String(), mx.Round(time.Millisecond).String()
	c.BusyRefusals = after.Busy - before.Busy
	if mx > reattachBound {
		c.Problems = append(c.Problems, fmt.Sprintf("a reattach took %v, over %v", mx, reattachBound))
	}
	c.SurvivorsUp = true
	c.Shed = map[string]float64{}
	for _, s := range survivors {
		for reason, v := range shedCounts(s) {
			c.Shed[reason] += v
		}
		s.sample()
		s.mu.Lock()
		c.SurvivorPeaks = append(c.SurvivorPeaks, s.peakRSS)
		if s.cmd == nil || len(s.unexpected) > 0 {
			c.SurvivorsUp = false
			c.Problems = append(c.Problems, fmt.Sprintf("survivor %d went down: %v", s.idx, s.unexpected))
		}
		if s.peakRSS >= memLimit {
			c.Problems = append(c.Problems, fmt.Sprintf("survivor %d peaked at %d B, over its limit", s.idx, s.peakRSS))
		}
		s.mu.Unlock()
	}
	t.Logf("cascade: %d dropped, all back in %s (p50 %s, p99 %s, max %s), %d busy refusals, survivors' peak RSS %v",
		c.Dropped, c.AllBackIn, c.P50, c.P99, c.Max, c.BusyRefusals, c.SurvivorPeaks)
	for _, v := range victims {
		v.start()
	}
	return c
}

// cascadeSize is a third of n supernodes, rounded up.
func cascadeSize(n int) int { return (n + 2) / 3 }

// startLogin runs a login server in this process, listening on lab host h
// (cheap hashing, no per-address registration cap: a load host's users all
// come from one address).
func startLogin(t *testing.T, ctx context.Context, dir string, h *netlab.Host) string {
	ln, err := netlab.ListenTCPIn(h.NS, "tcp4", h.IP.String()+":8080")
	if err != nil {
		t.Fatal(err)
	}
	lc := login.Config{DataDir: dir, Argon2: login.Argon2Params{Time: 1, Memory: 1024, Threads: 1},
		DialBackAllow: []netip.Prefix{labInternet}, MaxRegistrationsPerAddr: 1 << 20, MaxRegistrationsPerMinute: 1 << 20,
		MaxConnsPerAddr: 1 << 16, MaxDialBacksPerAddr: 1 << 10,
		DialBackDial: h.DialContext} // from the login host, as a login server's own would
	done := make(chan error, 1)
	lctx, stop := context.WithCancel(ctx)
	go func() { done <- cluster.RunLogin(lctx, cluster.LoginConfig{Login: lc, Listener: ln}) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("login server: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

// startLoads starts a load child on each of hosts with its share of cfg's
// users (named cfg.Prefix plus a letter per host); only the first places
// the calls. It waits until every user attached once.
func startLoads(t *testing.T, hosts []*netlab.Host, dir, logPrefix string, cfg loadgen.Config) loads {
	out := make(loads, len(hosts))
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		c := cfg
		c.Users = cfg.Users / len(hosts)
		if i == 0 {
			c.Users += cfg.Users % len(hosts)
		} else {
			c.Calls = 0
		}
		c.Prefix = fmt.Sprintf("%s%c", cfg.Prefix, 'a'+i)
		wg.Go(func() { out[i], errs[i] = startLoad(h, dir, fmt.Sprintf("%sload%d", logPrefix, i), c) })
	}
	wg.Wait()
	t.Cleanup(func() { slices.DeleteFunc(out, func(lp *loadProc) bool { return lp == nil }).Close() })
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// waitMesh waits until every supernode is listed and sees all n.
func waitMesh(t *testing.T, ctx context.Context, procs []*snProc, n int) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok := true
		var seen []string
		for _, p := range procs {
			hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			h, err := p.health(hctx)
			cancel()
			ok = ok && err == nil && h.Members == n && h.Login == "listed"
			seen = append(seen, fmt.Sprintf("%d: members %d, login %q, err %v", p.idx, h.Members, h.Login, err))
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range procs {
				b, _ := os.ReadFile(filepath.Join(p.dir, fmt.Sprintf("supernode%d.log", p.idx)))
				t.Logf("supernode %d's log (last 2 KiB):\n%s", p.idx, b[max(0, len(b)-2048):])
			}
			t.Fatalf("the %d supernodes did not form a mesh within 60 s: %v", n, seen)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// idleStats waits for every supernode to have no session and no record
// left, then reads each one's heap and goroutines after GC.
func idleStats(t *testing.T, ctx context.Context, procs []*snProc) []childStats {
	deadline := time.Now().Add(60 * time.Second)
	for {
		idle := true
		for _, p := range procs {
			hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			h, err := p.health(hctx)
			cancel()
			idle = idle && err == nil && h.Online == 0
		}
		if idle {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("supernodes still hold sessions 60 s after every user left")
		}
		time.Sleep(250 * time.Millisecond)
	}
	// The presence records expire (RecordTTL 10 s), and what the last
	// sessions left behind is collected: the reading is taken once the heap
	// after GC has settled (two readings 3 s apart within 2%), or after 60 s.
	time.Sleep(10 * time.Second)
	// The supernodes are read side by side, each until its heap after GC
	// has settled (two readings 3 s apart within 2%; the second counts).
	out := make([]childStats, len(procs))
	errs := make([]error, len(procs))
	settle := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	for i, p := range procs {
		wg.Go(func() {
			var last childStats
			for {
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				st, err := p.stats(sctx)
				cancel()
				if err != nil {
					errs[i] = fmt.Errorf("supernode %d stats: %w", i, err)
					return
				}
				settled := last.HeapAlloc > 0 && float64(st.HeapAlloc) <= float64(last.HeapAlloc)*1.02 && float64(st.HeapAlloc) >= float64(last.HeapAlloc)*0.98
				last = st
				if settled || time.Now().After(settle) {
					break
				}
				time.Sleep(3 * time.Second)
			}
			out[i] = last
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if *soakProfiles != "" {
		for i, p := range procs {
			saveHeapProfile(ctx, p, filepath.Join(*soakProfiles, fmt.Sprintf("sn%d-%s.pb.gz", i, time.Now().Format("150405"))))
		}
	}
	return out
}

// startEcho runs the echo user on lab host h and waits until it is online.
func startEcho(t *testing.T, h *netlab.Host, dir, loginURL string) *child {
	b, _ := json.Marshal(echoChild{Home: filepath.Join(dir, "echo"), LoginURL: loginURL})
	c, err := startChild(h, dir, "echo", echoEnv+"="+string(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.stop() })
	online := make(chan error, 1)
	go func() {
		line, err := c.out.ReadString('\n')
		if err == nil && line != "online\n" {
			err = fmt.Errorf("echo said %q", line)
		}
		online <- err
	}()
	select {
	case err := <-online:
		if err != nil {
			t.Fatalf("the echo user: %v (log in %s)", err, filepath.Join(dir, "echo.log"))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the echo user did not come online")
	}
	return c
}

func writeReport(t *testing.T, rep *Report) {
	b, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("soak report:\n%s", b)
	if *soakReport != "" {
		if err := os.WriteFile(*soakReport, append(b, '\n'), 0o644); err != nil {
			t.Error(err)
		}
	}
	var sb strings.Builder
	for i, s := range rep.PerSupernode {
		fmt.Fprintf(&sb, "\n  supernode %d: %d starts, peak RSS %.1f MiB, heap %.2f → %.2f MiB, goroutines %d → %d (own %d → %d)", i, s.Starts,
			float64(s.PeakRSS)/(1<<20), float64(s.BaselineHeap)/(1<<20), float64(s.FinalHeap)/(1<<20), s.BaselineGorout, s.FinalGorout, s.BaselineOwn, s.FinalOwn)
	}
	st := rep.Load
	t.Logf("soak %s (wall %s): %d users, %d attaches, %d messages, %d lost, %d duplicates, %d resends, calls %d/%d, %d kills, %d busy refusals%s",
		rep.Duration, rep.Wall, st.Users, st.Attaches, st.Messages, st.Lost, st.Duplicates, st.Resends, st.CallsConnected, st.CallsPlaced, rep.Kills, st.Busy, sb.String())
}

// saveHeapProfile writes p's heap profile (after GC) to file.
func saveHeapProfile(ctx context.Context, p *snProc, file string) {
	p.mu.Lock()
	addr := p.debug
	p.mu.Unlock()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/soak/heap", nil)
	resp, err := p.ctl.Do(req)
	if err != nil {
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	os.WriteFile(file, b, 0o644)
}

// shedCounts reads parley_supernode_attaches_shed_total by reason from a
// supernode's /metrics.
func shedCounts(p *snProc) map[string]float64 {
	out := map[string]float64{}
	resp, err := p.ctl.Get(p.httpURL + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, `parley_supernode_attaches_shed_total{reason="`)
		if !ok {
			continue
		}
		reason, val, _ := strings.Cut(rest, `"} `)
		var v float64
		fmt.Sscan(val, &v)
		out[reason] = v
	}
	return out
}
