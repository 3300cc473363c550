package client_test

import (
	"context"
	"testing"
	"time"

	"github.com/parley/parley/client"
)

// BenchmarkCallSetup measures post-dial delay on loopback: from placing a
// call to media flowing (the callee answers the moment it rings), with a
// real login server and supernode, signed signals, ICE and DTLS-SRTP.
// Run: go test -run '^$' -bench CallSetup -benchtime 20x ./client/
func BenchmarkCallSetup(b *testing.B) {
	n := startNetwork(b, nil)
	alice, bob := newIMUser(b, n, "alice"), newIMUser(b, n, "bob")
	bob.cfg.OnIncoming = func(in *client.Incoming) {
		c, err := in.Answer(context.Background(), client.Media{})
		if err == nil {
			<-c.Done()
		}
	}
	bob.online(b)
	as := alice.online(b)
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		start := time.Now()
		call, err := as.Call(ctx, "bob", client.Media{})
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		b.StopTimer()
		call.Hangup("hangup")
		<-call.Done()
		cancel()
		// A call takes some ten signals: stay under the supernode's 50
		// sends a second per connection.
		time.Sleep(300 * time.Millisecond)
		b.StartTimer()
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/call")
}

// BenchmarkMessageDelivered measures how long a message to an online contact
// takes until the sender holds the receipt: sealed, through the supernode,
// opened, stored and acknowledged end to end.
// Run: go test -run '^$' -bench MessageDelivered -benchtime 50x ./client/
func BenchmarkMessageDelivered(b *testing.B) {
	n := startNetwork(b, nil)
	alice, bob := newIMUser(b, n, "alice"), newIMUser(b, n, "bob")
	befriend(b, alice, "alice", bob, "bob")
	bob.online(b)
	as := alice.online(b)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b.ResetTimer()
	for range b.N {
		res, err := as.SendMessage(ctx, "bob", "a short message")
		if err != nil || !res.Delivered {
			b.Fatalf("%+v, %v", res, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/message")
}
