package client_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtp"

	"github.com/parley/parley/client"
	"github.com/parley/parley/codec"
	"github.com/parley/parley/internal/audiotest"
	"github.com/parley/parley/login"
	"github.com/parley/parley/supernode"
	"github.com/parley/parley/wire/loginapi"
	"github.com/parley/parley/wire/snapi"
)

// network is a login server and a supernode on loopback, with real sockets.
type network struct {
	// loginIn counts the request body bytes the login server took.
	loginIn  atomic.Int64
	dataDir  string
	loginURL string
	login    *login.Server
	sn       *supernode.Server
	snURL    string
}

// startNetwork starts a login server and a supernode. With proxy set, clients
// are sent to a man-in-the-middle proxy in front of the supernode instead
// (the supernode names itself after the proxy, as a hostile operator would).
func startNetwork(t testing.TB, proxy func(snURL string) http.Handler) *network {
	t.Helper()
	return startNetworkWith(t, proxy, login.Config{})
}

// startNetworkWith is startNetwork with the login server's Config lc (its
// database, data directory, hashing cost and dial-back range are the test's).
func startNetworkWith(t testing.TB, proxy func(snURL string) http.Handler, lc login.Config, snc ...supernode.Config) *network {
	t.Helper()
	dir := t.TempDir()
	lc.DB, lc.DataDir = filepath.Join(dir, "login.db"), dir
	lc.Argon2 = login.Argon2Params{Time: 1, Memory: 1024, Threads: 1}
	lc.DialBackAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	lc.MaxRegistrationsPerAddr = 1000 // every test user comes from 127.0.0.1
	ls, err := login.New(lc)
	if err != nil {
		t.Fatal(err)
	}
	n := &network{dataDir: dir, login: ls}
	lh := ls.Handler()
	lhs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.loginIn.Add(max(r.ContentLength, 0))
		lh.ServeHTTP(w, r)
	}))
	n.loginURL = lhs.URL

	shs := httptest.NewUnstartedServer(nil)
	name := shs.Listener.Addr().String()
	var phs *httptest.Server
	if proxy != nil {
		phs = httptest.NewUnstartedServer(nil)
		name = phs.Listener.Addr().String()
	}
	_, nodeKey, _ := ed25519.GenerateKey(nil)
	var sc supernode.Config
	if len(snc) > 0 {
		sc = snc[0]
	}
	sc.LoginKey, sc.Name, sc.NodeKey = ls.PublicKey(), name, nodeKey
	sn, err := supernode.New(sc)
	if err != nil {
		t.Fatal(err)
	}
	shs.Config.Handler = sn.Handler()
	shs.Start()
	n.sn = sn
	n.snURL = "ws://" + name + "/v1/ws"
	if phs != nil {
		// The proxy answers the login server's dial-back with the supernode
		// (whose name is the proxy's address) and rewrites the websocket.
		mux := http.NewServeMux()
		mux.Handle("/v1/identify", sn.Handler())
		mux.Handle("/", proxy("ws://"+shs.Listener.Addr().String()+"/v1/ws"))
		phs.Config.Handler = mux
		phs.Start()
	}
	if _, err := loginapi.NewClient(lhs.URL, nil).Heartbeat(context.Background(), n.snURL, nodeKey); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if phs != nil {
			phs.CloseClientConnections()
			phs.Close()
		}
		sn.Close()
		shs.Close()
		lhs.Close()
		ls.Close()
	})
	return n
}

// user registers name and returns its online session.
func (n *network) user(t testing.TB, name string, cfg client.SessionConfig) *client.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(client.Config{Home: t.TempDir(), LoginURL: n.loginURL})
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
	t.Cleanup(func() { s.Close() })
	return s
}

// recorder is a FrameSink that keeps everything and the RTP headers seen.
type recorder struct {
	mu      sync.Mutex
	pcm     []int16
	headers []rtp.Header
	arrived []time.Time
}

func (r *recorder) WriteFrame(f []int16) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pcm = append(r.pcm, f...)
	return nil
}

func (r *recorder) onRTP(h rtp.Header, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.headers = append(r.headers, h)
	r.arrived = append(r.arrived, at)
}

