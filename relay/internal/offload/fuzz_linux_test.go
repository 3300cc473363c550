//go:build linux

package offload

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
)

// The channel FuzzForward installs, and the listener.
var (
	fzListener = netip.MustParseAddrPort("127.0.0.1:3478")
	fzChannel  = Channel{Client: netip.MustParseAddrPort("127.0.0.9:5000"), Number: 0x4001,
		Relayed: netip.MustParseAddrPort("127.0.0.1:40000"), Peer: netip.MustParseAddrPort("127.0.0.2:6000")}
)

// udp4 is an IPv4 header (checksum filled in) and a UDP header (no
// checksum) for payload, from src to dst.
func udp4(src, dst netip.AddrPort, payload []byte) []byte {
	b := make([]byte, 28, 28+len(payload))
	b[0], b[8], b[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(b[2:], uint16(28+len(payload)))
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[10:], ipChecksum(b[:20]))
	binary.BigEndian.PutUint16(b[20:], src.Port())
	binary.BigEndian.PutUint16(b[22:], dst.Port())
	binary.BigEndian.PutUint16(b[24:], uint16(8+len(payload)))
	return append(b, payload...)
}

func ipChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// cdMsg is a ChannelData message on num carrying payload, padded by pad
// zero bytes.
func cdMsg(num uint16, payload []byte, pad int) []byte {
	b := binary.BigEndian.AppendUint16(nil, num)
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	return append(append(b, payload...), make([]byte, pad)...)
}

// runForward opens the offload on lo with fzChannel and returns a func
// running the program on an IPv4 packet: its verdict and the packet after.
func runForward(t testing.TB) func(pkt []byte) (verdict int32, out []byte, err error) {
	o := openOnLoopback(t, fzListener)
	if err := o.Add(fzChannel); err != nil {
		t.Fatal(err)
	}
	prog := o.coll.Programs["forward"]
	eth := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00}
	return func(pkt []byte) (int32, []byte, error) {
		in := append(append([]byte(nil), eth...), pkt...)
		opts := &ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+64)}
		ret, err := prog.Run(opts)
		if err != nil {
			return 0, nil, err
		}
		return int32(ret), opts.DataOut[len(eth):], nil
	}
}

// TC verdicts.
const (
	actNext = -1 // TC_ACT_UNSPEC: on to the relay's sockets, untouched
	actOK   = 0  // forwarded (rewritten)
	actShot = 2  // dropped
)

// TestForwardVerdicts: what the program does with each kind of packet.
func TestForwardVerdicts(t *testing.T) {
	run := runForward(t)
	stranger := netip.MustParseAddrPort("127.0.0.3:6000")
	for _, tc := range []struct {
		name string
		pkt  []byte
		want int32
		out  []byte // the packet forwarded, when want is actOK
	}{
		{"client's ChannelData", udp4(fzChannel.Client, fzListener, cdMsg(0x4001, []byte("hello"), 0)), actOK,
			udp4(fzChannel.Relayed, fzChannel.Peer, []byte("hello"))},
		{"padded", udp4(fzChannel.Client, fzListener, cdMsg(0x4001, []byte("hello"), 3)), actOK,
			udp4(fzChannel.Relayed, fzChannel.Peer, []byte("hello"))},
		{"more than padding after it", udp4(fzChannel.Client, fzListener, cdMsg(0x4001, []byte("hello"), 4)), actNext, nil},
		{"longer than the datagram", udp4(fzChannel.Client, fzListener, cdMsg(0x4001, []byte("hello"), 0)[:8]), actNext, nil},
		{"another channel", udp4(fzChannel.Client, fzListener, cdMsg(0x4002, []byte("hello"), 0)), actNext, nil},
		{"a STUN message", udp4(fzChannel.Client, fzListener, append([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42}, make([]byte, 12)...)), actNext, nil},
		{"peer's datagram", udp4(fzChannel.Peer, fzChannel.Relayed, []byte("world")), actOK,
			udp4(fzListener, fzChannel.Client, cdMsg(0x4001, []byte("world"), 0))},
		{"a stranger to the relayed address", udp4(stranger, fzChannel.Relayed, []byte("world")), actNext, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, out, err := run(tc.pkt)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("verdict %d, want %d", got, tc.want)
			}
			if tc.want == actOK {
				// The program sets TTL 64 only on a routed interface; on lo the
				// TTL is the sender's (64 here too).
				if !bytes.Equal(out, tc.out) {
					t.Errorf("forwarded\n %x\nwant\n %x", out, tc.out)
				}
			}
		})
	}
}

