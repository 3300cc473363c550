package supernode

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/pion/stun/v4"

	"github.com/parley/parley/internal/nodeid"
)

// dialbackTimeout bounds each half (TCP, UDP) of a dial-back.
const dialbackTimeout = 3 * time.Second

// dialback checks that the client on c could serve as a supernode: that the
// holder of f.NodeKey answers an identify request at f.URL and that a STUN
// server answers at f.UDP. Both must be at the address the client connects
// from, so a supernode can't be used to probe third parties.
func (s *Server) dialback(ctx context.Context, c *conn, f Frame) Frame {
	res := Frame{Type: TypeDialbackResult, ID: f.ID}
	fail := func(format string, a ...any) Frame {
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
	if err := stunPing(ctx, udpAddr); err != nil {
		return fail("udp: %v", err)
	}
	res.UDPOK = true
	return res
}

var errNoAnswer = errors.New("no STUN answer")

// stunPing sends STUN Binding requests to addr and waits for a matching
// success answer.
func stunPing(ctx context.Context, addr netip.AddrPort) error {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", ":0")
	if err != nil {
		return err
	}
	defer pc.Close()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	dst := net.UDPAddrFromAddrPort(addr)
	deadline := time.Now().Add(dialbackTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	buf := make([]byte, 1500)
	for time.Now().Before(deadline) {
		if _, err := pc.WriteTo(req.Raw, dst); err != nil {
			return err
		}
		rd := time.Now().Add(500 * time.Millisecond)
		if rd.After(deadline) {
			rd = deadline
		}
		pc.SetReadDeadline(rd)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				break // resend
			}
			var resp stun.Message
			resp.Raw = append([]byte(nil), buf[:n]...)
			if resp.Decode() == nil && resp.TransactionID == req.TransactionID && resp.Type == stun.BindingSuccess {
				return nil
			}
		}
	}
	return errNoAnswer
}
