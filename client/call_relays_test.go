package client

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/wire/snapi"
	"github.com/pion/stun/v4"
)

func TestChooseRelay(t *testing.T) {
	tests := []struct {
		name         string
		mine, theirs relayRTTs
		want         string
	}{
		{"nothing measured", nil, nil, ""},
		{"only mine", relayRTTs{"a:1": 30, "b:1": 10}, nil, "b:1"},
		{"lowest sum wins over my nearest", relayRTTs{"a:1": 10, "b:1": 20}, relayRTTs{"a:1": 100, "b:1": 20}, "b:1"},
		{"only shared relays count", relayRTTs{"a:1": 5, "b:1": 50}, relayRTTs{"b:1": 50, "c:1": 1}, "b:1"},
		{"ties break by name", relayRTTs{"b:1": 10, "a:1": 10}, relayRTTs{"a:1": 10, "b:1": 10}, "a:1"},
		{"nothing shared: my nearest", relayRTTs{"a:1": 40, "b:1": 20}, relayRTTs{"c:1": 1}, "b:1"},
	}
	for _, tt := range tests {
		if got := chooseRelay(tt.mine, tt.theirs); got != tt.want {
			t.Errorf("%s: chooseRelay = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestOnlyRelay(t *testing.T) {
	servers := []snapi.ICEServer{
		{URLs: []string{"stun:198.51.100.1:3478"}},
		{URLs: []string{"turn:198.51.100.1:3478?transport=udp", "turn:198.51.100.1:3478?transport=tcp"}, Username: "u", Credential: "p"},
		{URLs: []string{"stun:203.0.113.9:3478"}},
		{URLs: []string{"turn:203.0.113.9:3478?transport=udp"}, Username: "u", Credential: "p"},
	}
	got := onlyRelay(servers, "203.0.113.9:3478")
	var urls []string
	for _, s := range got {
		urls = append(urls, s.URLs...)
	}
	want := "stun:198.51.100.1:3478 stun:203.0.113.9:3478 turn:203.0.113.9:3478?transport=udp"
	if strings.Join(urls, " ") != want {
		t.Errorf("onlyRelay = %q, want %q", strings.Join(urls, " "), want)
	}
	if got := onlyRelay(servers, ""); len(got) != len(servers) {
		t.Errorf("no choice must keep every server, got %d", len(got))
	}
	if got := onlyRelay(servers, "192.0.2.1:3478"); len(got) != len(servers) {
		t.Errorf("an unknown choice must keep every server, got %d", len(got))
	}
}

// TestMeasureRelays measures a live STUN responder and leaves out a dead one.
func TestMeasureRelays(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var req stun.Message
			req.Raw = append([]byte(nil), buf[:n]...)
			if req.Decode() != nil {
				continue
			}
			resp, _ := stun.Build(&req, stun.BindingSuccess, &stun.XORMappedAddress{IP: net.IPv4(127, 0, 0, 1), Port: 1})
			pc.WriteTo(resp.Raw, from)
		}
	}()
	dead, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	deadAddr := dead.LocalAddr().String()
	dead.Close()
	live := pc.LocalAddr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := measureRelays(ctx, []snapi.ICEServer{
		{URLs: []string{"stun:" + live}},
		{URLs: []string{"stun:" + deadAddr}},
	})
	if _, ok := got[live]; !ok || len(got) != 1 {
		t.Fatalf("measureRelays = %v, want only %s", got, live)
	}
	if got[live] <= 0 || got[live] > 500 {
		t.Errorf("round trip %v ms to a loopback responder", got[live])
	}
}
