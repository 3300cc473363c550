// Package netlab builds small test internets on one Linux machine out of network
// namespaces: a bridge as "the internet" (198.18.0.0/16, the benchmark range, so
// nothing ever leaves the machine), public hosts on it, and hosts behind router
// namespaces that NAT and filter with iptables (nf_tables backend) and drop a
// share of packets with nft. Everything a Lab makes has a name unique to the run
// and is torn down by Close — call it in a t.Cleanup so that it runs when a test
// fails too. Namespaces left behind by a crashed run of another process are
// removed when a new Lab starts.
//
// Topology:
//
//	[public host] ──┐                      ┌── [router: wan 198.18.0.R | lan 10.N.0.1] ── [host 10.N.0.2]
//	                └── br0 in ns "inet" ──┤
//	[public host] ──┘   198.18.0.0/16      └── ...
//
// A lab needs root, iproute2, iptables and nft (scripts/deps.sh installs them).
package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrUnavailable means this machine cannot build a lab (not root, or a tool is missing).
var ErrUnavailable = errors.New("netlab: network namespaces unavailable")

// Available reports whether a lab can be built here, and if not, why.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root", ErrUnavailable)
	}
	for _, tool := range []string{"ip", "iptables", "nft", "sysctl", "ethtool"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s not installed (scripts/deps.sh installs it)", ErrUnavailable, tool)
		}
	}
	return nil
}

const nsPrefix = "plab"

// labs counts the labs this process has made.
var labs atomic.Int64

// Config configures [New].
type Config struct {
	// Logger receives the commands run, at debug level; nil discards them.
	Logger *slog.Logger
}

// Lab is one test internet. Its methods are safe for concurrent use.
type Lab struct {
	log    *slog.Logger
	prefix string
	inet   string

	mu      sync.Mutex
	nss     []string
	fws     []*forwarder
	nextPub int
	nextLAN int
	closed  bool
}

// New removes namespaces of dead earlier runs and makes the internet bridge.
func New(cfg Config) (*Lab, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	l := &Lab{log: cfg.Logger, prefix: fmt.Sprintf("%s%d", nsPrefix, os.Getpid()), nextPub: 10, nextLAN: 1}
	if k := labs.Add(1); k > 1 { // another lab of this process: its own names
		l.prefix += fmt.Sprintf("-%d", k)
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	removeStale()
	l.inet = l.prefix + "-inet"
	if err := l.addNS(l.inet); err != nil {
		return nil, err
	}
	// A bridge given no address takes the lowest of its ports' and changes
	// it when a port with a lower one joins; the kernel then flushes the
	// bridge's IPv6 neighbours, and a host added to the lab at that moment
	// could find the internet unreachable for seconds. Its own address
	// keeps it fixed.
	if err := l.run("ip", "-n", l.inet, "link", "add", "br0", "address", "02:00:5e:00:00:01", "type", "bridge"); err != nil {
		l.Close()
		return nil, err
	}
	if err := l.run("ip", "-n", l.inet, "link", "set", "br0", "up"); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// removeStale deletes lab namespaces whose creating process is gone.
func removeStale() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == nil {
			continue // its owner is alive
		}
		killNS(name)
		exec.Command("ip", "netns", "del", name).Run()
	}
}

// killNS kills every process still running inside namespace ns.
func killNS(ns string) {
	out, _ := exec.Command("ip", "netns", "pids", ns).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// Close kills every process left in the lab's namespaces and deletes them.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	nss, fws := l.nss, l.fws
	l.mu.Unlock()
	for _, fw := range fws {
		fw.Close()
	}
	var errs []error
	for i := len(nss) - 1; i >= 0; i-- {
		killNS(nss[i])
		if out, err := exec.Command("ip", "netns", "del", nss[i]).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("netlab: delete %s: %v: %s", nss[i], err, out))
		}
	}
	return errors.Join(errs...)
}

