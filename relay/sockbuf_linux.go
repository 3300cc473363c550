package relay

import (
	"fmt"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// setBuffers sizes u's receive and send buffers to size bytes (size < 0:
// leaves the kernel's default), forcing past net.core.rmem_max/wmem_max when
// the process may (SO_RCVBUFFORCE needs CAP_NET_ADMIN), and returns the
// sizes obtained, e.g. "rcv=4194304 snd=4194304" (Linux reports twice what
// was asked: it counts its bookkeeping). A failure is logged (when what
// names the socket) and the kernel's sizes stay.
func (s *Server) setBuffers(u *net.UDPConn, size int, what string) string {
	rc, err := u.SyscallConn()
	if err != nil {
		return ""
	}
	var rcv, snd int
	var serr error
	err = rc.Control(func(fd uintptr) {
		if size >= 0 {
			for _, o := range [][2]int{{syscall.SO_RCVBUFFORCE, syscall.SO_RCVBUF}, {syscall.SO_SNDBUFFORCE, syscall.SO_SNDBUF}} {
				if syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, o[0], size) != nil {
					if e := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, o[1], size); e != nil {
						serr = e
					}
				}
			}
		}
		rcv, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
		snd, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF)
	})
	if err == nil {
		err = serr
	}
	if err != nil && what != "" {
		s.log.Warn("relay: cannot size socket buffers", "socket", what, "bytes", size, "err", err)
	}
	return fmt.Sprintf("rcv=%d snd=%d", rcv, snd)
}

// reusePortWorks says whether several sockets may share the UDP
// listener's address (Config.UDPListeners' default is then GOMAXPROCS).
const reusePortWorks = true

// reusePort is a net.ListenConfig Control setting SO_REUSEPORT, so that
// several sockets share the TURN UDP listener's address.
func reusePort(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}
