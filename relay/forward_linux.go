package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The fast path's read loops on Linux: one per core (forwarder) instead of
// a goroutine per allocation and one per listener socket. Each loop owns an
// epoll instance holding its share of the TURN UDP listener's sockets and
// of the allocations' relayed sockets, and reads whichever are ready with
// recvmmsg:
//
//   - from a listener socket, ChannelData on a channel the fast path knows
//     goes to its peer (forwardFromClient, one sendto each: every packet
//     leaves by another allocation's socket); everything else (requests,
//     Send indications, unknown channels) is copied into the socket's slow
//     queue, which pion's read goroutine for it reads (packetListener);
//   - from a relayed socket, the rules of relayConn.ReadFrom apply
//     (permission, the user's budget), and ChannelData for the clients is
//     queued into one sendmmsg batch on the listener, across allocations;
//     what the fast path does not relay (no channel bound to the peer: pion
//     sends a Data indication; TCP and TLS clients) is copied into the
//     allocation's slow queue for pion's goroutine (relayConn.ReadFrom).
//
// The batch goes out when it is full or when the loop has handled every
// socket that was ready, before it asks epoll again: a packet never waits
// for more to come.
//
// A loop is a goroutine of the Go scheduler: its epoll instance is itself
// registered in Go's network poller (an *os.File), so a loop waits like any
// socket read and Close wakes it by closing the file. epoll is
// level-triggered: a socket with datagrams left after one batch is
// reported again on the next round, so one busy socket cannot starve the
// others. A relayed socket is registered when its allocation is made,
// taken out of Go's poller (a duplicate descriptor kept, Go's socket
// closed: otherwise the runtime's epoll would be told of every datagram
// too), and removed and closed with the allocation; a read-write lock of
// the allocation's own keeps its descriptor from being closed, and the
// number reused, while the loop reads it or a packet is sent from it. The
// listener's sockets stay in Go's poller (pion writes its answers there)
// and are read through their RawConn.

const (
	// fwBatch is the most ChannelData one sendmmsg sends to clients.
	fwBatch = 64
	// fwRead is the most datagrams one recvmmsg reads from a relayed
	// socket (the rest wait for the next round).
	fwRead = 8
	// fwEvents is the most ready sockets one epoll_wait returns.
	fwEvents = 128
	// slotChunk and slotChunks size a forwarder's slot table: at most
	// slotChunk*slotChunks allocations a loop (far beyond the open-file
	// limit).
	slotChunk, slotChunks = 256, 4096
)

// forwarders are the per-core read loops of a Server.
type forwarders struct {
	loops []*forwarder
	next  atomic.Uint32
	wg    sync.WaitGroup // the loops' goroutines
}

// fwdLink is an allocation's membership in a forwarder. Its relayed
// socket is taken out of Go's network poller (a duplicate of the
// descriptor is kept and Go's socket closed), so that only the forwarder's
// epoll instance is told of each datagram; mu keeps the descriptor from
// being closed, and its number reused, while a read or write uses it.
type fwdLink struct {
	f    *forwarder
	slot uint32
	gen  uint32
	v6   bool // an AF_INET6 socket

	mu sync.RWMutex
	fd int // -1 once closed
}

// on reports whether a forwarder reads the allocation's socket.
func (l *fwdLink) on() bool { return l.f != nil }

type slots [slotChunk]atomic.Pointer[relayConn]

// forwarder is one read loop: an epoll instance over listener and relayed
// sockets, and a sendmmsg batch to clients. Only its goroutine touches the
// batch.
type forwarder struct {
	s      *Server
	ep     *os.File        // the epoll instance, in Go's poller
	erc    syscall.RawConn // ep's descriptor
	out    syscall.RawConn // the UDP listener socket ChannelData leaves by
	out6   bool            // out is an AF_INET6 socket (IPv4 clients as ::ffff:a.b.c.d)
	waitFn func(fd uintptr) bool
	sendFn func(fd uintptr)
	lns    []*packetListener // the UDP listener sockets it reads (fixed before it runs)

	mu    sync.Mutex // slot allocation (registration, not packets)
	free  []uint32
	used  uint32
	gen   uint32
	table [slotChunks]atomic.Pointer[slots] // slot -> allocation, read lock-free

	events [fwEvents]unix.EpollEvent
	nev    int
	bufs   [fwBatch][]byte // 4 bytes for a ChannelData header, then a datagram
	iovs   [fwBatch]unix.Iovec
	names  [fwBatch]unix.RawSockaddrInet6 // a peer's address when read, the client's when sent
	hdrs   [fwBatch]unix.Mmsghdr
	who    [fwBatch]*relayConn // the allocation each queued packet belongs to
	k      int                 // packets queued to send: slots [0, k)
	want   int                 // datagrams the next recvmmsg may read, into slots [k, k+want)
	got    int                 // datagrams the last recvmmsg read
}

