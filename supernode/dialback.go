package supernode

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/parley/parley/internal/nodeid"
	"github.com/parley/parley/wire/snapi"
)

// dialbackTimeout bounds each half (TCP, UDP) of a dial-back.
const dialbackTimeout = 3 * time.Second

// dialback checks that the client on c could serve as a supernode: that the
// holder of f.NodeKey answers an identify request at f.URL and that a STUN
// server answers at f.UDP. Both must be at the address the client connects
// from, so a supernode can't be used to probe third parties.
func (s *Server) dialback(ctx context.Context, c *conn, f snapi.Frame) snapi.Frame {
	res := snapi.Frame{Type: snapi.TypeDialbackResult, ID: f.ID}
	fail := func(format string, a ...any) snapi.Frame {
		res.Error = truncate(fmt.Sprintf(format, a...), 200)
		return res
	}
	from, err := netip.ParseAddrPort(c.remote)
	if err != nil {
		return fail("cannot tell the client's address")
	}
	name, _, err := nodeid.HostPort(f.URL)
	if err != nil {
		return fail("url: %v", err)
	}
	tcpAddr, err := netip.ParseAddrPort(name)
	if err != nil || tcpAddr.Addr().Unmap() != from.Addr().Unmap() {
		return fail("url %s is not at the address you connect from (%s)", name, from.Addr())
	}
	udpAddr, err := netip.ParseAddrPort(f.UDP)
	if err != nil || udpAddr.Addr().Unmap() != from.Addr().Unmap() {
		return fail("udp %s is not at the address you connect from (%s)", f.UDP, from.Addr())
	}
	if len(f.NodeKey) == 0 {
		return fail("no node key")
	}
	tctx, cancel := context.WithTimeout(ctx, dialbackTimeout)
	_, err = nodeid.Check(tctx, s.cfg.MeshClient, f.URL, f.NodeKey)
	cancel()
	if err != nil {
		return fail("tcp: %v", err)
	}
	res.TCPOK = true
	if err := nodeid.CheckUDP(ctx, udpAddr, dialbackTimeout); err != nil {
		return fail("udp: %v", err)
	}
	res.UDPOK = true
	return res
}