func (r *recorder) snapshot() ([]int16, []rtp.Header, []time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int16(nil), r.pcm...), append([]rtp.Header(nil), r.headers...), append([]time.Time(nil), r.arrived...)
}

// events collects a session's events.
type events struct {
	mu  sync.Mutex
	all []client.Event
}

func (e *events) add(ev client.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) find(kind, state string) (client.Event, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.all {
		if ev.Event == kind && (state == "" || ev.CallState != nil && ev.CallState.State == state) {
			return ev, true
		}
	}
	return client.Event{}, false
}

// testSignal is speech, a silent stretch, and speech again.
func testSignal() (sig []int16, silentFrom, silentTo int) {
	a := audiotest.Speech(1, 3*time.Second)
	s := audiotest.Silence(2 * time.Second)
	b := audiotest.Speech(2, 2*time.Second)
	sig = append(append(append(sig, a...), s...), b...)
	return sig, len(a), len(a) + len(s)
}

// placeCall has alice play pcm to peer and hang up at its end.
func placeCall(t *testing.T, alice *client.Session, peer string, pcm []int16, sink client.FrameSink) *client.Call {
	t.Helper()
	ended := make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call, err := alice.Call(ctx, peer, client.Media{
		Source:      codec.NewPCMFrameReader(pcm),
		Sink:        sink,
		OnSourceEnd: func() { once.Do(func() { close(ended) }) },
	})
	if err != nil {
		t.Fatalf("call %s: %v", peer, err)
	}
	select {
	case <-ended:
		time.Sleep(300 * time.Millisecond)
		call.Hangup("hangup")
	case <-call.Done():
		t.Fatalf("call ended early: %s", call.Reason())
	case <-time.After(time.Duration(len(pcm)/48)*time.Millisecond + 10*time.Second):
		t.Fatal("source never ended")
	}
	<-call.Done()
	return call
}

func TestCallCarriesAudioEndToEnd(t *testing.T) {
	n := startNetwork(t, nil)
	rec := &recorder{}
	var bobEv events
	bobCall := make(chan *client.Call, 1)
	n.user(t, "bob", client.SessionConfig{
		OnEvent: bobEv.add,
		OnIncoming: func(in *client.Incoming) {
			c, err := in.Answer(context.Background(), client.Media{Sink: rec, OnRTP: rec.onRTP})
			if err != nil {
				t.Errorf("answer: %v", err)
				return
			}
			bobCall <- c
		},
	})
	var aliceEv events
	alice := n.user(t, "alice", client.SessionConfig{OnEvent: aliceEv.add})

	ref, silentFrom, silentTo := testSignal()
	call := placeCall(t, alice, "bob", ref, nil)
	var bc *client.Call
	select {
	case bc = <-bobCall:
	case <-time.After(5 * time.Second):
		t.Fatal("bob never answered")
	}
	select {
	case <-bc.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("bob's side did not end after alice hung up")
	}
	if got := bc.Reason(); got != "remote hangup" {
		t.Errorf("bob's call ended with %q, want remote hangup", got)
	}

	got, headers, arrived := rec.snapshot()
	corr, lag := audiotest.MatchEnvelope(ref, got, time.Second)
	t.Logf("envelope correlation %.3f at lag %v; %d samples recorded", corr, lag, len(got))
	if corr < 0.9 {
		t.Errorf("envelope correlation %.3f, want ≥ 0.9", corr)
	}
	off := int(lag.Seconds() * codec.SampleRate)
	seg := func(pcm []int16, from, to int) []int16 {
		from, to = min(max(from, 0), len(pcm)), min(max(to, 0), len(pcm))
		return pcm[from:to]
	}
	refLevel := audiotest.RMSdB(ref[:silentFrom])
	recLevel := audiotest.RMSdB(seg(got, off, off+silentFrom))
	if d := math.Abs(refLevel - recLevel); d > 6 {
		t.Errorf("level %.1f dBFS recorded vs %.1f played: %.1f dB apart, want ≤ 6", recLevel, refLevel, d)
	}
	margin := codec.SampleRate / 10
	if lvl := audiotest.RMSdB(seg(got, off+silentFrom+margin, off+silentTo-margin)); lvl > -50 {
		t.Errorf("the silent stretch came out at %.1f dBFS, want silence (≤ -50)", lvl)
	}

	st := call.Stats()
	if st.PacketsSent == 0 || float64(len(headers)) < 0.95*float64(st.PacketsSent) {
		t.Errorf("bob received %d of %d packets, want ≥ 95%%", len(headers), st.PacketsSent)
	}
	checkSilentStretchRTP(t, headers, arrived, silentFrom/codec.FrameSamples, silentTo/codec.FrameSamples)

	if _, ok := aliceEv.find("call", client.StateConnected); !ok {
		t.Error("alice saw no connected event")
	}
	if ev, ok := aliceEv.find("stats", ""); !ok || ev.Stats.PacketsSent == 0 {
		t.Errorf("alice saw no stats with packets: %+v", ev)
	}
	if ev, ok := bobEv.find("call", client.StateEnded); !ok || ev.CallState.Reason != "remote hangup" {
		t.Errorf("bob's ended event: %+v", ev)
	}
}

