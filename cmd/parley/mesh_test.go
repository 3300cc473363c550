package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley/parley/internal/audiotest"
	"github.com/parley/parley/internal/netlab"
	"github.com/parley/parley/internal/procstat"
)

// The tests in this file run a mesh of supernodes in network namespaces: a
// login server, supernodes on public addresses, and clients on public
// addresses and behind real NATs. See docs/supernode.md.

// labAllow is the lab internet: the benchmark range, which the login server
// (dial-backs) and the relays refuse unless allowed, as an operator's lab would.
const labAllow = "198.18.0.0/15"

type meshLab struct {
	lab      *netlab.Lab
	loginURL string
	sns      []*labSupernode
}

type labSupernode struct {
	host *netlab.Host
	proc *proc
	url  string
}

// startMeshLab starts a login server and n supernodes, each on its own public
// host, and waits until every supernode is listed and sees all the others.
func startMeshLab(t *testing.T, n int) *meshLab {
	t.Helper()
	lab := netlab.NewForTest(t)
	lh, err := lab.AddPublicHost("login")
	must(t, err)
	ml := &meshLab{lab: lab, loginURL: "http://" + lh.IP.String() + ":8080"}
	startIn(t, lh.NS, nil, "login-server", "--max-registrations-per-addr", "1000", "--listen", lh.IP.String()+":8080", "--data", t.TempDir(), "--supernode-allow", labAllow)
	for i := 1; i <= n; i++ {
		h, err := lab.AddPublicHost(fmt.Sprintf("sn%d", i))
		must(t, err)
		ml.sns = append(ml.sns, ml.startSupernode(t, h))
	}
	ml.waitMesh(t, ml.sns, n, 30*time.Second)
	return ml
}

func (ml *meshLab) startSupernode(t *testing.T, h *netlab.Host) *labSupernode {
	t.Helper()
	ip := h.IP.String()
	p := startIn(t, h.NS, []string{"PARLEY_LOGIN=" + ml.loginURL}, "supernode",
		"--listen", ip+":8081", "--public-addr", ip,
		"--turn-udp", ip+":3478", "--turn-tcp", ip+":3478", "--relay-allow-peer", labAllow)
	return &labSupernode{host: h, proc: p, url: "ws://" + ip + ":8081/v1/ws"}
}

