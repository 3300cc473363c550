package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/parley/parley/client"
	"github.com/parley/parley/login"
	"github.com/parley/parley/wire/loginapi"
	"github.com/parley/parley/wire/presence"
)

func newUserClient(t *testing.T, n *network, name string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(client.Config{Home: t.TempDir(), LoginURL: n.loginURL})
	if err != nil {
		t.Fatal(err)
	}
	must(t, c.Register(ctx, name, "password-"+name))
	must(t, c.Login(ctx, name, "password-"+name))
	return c
}

func presenceOf(t *testing.T, c *client.Client, s *client.Session, user string) client.ContactPresence {
	t.Helper()
	list, err := c.ContactsWithPresence(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range list {
		if ct.User == user {
			return ct
		}
	}
	return client.ContactPresence{}
}

// TestContactsStatusSearchAndPresence: the contact calls keep the login
// sentinels, and presence combines the stored status with the mesh.
func TestContactsStatusSearchAndPresence(t *testing.T) {
	n := startNetwork(t, nil)
	ctx := context.Background()
	alice, bob := newUserClient(t, n, "alice"), newUserClient(t, n, "bob")

	if _, err := alice.AddContact(ctx, "zed"); !errors.Is(err, loginapi.ErrUnknownUser) || !strings.Contains(err.Error(), "add contact zed") {
		t.Errorf("add unknown user: %v, want loginapi.ErrUnknownUser naming the operation", err)
	}
	if _, err := bob.AcceptContact(ctx, "alice"); !errors.Is(err, loginapi.ErrNoRequest) {
		t.Errorf("accept without a request: %v, want loginapi.ErrNoRequest", err)
	}
	if st, err := alice.AddContact(ctx, "bob"); err != nil || st != loginapi.ContactRequested {
		t.Fatalf("add bob: %q, %v", st, err)
	}
	if got := presenceOf(t, bob, nil, "alice"); got.State != loginapi.ContactPending || got.Presence != "" {
		t.Errorf("bob sees alice as %+v, want pending without presence", got)
	}
	if st, err := bob.AcceptContact(ctx, "alice"); err != nil || st != loginapi.ContactAccepted {
		t.Fatalf("accept alice: %q, %v", st, err)
	}

	as, err := alice.Online(ctx, client.SessionConfig{})
	must(t, err)
	defer as.Close()
	if got := presenceOf(t, alice, as, "bob"); got.Presence != presence.Offline {
		t.Errorf("bob not attached: presence %q, want offline", got.Presence)
	}
	if got := presenceOf(t, alice, nil, "bob"); got.Presence != client.PresenceUnknown {
		t.Errorf("no session: presence %q, want %q", got.Presence, client.PresenceUnknown)
	}
	bs, err := bob.Online(ctx, client.SessionConfig{})
	must(t, err)
	if got := presenceOf(t, alice, as, "bob"); got.Presence != presence.Online {
		t.Errorf("bob attached: presence %q, want online", got.Presence)
	}
	for _, st := range []string{presence.Busy, presence.Invisible} {
		must(t, bob.SetStatus(ctx, st))
		if got, err := bob.Status(ctx); err != nil || got != st {
			t.Errorf("bob's status %q, %v; want %q", got, err, st)
		}
	}
	if got := presenceOf(t, alice, as, "bob"); got.Presence != presence.Offline {
		t.Errorf("bob invisible: presence %q, want offline", got.Presence)
	}
	must(t, bob.SetStatus(ctx, presence.Busy))
	if got := presenceOf(t, alice, as, "bob"); got.Presence != presence.Busy {
		t.Errorf("bob busy: presence %q, want busy", got.Presence)
	}
	bs.Close()
	deadline := time.Now().Add(5 * time.Second)
	for presenceOf(t, alice, as, "bob").Presence != presence.Offline {
		if time.Now().After(deadline) {
			t.Fatal("bob still present 5 s after his session closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := bob.SetStatus(ctx, "asleep"); !errors.Is(err, loginapi.ErrBadRequest) {
		t.Errorf("set status asleep: %v, want loginapi.ErrBadRequest", err)
	}

	if users, err := alice.Search(ctx, "bo", 5); err != nil || len(users) != 1 || users[0] != "bob" {
		t.Errorf("search bo: %v, %v; want [bob]", users, err)
	}
	// Searches are rate limited per user; the sentinel and the wait survive.
	for i := 0; ; i++ {
		_, err := bob.Search(ctx, "al", 1)
		if err == nil {
			if i > login.DefaultMaxSearchesPerUser {
				t.Fatalf("%d searches and no rate limit", i)
			}
			continue
		}
		var ae *loginapi.APIError
		if !errors.Is(err, loginapi.ErrRateLimited) || !errors.As(err, &ae) || ae.RetryAfter <= 0 || !strings.Contains(err.Error(), "search al: login: too many searches") {
			t.Errorf("search %d: %v, want loginapi.ErrRateLimited with a wait", i, err)
		}
		break
	}
	if st, err := alice.DeclineContact(ctx, "bob"); err != nil || st != loginapi.ContactNone {
		t.Errorf("decline bob: %q, %v", st, err)
	}
	if list, err := bob.Contacts(ctx); err != nil || len(list) != 0 {
		t.Errorf("bob's contacts after alice removed him: %v, %v; want none", list, err)
	}
}
