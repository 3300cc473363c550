package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/codec"
	"github.com/parley/parley/internal/audiotest"
)

// TestHoldKeepsTimeWithoutLoss: alice puts a call on hold for 2 s. Her side
// sends heartbeats (a packet without audio at least every 200 ms) instead
// of frames; bob counts no loss, and his recording keeps time: a frame for
// every 20 ms of alice's clock, comfort noise for the hold.
func TestHoldKeepsTimeWithoutLoss(t *testing.T) {
	n := startNetwork(t, nil)
	rec := &recorder{}
	bobCall := make(chan *client.Call, 1)
	n.user(t, "bob", client.SessionConfig{
		OnIncoming: func(in *client.Incoming) {
			c, err := in.Answer(context.Background(), client.Media{Sink: rec, OnRTP: rec.onRTP})
			if err != nil {
				t.Errorf("answer: %v", err)
				return
			}
			bobCall <- c
		},
	})
	alice := n.user(t, "alice", client.SessionConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call, err := alice.Call(ctx, "bob", client.Media{})
	if err != nil {
		t.Fatal(err)
	}
	var bc *client.Call
	select {
	case bc = <-bobCall:
	case <-time.After(5 * time.Second):
		t.Fatal("bob never answered")
	}
	time.Sleep(time.Second)
	call.Hold(true)
	time.Sleep(2 * time.Second)
	call.Hold(false)
	time.Sleep(time.Second)
	st := bc.Stats()
	call.Hangup("hangup")
	<-call.Done()
	<-bc.Done()

	pcm, headers, _ := rec.snapshot()
	if len(headers) < 100 {
		t.Fatalf("bob received %d packets", len(headers))
	}
	var beats int
	for i := 1; i < len(headers); i++ {
		h, prev := headers[i], headers[i-1]
		if h.SequenceNumber != prev.SequenceNumber+1 {
			t.Fatalf("packet %d: sequence %d after %d (loopback loses nothing)", i, h.SequenceNumber, prev.SequenceNumber)
		}
		if d := h.Timestamp - prev.Timestamp; d > uint32(200*time.Millisecond/codec.FrameDuration)*codec.FrameSamples {
			t.Errorf("packet %d: %d ms of the sender's clock after the last, want at most 200", i, d/48)
		} else if d > codec.FrameSamples {
			beats++
		}
	}
	if beats < 8 {
		t.Errorf("%d packets after a gap in the timestamps, want about 10 for a 2 s hold", beats)
	}
	if st.Loss != 0 {
		t.Errorf("bob's stats: loss %.3f, want 0", st.Loss)
	}
	// A frame for every 20 ms the sender's timestamps cover.
	want := int((headers[len(headers)-1].Timestamp-headers[0].Timestamp)/codec.FrameSamples) + 1
	if got := len(pcm) / codec.FrameSamples; got != want {
		t.Errorf("bob recorded %d frames, want %d (the time alice's timestamps cover)", got, want)
	}
	// The hold is comfort noise: quiet, not digital silence, not loud.
	var hold []int16
	for i := 1; i < len(headers); i++ {
		if headers[i].Timestamp-headers[i-1].Timestamp > codec.FrameSamples {
			from := int(headers[i-1].Timestamp-headers[0].Timestamp) + codec.FrameSamples
			to := int(headers[i].Timestamp - headers[0].Timestamp)
			hold = append(hold, pcm[from:min(to, len(pcm))]...)
		}
	}
	if lvl := audiotest.RMSdB(hold); lvl < -75 || lvl > -50 {
		t.Errorf("the hold recorded at %.1f dBFS, want comfort noise (about -60)", lvl)
	}
}