// waitMesh waits until every supernode in sns is listed by the login server
// and has seen want-1 others join its mesh.
func (ml *meshLab) waitMesh(t *testing.T, sns []*labSupernode, want int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, sn := range sns {
		for {
			_, errOut := sn.proc.output()
			if strings.Contains(errOut, "listed by the login server") && strings.Count(errOut, "supernode joined the mesh") >= want-1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("supernode %s did not join a mesh of %d:\n%s", sn.url, want, errOut)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// labUser is a client in the lab: a home on a host, attached through a
// preferred supernode.
type labUser struct {
	name string
	host *netlab.Host
	env  []string
	sn   *labSupernode
	echo *proc
}

func (ml *meshLab) newUser(t *testing.T, name string, h *netlab.Host, sn *labSupernode) *labUser {
	home := t.TempDir()
	return &labUser{name: name, host: h, sn: sn, env: []string{
		"PARLEY_HOME=" + home, "PARLEY_LOGIN=" + ml.loginURL, "PARLEY_PASSWORD=pw-" + name + "-secret",
		"PARLEY_USER=" + name, "PARLEY_SUPERNODE=" + sn.url,
	}}
}

// startEcho runs `parley echo` as the user (registering it) and waits until it
// is online.
func (u *labUser) startEcho(t *testing.T, extra ...string) {
	t.Helper()
	u.echo = startIn(t, u.host.NS, u.env, append([]string{"echo", u.name, "--json", "--no-supernode"}, extra...)...)
}

func waitEvent(t *testing.T, p *proc, event string, within time.Duration) map[string]any {
	t.Helper()
	return waitEventWhere(t, p, event, within, func(map[string]any) bool { return true })
}

// waitEventWhere waits for an event of p's --json output that ok accepts.
func waitEventWhere(t testing.TB, p *proc, event string, within time.Duration, ok func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, errOut := p.output()
		for _, ev := range jsonLines(t, out) {
			if ev["event"] == event && ok(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q event from parley %v within %v\nstdout:\n%s\nstderr:\n%s", event, p.cmd.Args, within, out, errOut)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// lookupResult is one line of `parley lookup --json`.
type lookupResult struct {
	User    string   `json:"user"`
	Devices int      `json:"devices"`
	Nodes   []string `json:"nodes"`
	Hops    int      `json:"hops"`
}

// lookup has u look up names through supernode via (u's own when nil).
func (u *labUser) lookup(t *testing.T, via *labSupernode, names []string) []lookupResult {
	t.Helper()
	env := u.env
	if via != nil {
		env = append(append([]string(nil), env...), "PARLEY_SUPERNODE="+via.url)
	}
	out, errOut, code := runParleyIn(t, u.host.NS, env, append([]string{"lookup", "--json"}, names...)...)
	if code != 0 {
		t.Fatalf("%s: lookup: exit %d\n%s%s", u.name, code, out, errOut)
	}
	var res []lookupResult
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r lookupResult
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("lookup output %q: %v", line, err)
		}
		res = append(res, r)
	}
	return res
}

// echoCall has u call peer (an echo user), playing ref and recording what comes
// back, and returns the correlation and the --json output.
func (u *labUser) echoCall(t *testing.T, peer string, ref []int16, extra ...string) (float64, string) {
	t.Helper()
	rec := filepath.Join(t.TempDir(), "echoed.wav")
	args := append([]string{"call", peer, "--play", writeWAV(t, ref), "--record", rec, "--json"}, extra...)
	out, errOut, code := runParleyIn(t, u.host.NS, u.env, args...)
	if code != 0 {
		t.Fatalf("%s calling %s: exit %d\n%s\n%s", u.name, peer, code, out, errOut)
	}
	corr, _ := audiotest.MatchEnvelope(ref, readWAV(t, rec), 2*time.Second)
	return corr, out
}

// TestMesh runs 5 supernodes and 30 clients (18 on public addresses, 6 behind
// an endpoint-independent NAT, 6 behind symmetric NATs) spread over them.
// Every client finds every other in at most 2 overlay hops; cross-supernode
// calls carry audio; then 2 supernodes are SIGKILLed: every remaining user is
// findable from every surviving supernode within 5 s, new calls connect, and a
// call relayed through a killed supernode is back to flowing audio within 5 s.
func TestMesh(t *testing.T) {
	ml := startMeshLab(t, 5)
	lab := ml.lab
	var hosts []*netlab.Host
	for _, name := range []string{"pub1", "pub2", "pub3"} {
		h, err := lab.AddPublicHost(name)
		must(t, err)
		hosts = append(hosts, h)
	}
	nat, _, err := lab.AddNATHost("nat", netlab.EndpointIndependent)
	must(t, err)
	sym1, _, err := lab.AddNATHost("sym1", netlab.Symmetric)
	must(t, err)
	sym2, _, err := lab.AddNATHost("sym2", netlab.Symmetric)
	must(t, err)
	hosts = append(hosts, nat, sym1, sym2)

	// User i lives on hosts[i%6] and attaches to supernode i%5.
	const nUsers = 30
	users := make([]*labUser, nUsers)
	names := make([]string, nUsers)
	for i := range users {
		names[i] = fmt.Sprintf("u%02d", i)
		users[i] = ml.newUser(t, names[i], hosts[i%6], ml.sns[i%5])
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i, u := range users {
		u.startEcho(t)
		if i%4 == 3 {
			// Registration hashes a password: don't start them all at once.
			waitEvent(t, u.echo, "online", 30*time.Second)
		}
	}
	for _, u := range users {
		waitEvent(t, u.echo, "online", 30*time.Second)
	}
	t.Logf("%d clients online in %v", nUsers, time.Since(start).Round(time.Millisecond))

	// Every client looks up every other.
	start = time.Now()
	hops := map[int]int{}
	var mu sync.Mutex
	sem := make(chan struct{}, 4)
	for _, u := range users {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for _, r := range u.lookup(t, nil, names) {
				mu.Lock()
				hops[r.Hops]++
				mu.Unlock()
				if r.Devices < 1 {
					t.Errorf("%s looking up %s: offline", u.name, r.User)
				}
				if r.Hops > 2 {
					t.Errorf("%s looking up %s: %d hops", u.name, r.User, r.Hops)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d lookups in %v: hops %v", nUsers*nUsers, time.Since(start).Round(time.Millisecond), hops)
	if t.Failed() {
		return
	}

	// A sample of cross-supernode calls, across NAT kinds.
	ref := callSignal()
	for _, pair := range [][2]int{{0, 7}, {4, 13}, {9, 22}, {16, 5}} {
		a, b := users[pair[0]], users[pair[1]]
		corr, out := a.echoCall(t, b.name, ref)
		t.Logf("%s (%s, %s) → %s (%s, %s): path %s, correlation %.3f", a.name, a.host.Name, a.sn.host.Name,
			b.name, b.host.Name, b.sn.host.Name, lastField(t, out, "path"), corr)
		// The audio goes there and back (through the echo's jitter buffer
		// and playout): 0.99 is usual, 0.89 has been seen once.
		if corr < 0.85 {
			t.Errorf("%s → %s: correlation %.3f, want ≥ 0.85", a.name, b.name, corr)
		}
	}
	if t.Failed() {
		return
	}

	// A call relayed through supernode 1 or 2: both ends behind symmetric NATs
	// (u04 on sym1 through sn1, u11 on sym2 through sn2).
	caller, callee := users[4], users[11]
	callerEnv := append(append([]string(nil), caller.env...), "PARLEY_SUPERNODE="+ml.sns[0].url)
	long := append(audiotest.Speech(23, 20*time.Second), audiotest.Silence(500*time.Millisecond)...)
	rec := filepath.Join(t.TempDir(), "relayed.wav")
	relayed := startIn(t, caller.host.NS, callerEnv, "call", callee.name, "--play", writeWAV(t, long),
		"--record", rec, "--json", "--stats-interval", "200ms")
	connected := waitEventWhere(t, relayed, "stats", 20*time.Second, func(ev map[string]any) bool {
		n, _ := ev["packets_received"].(float64)
		return ev["path"] != nil && n > 0
	})
	relayBefore := fmt.Sprint(connected["relay"])
	if !strings.HasPrefix(fmt.Sprint(connected["path"]), "udp-relay") ||
		!(strings.HasPrefix(relayBefore, ml.sns[0].host.IP.String()) || strings.HasPrefix(relayBefore, ml.sns[1].host.IP.String())) {
		t.Fatalf("the sym1 → sym2 call is on %v through %q, want udp-relay through sn1 or sn2", connected["path"], relayBefore)
	}
	time.Sleep(3 * time.Second)

	// SIGKILL supernodes 1 and 2.
	killed := time.Now()
	for _, sn := range ml.sns[:2] {
		sn.proc.cmd.Process.Kill()
	}
	survivors := ml.sns[2:]

	// Every remaining user is findable from every surviving supernode 5 s
	// after the kill (the lookups start 4 s after it).
	time.Sleep(time.Until(killed.Add(4 * time.Second)))
	lookers := []*labUser{users[2], users[3], users[14]} // on pub3, nat, sym1: attached to sn3, sn4, sn5
	var sweepEnd time.Time
	for i, via := range survivors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, r := range lookers[i].lookup(t, via, names) {
				if r.Devices < 1 {
					t.Errorf("%v after the kill, %s is not findable from %s", time.Since(killed).Round(time.Millisecond), r.User, via.host.Name)
				}
			}
			mu.Lock()
			sweepEnd = time.Now()
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("lookups from the 3 surviving supernodes, started 4 s after the kill, ended %v after it", sweepEnd.Sub(killed).Round(time.Millisecond))

	// The relayed call resumed within 5 s.
	relayed.wait(t, 40*time.Second)
	out, _ := relayed.output()
	stall, relayAfter := longestStall(t, out, killed)
	t.Logf("relayed call: longest stretch without packets after the kill %v (stats every 200 ms), now through %s (was %s)",
		stall.Round(time.Millisecond), relayAfter, relayBefore)
	if stall > 5*time.Second {
		t.Errorf("relayed call: no packets for %v after the kill; want back within 5 s", stall)
	}
	if relayAfter == relayBefore {
		t.Errorf("relayed call still names the dead relay %s", relayAfter)
	}
	got := readWAV(t, rec)
	tail := len(long) - 48000*8 // the last 8 s, well after the restart
	corr, _ := audiotest.MatchEnvelope(long[tail:], got[max(0, len(got)-(len(long)-tail)-48000):], 2*time.Second)
	t.Logf("relayed call: the last 8 s correlate %.3f", corr)
	if corr < 0.8 {
		t.Errorf("relayed call after the restart: correlation %.3f, want ≥ 0.8", corr)
	}

	// New calls connect: between users whose supernodes died (u05: sym2 via
	// sn1; u06: pub1 via sn2), with no supernode preference: the caller picks
	// a live one.
	a := users[5]
	aEnv := a.env[:len(a.env)-1] // drop PARLEY_SUPERNODE
	a2 := &labUser{name: a.name, host: a.host, env: aEnv}
	corr, out = a2.echoCall(t, users[6].name, ref)
	t.Logf("after the kill: %s → %s on %s, correlation %.3f", a.name, users[6].name, lastField(t, out, "path"), corr)
	if corr < 0.85 {
		t.Errorf("new call after the kill: correlation %.3f, want ≥ 0.85", corr)
	}
	for _, sn := range ml.sns {
		if rss, err := procstat.RSS(sn.proc.cmd.Process.Pid); err == nil {
			t.Logf("supernode %s: %d KiB resident", sn.host.Name, rss)
		}
	}
}

// longestStall returns the longest time after t0 that the received packet
// count of a --json call stood still (between the stats events around it), and
// the relay named by the last stats event.
func longestStall(t testing.TB, out string, t0 time.Time) (time.Duration, string) {
	t.Helper()
	var relay string
	var stall time.Duration
	last, lastRise := -1.0, time.Time{}
	for _, ev := range jsonLines(t, out) {
		if ev["event"] != "stats" {
			continue
		}
		ts, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["ts"]))
		relay = fmt.Sprint(ev["relay"])
		n, _ := ev["packets_received"].(float64)
		if n > last {
			if !lastRise.IsZero() && ts.After(t0) {
				stall = max(stall, ts.Sub(lastRise))
			}
			last, lastRise = n, ts
		}
	}
	if lastRise.Before(t0) {
		t.Fatalf("the relayed call's packets never resumed after the kill:\n%s", out)
	}
	if last := lastStats(t, out); last.Sub(lastRise) > time.Second {
		// The count stood still until the end of the call.
		stall = max(stall, last.Sub(lastRise))
	}
	return stall, relay
}

// lastStats is the time of the last stats event of a --json call.
func lastStats(t testing.TB, out string) time.Time {
	var last time.Time
	for _, ev := range jsonLines(t, out) {
		if ev["event"] == "stats" {
			last, _ = time.Parse(time.RFC3339Nano, fmt.Sprint(ev["ts"]))
		}
	}
	return last
}

// TestSelfPromotion: a client on a public address promotes itself within its
// --promote-after, others attach to it and a call is relayed through it; a
// client behind a NAT with the same settings never promotes; the promoted one
// steps down when it exits.
func TestSelfPromotion(t *testing.T) {
	ml := startMeshLab(t, 1)
	lab := ml.lab
	ph, err := lab.AddPublicHost("pub")
	must(t, err)
	nh, _, err := lab.AddNATHost("nat", netlab.EndpointIndependent)
	must(t, err)
	s1, _, err := lab.AddNATHost("sym1", netlab.Symmetric)
	must(t, err)
	s2, _, err := lab.AddNATHost("sym2", netlab.Symmetric)
	must(t, err)

	promote := []string{"--promote-after", "3s", "--promote-check", "1s", "--relay-allow-peer", labAllow}
	pu := ml.newUser(t, "public", ph, ml.sns[0])
	nu := ml.newUser(t, "natted", nh, ml.sns[0])
	pu.echo = startIn(t, ph.NS, pu.env, append([]string{"echo", pu.name, "--json"}, promote...)...)
	nu.echo = startIn(t, nh.NS, nu.env, append([]string{"echo", nu.name, "--json"}, promote...)...)
	online := waitEvent(t, pu.echo, "online", 30*time.Second)
	onlineAt, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(online["ts"]))
	ev := waitEvent(t, pu.echo, "promoted", 20*time.Second)
	promotedAt, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["ts"]))
	url := fmt.Sprint(ev["supernode"])
	t.Logf("%s promoted itself %v after going online, serving %s", pu.name, promotedAt.Sub(onlineAt).Round(time.Millisecond), url)
	if want := "ws://" + ph.IP.String() + ":8081/v1/ws"; url != want {
		t.Errorf("promoted to %s, want %s", url, want)
	}
	if d := promotedAt.Sub(onlineAt); d < 3*time.Second || d > 3*time.Second+5*time.Second {
		t.Errorf("promoted %v after going online; want soon after --promote-after 3s", d)
	}
	promoted := &labSupernode{host: ph, proc: pu.echo, url: url}
	// The login server lists it (after dialling it back) and the mesh has it.
	ml.waitMesh(t, ml.sns, 2, 20*time.Second)

	// Two clients behind symmetric NATs attach to it; their call is relayed
	// through it.
	a, b := ml.newUser(t, "sa", s1, promoted), ml.newUser(t, "sb", s2, promoted)
	b.startEcho(t)
	waitEvent(t, b.echo, "online", 30*time.Second)
	if out, errOut, code := runParleyIn(t, s1.NS, a.env, "register", a.name); code != 0 {
		t.Fatalf("register %s: exit %d\n%s%s", a.name, code, out, errOut)
	}
	corr, out := a.echoCall(t, b.name, callSignal())
	path, relay := lastField(t, out, "path"), lastField(t, out, "relay")
	t.Logf("sa → sb attached to %s: path %s through %s, correlation %.3f", url, path, relay, corr)
	if path != "udp-relay" || !strings.HasPrefix(relay, ph.IP.String()+":") {
		t.Errorf("call on %s through %q; want udp-relay through the promoted client %s", path, relay, ph.IP)
	}
	if corr < 0.85 {
		t.Errorf("correlation %.3f, want ≥ 0.85", corr)
	}

	// The NATed client never promoted.
	nout, _ := nu.echo.output()
	for _, ev := range jsonLines(t, nout) {
		if ev["event"] == "promoted" {
			t.Errorf("the client behind a NAT promoted itself: %v", ev)
		}
	}

	// It stops qualifying (its supernode port is firewalled): it steps down
	// after two failed dial-backs, and promotes again once the port is open.
	block := []string{"iptables", "-I", "INPUT", "-p", "tcp", "--dport", "8081", "-j", "DROP"}
	if out, err := ph.Run(block...); err != nil {
		t.Fatalf("%v: %v\n%s", block, err, out)
	}
	down := waitEvent(t, pu.echo, "stepped-down", 15*time.Second)
	t.Logf("with its port blocked it stepped down: %v", down["message"])
	block[1] = "-D"
	if out, err := ph.Run(block...); err != nil {
		t.Fatalf("%v: %v\n%s", block, err, out)
	}
	waitEventWhere(t, pu.echo, "promoted", 15*time.Second, func(ev map[string]any) bool {
		ts, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(ev["ts"]))
		return ts.After(promotedAt)
	})
	// sn1 took it off its ring while the port was blocked, and takes it back.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, errOut := ml.sns[0].proc.output()
		if strings.Count(errOut, "supernode joined the mesh") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sn1 did not take the promoted client back:\n%s", errOut)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Exiting steps down: the event, and the mesh drops it at once.
	pu.echo.cmd.Process.Signal(os.Interrupt)
	pu.echo.wait(t, 15*time.Second)
	out, _ = pu.echo.output()
	if n := strings.Count(out, `"event":"stepped-down"`); n != 2 {
		t.Errorf("%d stepped-down events, want 2 (port blocked, exit):\n%s", n, out)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		_, errOut := ml.sns[0].proc.output()
		if strings.Contains(errOut, "supernode left the mesh") { // the blocked step-down's goodbye could not get out
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sn1 did not see the promoted client leave:\n%s", errOut)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
