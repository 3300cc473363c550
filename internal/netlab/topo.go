package netlab

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
)

// Hairpin makes the router bring back in what a host on its LAN sends over
// UDP to the router's own outside address (NAT loopback, "hairpinning"), from
// the router's outside address. Linux's NAT has no loopback for the mappings
// it makes on its own; the lab's stand-in sends such a packet to the host
// it came from, at the same port (nft: dnat to ip saddr). That is exact for
// the test that matters — a host's packet to its own mapping comes back to
// the socket holding it (an endpoint-independent NAT keeps the inside port,
// when free) — and for nothing else: a packet to another LAN host's mapping
// also comes back to its sender.
func (r *Router) Hairpin() error {
	for _, c := range [][]string{
		{"nft", "add", "table", "ip", "netlab_hairpin"},
		{"nft", "add", "chain", "ip", "netlab_hairpin", "pre", "{ type nat hook prerouting priority -100; }"},
		{"nft", "add", "rule", "ip", "netlab_hairpin", "pre", "iifname", "!=", "wan", "ip", "daddr", "!=", "10.0.0.0/8",
			"fib", "daddr", "type", "local", "meta", "l4proto", "udp", "dnat", "to", "ip", "saddr"},
		{"nft", "add", "chain", "ip", "netlab_hairpin", "post", "{ type nat hook postrouting priority 100; }"},
		{"nft", "add", "rule", "ip", "netlab_hairpin", "post", "oifname", "!=", "wan", "ct", "status", "dnat", "masquerade"},
	} {
		if err := r.Run(c...); err != nil {
			return err
		}
	}
	return nil
}

// AddLANHost adds another host behind router r (from AddNATHost), on a LAN
// of its own beside the first (10.N.K.2/24, K counting from 1, N the
// router's): the two reach each other through the router at their LAN
// addresses, without NAT, and the internet through its NAT. name names the
// host (unique in the lab).
func (r *Router) AddLANHost(name string) (*Host, error) {
	l := r.lab
	out, err := exec.Command("ip", "-n", r.NS, "-4", "-o", "addr", "show", "dev", "lan").Output()
	if err != nil {
		return nil, fmt.Errorf("netlab: %s has no LAN: %v", r.NS, err)
	}
	var n int
	if _, err := fmt.Sscanf(strings.Fields(string(out))[3], "10.%d.0.1/24", &n); err != nil {
		return nil, fmt.Errorf("netlab: %s's LAN: %v", r.NS, err)
	}
	l.mu.Lock()
	k := 1
	for ; k < 250; k++ {
		if exec.Command("ip", "-n", r.NS, "link", "show", fmt.Sprintf("lan%d", k)).Run() != nil {
			break
		}
	}
	l.mu.Unlock()
	hns, ifname := l.prefix+"-"+name, fmt.Sprintf("lan%d", k)
	if err := l.addNS(hns); err != nil {
		return nil, err
	}
	gw := fmt.Sprintf("10.%d.%d.1", n, k)
	ip := netip.MustParseAddr(fmt.Sprintf("10.%d.%d.2", n, k))
	for _, c := range [][]string{
		{"ip", "link", "add", ifname, "netns", r.NS, "type", "veth", "peer", "name", "eth0", "netns", hns},
		{"ip", "-n", r.NS, "addr", "add", gw + "/24", "dev", ifname},
		{"ip", "-n", r.NS, "link", "set", ifname, "up"},
		{"ip", "-n", hns, "addr", "add", ip.String() + "/24", "dev", "eth0"},
		{"ip", "-n", hns, "link", "set", "eth0", "up"},
		{"ip", "-n", hns, "route", "add", "default", "via", gw},
	} {
		if err := l.run(c...); err != nil {
			return nil, err
		}
	}
	return &Host{lab: l, Name: name, NS: hns, IP: ip}, nil
}

// AddDoubleNATHost adds a host behind two NATs, as a carrier's subscribers
// are: a home router (NAT home, LAN 10.N.0.0/24) whose WAN side is on the
// carrier's shared address space (100.64.N.2/24, RFC 6598) behind the
// carrier's NAT (carrier: "CGNAT"), whose outside address is on the internet.
// Both routers drop new connections arriving on their WAN side.
func (l *Lab) AddDoubleNATHost(name string, carrier, home NAT) (*Host, *Router, *Router, error) {
	l.mu.Lock()
	n := l.nextLAN
	l.nextLAN++
	l.mu.Unlock()
	cns, rns, hns := l.prefix+"-"+name+"-cg", l.prefix+"-"+name+"-r", l.prefix+"-"+name
	for _, ns := range []string{cns, rns, hns} {
		if err := l.addNS(ns); err != nil {
			return nil, nil, nil, err
		}
	}
	wan, err := l.attach(cns, "wan")
	if err != nil {
		return nil, nil, nil, err
	}
	shared := netip.MustParseAddr(fmt.Sprintf("100.64.%d.2", n))
	cgIn, lanGW := fmt.Sprintf("100.64.%d.1", n), fmt.Sprintf("10.%d.0.1", n)
	hostIP := netip.MustParseAddr(fmt.Sprintf("10.%d.0.2", n))
	cmds := [][]string{
		{"ip", "link", "add", "lan", "netns", cns, "type", "veth", "peer", "name", "wan", "netns", rns},
		{"ip", "-n", cns, "addr", "add", cgIn + "/24", "dev", "lan"},
		{"ip", "-n", cns, "link", "set", "lan", "up"},
		{"ip", "-n", rns, "addr", "add", shared.String() + "/24", "dev", "wan"},
		{"ip", "-n", rns, "link", "set", "wan", "up"},
		{"ip", "-n", rns, "route", "add", "default", "via", cgIn},
		{"ip", "link", "add", "lan", "netns", rns, "type", "veth", "peer", "name", "eth0", "netns", hns},
		{"ip", "-n", rns, "addr", "add", lanGW + "/24", "dev", "lan"},
		{"ip", "-n", rns, "link", "set", "lan", "up"},
		{"ip", "-n", hns, "addr", "add", hostIP.String() + "/24", "dev", "eth0"},
		{"ip", "-n", hns, "link", "set", "eth0", "up"},
		{"ip", "-n", hns, "route", "add", "default", "via", lanGW},
	}
	cmds = append(cmds, natRules(cns, carrier)...)
	cmds = append(cmds, natRules(rns, home)...)
	for _, c := range cmds {
		if err := l.run(c...); err != nil {
			return nil, nil, nil, err
		}
	}
	return &Host{lab: l, Name: name, NS: hns, IP: hostIP},
		&Router{lab: l, NS: rns, WAN: shared},
		&Router{lab: l, NS: cns, WAN: wan}, nil
}

// natRules make namespace ns a router doing nat out of its "wan" interface
// that drops new connections arriving there.
func natRules(ns string, nat NAT) [][]string {
	masq := []string{"ip", "netns", "exec", ns, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
	if nat == Symmetric {
		masq = append(masq, "--random-fully")
	}
	return [][]string{
		{"ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		masq,
		{"ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"},
		{"ip", "netns", "exec", ns, "iptables", "-A", "FORWARD", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"},
	}
}
