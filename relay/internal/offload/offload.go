// Package offload is the relay's in-kernel fast path: a TC (TCX ingress)
// BPF program that forwards ChannelData between TURN clients and their
// peers on bound channels, rewriting the datagrams in the kernel so that
// the relay's process never sees them. The relay keeps the control plane
// (allocations, permissions, channels and their expiry) and tells the
// program, with Add and Remove, which channels it may forward; every other
// packet reaches the relay's sockets untouched. See README.md.
package offload

import (
	"log/slog"
	"net/netip"
)

//go:generate sh -c "clang -O2 -g -target bpf -mcpu=v3 -I/usr/include/$(uname -m)-linux-gnu -c bpf/forward.c -o bpf/forward.o"

// Config configures Open. The zero value of each field is its documented
// default; Listener is required.
type Config struct {
	// Interface is the name of the network interface whose ingress the
	// program is attached to: where both the clients' and the peers'
	// datagrams arrive. "" = the interface that holds Listener's address.
	Interface string
	// Listener is the relay's TURN UDP listener, an IPv4 address and port,
	// not the unspecified address (the program sends the clients'
	// ChannelData from it).
	Listener netip.AddrPort
	// Logger receives the offload's logs. nil = discard.
	Logger *slog.Logger
}

// Channel is a bound channel the program forwards on, IPv4 only. The
// relay adds one only while the channel is bound, its peer has a
// permission and passes the relay's rules.
type Channel struct {
	Client  netip.AddrPort // the client's address, as the listener sees it
	Number  uint16         // the channel number, 0x4000 to 0x4FFF
	Relayed netip.AddrPort // the allocation's relayed address: its socket's local address
	Peer    netip.AddrPort // the peer's address
	User    uint32         // the budget (SetBudget) its datagrams are charged to; 0: none
}

// Counts are the packets and payload bytes the program forwarded on a
// channel since it was added, each way, and the packets it dropped over
// the user's budget.
type Counts struct {
	ToPeer, ToPeerBytes     uint64
	ToClient, ToClientBytes uint64
	Dropped                 uint64
}
