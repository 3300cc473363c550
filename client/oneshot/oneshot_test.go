package oneshot_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/oneshot"
	"github.com/parley/parley/internal/testnet"
	"github.com/parley/parley/wire/loginapi"
)

// The same steps with a supernode (through short sessions) and without one
// (the login server alone).
func TestOneShots(t *testing.T) {
	for _, withSupernode := range []bool{true, false} {
		t.Run(map[bool]string{true: "with a supernode", false: "login server only"}[withSupernode], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			loginURL := testnet.Start(t, testnet.Config{NoSupernode: !withSupernode})
			alice, bob := testnet.Register(t, ctx, loginURL, "alice"), testnet.Register(t, ctx, loginURL, "bob")
			sc := client.SessionConfig{}
			steps := []struct {
				name      string
				c         *client.Client
				op        oneshot.Op
				user      string
				wantState string
				wantErr   error
			}{
				{"alice asks bob", alice, oneshot.Add, "bob", loginapi.ContactRequested, nil},
				{"bob accepts", bob, oneshot.Accept, "alice", loginapi.ContactAccepted, nil},
				{"unknown user", alice, oneshot.Add, "nobody", "", client.ErrUnknownUser},
				{"unknown operation", alice, oneshot.Op("befriend"), "bob", "", oneshot.ErrUnknownOp},
			}
			for _, st := range steps {
				state, err := oneshot.Contact(ctx, st.c, sc, st.op, st.user)
				if state != st.wantState || !errors.Is(err, st.wantErr) {
					t.Errorf("%s: (%q, %v), want (%q, %v)", st.name, state, err, st.wantState, st.wantErr)
				}
			}

			offline, err := oneshot.SetStatus(ctx, bob, sc, "away")
			if err != nil || (offline == nil) != withSupernode {
				t.Errorf("SetStatus: offline %v, err %v; want offline only without a supernode", offline, err)
			}
			if st, err := bob.Status(ctx); err != nil || st != "away" {
				t.Errorf("bob's status %q (%v), want away", st, err)
			}

			cs, unknown, err := oneshot.Contacts(ctx, alice, sc)
			if err != nil || len(cs) != 1 || cs[0].User != "bob" || cs[0].State != loginapi.ContactAccepted {
				t.Fatalf("Contacts: %+v, %v; want bob accepted", cs, err)
			}
			wantPresence := "offline" // bob is away but not attached
			if !withSupernode {
				wantPresence = client.PresenceUnknown
			}
			if cs[0].Presence != wantPresence || (unknown == nil) != withSupernode {
				t.Errorf("bob's presence %q (unknown: %v), want %q", cs[0].Presence, unknown, wantPresence)
			}

			found, err := oneshot.Lookup(ctx, alice, sc, []string{"bob", "alice"})
			if !withSupernode {
				// The login server lists none: the error says so, and where.
				if !errors.Is(err, client.ErrNoSupernodeListed) || !errors.Is(err, client.ErrNoSupernode) || !strings.Contains(err.Error(), loginURL) {
					t.Errorf("Lookup without a supernode: %v, %v; want ErrNoSupernodeListed at %s", found, err, loginURL)
				}
				return
			}
			if err != nil || len(found) != 2 || found[0].User != "bob" || found[1].User != "alice" {
				t.Errorf("Lookup: %+v, %v; want bob then alice", found, err)
			}
		})
	}
}

// A user's one-off operations do not show the user online to the contacts:
// their short sessions announce no presence, so a contact's running device
// gets no presence event from them.
func TestOneShotsShowNoPresence(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	loginURL := testnet.Start(t, testnet.Config{})
	alice, bob := testnet.Register(t, ctx, loginURL, "alice"), testnet.Register(t, ctx, loginURL, "bob")
	if _, err := oneshot.Contact(ctx, alice, client.SessionConfig{}, oneshot.Add, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := oneshot.Contact(ctx, bob, client.SessionConfig{}, oneshot.Accept, "alice"); err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 16)
	s, err := alice.Online(ctx, client.SessionConfig{OnEvent: func(ev client.Event) {
		if ev.Event == "presence" && ev.Peer == "bob" {
			seen <- ev.PresenceEvent.Status
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := oneshot.Lookup(ctx, bob, client.SessionConfig{}, []string{"alice"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := oneshot.Contacts(ctx, bob, client.SessionConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := oneshot.Contact(ctx, bob, client.SessionConfig{}, oneshot.Add, "alice"); err != nil {
		t.Fatal(err)
	}
	select {
	case st := <-seen:
		t.Errorf("alice saw bob %s while bob only ran one-off operations", st)
	case <-time.After(time.Second):
	}
}