// checkSilentStretchRTP proves there is no silence suppression: the frames of the
// silent stretch all went out as RTP packets, with consecutive sequence numbers,
// timestamps 960 apart, at 50 a second.
func checkSilentStretchRTP(t *testing.T, hs []rtp.Header, at []time.Time, fromFrame, toFrame int) {
	t.Helper()
	if len(hs) == 0 {
		t.Fatal("no RTP received")
	}
	base := hs[0]
	for _, h := range hs {
		if h.Marker {
			base = h
			break
		}
	}
	var first, last time.Time
	n := 0
	for i, h := range hs {
		idx := int((h.Timestamp - base.Timestamp) / codec.FrameSamples)
		if (h.Timestamp-base.Timestamp)%codec.FrameSamples != 0 {
			t.Fatalf("packet timestamp %d not a whole frame after %d", h.Timestamp, base.Timestamp)
		}
		if idx < fromFrame || idx >= toFrame {
			continue
		}
		if want := base.SequenceNumber + uint16(idx); h.SequenceNumber != want {
			t.Errorf("frame %d has sequence %d, want %d", idx, h.SequenceNumber, want)
		}
		if first.IsZero() {
			first = at[i]
		}
		last = at[i]
		n++
	}
	frames := toFrame - fromFrame
	if n < frames*95/100 {
		t.Fatalf("%d packets in the silent stretch of %d frames, want ≥ 95%%", n, frames)
	}
	rate := float64(n-1) / last.Sub(first).Seconds()
	t.Logf("silent stretch: %d packets of %d frames at %.1f packets/s", n, frames, rate)
	if rate < 45 || rate > 55 {
		t.Errorf("silent stretch arrived at %.1f packets/s, want 50", rate)
	}
}

func TestCallEchoPlaysBack(t *testing.T) {
	n := startNetwork(t, nil)
	n.user(t, "echo", client.SessionConfig{OnIncoming: func(in *client.Incoming) {
		e := client.NewEcho()
		if _, err := in.Answer(context.Background(), client.Media{Source: e, Sink: e}); err != nil {
			t.Errorf("echo answer: %v", err)
		}
	}})
	alice := n.user(t, "alice", client.SessionConfig{})
	ref := append(audiotest.Speech(7, 3*time.Second), audiotest.Silence(time.Second)...)
	rec := &recorder{}
	placeCall(t, alice, "echo", ref, rec)
	got, _, _ := rec.snapshot()
	corr, lag := audiotest.MatchEnvelope(ref, got, time.Second)
	t.Logf("echo: envelope correlation %.3f at lag %v", corr, lag)
	if corr < 0.9 {
		t.Errorf("echo envelope correlation %.3f, want ≥ 0.9", corr)
	}
}

