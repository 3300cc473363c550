package addrpolicy

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

func TestPeerAllowed(t *testing.T) {
	lab := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tests := []struct {
		ip    string
		allow []netip.Prefix
		want  bool
	}{
		// IPv4 refused.
		{"0.0.0.0", nil, false},
		{"0.1.2.3", nil, false},
		{"10.1.2.3", nil, false},
		{"100.64.0.1", nil, false},
		{"100.127.255.255", nil, false},
		{"127.0.0.1", nil, false},
		{"127.255.255.254", nil, false},
		{"169.254.169.254", nil, false},
		{"169.254.0.1", nil, false},
		{"172.16.0.1", nil, false},
		{"172.31.255.255", nil, false},
		{"192.0.0.8", nil, false},
		{"192.0.2.1", nil, false},
		{"192.88.99.1", nil, false},
		{"192.168.1.1", nil, false},
		{"198.18.0.1", nil, false},
		{"198.19.255.255", nil, false},
		{"198.51.100.7", nil, false},
		{"203.0.113.9", nil, false},
		{"224.0.0.1", nil, false},
		{"239.255.255.250", nil, false},
		{"240.0.0.1", nil, false},
		{"255.255.255.255", nil, false},
		// IPv4 allowed, including the neighbours of refused ranges.
		{"8.8.8.8", nil, true},
		{"1.1.1.1", nil, true},
		{"9.255.255.255", nil, true},
		{"11.0.0.1", nil, true},
		{"100.63.255.255", nil, true},
		{"100.128.0.0", nil, true},
		{"126.255.255.255", nil, true},
		{"128.0.0.1", nil, true},
		{"169.253.255.255", nil, true},
		{"169.255.0.1", nil, true},
		{"172.15.255.255", nil, true},
		{"172.32.0.0", nil, true},
		{"192.0.1.1", nil, true},
		{"192.167.255.255", nil, true},
		{"198.17.255.255", nil, true},
		{"198.20.0.0", nil, true},
		{"223.255.255.254", nil, true},
		// IPv4-mapped IPv6: judged by the IPv4 inside.
		{"::ffff:127.0.0.1", nil, false},
		{"::ffff:0.0.0.0", nil, false},
		{"::ffff:10.1.2.3", nil, false},
		{"::ffff:169.254.169.254", nil, false},
		{"::ffff:192.168.0.1", nil, false},
		{"::ffff:8.8.8.8", nil, true},
		// IPv4-compatible (deprecated): all refused.
		{"::", nil, false},
		{"::1", nil, false},
		{"::127.0.0.1", nil, false},
		{"::10.0.0.1", nil, false},
		{"::8.8.8.8", nil, false},
		// IPv4-translated (SIIT) ::ffff:0:a.b.c.d: outside 2000::/3.
		{"::ffff:0:7f00:1", nil, false},
		// NAT64 well-known prefix: judged by the IPv4 inside.
		{"64:ff9b::7f00:1", nil, false},
		{"64:ff9b::a9fe:a9fe", nil, false},
		{"64:ff9b::a01:203", nil, false},
		{"64:ff9b::808:808", nil, true},
		{"64:ff9b:1::808:808", nil, false}, // local-use NAT64
		// IPv6 special ranges.
		{"fc00::1", nil, false},
		{"fd12:3456::1", nil, false},
		{"fe80::1", nil, false},
		{"fe80::1%eth0", nil, false},
		{"fec0::1", nil, false},
		{"ff02::1", nil, false},
		{"ff0e::1", nil, false},
		{"100::1", nil, false},
		{"2002:7f00:1::1", nil, false},  // 6to4 of 127.0.0.1
		{"2002:a01:203::1", nil, false}, // 6to4 of 10.1.2.3
		{"2002:808:808::1", nil, false}, // 6to4 of a public address: refused too
		{"2001::1", nil, false},         // Teredo
		{"2001:0:4136:e378::1", nil, false},
		{"2001:2::1", nil, false},   // benchmarking
		{"2001:10::1", nil, false},  // ORCHID
		{"2001:db8::1", nil, false}, // documentation
		{"3fff::1", nil, false},     // documentation (RFC 9637)
		{"5f00::1", nil, false},     // outside 2000::/3
		{"4000::1", nil, false},
		{"1fff:ffff::1", nil, false},
		// IPv6 allowed.
		{"2001:4860:4860::8888", nil, true},
		{"2606:4700:4700::1111", nil, true},
		{"2a00:1450:4001::1", nil, true},
		{"2001:200::1", nil, true}, // just past 2001::/23
		{"2003::1", nil, true},
		{"3ffe::1", nil, true},
		{"3fff:1000::1", nil, true}, // just past 3fff::/20
		// The allow list.
		{"127.0.0.1", lab, true},
		{"127.9.9.9", lab, true},
		{"::ffff:127.0.0.1", lab, true},
		{"10.1.2.3", lab, false},
		{"169.254.169.254", lab, false},
		{"0.0.0.0", lab, false},
		{"2002:7f00:1::1", lab, false}, // 6to4 is not unwrapped for the allow list
		{"64:ff9b::7f00:1", lab, false},
		{"10.1.2.3", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, true},
		{"198.18.0.5", []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}, true},
		{"fd00::1", []netip.Prefix{netip.MustParsePrefix("fd00::/8")}, true},
		{"fe80::1%eth0", []netip.Prefix{netip.MustParsePrefix("fe80::/10")}, true},
		{"127.0.0.1", []netip.Prefix{netip.MustParsePrefix("::ffff:127.0.0.0/104")}, true},
		{"::1", []netip.Prefix{netip.MustParsePrefix("::1/128")}, true},
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.ip)
		if got := PeerAllowed(ip, tt.allow); got != tt.want {
			t.Errorf("PeerAllowed(%s, %v) = %v, want %v", tt.ip, tt.allow, got, tt.want)
		}
	}
	if PeerAllowed(netip.Addr{}, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}) {
		t.Error("PeerAllowed(zero Addr) = true, want false")
	}
}

