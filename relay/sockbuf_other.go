//go:build !linux

package relay

import (
	"net"
	"syscall"
)

// setBuffers sizes u's buffers with the portable calls (no forcing past the
// system's maximum) and reports nothing of what was obtained.
func (s *Server) setBuffers(u *net.UDPConn, size int, what string) string {
	if size < 0 {
		return ""
	}
	if err := u.SetReadBuffer(size); err != nil && what != "" {
		s.log.Warn("relay: cannot size socket buffers", "socket", what, "bytes", size, "err", err)
	}
	_ = u.SetWriteBuffer(size)
	return ""
}

// reusePortWorks says whether several sockets may share the UDP
// listener's address (Config.UDPListeners' default is then GOMAXPROCS).
const reusePortWorks = false

// reusePort is nil where SO_REUSEPORT is not used: several UDP listener
// sockets then fail to bind, so set Config.UDPListeners to 1 there.
func reusePort(_, _ string, _ syscall.RawConn) error { return nil }
