package relay

import (
	"net"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestPutSockaddr: the addresses the read loops send ChannelData to reach
// the client, from an IPv4 socket, an IPv6 one, and a dual-stack one
// ("[::]", IPv4 clients as ::ffff:a.b.c.d).
func TestPutSockaddr(t *testing.T) {
	for _, tc := range []struct{ network, from, to string }{
		{"udp4", "127.0.0.1:0", "127.0.0.1"},
		{"udp6", "[::1]:0", "::1"},
		{"udp", "[::]:0", "127.0.0.1"},
	} {
		from, err := net.ListenPacket(tc.network, tc.from)
		if err != nil {
			t.Fatal(err)
		}
		defer from.Close()
		to, err := net.ListenPacket("udp", net.JoinHostPort(tc.to, "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer to.Close()
		rc, err := from.(*net.UDPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var sa unix.RawSockaddrInet6
		var serr error
		if err := rc.Control(func(fd uintptr) {
			local, _ := unix.Getsockname(int(fd))
			_, v6 := local.(*unix.SockaddrInet6)
			n := putSockaddr(&sa, to.LocalAddr().(*net.UDPAddr).AddrPort(), v6)
			msg := []byte("hello")
			if _, _, e := unix.Syscall6(unix.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&msg[0])), uintptr(len(msg)), 0,
				uintptr(unsafe.Pointer(&sa)), uintptr(n)); e != 0 {
				serr = e
			}
		}); err != nil {
			t.Fatal(err)
		}
		if serr != nil {
			t.Errorf("%s %s to %s: sendto: %v", tc.network, tc.from, to.LocalAddr(), serr)
			continue
		}
		buf := make([]byte, 64)
		_ = to.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, src, err := to.ReadFrom(buf)
		wantPort := from.LocalAddr().(*net.UDPAddr).Port
		if err != nil || string(buf[:n]) != "hello" || src.(*net.UDPAddr).Port != wantPort {
			t.Errorf("%s %s to %s: got %q from %v (%v), want \"hello\" from port %d",
				tc.network, tc.from, to.LocalAddr(), buf[:n], src, err, wantPort)
		}
	}
}
