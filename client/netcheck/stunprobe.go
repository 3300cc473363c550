package netcheck

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/stun/v4"
)

// prober is one UDP socket sending STUN binding requests and matching what
// arrives to them by transaction id. Its reader goroutine ends at close.
type prober struct {
	conn *net.UDPConn
	done chan struct{}

	mu      sync.Mutex
	pending map[[stun.TransactionIDSize]byte]chan *stun.Message
}

func newProber(network string) (*prober, error) {
	c, err := net.ListenUDP(network, nil)
	if err != nil {
		return nil, err
	}
	p := &prober{conn: c, done: make(chan struct{}), pending: map[[stun.TransactionIDSize]byte]chan *stun.Message{}}
	go p.read()
	return p, nil
}

func (p *prober) close() {
	p.conn.Close()
	<-p.done
}

// port is the socket's local port.
func (p *prober) port() uint16 { return uint16(p.conn.LocalAddr().(*net.UDPAddr).Port) }

func (p *prober) read() {
	defer close(p.done)
	buf := make([]byte, 1500)
	for {
		n, _, err := p.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if m.Decode() != nil {
			continue
		}
		p.mu.Lock()
		ch := p.pending[m.TransactionID]
		p.mu.Unlock()
		if ch != nil {
			select {
			case ch <- m:
			default:
			}
		}
	}
}

// expect registers a transaction id; the returned channel gets the first
// message carrying it.
func (p *prober) expect(id [stun.TransactionIDSize]byte) (chan *stun.Message, func()) {
	ch := make(chan *stun.Message, 1)
	p.mu.Lock()
	p.pending[id] = ch
	p.mu.Unlock()
	return ch, func() {
		p.mu.Lock()
		delete(p.pending, id)
		p.mu.Unlock()
	}
}

// retransmit is how often a binding request is sent again while unanswered.
const retransmit = 250 * time.Millisecond

// exchange sends binding requests to dst until one is answered or ctx
// ends, and returns the mapped address and the round trip of the answer.
func (p *prober) exchange(ctx context.Context, dst netip.AddrPort) (netip.AddrPort, time.Duration, error) {
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return netip.AddrPort{}, 0, err
	}
	ch, cancel := p.expect(req.TransactionID)
	defer cancel()
	t := time.NewTicker(retransmit)
	defer t.Stop()
	for {
		sent := time.Now()
		if _, err := p.conn.WriteToUDPAddrPort(req.Raw, dst); err != nil {
			return netip.AddrPort{}, 0, err
		}
		select {
		case <-ctx.Done():
			return netip.AddrPort{}, 0, ctx.Err()
		case m := <-ch:
			rtt := time.Since(sent)
			var xa stun.XORMappedAddress
			if err := xa.GetFrom(m); err != nil {
				var ma stun.MappedAddress
				if err := ma.GetFrom(m); err != nil {
					return netip.AddrPort{}, 0, fmt.Errorf("netcheck: answer from %s has no mapped address", dst)
				}
				xa.IP, xa.Port = ma.IP, ma.Port
			}
			a, ok := netip.AddrFromSlice(xa.IP)
			if !ok {
				return netip.AddrPort{}, 0, fmt.Errorf("netcheck: bad mapped address from %s", dst)
			}
			return netip.AddrPortFrom(a.Unmap(), uint16(xa.Port)), rtt, nil
		case <-t.C:
		}
	}
}

// hairpin sends a binding request from p to to and reports whether target
// (the socket whose mapped address to is) receives it within wait.
func hairpin(ctx context.Context, from, target *prober, to netip.AddrPort, wait time.Duration) (bool, error) {
	req, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return false, err
	}
	ch, cancel := target.expect(req.TransactionID)
	defer cancel()
	ctx, stop := context.WithTimeout(ctx, wait)
	defer stop()
	t := time.NewTicker(retransmit)
	defer t.Stop()
	for {
		if _, err := from.conn.WriteToUDPAddrPort(req.Raw, to); err != nil {
			return false, err
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-ch:
			return true, nil
		case <-t.C:
		}
	}
}
