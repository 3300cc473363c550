package callscript

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley/parley/client"
)

var errEnded = errors.New("the call's error")

// fakeCall records what the script does. It "sends" a packet at each Stats
// call unless stalled; Hangup ends it.
type fakeCall struct {
	mu      sync.Mutex
	holds   []bool
	hangups []string
	sent    atomic.Uint64
	stalled bool
	done    chan struct{}
	once    sync.Once
}

func newFakeCall(stalled bool) *fakeCall {
	return &fakeCall{done: make(chan struct{}), stalled: stalled}
}

func (f *fakeCall) Hold(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.holds = append(f.holds, on)
}

func (f *fakeCall) Hangup(reason string) {
	f.mu.Lock()
	f.hangups = append(f.hangups, reason)
	f.mu.Unlock()
	f.end()
}

func (f *fakeCall) end()                  { f.once.Do(func() { close(f.done) }) }
func (f *fakeCall) Done() <-chan struct{} { return f.done }
func (f *fakeCall) Err() error            { return errEnded }

func (f *fakeCall) Stats() client.Stats {
	if !f.stalled {
		f.sent.Add(1)
	}
	return client.Stats{PacketsSent: f.sent.Load()}
}

func TestRun(t *testing.T) {
	tests := []struct {
		name        string
		cfg         Config
		stalled     bool
		sourceEnds  bool          // SourceEnded is called at once
		peerHangsUp time.Duration // the call ends by itself after this (0: never)
		cancelAfter time.Duration // Run's context ends after this (0: never)
		wantHolds   []bool
		wantHangups []string
		// the time Run takes, within [min, max)
		min, max time.Duration
	}{
		{"hold and resume, then hang up", Config{HoldAt: 20 * time.Millisecond, HoldFor: 40 * time.Millisecond, For: 150 * time.Millisecond},
			false, false, 0, 0, []bool{true, false}, []string{"hangup"}, 150 * time.Millisecond, time.Second},
		{"stay on hold", Config{HoldAt: 20 * time.Millisecond, For: 100 * time.Millisecond, Reason: "bye"},
			false, false, 0, 0, []bool{true}, []string{"bye"}, 100 * time.Millisecond, time.Second},
		{"peer hangs up before the hold", Config{HoldAt: time.Hour},
			false, false, 30 * time.Millisecond, 0, nil, nil, 30 * time.Millisecond, time.Second},
		{"interrupted", Config{HoldAt: time.Hour, HoldFor: time.Hour},
			false, false, 0, 30 * time.Millisecond, nil, []string{"hangup"}, 30 * time.Millisecond, time.Second},
		{"end of the source, after the drain packets", Config{DrainPackets: 5},
			false, true, 0, 0, nil, []string{"hangup"}, 5 * 20 * time.Millisecond, 500 * time.Millisecond},
		{"end of the source, the call stalls: bounded", Config{MaxDrain: 150 * time.Millisecond},
			true, true, 0, 0, nil, []string{"hangup"}, 150 * time.Millisecond, time.Second},
		{"end of the source ignored with For", Config{For: 200 * time.Millisecond, DrainPackets: 1},
			false, true, 0, 0, nil, []string{"hangup"}, 200 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call := newFakeCall(tt.stalled)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancelAfter > 0 {
				time.AfterFunc(tt.cancelAfter, cancel)
			}
			if tt.peerHangsUp > 0 {
				time.AfterFunc(tt.peerHangsUp, call.end)
			}
			s := New(tt.cfg)
			if tt.sourceEnds {
				s.SourceEnded()
				s.SourceEnded() // twice is fine
			}
			start := time.Now()
			err := s.Run(ctx, call)
			took := time.Since(start)
			if !errors.Is(err, errEnded) {
				t.Errorf("Run = %v, want the call's error", err)
			}
			call.mu.Lock()
			defer call.mu.Unlock()
			if !slices.Equal(call.holds, tt.wantHolds) {
				t.Errorf("holds %v, want %v", call.holds, tt.wantHolds)
			}
			if !slices.Equal(call.hangups, tt.wantHangups) {
				t.Errorf("hangups %v, want %v", call.hangups, tt.wantHangups)
			}
			if took < tt.min || took >= tt.max {
				t.Errorf("Run took %v, want [%v, %v)", took, tt.min, tt.max)
			}
		})
	}
}

// The hold timers belong to Run: a call that ends before them is never put on
// hold afterwards.
func TestNoHoldAfterRun(t *testing.T) {
	call := newFakeCall(false)
	s := New(Config{HoldAt: 50 * time.Millisecond, HoldFor: 10 * time.Millisecond})
	time.AfterFunc(10*time.Millisecond, call.end)
	s.Run(context.Background(), call)
	time.Sleep(100 * time.Millisecond)
	call.mu.Lock()
	defer call.mu.Unlock()
	if len(call.holds) != 0 {
		t.Errorf("holds %v after Run returned, want none", call.holds)
	}
}
