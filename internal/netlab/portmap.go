package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// PortMapServer is a router's UPnP IGD and NAT-PMP service: Debian's
// miniupnpd (package miniupnpd-nftables) running in the router's namespace.
type PortMapServer struct {
	cmd    *exec.Cmd
	cancel context.CancelFunc
	wg     sync.WaitGroup
	out    *lockedBuffer
}

// stunPort is where the router's own STUN responder listens, on its WAN
// address, for miniupnpd to learn its outside address from.
const stunPort = 3479

// PortMapConfig configures [Router.ServePortMapping].
type PortMapConfig struct {
	// Dir holds miniupnpd's configuration and files (a test's TempDir).
	Dir string
	// NoNATPMP and NoUPnP turn one of the protocols off (both on by default).
	NoNATPMP, NoUPnP bool
}

// ServePortMapping starts miniupnpd on the router, answering UPnP IGD (SSDP on
// the LAN) and NAT-PMP (UDP 5351 on the LAN address) for the hosts behind it.
// The router lets
// in what it forwards for a mapping (its WAN side otherwise drops new
// connections).
//
// miniupnpd refuses to map when its outside address is in a reserved range
// (the lab's 198.18.0.0/15, or 100.64.0.0/10 behind a carrier NAT), and the
// Debian build has no option to allow it. It accepts any address it learns
// by STUN (ext_perform_stun) when the STUN test shows no NAT in front of it
// (the mapped address is the interface's, and the port kept). So the router
// also answers STUN on its own WAN address (port 3479), and miniupnpd asks
// that: it learns the router's WAN address, as a home router's own WAN
// address would be, whether or not another NAT sits beyond it.
func (r *Router) ServePortMapping(cfg PortMapConfig) (*PortMapServer, error) {
	dir := cfg.Dir
	yes := func(off bool) string {
		if off {
			return "no"
		}
		return "yes"
	}
	if _, err := exec.LookPath("miniupnpd"); err != nil {
		return nil, fmt.Errorf("%w: miniupnpd not installed (scripts/deps.sh installs miniupnpd-nftables)", ErrUnavailable)
	}
	sc, err := ListenUDPIn(r.NS, "udp4", fmt.Sprintf("%s:%d", r.WAN, stunPort))
	if err != nil {
		return nil, err
	}
	// The tables and chains miniupnpd adds its rules to (what Debian's
	// /etc/miniupnpd/nft_init.sh would make, but it needs a file the package
	// lacks); and DNATed connections (the mappings) pass the WAN side's drop
	// of new ones.
	rules := filepath.Join(dir, "miniupnpd.nft")
	if err := os.WriteFile(rules, []byte(miniupnpdTables), 0o644); err != nil {
		sc.Close()
		return nil, fmt.Errorf("netlab: %w", err)
	}
	for _, c := range [][]string{
		{"nft", "-f", rules},
		{"iptables", "-I", "FORWARD", "1", "-i", "wan", "-m", "conntrack", "--ctstate", "DNAT", "-j", "ACCEPT"},
	} {
		if err := r.Run(c...); err != nil {
			sc.Close()
			return nil, err
		}
	}
	var uuid [16]byte
	rand.Read(uuid[:])
	conf := filepath.Join(dir, "miniupnpd.conf")
	body := strings.Join([]string{
		"ext_ifname=wan",
		"listening_ip=lan",
		"http_port=0",
		"enable_natpmp=" + yes(cfg.NoNATPMP),
		"enable_upnp=" + yes(cfg.NoUPnP),
		"ext_perform_stun=yes",
		"ext_stun_host=" + r.WAN.String(),
		fmt.Sprintf("ext_stun_port=%d", stunPort),
		"secure_mode=yes",
		"system_uptime=no",
		"notify_interval=60",
		"clean_ruleset_interval=600",
		"upnp_table_name=miniupnpd",
		"upnp_nat_table_name=miniupnpd",
		fmt.Sprintf("uuid=%x-%x-%x-%x-%x", uuid[0:4], uuid[4:6], uuid[6:8], uuid[8:10], uuid[10:16]),
		"allow 1024-65535 10.0.0.0/8 1024-65535",
		"deny 0-65535 0.0.0.0/0 0-65535",
		"",
	}, "\n")
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		sc.Close()
		return nil, fmt.Errorf("netlab: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &PortMapServer{cancel: cancel, out: &lockedBuffer{}}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ServeSTUN(ctx, sc)
	}()
	p.cmd = exec.Command("ip", "netns", "exec", r.NS, "miniupnpd", "-f", conf, "-d", "-P", filepath.Join(dir, "miniupnpd.pid"))
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		p.Close()
		return nil, fmt.Errorf("netlab: miniupnpd: %w", err)
	}
	r.lab.log.Debug("netlab", "cmd", strings.Join(p.cmd.Args, " "))
	// Ready once the STUN test has enabled port forwarding and NAT-PMP
	// listens (or it said why not: the test that uses it will fail).
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		l := p.out.String()
		if (cfg.NoUPnP || strings.Contains(l, "HTTP listening")) && (cfg.NoNATPMP || strings.Contains(l, "Listening for NAT-PMP")) ||
			strings.Contains(l, "impossible") || strings.Contains(l, "restrictive") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p, nil
}

// miniupnpdTables are the nftables miniupnpd's configuration names
// (upnp_table_name, upnp_nat_table_name) with its default chains.
const miniupnpdTables = `table inet miniupnpd {
	chain forward {
		type filter hook forward priority 0; policy accept;
		jump miniupnpd
	}
	chain miniupnpd {
	}
	chain prerouting {
		type nat hook prerouting priority -100; policy accept;
		jump prerouting_miniupnpd
	}
	chain postrouting {
		type nat hook postrouting priority 100; policy accept;
		jump postrouting_miniupnpd
	}
	chain prerouting_miniupnpd {
	}
	chain postrouting_miniupnpd {
	}
}
`

// Log is what miniupnpd has printed so far.
func (p *PortMapServer) Log() string { return p.out.String() }

// Close stops miniupnpd and the router's STUN responder.
func (p *PortMapServer) Close() error {
	p.cancel()
	var err error
	if p.cmd != nil && p.cmd.Process != nil {
		p.cmd.Process.Kill()
		if werr := p.cmd.Wait(); werr != nil && !isKilled(werr) {
			err = werr
		}
	}
	p.wg.Wait()
	return err
}

func isKilled(err error) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && !ee.Exited()
}

// lockedBuffer is a bytes.Buffer safe for a process's output and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
