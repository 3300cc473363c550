package main

import (
	"fmt"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/netlab"
)

// The tests in this file are docs/nat.md's rows for IPv6 through the relay:
// IPv6-only hosts whose routers (stateful IPv6 firewalls, as in
// lab6_ipv6_test.go) let UDP out only to the servers, or no UDP at all, call
// through an IPv6 allocation on the supernode's relay (RFC 6156), over UDP
// or TCP. The lab's internet is fd00:198:18::/64, which the relay is allowed
// to relay to (--relay-allow-peer fd00::/8), as 198.18/15 is for IPv4.

// srv6 is the lab server host's IPv6 address (netlab: 198.18.0.10's).
var srv6 = netip.MustParseAddr("fd00:198:18::10")

// needIPv6TURN fails the test when the linked pion/ice cannot gather relayed
// candidates over IPv6: before v4.4.3 its gatherCandidatesRelay skips every
// IPv6 network type ("IPv6 TURN support is not finished yet"), so an
// IPv6-only client has no relay at all (github.com/pion/webrtc/v4 v4.2.21
// links ice v4.4.4).
func needIPv6TURN(t *testing.T) {
	t.Helper()
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		t.Fatal("no build info: cannot tell which pion/ice is linked")
	}
	for _, d := range bi.Deps {
		if d.Path != "github.com/pion/ice/v4" {
			continue
		}
		var major, minor, patch int
		if _, err := fmt.Sscanf(d.Version, "v%d.%d.%d", &major, &minor, &patch); err != nil {
			t.Fatalf("pion/ice version %q: %v", d.Version, err)
		}
		if minor < 4 || (minor == 4 && patch < 3) {
			t.Fatalf("pion/ice %s gathers no IPv6 relayed candidates (it skips IPv6 TURN before v4.4.3): "+
				"go get github.com/pion/webrtc/v4@v4.2.21 (ice v4.4.4)", d.Version)
		}
		return
	}
	t.Fatal("pion/ice is not linked")
}

