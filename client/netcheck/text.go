package netcheck

import (
	"fmt"
	"strings"
)

// Text is the report in words, one finding a line.
func (r Report) Text() string {
	var b strings.Builder
	line := func(format string, a ...any) { fmt.Fprintf(&b, "\t* "+format+"\n", a...) }
	b.WriteString("Report:\n")
	if r.UDP {
		line("UDP: yes")
	} else {
		line("UDP: no (blocked: calls need a relay over TCP or TLS)")
	}
	family := func(ok bool, global string) string {
		if !ok {
			return "no"
		}
		return "yes, seen at " + global
	}
	line("IPv4: %s", family(r.IPv4, r.GlobalV4))
	line("IPv6: %s", family(r.IPv6, r.GlobalV6))
	switch r.NAT {
	case NATNone:
		line("NAT: none (this host's own address)")
	case NATEndpointIndependent:
		line("NAT: endpoint-independent mapping (one outside port for every destination: hole punching works)")
	case NATEndpointDependent:
		line("NAT: endpoint-dependent mapping (symmetric: a new outside port per destination; hole punching fails)")
	default:
		line("NAT: unknown (needs answers from two STUN servers)")
	}
	switch {
	case r.Hairpinning == nil:
		line("Hairpinning: not tried")
	case *r.Hairpinning:
		line("Hairpinning: yes")
	default:
		line("Hairpinning: no")
	}
	pm := r.PortMapping
	switch {
	case !pm.Tried:
		line("Port mapping: not asked")
	case !pm.Available:
		line("Port mapping: not available (%s)", pm.Reason)
	case pm.Usable:
		line("Port mapping: %s, %s, usable", pm.Protocol, pm.External)
	default:
		line("Port mapping: %s, %s, not usable (%s)", pm.Protocol, pm.External, pm.Reason)
	}
	rtts := func(name string, rs []RTT) {
		if len(rs) == 0 {
			line("%s: none on offer", name)
			return
		}
		var parts []string
		for _, x := range rs {
			if x.Reached {
				parts = append(parts, fmt.Sprintf("%s %.1f ms", x.Addr, x.RTTMs))
			} else {
				parts = append(parts, x.Addr+" unreachable")
			}
		}
		line("%s: %s", name, strings.Join(parts, ", "))
	}
	rtts("Relays (STUN)", r.Relays)
	rtts("Supernodes", r.Supernodes)
	return b.String()
}
