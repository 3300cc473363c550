package nodeid

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

func TestCheckUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		AnswerSTUN(pc, &stop)
	}()
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	tests := []struct {
		name    string
		addr    net.Addr
		wantErr error
	}{
		{"answered", pc.LocalAddr(), nil},
		{"silent", silent.LocalAddr(), ErrNoSTUN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckUDP(context.Background(), tt.addr.(*net.UDPAddr).AddrPort(), time.Second)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("CheckUDP: %v, want %v", err, tt.wantErr)
			}
		})
	}
	// Stopping hands the socket back, still open, for the relay.
	stop.Store(true)
	pc.SetReadDeadline(time.Now())
	<-done
	if _, err := pc.WriteTo([]byte("x"), silent.LocalAddr()); err != nil {
		t.Fatalf("socket closed by AnswerSTUN: %v", err)
	}
	pc.Close()
}
