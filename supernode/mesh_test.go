package supernode_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/internal/nodeid"
	"github.com/parley/parley/supernode"
	"github.com/parley/parley/wire/snapi"
)

// killSwitch is a mesh client transport that can be cut, so a test can kill a
// supernode without its goodbye reaching anyone (as SIGKILL would).
type killSwitch struct {
	dead atomic.Bool
	rt   http.RoundTripper
}

func (k *killSwitch) RoundTrip(r *http.Request) (*http.Response, error) {
	if k.dead.Load() {
		return nil, errors.New("killed")
	}
	return k.rt.RoundTrip(r)
}

type meshNode struct {
	srv  *supernode.Server
	http *httptest.Server
	url  string
	kill *killSwitch
}

type meshFixture struct {
	loginPub  ed25519.PublicKey
	loginPriv ed25519.PrivateKey
	nodes     []*meshNode
}

// fastMesh is the timing the mesh tests run with: up to ten times the
// defaults (every supernode pings every other, and here they all share two
// cores).
func fastMesh(cfg supernode.Config, n int) supernode.Config {
	cfg.ProbeInterval = 100 * time.Millisecond * time.Duration(max(1, n/5))
	cfg.DeadAfter = 3 * cfg.ProbeInterval
	cfg.RefreshInterval = time.Second
	cfg.RecordTTL = 3 * time.Second
	return cfg
}

func newMeshFixture(t testing.TB, n int) *meshFixture {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(nil)
	f := &meshFixture{loginPub: pub, loginPriv: priv}
	for i := 0; i < n; i++ {
		f.addNode(t, n)
	}
	f.waitMembers(t, n)
	return f
}

func (f *meshFixture) addNode(t testing.TB, n int) *meshNode {
	t.Helper()
	hs := httptest.NewUnstartedServer(nil)
	name := hs.Listener.Addr().String()
	var seeds []string
	if len(f.nodes) > 0 {
		seeds = []string{f.nodes[0].url}
	}
	ks := &killSwitch{rt: &http.Transport{MaxIdleConnsPerHost: 4}}
	srv, err := supernode.New(fastMesh(supernode.Config{
		LoginKey: f.loginPub, Name: name, Seeds: seeds, PingInterval: time.Second,
		MeshClient: &http.Client{Timeout: 2 * time.Second, Transport: ks},
	}, n))
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv.Handler()
	hs.Start()
	nd := &meshNode{srv: srv, http: hs, url: "ws://" + name + "/v1/ws", kill: ks}
	t.Cleanup(func() {
		srv.Close()
		hs.Close()
	})
	f.nodes = append(f.nodes, nd)
	return nd
}

// crash kills a node: its goodbye goes nowhere, its sockets close.
func (nd *meshNode) crash() {
	nd.kill.dead.Store(true)
	nd.http.CloseClientConnections()
	nd.http.Listener.Close()
	nd.srv.Close()
}

