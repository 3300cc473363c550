package relay

import (
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// TestManyAllocationsMixedTraffic: peers send bursts to many allocations at
// once, each allocation getting both ChannelData-bound packets (from a peer
// with a channel: the fast path, batched to the clients) and packets from a
// peer with a permission but no channel (Data indications through pion), so
// that one read loop handles many sockets, and fast and slow packets
// interleaved within one socket's batch. Every client gets exactly its own
// packets, each kind in the order sent.
func TestManyAllocationsMixedTraffic(t *testing.T) {
	const clients, rounds = 24, 6
	s, _ := newTestServer(t, Config{AllowPeers: loopback, MaxAllocationsPerUser: -1, UserBandwidth: -1})
	chanPeer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer chanPeer.Close()
	dataPeer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)})
	if err != nil {
		t.Fatal(err)
	}
	defer dataPeer.Close()
	rs := make([]*rawTURN, clients)
	for i := range rs {
		r, _ := rawAllocated(t, s)
		if code := r.channelBind(0x4000+uint16(i), peerAttr(addrPort(chanPeer.LocalAddr().(*net.UDPAddr)))); code != 0 {
			t.Fatalf("client %d: ChannelBind: error %d", i, code)
		}
		if code := r.createPermission(peerAttr(addrPort(dataPeer.LocalAddr().(*net.UDPAddr)))); code != 0 {
			t.Fatalf("client %d: CreatePermission: error %d", i, code)
		}
		rs[i] = r
	}
	for round := range rounds {
		for i, r := range rs {
			to := net.UDPAddrFromAddrPort(r.relayed)
			if _, err := chanPeer.WriteTo(fmt.Appendf(nil, "chan %d %d", i, round), to); err != nil {
				t.Fatal(err)
			}
			if _, err := dataPeer.WriteTo(fmt.Appendf(nil, "data %d %d", i, round), to); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, r := range rs {
		var gotChan, gotData, wantChan, wantData []string
		for round := range rounds {
			wantChan = append(wantChan, fmt.Sprintf("chan %d %d", i, round))
			wantData = append(wantData, fmt.Sprintf("data %d %d", i, round))
		}
		buf := make([]byte, 2048)
		deadline := time.Now().Add(5 * time.Second)
		for len(gotChan) < rounds || len(gotData) < rounds {
			_ = r.conn.SetReadDeadline(deadline)
			n, _, err := r.conn.ReadFrom(buf)
			if err != nil {
				break
			}
			if num, p, ok := channelData(buf[:n]); ok {
				if num != 0x4000+uint16(i) {
					t.Errorf("client %d: ChannelData on %#x, want %#x", i, num, 0x4000+i)
				}
				gotChan = append(gotChan, string(p))
				continue
			}
			m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if m.Decode() != nil || m.Type != stun.NewType(stun.MethodData, stun.ClassIndication) {
				continue
			}
			var from stun.XORMappedAddress
			if err := from.GetFromAs(m, stun.AttrXORPeerAddress); err != nil || !from.IP.Equal(net.IPv4(127, 0, 0, 3)) {
				t.Errorf("client %d: Data indication from %v (%v), want 127.0.0.3", i, from.IP, err)
			}
			d, err := m.Get(stun.AttrData)
			if err != nil {
				t.Errorf("client %d: Data indication without DATA", i)
			}
			gotData = append(gotData, string(d))
		}
		if !slices.Equal(gotChan, wantChan) {
			t.Errorf("client %d: ChannelData %q, want %q", i, gotChan, wantChan)
		}
		if !slices.Equal(gotData, wantData) {
			t.Errorf("client %d: Data indications %q, want %q", i, gotData, wantData)
		}
	}
	waitFor(t, "the channel packets on the fast path", func() bool {
		return s.traffic().fastIn == clients*rounds
	})
}

// TestCloseDuringTraffic: Close while clients and peers flood the read
// loops both ways returns in time and leaves none of the relay's
// goroutines behind.
func TestCloseDuringTraffic(t *testing.T) {
	before := runtime.NumGoroutine()
	s, err := New(Config{UDPAddr: "127.0.0.1:0", UDPListeners: 2, RelayIP: net.IPv4(127, 0, 0, 1), Secret: testSecret,
		AllowPeers: loopback, UserBandwidth: -1})
	if err != nil {
		t.Fatal(err)
	}
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // the echo peer
		defer wg.Done()
		echoUDP(peer)
	}()
	for i := range 8 {
		r := newRaw(t, s)
		u, p := creds("alice")
		if res := r.allocate(u, p); errorCode(res) != 0 {
			t.Fatalf("client %d: Allocate: error %d", i, errorCode(res))
		}
		if code := r.channelBind(0x4000, peerAttr(addrPort(peer.LocalAddr().(*net.UDPAddr)))); code != 0 {
			t.Fatalf("client %d: ChannelBind: error %d", i, code)
		}
		wg.Add(1)
		go func() { // the client: floods, and drains what comes back
			defer wg.Done()
			msg := []byte{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4}
			buf := make([]byte, 2048)
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = r.conn.WriteTo(msg, r.server)
				_ = r.conn.SetReadDeadline(time.Now().Add(time.Millisecond))
				_, _, _ = r.conn.ReadFrom(buf)
			}
		}()
	}
	waitFor(t, "packets on the fast path both ways", func() bool {
		tr := s.traffic()
		return tr.fastIn > 100 && tr.fastOut > 100
	})
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	close(stop)
	_ = peer.Close()
	wg.Wait()
	waitGoroutines(t, before)
}
