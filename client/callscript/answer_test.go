package callscript_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/callscript"
	"github.com/parley/parley/internal/testnet"
)

// online registers user and returns its session.
func online(t *testing.T, ctx context.Context, loginURL, user string, onIncoming func(*client.Incoming)) *client.Session {
	t.Helper()
	return testnet.Online(t, ctx, loginURL, user, client.SessionConfig{OnIncoming: onIncoming})
}

func TestAnswerer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	loginURL := testnet.Start(t, testnet.Config{})
	answering := callscript.NewAnswerer(callscript.AnswerConfig{Answer: true, RingFor: 200 * time.Millisecond, Limit: 2})
	declining := callscript.NewAnswerer(callscript.AnswerConfig{})
	online(t, ctx, loginURL, "bob", answering.Handler(ctx))
	online(t, ctx, loginURL, "dave", declining.Handler(ctx))
	alice := online(t, ctx, loginURL, "alice", nil)
	carol := online(t, ctx, loginURL, "carol", nil)

	start := time.Now()
	call, err := alice.Call(ctx, "bob", client.Media{})
	if err != nil {
		t.Fatalf("alice calls bob: %v", err)
	}
	if rang := time.Since(start); rang < 200*time.Millisecond {
		t.Errorf("bob answered after %v, want it to ring 200 ms first", rang)
	}
	tests := []struct {
		name       string
		from       *client.Session
		to         string
		wantReason string
	}{
		{"a second caller hears busy", carol, "bob", "busy"},
		{"without Answer every call is declined", alice, "dave", ""},
	}
	for _, tt := range tests {
		_, err := tt.from.Call(ctx, tt.to, client.Media{})
		if !errors.Is(err, client.ErrDeclined) || !strings.Contains(err.Error(), tt.wantReason) {
			t.Errorf("%s: %v, want %v (%s)", tt.name, err, client.ErrDeclined, tt.wantReason)
		}
	}
	select {
	case <-answering.Done():
		t.Fatalf("Done after %d ended calls, want it after 2", answering.Ended())
	default:
	}
	call.Hangup("hangup")
	select {
	case <-answering.Done():
	case <-time.After(10 * time.Second):
		t.Fatalf("Done not closed after 2 ended calls (Ended() = %d)", answering.Ended())
	}
	// The answerer counts a declined call once its decline is sent, so the
	// caller may hear it a moment before the count moves.
	deadline := time.Now().Add(5 * time.Second)
	for declining.Ended() < 1 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := declining.Ended(); n != 1 {
		t.Errorf("the declining answerer counted %d ended calls, want 1", n)
	}
}
