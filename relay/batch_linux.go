package relay

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchReader reads a UDP socket's datagrams with recvmmsg, up to a batch
// per system call, into buffers it owns: nothing is allocated per datagram.
// (It cannot skip the call that finds the socket empty after a short batch:
// Go's poller forgets readiness at the start of each raw read, so a read
// must be tried before waiting.) Only one goroutine may use it.
type batchReader struct {
	rc     syscall.RawConn
	head   int // bytes kept free before each datagram (a ChannelData header)
	hdrs   []unix.Mmsghdr
	iovs   []unix.Iovec
	names  []unix.RawSockaddrInet6 // room for either family's address
	bufs   [][]byte
	n, i   int           // datagrams in the batch, the next one to return
	errno  syscall.Errno // the last recvmmsg's error
	readFn func(fd uintptr) bool
	pollFn func(fd uintptr)
}

// newBatchReader reads u in batches of batch datagrams of up to size
// bytes, each with head free bytes before it.
func newBatchReader(u *net.UDPConn, batch, size, head int) (*batchReader, error) {
	rc, err := u.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &batchReader{rc: rc, head: head, hdrs: make([]unix.Mmsghdr, batch), iovs: make([]unix.Iovec, batch),
		names: make([]unix.RawSockaddrInet6, batch), bufs: make([][]byte, batch)}
	for i := range batch {
		r.bufs[i] = make([]byte, head+size)
		r.iovs[i].Base = &r.bufs[i][head]
		r.iovs[i].SetLen(size)
		r.hdrs[i].Hdr.Iov = &r.iovs[i]
		r.hdrs[i].Hdr.SetIovlen(1)
		r.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
	}
	r.readFn = r.recv
	r.pollFn = func(fd uintptr) { r.recv(fd) }
	return r, nil
}

// poll reads the datagrams waiting now, without waiting for any, and
// reports whether there are some (take returns them). It is for a read
// loop that learns from epoll when the socket is readable.
func (r *batchReader) poll() bool {
	r.n, r.i, r.errno = 0, 0, 0
	if err := r.rc.Control(r.pollFn); err != nil {
		return false
	}
	return r.n > 0
}

// take returns the next datagram poll read, like next; ok is false when
// there are no more.
func (r *batchReader) take() (pkt []byte, from netip.AddrPort, ok bool) {
	if r.i >= r.n {
		return nil, netip.AddrPort{}, false
	}
	i := r.i
	r.i++
	return r.bufs[i][:r.head+int(r.hdrs[i].Len)], sockaddrAddrPort(&r.names[i]), true
}

// recv is the raw read: one recvmmsg; false means "wait until readable".
func (r *batchReader) recv(fd uintptr) bool {
	for i := range r.hdrs {
		r.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
		r.hdrs[i].Hdr.Flags = 0
		r.hdrs[i].Len = 0
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)),
			unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		case 0:
			r.n, r.i = int(n), 0
		default:
			r.n, r.i = 0, 0
		}
		r.errno = e
		return true
	}
}

// next returns the next datagram, with r.head bytes before it (valid until
// the next call), and its sender.
func (r *batchReader) next() ([]byte, netip.AddrPort, error) {
	for r.i >= r.n {
		if err := r.rc.Read(r.readFn); err != nil {
			return nil, netip.AddrPort{}, err
		}
		if e := r.errno; e != 0 {
			r.errno = 0
			return nil, netip.AddrPort{}, os.NewSyscallError("recvmmsg", e)
		}
	}
	i := r.i
	r.i++
	return r.bufs[i][:r.head+int(r.hdrs[i].Len)], sockaddrAddrPort(&r.names[i]), nil
}

// sockaddrAddrPort reads a struct sockaddr_in or sockaddr_in6.
func sockaddrAddrPort(sa *unix.RawSockaddrInet6) netip.AddrPort {
	b := (*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(sa))
	port := binary.BigEndian.Uint16(b[2:4])
	switch sa.Family {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port)
	}
	return netip.AddrPort{}
}