// startRelay6Lab starts the login server and a supernode with its relay on
// the dual-stack server host. With v6 they are reached (and the relay
// offered) at the host's IPv6 address, so the relay allocates IPv6; without,
// at its IPv4 address, the relay listening on every address and given the
// IPv6 one by --relay-second-ip (dual stack: it allocates both families and
// is offered at both addresses). It returns the lab and the supernode, whose
// log names each allocation.
func startRelay6Lab(t *testing.T, v6 bool) (*natLab, *proc) {
	t.Helper()
	needIPv6TURN(t)
	lab := netlab.NewForTest(t)
	must(t, lab.EnableIPv6())
	srv, err := lab.AddPublicHost("srv")
	must(t, err)
	a6, err := srv.AddIPv6()
	must(t, err)
	if a6 != srv6 {
		t.Fatalf("server host at %v, want %v", a6, srv6)
	}
	ip, turn := srv6.String(), net.JoinHostPort(srv6.String(), "3478")
	snArgs := []string{}
	if !v6 {
		ip, turn = srv.IP.String(), ":3478"
		snArgs = []string{"--relay-second-ip", srv6.String()}
	}
	hp := func(port string) string { return net.JoinHostPort(ip, port) }
	n := &natLab{lab: lab, srv: srv, loginURL: "http://" + hp("8080")}
	startIn(t, srv.NS, nil, "login-server", "--max-registrations-per-addr", "1000", "--listen", hp("8080"),
		"--data", t.TempDir(), "--supernode-allow", labAllow, "--supernode-allow", "fd00::/8")
	sn := startIn(t, srv.NS, []string{"PARLEY_LOGIN=" + n.loginURL}, append([]string{"supernode",
		"--listen", hp("8081"), "--public-addr", ip, "--turn-udp", turn, "--turn-tcp", turn,
		"--relay-allow-peer", labAllow, "--relay-allow-peer", "fd00::/8"}, snArgs...)...)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, errOut := sn.output(); strings.Contains(errOut, "listed by the login server") {
			return n, sn
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, errOut := sn.output()
	t.Fatalf("supernode did not start:\n%s", errOut)
	return nil, nil
}

// allocatedIPv6 reports whether the supernode's log shows an allocation for
// user relayed at the server's IPv6 address.
func allocatedIPv6(sn *proc, user string) bool {
	_, errOut := sn.output()
	for _, l := range strings.Split(errOut, "\n") {
		if strings.Contains(l, "allocation created") && strings.Contains(l, "user="+user+" ") &&
			strings.Contains(l, "relay=["+srv6.String()+"]:") {
			return true
		}
	}
	return false
}

// checkRelayed checks that the call between caller and callee was relayed on
// path through IPv6 allocations of the supernode's relay.
func checkRelayed(t *testing.T, sn *proc, r callResult, path, caller, callee string) {
	t.Helper()
	checkCall(t, r, path, "")
	for _, side := range []struct{ name, out string }{{"caller", r.callerOut}, {"callee", r.calleeOut}} {
		if relay := lastField(t, side.out, "relay"); !strings.Contains(relay, srv6.String()) {
			t.Errorf("the %s's relay is %q, want the server's IPv6 address %s", side.name, relay, srv6)
		}
	}
	for _, u := range []string{caller, callee} {
		if !allocatedIPv6(sn, u) {
			_, errOut := sn.output()
			t.Errorf("the relay made no IPv6 allocation for %s:\n%s", u, errOut)
		}
	}
}

// TestLab6RelayIPv6: two IPv6-only hosts behind stateful firewalls that let
// UDP out only to the server host call through IPv6 allocations over UDP
// (udp-relay); with the caller's firewall blocking UDP entirely (TCP out to
// the servers' ports only) the call goes over TURN/TCP (tcp-relay), both
// over IPv6.
func TestLab6RelayIPv6(t *testing.T) {
	n, sn := startRelay6Lab(t, true)
	t.Run("udp-relay", func(t *testing.T) {
		a, ra, err := n.lab.AddIPv6OnlyHost("r6ua")
		must(t, err)
		must(t, ra.UDPOnlyToIPv6(srv6))
		b, rb, err := n.lab.AddIPv6OnlyHost("r6ub")
		must(t, err)
		must(t, rb.UDPOnlyToIPv6(srv6))
		r := n.call(t, a, b, "r6ucaller", "r6ucallee")
		checkRelayed(t, sn, r, "udp-relay", "r6ucaller", "r6ucallee")
	})
	t.Run("tcp-relay", func(t *testing.T) {
		a, ra, err := n.lab.AddIPv6OnlyHost("r6ta")
		must(t, err)
		must(t, ra.BlockUDPIPv6(3478, 8080, 8081))
		b, rb, err := n.lab.AddIPv6OnlyHost("r6tb")
		must(t, err)
		must(t, rb.BlockUDPIPv6(3478, 8080, 8081))
		r := n.call(t, a, b, "r6tcaller", "r6tcallee")
		checkRelayed(t, sn, r, "tcp-relay", "r6tcaller", "r6tcallee")
	})
}

// TestLab6RelayDualStackSupernode: the supernode is reached at its IPv4
// address and --relay-second-ip gives its relay the host's IPv6 address as
// well. Two dual-stack hosts whose IPv4 routers let out only TCP to the login
// server and supernode (no relay over IPv4 at all) and whose IPv6 firewalls
// let UDP out only to the server host call through IPv6 allocations, made
// at the IPv6 address the relay is also offered at.
func TestLab6RelayDualStackSupernode(t *testing.T) {
	n, sn := startRelay6Lab(t, false)
	host := func(name string) *netlab.Host {
		h, r, err := n.lab.AddNATHost(name, netlab.EndpointIndependent)
		must(t, err)
		_, err = r.AddIPv6(h)
		must(t, err)
		must(t, r.BlockUDP(8080, 8081))
		must(t, r.UDPOnlyToIPv6(srv6))
		return h
	}
	a, b := host("r6da"), host("r6db")
	r := n.call(t, a, b, "r6dcaller", "r6dcallee")
	checkRelayed(t, sn, r, "udp-relay", "r6dcaller", "r6dcallee")
}
