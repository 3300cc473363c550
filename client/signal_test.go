package client

import (
	"testing"
	"time"

	"github.com/parley/parley/wire/signal"
)

func TestReplayedSignalIsRefused(t *testing.T) {
	s := &Session{seen: map[string]time.Time{}}
	now := time.Now()
	sig := &signal.Signal{From: "alice", TS: now.UnixMilli(), Seq: 3}
	if !s.firstSight(sig, now) {
		t.Fatal("first sight refused")
	}
	if s.firstSight(&signal.Signal{From: "alice", TS: sig.TS, Seq: 3}, now) {
		t.Fatal("replay accepted")
	}
	if !s.firstSight(&signal.Signal{From: "alice", TS: sig.TS, Seq: 4}, now) {
		t.Fatal("next signal refused")
	}
	if !s.firstSight(&signal.Signal{From: "bob", TS: sig.TS, Seq: 3}, now) {
		t.Fatal("another sender's signal refused")
	}
}

// Every signal kind has its one handler in the session's dispatch table.
func TestDispatchTableCoversEveryKind(t *testing.T) {
	table := (&Session{}).dispatchTable()
	for _, k := range signal.Kinds() {
		if table[k] == nil {
			t.Errorf("no handler for %q", k)
		}
	}
	if got, want := len(table), len(signal.Kinds()); got != want {
		t.Errorf("table has %d kinds, want %d", got, want)
	}
}
