package relay

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/parley/parley/relay/internal/offload"
)

// newOffloadServer is newTestServer with Config.KernelOffload; where the
// program cannot be loaded (not Linux, not root, no BPF) the test skips,
// or fails with CI=true.
func newOffloadServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.KernelOffload = true
	s, logs := newTestServer(t, cfg)
	if s.offload == nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kernel offload unavailable:\n%s", logs.String())
		}
		t.Skipf("kernel offload unavailable (Linux, root, BPF and TCX needed):\n%s", logs.String())
	}
	return s
}

// offloadedCall starts a relay with the offload (cfg), allocates, binds
// channel 0x4001 to a plain peer and waits until the channel is in the
// kernel.
func offloadedCall(t *testing.T, cfg Config) (s *Server, r *rawTURN, peer *net.UDPConn, peerAddr netip.AddrPort, ch offload.Channel) {
	t.Helper()
	s = newOffloadServer(t, cfg)
	r, _ = rawAllocated(t, s)
	peer, peerAddr = plainPeer(t)
	if code := r.channelBind(0x4001, peerAttr(peerAddr)); code != 0 {
		t.Fatalf("ChannelBind: error %d", code)
	}
	ch = offloadedChannel(r, 0x4001, peerAddr)
	waitFor(t, "the channel in the kernel", func() bool { _, ok := s.offload.Counts(ch); return ok })
	return s, r, peer, peerAddr, ch
}

// offloadedChannel is what the relay gives the kernel for r's channel num
// to peer.
func offloadedChannel(r *rawTURN, num uint16, peer netip.AddrPort) offload.Channel {
	return offload.Channel{Client: udpAddrPort(r.conn.LocalAddr()), Number: num, Relayed: r.relayed, Peer: peer}
}

// plainPeer is a UDP socket on 127.0.0.2 that the test reads itself.
func plainPeer(t *testing.T) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, udpAddrPort(c.LocalAddr())
}

// readFrom reads one datagram on c within d (ok false: none).
func readFrom(c net.PacketConn, d time.Duration) (b []byte, from netip.AddrPort, ok bool) {
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(d))
	n, addr, err := c.ReadFrom(buf)
	if err != nil {
		return nil, netip.AddrPort{}, false
	}
	return buf[:n], udpAddrPort(addr), true
}

// TestKernelOffload: with Config.KernelOffload, ChannelData on a bound
// channel reaches the peer as its payload from the relayed address, and
// the peer's datagrams reach the client as ChannelData from the listener,
// 100 each way, without the relay's sockets seeing any of them; a peer
// without a permission gets nothing through.
func TestKernelOffload(t *testing.T) {
	s, r, peer, _, ch := offloadedCall(t, Config{AllowPeers: loopback})
	listener := udpAddrPort(r.server)

	for i := range 100 {
		msg := fmt.Appendf(nil, "to peer %d", i)
		r.sendChannel(0x4001, msg)
		got, from, ok := readFrom(peer, time.Second)
		if !ok || !bytes.Equal(got, msg) || from != r.relayed {
			t.Fatalf("packet %d: the peer got %q from %v (ok %v), want %q from %v", i, got, from, ok, msg, r.relayed)
		}
	}
	for i := range 100 {
		msg := fmt.Appendf(nil, "to client %d", i)
		if _, err := peer.WriteToUDPAddrPort(msg, r.relayed); err != nil {
			t.Fatal(err)
		}
		got, from, ok := readFrom(r.conn, time.Second)
		want := binary.BigEndian.AppendUint16([]byte{0x40, 0x01}, uint16(len(msg)))
		want = append(want, msg...)
		if !ok || !bytes.Equal(got, want) || from != listener {
			t.Fatalf("packet %d: the client got %x from %v (ok %v), want %x from %v", i, got, from, ok, want, listener)
		}
	}
	if n, _ := s.offload.Counts(ch); n.ToPeer != 100 || n.ToClient != 100 {
		t.Errorf("the kernel counted %+v, want 100 packets each way", n)
	}
	// Every packet counted was the kernel's: the sockets relayed none.
	if tr := s.traffic(); tr.fastIn != 0 || tr.fastOut != 0 || tr.pktsIn != 100 || tr.pktsOut != 100 || tr.kernelIn != 100 || tr.kernelOut != 100 {
		t.Errorf("traffic %+v, want 100 packets each way, all the kernel's", tr)
	}
	if n, _ := s.offload.Counts(ch); s.Stats().RelayedBytes != n.ToPeerBytes+n.ToClientBytes {
		t.Errorf("Stats.RelayedBytes = %d while the channel is in the kernel, want the kernel's %d", s.Stats().RelayedBytes, n.ToPeerBytes+n.ToClientBytes)
	}

	// A peer without a permission: nothing reaches the client.
	stranger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	if _, err := stranger.WriteToUDPAddrPort([]byte("unsolicited"), r.relayed); err != nil {
		t.Fatal(err)
	}
	if got, from, ok := readFrom(r.conn, 300*time.Millisecond); ok {
		t.Errorf("a peer without a permission reached the client: %x from %v", got, from)
	}
}

