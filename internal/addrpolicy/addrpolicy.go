package addrpolicy

import "net/netip"

// PeerAllowed reports whether the relay may relay to ip. It is the relay's
// guard against being used to reach what sits behind it (the relay host, its
// LAN, a cloud metadata service) or to reflect traffic into special-purpose
// ranges.
//
// If ip (with any IPv6 zone dropped) lies in one of allow, ip is allowed: allow
// is the operator's escape hatch for labs (--relay-allow-peer CIDR). An IPv4
// address and its IPv4-mapped form (::ffff:a.b.c.d) are the same address here,
// whichever form the prefix is written in. Otherwise these are refused:
//
// IPv4: 0.0.0.0/8 (this network, including 0.0.0.0), 10.0.0.0/8, 100.64.0.0/10
// (CGNAT), 127.0.0.0/8, 169.254.0.0/16 (link-local, including the cloud metadata
// address 169.254.169.254), 172.16.0.0/12, 192.0.0.0/24 (IETF protocol
// assignments), 192.0.2.0/24, 198.51.100.0/24 and 203.0.113.0/24
// (documentation), 192.88.99.0/24 (6to4 relay anycast), 192.168.0.0/16,
// 198.18.0.0/15 (benchmarking), 224.0.0.0/4 (multicast) and 240.0.0.0/4
// (reserved, including the broadcast address 255.255.255.255).
//
// IPv6: an IPv4-mapped address (::ffff:0:0/96) is judged by the IPv4 address
// inside it, and so is a NAT64 address of the well-known prefix 64:ff9b::/96;
// every IPv4-compatible address (::/96, which includes :: and ::1) is refused, as
// is everything outside global unicast 2000::/3 (so fc00::/7 unique-local,
// fe80::/10 link-local, fec0::/10, ff00::/8 multicast, 100::/64 discard,
// 64:ff9b:1::/48 local NAT64, ...). Inside 2000::/3 these are refused:
// 2001::/23 (IETF protocol assignments: Teredo 2001::/32, benchmarking
// 2001:2::/48, ORCHID), 2001:db8::/32 and 3fff::/20 (documentation) and
// 2002::/16 (6to4, which wraps an arbitrary IPv4 address).
//
// The zero netip.Addr is refused.
func PeerAllowed(ip netip.Addr, allow []netip.Prefix) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.WithZone("")
	un := ip.Unmap()
	mapped := netip.AddrFrom16(un.As16()) // ::ffff:a.b.c.d for IPv4, ip itself for IPv6
	for _, p := range allow {
		if p.Contains(un) || p.Contains(mapped) {
			return true
		}
	}
	if un.Is4() {
		return !denied4(un.As4())
	}
	return !denied6(ip.As16())
}

// denied4 reports whether an IPv4 address is in the IPv4 deny list.
func denied4(a [4]byte) bool {
	switch {
	case a[0] == 0, // 0.0.0.0/8
		a[0] == 10,                               // 10.0.0.0/8
		a[0] == 100 && a[1]&0xc0 == 64,           // 100.64.0.0/10
		a[0] == 127,                              // 127.0.0.0/8
		a[0] == 169 && a[1] == 254,               // 169.254.0.0/16
		a[0] == 172 && a[1]&0xf0 == 16,           // 172.16.0.0/12
		a[0] == 192 && a[1] == 0 && a[2] == 0,    // 192.0.0.0/24
		a[0] == 192 && a[1] == 0 && a[2] == 2,    // 192.0.2.0/24
		a[0] == 192 && a[1] == 88 && a[2] == 99,  // 192.88.99.0/24
		a[0] == 192 && a[1] == 168,               // 192.168.0.0/16
		a[0] == 198 && a[1]&0xfe == 18,           // 198.18.0.0/15
		a[0] == 198 && a[1] == 51 && a[2] == 100, // 198.51.100.0/24
		a[0] == 203 && a[1] == 0 && a[2] == 113,  // 203.0.113.0/24
		a[0] >= 224:                              // 224.0.0.0/4 multicast, 240.0.0.0/4 reserved and broadcast
		return true
	}
	return false
}

// denied6 reports whether an IPv6 address (not IPv4-mapped) is refused.
func denied6(a [16]byte) bool {
	var zero [12]byte
	switch {
	case [12]byte(a[:12]) == zero: // ::/96 IPv4-compatible, ::, ::1
		return true
	case a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && [8]byte(a[4:12]) == [8]byte{}:
		// 64:ff9b::/96 NAT64: judged by the IPv4 address it wraps.
		return denied4([4]byte(a[12:]))
	case a[0]&0xe0 != 0x20: // outside 2000::/3 global unicast
		return true
	case a[0] == 0x20 && a[1] == 0x01 && a[2]&0xfe == 0x00: // 2001::/23
		return true
	case a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8: // 2001:db8::/32
		return true
	case a[0] == 0x20 && a[1] == 0x02: // 2002::/16 6to4
		return true
	case a[0] == 0x3f && a[1] == 0xff && a[2]&0xf0 == 0x00: // 3fff::/20
		return true
	}
	return false
}