func TestCallErrors(t *testing.T) {
	n := startNetwork(t, nil)
	alice := n.user(t, "alice", client.SessionConfig{})
	n.user(t, "grumpy", client.SessionConfig{OnIncoming: func(in *client.Incoming) { in.Decline("busy") }})
	n.user(t, "offline", client.SessionConfig{}).Close()
	tests := []struct {
		peer string
		want error
	}{
		{"nobody", client.ErrUnknownUser},
		{"offline", client.ErrOffline},
		{"grumpy", client.ErrDeclined},
	}
	for _, tt := range tests {
		t.Run(tt.peer, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := alice.Call(ctx, tt.peer, client.Media{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("call %s: %v, want %v", tt.peer, err, tt.want)
			}
		})
	}
}

// TestTamperedFingerprintIsRefused puts a hostile supernode between the two
// users: it rewrites the DTLS fingerprint in the offer (as it must to sit in the
// middle of DTLS-SRTP). The callee checks the signature and refuses the call.
func TestTamperedFingerprintIsRefused(t *testing.T) {
	var tampered sync.WaitGroup
	tampered.Add(1)
	var once sync.Once
	n := startNetwork(t, func(snURL string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			proxyWS(w, r, snURL, func(b []byte) []byte {
				out, ok := rewriteFingerprint(b)
				if ok {
					once.Do(tampered.Done)
				}
				return out
			})
		})
	})
	var bobEv events
	answered := make(chan struct{}, 1)
	n.user(t, "bob", client.SessionConfig{OnEvent: bobEv.add, OnIncoming: func(in *client.Incoming) {
		answered <- struct{}{}
		in.Answer(context.Background(), client.Media{})
	}})
	alice := n.user(t, "alice", client.SessionConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	_, err := alice.Call(ctx, "bob", client.Media{})
	tampered.Wait()
	if !errors.Is(err, client.ErrRefused) {
		t.Fatalf("call through a tampering supernode: %v, want ErrRefused", err)
	}
	select {
	case <-answered:
		t.Fatal("bob was offered a call with a forged fingerprint")
	default:
	}
	ev, ok := bobEv.find("call", client.StateEnded)
	if !ok || !strings.Contains(ev.CallState.Reason, "refused") {
		t.Fatalf("bob's events show no refusal: %+v", ev)
	}
	t.Logf("bob: %s", ev.CallState.Reason)
}

// rewriteFingerprint changes the first fingerprint in a delivered offer.
func rewriteFingerprint(b []byte) ([]byte, bool) {
	var f snapi.Frame
	if json.Unmarshal(b, &f) != nil || f.Type != snapi.TypeDeliver {
		return b, false
	}
	var sig map[string]any
	if json.Unmarshal(f.Payload, &sig) != nil || sig["kind"] != "offer" {
		return b, false
	}
	sdp := sig["sdp"].(string)
	i := strings.Index(sdp, "a=fingerprint:sha-256 ")
	if i < 0 {
		return b, false
	}
	j := i + len("a=fingerprint:sha-256 ")
	repl := "00"
	if sdp[j:j+2] == "00" {
		repl = "11"
	}
	sig["sdp"] = sdp[:j] + repl + sdp[j+2:]
	f.Payload, _ = json.Marshal(sig)
	out, _ := json.Marshal(f)
	return out, true
}

// proxyWS relays a websocket to upstream, passing server→client messages
// through rewrite.
func proxyWS(w http.ResponseWriter, r *http.Request, upstream string, rewrite func([]byte) []byte) {
	down, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer down.CloseNow()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	up, _, err := websocket.Dial(ctx, upstream, nil)
	if err != nil {
		return
	}
	defer up.CloseNow()
	up.SetReadLimit(1 << 20)
	down.SetReadLimit(1 << 20)
	go func() {
		defer cancel()
		for {
			typ, b, err := down.Read(ctx)
			if err != nil || up.Write(ctx, typ, b) != nil {
				return
			}
		}
	}()
	for {
		typ, b, err := up.Read(ctx)
		if err != nil || down.Write(ctx, typ, rewrite(b)) != nil {
			return
		}
	}
}

