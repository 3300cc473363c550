package supernode

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// benchMesh starts n supernodes on loopback that find each other through the
// first one, with default timing except a faster probe so they converge fast.
func benchMesh(b *testing.B, n int) []*Server {
	b.Helper()
	pub, _, _ := ed25519.GenerateKey(nil)
	var nodes []*Server
	for i := 0; i < n; i++ {
		hs := httptest.NewUnstartedServer(nil)
		name := hs.Listener.Addr().String()
		cfg := Config{LoginKey: pub, Name: name,
			MeshClient: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
		if i > 0 {
			cfg.Seeds = []string{"ws://" + nodes[0].cfg.Name + "/v1/ws"}
		}
		s, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		hs.Config.Handler = s.Handler()
		hs.Start()
		b.Cleanup(func() {
			s.Close()
			hs.Close()
		})
		nodes = append(nodes, s)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range nodes {
		for s.mesh.size() != n {
			if time.Now().After(deadline) {
				b.Fatalf("mesh did not converge: %d of %d", s.mesh.size(), n)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nodes
}

// attachFake attaches user to s without a websocket: the directory sees an
// attached session like any other.
func attachFake(s *Server, user string) {
	c := &conn{user: user, session: newSessionID(), out: make(chan []byte, 1), cancel: func() {}}
	s.attach(c)
	s.mesh.markDirty(user) // as a failed publishNow would: the loop sends it
}

// BenchmarkDirectoryLookup measures a lookup of a random online user from a
// random supernode (the work behind a client's "lookup" and every send), with
// 20 supernodes and 10,000 users spread over them, over real loopback HTTP.
// It reports p50 and p99 latencies and the hops taken.
//
//	go test -run '^$' -bench DirectoryLookup -benchtime 20000x ./supernode/
func BenchmarkDirectoryLookup(b *testing.B) {
	const supernodes, users = 20, 10000
	nodes := benchMesh(b, supernodes)
	names := make([]string, users)
	for i := range names {
		names[i] = fmt.Sprintf("user%05d", i)
		attachFake(nodes[i%supernodes], names[i])
	}
	// Wait until the last user's records are out.
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range nodes {
		for s.mesh.lookup(context.Background(), names[users-1]).devices == 0 {
			if time.Now().After(deadline) {
				b.Fatal("records not published")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	lat := make([]time.Duration, 0, b.N)
	hops := map[int]int{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s, u := nodes[rng.IntN(supernodes)], names[rng.IntN(users)]
		t0 := time.Now()
		loc := s.mesh.lookup(context.Background(), u)
		lat = append(lat, time.Since(t0))
		if loc.devices != 1 {
			b.Fatalf("%s not found from %s", u, s.cfg.Name)
		}
		hops[loc.hops]++
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	b.ReportMetric(float64(hops[0])/float64(b.N), "0hop-frac")
	b.ReportMetric(float64(hops[2])/float64(b.N), "2hop-frac")
	records := 0
	for _, s := range nodes {
		records += s.mesh.records()
	}
	b.ReportMetric(float64(records)/users, "records/user")
}

// BenchmarkRefreshTraffic measures the mesh traffic of 20 supernodes: the
// membership pings (request bodies sent per supernode per second), and the
// presence refreshes of 10,000 users per user per second, over one refresh
// interval (10 s by default). HTTP headers and replies come on top.
//
//	go test -run '^$' -bench RefreshTraffic -benchtime 1x ./supernode/
func BenchmarkRefreshTraffic(b *testing.B) {
	const supernodes, users = 20, 10000
	nodes := benchMesh(b, supernodes)
	interval := nodes[0].cfg.RefreshInterval
	sent := func() (all, publish int64) {
		for _, s := range nodes {
			all += s.mesh.bytesOut.Load()
			publish += s.mesh.publishOut.Load()
		}
		return all, publish
	}
	for i := 0; i < b.N; i++ {
		for j := 0; j < users; j++ {
			attachFake(nodes[j%supernodes], fmt.Sprintf("user%05d", j))
		}
		time.Sleep(2 * time.Second) // the attach burst goes out
		all0, pub0 := sent()
		time.Sleep(interval)
		all1, pub1 := sent()
		secs := interval.Seconds()
		b.ReportMetric(float64((all1-all0)-(pub1-pub0))/secs/supernodes, "ping-B/s/supernode")
		b.ReportMetric(float64(pub1-pub0)/secs/users, "presence-B/s/user")
	}
}