// FuzzForward runs the program (BPF_PROG_RUN) on arbitrary IPv4 packets
// with one channel installed. Whatever it is given, it leaves the packet
// as it was (TC "next": the relay's sockets get it), drops it, or hands on
// a well-formed IPv4/UDP datagram (lengths agreeing, header checksum
// right when it came right) that goes as the channel says: from the relayed address to the
// peer, or from the listener to the client.
func FuzzForward(f *testing.F) {
	f.Add(udp4(fzChannel.Client, fzListener, cdMsg(0x4001, []byte("hello"), 0)))
	f.Add(udp4(fzChannel.Client, fzListener, cdMsg(0x4001, []byte("hello"), 3)))
	f.Add(udp4(fzChannel.Client, fzListener, cdMsg(0x4001, []byte("hello"), 4)))
	f.Add(udp4(fzChannel.Client, fzListener, cdMsg(0x4002, []byte("hello"), 0)))
	f.Add(udp4(fzChannel.Peer, fzChannel.Relayed, []byte("world")))
	f.Add(udp4(netip.MustParseAddrPort("127.0.0.3:6000"), fzChannel.Relayed, []byte("stranger")))
	f.Add([]byte{0x45, 0, 0})
	run := runForward(f)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		verdict, ip, err := run(pkt)
		if err != nil {
			t.Skip() // the kernel refuses frames it cannot make an skb of (too short)
		}
		switch verdict {
		case actNext:
			if !bytes.Equal(ip, pkt) {
				t.Fatalf("passed on but changed:\n in %x\nout %x", pkt, ip)
			}
			return
		case actShot:
			return
		case actOK:
		default:
			t.Fatalf("verdict %d", verdict)
		}
		if len(ip) < 28 || ip[0] != 0x45 || ip[9] != 17 {
			t.Fatalf("forwarded something not IPv4/UDP: %x", ip)
		}
		if got := int(binary.BigEndian.Uint16(ip[2:])); got != len(ip) {
			t.Fatalf("IP total length %d, packet %d bytes", got, len(ip))
		}
		if got := int(binary.BigEndian.Uint16(ip[24:])); got != len(ip)-20 {
			t.Fatalf("UDP length %d, datagram %d bytes", got, len(ip)-20)
		}
		// The program updates the header checksum for what it changes, so a
		// header that came right goes right (one that came wrong stays wrong,
		// and the next host drops it, as the stack would have).
		if ipChecksum(pkt[:20]) == 0 && ipChecksum(ip[:20]) != 0 {
			t.Fatalf("bad IP header checksum: %x", ip[:20])
		}
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), binary.BigEndian.Uint16(ip[20:]))
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), binary.BigEndian.Uint16(ip[22:]))
		switch {
		case src == fzChannel.Relayed && dst == fzChannel.Peer:
		case src == fzListener && dst == fzChannel.Client:
			if len(ip) < 32 || binary.BigEndian.Uint16(ip[28:]) != fzChannel.Number ||
				int(binary.BigEndian.Uint16(ip[30:])) != len(ip)-32 {
				t.Fatalf("to the client without a ChannelData header of its length: %x", ip[28:])
			}
		default:
			t.Fatalf("forwarded from %v to %v", src, dst)
		}
	})
}
