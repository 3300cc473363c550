package netlab

import (
	"fmt"
	"net/netip"
	"strconv"
)

// IPv6 in the lab. The internet is also fd00:198:18::/64 (a unique local
// prefix: nothing leaves the machine), routed by the internet namespace
// itself (fd00:198:18::1), which knows each LAN's prefix. A public host N
// (198.18.0.N) is fd00:198:18::N. A router's LAN N is fd00:N::/64, the
// router fd00:N::1, its host fd00:N::2. Routers never translate IPv6: they
// are stateful firewalls, letting out what the LAN sends and in only what
// answers it, as home routers do.

// inet6 is the internet's own IPv6 address, every host's default route.
var inet6 = netip.MustParseAddr("fd00:198:18::1")

// EnableIPv6 gives the internet its IPv6 prefix and makes it route it. Call
// it once, before adding IPv6 to hosts and routers.
func (l *Lab) EnableIPv6() error {
	for _, c := range [][]string{
		{"ip", "netns", "exec", l.inet, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
		{"ip", "-n", l.inet, "addr", "add", inet6.String() + "/64", "dev", "br0", "nodad"},
	} {
		if err := l.run(c...); err != nil {
			return err
		}
	}
	return nil
}

// public6 is the IPv6 address of the public address v4 (198.18.0.N).
func public6(v4 netip.Addr) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("fd00:198:18::%d", v4.As4()[3]))
}

// AddIPv6 gives a public host its IPv6 address beside its IPv4 one, and
// returns it.
func (h *Host) AddIPv6() (netip.Addr, error) {
	a := public6(h.IP)
	for _, c := range [][]string{
		{"ip", "-n", h.NS, "addr", "add", a.String() + "/64", "dev", "eth0", "nodad"},
		{"ip", "-n", h.NS, "-6", "route", "add", "default", "via", inet6.String()},
	} {
		if err := h.lab.run(c...); err != nil {
			return netip.Addr{}, err
		}
	}
	return a, nil
}

// AddIPv6 makes a router from AddNATHost dual stack: its WAN side gets the
// IPv6 address of its IPv4 one, its LAN fd00:N::/64 (N as in 10.N.0.0/24),
// and host h behind it fd00:N::2, which it returns. IPv6 is routed, not
// translated, through a stateful firewall: new connections from the WAN
// side are dropped. The IPv4 NAT stays as it was.
func (r *Router) AddIPv6(h *Host) (netip.Addr, error) {
	lan := h.IP.As4()[1]
	return r.addIPv6(h, lan, true)
}

func (r *Router) addIPv6(h *Host, lan byte, hostDefault bool) (netip.Addr, error) {
	wan6 := public6(r.WAN)
	gw := fmt.Sprintf("fd00:%d::1", lan)
	host := netip.MustParseAddr(fmt.Sprintf("fd00:%d::2", lan))
	cmds := [][]string{
		{"ip", "netns", "exec", r.NS, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"},
		{"ip", "-n", r.NS, "addr", "add", wan6.String() + "/64", "dev", "wan", "nodad"},
		{"ip", "-n", r.NS, "-6", "route", "add", "default", "via", inet6.String()},
		{"ip", "-n", r.NS, "addr", "add", gw + "/64", "dev", "lan", "nodad"},
		{"ip", "-n", h.NS, "addr", "add", host.String() + "/64", "dev", "eth0", "nodad"},
		{"ip", "-n", r.lab.inet, "-6", "route", "add", fmt.Sprintf("fd00:%d::/64", lan), "via", wan6.String()},
		{"ip", "netns", "exec", r.NS, "ip6tables", "-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-p", "udp", "-j", "DROP"},
		{"ip", "netns", "exec", r.NS, "ip6tables", "-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-p", "tcp", "-j", "DROP"},
		{"ip", "netns", "exec", r.NS, "ip6tables", "-A", "FORWARD", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-p", "udp", "-j", "DROP"},
		{"ip", "netns", "exec", r.NS, "ip6tables", "-A", "FORWARD", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-p", "tcp", "-j", "DROP"},
	}
	if hostDefault {
		cmds = append(cmds, []string{"ip", "-n", h.NS, "-6", "route", "add", "default", "via", gw})
	}
	for _, c := range cmds {
		if err := r.lab.run(c...); err != nil {
			return netip.Addr{}, err
		}
	}
	return host, nil
}

// AddIPv6OnlyHost adds a host with no IPv4 at all on its own LAN behind a
// router that routes IPv6 through a stateful firewall (no NAT). It returns
// the host (its IP is its IPv6 address) and the router.
func (l *Lab) AddIPv6OnlyHost(name string) (*Host, *Router, error) {
	h, r, err := l.AddNATHost(name, EndpointIndependent)
	if err != nil {
		return nil, nil, err
	}
	lan := h.IP.As4()[1]
	// Take the host's IPv4 away: the LAN is IPv6 only.
	for _, c := range [][]string{
		{"ip", "-n", h.NS, "-4", "addr", "flush", "dev", "eth0"},
		{"ip", "-n", h.NS, "-4", "route", "flush", "all"},
	} {
		if err := l.run(c...); err != nil {
			return nil, nil, err
		}
	}
	a, err := r.addIPv6(h, lan, true)
	if err != nil {
		return nil, nil, err
	}
	h.IP = a
	return h, r, nil
}

// UDPOnlyToIPv6 makes the router's IPv6 firewall let UDP out of its LAN only
// to servers (and their answers back in): the hosts behind it reach the
// login server, supernode and relay, but no other host, over UDP. TCP is
// left as it was.
func (r *Router) UDPOnlyToIPv6(servers ...netip.Addr) error {
	var cmds [][]string
	for _, s := range servers {
		cmds = append(cmds, []string{"ip6tables", "-I", "FORWARD", "1", "-i", "lan", "-p", "udp", "-d", s.String(), "-j", "ACCEPT"})
	}
	cmds = append(cmds, []string{"ip6tables", "-A", "FORWARD", "-i", "lan", "-p", "udp", "-j", "DROP"})
	for _, c := range cmds {
		if err := r.Run(c...); err != nil {
			return err
		}
	}
	return nil
}

// BlockUDPIPv6 is BlockUDP for IPv6: nothing is forwarded from the LAN but
// TCP to the given ports (and replies to it); all UDP is dropped.
func (r *Router) BlockUDPIPv6(allowTCPPorts ...int) error {
	cmds := [][]string{
		{"ip6tables", "-P", "FORWARD", "DROP"},
		{"ip6tables", "-I", "FORWARD", "1", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
	}
	for _, p := range allowTCPPorts {
		cmds = append(cmds, []string{"ip6tables", "-A", "FORWARD", "-i", "lan", "-p", "tcp", "--dport", strconv.Itoa(p), "-j", "ACCEPT"})
	}
	for _, c := range cmds {
		if err := r.Run(c...); err != nil {
			return err
		}
	}
	return nil
}
