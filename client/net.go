package client

import (
	"fmt"
	"net"
	"time"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
)

// tcpDialTimeout bounds connecting to a TURN server over TCP or TLS.
const tcpDialTimeout = 3 * time.Second

// boundedNet is the standard network with a bound on TCP connects (pion's ICE
// agent dials TURN-over-TCP servers without one, and a firewall that drops SYNs
// would then hold gathering — and so the closing of a failed call — for the
// kernel's two minutes), whose sockets to TURN servers answer permission
// requests at once (turnguard.go).
type boundedNet struct {
	*stdnet.Net
	creds *turnCreds
}

func newBoundedNet(creds *turnCreds) (transport.Net, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("client: network: %w", err)
	}
	return boundedNet{n, creds}, nil
}

func (n boundedNet) DialTCP(network string, laddr, raddr *net.TCPAddr) (transport.TCPConn, error) {
	d := net.Dialer{Timeout: tcpDialTimeout}
	if laddr != nil {
		d.LocalAddr = laddr
	}
	c, err := d.Dial(network, raddr.String())
	if err != nil {
		return nil, err
	}
	return newTURNTCPGuard(c.(*net.TCPConn), n.creds), nil
}

// ListenPacket: pion's ICE agent listens with it only for the UDP socket of a
// TURN client (its host and server-reflexive sockets come from ListenUDP).
func (n boundedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	return newTURNGuard(c, n.creds), nil
}
