package client

import (
	"fmt"
	"net"
	"time"

	"github.com/pion/transport/v4"
	"github.com/pion/transport/v4/stdnet"
)

// tcpDialTimeout bounds connecting to a TURN server over TCP or TLS.
const tcpDialTimeout = 3 * time.Second

// boundedNet is the standard network with a bound on TCP connects. pion's ICE
// agent dials TURN-over-TCP servers without one, and a firewall that drops SYNs
// would then hold gathering — and so the closing of a failed call — for the
// kernel's two minutes.
type boundedNet struct{ *stdnet.Net }

func newBoundedNet() (transport.Net, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, fmt.Errorf("client: network: %w", err)
	}
	return boundedNet{n}, nil
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
	return c.(*net.TCPConn), nil
}
