package cluster

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley/parley/client"
	"github.com/parley/parley/codec"
	"github.com/parley/parley/internal/metrics"
	"github.com/parley/parley/login"
	"github.com/parley/parley/supernode"
	"github.com/parley/parley/wire/loginapi"
)

// scrape is one reading of a /metrics page: each sample by its series
// (`name{label="value",...}` as exposed, labels sorted by name).
type scrape map[string]float64

// get reads url's /metrics in the text format.
func getMetrics(t *testing.T, base string) scrape {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s/metrics: %s\n%s", base, resp.Status, b)
	}
	s := scrape{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("%s/metrics: %q: %v", base, line, err)
		}
		s[line[:i]] = v
	}
	return s
}

// sum adds the samples of metric name whose labels include every one of
// want ("reason=\"quota\"" style strings).
func (s scrape) sum(name string, want ...string) float64 {
	total := 0.0
	for k, v := range s {
		n, labels, _ := strings.Cut(k, "{")
		if n != name {
			continue
		}
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(labels, w)
		}
		if ok {
			total += v
		}
	}
	return total
}

// delta is how much a sum moved from before to after.
func delta(before, after scrape, name string, want ...string) float64 {
	return after.sum(name, want...) - before.sum(name, want...)
}

// testServers is a login server and a supernode with its relay, run as
// `parley login-server` and `parley supernode` run them, each with its own
// registry, on loopback.
type testServers struct {
	loginURL, snURL string // http://host:port
	loginReg, snReg *prometheus.Registry
}

func startServers(t *testing.T, lc login.Config) *testServers {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	lln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServers{loginURL: "http://" + lln.Addr().String(), snURL: "http://" + sln.Addr().String(),
		loginReg: metrics.NewRegistry(), snReg: metrics.NewRegistry()}
	dir := t.TempDir()
	lc.DataDir = dir
	lc.Argon2 = login.Argon2Params{Time: 1, Memory: 1024, Threads: 1}
	lc.DialBackAllow = []netip.Prefix{loopback}
	lc.MaxRegistrationsPerAddr = 100
	done := make(chan error, 2)
	go func() {
		done <- RunLogin(ctx, LoginConfig{Login: lc, Listener: lln, Metrics: MetricsConfig{Registry: ts.loginReg}})
	}()
	go func() {
		done <- RunSupernode(ctx, SupernodeConfig{LoginURL: ts.loginURL, Listener: sln,
			Relay:   RelayConfig{UDP: "127.0.0.1:0", TCP: "127.0.0.1:0", AllowPeers: []netip.Prefix{loopback}},
			Limits:  supernode.Config{MaxSessionsPerAddr: -1, MaxConnsPerAddr: -1},
			Metrics: MetricsConfig{Registry: ts.snReg}})
	}()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("server: %v", err)
			}
		}
	})
	// Listed: clients are given the supernode.
	waitUntil(t, 20*time.Second, "the supernode listed by the login server", func() bool {
		h := health[supernode.Health](t, ts.snURL)
		return h.Login == "listed"
	})
	return ts
}

// health reads a /healthz answer.
func health[T any](t *testing.T, base string) T {
	t.Helper()
	var h T
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		return h
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&h)
	return h
}

