package supernode_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley/parley/supernode"
	"github.com/parley/parley/wire/snapi"
)

// TestBusySupernodeAnswers503WithRetryAfter: with one attach in flight
// (MaxAttaching 1) the next connection is refused before the websocket
// upgrade with 503, a Retry-After and a JSON body, which snapi.Dial reports
// as a BusyError; attached sessions are untouched, and once the attach is
// done the next one gets in.
func TestBusySupernodeAnswers503WithRetryAfter(t *testing.T) {
	f := newFixtureWith(t, func(c *supernode.Config) { c.MaxAttaching = 1; c.RetryAfter = time.Second })
	now := time.Now()
	tok, key := f.user(t, "alice", now.Add(-time.Minute), now.Add(time.Hour))
	alice, err := f.dial(t, tok, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// A client that connects and never attaches holds the one slot.
	slow, _, err := websocket.Dial(ctx, f.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.CloseNow()
	if _, _, err := slow.Read(ctx); err != nil { // the challenge: it is past the gate
		t.Fatal(err)
	}

	resp, err := http.Get(strings.Replace(f.url, "ws://", "http://", 1))
	if err != nil {
		t.Fatal(err)
	}
	var body snapi.BusyBody
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
	if resp.StatusCode != http.StatusServiceUnavailable || secs < 1 || secs > 2 || body.Reason != "attaching" || body.RetryAfter != secs {
		t.Fatalf("busy answer: %s, Retry-After %q, body %+v; want 503, 1-2 s, reason attaching", resp.Status, resp.Header.Get("Retry-After"), body)
	}

	bob, bobKey := f.user(t, "bob", now.Add(-time.Minute), now.Add(time.Hour))
	_, err = f.dial(t, bob, bobKey, nil)
	var busy *snapi.BusyError
	if !errors.As(err, &busy) || !errors.Is(err, snapi.ErrBusy) || busy.RetryAfter < time.Second || busy.RetryAfter > 2*time.Second || busy.Reason != "attaching" {
		t.Fatalf("dial while busy: %v; want a BusyError (attaching, 1-2 s)", err)
	}
	if d, ok := snapi.RetryAfter(err); !ok || d != busy.RetryAfter {
		t.Fatalf("RetryAfter(err) = %v, %v", d, ok)
	}
	if found, err := alice.Lookup(ctx, "alice"); err != nil || found.Devices != 1 {
		t.Fatalf("the attached session while shedding: %+v, %v", found, err)
	}

	slow.CloseNow() // its slot comes back
	waitFor(t, 5*time.Second, "bob attaches once the slot is free", func() bool {
		c, err := f.dial(t, bob, bobKey, nil)
		return err == nil && c.User() == "bob"
	})
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