// TestCredentialRenewsWhileOnline: with 6-second credentials, a long-running
// session renews its credential from the refresh token — no password available
// — a third of a lifetime before it expires, the supernode accepts it, and the
// session stays attached.
func TestCredentialRenewsWhileOnline(t *testing.T) {
	dir := t.TempDir()
	ls, err := login.New(login.Config{
		DB: filepath.Join(dir, "login.db"), DataDir: dir, CredentialTTL: 6 * time.Second,
		Argon2:        login.Argon2Params{Time: 1, Memory: 1024, Threads: 1},
		DialBackAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ls.Close()
	lhs := httptest.NewServer(ls.Handler())
	defer lhs.Close()
	shs := httptest.NewUnstartedServer(nil)
	_, nodeKey, _ := ed25519.GenerateKey(nil)
	sn, err := supernode.New(supernode.Config{LoginKey: ls.PublicKey(), Name: shs.Listener.Addr().String(), NodeKey: nodeKey})
	if err != nil {
		t.Fatal(err)
	}
	shs.Config.Handler = sn.Handler()
	shs.Start()
	defer func() { sn.Close(); shs.Close() }()
	if _, err := loginapi.NewClient(lhs.URL, nil).Heartbeat(context.Background(), "ws://"+shs.Listener.Addr().String()+"/v1/ws", nodeKey); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	home := t.TempDir()
	c, err := client.New(client.Config{Home: home, LoginURL: lhs.URL}) // no Password: renewal must use the refresh token
	if err != nil {
		t.Fatal(err)
	}
	must(t, c.Register(ctx, "carol", "carol-password"))
	must(t, c.Login(ctx, "carol", "carol-password"))
	first, err := c.Credential(ctx)
	must(t, err)
	renewed := make(chan struct{}, 4)
	s, err := c.Online(ctx, client.SessionConfig{OnEvent: func(ev client.Event) {
		if ev.Event == "credential" {
			renewed <- struct{}{}
		}
	}})
	must(t, err)
	defer s.Close()
	select {
	case <-renewed: // emitted only once the supernode accepted the new credential
	case <-time.After(10 * time.Second):
		t.Fatal("credential not renewed")
	}
	now, err := c.Credential(ctx)
	must(t, err)
	if now == first {
		t.Fatal("credential unchanged after renewal")
	}
	select {
	case <-s.Done():
		t.Fatalf("supernode dropped the session: %v", s.Err())
	default:
	}
	if sn.Online() != 1 {
		t.Fatalf("supernode has %d sessions, want 1", sn.Online())
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestSecondDeviceCannotEndTheCall: bob is online on two devices that both
// answer. Alice's call takes the first answer; the second device never
// connects and gives up, and its hangup must not end alice's call with the
// first device.
func TestSecondDeviceCannotEndTheCall(t *testing.T) {
	n := startNetwork(t, nil)
	ctx := context.Background()
	var homes []string
	for i := 0; i < 2; i++ {
		homes = append(homes, t.TempDir())
	}
	c0, err := client.New(client.Config{Home: homes[0], LoginURL: n.loginURL})
	must(t, err)
	must(t, c0.Register(ctx, "bob", "bob-password"))
	for _, h := range homes {
		c, err := client.New(client.Config{Home: h, LoginURL: n.loginURL})
		must(t, err)
		must(t, c.Login(ctx, "bob", "bob-password"))
		s, err := c.Online(ctx, client.SessionConfig{ConnectTimeout: 5 * time.Second, OnIncoming: func(in *client.Incoming) {
			e := client.NewEcho()
			in.Answer(ctx, client.Media{Source: e, Sink: e})
		}})
		must(t, err)
		t.Cleanup(func() { s.Close() })
	}
	alice := n.user(t, "alice", client.SessionConfig{})
	ref := append(audiotest.Speech(9, 5*time.Second), audiotest.Silence(time.Second)...)
	rec := &recorder{}
	call := placeCall(t, alice, "bob", ref, rec) // placeCall fails if the call ends early
	if r := call.Reason(); r != "hangup" {
		t.Errorf("call ended with %q, want alice's own hangup", r)
	}
	got, _, _ := rec.snapshot()
	if corr, _ := audiotest.MatchEnvelope(ref, got, time.Second); corr < 0.9 {
		t.Errorf("echo from the answering device correlates %.3f, want ≥ 0.9", corr)
	}
}
