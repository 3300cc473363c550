//go:build !linux

package relay

import (
	"net"
	"net/netip"
)

// Without Linux's epoll and sendmmsg each allocation's socket is read by
// pion's goroutine for it (relayConn.ReadFrom, with the fast path inline).

// forwarders are the per-core read loops of a Server: none here.
type forwarders struct{}

// fwdLink is an allocation's membership in a forwarder: never here.
type fwdLink struct{ f *forwarder }

func (l *fwdLink) on() bool { return false }

func (l *fwdLink) sendto([]byte, netip.AddrPort) (int, error) { return 0, net.ErrClosed }

type forwarder struct{}

func (s *Server) newForwarders(int, []*packetListener) (*forwarders, error) { return nil, nil }

func (fs *forwarders) close() {}

func (fs *forwarders) count() int { return 0 }

func (fs *forwarders) register(*relayConn) error { return nil }

func (f *forwarder) remove(*relayConn) {}
