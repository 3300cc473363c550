package client

import (
	"testing"
	"time"

	"github.com/parley/parley/wire/signal"
)

// TestFirstSightNamesTheDevice: two devices of one user count their own
// sequence numbers, so both may sign a signal with the same time and number
// (answering one offer at once); neither is a replay of the other, and a
// repeat of either is.
func TestFirstSightNamesTheDevice(t *testing.T) {
	s := &Session{seen: map[string]time.Time{}}
	now := time.Now()
	a := &signal.Signal{Kind: signal.KindAnswer, From: "bob", Device: "dev-a", TS: now.UnixMilli(), Seq: 2}
	b := &signal.Signal{Kind: signal.KindCandidate, From: "bob", Device: "dev-b", TS: now.UnixMilli(), Seq: 2}
	for _, tt := range []struct {
		name string
		sig  *signal.Signal
		want bool
	}{
		{"device a's answer", a, true},
		{"device b's candidate, same time and number", b, true},
		{"device a's answer again", a, false},
		{"device b's candidate again", b, false},
	} {
		if got := s.firstSight(tt.sig, now); got != tt.want {
			t.Errorf("%s: firstSight = %v, want %v", tt.name, got, tt.want)
		}
	}
}