// newForwarders starts n read loops. The UDP listener's sockets lns are
// shared out among them (socket j to loop j%n), each loop reading its
// sockets and leaving what is for pion in their slow queues; loop i writes
// ChannelData to clients through lns[i%len(lns)]. close stops them.
func (s *Server) newForwarders(n int, lns []*packetListener) (*forwarders, error) {
	fs := &forwarders{}
	for i := range n {
		f, err := s.newForwarder(lns[i%len(lns)].PacketConn.(*net.UDPConn))
		if err != nil {
			fs.close()
			return nil, err
		}
		fs.loops = append(fs.loops, f)
	}
	for j, l := range lns {
		if err := fs.loops[j%n].addListener(l); err != nil {
			fs.close()
			for _, l := range lns { // pion's goroutines read the sockets again
				l.slow, l.closed = nil, nil
			}
			return nil, err
		}
	}
	for _, f := range fs.loops {
		fs.wg.Add(1)
		go func() {
			defer fs.wg.Done()
			f.run()
		}()
	}
	return fs, nil
}

// addListener makes f read the listener socket l (before f runs).
func (f *forwarder) addListener(l *packetListener) error {
	if l.br == nil {
		return fmt.Errorf("relay: listener %v: not a UDP socket", l.LocalAddr())
	}
	rc, err := l.PacketConn.(*net.UDPConn).SyscallConn()
	if err != nil {
		return err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(-1 - len(f.lns))}
	var cerr error
	err = rc.Control(func(fd uintptr) {
		if e := f.erc.Control(func(ep uintptr) { cerr = unix.EpollCtl(int(ep), unix.EPOLL_CTL_ADD, int(fd), &ev) }); e != nil {
			cerr = e
		}
	})
	if err = errors.Join(err, cerr); err != nil {
		return fmt.Errorf("relay: epoll_ctl: %w", err)
	}
	f.lns = append(f.lns, l)
	l.slow, l.closed = make(chan slowPacket, listenerQueue), make(chan struct{})
	return nil
}

// readListener reads a batch of clients' datagrams from l: ChannelData on
// a known channel goes to its peer, the rest to pion.
func (f *forwarder) readListener(l *packetListener) {
	if !l.br.poll() {
		return
	}
	for {
		pkt, from, ok := l.br.take()
		if !ok {
			return
		}
		if !f.s.forwardFromClient(pkt, from) {
			l.queueSlow(pkt, from)
		}
	}
}

