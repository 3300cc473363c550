package client

import (
	"context"
	"math"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/parley/parley/wire/signal"
	"github.com/parley/parley/wire/snapi"
	"github.com/pion/stun/v4"
)

// Relay choice, RON-style: when more than one relay is on offer, a call goes
// through the one with the lowest measured round trip to both ends.
//
// The caller measures its round trip to every relay it was offered (a STUN
// binding over UDP, or where UDP gets no answer the time to open a TCP
// connection to its TURN port) and sends the table in a signed "probe" signal;
// the callee measures its own and answers with a "probe-reply". The caller picks
// the relay with the smallest sum over both ends among those both can reach,
// gathers relay candidates from that relay only, and names it in the offer; the
// callee does the same. With one relay on offer there is nothing to choose and
// no probe is sent.

// relayKey names a relay by the host:port of its STUN/TURN URLs.
func relayKey(u *stun.URI) string { return net.JoinHostPort(u.Host, strconv.Itoa(u.Port)) }

// relayRTTs is a relay's measured round trip in milliseconds, by relay key.
type relayRTTs map[string]float64

// wire is r as probe signals carry it: whole microseconds.
func (r relayRTTs) wire() map[string]int64 {
	out := make(map[string]int64, len(r))
	for k, ms := range r {
		out[k] = int64(math.Round(ms * 1000))
	}
	return out
}

// rttsFromWire reads a probe signal's round trips.
func rttsFromWire(w map[string]int64) relayRTTs {
	out := make(relayRTTs, len(w))
	for k, us := range w {
		out[k] = float64(us) / 1000
	}
	return out
}

// relaysOf groups ICE servers by relay.
func relaysOf(servers []snapi.ICEServer) map[string][]*stun.URI {
	out := map[string][]*stun.URI{}
	for _, s := range servers {
		for _, raw := range s.URLs {
			u, err := stun.ParseURI(raw)
			if err != nil {
				continue
			}
			k := relayKey(u)
			out[k] = append(out[k], u)
		}
	}
	return out
}

// measureRelays measures the round trip to every relay in servers, in parallel,
// within signal.ProbeTimeout (twice that when UDP gets no answer and TCP is tried).
// Unreachable relays are left out.
func measureRelays(ctx context.Context, servers []snapi.ICEServer) relayRTTs {
	relays := relaysOf(servers)
	out := relayRTTs{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for k, urls := range relays {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rtt, ok := measureRelay(ctx, k, urls)
			if ok {
				mu.Lock()
				out[k] = float64(rtt) / float64(time.Millisecond)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

func measureRelay(ctx context.Context, addr string, urls []*stun.URI) (time.Duration, bool) {
	udp, tcp := false, false
	for _, u := range urls {
		switch {
		case u.Scheme == stun.SchemeTypeSTUN, u.Scheme == stun.SchemeTypeTURN && u.Proto == stun.ProtoTypeUDP:
			udp = true
		case u.Proto == stun.ProtoTypeTCP:
			tcp = true
		}
	}
	if udp {
		if rtt, err := stunRTT(ctx, addr); err == nil {
			return rtt, true
		}
	}
	if tcp {
		d := net.Dialer{Timeout: signal.ProbeTimeout}
		start := time.Now()
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return time.Since(start), true
		}
	}
	return 0, false
}

// stunRTT sends STUN binding requests to addr and times the first answer.
func stunRTT(ctx context.Context, addr string) (time.Duration, error) {
	c, err := net.Dial("udp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	deadline := time.Now().Add(signal.ProbeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.SetReadDeadline(deadline)
	buf := make([]byte, 1500)
	for {
		req, err := stun.Build(stun.TransactionID, stun.BindingRequest)
		if err != nil {
			return 0, err
		}
		start := time.Now()
		if _, err := c.Write(req.Raw); err != nil {
			return 0, err
		}
		next := start.Add(200 * time.Millisecond)
		if deadline.Before(next) {
			next = deadline
		}
		c.SetReadDeadline(next)
		for {
			n, err := c.Read(buf)
			if err != nil {
				if time.Now().Before(deadline) {
					break // retransmit
				}
				return 0, err
			}
			var m stun.Message
			m.Raw = buf[:n]
			if m.Decode() == nil && m.TransactionID == req.TransactionID {
				return time.Since(start), nil
			}
		}
	}
}

// chooseRelay returns the relay with the lowest sum of round trips among those
// both ends reached; failing that, the one nearest to mine. "" when neither end
// reached any.
func chooseRelay(mine, theirs relayRTTs) string {
	best, bestCost := "", math.Inf(1)
	keys := make([]string, 0, len(mine))
	for k := range mine {
		keys = append(keys, k)
	}
	sort.Strings(keys) // ties break the same way every time
	for _, k := range keys {
		if t, ok := theirs[k]; ok && mine[k]+t < bestCost {
			best, bestCost = k, mine[k]+t
		}
	}
	if best != "" {
		return best
	}
	for _, k := range keys {
		if mine[k] < bestCost {
			best, bestCost = k, mine[k]
		}
	}
	return best
}

// onlyRelay keeps every STUN server but only the TURN URLs of relay (all of
// them when relay is "" or not on offer).
func onlyRelay(servers []snapi.ICEServer, relay string) []snapi.ICEServer {
	if relay == "" || relaysOf(servers)[relay] == nil {
		return servers
	}
	var out []snapi.ICEServer
	for _, s := range servers {
		var urls []string
		for _, raw := range s.URLs {
			u, err := stun.ParseURI(raw)
			if err != nil {
				continue
			}
			if u.Scheme == stun.SchemeTypeSTUN || relayKey(u) == relay {
				urls = append(urls, raw)
			}
		}
		if len(urls) > 0 {
			s.URLs = urls
			out = append(out, s)
		}
	}
	return out
}

// onProbe measures this end's round trips to the relays it was offered and
// answers the caller's probe with them.
func (s *Session) onProbe(sig *signal.Signal) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, 2*signal.ProbeTimeout)
		defer cancel()
		conn := s.connNow()
		if conn == nil {
			return
		}
		rtts := measureRelays(ctx, conn.ICEServers())
		s.sendAsync(&signal.Signal{Kind: signal.KindProbeReply, CallID: sig.CallID, To: sig.From, RTTs: rtts.wire()})
	}()
}

// chooseRelay picks the relay for a call to peer: with more than one relay on
// offer, the one with the lowest round trip summed over both ends.
func (s *Session) chooseRelay(ctx context.Context, callID, peer string) string {
	conn, err := s.waitConn(ctx)
	if err != nil {
		return ""
	}
	servers := conn.ICEServers()
	if len(relaysOf(servers)) < 2 {
		return ""
	}
	reply := make(chan relayRTTs, 1)
	s.mu.Lock()
	s.probes[callID], s.probePeer[callID] = reply, peer
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.probes, callID)
		delete(s.probePeer, callID)
		s.mu.Unlock()
	}()
	mctx, cancel := context.WithTimeout(ctx, 2*signal.ProbeTimeout)
	defer cancel()
	mine := measureRelays(mctx, servers)
	var theirs relayRTTs
	if err := s.sendSignal(ctx, &signal.Signal{Kind: signal.KindProbe, CallID: callID, To: peer, RTTs: mine.wire()}); err == nil {
		t := time.NewTimer(3 * signal.ProbeTimeout)
		select {
		case theirs = <-reply:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	choice := chooseRelay(mine, theirs)
	s.c.log.Info("relay chosen", "peer", peer, "relay", choice, "mine_ms", mine, "theirs_ms", theirs)
	return choice
}
