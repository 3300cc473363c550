package client

import (
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/parley/parley/client/portmap"
)

// Port mapping in calls.
//
// A session asks the router for nothing until a call gathers its host
// candidate on the address towards the router; then the call asks the
// router (NAT-PMP, else UPnP IGD: package portmap) to forward a UDP port to
// that candidate's socket, and once its server-reflexive candidate shows the
// address the internet sees, offers the mapping to the peer as one more
// server-reflexive candidate, trickled like the rest, whose foundation starts
// with "pmap" (an ordinary ICE candidate; the mark only lets the peer say
// what made the path direct). A mapping on another address than the one
// the supernode's STUN saw (a home router behind a carrier's NAT) would
// reach no one, and is not offered. The mapping is renewed while the call
// lasts and deleted when it ends. SessionConfig.NoPortMapping (the CLI's
// --no-port-mapping) asks nothing.

// mappedFoundation starts the foundation of a port-mapped candidate.
const mappedFoundation = "pmap"

// mappedWaitSrflx is how long a mapping waits for the call's
// server-reflexive candidate (pion's STUN gathering gives up after 3 s).
const mappedWaitSrflx = 3 * time.Second

// sessionPortMap is a session's port mapper: the portmap client (which
// keeps the UPnP router once found), the address mappings point at, and
// whether the router answered when asked at attach.
type sessionPortMap struct {
	pm    *portmap.Client
	local netip.Addr
	ready chan struct{} // closed once the router has been asked
	ok    bool          // (once ready) it answered
}

// newSessionPortMap asks the router for its outside address, in the
// background, so that calls know whether to ask it for mappings. It returns
// nil when mapping is off, for a session that shows no presence (a
// one-shot command: it takes no calls, and its Close would wait for the
// router), when there is no router to ask (no default route), and when the
// supernode is on this host (a local network: no NAT to cross, and tests on
// loopback ask no real router).
func newSessionPortMap(s *Session, supernodeURL string) *sessionPortMap {
	if s.cfg.NoPortMapping || s.cfg.NoPresence || onLoopback(supernodeURL) {
		return nil
	}
	pm := portmap.New(portmap.Config{Logger: s.c.log, Timeout: time.Second})
	local, err := pm.Local()
	if err != nil {
		s.c.log.Debug("no port mapping", "err", err)
		return nil
	}
	spm := &sessionPortMap{pm: pm, local: local, ready: make(chan struct{})}
	s.Go(func(ctx context.Context) {
		defer close(spm.ready)
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		ext, err := pm.External(ctx) // NAT-PMP, else UPnP's search (1.2 s)
		if err != nil {
			s.c.log.Debug("no port mapping", "err", err)
			return
		}
		spm.ok = true
		s.c.log.Info("the router maps ports", "external", ext)
	})
	return spm
}

// onLoopback reports whether a supernode URL's host is a loopback address.
func onLoopback(rawURL string) bool {
	u, err := url.Parse(rawURL)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

// callPortMap is one call's port mapping state.
type callPortMap struct {
	mu         sync.Mutex
	started    bool
	srflx      netip.Addr    // the address the supernode's STUN saw
	srflxSeen  chan struct{} // closed when srflx is set
	ports      map[uint16]bool
	peerMapped map[netip.AddrPort]bool // the peer's port-mapped candidates
}

func newCallPortMap() *callPortMap {
	return &callPortMap{srflxSeen: make(chan struct{}), ports: map[uint16]bool{}, peerMapped: map[netip.AddrPort]bool{}}
}

// onLocalCandidate: a host candidate on the address towards the router gets
// a mapping; a server-reflexive one tells the address the internet sees.
func (c *Call) onLocalCandidate(cand *webrtc.ICECandidate) {
	spm := c.s.pmap
	if cand == nil || spm == nil || cand.Protocol != webrtc.ICEProtocolUDP {
		return
	}
	ip, err := netip.ParseAddr(cand.Address)
	if err != nil || !ip.Is4() {
		return
	}
	cpm := c.pmap
	cpm.mu.Lock()
	defer cpm.mu.Unlock()
	switch cand.Typ {
	case webrtc.ICECandidateTypeSrflx:
		if !cpm.srflx.IsValid() {
			cpm.srflx = ip
			close(cpm.srflxSeen)
		}
	case webrtc.ICECandidateTypeHost:
		if ip != spm.local || cpm.started {
			return
		}
		cpm.started = true
		init := cand.ToJSON()
		c.goOwned(func() { c.mapPort(spm, init, ip, cand.Port) })
	}
}

// mapPort maps port, offers the mapping once it proves useful, and keeps it
// until the call ends.
func (c *Call) mapPort(spm *sessionPortMap, host webrtc.ICECandidateInit, ip netip.Addr, port uint16) {
	log := c.s.c.log.With("call", c.ID)
	select {
	case <-spm.ready:
	case <-c.ctx.Done():
		return
	}
	if !spm.ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, 4*time.Second)
	m, err := spm.pm.Map(ctx, port)
	cancel()
	if err != nil {
		log.Debug("no port mapping", "err", err)
		return
	}
	var seen netip.Addr
	select {
	case <-c.pmap.srflxSeen:
		c.pmap.mu.Lock()
		seen = c.pmap.srflx
		c.pmap.mu.Unlock()
	case <-time.After(mappedWaitSrflx):
	case <-c.ctx.Done():
	}
	if err := portmap.Useful(m, seen); err != nil || c.ctx.Err() != nil {
		if c.ctx.Err() == nil {
			log.Info("port mapping not offered", "protocol", m.Protocol, "mapped", m.External, "err", err)
		}
		dctx, cancel := context.WithTimeout(context.WithoutCancel(c.ctx), 2*time.Second)
		spm.pm.Unmap(dctx, m)
		cancel()
		return
	}
	c.pmap.mu.Lock()
	c.pmap.ports[port] = true
	c.pmap.mu.Unlock()
	log.Info("port mapped", "protocol", m.Protocol, "mapped", m.External, "local", netip.AddrPortFrom(ip, port))
	c.trickleExtra(webrtc.ICECandidateInit{Candidate: mappedCandidate(m.External, ip, port),
		SDPMid: host.SDPMid, SDPMLineIndex: host.SDPMLineIndex, UsernameFragment: host.UsernameFragment})
	spm.pm.Keep(c.ctx, m, nil)
}

