package loadgen_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley/parley/internal/loadgen"
	"github.com/parley/parley/internal/testnet"
)

// TestLoadLosesNothing: 40 users attaching, messaging, leaving and coming
// back for a few seconds; at the end every message was delivered once and
// every user is findable.
func TestLoadLosesNothing(t *testing.T) {
	loginURL := testnet.Start(t, testnet.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := loadgen.Start(ctx, loadgen.Config{LoginURL: loginURL, Users: 40, MessageEvery: 300 * time.Millisecond,
		ResendAfter: time.Second, MeanOnline: 2 * time.Second, MeanOffline: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	time.Sleep(5 * time.Second)
	if err := l.Quiesce(ctx); err != nil {
		t.Fatal(err)
	}
	missing, err := l.Check(ctx)
	if err != nil {
		t.Fatal(err)
	}
	st := l.Stats()
	t.Logf("%+v", st)
	if len(missing) > 0 {
		t.Errorf("online users not found: %v", missing)
	}
	if st.Messages < 100 || st.Leaves == 0 || st.Attaches <= 40 {
		t.Errorf("too little load: %d messages, %d leaves, %d attaches", st.Messages, st.Leaves, st.Attaches)
	}
	if st.Lost != 0 || st.Duplicates != 0 || st.Misrouted != 0 || st.Delivered != st.Messages {
		t.Errorf("lost %d (%v), duplicates %d, misrouted %d, delivered %d of %d", st.Lost, st.LostIDs, st.Duplicates, st.Misrouted, st.Delivered, st.Messages)
	}
}

func TestStartErrors(t *testing.T) {
	ctx := context.Background()
	if _, err := loadgen.Start(ctx, loadgen.Config{}); !errors.Is(err, loadgen.ErrNoLoginURL) {
		t.Errorf("no login URL: %v", err)
	}
	if _, err := loadgen.Start(ctx, loadgen.Config{LoginURL: "http://127.0.0.1:1", Calls: 1}); !errors.Is(err, loadgen.ErrNoHome) {
		t.Errorf("calls without a home: %v", err)
	}
}