// TestKernelOffloadEntriesGo: the kernel's entry for a channel goes when
// its permission expires, when the channel expires, and when the
// allocation is deleted; what it relayed is then in the relay's counters.
func TestKernelOffloadEntriesGo(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		end  func(t *testing.T, r *rawTURN)
	}{
		{name: "permission expiry", cfg: Config{permissionTimeout: 500 * time.Millisecond}},
		{name: "channel expiry", cfg: Config{channelTimeout: 500 * time.Millisecond}},
		{name: "allocation deleted", end: func(t *testing.T, r *rawTURN) {
			if code := r.refresh(0); code != 0 {
				t.Fatalf("Refresh(0): error %d", code)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.AllowPeers = loopback
			s, r, peer, _, _ := offloadedCall(t, tc.cfg)
			r.sendChannel(0x4001, []byte("before"))
			if got, _, ok := readFrom(peer, time.Second); !ok || string(got) != "before" {
				t.Fatalf("the peer got %q (ok %v) before the end", got, ok)
			}
			if tc.end != nil {
				tc.end(t, r)
			}
			waitFor(t, "no entries left in the kernel", func() bool { c, p := s.offload.Len(); return c == 0 && p == 0 })
			if tr := s.traffic(); tr.kernelOut != 1 || tr.pktsOut != 1 || tr.fastOut != 0 {
				t.Errorf("after the end the relay counts %+v, want the one packet relayed in the kernel", tr)
			}
			r.sendChannel(0x4001, []byte("after"))
			if got, _, ok := readFrom(peer, 300*time.Millisecond); ok {
				t.Errorf("the peer got %q after the end", got)
			}
		})
	}
}

// TestKernelOffloadBandwidth: the kernel holds a user to UserBandwidth
// (with a bucket of its own: a burst of one second's worth, then the
// rate), and the drops reach Stats when the channel leaves the kernel.
func TestKernelOffloadBandwidth(t *testing.T) {
	const budget = 10_000
	s, r, peer, _, ch := offloadedCall(t, Config{AllowPeers: loopback, UserBandwidth: budget})
	payload := make([]byte, 1000)
	for range 100 { // 100 kB at once: ten times the budget
		r.sendChannel(0x4001, payload)
	}
	got := 0
	for {
		b, _, ok := readFrom(peer, 300*time.Millisecond)
		if !ok {
			break
		}
		got += len(b)
	}
	if got < budget/2 || got > 2*budget {
		t.Errorf("the peer got %d bytes at once with a budget of %d bytes/s", got, budget)
	}
	if n, _ := s.offload.Counts(ch); n.Dropped == 0 || n.ToPeer+n.Dropped != 100 {
		t.Errorf("the kernel counted %+v, want 100 packets forwarded or dropped, some dropped", n)
	}
	if code := r.refresh(0); code != 0 {
		t.Fatalf("Refresh(0): error %d", code)
	}
	waitFor(t, "the drops in Stats", func() bool { return s.Stats().DroppedBandwidth > 0 })
}
