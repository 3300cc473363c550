package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/netlab"
)

// The tests in this file are docs/nat.md's IPv6 rows: the lab's internet
// also carries IPv6 (fd00:198:18::/64, unique local: nothing leaves the
// machine), each router routes its LAN's IPv6 prefix through a stateful
// firewall (no NAT), and calls go direct over IPv6 where IPv4 alone could
// not, with no relay.

// startIPv6Lab starts the login server and a supernode (with its STUN and
// relay) on a dual-stack server host, the login server and supernode
// reached (and the supernode's STUN and relay offered) at its IPv6 address
// when v6 is set, else at its IPv4 one.
func startIPv6Lab(t *testing.T, v6 bool) *natLab {
	t.Helper()
	lab := netlab.NewForTest(t)
	must(t, lab.EnableIPv6())
	srv, err := lab.AddPublicHost("srv")
	must(t, err)
	srv6, err := srv.AddIPv6()
	must(t, err)
	ip := srv.IP.String()
	if v6 {
		ip = srv6.String()
	}
	hp := func(port string) string { return net.JoinHostPort(ip, port) }
	n := &natLab{lab: lab, srv: srv, loginURL: "http://" + hp("8080")}
	startIn(t, srv.NS, nil, "login-server", "--max-registrations-per-addr", "1000", "--listen", hp("8080"), "--data", t.TempDir(),
		"--supernode-allow", labAllow, "--supernode-allow", "fd00::/8")
	sn := startIn(t, srv.NS, []string{"PARLEY_LOGIN=" + n.loginURL}, "supernode",
		"--listen", hp("8081"), "--public-addr", ip,
		"--turn-udp", hp("3478"), "--turn-tcp", hp("3478"),
		"--relay-allow-peer", "198.18.0.0/15", "--relay-allow-peer", "fd00::/8")
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, errOut := sn.output(); strings.Contains(errOut, "listed by the login server") {
			return n
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, errOut := sn.output()
	t.Fatalf("supernode did not start:\n%s", errOut)
	return nil
}

// TestIPv6OnlyCall: two IPv6-only hosts, each behind a router that is a
// stateful firewall (new connections from outside dropped, no NAT), reach
// the login server and two supernodes over IPv6 — the caller attached to
// one, the callee to the other, the supernodes meshed over IPv6 — and call
// direct over IPv6: both ends' checks open their firewalls for the other's.
func TestIPv6OnlyCall(t *testing.T) {
	n := startIPv6Lab(t, true)
	sn2h, err := n.lab.AddPublicHost("sn2")
	must(t, err)
	sn2ip, err := sn2h.AddIPv6()
	must(t, err)
	hp := func(port string) string { return net.JoinHostPort(sn2ip.String(), port) }
	sn2 := startIn(t, sn2h.NS, []string{"PARLEY_LOGIN=" + n.loginURL}, "supernode",
		"--listen", hp("8081"), "--public-addr", sn2ip.String(), "--turn-udp", hp("3478"), "--turn-tcp", hp("3478"),
		"--relay-allow-peer", "fd00::/8")
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, errOut := sn2.output(); strings.Contains(errOut, "supernode joined the mesh") {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the second supernode did not join the mesh over IPv6:\n%s", errOut)
		}
		time.Sleep(100 * time.Millisecond)
	}
	a, _, err := n.lab.AddIPv6OnlyHost("v6a")
	must(t, err)
	b, _, err := n.lab.AddIPv6OnlyHost("v6b")
	must(t, err)
	srvURL, sn2URL := "ws://[fd00:198:18::10]:8081/v1/ws", "ws://"+hp("8081")+"/v1/ws"
	r := n.callWith(t, a, b, "v6caller", "v6callee", []string{"PARLEY_SUPERNODE=" + sn2URL}, "--supernode", srvURL)
	checkCall(t, r, "direct", "ipv6")
	for _, c := range []struct{ who, out, want string }{{"caller", r.callerOut, srvURL}, {"callee", r.calleeOut, sn2URL}} {
		if got := firstOnline(t, c.out); got != c.want {
			t.Errorf("the %s was attached to %q, want %q", c.who, got, c.want)
		}
	}

	// netcheck: UDP over IPv6 only, seen at the host's own address.
	nc := n.netcheckIn(t, a, "v6check")
	if !nc.UDP || !nc.IPv6 || nc.IPv4 || !strings.HasPrefix(nc.GlobalV6, "["+a.IP.String()+"]:") {
		t.Errorf("netcheck: %+v, want UDP over IPv6 only, seen at %s", nc, a.IP)
	}
}

// serveSTUN answers STUN on the server host at addr (the relay answers it
// too, but at one address per family: the NAT's mapping behaviour needs two).
func serveSTUN(t *testing.T, n *natLab, network, addr string) {
	t.Helper()
	c, err := netlab.ListenUDPIn(n.srv.NS, network, addr)
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		netlab.ServeSTUN(ctx, c)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// TestDualStackSymmetricNATsCall: both ends behind symmetric IPv4 NATs
// (which need a relay over IPv4), each router also routing IPv6 through a
// stateful firewall: the call goes direct over IPv6, not through the relay.
func TestDualStackSymmetricNATsCall(t *testing.T) {
	n := startIPv6Lab(t, false)
	a, ra, err := n.lab.AddNATHost("dsa", netlab.Symmetric)
	must(t, err)
	a6, err := ra.AddIPv6(a)
	must(t, err)
	b, rb, err := n.lab.AddNATHost("dsb", netlab.Symmetric)
	must(t, err)
	_, err = rb.AddIPv6(b)
	must(t, err)
	r := n.call(t, a, b, "dscaller", "dscallee")
	checkCall(t, r, "direct", "ipv6")

	// netcheck with a second IPv4 STUN server and an IPv6 one: a symmetric
	// IPv4 NAT, and IPv6 seen at the host's own address.
	srv6 := "fd00:198:18::10"
	serveSTUN(t, n, "udp4", "198.18.0.10:3479")
	serveSTUN(t, n, "udp6", "["+srv6+"]:3479")
	nc := n.netcheckIn(t, a, "dscheck", "--stun", "198.18.0.10:3479,["+srv6+"]:3479")
	if !nc.UDP || !nc.IPv4 || !nc.IPv6 || nc.NAT != "endpoint-dependent" || !strings.HasPrefix(nc.GlobalV6, "["+a6.String()+"]:") {
		t.Errorf("netcheck: %+v, want UDP over IPv4 (endpoint-dependent NAT) and IPv6 (seen at %s)", nc, a6)
	}
}

// firstOnline is the supernode of the first online event in --json output.
func firstOnline(t *testing.T, out string) string {
	for _, ev := range jsonLines(t, out) {
		if ev["event"] == "online" {
			return fmt.Sprint(ev["supernode"])
		}
	}
	return ""
}
