package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/internal/audiotest"
	"github.com/parley/parley/internal/netlab"
)

// The tests in this file are the port-mapping and double-NAT rows of
// docs/nat.md: calls between hosts behind symmetric NATs whose router maps
// a port when asked (miniupnpd: UPnP IGD and NAT-PMP), and behind a
// carrier's NAT as well as a home router.

// checkCall checks a lab call's recording and the path (and, when direct,
// what made it direct) both ends report.
func checkCall(t *testing.T, r callResult, path, via string) {
	t.Helper()
	if r.corr < 0.9 {
		t.Errorf("recording correlates %.3f, want ≥ 0.9", r.corr)
	}
	if r.callerPath != path || r.calleePath != path {
		t.Errorf("paths %q/%q, want %s", r.callerPath, r.calleePath, path)
	}
	if via == "" {
		return
	}
	for side, out := range map[string]string{"caller": r.callerOut, "callee": r.calleeOut} {
		if got := lastField(t, out, "direct_via"); got != via {
			t.Errorf("%s's stats say the path is direct via %q, want %q", side, got, via)
		}
	}
}

// TestPortMappedCall: both ends behind symmetric NATs, which hole punching
// cannot cross; the caller's router serves UPnP IGD and NAT-PMP. The caller
// maps a port, offers it, and the call is direct through it (both ends say
// "port-mapped"); so is a call to a callee whose router speaks UPnP only. With
// --no-port-mapping the same call needs the relay.
func TestPortMappedCall(t *testing.T) {
	n := startNATLab(t)
	a, ra, err := n.lab.AddNATHost("pma", netlab.Symmetric)
	must(t, err)
	pm := servePortMapping(t, ra, netlab.PortMapConfig{Dir: t.TempDir()})
	b, _, err := n.lab.AddNATHost("pmb", netlab.Symmetric)
	must(t, err)

	r := n.call(t, a, b, "pmcaller", "pmcallee", "--log-level", "info")
	checkCall(t, r, "direct", "port-mapped")
	if !strings.Contains(r.callerErr, "port mapped") {
		t.Errorf("the caller's log does not show the mapping:\n%s", r.callerErr)
	}
	// Deleted at the end of the call (NAT-PMP: a lifetime of 0).
	if !strings.Contains(pm.Log(), "udp lifetime=0s") {
		t.Errorf("the router was not asked to delete the mapping")
	}
	if t.Failed() {
		t.Logf("miniupnpd:\n%s", pm.Log())
	}

	// The other way round, to a callee whose router speaks UPnP IGD only
	// (its session found the router by SSDP when it went online).
	c, rc, err := n.lab.AddNATHost("pmc", netlab.Symmetric)
	must(t, err)
	upm := servePortMapping(t, rc, netlab.PortMapConfig{Dir: t.TempDir(), NoNATPMP: true})
	// UPnP's search takes 1.2 s, from when the session goes online: a call
	// sooner than that goes without the mapping. The caller waits for it.
	r = n.callWhen(t, b, c, "pmcaller3", "pmcallee3", func() bool { return strings.Contains(upm.Log(), "#GetExternalIPAddress") })
	checkCall(t, r, "direct", "port-mapped")
	if !strings.Contains(upm.Log(), "#AddPortMapping") {
		t.Errorf("the callee did not map its port by UPnP:\n%s", upm.Log())
	}

	r = n.call(t, a, b, "pmcaller2", "pmcallee2", "--no-port-mapping", "--log-level", "info")
	checkCall(t, r, "udp-relay", "")
	if strings.Contains(r.callerErr, "port mapped") {
		t.Errorf("--no-port-mapping, yet the caller mapped a port:\n%s", r.callerErr)
	}
}

// TestDoubleNATCalls: a host behind a home router behind a carrier's NAT.
// Endpoint-independent at both layers, hole punching goes through both
// (direct, hole-punched). Behind a symmetric carrier NAT it does not, and the
// home router's port mapping (UPnP/NAT-PMP on its WAN address, 100.64/10) is
// of no use: the caller finds it is not on the address the supernode's STUN
// saw, does not offer it, and the call takes the relay.
func TestDoubleNATCalls(t *testing.T) {
	n := startNATLab(t)
	a, _, _, err := n.lab.AddDoubleNATHost("dna", netlab.EndpointIndependent, netlab.EndpointIndependent)
	must(t, err)
	b, _, err := n.lab.AddNATHost("dnb", netlab.EndpointIndependent)
	must(t, err)
	r := n.call(t, a, b, "dncaller", "dncallee")
	checkCall(t, r, "direct", "hole-punched")

	c, home, _, err := n.lab.AddDoubleNATHost("dnc", netlab.Symmetric, netlab.EndpointIndependent)
	must(t, err)
	servePortMapping(t, home, netlab.PortMapConfig{Dir: t.TempDir()})
	d, _, err := n.lab.AddNATHost("dnd", netlab.Symmetric)
	must(t, err)
	r = n.call(t, c, d, "dncaller2", "dncallee2", "--log-level", "info")
	checkCall(t, r, "udp-relay", "")
	if !strings.Contains(r.callerErr, "port mapping not offered") || !strings.Contains(r.callerErr, "100.64.") {
		t.Errorf("the caller's log does not show the useless mapping found and left out:\n%s", r.callerErr)
	}
}

// callWhen is natLab.call, the caller calling once the callee is online and
// ready says so (within 10 s).
func (n *natLab) callWhen(t *testing.T, ch, eh *netlab.Host, caller, callee string, ready func() bool) callResult {
	t.Helper()
	cenv, eenv := n.user(t, ch, caller), n.user(t, eh, callee)
	rec := filepath.Join(t.TempDir(), callee+".wav")
	listener := startIn(t, eh.NS, eenv, "listen", "--answer", "--record", rec, "--calls", "1", "--json")
	waitOnline(t, listener)
	for deadline := time.Now().Add(10 * time.Second); !ready() && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	ref := callSignal()
	out, errOut, code := runParleyIn(t, ch.NS, cenv, "call", callee, "--play", writeWAV(t, ref), "--json")
	if code != 0 {
		t.Fatalf("call: exit %d\n%s\n%s", code, out, errOut)
	}
	listener.wait(t, 15*time.Second)
	lout, _ := listener.output()
	corr, lag := audiotest.MatchEnvelope(ref, readWAV(t, rec), time.Second)
	r := callResult{callerPath: lastField(t, out, "path"), calleePath: lastField(t, lout, "path"), corr: corr, callerOut: out, calleeOut: lout, callerErr: errOut}
	t.Logf("%s → %s: caller path %q, callee path %q, correlation %.3f at lag %v", caller, callee, r.callerPath, r.calleePath, corr, lag)
	return r
}

// servePortMapping starts miniupnpd on router r for the test. Without
// miniupnpd the test skips, or fails under CI=true.
func servePortMapping(t *testing.T, r *netlab.Router, cfg netlab.PortMapConfig) *netlab.PortMapServer {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	pm, err := r.ServePortMapping(cfg)
	if errors.Is(err, netlab.ErrUnavailable) && os.Getenv("CI") != "true" {
		t.Skipf("skipping: %v", err)
	}
	must(t, err)
	t.Cleanup(func() { pm.Close() })
	return pm
}
