// Package netcheck reports what the network between this host and the
// internet does to a call's packets, as Tailscale's netcheck does: whether
// UDP gets out, over IPv4 and IPv6; the address the internet sees; whether
// the NAT maps a socket to one outside port for every destination
// (endpoint-independent: hole punching works) or a new one per destination
// (endpoint-dependent, "symmetric": it does not); whether the router
// hairpins (a packet to its own outside address comes back in); whether it
// maps a port when asked (NAT-PMP, UPnP IGD) and whether that mapping is
// any use; and the round trips to the relays and supernodes on offer.
//
// The STUN servers are the relays' UDP ports (every relay answers STUN). At
// least two of them — two addresses, or two ports of one — are needed to
// tell the NAT's mapping behaviour.
package netcheck

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parley/parley/client/portmap"
)

// Config configures [Run]. Zero values mean the documented defaults.
type Config struct {
	// STUN lists the STUN servers to probe over UDP (host:port: the relays'
	// UDP ports). Names resolving to IPv4 and IPv6 addresses are probed on both.
	STUN []string
	// Supernodes lists supernode URLs (ws:// or wss://) whose round trips
	// are measured with a GET of /healthz.
	Supernodes []string
	// PortMap, when set, is asked for a port mapping, which is checked
	// against the address the STUN servers saw, then deleted. Nil: no router
	// is asked (--no-port-mapping).
	PortMap *portmap.Client
	// Timeout bounds the STUN probes (each retried every 250 ms). Default 2 s.
	Timeout time.Duration
	// HairpinWait is how long a hairpinned packet is waited for. Default 500 ms.
	HairpinWait time.Duration
	// HTTPClient measures the supernodes; nil means one with a 2 s timeout.
	HTTPClient *http.Client
	// Logger receives what failed, at debug level; nil discards it.
	Logger *slog.Logger
}

// NAT mapping behaviours, as Report.NAT names them.
const (
	NATNone                = "none"                 // the address seen is this host's own
	NATEndpointIndependent = "endpoint-independent" // one outside port for every destination
	NATEndpointDependent   = "endpoint-dependent"   // a new outside port per destination ("symmetric")
	NATUnknown             = "unknown"              // fewer than two servers answered
)

// Report is what Run found. Its JSON is `parley netcheck --json`'s "report".
type Report struct {
	// UDP: some STUN server answered over UDP.
	UDP bool `json:"udp"`
	// IPv4 and IPv6: some STUN server answered over that family.
	IPv4 bool `json:"ipv4"`
	IPv6 bool `json:"ipv6"`
	// GlobalV4 and GlobalV6 are the address:port the servers saw.
	GlobalV4 string `json:"global_v4,omitempty"`
	GlobalV6 string `json:"global_v6,omitempty"`
	// NAT is the IPv4 mapping behaviour (NATNone, ...).
	NAT string `json:"nat"`
	// MappingVariesByDest: the outside port differs between destinations
	// (nil when it could not be told).
	MappingVariesByDest *bool `json:"mapping_varies_by_dest,omitempty"`
	// Hairpinning: a packet sent to this host's own outside address came
	// back in (nil when not tried: no NAT, or no outside address).
	Hairpinning *bool `json:"hairpinning,omitempty"`
	// PortMapping is what the router said when asked for a mapping.
	PortMapping PortMapping `json:"port_mapping"`
	// Relays and Supernodes are the round trips measured.
	Relays     []RTT `json:"relays"`
	Supernodes []RTT `json:"supernodes"`
}

// PortMapping is the port-mapping part of a Report.
type PortMapping struct {
	// Tried: a router was asked (false with --no-port-mapping).
	Tried bool `json:"tried"`
	// Available: the router mapped a port; Protocol how (nat-pmp, upnp).
	Available bool   `json:"available"`
	Protocol  string `json:"protocol,omitempty"`
	// External is the address:port the router mapped.
	External string `json:"external,omitempty"`
	// Usable: the mapping is on the address the internet sees (not behind
	// another NAT), so a peer may use it.
	Usable bool `json:"usable"`
	// Reason says why it is not available or not usable.
	Reason string `json:"reason,omitempty"`
}

// RTT is one server's round trip.
type RTT struct {
	Addr    string  `json:"addr"`
	Reached bool    `json:"reached"`
	RTTMs   float64 `json:"rtt_ms,omitempty"`
	// Mapped is the address:port a STUN server saw (relays only).
	Mapped string `json:"mapped,omitempty"`
}

type stunResult struct {
	dst    netip.AddrPort
	mapped netip.AddrPort
	rtt    time.Duration
	err    error
}

