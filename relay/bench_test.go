package relay

import (
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

// BenchmarkForwardChannelData measures the fast path: a client sends
// 100-byte ChannelData on a bound channel, the relay forwards it to a peer
// that echoes it, and the relay forwards the echo back to the client as
// ChannelData. One op is one round trip, two forwarded packets (the client
// and the peer run in this process too, so ns/pkt is an upper bound of the
// relay's share). allocs/op must be 0: nothing on this path allocates
// (client and peer here use the allocation-free socket calls too).
func BenchmarkForwardChannelData(b *testing.B) {
	s, _ := newTestServer(b, Config{AllowPeers: loopback, UserBandwidth: -1})
	r := newRaw(b, s)
	u, p := creds("alice")
	if res := r.allocate(u, p); errorCode(res) != 0 {
		b.Fatalf("Allocate: error %d", errorCode(res))
	}
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		b.Fatal(err)
	}
	defer peer.Close()
	if code := r.channelBind(0x4001, peerAttr(addrPort(peer.LocalAddr().(*net.UDPAddr)))); code != 0 {
		b.Fatalf("ChannelBind: error %d", code)
	}
	done := make(chan struct{})
	go func() { // the echo peer
		defer close(done)
		echoUDP(peer)
	}()
	defer func() { _ = peer.Close(); <-done }()

	client := r.conn.(*net.UDPConn)
	server := netip.MustParseAddrPort(r.server.String())
	msg := make([]byte, 4+100)
	binary.BigEndian.PutUint16(msg, 0x4001)
	binary.BigEndian.PutUint16(msg[2:], 100)
	buf := make([]byte, 2048)
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Minute))
	const window = 16 // packets in flight
	inflight := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for inflight < window {
			if _, err := client.WriteToUDPAddrPort(msg, server); err != nil {
				b.Fatal(err)
			}
			inflight++
		}
		n, _, err := client.ReadFromUDPAddrPort(buf)
		if err != nil {
			b.Fatalf("after %d echoes: %v (a packet lost?)", i, err)
		}
		if n != len(msg) || binary.BigEndian.Uint16(buf) != 0x4001 {
			b.Fatalf("got %d bytes on channel %#x, want %d on 0x4001", n, binary.BigEndian.Uint16(buf), len(msg))
		}
		inflight--
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/pkt")
	// The relay counts a packet just after sending it: let the last ones land.
	deadline := time.Now().Add(time.Second)
	for tr := s.traffic(); tr.fastOut < uint64(b.N) || tr.fastIn < uint64(b.N); tr = s.traffic() {
		if time.Now().After(deadline) {
			b.Errorf("traffic %+v: not all %d round trips on the fast path", tr, b.N)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkMemoryPerAllocation reports the Go heap one allocation with a
// bound channel costs the relay (pion's state and the relay's: its
// buffers, views, channel entries), over 200 allocations. The kernel's
// socket buffers come on top only while packets wait in them
// (RelaySocketBuffer is a cap). Run with -benchtime 1x.
func BenchmarkMemoryPerAllocation(b *testing.B) {
	const n = 200
	s, _ := newTestServer(b, Config{AllowPeers: loopback, MaxAllocationsPerUser: -1})
	peer := netip.MustParseAddrPort("127.0.0.2:9")
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	for range n {
		r := newRaw(b, s)
		u, p := creds("alice")
		if res := r.allocate(u, p); errorCode(res) != 0 {
			b.Fatalf("Allocate: error %d", errorCode(res))
		}
		if code := r.channelBind(0x4000, peerAttr(peer)); code != 0 {
			b.Fatalf("ChannelBind: error %d", code)
		}
	}
	if got := s.Stats().Allocations; got != n {
		b.Fatalf("%d allocations, want %d", got, n)
	}
	after := heap()
	b.ReportMetric(float64(after-before)/n, "heap-bytes/allocation")
}

// echoUDP echoes every datagram peer reads to its sender until peer closes.
func echoUDP(peer *net.UDPConn) {
	buf := make([]byte, 2048)
	for {
		n, from, err := peer.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		_, _ = peer.WriteToUDPAddrPort(buf[:n], from)
	}
}
