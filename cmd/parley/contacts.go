package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"

	"github.com/parley/parley/client"
	"github.com/parley/parley/internal/identity"
	"github.com/parley/parley/wire/loginapi"
	"github.com/parley/parley/wire/presence"
)

const contactsUsage = `usage: parley contacts SUBCOMMAND [flags]

  add USER       ask USER to become a contact (accepts when USER already asked)
  accept USER    accept USER's contact request
  decline USER   decline USER's request, withdraw ours, or remove the contact
  list [--json]  the contacts: user, state (accepted, requested, pending) and,
                 for accepted ones, presence (online, away, busy, offline)
`

// statuses are the values `parley status` sets.
var statuses = []string{presence.Online, presence.Away, presence.Busy, presence.Invisible}

// cmdContacts is `parley contacts add|accept|decline|list`.
func cmdContacts(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, contactsUsage)
		return usageError{"contacts: expected a subcommand (add, accept, decline, list)"}
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "add", "accept", "decline":
		return contactOp(ctx, e, sub, rest)
	case "list":
		return contactsList(ctx, e, rest)
	case "help", "-h", "--help":
		fmt.Fprint(e.stdout, contactsUsage)
		return nil
	}
	fmt.Fprint(e.stderr, contactsUsage)
	return usageError{fmt.Sprintf("contacts: unknown subcommand %q (add, accept, decline, list)", sub)}
}

func contactOp(ctx context.Context, e *env, sub string, args []string) error {
	fs := flag.NewFlagSet("contacts "+sub, flag.ContinueOnError)
	pos, err := parseFlags(fs, e, args, 1, 1, "USER")
	if err != nil {
		return err
	}
	user := pos[0]
	if err := identity.CheckUser(user); err != nil {
		return usageError{fmt.Sprintf("contacts %s: %v", sub, err)}
	}
	c, err := e.newClient("")
	if err != nil {
		return err
	}
	// Through a short session (invisible to the contacts) when a supernode
	// answers, which tells the running devices of both users to reread
	// their contacts, so presence starts or stops at once; else they see
	// it at their next refresh.
	ops := contactOps{add: c.AddContact, accept: c.AcceptContact, decline: c.DeclineContact}
	if s, err := c.Online(ctx, e.sessionConfig(client.SessionConfig{NoPresence: true})); err == nil {
		defer s.Close()
		ops = contactOps{add: s.AddContact, accept: s.AcceptContact, decline: s.DeclineContact}
	} else if ctx.Err() != nil {
		return err
	}
	var state string
	switch sub {
	case "add":
		state, err = ops.add(ctx, user)
	case "accept":
		state, err = ops.accept(ctx, user)
	case "decline":
		state, err = ops.decline(ctx, user)
	}
	if err != nil {
		if errors.Is(err, loginapi.ErrUnknownUser) {
			// Name the command and the user, not just "unknown user".
			return fmt.Errorf("%s contact %s: %w", sub, user, client.ErrUnknownUser)
		}
		return err
	}
	switch {
	case sub == "decline":
		fmt.Fprintf(e.stdout, "%s is not a contact any more\n", user)
	case state == loginapi.ContactAccepted:
		fmt.Fprintf(e.stdout, "%s is now a contact\n", user)
	default:
		fmt.Fprintf(e.stdout, "contact request sent to %s\n", user)
	}
	return nil
}

// contactOps are the contact operations of a client or of a session.
type contactOps struct {
	add, accept, decline func(context.Context, string) (string, error)
}

func contactsList(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("contacts list", flag.ContinueOnError)
	jsonOut := fs.Bool("json", false, `print one JSON object per contact: {"user","state","presence"}`)
	if _, err := parseFlags(fs, e, args, 0, 0, ""); err != nil {
		return err
	}
	c, err := e.newClient("")
	if err != nil {
		return err
	}
	// Fail early (no user, wrong login server) before going online.
	list, err := c.Contacts(ctx)
	if err != nil {
		return err
	}
	var s *client.Session
	if slices.ContainsFunc(list, func(ct loginapi.Contact) bool {
		return ct.State == loginapi.ContactAccepted && ct.Status != presence.Offline
	}) {
		// Live presence comes from the mesh: attach to a supernode to ask.
		s, err = c.Online(ctx, e.sessionConfig(client.SessionConfig{}))
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "parley: presence unknown: %s\n", userMessage(err))
			s = nil
		} else {
			defer s.Close()
		}
	}
	contacts, err := c.ContactsWithPresence(ctx, s)
	if err != nil {
		return err
	}
	for _, ct := range contacts {
		if *jsonOut {
			b, _ := json.Marshal(struct {
				User     string `json:"user"`
				State    string `json:"state"`
				Presence string `json:"presence"`
			}{ct.User, ct.State, ct.Presence})
			fmt.Fprintln(e.stdout, string(b))
			continue
		}
		if ct.Presence != "" {
			fmt.Fprintf(e.stdout, "%s\t%s\t%s\n", ct.User, ct.State, ct.Presence)
		} else {
			fmt.Fprintf(e.stdout, "%s\t%s\n", ct.User, ct.State)
		}
	}
	return nil
}

// cmdStatus is `parley status [online|away|busy|invisible]`.
func cmdStatus(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	pos, err := parseFlags(fs, e, args, 0, 1, "[online|away|busy|invisible]")
	if err != nil {
		return err
	}
	if len(pos) == 1 && !slices.Contains(statuses, pos[0]) {
		return usageError{fmt.Sprintf("status: %q: must be one of %s", pos[0], strings.Join(statuses, ", "))}
	}
	c, err := e.newClient("")
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, st)
		return nil
	}
	// Set it through a short session (invisible to the contacts), which
	// also tells the user's running devices; they tell their contacts.
	s, err := c.Online(ctx, e.sessionConfig(client.SessionConfig{NoPresence: true}))
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		if err := c.SetStatus(ctx, pos[0]); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "status set to %s (running devices pick it up at their next start: %s)\n", pos[0], userMessage(err))
		return nil
	}
	defer s.Close()
	if err := s.SetStatus(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "status set to %s\n", pos[0])
	return nil
}

// cmdSearch is `parley search TEXT [--limit N] [--json]`.
func cmdSearch(ctx context.Context, e *env, args []string) error {
	fs := flag.NewFlagSet("search", flag.ContinueOnError)
	limit := fs.Int("limit", loginapi.MaxSearchResults, fmt.Sprintf("at most N names (1-%d)", loginapi.MaxSearchResults))
	jsonOut := fs.Bool("json", false, `print one JSON object per user: {"user"}`)
	pos, err := parseFlags(fs, e, args, 1, 1, "TEXT")
	if err != nil {
		return err
	}
	if *limit < 1 || *limit > loginapi.MaxSearchResults {
		return usageError{fmt.Sprintf("search: --limit must be 1 to %d", loginapi.MaxSearchResults)}
	}
	prefix := pos[0]
	if prefix == "" {
		return usageError{"search: TEXT is empty: give the start of a user name"}
	}
	if err := identity.CheckUser(prefix); err != nil {
		return usageError{fmt.Sprintf("search: %v", err)}
	}
	c, err := e.newClient("")
	if err != nil {
		return err
	}
	users, err := c.Search(ctx, prefix, *limit)
	if err != nil {
		return err
	}
	for _, u := range users {
		if *jsonOut {
			b, _ := json.Marshal(struct {
				User string `json:"user"`
			}{u})
			fmt.Fprintln(e.stdout, string(b))
			continue
		}
		fmt.Fprintln(e.stdout, u)
	}
	return nil
}
