package oneshot_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/oneshot"
	"github.com/parley/parley/login"
	"github.com/parley/parley/supernode"
	"github.com/parley/parley/wire/loginapi"
)

// startNetwork starts a login server (and, with sn, a supernode) on
// loopback and returns the login server's URL.
func startNetwork(t *testing.T, sn bool) string {
	t.Helper()
	dir := t.TempDir()
	ls, err := login.New(login.Config{DB: filepath.Join(dir, "login.db"), DataDir: dir,
		Argon2:        login.Argon2Params{Time: 1, Memory: 1024, Threads: 1},
		DialBackAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	lhs := httptest.NewServer(ls.Handler())
	t.Cleanup(func() {
		lhs.Close()
		ls.Close()
	})
	if !sn {
		return lhs.URL
	}
	shs := httptest.NewUnstartedServer(nil)
	name := shs.Listener.Addr().String()
	_, nodeKey, _ := ed25519.GenerateKey(nil)
	s, err := supernode.New(supernode.Config{LoginKey: ls.PublicKey(), Name: name, NodeKey: nodeKey})
	if err != nil {
		t.Fatal(err)
	}
	shs.Config.Handler = s.Handler()
	shs.Start()
	t.Cleanup(func() {
		s.Close()
		shs.Close()
	})
	if _, err := loginapi.NewClient(lhs.URL, nil).Heartbeat(context.Background(), "ws://"+name+"/v1/ws", nodeKey); err != nil {
		t.Fatal(err)
	}
	return lhs.URL
}

func register(t *testing.T, ctx context.Context, loginURL, user string) *client.Client {
	t.Helper()
	c, err := client.New(client.Config{Home: t.TempDir(), LoginURL: loginURL})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Register(ctx, user, "password-"+user); err != nil {
		t.Fatal(err)
	}
	if err := c.Login(ctx, user, "password-"+user); err != nil {
		t.Fatal(err)
	}
	return c
}

// The same steps with a supernode (through short sessions) and without one
// (the login server alone).
func TestOneShots(t *testing.T) {
	for _, withSupernode := range []bool{true, false} {
		t.Run(map[bool]string{true: "with a supernode", false: "login server only"}[withSupernode], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			loginURL := startNetwork(t, withSupernode)
			alice, bob := register(t, ctx, loginURL, "alice"), register(t, ctx, loginURL, "bob")
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
	loginURL := startNetwork(t, true)
	alice, bob := register(t, ctx, loginURL, "alice"), register(t, ctx, loginURL, "bob")
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
