package client_test

import (
	"context"
	"fmt"
	"log"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/parley/parley/audio"
	"github.com/parley/parley/client"
	"github.com/parley/parley/codec"
	"github.com/parley/parley/internal/testnet"
)

// A bot built on the client library: it answers every call with a WAV file
// and replies to every message. Alice, a user, calls it and writes to it.
// It runs for real, against a login server and a supernode on loopback.
func Example_bot() {
	dir, err := os.MkdirTemp("", "parley-example-")
	check(err)
	defer os.RemoveAll(dir)
	net, err := testnet.New(testnet.Config{Dir: dir}) // a login server and a supernode on loopback
	check(err)
	defer net.Close()
	loginURL := net.LoginURL
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The bot's greeting: read once; each call plays it from the start.
	greeting, err := audio.Open(audio.Config{Play: toneWAV(dir, time.Second)})
	check(err)
	defer greeting.Close()

	// The bot. OnEvent must not block, so it only queues the messages; the
	// replies go on a goroutine the session owns (Go), which ends with it.
	messages := make(chan client.Event, 16)
	bot, err := newUser(ctx, dir, loginURL, "bot").Online(ctx, client.SessionConfig{
		OnIncoming: func(in *client.Incoming) { // one goroutine per call
			call, err := in.Answer(ctx, client.Media{Source: greeting.Source()})
			if err == nil {
				<-call.Done()
			}
		},
		OnEvent: func(ev client.Event) {
			if ev.Event == "message" && ev.From != "bot" { // not a copy of its own
				select {
				case messages <- ev:
				default: // too many at once: this one goes unanswered
				}
			}
		},
	})
	check(err)
	defer bot.Close()
	bot.Go(func(ctx context.Context) {
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-messages:
				_, err := bot.SendMessage(ctx, m.From, "you said: "+m.Text)
				if err != nil && ctx.Err() == nil { // not the session closing
					log.Print(err)
				}
			}
		}
	})

	// Alice: a contact of the bot's (messages go between contacts only).
	replies := make(chan string, 1)
	alice, err := newUser(ctx, dir, loginURL, "alice").Online(ctx, client.SessionConfig{OnEvent: func(ev client.Event) {
		if ev.Event == "message" && ev.From == "bot" {
			replies <- ev.Text
		}
	}})
	check(err)
	defer alice.Close()
	_, err = alice.AddContact(ctx, "bot")
	check(err)
	_, err = bot.AcceptContact(ctx, "alice")
	check(err)

	heard := &loudness{}
	call, err := alice.Call(ctx, "bot", client.Media{Sink: heard})
	check(err)
	fmt.Println("the bot answered")
	time.Sleep(1500 * time.Millisecond) // the greeting and a little more
	call.Hangup("hangup")
	<-call.Done()
	fmt.Println("alice heard the greeting:", heard.peak() > 1000)

	_, err = alice.SendMessage(ctx, "bot", "hello")
	check(err)
	select {
	case r := <-replies:
		fmt.Println("the bot replied:", r)
	case <-ctx.Done():
		fmt.Println("no reply")
	}
	// Output:
	// the bot answered
	// alice heard the greeting: true
	// the bot replied: you said: hello
}

// loudness is a FrameSink that keeps the loudest 20 ms heard (RMS).
type loudness struct {
	mu  sync.Mutex
	max float64
}

func (l *loudness) WriteFrame(f []int16) error {
	var sum float64
	for _, s := range f {
		sum += float64(s) * float64(s)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.max = max(l.max, math.Sqrt(sum/float64(len(f))))
	return nil
}

func (l *loudness) peak() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.max
}

// toneWAV writes d of a 440 Hz tone as a WAV file in dir.
func toneWAV(dir string, d time.Duration) string {
	pcm := make([]int16, int(d.Seconds()*codec.SampleRate))
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/codec.SampleRate))
	}
	path := filepath.Join(dir, "greeting.wav")
	f, err := os.Create(path)
	check(err)
	defer f.Close()
	check(codec.WriteWAV(f, pcm))
	return path
}

// newUser registers name with a home of its own under dir, and logs in.
func newUser(ctx context.Context, dir, loginURL, name string) *client.Client {
	c, err := testnet.User(ctx, filepath.Join(dir, name), loginURL, name)
	check(err)
	return c
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