// mappedCandidate is the server-reflexive candidate of a mapping of
// local:port to ext, with a server-reflexive candidate's priority (RFC 8445
// §5.1.2.1: type preference 100, local preference 65535, component 1).
func mappedCandidate(ext netip.AddrPort, local netip.Addr, port uint16) string {
	const prio = 100<<24 | 65535<<8 | (256 - 1)
	return fmt.Sprintf("candidate:%s%d 1 udp %d %s %d typ srflx raddr %s rport %d",
		mappedFoundation, ext.Port(), prio, ext.Addr(), ext.Port(), local, port)
}

// trickleExtra sends a candidate of this side's that pion did not gather,
// as the trickle sends the ones it did (call_trickle.go).
func (c *Call) trickleExtra(cand webrtc.ICECandidateInit) {
	c.candMu.Lock()
	defer c.candMu.Unlock()
	switch {
	case c.trickle.out == nil:
	case !c.trickle.ready:
		c.trickle.queue = append(c.trickle.queue, cand)
	default:
		select {
		case c.trickle.out <- cand:
		default:
		}
	}
}

// notePeerMapped remembers a candidate of the peer's that is a port mapping.
func (c *Call) notePeerMapped(cand webrtc.ICECandidateInit) {
	f := strings.Fields(strings.TrimPrefix(cand.Candidate, "candidate:"))
	if len(f) < 8 || !strings.HasPrefix(f[0], mappedFoundation) || f[6] != "typ" {
		return
	}
	ap, err := netip.ParseAddrPort(f[4] + ":" + f[5])
	if err != nil {
		return
	}
	c.pmap.mu.Lock()
	c.pmap.peerMapped[ap] = true
	c.pmap.mu.Unlock()
}

// Vias: what made a direct path direct (Stats.DirectVia).
const (
	ViaHost        = "host"         // both ends' own addresses
	ViaHolePunched = "hole-punched" // a NAT's mapping, opened by both ends' checks
	ViaPortMapped  = "port-mapped"  // a port the router mapped when asked
	ViaIPv6        = "ipv6"         // IPv6 addresses, no NAT on the way
)

// directVia says what made the selected pair direct ("" when relayed).
// peerHosts are the peer's host candidates: a peer-reflexive remote
// candidate at one of them (its check came before the candidate) is the
// peer's own address.
func (c *Call) directVia(local, remote webrtc.ICECandidateStats, peerHosts map[netip.AddrPort]bool) string {
	if local.CandidateType == webrtc.ICECandidateTypeRelay || remote.CandidateType == webrtc.ICECandidateTypeRelay {
		return ""
	}
	rip, _ := netip.ParseAddr(remote.IP)
	raddr := netip.AddrPortFrom(rip.Unmap(), uint16(remote.Port))
	remoteHost := remote.CandidateType == webrtc.ICECandidateTypeHost || peerHosts[raddr]
	c.pmap.mu.Lock()
	peerMapped := c.pmap.peerMapped[raddr]
	mine := local.CandidateType == webrtc.ICECandidateTypeHost && c.pmap.ports[uint16(local.Port)] && !remoteHost
	c.pmap.mu.Unlock()
	lip, _ := netip.ParseAddr(local.IP)
	switch {
	case peerMapped || mine:
		return ViaPortMapped
	case lip.Is6() && !lip.Is4In6():
		return ViaIPv6
	case local.CandidateType == webrtc.ICECandidateTypeHost && remoteHost:
		return ViaHost
	}
	return ViaHolePunched
}

// peerHostAddrs are the addresses of the peer's host candidates in stats.
func peerHostAddrs(stats webrtc.StatsReport) map[netip.AddrPort]bool {
	out := map[netip.AddrPort]bool{}
	for _, s := range stats {
		if cs, ok := s.(webrtc.ICECandidateStats); ok && cs.Type == webrtc.StatsTypeRemoteCandidate && cs.CandidateType == webrtc.ICECandidateTypeHost {
			if ip, err := netip.ParseAddr(cs.IP); err == nil {
				out[netip.AddrPortFrom(ip.Unmap(), uint16(cs.Port))] = true
			}
		}
	}
	return out
}

// viaShown is what made the call's path direct, "" while it is relayed.
func (c *Call) viaShown() string {
	if c.path.Load().(string) != "direct" {
		return ""
	}
	return c.via.Load().(string)
}