func (f *meshFixture) waitMembers(t testing.TB, n int, nodes ...*meshNode) {
	t.Helper()
	if nodes == nil {
		nodes = f.nodes
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, nd := range nodes {
		for nd.srv.Stats().Members != n {
			if time.Now().After(deadline) {
				t.Fatalf("%s sees %d members, want %d", nd.url, nd.srv.Stats().Members, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

type meshUser struct {
	name string
	conn *snapi.Conn
	node *meshNode
	got  chan snapi.Frame
	tok  string
	key  ed25519.PrivateKey
}

func (f *meshFixture) attach(t testing.TB, name string, nd *meshNode) *meshUser {
	t.Helper()
	pub, priv, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	tok, err := identity.Issue(f.loginPriv, identity.Credential{User: name, PublicKey: pub, NotBefore: now.Add(-time.Minute).Unix(), Expires: now.Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	u := &meshUser{name: name, got: make(chan snapi.Frame, 64), tok: tok, key: priv}
	u.dial(t, nd)
	return u
}

func (u *meshUser) dial(t testing.TB, nd *meshNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := snapi.Dial(ctx, snapi.DialConfig{URL: nd.url, Credential: u.tok, Key: u.key,
		Deliver: func(fr snapi.Frame) {
			select {
			case u.got <- fr:
			default:
			}
		}})
	if err != nil {
		t.Fatalf("%s attaching to %s: %v", u.name, nd.url, err)
	}
	t.Cleanup(func() { c.Close() })
	u.conn, u.node = c, nd
}

// lookupAll has every user look up every other and returns the hop counts;
// it fails the test on a user not found where it is.
func lookupAll(t *testing.T, users []*meshUser) map[int]int {
	t.Helper()
	hops := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, a := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, b := range users {
				if a == b {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				got, err := a.conn.Lookup(ctx, b.name)
				cancel()
				if err != nil || got.Devices != 1 || len(got.Nodes) != 1 || got.Nodes[0] != b.node.http.Listener.Addr().String() {
					t.Errorf("%s looking up %s: %+v, %v; want 1 device at %s", a.name, b.name, got, err, b.node.url)
					continue
				}
				mu.Lock()
				hops[got.Hops]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return hops
}

// waitPublished waits until every user's record is on its holders (a lookup
// from every node finds it).
func waitFindable(t *testing.T, users []*meshUser, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, u := range users {
		for _, v := range users {
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				got, err := u.conn.Lookup(ctx, v.name)
				cancel()
				if err == nil && got.Devices > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s can't find %s after %v: %+v %v", u.name, v.name, within, got, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
}

// Every user finds every other from any supernode in at most two overlay hops,
// with 5 supernodes as with 20, and sends cross supernodes.
func TestMeshLookupHopsDoNotGrow(t *testing.T) {
	for _, n := range []int{5, 20} {
		t.Run(fmt.Sprint(n, " supernodes"), func(t *testing.T) {
			f := newMeshFixture(t, n)
			var users []*meshUser
			for i := 0; i < 40; i++ {
				users = append(users, f.attach(t, fmt.Sprintf("user%02d", i), f.nodes[i%n]))
			}
			waitFindable(t, users[:1], 5*time.Second)
			time.Sleep(200 * time.Millisecond) // the last attaches' records go out
			hops := lookupAll(t, users)
			total, most := 0, 0
			for h, c := range hops {
				total += c
				most = max(most, h)
			}
			t.Logf("%d supernodes, %d lookups: hops %v", n, total, hops)
			if most > 2 {
				t.Errorf("a lookup took %d hops; want at most 2", most)
			}
			// A send from one supernode reaches a user attached to another.
			a, b := users[0], users[1]
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if n, err := a.conn.Send(ctx, b.name, json.RawMessage(`{"hi":1}`)); err != nil || n != 1 {
				t.Fatalf("send across supernodes: %d, %v", n, err)
			}
			select {
			case fr := <-b.got:
				if fr.From != a.name || string(fr.Payload) != `{"hi":1}` {
					t.Fatalf("got %+v", fr)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the send never arrived")
			}
		})
	}
}

// Two of five supernodes crash: the rest take them off their rings, users
// attached elsewhere stay findable throughout, and the crashed supernodes'
// users are findable as soon as they reattach.
func TestMeshSurvivesTwoCrashes(t *testing.T) {
	f := newMeshFixture(t, 5)
	var users []*meshUser
	for i := 0; i < 25; i++ {
		users = append(users, f.attach(t, fmt.Sprintf("user%02d", i), f.nodes[i%5]))
	}
	waitFindable(t, users, 5*time.Second)
	f.nodes[0].crash()
	f.nodes[1].crash()
	start := time.Now()
	var survivors, moved []*meshUser
	for i, u := range users {
		if i%5 < 2 {
			u.dial(t, f.nodes[2+i%3])
			moved = append(moved, u)
		}
		survivors = append(survivors, u)
	}
	waitFindable(t, survivors, 3*time.Second)
	t.Logf("every user findable from every surviving supernode %v after the crash", time.Since(start).Round(time.Millisecond))
	f.waitMembers(t, 3, f.nodes[2:]...)
	t.Logf("crashes noticed by all %v after", time.Since(start).Round(time.Millisecond))
	hops := lookupAll(t, survivors)
	t.Logf("hops after the crash: %v (%d users moved)", hops, len(moved))
}

// A supernode that closes says goodbye: the others drop it at once.
func TestMeshLeaveIsImmediate(t *testing.T) {
	f := newMeshFixture(t, 3)
	f.nodes[2].kill.dead.Store(false)
	for _, nd := range f.nodes {
		nd.srv.Close()
		break
	}
	deadline := time.Now().Add(250 * time.Millisecond) // under DeadAfter
	for _, nd := range f.nodes[1:] {
		for nd.srv.Stats().Members != 2 {
			if time.Now().After(deadline) {
				t.Fatalf("%s still sees %d members after the goodbye", nd.url, nd.srv.Stats().Members)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// meshPost sends a hand-made mesh message signed by key.
func meshPost(t *testing.T, to *meshNode, key ed25519.PrivateKey, msg supernode.MeshMsg) (int, string) {
	t.Helper()
	body, _ := json.Marshal(msg)
	req, _ := http.NewRequest(http.MethodPost, to.http.URL+supernode.MeshPath, bytes.NewReader(body))
	req.Header.Set(supernode.MeshSigHeader, base64.StdEncoding.EncodeToString(identity.SignContext(key, supernode.MeshContext, body)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

func TestMeshRefusesWhatIsNotProven(t *testing.T) {
	f := newMeshFixture(t, 2)
	target := f.nodes[0]
	victim := f.attach(t, "victim", f.nodes[1])
	waitFindable(t, []*meshUser{victim}, 3*time.Second)
	pub, priv, _ := ed25519.GenerateKey(nil)
	stranger := supernode.Member{Name: "127.0.0.1:1", URL: "ws://127.0.0.1:1/v1/ws", Key: pub}
	member1Name := f.nodes[1].http.Listener.Addr().String()
	now := time.Now().UnixMilli()
	base := supernode.MeshMsg{V: snapi.ProtocolVersion, From: stranger, To: target.http.Listener.Addr().String(), TS: now}
	with := func(mod func(*supernode.MeshMsg)) supernode.MeshMsg {
		m := base
		mod(&m)
		return m
	}
	tests := []struct {
		name     string
		msg      supernode.MeshMsg
		key      ed25519.PrivateKey
		wantCode int
	}{
		{"a stranger may ping", with(func(m *supernode.MeshMsg) { m.Type = supernode.MeshPing }), priv, http.StatusOK},
		{"a stranger may not publish", with(func(m *supernode.MeshMsg) {
			m.Type = supernode.MeshPublish
			m.Records = []supernode.Record{{User: "victim", Node: stranger.Name, Sessions: []string{"x"}, Seq: 1 << 62}}
		}), priv, http.StatusForbidden},
		{"a stranger may not deliver", with(func(m *supernode.MeshMsg) {
			m.Type = supernode.MeshDeliver
			m.Deliver = &supernode.MeshDelivery{To: "victim", From: "mallory", Payload: json.RawMessage(`{}`)}
		}), priv, http.StatusForbidden},
		{"posing as a member with another key", with(func(m *supernode.MeshMsg) {
			m.Type = supernode.MeshPublish
			m.From.Name = member1Name
			m.Records = []supernode.Record{{User: "victim", Node: member1Name, Seq: 1 << 62}}
		}), priv, http.StatusForbidden},
		{"bad signature", with(func(m *supernode.MeshMsg) { m.Type = supernode.MeshPing }), f.loginPriv, http.StatusUnauthorized},
		{"stale timestamp", with(func(m *supernode.MeshMsg) { m.Type = supernode.MeshPing; m.TS = now - 10*60*1000 }), priv, http.StatusBadRequest},
		{"for another supernode", with(func(m *supernode.MeshMsg) { m.Type = supernode.MeshPing; m.To = "198.51.100.7:80" }), priv, http.StatusMisdirectedRequest},
		{"wrong version", with(func(m *supernode.MeshMsg) { m.Type = supernode.MeshPing; m.V = 9 }), priv, http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, body := meshPost(t, target, tt.key, tt.msg); got != tt.wantCode {
				t.Fatalf("status %d (%s), want %d", got, body, tt.wantCode)
			}
		})
	}
	// The victim is still where it is, with its one device.
	got, err := victim.conn.Lookup(context.Background(), "victim")
	if err != nil || got.Devices != 1 || got.Nodes[0] != member1Name {
		t.Fatalf("victim after the attempts: %+v %v", got, err)
	}
}

func TestDialback(t *testing.T) {
	f := newMeshFixture(t, 1)
	u := f.attach(t, "alice", f.nodes[0])
	_, nodeKey, _ := ed25519.GenerateKey(nil)
	_, otherKey, _ := ed25519.GenerateKey(nil)
	// The would-be supernode: identify over TCP, STUN over UDP.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	name := ln.Addr().String()
	hs := &http.Server{Handler: identifyHandler(name, nodeKey)}
	go hs.Serve(ln)
	defer hs.Close()
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer pc.Close()
	go nodeid.AnswerSTUN(pc, new(atomic.Bool))
	silent, _ := net.ListenPacket("udp", "127.0.0.1:0")
	defer silent.Close()

	tests := []struct {
		name           string
		url, udp       string
		key            ed25519.PublicKey
		wantTCP, wantU bool
	}{
		{"both answer", "ws://" + name + "/v1/ws", pc.LocalAddr().String(), nodeKey.Public().(ed25519.PublicKey), true, true},
		{"udp silent", "ws://" + name + "/v1/ws", silent.LocalAddr().String(), nodeKey.Public().(ed25519.PublicKey), true, false},
		{"another key answers", "ws://" + name + "/v1/ws", pc.LocalAddr().String(), otherKey.Public().(ed25519.PublicKey), false, false},
		{"someone else's address", "ws://127.0.0.2:80/v1/ws", pc.LocalAddr().String(), nodeKey.Public().(ed25519.PublicKey), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			tcp, udp, err := u.conn.Dialback(ctx, tt.url, tt.udp, tt.key)
			if tcp != tt.wantTCP || udp != tt.wantU || (err == nil) != (tt.wantTCP && tt.wantU) {
				t.Fatalf("dial-back: tcp %v udp %v err %v; want tcp %v udp %v", tcp, udp, err, tt.wantTCP, tt.wantU)
			}
		})
	}
}

func FuzzDecodeMeshMsg(f *testing.F) {
	f.Add([]byte(`{"v":1,"type":"ping","from":{"name":"a:1","url":"ws://a:1/v1/ws","key":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="},"to":"b:1","ts":1}`))
	f.Add([]byte(`{"v":1,"type":"publish","records":[{"user":"bob","node":"a:1","sessions":["x"],"seq":3}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := supernode.DecodeMeshMsg(b)
		if err == nil && (len(m.From.Key) != ed25519.PublicKeySize || m.Type == "") {
			t.Fatalf("accepted %q", b)
		}
	})
}

func identifyHandler(name string, key ed25519.PrivateKey) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(nodeid.IdentifyPath, nodeid.Handler(name, key))
	return mux
}
