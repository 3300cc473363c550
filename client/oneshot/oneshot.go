// Package oneshot runs a client's one-off operations the way the parley
// commands do. Every session it opens is a short one that does not show the
// user online (client.SessionConfig.NoPresence): it announces no presence,
// so the user's contacts see no "online" when it attaches nor "offline" when
// it detaches, whether the user is offline or online on other devices.
// Contact and status changes go through such a session when a supernode
// answers: the supernodes tell the running devices of the users concerned
// at once, so presence starts or stops within a second. When none answers
// they go to the login server alone, and running devices see them at their
// next refresh or start. Contact lists with live presence and lookups ask
// the mesh through such a session too.
//
// Every function takes the client, the session settings to go online with
// (Prefer, OnEvent…) and a context that bounds it; a session it opens is
// closed before it returns.
package oneshot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/parley/parley/client"
	"github.com/parley/parley/client/im"
	"github.com/parley/parley/wire/loginapi"
	"github.com/parley/parley/wire/presence"
	"github.com/parley/parley/wire/snapi"
)

// lookupParallel bounds the lookups [Lookup] runs at once.
const lookupParallel = 16

// Op is a change to a contact relation.
type Op string

// The contact operations of [Contact].
const (
	// Add asks the user to become a contact (and accepts when they had asked).
	Add Op = "add"
	// Accept accepts the user's request.
	Accept Op = "accept"
	// Decline ends the relation on both sides: declines their request,
	// withdraws ours, or removes the contact.
	Decline Op = "decline"
)

// contactOps are the contact operations of a client or of a session.
type contactOps struct {
	add, accept, decline func(context.Context, string) (string, error)
}

// Contact applies op to the relation with user and returns its state now
// (loginapi.ContactAccepted, ContactRequested, ContactPending or
// ContactNone). An unknown user is client.ErrUnknownUser, wrapped as "OP
// contact USER: …".
func Contact(ctx context.Context, c *client.Client, sc client.SessionConfig, op Op, user string) (string, error) {
	ops := contactOps{add: c.AddContact, accept: c.AcceptContact, decline: c.DeclineContact}
	sc.NoPresence = true
	if s, err := c.Online(ctx, sc); err == nil {
		defer s.Close()
		ops = contactOps{add: s.AddContact, accept: s.AcceptContact, decline: s.DeclineContact}
	} else if ctx.Err() != nil {
		return "", err
	}
	var state string
	var err error
	switch op {
	case Add:
		state, err = ops.add(ctx, user)
	case Accept:
		state, err = ops.accept(ctx, user)
	case Decline:
		state, err = ops.decline(ctx, user)
	default:
		return "", fmt.Errorf("%s contact %s: %w", op, user, ErrUnknownOp)
	}
	if errors.Is(err, loginapi.ErrUnknownUser) {
		// Name the operation and the user, not just "unknown user".
		return "", fmt.Errorf("%s contact %s: %w", op, user, client.ErrUnknownUser)
	}
	return state, err
}

// SetStatus sets the status all the user's devices share. Through a short
// session it also tells the user's running devices, which tell their
// contacts. When no supernode answers it is stored on the login server alone
// and offline says why (running devices pick it up at their next start).
func SetStatus(ctx context.Context, c *client.Client, sc client.SessionConfig, status string) (offline, err error) {
	sc.NoPresence = true
	s, err := c.Online(ctx, sc)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		return err, c.SetStatus(ctx, status)
	}
	defer s.Close()
	return nil, s.SetStatus(ctx, status)
}

// Contacts returns the user's contacts with, for accepted ones, their live
// presence, asked through a session when an accepted contact may be online.
// When no supernode answers, their presence is client.PresenceUnknown and
// unknown says why. It fails early, before going online, when the login
// server cannot list the contacts.
func Contacts(ctx context.Context, c *client.Client, sc client.SessionConfig) (cs []client.ContactPresence, unknown, err error) {
	list, err := c.Contacts(ctx)
	if err != nil {
		return nil, nil, err
	}
	var s *client.Session
	if slices.ContainsFunc(list, func(ct loginapi.Contact) bool {
		return ct.State == loginapi.ContactAccepted && ct.Status != presence.Offline
	}) {
		// Live presence comes from the mesh: attach to a supernode to ask.
		sc.NoPresence = true
		if s, unknown = c.Online(ctx, sc); unknown != nil {
			if ctx.Err() != nil {
				return nil, nil, unknown
			}
			s = nil
		} else {
			defer s.Close()
		}
	}
	cs, err = c.ContactsWithPresence(ctx, s)
	return cs, unknown, err
}

// Lookup asks the mesh where each of users is online, several at once, and
// returns the answers in the order of users. On a failure it returns the
// answers before the first failed user's and the error, wrapped as "lookup
// USER: …".
func Lookup(ctx context.Context, c *client.Client, sc client.SessionConfig, users []string) ([]snapi.Found, error) {
	sc.NoPresence = true
	s, err := c.Online(ctx, sc)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	found := make([]snapi.Found, len(users))
	errs := make([]error, len(users))
	var wg sync.WaitGroup
	sem := make(chan struct{}, lookupParallel)
	for i, u := range users {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			found[i], errs[i] = s.Lookup(ctx, u)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return found[:i], fmt.Errorf("lookup %s: %w", users[i], err)
		}
	}
	return found, nil
}

// GroupOps are the changes [Group] makes, with the arguments each takes
// after it: the least and the most.
var GroupOps = map[string][2]int{
	"create": {1, im.MaxGroupMembers}, "add": {2, 2}, "remove": {2, 2}, "admin": {2, 2},
	"rename": {2, 2}, "leave": {1, 1},
}

// Group makes one change to a group through a short session that shows no
// presence, and returns the group as it is then: create NAME [USER...], add,
// remove or admin GROUP USER, rename GROUP NAME, leave GROUP.
func Group(ctx context.Context, c *client.Client, sc client.SessionConfig, op string, args []string) (client.GroupInfo, error) {
	n, ok := GroupOps[op]
	if !ok || len(args) < n[0] || len(args) > n[1] {
		return client.GroupInfo{}, fmt.Errorf("group %s: %d arguments: %w", op, len(args), ErrUnknownOp)
	}
	sc.NoPresence = true
	s, err := c.Online(ctx, sc)
	if err != nil {
		return client.GroupInfo{}, err
	}
	defer s.Close()
	var g client.GroupInfo
	switch op {
	case "create":
		g, err = s.CreateGroup(ctx, args[0], args[1:])
	case "add":
		g, err = s.GroupAdd(ctx, args[0], args[1])
	case "remove":
		g, err = s.GroupRemove(ctx, args[0], args[1])
	case "admin":
		g, err = s.GroupMakeAdmin(ctx, args[0], args[1])
	case "rename":
		g, err = s.GroupRename(ctx, args[0], args[1])
	case "leave":
		g, err = s.GroupLeave(ctx, args[0])
	}
	return g, err // the session's errors name the change already
}
