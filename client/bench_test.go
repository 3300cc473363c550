package client_test

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/login"
	"github.com/parley/parley/supernode"
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

// BenchmarkGroupMessage measures one message to a group of 10, 50 and 100
// members (the sender and the others, one device each), online and offline:
// the time until SendGroupMessage returns (every member has it on a device,
// acknowledged, or in a mailbox) and the bytes it cost — every websocket
// frame through the supernode (the envelopes and their receipts, both ways)
// and every request body to the login server (device lists, mailbox posts).
// Run: go test -run '^$' -bench GroupMessage -benchtime 5x ./client/
func BenchmarkGroupMessage(b *testing.B) {
	var wireBytes atomic.Int64
	n := startNetworkWith(b, func(snURL string) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			proxyWS(rw, r, snURL, func(p []byte) []byte { wireBytes.Add(int64(len(p))); return p })
		})
	}, login.Config{MaxRegistrationsPerMinute: 1000}, supernode.Config{MaxSessionsPerAddr: -1, MaxConnsPerAddr: -1, MaxSessionsPerUser: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	owner := newIMUser(b, n, "owner")
	os := owner.online(b)
	var names []string
	var members []*imUser
	for i := range 99 {
		name := fmt.Sprintf("m%03d", i)
		u := newIMUser(b, n, name)
		befriend(b, u, name, owner, "owner") // the member asks: the owner's requests are capped a day
		names, members = append(names, name), append(members, u)
	}
	online := map[int]*client.Session{}
	pb := b // sessions outlive each sub-benchmark's runs
	for _, size := range []int{10, 50, 100} {
		for _, mode := range []string{"online", "offline"} {
			b.Run(fmt.Sprintf("members=%d/%s", size, mode), func(b *testing.B) {
				for i := range size - 1 {
					if mode == "online" && online[i] == nil {
						online[i] = members[i].online(pb)
					}
					if mode == "offline" && online[i] != nil {
						online[i].Close()
						delete(online, i)
					}
				}
				g, err := os.CreateGroup(ctx, fmt.Sprintf("bench %d %s", size, mode), names[:size-1])
				if err != nil {
					b.Fatal(err)
				}
				for _, s := range online {
					for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
						if _, err := s.Group(g.ID); err == nil {
							break
						} else if time.Now().After(deadline) {
							b.Fatalf("a member never learned of the group: %v", err)
						}
					}
				}
				time.Sleep(time.Second) // let the create's receipts settle
				wire0, login0 := wireBytes.Load(), n.loginIn.Load()
				b.ResetTimer()
				for range b.N {
					// One message from a sender that has been quiet: a
					// supernode lets a connection send 100 at once, then 50 a
					// second (docs/performance.md).
					b.StopTimer()
					time.Sleep(time.Duration(size) * 20 * time.Millisecond)
					b.StartTimer()
					res, err := os.SendGroupMessage(ctx, g.ID, "a short message to the group")
					if err != nil || len(res.Failed) > 0 || res.Delivered+res.Stored != size-1 {
						b.Fatalf("%+v, %v", res, err)
					}
					if mode == "online" && res.Delivered != size-1 {
						b.Fatalf("online: %d of %d delivered", res.Delivered, size-1)
					}
				}
				b.StopTimer()
				time.Sleep(500 * time.Millisecond) // the last receipts
				b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/message")
				b.ReportMetric(0, "ns/op")
				b.ReportMetric(float64(wireBytes.Load()-wire0)/float64(b.N), "supernode-B/message")
				b.ReportMetric(float64(n.loginIn.Load()-login0)/float64(b.N), "login-B/message")
			})
		}
	}
}