func (l *Lab) run(args ...string) error {
	l.log.Debug("netlab", "cmd", strings.Join(args, " "))
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netlab: %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func (l *Lab) addNS(ns string) error {
	if err := l.run("ip", "netns", "add", ns); err != nil {
		return err
	}
	l.mu.Lock()
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	// No duplicate address detection: IPv6 addresses (ipv6.go) work at once,
	// not a second or two later. (A kernel without IPv6 has no such setting.)
	l.run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	return l.run("ip", "-n", ns, "link", "set", "lo", "up")
}

// attach connects namespace ns to the internet bridge as interface ifname with
// the next public address, and returns that address.
func (l *Lab) attach(ns, ifname string) (netip.Addr, error) {
	return l.attachDelayed(ns, ifname, 0)
}

// attachDelayed is attach with a delay of d each way between ns and the
// internet: a forwarder namespace sits on the link.
func (l *Lab) attachDelayed(ns, ifname string, d time.Duration) (netip.Addr, error) {
	addr, err := l.nextPublic()
	if err != nil {
		return netip.Addr{}, err
	}
	port := fmt.Sprintf("p%d", addr.As4()[3])
	var cmds [][]string
	if d > 0 {
		dns := ns + "-d"
		if err := l.addNS(dns); err != nil {
			return netip.Addr{}, err
		}
		cmds = [][]string{
			{"ip", "link", "add", "name", ifname, "netns", ns, "type", "veth", "peer", "name", "fwa", "netns", dns},
			{"ip", "link", "add", "name", "fwb", "netns", dns, "type", "veth", "peer", "name", port, "netns", l.inet},
			{"ip", "netns", "exec", dns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
			{"ip", "-n", dns, "link", "set", "fwa", "promisc", "on", "up"},
			{"ip", "-n", dns, "link", "set", "fwb", "promisc", "on", "up"},
		}
		for _, off := range []struct{ ns, dev string }{{ns, ifname}, {dns, "fwa"}, {dns, "fwb"}, {l.inet, port}} {
			cmds = append(cmds, []string{"ip", "netns", "exec", off.ns, "ethtool", "-K", off.dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off"})
		}
	} else {
		cmds = [][]string{{"ip", "link", "add", ifname, "netns", ns, "type", "veth", "peer", "name", port, "netns", l.inet}}
	}
	for _, c := range append(cmds, [][]string{
		{"ip", "-n", l.inet, "link", "set", port, "master", "br0", "up"},
		{"ip", "-n", ns, "addr", "add", addr.String() + "/16", "dev", ifname},
		{"ip", "-n", ns, "link", "set", ifname, "up"},
	}...) {
		if err := l.run(c...); err != nil {
			return netip.Addr{}, err
		}
	}
	if d > 0 {
		fw, err := startForwarder(ns+"-d", "fwa", "fwb", d)
		if err != nil {
			return netip.Addr{}, err
		}
		l.mu.Lock()
		l.fws = append(l.fws, fw)
		l.mu.Unlock()
	}
	return addr, nil
}

// nextPublic hands out the next unused public address.
func (l *Lab) nextPublic() (netip.Addr, error) {
	l.mu.Lock()
	n := l.nextPub
	l.nextPub++
	l.mu.Unlock()
	if n > 250 {
		return netip.Addr{}, errors.New("netlab: out of public addresses")
	}
	return netip.AddrFrom4([4]byte{198, 18, 0, byte(n)}), nil
}

// Host is a machine in the lab.
type Host struct {
	lab  *Lab
	Name string
	NS   string     // namespace name
	IP   netip.Addr // the host's own address (public, or on its LAN)
}

// Router is the NAT/firewall in front of a LAN host.
type Router struct {
	lab *Lab
	NS  string
	WAN netip.Addr // its public address
}

// NAT is the kind of address translation a router does.
type NAT int

const (
	// EndpointIndependent maps one inside address:port to one outside port for
	// every destination (iptables MASQUERADE): hole punching works.
	EndpointIndependent NAT = iota
	// Symmetric picks a new outside port per destination (MASQUERADE
	// --random-fully): hole punching fails, a relay is needed.
	Symmetric
)

// AddPublicHost adds a host with an address on the internet.
func (l *Lab) AddPublicHost(name string) (*Host, error) {
	return l.AddDistantHost(name, 0)
}

// AddDistantHost adds a public host whose link to the internet delays every
// packet by d in each direction (so d adds 2·d to every round trip through it).
func (l *Lab) AddDistantHost(name string, d time.Duration) (*Host, error) {
	ns := l.prefix + "-" + name
	if err := l.addNS(ns); err != nil {
		return nil, err
	}
	ip, err := l.attachDelayed(ns, "eth0", d)
	if err != nil {
		return nil, err
	}
	return &Host{lab: l, Name: name, NS: ns, IP: ip}, nil
}

// AddNATHost adds a host on its own LAN (10.N.0.2/24) behind a router doing nat.
// Every router drops new connections arriving on its WAN side, as home routers
// do (and without which hole punching is flaky: see ../../shared/NOTES.md).
func (l *Lab) AddNATHost(name string, nat NAT) (*Host, *Router, error) {
	l.mu.Lock()
	n := l.nextLAN
	l.nextLAN++
	l.mu.Unlock()
	rns, hns := l.prefix+"-"+name+"-r", l.prefix+"-"+name
	for _, ns := range []string{rns, hns} {
		if err := l.addNS(ns); err != nil {
			return nil, nil, err
		}
	}
	wan, err := l.attach(rns, "wan")
	if err != nil {
		return nil, nil, err
	}
	lanGW := fmt.Sprintf("10.%d.0.1", n)
	hostIP := netip.MustParseAddr(fmt.Sprintf("10.%d.0.2", n))
	masq := []string{"ip", "netns", "exec", rns, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
	if nat == Symmetric {
		masq = append(masq, "--random-fully")
	}
	for _, c := range [][]string{
		{"ip", "link", "add", "lan", "netns", rns, "type", "veth", "peer", "name", "eth0", "netns", hns},
		{"ip", "-n", rns, "addr", "add", lanGW + "/24", "dev", "lan"},
		{"ip", "-n", rns, "link", "set", "lan", "up"},
		{"ip", "-n", hns, "addr", "add", hostIP.String() + "/24", "dev", "eth0"},
		{"ip", "-n", hns, "link", "set", "eth0", "up"},
		{"ip", "-n", hns, "route", "add", "default", "via", lanGW},
		{"ip", "netns", "exec", rns, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		masq,
		{"ip", "netns", "exec", rns, "iptables", "-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"},
		{"ip", "netns", "exec", rns, "iptables", "-A", "FORWARD", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"},
	} {
		if err := l.run(c...); err != nil {
			return nil, nil, err
		}
	}
	return &Host{lab: l, Name: name, NS: hns, IP: hostIP}, &Router{lab: l, NS: rns, WAN: wan}, nil
}

// Run runs a command inside the router's namespace.
func (r *Router) Run(args ...string) error {
	return r.lab.run(append([]string{"ip", "netns", "exec", r.NS}, args...)...)
}

// Renumber moves the router to a new public address, as a new lease from the
// ISP or a move to another network does: the old address goes, and the kernel
// forgets every connection masqueraded behind it, so every NAT mapping the
// hosts behind the router had is gone. It returns the new address.
func (r *Router) Renumber() (netip.Addr, error) {
	addr, err := r.lab.nextPublic()
	if err != nil {
		return netip.Addr{}, err
	}
	if err := r.Run("ip", "addr", "del", r.WAN.String()+"/16", "dev", "wan"); err != nil {
		return netip.Addr{}, err
	}
	if err := r.Run("ip", "addr", "add", addr.String()+"/16", "dev", "wan"); err != nil {
		return netip.Addr{}, err
	}
	r.WAN = addr
	return addr, nil
}

// BlockUDP makes the router a strict firewall: nothing is forwarded from the LAN
// but TCP to the given ports (and replies to it). All UDP is dropped.
func (r *Router) BlockUDP(allowTCPPorts ...int) error {
	cmds := [][]string{
		{"iptables", "-P", "FORWARD", "DROP"},
		{"iptables", "-I", "FORWARD", "1", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
	}
	for _, p := range allowTCPPorts {
		cmds = append(cmds, []string{"iptables", "-A", "FORWARD", "-i", "lan", "-p", "tcp", "--dport", strconv.Itoa(p), "-j", "ACCEPT"})
	}
	for _, c := range cmds {
		if err := r.Run(c...); err != nil {
			return err
		}
	}
	return nil
}

// SetUDPTimeouts sets the router's conntrack UDP timeouts, in seconds: for flows
// seen one way only, and for flows seen both ways.
func (r *Router) SetUDPTimeouts(unreplied, stream int) error {
	if err := r.Run("sysctl", "-qw", fmt.Sprintf("net.netfilter.nf_conntrack_udp_timeout=%d", unreplied)); err != nil {
		return err
	}
	return r.Run("sysctl", "-qw", fmt.Sprintf("net.netfilter.nf_conntrack_udp_timeout_stream=%d", stream))
}

// Loss drops percent of the packets the router sends out of its WAN side.
func (r *Router) Loss(percent int) error {
	for _, c := range [][]string{
		{"nft", "add", "table", "inet", "netlab"},
		{"nft", "add", "chain", "inet", "netlab", "loss", "{ type filter hook postrouting priority 0; }"},
		{"nft", "add", "rule", "inet", "netlab", "loss", "oifname", "wan", "numgen", "random", "mod", "100", "<", strconv.Itoa(percent), "counter", "drop"},
	} {
		if err := r.Run(c...); err != nil {
			return err
		}
	}
	return nil
}

// Command returns a command that runs name inside the host's namespace. Started
// with Start, its Process is the program itself (ip netns exec execs it).
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Run runs a command inside the host's namespace and returns its combined output.
func (h *Host) Run(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", h.NS}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("netlab: %s on %s: %v: %s", strings.Join(args, " "), h.Name, err, bytes.TrimSpace(out))
	}
	return string(out), nil
}
