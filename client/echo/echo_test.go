package echo_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/echo"
	"github.com/parley/parley/codec"
	"github.com/parley/parley/internal/testnet"
	"github.com/parley/parley/wire/loginapi"
)

// register makes user an account from a home of its own and logs it in.
func register(t *testing.T, loginURL, user string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return testnet.Register(t, ctx, loginURL, user)
}

// runEcho runs echo.Run with cfg in the background until the test ends, and
// returns its events and its result.
func runEcho(t *testing.T, cfg echo.Config) (online <-chan struct{}, result <-chan error) {
	ctx, cancel := context.WithCancel(context.Background())
	on := make(chan struct{})
	var once sync.Once
	cfg.OnEvent = func(ev client.Event) {
		if ev.Event == "online" {
			once.Do(func() { close(on) })
		}
	}
	res := make(chan error, 1)
	go func() { res <- echo.Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-res:
		case <-time.After(10 * time.Second):
			t.Error("echo.Run did not return 10 s after its context ended")
		}
	})
	return on, res
}

// sink keeps what a call hears.
type sink struct {
	mu  sync.Mutex
	pcm []int16
}

func (s *sink) WriteFrame(f []int16) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pcm = append(s.pcm, f...)
	return nil
}

func (s *sink) rms() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum float64
	for _, v := range s.pcm {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(max(1, len(s.pcm))))
}

// tone is d of a loud 440 Hz sine.
func tone(d time.Duration) []int16 {
	pcm := make([]int16, int(d.Seconds()*codec.SampleRate))
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/codec.SampleRate))
	}
	return pcm
}

// The echo registers itself with a random password, goes online and plays
// back what a caller says.
func TestRunRegistersAndEchoes(t *testing.T) {
	loginURL := testnet.Start(t, testnet.Config{})
	online, result := runEcho(t, echo.Config{Home: t.TempDir(), LoginURL: loginURL})
	select {
	case <-online:
	case err := <-result:
		t.Fatalf("Run returned %v before going online", err)
	case <-time.After(15 * time.Second):
		t.Fatal("the echo user never came online")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := register(t, loginURL, "alice").Online(ctx, client.SessionConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	heard := &sink{}
	call, err := s.Call(ctx, "echo", client.Media{Source: codec.NewPCMFrameReader(tone(2 * time.Second)), Sink: heard})
	if err != nil {
		t.Fatalf("calling echo: %v", err)
	}
	time.Sleep(2 * time.Second)
	call.Hangup("hangup")
	<-call.Done()
	if got := heard.rms(); got < 1000 {
		t.Errorf("what came back has RMS %.0f, want the tone (≈5600) played back", got)
	}
}

func TestRunErrors(t *testing.T) {
	loginURL := testnet.Start(t, testnet.Config{})
	register(t, loginURL, "taken")
	tests := []struct {
		name string
		cfg  echo.Config
		want error
	}{
		{"someone else's account", echo.Config{Home: t.TempDir(), LoginURL: loginURL, User: "taken"}, echo.ErrNotYours},
		{"wrong password", echo.Config{Home: t.TempDir(), LoginURL: loginURL, User: "taken", Password: "not-its-password"}, loginapi.ErrWrongPassword},
		{"bad user name", echo.Config{Home: t.TempDir(), LoginURL: loginURL, User: "Not A User"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := echo.Run(ctx, tt.cfg)
			if err == nil || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("Run = %v, want an error matching %v", err, tt.want)
			}
			if ctx.Err() != nil {
				t.Fatalf("Run waited for its context: %v", err)
			}
		})
	}
}