func (s *Server) newForwarder(out *net.UDPConn) (*forwarder, error) {
	orc, err := out.SyscallConn()
	if err != nil {
		return nil, err
	}
	var sa unix.Sockaddr
	var serr error
	if err := orc.Control(func(fd uintptr) { sa, serr = unix.Getsockname(int(fd)) }); err != nil || serr != nil {
		return nil, fmt.Errorf("getsockname: %w", errors.Join(err, serr))
	}
	_, out6 := sa.(*unix.SockaddrInet6)
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so that os.NewFile registers it in Go's poller.
	if err := unix.SetNonblock(epfd, true); err != nil {
		_ = unix.Close(epfd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	ep := os.NewFile(uintptr(epfd), "relay-epoll")
	erc, err := ep.SyscallConn()
	if err != nil {
		_ = ep.Close()
		return nil, err
	}
	f := &forwarder{s: s, ep: ep, erc: erc, out: orc, out6: out6}
	for i := range f.bufs {
		f.bufs[i] = make([]byte, 4+maxPacket)
	}
	f.waitFn, f.sendFn = f.wait, f.send
	return f, nil
}

// close stops every loop and waits until they have ended.
func (fs *forwarders) close() {
	for _, f := range fs.loops {
		_ = f.ep.Close()
	}
	fs.wg.Wait()
}

// count is the number of read loops (0: none, pion's goroutines read).
func (fs *forwarders) count() int {
	if fs == nil {
		return 0
	}
	return len(fs.loops)
}

// register gives c's socket to the next loop.
func (fs *forwarders) register(c *relayConn) error {
	f := fs.loops[int(fs.next.Add(1))%len(fs.loops)]
	return f.add(c)
}

// add registers c's socket in f's epoll instance, taking it out of Go's
// poller (c.udp is closed; the socket lives on in c.fw.fd).
func (f *forwarder) add(c *relayConn) error {
	rc, err := c.udp.SyscallConn()
	if err != nil {
		return err
	}
	nfd, v6 := -1, false
	var derr error
	if err := rc.Control(func(fd uintptr) {
		var sa unix.Sockaddr
		if sa, derr = unix.Getsockname(int(fd)); derr != nil {
			return
		}
		_, v6 = sa.(*unix.SockaddrInet6)
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil || derr != nil {
		return fmt.Errorf("relay: dup: %w", errors.Join(err, derr))
	}
	_ = c.udp.Close() // deregisters it from Go's poller; nfd keeps the socket

	f.mu.Lock()
	var slot uint32
	if n := len(f.free); n > 0 {
		slot, f.free = f.free[n-1], f.free[:n-1]
	} else if f.used < slotChunk*slotChunks {
		slot = f.used
		f.used++
	} else {
		f.mu.Unlock()
		_ = unix.Close(nfd)
		return fmt.Errorf("relay: read loop full (%d allocations)", slotChunk*slotChunks)
	}
	f.gen++
	c.fw.f, c.fw.slot, c.fw.gen, c.fw.v6, c.fw.fd = f, slot, f.gen, v6, nfd
	t := f.table[slot/slotChunk].Load()
	if t == nil {
		t = new(slots)
		f.table[slot/slotChunk].Store(t)
	}
	t[slot%slotChunk].Store(c)
	f.mu.Unlock()

	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(slot), Pad: int32(c.fw.gen)}
	var cerr error
	if err = f.erc.Control(func(ep uintptr) { cerr = unix.EpollCtl(int(ep), unix.EPOLL_CTL_ADD, nfd, &ev) }); err == nil {
		err = cerr
	}
	if err != nil {
		f.remove(c)
		c.fw.f = nil
		return fmt.Errorf("relay: epoll_ctl: %w", err)
	}
	return nil
}

// remove takes c's socket out of its loop and closes it. Packets the loop
// read just before are still handled.
func (f *forwarder) remove(c *relayConn) {
	c.fw.mu.Lock()
	if fd := c.fw.fd; fd >= 0 {
		_ = f.erc.Control(func(ep uintptr) { _ = unix.EpollCtl(int(ep), unix.EPOLL_CTL_DEL, fd, nil) })
		_ = unix.Close(fd)
		c.fw.fd = -1
	}
	c.fw.mu.Unlock()
	f.dropSlot(c)
}

// sendto sends b to ap from the allocation's socket, never waiting: a
// full send buffer drops the datagram (EAGAIN).
func (l *fwdLink) sendto(b []byte, ap netip.AddrPort) (int, error) {
	if !l.v6 && !ap.Addr().Is4() {
		return 0, &net.OpError{Op: "write", Net: "udp4", Err: unix.EAFNOSUPPORT}
	}
	var sa unix.RawSockaddrInet6
	salen := putSockaddr(&sa, ap, l.v6)
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.fd < 0 {
		return 0, net.ErrClosed
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(l.fd), uintptr(p), uintptr(len(b)), unix.MSG_DONTWAIT,
			uintptr(unsafe.Pointer(&sa)), uintptr(salen))
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		}
		return 0, os.NewSyscallError("sendto", e)
	}
}

func (f *forwarder) dropSlot(c *relayConn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.table[c.fw.slot/slotChunk].Load()
	if t[c.fw.slot%slotChunk].CompareAndSwap(c, nil) {
		f.free = append(f.free, c.fw.slot)
	}
}

// lookup returns the allocation an event names (nil: gone since).
func (f *forwarder) lookup(ev *unix.EpollEvent) *relayConn {
	slot := uint32(ev.Fd)
	t := f.table[(slot/slotChunk)%slotChunks].Load()
	if t == nil {
		return nil
	}
	c := t[slot%slotChunk].Load()
	if c == nil || c.fw.gen != uint32(ev.Pad) {
		return nil
	}
	return c
}

// run is the loop: wait for ready sockets, read them, flush, until Close
// closes the epoll file.
func (f *forwarder) run() {
	for {
		if err := f.erc.Read(f.waitFn); err != nil {
			return
		}
		for i := range f.nev {
			if ev := &f.events[i]; ev.Fd < 0 {
				f.readListener(f.lns[-1-ev.Fd])
			} else if c := f.lookup(ev); c != nil {
				f.readFrom(c)
			}
		}
		f.flush()
		clear(f.events[:f.nev]) // no stale slots on the next round
	}
}

// wait is the epoll read: false means "nothing ready; wait until the epoll
// instance is readable".
func (f *forwarder) wait(fd uintptr) bool {
	for {
		n, err := unix.EpollWait(int(fd), f.events[:], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			return false
		}
		f.nev = n
		return true
	}
}

// readFrom reads up to fwRead datagrams from c's socket into free slots
// of the batch and handles each: to the client on the fast path, to pion
// through the slow queue, or dropped by the rules.
func (f *forwarder) readFrom(c *relayConn) {
	if f.k+fwRead > fwBatch {
		f.flush()
	}
	f.want = fwRead
	for j := f.k; j < f.k+f.want; j++ {
		f.iovs[j].Base = &f.bufs[j][4]
		f.iovs[j].SetLen(maxPacket)
		h := &f.hdrs[j]
		h.Hdr.Name = (*byte)(unsafe.Pointer(&f.names[j]))
		h.Hdr.Namelen = unix.SizeofSockaddrInet6
		h.Hdr.Iov = &f.iovs[j]
		h.Hdr.SetIovlen(1)
		h.Hdr.Flags = 0
		h.Len = 0
	}
	f.got = 0
	c.fw.mu.RLock()
	if c.fw.fd >= 0 {
		f.recv(uintptr(c.fw.fd))
	}
	c.fw.mu.RUnlock()
	if f.got <= 0 {
		return // closed, or nothing after all
	}
	v := c.view.Load()
	end := f.k + f.got
	for j := f.k; j < end; j++ {
		n := int(f.hdrs[j].Len)
		from := sockaddrAddrPort(&f.names[j])
		ip := from.Addr().Unmap()
		if !c.admit(v, ip, n) {
			continue
		}
		ch := v.chans[netip.AddrPortFrom(ip, from.Port())]
		if ch == nil || ch.client.Addr().Zone() != "" || (!f.out6 && !ch.client.Addr().Is4()) {
			c.queueSlow(f.bufs[j][4:4+n], from)
			continue
		}
		if j != f.k { // keep queued packets in slots [0, k)
			f.bufs[j], f.bufs[f.k] = f.bufs[f.k], f.bufs[j]
		}
		b := f.bufs[f.k]
		b[0], b[1], b[2], b[3] = byte(ch.num>>8), byte(ch.num), byte(n>>8), byte(n)
		f.iovs[f.k].Base = &b[0]
		f.iovs[f.k].SetLen(4 + n)
		f.hdrs[f.k].Hdr.Namelen = putSockaddr(&f.names[f.k], ch.client, f.out6)
		f.who[f.k] = c
		f.k++
	}
}

// recv is the raw read of readFrom: one recvmmsg, never waiting.
func (f *forwarder) recv(fd uintptr) {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&f.hdrs[f.k])), uintptr(f.want),
			unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e == 0 {
			f.got = int(n)
		}
		return
	}
}

