package cluster

import (
	"flag"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/relay"
	"github.com/parley/parley/wire/turncred"
	"github.com/pion/turn/v5"
)

func TestRelayTuningFlags(t *testing.T) {
	tests := []struct {
		args []string
		want RelayTuning
	}{
		{nil, RelayTuning{}},
		{[]string{"--relay-max-allocations", "-1", "--relay-user-bandwidth", "1048576"},
			RelayTuning{MaxAllocationsPerUser: -1, UserBandwidth: 1 << 20}},
		{[]string{"--relay-socket-buffer", "4194304", "--relay-alloc-socket-buffer", "-1"},
			RelayTuning{SocketBuffer: 4 << 20, RelaySocketBuffer: -1}},
		{[]string{"--relay-second-ip", "2001:db8::5"},
			RelayTuning{SecondIP: netip.MustParseAddr("2001:db8::5")}},
	}
	for _, tt := range tests {
		fs := flag.NewFlagSet("relay", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		var got RelayTuning
		got.RegisterFlags(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatalf("%v: %v", tt.args, err)
		}
		if got != tt.want {
			t.Errorf("%v: got %+v, want %+v", tt.args, got, tt.want)
		}
	}
}

// TestRelaySecondIP: a relay started with RelayTuning.SecondIP allocates in
// both families, and the supernode's ICE servers offer it at both
// addresses.
func TestRelaySecondIP(t *testing.T) {
	secret := []byte("0123456789abcdef-cluster-relay")
	r, err := StartRelay(RelayConfig{
		UDP: "127.0.0.1:0", TCP: Off, IP: net.IPv4(127, 0, 0, 1), Secret: secret,
		Tuning: RelayTuning{SecondIP: netip.IPv6Loopback()},
	}, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	udp, _, _ := r.Addrs()
	user, pass := turncred.Credentials(secret, "alice", time.Minute, time.Now())
	c, err := turn.NewClient(&turn.ClientConfig{TURNServerAddr: udp.String(), Conn: conn, Username: user, Password: pass,
		Realm: relay.DefaultRealm, RequestedAddressFamily: turn.RequestedAddressFamilyIPv6})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	rc, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate IPv6: %v", err)
	}
	defer rc.Close()
	if got := rc.LocalAddr().(*net.UDPAddr).IP; !got.Equal(net.IPv6loopback) {
		t.Errorf("relayed address %v, want ::1", rc.LocalAddr())
	}

	// Offered at both addresses when UDP and TCP share a port.
	var r2 *relay.Server
	for range 10 { // a free port for both UDP and TCP
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hp := pc.LocalAddr().String()
		pc.Close()
		if r2, err = StartRelay(RelayConfig{UDP: hp, TCP: hp, IP: net.IPv4(127, 0, 0, 1), Secret: secret,
			Tuning: RelayTuning{SecondIP: netip.IPv6Loopback()}}, "127.0.0.1"); err == nil {
			break
		}
	}
	if r2 == nil {
		t.Fatal("no port free for both UDP and TCP")
	}
	defer r2.Close()
	var urls []string
	for _, s := range ICEServers("127.0.0.1", r2, netip.IPv6Loopback(), nil, secret)("alice") {
		urls = append(urls, s.URLs...)
	}
	got := strings.Join(urls, " ")
	u2, _, _ := r2.Addrs()
	_, port, _ := net.SplitHostPort(u2.String())
	for _, want := range []string{"turn:127.0.0.1:" + port + "?transport=udp", "turn:[::1]:" + port + "?transport=udp", "turn:[::1]:" + port + "?transport=tcp"} {
		if !strings.Contains(got, want) {
			t.Errorf("ICE servers %s: no %s", got, want)
		}
	}
}
