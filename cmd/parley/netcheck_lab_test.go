package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/client/netcheck"
	"github.com/parley/parley/internal/netlab"
)

// netcheckLab is a NAT lab whose supernode offers two relays on its host
// (its own on 3478 and a standalone one on 3479), so that a NAT's mapping
// behaviour shows: two STUN servers, one address, two ports.
func netcheckLab(t *testing.T) *natLab {
	t.Helper()
	lab := netlab.NewForTest(t)
	const secret = "a-secret-shared-by-relays-and-supernodes"
	sf := secretFile(t, secret)
	n := startNATLabOn(t, lab, 0, "--relay", "198.18.0.10:3479", "--turn-secret-file", sf)
	ip := n.srv.IP.String()
	if ip != "198.18.0.10" {
		t.Fatalf("the server host is %s, want 198.18.0.10", ip)
	}
	rl := startIn(t, n.srv.NS, nil, "relay", "--public-addr", ip, "--turn-udp", ip+":3479", "--turn-tcp", ip+":3479",
		"--turn-secret-file", sf, "--relay-allow-peer", "198.18.0.0/15")
	for i := 0; i < 100; i++ {
		if _, errOut := rl.output(); strings.Contains(errOut, "relay listening") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n
}

// netcheckIn runs `parley netcheck --json` as a new user on h and returns its report.
func (n *natLab) netcheckIn(t *testing.T, h *netlab.Host, user string, extra ...string) netcheck.Report {
	t.Helper()
	env := n.user(t, h, user)
	start := time.Now()
	out, errOut, code := runParleyIn(t, h.NS, env, append([]string{"netcheck", "--json"}, extra...)...)
	if code != 0 {
		t.Fatalf("netcheck on %s: exit %d\n%s\n%s", h.Name, code, out, errOut)
	}
	var doc struct {
		Event, Cmd string
		Report     *netcheck.Report
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &doc); err != nil || doc.Event != "result" || doc.Cmd != "netcheck" || doc.Report == nil {
		t.Fatalf("netcheck on %s: not one result document (%v):\n%s", h.Name, err, out)
	}
	t.Logf("netcheck on %s (%v): %s", h.Name, time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
	return *doc.Report
}

func boolp(p *bool) string {
	if p == nil {
		return "nil"
	}
	if *p {
		return "true"
	}
	return "false"
}

// TestNetcheckReportsTheLab: `parley netcheck --json` on each kind of host
// the lab builds reports what the lab built: a public host has no NAT; an
// endpoint-independent NAT keeps one outside port for both STUN servers, a
// symmetric one does not; a router that hairpins brings a host's packet to
// its own mapping back, one that doesn't, doesn't (for each of two users
// behind it; two users behind one router call each other direct at their
// LAN addresses); a firewall dropping UDP
// leaves no UDP; a router serving NAT-PMP/UPnP (miniupnpd) maps a usable
// port; a home router behind a carrier NAT maps a port on its own WAN
// address, which netcheck finds useless; and --no-port-mapping asks nothing.
func TestNetcheckReportsTheLab(t *testing.T) {
	n := netcheckLab(t)
	pub, err := n.lab.AddPublicHost("ncpub")
	must(t, err)
	eim, reim, err := n.lab.AddNATHost("nceim", netlab.EndpointIndependent)
	must(t, err)
	must(t, reim.Hairpin())
	eim2, err := reim.AddLANHost("nceim2")
	must(t, err)
	plain, rplain, err := n.lab.AddNATHost("ncplain", netlab.EndpointIndependent)
	must(t, err)
	plain2, err := rplain.AddLANHost("ncplain2")
	must(t, err)
	sym, rsym, err := n.lab.AddNATHost("ncsym", netlab.Symmetric)
	must(t, err)
	servePortMapping(t, rsym, netlab.PortMapConfig{Dir: t.TempDir()})
	upnp, rupnp, err := n.lab.AddNATHost("ncupnp", netlab.Symmetric)
	must(t, err)
	servePortMapping(t, rupnp, netlab.PortMapConfig{Dir: t.TempDir(), NoNATPMP: true})
	blocked, rblk, err := n.lab.AddNATHost("ncblk", netlab.EndpointIndependent)
	must(t, err)
	must(t, rblk.BlockUDP(443, 3478, 8080, 8081))
	cg, home, _, err := n.lab.AddDoubleNATHost("nccg", netlab.EndpointIndependent, netlab.EndpointIndependent)
	must(t, err)
	servePortMapping(t, home, netlab.PortMapConfig{Dir: t.TempDir()})
	cgsym, _, _, err := n.lab.AddDoubleNATHost("nccgs", netlab.Symmetric, netlab.EndpointIndependent)
	must(t, err)

	type want struct {
		udp               bool
		nat               string
		hairpin           string
		portMap, usable   bool
		portMapTried      bool
		protocol          string
		unusableBecauseOf string
	}
	cases := []struct {
		name  string
		host  *netlab.Host
		extra []string
		want  want
	}{
		{"public", pub, nil, want{udp: true, nat: netcheck.NATNone, hairpin: "nil", portMapTried: true}},
		{"eim-hairpin", eim, nil, want{udp: true, nat: netcheck.NATEndpointIndependent, hairpin: "true", portMapTried: true}},
		{"eim-hairpin-second-user", eim2, nil, want{udp: true, nat: netcheck.NATEndpointIndependent, hairpin: "true", portMapTried: true}},
		{"eim-no-hairpin", plain, nil, want{udp: true, nat: netcheck.NATEndpointIndependent, hairpin: "false", portMapTried: true}},
		{"eim-no-hairpin-second-user", plain2, nil, want{udp: true, nat: netcheck.NATEndpointIndependent, hairpin: "false", portMapTried: true}},
		{"symmetric-nat-pmp", sym, nil, want{udp: true, nat: netcheck.NATEndpointDependent, hairpin: "false", portMapTried: true, portMap: true, usable: true, protocol: "nat-pmp"}},
		{"symmetric-upnp-only", upnp, nil, want{udp: true, nat: netcheck.NATEndpointDependent, hairpin: "false", portMapTried: true, portMap: true, usable: true, protocol: "upnp"}},
		{"symmetric-no-port-mapping", sym, []string{"--no-port-mapping"}, want{udp: true, nat: netcheck.NATEndpointDependent, hairpin: "false"}},
		{"udp-blocked", blocked, nil, want{nat: netcheck.NATUnknown, hairpin: "nil", portMapTried: true}},
		{"double-nat-eim", cg, nil, want{udp: true, nat: netcheck.NATEndpointIndependent, hairpin: "false", portMapTried: true, portMap: true, protocol: "nat-pmp", unusableBecauseOf: "100.64."}},
		{"double-nat-symmetric-cgnat", cgsym, nil, want{udp: true, nat: netcheck.NATEndpointDependent, hairpin: "false", portMapTried: true}},
	}
	// Two users behind one router that does not hairpin reach each other at
	// their LAN addresses.
	t.Run("call-behind-one-router", func(t *testing.T) {
		r := n.call(t, plain, plain2, "ncsame1", "ncsame2")
		// direct_via is worked out once, at connect: when the pair's remote
		// end was first seen as peer-reflexive (its check came before its
		// trickled candidate), a LAN address shows as "hole-punched" (seen
		// once in CI). The path is what matters here; the label is a known
		// gap, noted in docs/nat.md.
		checkCall(t, r, "direct", "")
	})
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			r := n.netcheckIn(t, c.host, "nc"+string(rune('a'+i)), c.extra...)
			got := want{udp: r.UDP, nat: r.NAT, hairpin: boolp(r.Hairpinning), portMap: r.PortMapping.Available,
				usable: r.PortMapping.Usable, portMapTried: r.PortMapping.Tried, protocol: r.PortMapping.Protocol}
			if c.want.unusableBecauseOf != "" {
				if !strings.Contains(r.PortMapping.External, c.want.unusableBecauseOf) {
					t.Errorf("port mapping on %q, want one on the home router's WAN address (%s…)", r.PortMapping.External, c.want.unusableBecauseOf)
				}
				got.unusableBecauseOf = c.want.unusableBecauseOf
			}
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
			if r.IPv4 != c.want.udp || r.IPv6 {
				t.Errorf("ipv4 %v ipv6 %v, want ipv4 %v and no ipv6 (the lab is IPv4 only)", r.IPv4, r.IPv6, c.want.udp)
			}
			reached := 0
			for _, x := range r.Relays {
				if x.Reached {
					reached++
				}
			}
			if c.want.udp && reached != 2 || !c.want.udp && reached != 0 {
				t.Errorf("relays %+v: %d reached", r.Relays, reached)
			}
			if len(r.Supernodes) == 0 || !r.Supernodes[0].Reached {
				t.Errorf("supernodes %+v, want the one attached to, reached", r.Supernodes)
			}
		})
	}
}
