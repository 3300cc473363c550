//go:build linux

package offload

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/parley/parley/internal/netlab"
)

// openOnLoopback opens the offload for listener on lo; without root or
// BPF the test skips (fails with CI=true).
func openOnLoopback(t testing.TB, listener netip.AddrPort) *Offload {
	t.Helper()
	o, err := Open(Config{Listener: listener})
	if errors.Is(err, ErrUnsupported) && os.Getenv("CI") != "true" {
		t.Skipf("no in-kernel offload here (root, BPF, TCX needed): %v", err)
	}
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := o.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return o
}

func listen(t *testing.T, ip string) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// recv reads one datagram within 500 ms (ok false: none).
func recv(c *net.UDPConn) (b []byte, from netip.AddrPort, ok bool) {
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return nil, netip.AddrPort{}, false
	}
	return buf[:n], netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), true
}

// TestForwardOnLoopback: with a channel added, ChannelData from the
// client reaches the peer as a plain datagram from the relayed address and
// the peer's datagrams reach the client as ChannelData from the listener,
// neither touching the listener's or the relayed socket; after Remove
// they reach the listener again.
func TestForwardOnLoopback(t *testing.T) {
	lis, lisAddr := listen(t, "127.0.0.1")
	rel, relAddr := listen(t, "127.0.0.1")
	cli, cliAddr := listen(t, "127.0.0.1")
	peer, peerAddr := listen(t, "127.0.0.2")
	o := openOnLoopback(t, lisAddr)
	ch := Channel{Client: cliAddr, Number: 0x4001, Relayed: relAddr, Peer: peerAddr}
	if err := o.Add(ch); err != nil {
		t.Fatalf("Add: %v", err)
	}
	payload := []byte("voice frame")
	cd := append([]byte{0x40, 0x01, 0, byte(len(payload))}, payload...)
	if _, err := cli.WriteToUDPAddrPort(cd, lisAddr); err != nil {
		t.Fatal(err)
	}
	got, from, ok := recv(peer)
	if !ok || !bytes.Equal(got, payload) || from != relAddr {
		t.Fatalf("peer got %q from %v (ok %v), want %q from %v", got, from, ok, payload, relAddr)
	}
	if _, err := peer.WriteToUDPAddrPort([]byte("echo"), relAddr); err != nil {
		t.Fatal(err)
	}
	got, from, ok = recv(cli)
	if want := []byte{0x40, 0x01, 0, 4, 'e', 'c', 'h', 'o'}; !ok || !bytes.Equal(got, want) || from != lisAddr {
		t.Fatalf("client got %x from %v (ok %v), want %x from %v", got, from, ok, want, lisAddr)
	}
	if n, ok := o.Counts(ch); !ok || n != (Counts{ToPeer: 1, ToPeerBytes: uint64(len(payload)), ToClient: 1, ToClientBytes: 4}) {
		t.Errorf("Counts = %+v, %v; want one packet each way", n, ok)
	}
	if b, _, ok := recv(lis); ok {
		t.Errorf("the listener saw %x", b)
	}
	if b, _, ok := recv(rel); ok {
		t.Errorf("the relayed socket saw %x", b)
	}

	// Not the client: a stranger's ChannelData on the same number goes to
	// the listener, as does ChannelData with more after it than padding.
	stranger, _ := listen(t, "127.0.0.1")
	if _, err := stranger.WriteToUDPAddrPort(cd, lisAddr); err != nil {
		t.Fatal(err)
	}
	if got, _, ok := recv(lis); !ok || !bytes.Equal(got, cd) {
		t.Errorf("a stranger's ChannelData: the listener got %x (ok %v)", got, ok)
	}
	trailing := append(append([]byte(nil), cd...), 0, 0, 0, 0, 0)
	if _, err := cli.WriteToUDPAddrPort(trailing, lisAddr); err != nil {
		t.Fatal(err)
	}
	if got, _, ok := recv(lis); !ok || !bytes.Equal(got, trailing) {
		t.Errorf("ChannelData with 5 bytes after it: the listener got %x (ok %v)", got, ok)
	}
	// Padded to a multiple of 4 (as pion's client sends it): the peer gets
	// the message without the padding.
	padded := append(append([]byte(nil), cd...), 0)
	if _, err := cli.WriteToUDPAddrPort(padded, lisAddr); err != nil {
		t.Fatal(err)
	}
	if got, from, ok := recv(peer); !ok || !bytes.Equal(got, payload) || from != relAddr {
		t.Errorf("padded ChannelData: the peer got %q from %v (ok %v), want %q from %v", got, from, ok, payload, relAddr)
	}
	if b, _, ok := recv(lis); ok {
		t.Errorf("padded ChannelData: the listener saw %x", b)
	}

	if _, err := o.Remove(ch); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if c, p := o.Len(); c != 0 || p != 0 {
		t.Errorf("after Remove: %d and %d entries left", c, p)
	}
	if _, err := cli.WriteToUDPAddrPort(cd, lisAddr); err != nil {
		t.Fatal(err)
	}
	if got, _, ok := recv(lis); !ok || !bytes.Equal(got, cd) {
		t.Errorf("after Remove the listener got %x (ok %v), want the ChannelData", got, ok)
	}
	if _, err := peer.WriteToUDPAddrPort([]byte("late"), relAddr); err != nil {
		t.Fatal(err)
	}
	if got, _, ok := recv(rel); !ok || string(got) != "late" {
		t.Errorf("after Remove the relayed socket got %q (ok %v)", got, ok)
	}
}