func waitUntil(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// online registers name and returns its session.
func online(t *testing.T, loginURL, name string, cfg client.SessionConfig) *client.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.New(client.Config{Home: t.TempDir(), LoginURL: loginURL})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(ctx, name, "password-"+name); err != nil {
		t.Fatal(err)
	}
	if err := c.Login(ctx, name, "password-"+name); err != nil {
		t.Fatal(err)
	}
	s, err := c.Online(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMetricsDuringARelayedCallAndAMessage scrapes the login server's and
// the supernode's /metrics (the supernode's holds its relay's) around a
// message through the supernode, a relayed call, a message into an offline
// user's mailbox and a burst of wrong passwords, and checks that each
// counter moved by what those did.
func TestMetricsDuringARelayedCallAndAMessage(t *testing.T) {
	ts := startServers(t, login.Config{})
	l0, s0 := getMetrics(t, ts.loginURL), getMetrics(t, ts.snURL)
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes"} {
		if _, ok := s0[name]; !ok {
			t.Errorf("the supernode's /metrics lacks %s", name)
		}
	}

	incoming := make(chan *client.Call, 1)
	bob := online(t, ts.loginURL, "bob", client.SessionConfig{RelayOnly: true, OnIncoming: func(in *client.Incoming) {
		c, err := in.Answer(context.Background(), client.Media{})
		if err != nil {
			t.Errorf("answer: %v", err)
			return
		}
		incoming <- c
	}})
	alice := online(t, ts.loginURL, "alice", client.SessionConfig{RelayOnly: true})
	defer alice.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := alice.AddContact(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.AcceptContact(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	l1, s1 := getMetrics(t, ts.loginURL), getMetrics(t, ts.snURL)
	if got := s1.sum("parley_supernode_sessions"); got != 2 {
		t.Errorf("parley_supernode_sessions = %v with alice and bob attached, want 2", got)
	}
	if got := s1.sum("parley_supernode_users"); got != 2 {
		t.Errorf("parley_supernode_users = %v, want 2", got)
	}
	if got := delta(l0, l1, "parley_login_logins_total", `result="ok"`); got != 2 {
		t.Errorf("logins ok moved by %v for two logins, want 2", got)
	}
	if got := delta(l0, l1, "parley_login_registrations_total", `result="ok"`); got != 2 {
		t.Errorf("registrations ok moved by %v, want 2", got)
	}
	if got := delta(s0, s1, "parley_supernode_frames_received_total", `type="attach"`); got != 2 {
		t.Errorf("attach frames moved by %v for two sessions, want 2", got)
	}

	// A message to bob, online: through the supernode (no call is up), and
	// bob's receipt back.
	if r, err := alice.SendMessage(ctx, "bob", "hello bob"); err != nil || !r.Delivered {
		t.Fatalf("message to bob: %+v, %v", r, err)
	}
	waitUntil(t, 5*time.Second, "bob's receipt", func() bool {
		return delta(s1, getMetrics(t, ts.snURL), "parley_supernode_frames_received_total", `type="send"`) >= 2
	})
	s2 := getMetrics(t, ts.snURL)
	sends := delta(s1, s2, "parley_supernode_frames_received_total", `type="send"`)
	delivers := delta(s1, s2, "parley_supernode_frames_sent_total", `type="deliver"`)
	lookups := delta(s1, s2, "parley_supernode_lookups_total")
	t.Logf("a message and its receipt: %v sends, %v deliveries, %v lookups", sends, delivers, lookups)
	if sends < 2 || delivers != sends || lookups != sends {
		t.Errorf("a message and its receipt: %v sends, %v deliveries, %v lookups; want ≥ 2 sends, each delivered and looked up once", sends, delivers, lookups)
	}
	if hops := delta(s1, s2, "parley_supernode_lookups_total", `hops="0"`); hops != lookups {
		t.Errorf("%v of %v lookups took 0 hops on a one-supernode mesh, want all", hops, lookups)
	}
	if acks := delta(s1, s2, "parley_supernode_frames_sent_total", `type="ack"`); acks != sends {
		t.Errorf("%v acks for %v sends", acks, sends)
	}

	// A relayed call of 3 s: every packet both ends send crosses the relay
	// once from an allocation to a peer (the other end's allocation) and
	// once from a peer into an allocation.
	call, err := alice.Call(ctx, "bob", client.Media{Source: codec.NewPCMFrameReader(make([]int16, 3*48000))})
	if err != nil {
		t.Fatal(err)
	}
	var bc *client.Call
	select {
	case bc = <-incoming:
	case <-time.After(10 * time.Second):
		t.Fatal("bob never answered")
	}
	waitUntil(t, 10*time.Second, "media through the relay", func() bool { return bc.Stats().PacketsReceived > 100 })
	if st := call.Stats(); st.Path != "udp-relay" && st.Path != "tcp-relay" {
		t.Errorf("call path %q, want a relay", st.Path)
	}
	time.Sleep(2 * time.Second)
	sMid := getMetrics(t, ts.snURL)
	call.Hangup("hangup")
	<-call.Done()
	<-bc.Done()
	time.Sleep(200 * time.Millisecond) // the last packets in flight
	s3 := getMetrics(t, ts.snURL)
	as, bs := call.Stats(), bc.Stats()
	sent := float64(as.PacketsSent + bs.PacketsSent)
	toPeer := delta(s2, s3, "parley_relay_packets_total", `direction="to_peer"`)
	fromPeer := delta(s2, s3, "parley_relay_packets_total", `direction="from_peer"`)
	bytesTo := delta(s2, s3, "parley_relay_bytes_total", `direction="to_peer"`)
	t.Logf("call: alice sent %d packets (%d B), bob %d (%d B); relay: %v packets to peers (%v B), %v from peers, %v allocations",
		as.PacketsSent, as.BytesSent, bs.PacketsSent, bs.BytesSent, toPeer, bytesTo, fromPeer,
		delta(s2, s3, "parley_relay_allocations_total"))
	// RTP is most of it; RTCP, DTLS, ICE consent checks and SCTP add a few
	// percent. (Packets aimed at an allocation closed at the hangup are
	// dropped, not relayed.)
	self := delta(s2, s3, "parley_relay_dropped_packets_total", `reason="self"`)
	if toPeer < sent-self || toPeer > sent*1.25+200 {
		t.Errorf("%v packets relayed to peers for %v RTP packets sent by both ends, want between %v and %v", toPeer, sent, sent-self, sent*1.25+200)
	}
	if math.Abs(toPeer-fromPeer) > 0.02*toPeer+10 {
		t.Errorf("%v packets left allocations for peers, %v arrived from peers: both ends are on this relay, want them equal", toPeer, fromPeer)
	}
	if min := float64(as.BytesSent + bs.BytesSent); bytesTo < min {
		t.Errorf("%v bytes relayed to peers, less than the %v bytes of RTP payload both ends sent", bytesTo, min)
	}
	if n := delta(s2, s3, "parley_relay_allocations_total"); n < 2 {
		t.Errorf("%v allocations for a call relayed at both ends, want ≥ 2", n)
	}
	if n := sMid.sum("parley_relay_allocations"); n < 2 {
		t.Errorf("parley_relay_allocations = %v during the call, want ≥ 2", n)
	}
	// Nothing is over its budget; a packet or two sent to the other end's
	// allocation just after it closed (at the hangup) is dropped as aimed at
	// the relay's own address.
	if n := delta(s2, s3, "parley_relay_dropped_packets_total", `reason="bandwidth"`); n != 0 {
		t.Errorf("%v packets dropped for bandwidth during a plain call", n)
	}
	if self > 10 {
		t.Errorf("%v packets dropped as aimed at the relay itself during a call between two of its allocations", self)
	}
	if n := delta(s2, s3, "parley_supernode_frames_received_total", `type="send"`); n < 2 {
		t.Errorf("%v sends for a call's signalling, want ≥ 2 (offer and answer)", n)
	}

	// bob leaves: alice is told (a presence push), and a message to him
	// waits in his mailbox, bytes for bytes.
	l3 := getMetrics(t, ts.loginURL)
	bob.Close()
	waitUntil(t, 5*time.Second, "bob detached", func() bool { return getMetrics(t, ts.snURL).sum("parley_supernode_sessions") == 1 })
	waitUntil(t, 5*time.Second, "alice told bob is offline", func() bool {
		return delta(s3, getMetrics(t, ts.snURL), "parley_supernode_presence_pushes_total") >= 1
	})
	if r, err := alice.SendMessage(ctx, "bob", "are you there?"); err != nil || !r.Stored {
		t.Fatalf("message to offline bob: %+v, %v", r, err)
	}
	l4 := getMetrics(t, ts.loginURL)
	posted, stored := delta(l3, l4, "parley_login_mailbox_posted_bytes_total"), delta(l3, l4, "parley_login_mailbox_bytes")
	t.Logf("mailbox: %v bytes posted, %v bytes more waiting, %v items", posted, stored, l4.sum("parley_login_mailbox_items"))
	if posted <= 0 || stored != posted {
		t.Errorf("mailbox: %v bytes posted, the mailboxes grew by %v; want the same, above 0", posted, stored)
	}
	if n := delta(l3, l4, "parley_login_mailbox_items_total", `op="stored"`); n != 1 {
		t.Errorf("%v mailbox items stored for a message to bob's one device, want 1", n)
	}

	// Six wrong passwords from one address for one name: five are counted
	// wrong, the sixth is refused by the rate limit.
	lc := loginapi.NewClient(ts.loginURL, nil)
	pub, _, _ := ed25519.GenerateKey(nil)
	for range 6 {
		if _, err := lc.Login(ctx, "mallory", "not-the-password", pub); err == nil {
			t.Fatal("a wrong password logged in")
		} else if !errors.Is(err, loginapi.ErrWrongPassword) && !errors.Is(err, loginapi.ErrRateLimited) {
			t.Fatal(err)
		}
	}
	l5 := getMetrics(t, ts.loginURL)
	for _, c := range []struct {
		name, label string
		want        float64
	}{
		{"parley_login_logins_total", `result="wrong_password"`, 5},
		{"parley_login_logins_total", `result="rate_limited"`, 1},
		{"parley_login_rate_limited_total", `limit="logins"`, 1},
	} {
		if got := delta(l4, l5, c.name, c.label); got != c.want {
			t.Errorf("%s{%s} moved by %v, want %v", c.name, c.label, got, c.want)
		}
	}
	if n := l5.sum("parley_login_supernodes_listed"); n != 1 {
		t.Errorf("parley_login_supernodes_listed = %v, want 1", n)
	}
	if n := l5.sum("parley_login_database_up"); n != 1 {
		t.Errorf("parley_login_database_up = %v, want 1", n)
	}

	// Health: listed, relay up, alone in a mesh of one (not a problem).
	h := health[supernode.Health](t, ts.snURL)
	if !h.OK || h.Status != "ok" || h.Login != "listed" || h.Relay != "up" || h.Mesh != "alone" || len(h.Problems) != 0 || h.Online != 1 {
		t.Errorf("supernode /healthz: %+v", h)
	}
	lh := health[login.Health](t, ts.loginURL)
	if !lh.OK || lh.Status != "ok" || lh.Database != "ok" || lh.Supernodes != 1 {
		t.Errorf("login /healthz: %+v", lh)
	}
}

// TestHealthSaysWhatIsWrong: a supernode whose login server is gone says
// so in /healthz (still 200: clients time /healthz), and one that heard of
// supernodes that do not answer says it is alone; a login server without a
// supernode says clients cannot go online.
func TestHealthSaysWhatIsWrong(t *testing.T) {
	dead := "http://" + deadAddr(t)
	_, nodeKey, _ := ed25519.GenerateKey(nil)
	pub, _, _ := ed25519.GenerateKey(nil)
	sn, err := supernode.New(supernode.Config{LoginKey: pub, Name: "127.0.0.1:1", NodeKey: nodeKey,
		Login: loginapi.NewClient(dead, nil), Advertise: "ws://127.0.0.1:1/v1/ws",
		Seeds: []string{"ws://" + deadAddr(t) + "/v1/ws"}, ProbeInterval: 50 * time.Millisecond,
		RelayHealth: func() error { return errors.New("the udp listener stopped") }})
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	srv := &http.Server{Handler: sn.Handler()}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	defer srv.Close()
	var h supernode.Health
	waitUntil(t, 10*time.Second, "the heartbeat to fail", func() bool {
		h = health[supernode.Health](t, "http://"+ln.Addr().String())
		return h.Login == "unreachable"
	})
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz of a degraded supernode: %v %v, want 200", resp, err)
	}
	resp.Body.Close()
	t.Logf("supernode: %+v", h)
	if h.Status != "degraded" || !h.OK || h.Relay != "down" || h.Mesh != "alone" || h.Candidates != 1 {
		t.Errorf("/healthz %+v: want ok, degraded, login unreachable, relay down, alone with a candidate", h)
	}
	for _, want := range []string{"login server unreachable", "relay down: the udp listener stopped", "alone in the mesh: the one other supernode it knows does not answer"} {
		if !slices.ContainsFunc(h.Problems, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("problems %q lack %q", h.Problems, want)
		}
	}

	dir := t.TempDir()
	ls, err := login.New(login.Config{DataDir: dir, Argon2: login.Argon2Params{Time: 1, Memory: 1024, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	lh := ls.Health(context.Background())
	if !lh.OK || lh.Status != "degraded" || len(lh.Problems) != 1 || !strings.Contains(lh.Problems[0], "no supernode listed") {
		t.Errorf("login server without supernodes: %+v", lh)
	}
	// A database that is gone: 503, and the reason.
	os.Remove(filepath.Join(dir, "login.db"))
	ls.Close()
	if h := ls.Health(context.Background()); h.OK || h.Status != "down" {
		t.Errorf("login server with its database closed: %+v, want down", h)
	}
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// metricRE finds metric names in a PromQL expression: the project's, Go's
// and the process collector's.
var metricRE = regexp.MustCompile(`\b(parley_[a-z_]+|go_[a-z_]+|process_[a-z_]+)\b`)

// TestDashboardNamesOnlyMetricsThatExist: deploy/grafana-parley.json parses,
// and every metric its queries name is one a login server, a supernode
// (with its relay) or the runtime exports; every parley_ metric is on the
// dashboard.
func TestDashboardNamesOnlyMetricsThatExist(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana-parley.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("deploy/grafana-parley.json: %v", err)
	}
	ts := startServers(t, login.Config{})
	exported := map[string]bool{}
	for _, reg := range []*prometheus.Registry{ts.loginReg, ts.snReg} {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			exported[mf.GetName()] = true
		}
	}
	used := map[string]bool{}
	queries := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			if tg.Expr == "" {
				continue
			}
			queries++
			names := metricRE.FindAllString(tg.Expr, -1)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q names no metric", p.Title, tg.Expr)
			}
			for _, n := range names {
				used[n] = true
				if !exported[n] {
					t.Errorf("panel %q: %s is not exported by any server", p.Title, n)
				}
			}
		}
	}
	for n := range exported {
		if strings.HasPrefix(n, "parley_") && !used[n] {
			t.Errorf("%s is exported but not on the dashboard", n)
		}
	}
	t.Logf("dashboard %q: %d panels, %d queries, %d metrics", dash.Title, len(dash.Panels), queries, len(used))
}

// TestStandaloneRelayServesMetrics: `parley relay --metrics-listen ADDR`
// serves the relay's metrics there (it has no HTTP listener of its own).
func TestStandaloneRelayServesMetrics(t *testing.T) {
	addr := deadAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunRelay(ctx, RelayConfig{UDP: "127.0.0.1:0", TCP: Off, IP: net.IPv4(127, 0, 0, 1),
			Secret: []byte("0123456789abcdef"), Metrics: MetricsConfig{Listen: addr}})
	}()
	var s scrape
	waitUntil(t, 10*time.Second, "the relay's metrics", func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		resp.Body.Close()
		s = getMetrics(t, "http://"+addr)
		return true
	})
	if _, ok := s["parley_relay_allocations"]; !ok {
		t.Errorf("no parley_relay_allocations at %s/metrics", addr)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestListenErrorsNameTheirSetting: a port in use is a *ListenError that
// says which listener it was.
func TestListenErrorsNameTheirSetting(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	ctx := context.Background()
	for _, tt := range []struct {
		name, role string
		run        func() error
	}{
		{"login server", RoleListen, func() error {
			return RunLogin(ctx, LoginConfig{Listen: addr, Login: login.Config{DataDir: t.TempDir()}})
		}},
		{"metrics", RoleMetrics, func() error {
			return RunLogin(ctx, LoginConfig{Listen: "127.0.0.1:0", Metrics: MetricsConfig{Listen: addr}, Login: login.Config{DataDir: t.TempDir()}})
		}},
		{"relay tcp", RoleTURNTCP, func() error {
			_, err := StartRelay(RelayConfig{UDP: "127.0.0.1:0", TCP: addr, IP: net.IPv4(127, 0, 0, 1), Secret: []byte("0123456789abcdef")}, "")
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			var le *ListenError
			if !errors.As(err, &le) || le.Role != tt.role || le.Addr != addr {
				t.Fatalf("got %v, want a ListenError for %s on %s", err, tt.role, addr)
			}
			if want := fmt.Sprintf("listen on %s: address already in use", addr); err.Error() != want {
				t.Errorf("%q, want %q", err, want)
			}
		})
	}
}

// TestCheckCertFile says what is wrong with a certificate file at start:
// self-signed, expired, for an IP address or another name.
func TestCheckCertFile(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lab"},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour),
		IPAddresses: []net.IP{net.IPv4(192, 0, 2, 1)}, DNSNames: []string{"lab.example.net"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	for _, tt := range []struct {
		host string
		want []string
	}{
		{"192.0.2.1", []string{"self-signed", "expired at", "for the IP address 192.0.2.1"}},
		{"sn.example.net", []string{"self-signed", "expired at", "it is for lab.example.net, 192.0.2.1, not sn.example.net"}},
	} {
		got := strings.Join(CheckCertFile(certFile, keyFile, tt.host, nil), "\n")
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("host %s: problems %q lack %q", tt.host, got, w)
			}
		}
	}
}