// TestPeerAllowedMatchesPrefixes checks the byte-level IPv4 deny list against
// the ranges written as prefixes, on every range boundary and on random
// addresses, and that the mapped and NAT64 forms always agree with the IPv4.
func TestPeerAllowedMatchesPrefixes(t *testing.T) {
	var deny []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
		"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
	} {
		deny = append(deny, netip.MustParsePrefix(s))
	}
	want := func(a netip.Addr) bool {
		for _, p := range deny {
			if p.Contains(a) {
				return false
			}
		}
		return true
	}
	var addrs []netip.Addr
	for _, p := range deny {
		first := p.Addr()
		addrs = append(addrs, first, first.Prev(), first.Next())
		last := first
		for i := 0; i < 1<<(32-p.Bits())-1 && i < 1<<20; i++ {
			last = last.Next()
		}
		if p.Bits() >= 12 {
			addrs = append(addrs, last, last.Next())
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		var b [4]byte
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		addrs = append(addrs, netip.AddrFrom4(b))
	}
	for _, a := range addrs {
		if !a.IsValid() {
			continue
		}
		w := want(a)
		if got := PeerAllowed(a, nil); got != w {
			t.Fatalf("PeerAllowed(%v) = %v, want %v", a, got, w)
		}
		mapped := netip.AddrFrom16(a.As16())
		if got := PeerAllowed(mapped, nil); got != w {
			t.Fatalf("PeerAllowed(%v) = %v, want %v", mapped, got, w)
		}
		v4 := a.As4()
		nat64 := netip.AddrFrom16([16]byte{0, 0x64, 0xff, 0x9b, 12: v4[0], 13: v4[1], 14: v4[2], 15: v4[3]})
		if got := PeerAllowed(nat64, nil); got != w {
			t.Fatalf("PeerAllowed(%v) = %v, want %v", nat64, got, w)
		}
		compat := netip.AddrFrom16([16]byte{12: v4[0], 13: v4[1], 14: v4[2], 15: v4[3]})
		if PeerAllowed(compat, nil) {
			t.Fatalf("PeerAllowed(%v) = true, want false", compat)
		}
	}
}