// TestForwardRouted: on an interface that is not a loopback one (a veth
// pair, client and peer in a namespace behind it), rewritten datagrams are
// sent back out of it to the client and the peer.
func TestForwardRouted(t *testing.T) {
	ns, host, far := fmt.Sprintf("tco%d", os.Getpid()), fmt.Sprintf("tco%da", os.Getpid()), fmt.Sprintf("tco%db", os.Getpid())
	run := func(args ...string) error {
		out, err := exec.Command("ip", args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %v: %v: %s", args, err, out)
		}
		return nil
	}
	if err := run("netns", "add", ns); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("no namespaces here (root needed): %v", err)
	}
	t.Cleanup(func() { _ = run("netns", "del", ns); _ = run("link", "del", host) })
	for _, args := range [][]string{
		{"link", "add", host, "type", "veth", "peer", "name", far},
		{"link", "set", far, "netns", ns},
		{"addr", "add", "198.18.77.1/24", "dev", host},
		{"link", "set", host, "up"},
		{"-n", ns, "addr", "add", "198.18.77.2/24", "dev", far},
		{"-n", ns, "addr", "add", "198.18.77.3/24", "dev", far},
		{"-n", ns, "link", "set", far, "up"},
		{"-n", ns, "link", "set", "lo", "up"},
	} {
		if err := run(args...); err != nil {
			t.Fatal(err)
		}
	}
	lis, lisAddr := listen(t, "198.18.77.1")
	rel, relAddr := listen(t, "198.18.77.1")
	cli, cliAddr := listenIn(t, ns, "198.18.77.2")
	peer, peerAddr := listenIn(t, ns, "198.18.77.3")
	o, err := Open(Config{Listener: lisAddr, Interface: host})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer o.Close()
	ch := Channel{Client: cliAddr, Number: 0x4001, Relayed: relAddr, Peer: peerAddr}
	if err := o.Add(ch); err != nil {
		t.Fatalf("Add: %v", err)
	}
	for i := range 10 {
		payload := fmt.Appendf(nil, "voice %d", i)
		cd := append([]byte{0x40, 0x01, 0, byte(len(payload))}, payload...)
		if _, err := cli.WriteToUDPAddrPort(cd, lisAddr); err != nil {
			t.Fatal(err)
		}
		got, from, ok := recv(peer)
		if !ok || !bytes.Equal(got, payload) || from != relAddr {
			t.Fatalf("packet %d: peer got %q from %v (ok %v), want %q from %v", i, got, from, ok, payload, relAddr)
		}
		if _, err := peer.WriteToUDPAddrPort(payload, relAddr); err != nil {
			t.Fatal(err)
		}
		got, from, ok = recv(cli)
		if !ok || !bytes.Equal(got, cd) || from != lisAddr {
			t.Fatalf("packet %d: client got %x from %v (ok %v), want %x from %v", i, got, from, ok, cd, lisAddr)
		}
	}
	if n, ok := o.Counts(ch); !ok || n.ToPeer != 10 || n.ToClient != 10 {
		t.Errorf("Counts = %+v, %v; want 10 packets each way", n, ok)
	}
	if b, _, ok := recv(lis); ok {
		t.Errorf("the listener saw %x", b)
	}
	if b, _, ok := recv(rel); ok {
		t.Errorf("the relayed socket saw %x", b)
	}
	// A peer's datagram that the ChannelData header would take over the
	// interface's MTU (1,500) is left to the relay's socket.
	big := bytes.Repeat([]byte{7}, 1500-20-8)
	if _, err := peer.WriteToUDPAddrPort(big, relAddr); err != nil {
		t.Fatal(err)
	}
	if got, from, ok := recv(rel); !ok || len(got) != len(big) || from != peerAddr {
		t.Errorf("a datagram of the MTU: the relayed socket got %d bytes from %v (ok %v), want %d from %v", len(got), from, ok, len(big), peerAddr)
	}
	if b, _, ok := recv(cli); ok {
		t.Errorf("a datagram of the MTU reached the client from the kernel: %d bytes", len(b))
	}
}

// listenIn is listen inside namespace ns.
func listenIn(t *testing.T, ns, ip string) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	c, err := netlab.ListenUDPIn(ns, "udp4", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// TestBudget: a channel charged to a user's budget forwards about the
// burst and drops the rest, counting the drops.
func TestBudget(t *testing.T) {
	lis, lisAddr := listen(t, "127.0.0.1")
	_, relAddr := listen(t, "127.0.0.1")
	cli, cliAddr := listen(t, "127.0.0.1")
	peer, peerAddr := listen(t, "127.0.0.2")
	o := openOnLoopback(t, lisAddr)
	const rate, burst = 1000, 5000 // bytes/s; 5 of the 1000-byte packets at once
	if err := o.SetBudget(7, rate, burst); err != nil {
		t.Fatalf("SetBudget: %v", err)
	}
	ch := Channel{Client: cliAddr, Number: 0x4001, Relayed: relAddr, Peer: peerAddr, User: 7}
	if err := o.Add(ch); err != nil {
		t.Fatalf("Add: %v", err)
	}
	cd := append([]byte{0x40, 0x01, 1000 >> 8, 1000 & 0xff}, make([]byte, 1000)...)
	for range 20 {
		if _, err := cli.WriteToUDPAddrPort(cd, lisAddr); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	for {
		if _, _, ok := recv(peer); !ok {
			break
		}
		got++
	}
	n, _ := o.Counts(ch)
	if got < 5 || got > 6 || n.ToPeer != uint64(got) || n.Dropped != uint64(20-got) {
		t.Errorf("the peer got %d of 20 packets (counts %+v); want the 5 of the burst, the rest dropped", got, n)
	}
	if b, _, ok := recv(lis); ok {
		t.Errorf("the listener saw %x", b[:4])
	}
}
