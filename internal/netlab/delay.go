package netlab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// There is no netem on the kernels this runs on, so delay is added in user
// space: a "bump in the wire" namespace between a host (or router) and the
// internet bridge, whose two interfaces are joined by a forwarder that copies
// every Ethernet frame across after the delay. Offloads are turned off on the
// interfaces involved so frames stay frame-sized.

// forwarder copies frames between two packet sockets with a fixed delay.
type forwarder struct {
	delay  time.Duration
	fds    [2]int
	closed atomic.Bool
	wg     sync.WaitGroup
}

// inNamespace runs f on an OS thread switched into network namespace ns.
// Sockets f opens stay in that namespace after the thread switches back.
func inNamespace(ns string, f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return err
	}
	defer self.Close()
	target, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("netlab: enter %s: %w", ns, err)
	}
	ferr := f()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is in the wrong namespace: keep it locked so it dies
		// with this goroutine instead of running other code.
		runtime.LockOSThread()
		return errors.Join(ferr, fmt.Errorf("netlab: leave %s: %w", ns, err))
	}
	return ferr
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// packetSocket opens a raw packet socket bound to interface name (in the
// current thread's namespace), with a short receive timeout so that Close is
// noticed.
func packetSocket(name string) (int, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return -1, err
	}
	tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// startForwarder joins interfaces a and b of namespace ns with delay d.
func startForwarder(ns, a, b string, d time.Duration) (*forwarder, error) {
	fw := &forwarder{delay: d, fds: [2]int{-1, -1}}
	err := inNamespace(ns, func() error {
		for i, name := range []string{a, b} {
			fd, err := packetSocket(name)
			if err != nil {
				return fmt.Errorf("netlab: packet socket on %s/%s: %w", ns, name, err)
			}
			fw.fds[i] = fd
		}
		return nil
	})
	if err != nil {
		fw.Close()
		return nil, err
	}
	fw.wg.Add(2)
	go fw.pump(fw.fds[0], fw.fds[1])
	go fw.pump(fw.fds[1], fw.fds[0])
	return fw, nil
}

type frame struct {
	at   time.Time
	data []byte
}

// pump reads frames arriving on from and sends them out of to after the delay,
// in order. Frames the forwarder itself sent (outgoing) are not copied back.
func (fw *forwarder) pump(from, to int) {
	defer fw.wg.Done()
	q := make(chan frame, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for f := range q {
			if w := time.Until(f.at.Add(fw.delay)); w > 0 {
				time.Sleep(w)
			}
			unix.Write(to, f.data)
		}
	}()
	defer func() {
		close(q)
		<-done
	}()
	buf := make([]byte, 65536)
	for !fw.closed.Load() {
		n, sa, err := unix.Recvfrom(from, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		if ll, ok := sa.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		select {
		case q <- frame{at: time.Now(), data: append([]byte(nil), buf[:n]...)}:
		default: // a full queue drops, as a congested link would
		}
	}
}

// Close stops the forwarder and waits for it.
func (fw *forwarder) Close() error {
	fw.closed.Store(true)
	fw.wg.Wait()
	for _, fd := range fw.fds {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	return nil
}