// Run checks the network. It fails only when it cannot open a socket;
// everything else is in the report.
func Run(ctx context.Context, cfg Config) (Report, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.HairpinWait <= 0 {
		cfg.HairpinWait = 500 * time.Millisecond
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := Report{NAT: NATUnknown, Relays: []RTT{}, Supernodes: []RTT{}}
	v4, err := newProber("udp4")
	if err != nil {
		return r, fmt.Errorf("netcheck: %w", err)
	}
	defer v4.close()
	v6, err := newProber("udp6")
	if err != nil {
		log.Debug("no IPv6 socket", "err", err)
		v6 = nil
	} else {
		defer v6.close()
	}

	dsts := resolve(ctx, cfg.STUN, log)
	results := make([]stunResult, len(dsts))
	var wg sync.WaitGroup
	pctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	for i, d := range dsts {
		p := v4
		if d.Addr().Is6() {
			p = v6
		}
		results[i].dst = d
		if p == nil {
			results[i].err = fmt.Errorf("netcheck: no IPv6 socket")
			continue
		}
		wg.Go(func() {
			results[i].mapped, results[i].rtt, results[i].err = p.exchange(pctx, d)
		})
	}
	var snRTT []RTT
	wg.Go(func() { snRTT = measureSupernodes(ctx, cfg.HTTPClient, cfg.Supernodes) })
	wg.Wait()
	cancel()
	r.Supernodes = snRTT

	var mapped4 []netip.AddrPort
	for _, res := range results {
		rt := RTT{Addr: res.dst.String()}
		if res.err == nil {
			rt.Reached, rt.RTTMs, rt.Mapped = true, ms(res.rtt), res.mapped.String()
			r.UDP = true
			if res.dst.Addr().Is6() {
				r.IPv6 = true
				if r.GlobalV6 == "" {
					r.GlobalV6 = res.mapped.String()
				}
			} else {
				r.IPv4 = true
				mapped4 = append(mapped4, res.mapped)
			}
		} else {
			log.Debug("stun", "server", res.dst, "err", res.err)
		}
		r.Relays = append(r.Relays, rt)
	}
	r.NAT, r.MappingVariesByDest = classify(mapped4, v4.port(), localAddrs())
	if len(mapped4) > 0 {
		r.GlobalV4 = mapped4[0].String()
		if r.NAT != NATNone {
			r.Hairpinning = checkHairpin(ctx, v4, mapped4[0], cfg.HairpinWait, log)
		}
	}
	r.PortMapping = checkPortMap(ctx, cfg.PortMap, v4.port(), mapped4, log)
	return r, nil
}

// classify tells the NAT's mapping behaviour from the addresses the STUN
// servers saw one socket (bound to port) at.
func classify(mapped []netip.AddrPort, port uint16, local []netip.Addr) (string, *bool) {
	if len(mapped) == 0 {
		return NATUnknown, nil
	}
	if mapped[0].Port() == port && slices.Contains(local, mapped[0].Addr()) {
		f := false
		return NATNone, &f
	}
	if len(mapped) < 2 {
		return NATUnknown, nil
	}
	varies := slices.ContainsFunc(mapped[1:], func(m netip.AddrPort) bool { return m != mapped[0] })
	if varies {
		return NATEndpointDependent, &varies
	}
	return NATEndpointIndependent, &varies
}

// checkHairpin sends from a second socket to the first one's outside
// address and reports whether the router brought it back in.
func checkHairpin(ctx context.Context, target *prober, global netip.AddrPort, wait time.Duration, log *slog.Logger) *bool {
	from, err := newProber("udp4")
	if err != nil {
		log.Debug("hairpin socket", "err", err)
		return nil
	}
	defer from.close()
	ok, err := hairpin(ctx, from, target, global, wait)
	if err != nil {
		log.Debug("hairpin", "err", err)
		return nil
	}
	return &ok
}

// checkPortMap asks the router to map the probing socket's port, compares
// the mapping with what the STUN servers saw, and deletes it.
func checkPortMap(ctx context.Context, pm *portmap.Client, port uint16, seen []netip.AddrPort, log *slog.Logger) PortMapping {
	if pm == nil {
		return PortMapping{Reason: "not asked (--no-port-mapping)"}
	}
	out := PortMapping{Tried: true}
	m, err := pm.Map(ctx, port)
	if err != nil {
		out.Reason = err.Error()
		return out
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := pm.Unmap(dctx, m); err != nil {
			log.Debug("deleting the test mapping", "err", err)
		}
	}()
	out.Available, out.Protocol, out.External = true, m.Protocol, m.External.String()
	var seenAddr netip.Addr
	if len(seen) > 0 {
		seenAddr = seen[0].Addr()
	}
	if err := portmap.Useful(m, seenAddr); err != nil {
		out.Reason = err.Error()
		return out
	}
	out.Usable = true
	return out
}

// resolve turns host:port names into addresses, IPv4 and IPv6, once each.
func resolve(ctx context.Context, servers []string, log *slog.Logger) []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range servers {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			log.Debug("stun server", "server", s, "err", err)
			continue
		}
		ap, err := netip.ParseAddrPort(s)
		if err == nil {
			out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
			continue
		}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			log.Debug("stun server", "server", s, "err", err)
			continue
		}
		for _, ip := range ips {
			if a, err := netip.ParseAddrPort(net.JoinHostPort(ip.Unmap().String(), port)); err == nil {
				out = append(out, a)
			}
		}
	}
	slices.SortFunc(out, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return slices.Compact(out)
}

// localAddrs are this host's interface addresses.
func localAddrs() []netip.Addr {
	as, _ := net.InterfaceAddrs()
	var out []netip.Addr
	for _, a := range as {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out
}

// measureSupernodes times a GET of each supernode's /healthz.
func measureSupernodes(ctx context.Context, hc *http.Client, urls []string) []RTT {
	if hc == nil {
		hc = &http.Client{Timeout: 2 * time.Second}
	}
	out := make([]RTT, len(urls))
	var wg sync.WaitGroup
	for i, raw := range urls {
		out[i].Addr = raw
		wg.Go(func() {
			u, err := url.Parse(raw)
			if err != nil {
				return
			}
			u.Scheme = strings.Replace(strings.Replace(u.Scheme, "wss", "https", 1), "ws", "http", 1)
			u.Path, u.RawQuery = "/healthz", ""
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
			if err != nil {
				return
			}
			start := time.Now()
			resp, err := hc.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			out[i].Reached, out[i].RTTMs = true, ms(time.Since(start))
		})
	}
	wg.Wait()
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