// flush sends the queued ChannelData to the clients with sendmmsg.
func (f *forwarder) flush() {
	if f.k == 0 {
		return
	}
	for j := range f.k {
		h := &f.hdrs[j]
		h.Hdr.Name = (*byte)(unsafe.Pointer(&f.names[j]))
		h.Hdr.Iov = &f.iovs[j]
		h.Hdr.SetIovlen(1)
		h.Hdr.Flags = 0
		h.Len = 0
	}
	_ = f.out.Control(f.sendFn)
	for j := range f.k {
		if f.hdrs[j].Len > 0 {
			f.who[j].n.fastIn.Add(1)
		}
	}
	clear(f.who[:f.k])
	f.k = 0
}

// send is the raw write of flush: sendmmsg until every packet went or
// failed. A packet the kernel refuses is skipped; when the socket's send
// buffer is full (EAGAIN) the rest are dropped, not waited for: the next
// ones are as late as these.
func (f *forwarder) send(fd uintptr) {
	for i := 0; i < f.k; {
		n, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&f.hdrs[i])), uintptr(f.k-i), 0, 0, 0)
		switch e {
		case 0:
			i += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return
		default:
			i++ // this destination failed; go on with the next
		}
	}
}

// putSockaddr writes ap as a sockaddr for a socket of the family v6 says
// and returns its length.
func putSockaddr(sa *unix.RawSockaddrInet6, ap netip.AddrPort, v6 bool) uint32 {
	port := ap.Port()
	if !v6 {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		p[0], p[1] = byte(port>>8), byte(port)
		sa4.Addr = ap.Addr().As4()
		sa4.Zero = [8]uint8{}
		return unix.SizeofSockaddrInet4
	}
	sa.Family = unix.AF_INET6
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	p[0], p[1] = byte(port>>8), byte(port)
	sa.Flowinfo = 0
	sa.Addr = ap.Addr().As16()
	sa.Scope_id = 0
	return unix.SizeofSockaddrInet6
}
