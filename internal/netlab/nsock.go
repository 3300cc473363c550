package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"

	"github.com/pion/stun/v4"
	"golang.org/x/sys/unix"
)

// ListenUDPIn opens a UDP socket inside namespace ns (a socket keeps the
// namespace it was made in), for a test's servers that live in the lab
// without a process of their own.
func ListenUDPIn(ns, network, addr string) (*net.UDPConn, error) {
	var c *net.UDPConn
	err := inNS(ns, func() error {
		ua, err := net.ResolveUDPAddr(network, addr)
		if err != nil {
			return err
		}
		c, err = net.ListenUDP(network, ua)
		return err
	})
	return c, err
}

// ListenTCPIn opens a TCP listener inside namespace ns, for a test's
// servers that live in the lab without a process of their own (a listener
// keeps the namespace it was made in; its connections are accepted there).
func ListenTCPIn(ns, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNS(ns, func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// DialContext connects from inside the host's namespace, as a program on
// the host would: for a test process reaching the lab's servers (for
// example as an http.Transport's DialContext). Each dial holds an OS thread
// in the namespace until it connects; it is meant for a test's control
// traffic, not for load.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNS(h.NS, func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// inNS runs f on a thread that is inside namespace ns for the call.
func inNS(ns string, f func() error) error {
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: %w", err)
	}
	defer self.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: namespace %s: %w", ns, err)
	}
	defer target.Close()
	if err := setns(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netlab: enter %s: %w", ns, err)
	}
	ferr := f()
	if err := setns(self); err != nil {
		// The thread stays locked and dies with this goroutine: it is in the
		// wrong namespace.
		return errors.Join(ferr, fmt.Errorf("netlab: leave %s: %w", ns, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

func setns(f *os.File) error {
	return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
}

// ServeSTUN answers STUN binding requests on c with the address each came
// from, until ctx ends or c is closed. It answers every binding request the
// same way, whatever attributes it carries (CHANGE-REQUEST included: it has
// only one address).
func ServeSTUN(ctx context.Context, c net.PacketConn) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return
		}
		m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if m.Decode() != nil || m.Type != stun.BindingRequest {
			continue
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		resp, err := stun.Build(m, stun.BindingSuccess,
			&stun.XORMappedAddress{IP: ua.IP, Port: ua.Port},
			&stun.MappedAddress{IP: ua.IP, Port: ua.Port}, stun.Fingerprint)
		if err != nil {
			continue
		}
		c.WriteTo(resp.Raw, from)
	}
}
