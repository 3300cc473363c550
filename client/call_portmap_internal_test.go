package client

import (
	"net/netip"
	"testing"

	"github.com/pion/webrtc/v4"
)

// TestMappedCandidateRoundTrip: the candidate offered for a mapping parses
// as a server-reflexive candidate at the mapped address, and the peer
// recognizes it as a mapping.
func TestMappedCandidateRoundTrip(t *testing.T) {
	s := mappedCandidate(netip.MustParseAddrPort("198.18.0.11:47623"), netip.MustParseAddr("10.1.0.2"), 47623)
	want := "candidate:pmap47623 1 udp 1694498815 198.18.0.11 47623 typ srflx raddr 10.1.0.2 rport 47623"
	if s != want {
		t.Fatalf("got  %s\nwant %s", s, want)
	}
	c := &Call{pmap: newCallPortMap()}
	c.notePeerMapped(webrtc.ICECandidateInit{Candidate: s})
	if !c.pmap.peerMapped[netip.MustParseAddrPort("198.18.0.11:47623")] {
		t.Errorf("the peer's mapping was not recognized")
	}
}

func TestNotePeerMapped(t *testing.T) {
	for _, c := range []struct {
		name, cand string
		want       bool
	}{
		{"a mapping", "candidate:pmap1 1 udp 1694498815 198.18.0.11 4000 typ srflx raddr 10.1.0.2 rport 4000", true},
		{"an ordinary srflx", "candidate:1234 1 udp 1694498815 198.18.0.11 4000 typ srflx raddr 10.1.0.2 rport 4000", false},
		{"too short", "candidate:pmap1 1 udp", false},
		{"bad address", "candidate:pmap1 1 udp 1 nonsense 4000 typ srflx", false},
		{"empty", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			call := &Call{pmap: newCallPortMap()}
			call.notePeerMapped(webrtc.ICECandidateInit{Candidate: c.cand})
			if got := len(call.pmap.peerMapped) == 1; got != c.want {
				t.Errorf("recognized %v, want %v", got, c.want)
			}
		})
	}
}

// FuzzNotePeerMapped: a peer's candidate string is untrusted; reading it
// never panics and records at most one address.
func FuzzNotePeerMapped(f *testing.F) {
	f.Add("candidate:pmap1 1 udp 1694498815 198.18.0.11 4000 typ srflx raddr 10.1.0.2 rport 4000")
	f.Add("candidate:pmap 1 udp 1 [::1] 1 typ host")
	f.Fuzz(func(t *testing.T, s string) {
		call := &Call{pmap: newCallPortMap()}
		call.notePeerMapped(webrtc.ICECandidateInit{Candidate: s})
		if len(call.pmap.peerMapped) > 1 {
			t.Fatalf("%d addresses from one candidate", len(call.pmap.peerMapped))
		}
	})
}

func TestDirectVia(t *testing.T) {
	cand := func(typ webrtc.ICECandidateType, ip string, port int32) webrtc.ICECandidateStats {
		return webrtc.ICECandidateStats{CandidateType: typ, IP: ip, Port: port}
	}
	host, srflx, prflx, relay := webrtc.ICECandidateTypeHost, webrtc.ICECandidateTypeSrflx, webrtc.ICECandidateTypePrflx, webrtc.ICECandidateTypeRelay
	for _, c := range []struct {
		name          string
		local, remote webrtc.ICECandidateStats
		want          string
	}{
		{"two public hosts", cand(host, "198.18.0.11", 4000), cand(host, "198.18.0.12", 5000), ViaHost},
		{"a punched hole", cand(srflx, "198.18.0.11", 4000), cand(prflx, "198.18.0.12", 5000), ViaHolePunched},
		{"through the peer's mapping", cand(host, "10.2.0.2", 4000), cand(srflx, "198.18.0.11", 47623), ViaPortMapped},
		{"through my mapping", cand(host, "10.1.0.2", 47623), cand(prflx, "198.18.0.12", 6000), ViaPortMapped},
		{"IPv6", cand(host, "fd00::2", 4000), cand(prflx, "fd00:1::2", 5000), ViaIPv6},
		{"relayed", cand(relay, "198.18.0.10", 50000), cand(host, "198.18.0.12", 5000), ""},
		{"the peer's host, seen before its candidate", cand(host, "10.1.0.2", 4000), cand(prflx, "10.1.1.2", 5000), ViaHost},
	} {
		t.Run(c.name, func(t *testing.T) {
			call := &Call{pmap: newCallPortMap()}
			call.pmap.peerMapped[netip.MustParseAddrPort("198.18.0.11:47623")] = true
			call.pmap.ports[47623] = true
			peerHosts := map[netip.AddrPort]bool{netip.MustParseAddrPort("10.1.1.2:5000"): true}
			if got := call.directVia(c.local, c.remote, peerHosts); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestOnLoopback(t *testing.T) {
	for _, c := range []struct {
		url  string
		want bool
	}{
		{"ws://127.0.0.1:8081/v1/ws", true},
		{"ws://[::1]:8081/v1/ws", true},
		{"ws://localhost:8081/v1/ws", true},
		{"ws://198.18.0.10:8081/v1/ws", false},
		{"wss://sn.example.org/v1/ws", false},
		{"::not a url", false},
	} {
		if got := onLoopback(c.url); got != c.want {
			t.Errorf("onLoopback(%q) = %v, want %v", c.url, got, c.want)
		}
	}
}
