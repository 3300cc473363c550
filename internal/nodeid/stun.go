package nodeid

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v4"
)

// The UDP half of a dial-back: the would-be supernode answers STUN Binding
// requests on its relay port (AnswerSTUN, until its relay takes the socket
// over), and the checker sends them (CheckUDP).

// ErrNoSTUN means nothing answered the STUN Binding requests.
var ErrNoSTUN = errors.New("no STUN answer")

// AnswerSTUN answers STUN Binding requests on pc until end is set and a read
// is interrupted, or pc fails.
func AnswerSTUN(pc net.PacketConn, end *atomic.Bool) {
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if end.Load() || !isTimeout(err) {
				return
			}
			continue
		}
		req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if req.Decode() != nil || req.Type != stun.BindingRequest {
			continue
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		resp, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
			&stun.XORMappedAddress{IP: ua.IP, Port: ua.Port}, stun.Fingerprint)
		if err == nil {
			pc.WriteTo(resp.Raw, from)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// CheckUDP is the UDP half of a dial-back: it sends STUN Binding requests to
// addr (every 500 ms) and waits, at most within, for a matching success
// answer.
func CheckUDP(ctx context.Context, addr netip.AddrPort, within time.Duration) error {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", ":0")
	if err != nil {
		return err
	}
	defer pc.Close()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	dst := net.UDPAddrFromAddrPort(addr)
	deadline := time.Now().Add(within)
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
	return fmt.Errorf("nodeid: check udp %v: %w", addr, ErrNoSTUN)
}
