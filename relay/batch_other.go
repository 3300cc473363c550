//go:build !linux

package relay

import (
	"net"
	"net/netip"
)

// batchReader reads one datagram at a time where recvmmsg is not available.
type batchReader struct {
	u    *net.UDPConn
	head int
	buf  []byte
}

func newBatchReader(u *net.UDPConn, _, size, head int) (*batchReader, error) {
	return &batchReader{u: u, head: head, buf: make([]byte, head+size)}, nil
}

func (r *batchReader) next() ([]byte, netip.AddrPort, error) {
	n, from, err := r.u.ReadFromUDPAddrPort(r.buf[r.head:])
	return r.buf[:r.head+n], from, err
}
