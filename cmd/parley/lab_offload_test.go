package main

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/netlab"
)

// TestRelayKernelOffloadInTheLab: the supernode's relay runs with
// --relay-kernel-offload, the BPF program on the lab server's interface
// (the routed path: a rewritten datagram goes back out of it). The caller's
// router lets UDP out only to the server and the callee is on a public
// address, so the call is relayed through one allocation whose peer is the
// other end itself (not another allocation of the same relay, which the
// kernel never forwards): in practice the callee's, reached from the
// caller's NAT. The recording matches, and when the allocations close the
// relay's log shows that the kernel forwarded the call's packets both ways.
func TestRelayKernelOffloadInTheLab(t *testing.T) {
	n := startNATLab(t, "--relay-kernel-offload")
	if _, errOut := n.sn.output(); strings.Contains(errOut, "kernel offload unavailable") {
		t.Fatalf("the supernode's relay has no kernel offload:\n%s", errOut)
	}
	a, ra, err := n.lab.AddNATHost("koa", netlab.EndpointIndependent)
	must(t, err)
	must(t, ra.Run("iptables", "-I", "FORWARD", "1", "-i", "lan", "-p", "udp", "-d", n.srv.IP.String(), "-j", "ACCEPT"))
	must(t, ra.Run("iptables", "-A", "FORWARD", "-i", "lan", "-p", "udp", "-j", "DROP"))
	b, err := n.lab.AddPublicHost("kob")
	must(t, err)
	r := n.call(t, a, b, "kocaller", "kocallee")
	checkCall(t, r, "udp-relay", "")

	closed := regexp.MustCompile(`relay: allocation closed.* user=ko(?:caller|callee) .*kernel_to_peers=(\d+) kernel_from_peers=(\d+)`)
	var toPeers, fromPeers int
	deadline := time.Now().Add(15 * time.Second)
	// A call of a few seconds is 50 packets a second each way, through the
	// one allocation that relays it.
	for time.Now().Before(deadline) && (toPeers < 100 || fromPeers < 100) {
		_, errOut := n.sn.output()
		for _, m := range closed.FindAllStringSubmatch(errOut, -1) {
			to, _ := strconv.Atoi(m[1])
			from, _ := strconv.Atoi(m[2])
			if min(to, from) > min(toPeers, fromPeers) {
				toPeers, fromPeers = to, from
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	if toPeers < 100 || fromPeers < 100 {
		_, errOut := n.sn.output()
		t.Errorf("the kernel forwarded %d packets to a peer and %d from it, want the call's (≥ 100 each way)\nsupernode:\n%s", toPeers, fromPeers, errOut)
	}
	t.Logf("the kernel forwarded %d packets to the peer and %d from it", toPeers, fromPeers)
}
