package netcheck

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestClassify(t *testing.T) {
	local := []netip.Addr{netip.MustParseAddr("10.1.0.2"), netip.MustParseAddr("198.18.0.11")}
	for _, c := range []struct {
		name   string
		mapped []netip.AddrPort
		port   uint16
		want   string
		varies string
	}{
		{"no answer", nil, 5000, NATUnknown, "nil"},
		{"own address", []netip.AddrPort{ap("198.18.0.11:5000")}, 5000, NATNone, "false"},
		{"one server only", []netip.AddrPort{ap("198.18.0.12:6000")}, 5000, NATUnknown, "nil"},
		{"same mapping for both", []netip.AddrPort{ap("198.18.0.12:6000"), ap("198.18.0.12:6000")}, 5000, NATEndpointIndependent, "false"},
		{"port kept through a NAT", []netip.AddrPort{ap("198.18.0.12:5000"), ap("198.18.0.12:5000")}, 5000, NATEndpointIndependent, "false"},
		{"new port per destination", []netip.AddrPort{ap("198.18.0.12:6000"), ap("198.18.0.12:6001")}, 5000, NATEndpointDependent, "true"},
		{"new address per destination", []netip.AddrPort{ap("198.18.0.12:6000"), ap("198.18.0.13:6000")}, 5000, NATEndpointDependent, "true"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, varies := classify(c.mapped, c.port, local)
			v := "nil"
			if varies != nil {
				v = map[bool]string{true: "true", false: "false"}[*varies]
			}
			if got != c.want || v != c.varies {
				t.Errorf("got %s (varies %s), want %s (varies %s)", got, v, c.want, c.varies)
			}
		})
	}
}

// stunServer answers binding requests on loopback with the address it saw,
// or, with port set, with that port (a NAT's view).
func stunServer(t *testing.T, port int) string {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { c.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				return
			}
			m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if m.Decode() != nil {
				continue
			}
			p := from.Port
			if port != 0 {
				p = port
			}
			resp, _ := stun.Build(m, stun.BindingSuccess, &stun.XORMappedAddress{IP: from.IP, Port: p}, stun.Fingerprint)
			c.WriteToUDP(resp.Raw, from)
		}
	}()
	return c.LocalAddr().String()
}

// TestRun probes STUN servers on loopback: two that tell the truth (no NAT:
// the address seen is this host's own), one that is silent (unreachable).
func TestRun(t *testing.T) {
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	a, b := stunServer(t, 0), stunServer(t, 0)
	start := time.Now()
	r, err := Run(context.Background(), Config{STUN: []string{a, b, silent.LocalAddr().String(), "not an address"}, Timeout: 600 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !r.UDP || !r.IPv4 || r.NAT != NATNone || r.Hairpinning != nil || r.PortMapping.Tried {
		t.Errorf("report %+v, want UDP over IPv4, no NAT, no hairpin test, no port mapping asked", r)
	}
	reached := 0
	for _, x := range r.Relays {
		if x.Reached {
			reached++
		}
	}
	if len(r.Relays) != 3 || reached != 2 {
		t.Errorf("relays %+v, want 3 with 2 reached", r.Relays)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v with a 600 ms probe timeout", d)
	}
	for _, want := range []string{"UDP: yes", "NAT: none", "Port mapping: not asked", "unreachable"} {
		if !strings.Contains(r.Text(), want) {
			t.Errorf("text lacks %q:\n%s", want, r.Text())
		}
	}
}

// TestRunNATs: servers that report different ports, as a symmetric NAT's
// mappings show, make an endpoint-dependent NAT; and the hairpin test sends
// to the mapped address (here the server's fake port, where nothing listens:
// no hairpin).
func TestRunNATs(t *testing.T) {
	a, b := stunServer(t, 40001), stunServer(t, 40002)
	r, err := Run(context.Background(), Config{STUN: []string{a, b}, Timeout: time.Second, HairpinWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.NAT != NATEndpointDependent || r.MappingVariesByDest == nil || !*r.MappingVariesByDest {
		t.Errorf("nat %s, varies %v: want endpoint-dependent", r.NAT, r.MappingVariesByDest)
	}
	if r.Hairpinning == nil || *r.Hairpinning {
		t.Errorf("hairpinning %v, want false", r.Hairpinning)
	}
}

// TestRunNoServers: nothing to probe is no UDP, not an error.
func TestRunNoServers(t *testing.T) {
	r, err := Run(context.Background(), Config{})
	if err != nil || r.UDP || r.NAT != NATUnknown {
		t.Errorf("got %+v, %v", r, err)
	}
	if !strings.Contains(r.Text(), "UDP: no") {
		t.Errorf("text:\n%s", r.Text())
	}
}

func TestParseSTUN(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int
		ok   bool
	}{
		{"", 0, true},
		{"198.18.0.10:3479", 1, true},
		{"198.18.0.10:3479,[fd00:198:18::10]:3479,stun.example.org:3478", 3, true},
		{"198.18.0.10", 0, false},
		{"198.18.0.10:0", 0, false},
		{"198.18.0.10:3479,", 0, false},
		{"fd00::1:3478", 0, false},
	} {
		got, err := ParseSTUN(c.in)
		if (err == nil) != c.ok || len(got) != c.want {
			t.Errorf("ParseSTUN(%q) = %q, %v; want %d servers, ok %v", c.in, got, err, c.want, c.ok)
		}
		if err != nil && !errors.Is(err, ErrBadServer) {
			t.Errorf("ParseSTUN(%q): %v is not ErrBadServer", c.in, err)
		}
	}
}
